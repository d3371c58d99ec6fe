//! End-to-end tests of benchfarm; see `tests/`. This library is empty on purpose.
