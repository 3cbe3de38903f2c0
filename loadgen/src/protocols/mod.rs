//! The producers' protocols for `rtdash-loadgen protocols` ([`crate::cmd::protocols`]).

pub mod bodies;
pub mod udp;
