-- Issue 16: security data for the packages of issue 16's inventories, kept in the catalog so
-- that a report and the admission rule read it without the network.
--
-- One import replaces every row of its origin (`debian-tracker` or `osv`) in one transaction:
-- a reader sees the old data or the new, never half of each.

CREATE TABLE security_imports (
    origin TEXT PRIMARY KEY CHECK (origin IN ('debian-tracker', 'osv')),
    imported_at BIGINT NOT NULL,
    -- The file or URL read (untrusted text when shown).
    location TEXT NOT NULL,
    -- The release codenames kept, a JSON array.
    releases TEXT NOT NULL,
    advisories BIGINT NOT NULL,
    -- Entries that could not be read (the rest was imported).
    errors BIGINT NOT NULL
);

-- What an advisory says about a source package in one release. `fixed_version` is set for
-- `fixed` only; `not-affected` is the tracker's `fixed_version: "0"`; `no-fix-yet` is `open`.
CREATE TABLE advisories (
    origin TEXT NOT NULL,
    release TEXT NOT NULL,
    package TEXT NOT NULL,
    id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('fixed', 'not-affected', 'no-fix-yet', 'undetermined')),
    fixed_version TEXT,
    urgency TEXT,
    nodsa TEXT,
    nodsa_reason TEXT,
    PRIMARY KEY (origin, release, package, id)
);
-- "What is known about source S in release R": the report's one lookup.
CREATE INDEX advisories_package ON advisories (release, package);
