//! gateway library.
