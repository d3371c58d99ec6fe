//! benchfarm-report (placeholder, being written).
