//! benchfarm-suite (placeholder, being written).
