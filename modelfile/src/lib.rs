//! benchfarm-modelfile (placeholder, being written).
