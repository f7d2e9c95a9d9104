//! Container capabilities (placeholder, being written).
