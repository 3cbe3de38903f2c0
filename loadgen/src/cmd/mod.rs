//! One module per subcommand: its arguments and its `run`.

pub mod demo;
pub mod fanout;
pub mod fanout_centrifugo;
pub mod latency;
pub mod load;
pub mod peer;
pub mod protocols;
pub mod query;
pub mod seed_tiers;
