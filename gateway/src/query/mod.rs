//! Reading metric windows from QuestDB and deriving served values from them.
//!
//! - [`plan`](mod@plan), [`resolution`], [`tiers`], [`derive`](mod@derive) and [`group`],
//!   pure: a query names a metric, a dimension filter, a stat, a window (or `auto`) and
//!   optionally dimensions to group by. Any stat is served for any window that is a multiple
//!   of the metric's and any filter on its dimensions, by merging the stored rows (and their
//!   sketches, `Sketch::from_state`) of the smallest kept dimension set that holds the filtered and
//!   grouped dimensions, read from the coarsest stored resolution (base windows or a rollup
//!   tier) that divides the window and still retains the range. What cannot be answered
//!   (a dimension the metric does not have, a window that is not a multiple, a range older
//!   than every retention) is refused with the reason: never a wrong number.
//! - `sql`: the statements. Dimension values and time bounds are bind parameters. Tenant,
//!   metric and dimension-set names are put into the SQL as literals, because QuestDB only
//!   JIT-compiles a symbol filter against a literal (the `RowQuery` docs say why and how
//!   much); they are validated identifiers, and any text that is not made of identifier
//!   characters is bound instead. Otherwise only the configured table names (validated as
//!   identifiers at start) and numbers the gateway formats itself are put into SQL.
//! - [`pool`]: the transport, the PostgreSQL wire protocol (tokio-postgres) with a small pool
//!   of pipelined connections and prepared statements cached per connection; [`rows`] and
//!   [`cache`]: the rows of windows that no longer change, decoded once and kept (bounded by
//!   bytes); answers shared by identical concurrent queries through a short-lived
//!   [`single_flight`] cache ([`QuestDb::shared_answer`]).

pub mod cache;
pub mod derive;
mod error;
pub mod fold;
pub mod group;
pub mod plan;
pub mod pool;
pub mod resolution;
pub mod rows;
pub mod single_flight;
mod sql;
pub mod tiers;

pub use derive::{derive, derive_bucket, DerivedWindow, Dims, WindowRow};
pub use error::QueryError;
pub use fold::{Fold, Merged};
pub use group::{derive_groups, DerivedSeries};
pub use plan::{available_stats, plan, series_matches, Ask, QueryPlan, WindowAsk};
pub use pool::QuestDb;
pub use resolution::{format_duration, parse_duration};
pub use rows::{immutable_before, RowSet};
pub use sql::SeriesScope;
