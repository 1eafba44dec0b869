//! Interop tests of `cryptbak export --tar` (to be written).
