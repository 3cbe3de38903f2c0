//! The windows tables and QuestDB's REST endpoint: creating (or upgrading) the base and tier
//! tables at start, and the readiness probe.

use crate::config::{Config, QuestDbConfig};
use crate::error::{Error, QuestDbError};
use rtdash_runtime::rollups::RollupsConfig;
use rtdash_shared::rollup::Partitioning;
use rtdash_shared::schema::{
    add_state_column_sql, create_table_sql_for, create_table_sql_with, set_ttl_sql, tier_table,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `CREATE TABLE` statement for `table` (the shared schema).
pub fn create_table_statement(table: &str) -> String {
    create_table_sql_for(table)
}

/// Runs `sql` through the `/exec` of `questdb` (with basic auth when it has credentials),
/// returning its JSON answer; an `error` in it is an error.
pub async fn exec(
    http: &reqwest::Client,
    questdb: &QuestDbConfig,
    sql: &str,
) -> Result<serde_json::Value, QuestDbError> {
    let url =
        reqwest::Url::parse_with_params(&format!("http://{}/exec", questdb.http), [("query", sql)])
            .map_err(QuestDbError::Address)?;
    let mut request = http.get(url);
    if let Some((user, password)) = questdb.credentials() {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.map_err(QuestDbError::Request)?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(QuestDbError::Refused(format!(
            "{status}: QuestDB wants credentials, check `questdb.user` and `questdb.password` (or `questdb.password_file`)"
        )));
    }
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|source| QuestDbError::NotJson { status, source })?;
    if let Some(error) = body.get("error") {
        return Err(QuestDbError::Refused(error.to_string()));
    }
    if !status.is_success() {
        return Err(QuestDbError::Refused(format!("{status}: {body}")));
    }
    Ok(body)
}

/// The tables windows are written to: the base table, then one per tier in the order of
/// [`crate::state::TierSet`] (a row of tier `i` goes to table `i + 1`).
pub fn table_names(table: &str, rollups: &RollupsConfig) -> Vec<String> {
    let mut names = vec![table.to_owned()];
    names.extend(rollups.tiers().iter().map(|tier| tier_table(table, tier)));
    names
}

/// The statements that create the base table and the tier tables with their retention, or
/// bring tables created by an older release up to date (the `state` column, the TTL),
/// keeping their data.
pub fn table_statements(table: &str, rollups: &RollupsConfig) -> Vec<String> {
    let mut tables = vec![(
        table.to_owned(),
        Partitioning::Day,
        rollups.base_retention_days,
    )];
    for tier in rollups.tiers() {
        tables.push((
            tier_table(table, &tier),
            tier.partitioning(),
            rollups.retention_days(&tier),
        ));
    }
    let mut statements = Vec::new();
    for (name, partitioning, days) in tables {
        statements.push(create_table_sql_with(&name, partitioning, Some(days)));
        statements.push(add_state_column_sql(&name));
        statements.push(set_ttl_sql(&name, partitioning, days));
    }
    statements
}

/// Creates the windows tables if they do not exist and upgrades them in place (see
/// [`table_statements`]), retrying for up to `patience`.
pub async fn ensure_table(config: &Config, patience: Duration) -> Result<(), Error> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|err| Error::QuestDb {
            addr: config.questdb.http.clone(),
            source: QuestDbError::Request(err),
        })?;
    let deadline = Instant::now() + patience;
    for sql in table_statements(&config.questdb.table, &config.rollups) {
        loop {
            match exec(&http, &config.questdb, &sql).await {
                Ok(_) => break,
                Err(source) if Instant::now() >= deadline => {
                    return Err(Error::QuestDb {
                        addr: config.questdb.http.clone(),
                        source,
                    })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
    Ok(())
}

/// Keeps `flag` telling whether QuestDB answers `select 1` (checked every `every`), for
/// `/readyz`, until `stop`.
pub async fn probe(
    questdb: QuestDbConfig,
    flag: Arc<AtomicBool>,
    every: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    else {
        return;
    };
    loop {
        let ok = exec(&http, &questdb, "select 1").await.is_ok();
        flag.store(ok, Ordering::SeqCst);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::schema::{create_table_sql, METRICS_TABLE};

    #[test]
    fn create_statement_uses_the_configured_table() {
        let sql = create_table_statement("t_42");
        assert!(
            sql.starts_with("CREATE TABLE IF NOT EXISTS t_42 ("),
            "{sql}"
        );
        assert!(sql.contains("DEDUP UPSERT KEYS(ts, tenant, metric, series)"));
        assert_eq!(create_table_statement(METRICS_TABLE), create_table_sql());
    }

    #[test]
    fn every_table_is_created_and_upgraded_with_its_retention() {
        let rollups = RollupsConfig::default();
        assert_eq!(
            table_names("w", &rollups),
            ["w".to_owned(), "w_1h".to_owned(), "w_1d".to_owned()]
        );
        let sql = table_statements("w", &rollups);
        assert_eq!(sql.len(), 9);
        assert!(
            sql[0].contains("CREATE TABLE IF NOT EXISTS w (")
                && sql[0].contains("PARTITION BY DAY TTL 7 DAYS")
        );
        assert_eq!(
            sql[1],
            "ALTER TABLE w ADD COLUMN IF NOT EXISTS state VARCHAR"
        );
        assert_eq!(sql[2], "ALTER TABLE w SET TTL 7 DAYS");
        assert!(sql[3].contains("w_1h (") && sql[3].contains("PARTITION BY DAY TTL 90 DAYS"));
        assert!(sql[6].contains("w_1d (") && sql[6].contains("PARTITION BY MONTH TTL 24 MONTHS"));
        assert_eq!(sql[8], "ALTER TABLE w_1d SET TTL 24 MONTHS");
    }
}
