//! Reading metric windows from QuestDB and deriving served values from them.
//!
//! - [`plan`](mod@plan) and [`derive`](mod@derive), pure: a query names a metric, a dimension
//!   filter, a stat and a window. If the metric keeps the dimension set equal to the filter's
//!   keys, that set's rows are exact for every stat. Otherwise combinable stats (count, sum,
//!   min, max, avg) are combined from the smallest kept set that contains the filter's keys;
//!   coarser windows combine windows the same way. Anything else is refused with the reason:
//!   never a wrong number.
//! - `sql`: the statements. Dimension values and time bounds are bind parameters. Tenant,
//!   metric and dimension-set names are put into the SQL as literals, because QuestDB only
//!   JIT-compiles a symbol filter against a literal (the `RowQuery` docs say why and how
//!   much); they are validated identifiers, and any text that is not made of identifier
//!   characters is bound instead. Otherwise only the configured table name (validated as an
//!   identifier at start) and numbers the gateway formats itself are put into SQL.
//! - [`pool`]: the transport, the PostgreSQL wire protocol (tokio-postgres) with a small pool
//!   of pipelined connections and prepared statements cached per connection, behind a
//!   short-lived [`single_flight`] cache of answers ([`QuestDb::fetch_rows_shared`]).

pub mod derive;
mod error;
pub mod plan;
pub mod pool;
pub mod single_flight;
mod sql;

pub use derive::{derive, derive_bucket, DerivedWindow, WindowRow};
pub use error::QueryError;
pub use plan::{available_stats, format_duration, parse_duration, plan, series_matches, QueryPlan};
pub use pool::{QuestDb, SharedRows};
