//! Where window versions go: QuestDB rows, live updates on core NATS, and the side streams
//! (late data and dead letters).

pub mod late;
pub mod live;
pub mod questdb;
