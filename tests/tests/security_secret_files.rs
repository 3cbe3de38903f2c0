//! Passwords as files (docs/security.md, "Secrets"): a core aggregator against NATS and QuestDB
//! locked down as deployed reads both of its passwords from files (`RTDASH_NATS__PASSWORD_FILE`,
//! `RTDASH_QUESTDB__PASSWORD_FILE`) and becomes ready, neither password in its environment;
//! with a wrong password in either file, or a file other users can read, it does not start and
//! says why.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rtdash_tests::aggregator::{run_command, Aggregator, AggregatorOptions};
use rtdash_tests::lockdown::{LockedNats, LockedQuestDb};
use rtdash_tests::unique_name;

/// Writes `password` and a newline (as the deploy scripts do) to `<dir>/<name>` with `mode`.
fn password_file(dir: &Path, name: &str, password: &str, mode: u32) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, format!("{password}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(path)
}

/// An aggregator as NATS user `core-aggregator` and QuestDB's HTTP user, the passwords read from
/// `nats_file` and `questdb_file`; 2 s for NATS and QuestDB to accept it.
fn options(
    nats: &LockedNats,
    questdb: &LockedQuestDb,
    nats_file: &Path,
    questdb_file: &Path,
) -> AggregatorOptions {
    let mut options = AggregatorOptions::new(
        &unique_name("secret_files"),
        &nats.server.url(),
        &questdb.db.http_addr().to_string(),
        &unique_name("secret_windows"),
    );
    options.env.extend(
        [
            ("RTDASH_NATS__USER", "core-aggregator".to_owned()),
            (
                "RTDASH_NATS__PASSWORD_FILE",
                nats_file.display().to_string(),
            ),
            ("RTDASH_QUESTDB__USER", questdb.admin.0.clone()),
            (
                "RTDASH_QUESTDB__PASSWORD_FILE",
                questdb_file.display().to_string(),
            ),
            ("RTDASH_NATS__CONNECT_TIMEOUT_MS", "2000".to_owned()),
        ]
        .map(|(key, value)| (key.to_owned(), value)),
    );
    options
}

/// `core-aggregator setup` (the start of `run`: configuration, NATS, topology, QuestDB
/// table; then it exits) with `options`, which must fail: its output.
fn refused_setup(options: &AggregatorOptions) -> String {
    match run_command(options, &["setup"]) {
        Ok(output) => panic!("setup succeeded:\n{output}"),
        Err(err) => format!("{err:#}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_reads_its_passwords_from_files_and_a_wrong_one_is_refused() -> anyhow::Result<()>
{
    let nats = tokio::task::block_in_place(LockedNats::start)?;
    let questdb = LockedQuestDb::start_ready().await?;
    let dir = tempfile::tempdir()?;
    let nats_password = nats.passwords["core-aggregator"].as_str();
    let nats_file = password_file(dir.path(), "nats-password", nats_password, 0o600)?;
    let questdb_file = password_file(dir.path(), "questdb-password", &questdb.admin.1, 0o600)?;

    // Ready needs NATS (the topology) and QuestDB (the tables, then `select 1` answering).
    let mut aggregator = tokio::task::block_in_place(|| {
        Aggregator::start(options(&nats, &questdb, &nats_file, &questdb_file))
    })?;
    let pid = aggregator.pid().expect("running");
    let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ.contains(&format!(
            "RTDASH_NATS__PASSWORD_FILE={}",
            nats_file.display()
        )),
        "the aggregator's environment names the file"
    );
    assert!(
        !environ.contains(nats_password) && !environ.contains(questdb.admin.1.as_str()),
        "no password in the aggregator's environment"
    );
    assert!(aggregator.stop(), "{}", aggregator.log_tail(20));

    let wrong_nats = password_file(dir.path(), "wrong-nats", "not-the-password", 0o600)?;
    let output = refused_setup(&options(&nats, &questdb, &wrong_nats, &questdb_file));
    assert!(
        output.to_lowercase().contains("authorization violation"),
        "{output}"
    );

    let wrong_questdb = password_file(dir.path(), "wrong-questdb", "not-the-password", 0o600)?;
    let output = refused_setup(&options(&nats, &questdb, &nats_file, &wrong_questdb));
    assert!(output.contains("QuestDB wants credentials"), "{output}");

    let open = password_file(dir.path(), "open-nats", nats_password, 0o644)?;
    let output = refused_setup(&options(&nats, &questdb, &open, &questdb_file));
    assert!(
        output.contains("`nats.password_file`")
            && output.contains(&open.display().to_string())
            && output.contains("chmod 600")
            && !output.contains(nats_password),
        "{output}"
    );
    Ok(())
}
