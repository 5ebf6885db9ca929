-- Issue 16: the Debian packages inside images, read from their layers.
--
-- A layer is read at most once across the whole catalog: its scan is kept by digest
-- (`layer_scans`), so 500 images on one base read the base's layers once, and an image whose
-- layers are all known costs no download. An image's inventory is computed from its layers'
-- scans in order and kept as rows for the questions `catalog packages` and `catalog where` ask.
-- Images with the same packages from the same layers (500 service images on one base that
-- install no package of their own) share one package set: its rows are stored once.

-- One layer's part of the dpkg database. `scan` is the pure scanner's result as JSON
-- (src/packages/layer.rs: status file, status.d entries, os-release, whiteouts), kept whole
-- because an inventory needs all of it and a digest's content never changes. `scanner` is that
-- format's version: a scanner that reads more is a new number, and older rows are read again.
CREATE TABLE layer_scans (
    layer_digest TEXT PRIMARY KEY,
    scanner INTEGER NOT NULL,
    scanned_at BIGINT NOT NULL,
    -- The compressed bytes read (the blob's size), for the sync's accounting.
    bytes BIGINT NOT NULL,
    -- The scan, when the layer could be read; NULL with `error` when it could not (not a tar,
    -- over a cap, not a filesystem layer): a fact about the digest, not retried.
    scan TEXT,
    error TEXT,
    CHECK ((scan IS NULL) <> (error IS NULL))
);

-- A set of installed packages, each with the layer that brought its version in: what one or
-- more images have. `set_key` is the sha256 of its rows in order (src/catalog/packages.rs).
CREATE TABLE package_sets (
    set_key TEXT PRIMARY KEY,
    package_count BIGINT NOT NULL
);

CREATE TABLE package_set_entries (
    set_key TEXT NOT NULL REFERENCES package_sets (set_key),
    name TEXT NOT NULL,
    architecture TEXT NOT NULL,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    source_version TEXT NOT NULL,
    -- 0 = the bottom layer.
    layer_position INTEGER NOT NULL,
    layer_digest TEXT NOT NULL,
    PRIMARY KEY (set_key, name, architecture)
);
-- "Which images have openssl": by binary package, and by source package (security data is
-- keyed by source).
CREATE INDEX package_set_entries_name ON package_set_entries (name);
CREATE INDEX package_set_entries_source ON package_set_entries (source);

-- An image manifest's inventory (each platform of an index has its own).
CREATE TABLE image_inventories (
    manifest_digest TEXT PRIMARY KEY REFERENCES manifests (digest),
    -- The scanner whose layer scans it was computed from (as `layer_scans.scanner`).
    scanner INTEGER NOT NULL,
    computed_at BIGINT NOT NULL,
    -- 1 when some layer left a dpkg database; 0: not Debian-packaged (nothing to report is not
    -- the same as nothing vulnerable).
    has_dpkg INTEGER NOT NULL CHECK (has_dpkg IN (0, 1)),
    -- 1 when every layer was read; 0: a layer could not be (see `problems`), so the packages
    -- may be short, and nothing is concluded from their absence.
    complete INTEGER NOT NULL CHECK (complete IN (0, 1)),
    -- From os-release: ID, VERSION_ID, VERSION_CODENAME, PRETTY_NAME (untrusted text).
    os_id TEXT,
    os_version TEXT,
    os_codename TEXT,
    os_pretty_name TEXT,
    -- Its packages.
    set_key TEXT NOT NULL REFERENCES package_sets (set_key),
    -- A JSON array of strings: stanzas that could not be read, layers that could not be.
    problems TEXT NOT NULL
);
CREATE INDEX image_inventories_set ON image_inventories (set_key);
