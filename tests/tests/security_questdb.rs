//! QuestDB locked down as deployed (deploy/questdb/auth.conf, issue #16): REST (the console's
//! queries, exports) and ILP over HTTP want the admin password, PostgreSQL refuses the out-of-the-box
//! `admin`/`quest`, the gateway's read-only user reads but cannot write, ILP over TCP is off.
//! Each refusal sits beside the same operation with the right credentials.

use questdb::ingress::{Sender, SenderBuilder, TimestampNanos};
use rtdash_tests::lockdown::LockedQuestDb;

async fn get(url: &str, auth: Option<(&str, &str)>) -> anyhow::Result<reqwest::StatusCode> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut request = client.get(url);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    Ok(request.send().await?.status())
}

/// The answer of `tables()`, read with the admin password.
async fn tables(locked: &LockedQuestDb) -> anyhow::Result<String> {
    let url = format!("http://{}/exec?query=tables()", locked.db.http_addr());
    Ok(reqwest::Client::new()
        .get(url)
        .basic_auth(&locked.admin.0, Some(&locked.admin.1))
        .send()
        .await?
        .text()
        .await?)
}

/// Sends one row to `table` through `sender`.
fn send_row(sender: &mut Sender, table: &str) -> questdb::Result<()> {
    let mut buffer = sender.new_buffer();
    buffer
        .table(table)?
        .column_i64("v", 1)?
        .at(TimestampNanos::now())?;
    sender.flush(&mut buffer)
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_console_and_ilp_over_http_want_the_password() -> anyhow::Result<()> {
    let locked = LockedQuestDb::start_ready().await?;
    let http = locked.db.http_addr();
    let admin = (locked.admin.0.as_str(), locked.admin.1.as_str());
    let exec = format!("http://{http}/exec?query=select%201");
    assert_eq!(get(&exec, None).await?, 401);
    assert_eq!(get(&exec, Some(("admin", "quest"))).await?, 401);
    assert_eq!(get(&exec, Some(admin)).await?, 200);
    // The web console's page itself is static and loads, then asks for the user and
    // password; its queries go through /exec (above) and exports through /exp.
    let export = format!("http://{http}/exp?query=select%201");
    assert_eq!(get(&export, None).await?, 401);
    assert_eq!(get(&export, Some(admin)).await?, 200);

    // ILP over HTTP, with the client and settings the aggregator uses.
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        let conf = format!("http::addr={http};protocol_version=2;retry_timeout=0;");
        let mut anonymous = SenderBuilder::from_conf(&conf)?.build()?;
        assert!(send_row(&mut anonymous, "sec_anon").is_err());
        let mut sender = SenderBuilder::from_conf(&conf)?
            .username(admin.0)?
            .password(admin.1)?
            .build()?;
        send_row(&mut sender, "sec_admin")?;
        Ok(())
    })?;
    let body = tables(&locked).await?;
    assert!(body.contains("sec_admin"), "{body}");
    assert!(!body.contains("sec_anon"), "{body}");

    // ILP over TCP has no password in QuestDB OSS: off.
    assert!(std::net::TcpStream::connect(locked.db.ilp_tcp_addr()).is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_wants_the_password_and_the_gateway_user_only_reads() -> anyhow::Result<()> {
    let locked = LockedQuestDb::start_ready().await?;
    let pool = |user: &str, password: &str| {
        let config = gateway::config::QuestDbConfig {
            pg_addr: locked.db.pg_addr().to_string(),
            user: user.to_owned(),
            password: password.into(),
            table: "sec_windows".to_owned(),
            pool_size: 1,
            ..Default::default()
        };
        let tasks = gateway::tasks::Tasks::new(tokio_util::sync::CancellationToken::new());
        gateway::query::pool::QuestDb::new(config, &Default::default(), &Default::default(), tasks)
    };
    // Out of the box QuestDB lets in admin/quest: not here.
    assert!(!pool("admin", "quest").ping().await);
    assert!(!pool(&locked.readonly.0, "wrong").ping().await);
    let admin = pool(&locked.admin.0, &locked.admin.1);
    assert!(admin.ping().await);
    admin.ensure_tables().await?;
    // The read-only user (the gateway's) connects and queries, but cannot create a table.
    let readonly = pool(&locked.readonly.0, &locked.readonly.1);
    assert!(readonly.ping().await);
    let ro_table = gateway::config::QuestDbConfig {
        pg_addr: locked.db.pg_addr().to_string(),
        user: locked.readonly.0.clone(),
        password: locked.readonly.1.as_str().into(),
        table: "sec_readonly_cannot_create".to_owned(),
        pool_size: 1,
        ..Default::default()
    };
    let tasks = gateway::tasks::Tasks::new(tokio_util::sync::CancellationToken::new());
    let readonly_create = gateway::query::pool::QuestDb::new(
        ro_table,
        &Default::default(),
        &Default::default(),
        tasks,
    );
    assert!(readonly_create.ensure_tables().await.is_err());
    let body = tables(&locked).await?;
    assert!(body.contains("sec_windows"), "{body}");
    assert!(!body.contains("sec_readonly_cannot_create"), "{body}");
    Ok(())
}
