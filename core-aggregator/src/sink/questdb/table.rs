//! The windows table and QuestDB's REST endpoint: creating the table at start, and the
//! readiness probe.

use crate::config::{Config, QuestDbConfig};
use crate::error::{Error, QuestDbError};
use rtdash_shared::schema::create_table_sql_for;
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
            "{status}: QuestDB wants credentials, check `questdb.user` and `questdb.password`"
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

/// Creates the windows table if it does not exist, retrying for up to `patience`.
pub async fn ensure_table(config: &Config, patience: Duration) -> Result<(), Error> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|err| Error::QuestDb {
            addr: config.questdb.http.clone(),
            source: QuestDbError::Request(err),
        })?;
    let sql = create_table_statement(&config.questdb.table);
    let deadline = Instant::now() + patience;
    loop {
        match exec(&http, &config.questdb, &sql).await {
            Ok(_) => return Ok(()),
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
}
