//! Where window versions go: QuestDB rows and live updates on core NATS.

pub mod live;
pub mod questdb;
