//! The peer workload (`shared/bench/peer-workload.md`): its generator and metric, the
//! in-process run through rtdash's aggregation code, and the run through a real edge agent.

pub mod http;
pub mod inprocess;
pub mod workload;
