//! The HTTP server every rtdash listener runs on (gateway, edge agent, core aggregator
//! admin): [`serve`] with the slow-client limits of [`HttpServerConfig`] (`[http]`), and the
//! client's address of every request ([`ClientAddr`], behind trusted proxies too).

mod body_timeout;
mod client_addr;
mod config;
mod serve;

pub use body_timeout::{is_body_timeout, BodyTimeout, DeadlineBody};
pub use client_addr::{ClientAddr, ForwardedHeader, TrustedProxies};
pub use config::HttpServerConfig;
pub use serve::{serve, ServerMetrics};
