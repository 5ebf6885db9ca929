-- The whole catalog of issue 15 in one step, so that sync, builds, runs and events add code,
-- not schema rewrites. Portable SQL, read by SQLite and PostgreSQL alike; the only dialect
-- difference, an auto-numbered key, is written {{id}} and filled in by src/catalog/migrate.rs.
--
-- Times are BIGINT unix seconds (UTC). Both engines compare and index integers the same way;
-- SQLite has no timestamp type, the Any driver maps none, and RFC 3339 text orders correctly
-- only while every writer uses one exact format. The reader prints RFC 3339.
--
-- Digests are TEXT `algorithm:hex`, never foreign keys to manifests: a tag or a run is
-- recorded whether or not the manifest behind it has been synced (or is still servable).

CREATE TABLE repositories (
    id {{id}},
    -- Canonical host[:port], lowercased.
    registry TEXT NOT NULL,
    name TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    UNIQUE (registry, name)
);

CREATE TABLE manifests (
    digest TEXT PRIMARY KEY,
    media_type TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('index', 'image')),
    size BIGINT NOT NULL,
    -- An image's platform (from its config, or its index entry).
    os TEXT,
    architecture TEXT,
    variant TEXT,
    config_digest TEXT,
    -- The config's `created`, when it has one.
    created_at BIGINT,
    -- The config's labels, a JSON object as text (untrusted: escape when shown).
    labels TEXT,
    first_seen BIGINT NOT NULL
);

-- Which repository holds which manifest (one digest may be pushed to several).
CREATE TABLE repository_manifests (
    repository_id BIGINT NOT NULL REFERENCES repositories (id),
    digest TEXT NOT NULL REFERENCES manifests (digest),
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_manifests_digest ON repository_manifests (digest);

CREATE TABLE index_children (
    index_digest TEXT NOT NULL REFERENCES manifests (digest),
    position INTEGER NOT NULL,
    child_digest TEXT NOT NULL,
    os TEXT,
    architecture TEXT,
    variant TEXT,
    PRIMARY KEY (index_digest, position)
);
CREATE INDEX index_children_child ON index_children (child_digest);

CREATE TABLE layers (
    digest TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    media_type TEXT
);

CREATE TABLE manifest_layers (
    manifest_digest TEXT NOT NULL REFERENCES manifests (digest),
    position INTEGER NOT NULL,
    layer_digest TEXT NOT NULL REFERENCES layers (digest),
    PRIMARY KEY (manifest_digest, position)
);
-- "Which images are built on this base": every manifest that carries its layers.
CREATE INDEX manifest_layers_layer ON manifest_layers (layer_digest);

CREATE TABLE tags (
    id {{id}},
    repository_id BIGINT NOT NULL REFERENCES repositories (id),
    name TEXT NOT NULL,
    UNIQUE (repository_id, name)
);

-- Every digest a tag was seen pointing at: [first_seen, last_seen] the sightings, moved_at the
-- sighting that found it pointing elsewhere (NULL while current).
CREATE TABLE tag_history (
    id {{id}},
    tag_id BIGINT NOT NULL REFERENCES tags (id),
    digest TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    moved_at BIGINT
);
-- At most one current digest per tag, whatever two writers do at once.
CREATE UNIQUE INDEX tag_history_current ON tag_history (tag_id) WHERE moved_at IS NULL;
CREATE INDEX tag_history_tag ON tag_history (tag_id, first_seen);
CREATE INDEX tag_history_digest ON tag_history (digest);

CREATE TABLE builds (
    id {{id}},
    digest TEXT NOT NULL,
    source_repository TEXT,
    source_commit TEXT,
    builder TEXT,
    built_at BIGINT NOT NULL,
    registered_at BIGINT NOT NULL
);
CREATE INDEX builds_digest ON builds (digest);

-- What a build declared it was made from: parent images now, Debian packages later.
CREATE TABLE build_dependencies (
    build_id BIGINT NOT NULL REFERENCES builds (id),
    position INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('image', 'package')),
    name TEXT NOT NULL,
    version TEXT,
    digest TEXT,
    PRIMARY KEY (build_id, position)
);
CREATE INDEX build_dependencies_digest ON build_dependencies (digest);
CREATE INDEX build_dependencies_name ON build_dependencies (kind, name);

CREATE TABLE clusters (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    -- The latest snapshot recorded: an older one arriving late is stale.
    last_recorded_at BIGINT
);

-- What ran, as intervals: a container of a controller running one digest, seen from first_seen
-- to last_seen in consecutive snapshots; closed_at is the snapshot that no longer saw it (NULL
-- while it runs).
CREATE TABLE runs (
    id {{id}},
    cluster_id BIGINT NOT NULL REFERENCES clusters (id),
    namespace TEXT NOT NULL,
    controller_kind TEXT NOT NULL,
    controller_name TEXT NOT NULL,
    container TEXT NOT NULL,
    -- registry/repository it runs from (canonical): kept even when the registry lost the digest.
    image TEXT NOT NULL,
    digest TEXT NOT NULL,
    pod_count BIGINT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    closed_at BIGINT
);
-- One open interval per run, whatever two writers do at once.
CREATE UNIQUE INDEX runs_open ON runs (cluster_id, namespace, controller_kind, controller_name, container, digest) WHERE closed_at IS NULL;
-- "Where does digest D run (and when)".
CREATE INDEX runs_digest ON runs (digest, last_seen);
-- "What ran in namespace N at time T": first_seen <= T <= last_seen, scanned from last_seen.
CREATE INDEX runs_namespace_time ON runs (namespace, last_seen, first_seen);
CREATE INDEX runs_cluster_time ON runs (cluster_id, last_seen, first_seen);

-- What the registry did to a digest, as noticed (`unservable`: it answered 404 while it ran).
CREATE TABLE registry_events (
    id {{id}},
    digest TEXT NOT NULL,
    kind TEXT NOT NULL,
    noticed_at BIGINT NOT NULL,
    repository_id BIGINT REFERENCES repositories (id),
    detail TEXT
);
CREATE INDEX registry_events_digest ON registry_events (digest, noticed_at);
