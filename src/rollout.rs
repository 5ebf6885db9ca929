//! Merged but never rolled out: the deploy repository against live state (issue 6).
