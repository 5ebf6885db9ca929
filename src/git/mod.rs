//! The deploy repository through git2: changed files between revisions, blobs at a commit.
