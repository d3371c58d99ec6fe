//! benchfarm-engine (placeholder, being written).
