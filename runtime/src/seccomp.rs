//! seccomp filters (placeholder, being written).
