//! The HTTP server every rtdash listener runs on (gateway, edge agent, core aggregator
//! admin): [`serve`] with the slow-client limits of [`HttpServerConfig`] (`[http]`).

mod body_timeout;
mod config;
mod serve;

pub use body_timeout::{is_body_timeout, BodyTimeout, DeadlineBody};
pub use config::HttpServerConfig;
pub use serve::{serve, ServerMetrics};
