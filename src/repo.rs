//! The deploy repository's own configuration, `.tollgate.yaml`.
