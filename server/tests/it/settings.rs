//! ALTER SYSTEM: a setting's default for every session, kept through Raft
//! and across restarts, shown by SHOW, pg_settings and ciab.settings.

use ciab_sql_tests::connect;

use crate::{rows, sqlstate, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_system_sets_defaults_for_every_session_and_survives_restarts() {
    let mut server = start();
    let admin = connect(&server.conn_str("ciab")).await.unwrap();
    let other = connect(&server.conn_str("ciab")).await.unwrap();
    admin
        .batch_execute(
            "CREATE SCHEMA app; CREATE TABLE app.only_here (x integer); \
             INSERT INTO app.only_here VALUES (7)",
        )
        .await
        .unwrap();

    admin
        .batch_execute("ALTER SYSTEM SET statement_timeout = 120000")
        .await
        .unwrap();
    // Sessions already open see it at once, unless they SET their own.
    assert_eq!(rows(&other, "SHOW statement_timeout").await, ["2min"]);
    other
        .batch_execute("SET statement_timeout = '1s'")
        .await
        .unwrap();
    assert_eq!(rows(&other, "SHOW statement_timeout").await, ["1s"]);
    assert_eq!(rows(&admin, "SHOW statement_timeout").await, ["2min"]);
    other
        .batch_execute("RESET statement_timeout")
        .await
        .unwrap();
    assert_eq!(rows(&other, "SHOW statement_timeout").await, ["2min"]);
    assert_eq!(
        rows(
            &other,
            "SELECT setting, source, reset_val FROM pg_settings WHERE name = 'statement_timeout'"
        )
        .await,
        ["2min|configuration file|2min"]
    );
    assert_eq!(
        rows(
            &other,
            "SELECT value, \"default\", scope, changed_at IS NOT NULL FROM ciab.settings \
             WHERE name = 'statement_timeout'"
        )
        .await,
        ["2min|0|cluster|t"]
    );

    let all = rows(&other, "SHOW ALL").await;
    assert!(
        all.iter().any(|row| row
            == "statement_timeout|2min|Sets the maximum allowed duration of any statement."),
        "{all:?}"
    );

    // search_path applies to the sessions that start after the change.
    admin
        .batch_execute("ALTER SYSTEM SET search_path = app, public")
        .await
        .unwrap();
    let fresh = connect(&server.conn_str("ciab")).await.unwrap();
    assert_eq!(rows(&fresh, "SELECT x FROM only_here").await, ["7"]);

    // Refused: what cannot change, what does not exist, bad values, inside
    // a block, and SET GLOBAL, which is not PostgreSQL's.
    for (sql, state) in [
        ("ALTER SYSTEM SET server_version = '1'", "55P02"),
        ("ALTER SYSTEM RESET max_index_keys", "55P02"),
        ("ALTER SYSTEM SET no_such_setting = 1", "42704"),
        ("ALTER SYSTEM SET statement_timeout = 'soon'", "22023"),
        ("ALTER SYSTEM SET DateStyle = 'German'", "0A000"),
        ("ALTER SYSTEM SET", "42601"),
        ("SET GLOBAL statement_timeout = 1", "42601"),
        ("CREATE SCHEMA ciab", "42P06"),
    ] {
        let e = admin.batch_execute(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e), state, "{sql}: {e}");
    }
    admin.batch_execute("BEGIN").await.unwrap();
    let e = admin
        .batch_execute("ALTER SYSTEM SET application_name = 'x'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "25001", "{e}");
    admin.batch_execute("ROLLBACK").await.unwrap();
    // A query string of several statements is a transaction block too:
    // refused whole, as PostgreSQL undoes the statements before it.
    for sql in [
        "ALTER SYSTEM SET application_name = 'x'; SELECT 1",
        "CREATE TABLE not_made (a int); ALTER SYSTEM SET application_name = 'x'",
        "CREATE TABLE not_made (a int); INSERT INTO not_made VALUES (1); VACUUM not_made",
    ] {
        let e = admin.batch_execute(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e), "25001", "{sql}: {e}");
    }
    // After a comment, it is still ALTER SYSTEM.
    admin
        .batch_execute("/* why */ ALTER SYSTEM SET application_name = 'x'")
        .await
        .unwrap();
    admin
        .batch_execute("-- undo\nALTER SYSTEM RESET application_name")
        .await
        .unwrap();
    let e = admin
        .batch_execute("SELECT * FROM not_made")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42P01", "{e}");
    assert_eq!(rows(&admin, "SHOW application_name").await, [""]);

    // Kept across a clean restart and a crash (log replay).
    drop((admin, other, fresh));
    server.stop().unwrap();
    server.restart().unwrap();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    assert_eq!(rows(&client, "SHOW statement_timeout").await, ["2min"]);
    client
        .batch_execute("ALTER SYSTEM SET application_name = 'kept'")
        .await
        .unwrap();
    drop(client);
    server.kill9().unwrap();
    server.restart().unwrap();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    assert_eq!(rows(&client, "SHOW application_name").await, ["kept"]);
    assert_eq!(rows(&client, "SELECT x FROM only_here").await, ["7"]);

    client
        .batch_execute("ALTER SYSTEM RESET statement_timeout")
        .await
        .unwrap();
    assert_eq!(rows(&client, "SHOW statement_timeout").await, ["0"]);
    client
        .batch_execute("ALTER SYSTEM RESET ALL")
        .await
        .unwrap();
    assert_eq!(rows(&client, "SHOW application_name").await, [""]);
    assert_eq!(
        rows(
            &client,
            "SELECT count(*) FROM ciab.settings WHERE changed_at IS NOT NULL"
        )
        .await,
        ["0"]
    );
}
