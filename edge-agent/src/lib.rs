//! edge-agent library.
