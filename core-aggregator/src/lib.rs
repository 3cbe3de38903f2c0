//! core-aggregator library.
