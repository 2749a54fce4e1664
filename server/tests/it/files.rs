//! Files as tables, end to end over the wire: `read_parquet`, `read_csv`,
//! `files()`, `CREATE EXTERNAL TABLE` and COPY to and from files, on the
//! node's disk, in the cluster's own object storage (`s3://` by default)
//! and in moto's S3 server standing in for an external service.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ciab_sql_tests::connect;
use tokio_postgres::Client;

use crate::clients::python;
use crate::{rows, sqlstate, start};

/// Rows of a table with the types files have to carry.
const SETUP: &str = "
    CREATE TABLE trips (id int PRIMARY KEY, rider text, fare numeric(8,2), at timestamptz, paid boolean);
    INSERT INTO trips VALUES
        (1, 'ann', 12.50, '2026-11-30 08:00:00+00', true),
        (2, 'bob', 7.25, '2026-11-30 09:30:00+00', false),
        (3, 'o''neil', NULL, '2026-12-01 10:00:00+00', true);
    CREATE TABLE loaded (id int PRIMARY KEY, rider text, fare numeric(8,2), at timestamptz, paid boolean)";

const TRIPS: &str = "SELECT id, rider, fare, at, paid FROM trips ORDER BY id";

async fn error_of(client: &Client, sql: &str) -> String {
    match client.simple_query(sql).await {
        Ok(_) => panic!("{sql}: succeeded, an error was expected"),
        Err(e) => {
            // Shown with a failing assertion on the SQLSTATE.
            eprintln!("{sql}: {:?}", e.as_db_error().map(|e| e.message()));
            sqlstate(&e)
        }
    }
}

/// Loads `loaded` from `from` with `copy` and checks it holds the trips.
async fn round_trip(client: &Client, copy: &str) {
    rows(client, "DELETE FROM loaded").await;
    let tag = client
        .simple_query(copy)
        .await
        .unwrap_or_else(|e| panic!("{copy}: {e}"));
    assert!(
        matches!(
            tag.last(),
            Some(tokio_postgres::SimpleQueryMessage::CommandComplete(3))
        ),
        "{copy}: {tag:?}"
    );
    assert_eq!(
        rows(
            client,
            "SELECT id, rider, fare, at, paid FROM loaded ORDER BY id"
        )
        .await,
        rows(client, TRIPS).await,
        "{copy}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_files_are_tables_and_copy_targets() {
    let mut server = start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client.batch_execute(SETUP).await.unwrap();

    // Parquet: written by COPY, read as a table and loaded back by COPY.
    rows(&client, &format!("COPY trips TO '{d}/trips.parquet'")).await;
    assert_eq!(
        rows(
            &client,
            &format!(
                "SELECT count(*), sum(fare), max(rider) FROM read_parquet('{d}/trips.parquet')"
            )
        )
        .await,
        ["3|19.75|o'neil"]
    );
    round_trip(&client, &format!("COPY loaded FROM '{d}/trips.parquet'")).await;

    // CSV written with a header, read with its header, and PostgreSQL's CSV
    // format loaded by the same parser as COPY FROM STDIN, file by file.
    rows(&client, &format!("COPY (SELECT id, rider FROM trips WHERE id < 3) TO '{d}/csv/a.csv' WITH (FORMAT csv, HEADER true)")).await;
    assert_eq!(
        rows(
            &client,
            &format!("SELECT id + 1, rider FROM read_csv('{d}/csv/a.csv') ORDER BY id")
        )
        .await,
        ["2|ann", "3|bob"]
    );
    std::fs::write(dir.path().join("csv/b.csv"), "id,rider\n3,\"o'neil\"").unwrap();
    std::fs::write(dir.path().join("csv/notes.txt"), "not a CSV file").unwrap();
    rows(&client, "DELETE FROM loaded").await;
    rows(
        &client,
        &format!("COPY loaded (id, rider) FROM '{d}/csv/*.csv' WITH (FORMAT csv, HEADER true)"),
    )
    .await;
    assert_eq!(
        rows(&client, "SELECT id, rider FROM loaded ORDER BY id").await,
        ["1|ann", "2|bob", "3|o'neil"]
    );
    // A bad row fails the whole load: nothing of it stays.
    std::fs::write(dir.path().join("bad.csv"), "4,dan\nfive,eve\n").unwrap();
    assert_eq!(
        error_of(
            &client,
            &format!("COPY loaded (id, rider) FROM '{d}/bad.csv' WITH (FORMAT csv)")
        )
        .await,
        "22P02"
    );
    assert_eq!(rows(&client, "SELECT count(*) FROM loaded").await, ["3"]);
    // A ROLLBACK takes a COPY FROM a file back.
    client
        .batch_execute(&format!(
            "BEGIN; DELETE FROM loaded; COPY loaded FROM '{d}/trips.parquet'; ROLLBACK"
        ))
        .await
        .unwrap();
    assert_eq!(rows(&client, "SELECT count(*) FROM loaded").await, ["3"]);

    // JSON lines, read as documents.
    rows(
        &client,
        &format!("COPY (SELECT id, rider FROM trips) TO '{d}/trips.json'"),
    )
    .await;
    assert_eq!(
        rows(
            &client,
            &format!(
                "SELECT doc->>'rider' FROM read_ndjson('{d}/trips.json') ORDER BY (doc->>'id')::int"
            )
        )
        .await,
        ["ann", "bob", "o'neil"]
    );

    // files(): a row per file, its content as bytea, read only when asked.
    assert_eq!(
        rows(&client, &format!("SELECT substr(path, {}), size, length(content), content = CAST('not a CSV file' AS bytea) FROM files('{d}/csv/') ORDER BY path", d.len() + 2)).await,
        ["csv/a.csv|21|21|f", "csv/b.csv|19|19|f", "csv/notes.txt|14|14|t"]
    );
    assert_eq!(
        rows(
            &client,
            &format!("SELECT count(*) FROM files('{d}/nothing-here/')")
        )
        .await,
        ["0"]
    );

    // An external table lists its files at every query, and is in the
    // catalog after a restart.
    rows(
        &client,
        &format!("COPY (SELECT * FROM trips WHERE id = 1) TO '{d}/parts/1.parquet'"),
    )
    .await;
    rows(
        &client,
        &format!("CREATE EXTERNAL TABLE trip_files STORED AS PARQUET LOCATION '{d}/parts/'"),
    )
    .await;
    rows(&client, &format!("CREATE EXTERNAL TABLE riders (n bigint, who varchar) STORED AS CSV LOCATION '{d}/csv/a.csv' OPTIONS ('format.has_header' 'true')")).await;
    assert_eq!(
        rows(&client, "SELECT count(*) FROM trip_files").await,
        ["1"]
    );
    rows(
        &client,
        &format!("COPY (SELECT * FROM trips WHERE id > 1) TO '{d}/parts/2.parquet'"),
    )
    .await;
    assert_eq!(
        rows(&client, "SELECT count(*), sum(fare) FROM trip_files").await,
        ["3|19.75"]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT t.rider FROM trips t JOIN riders r ON r.n = t.id WHERE r.who = 'bob'"
        )
        .await,
        ["bob"]
    );
    server.stop().unwrap();
    server.restart().unwrap();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    assert_eq!(
        rows(&client, "SELECT count(*) FROM trip_files").await,
        ["3"]
    );
    assert_eq!(
        rows(&client, "SELECT table_name, table_type FROM information_schema.tables WHERE table_name IN ('riders', 'trip_files') ORDER BY 1").await,
        ["riders|VIEW", "trip_files|VIEW"]
    );
    rows(&client, "DROP VIEW riders").await;

    // Clear errors, and the session goes on.
    let missing = format!("SELECT * FROM read_parquet('{d}/missing.parquet')");
    assert_eq!(error_of(&client, &missing).await, "58P01");
    assert_eq!(
        error_of(&client, &format!("COPY loaded FROM '{d}/missing.csv'")).await,
        "58P01"
    );
    assert_eq!(
        error_of(&client, "COPY loaded FROM 'relative.csv'").await,
        "42602"
    );
    assert_eq!(
        error_of(&client, &format!("COPY trips TO '{d}/t.txt'")).await,
        "0A000"
    );
    assert_eq!(
        error_of(
            &client,
            &format!("SELECT * FROM read_parquet('{d}/csv/a.csv')")
        )
        .await,
        "22000"
    );
    assert_eq!(
        error_of(
            &client,
            "SELECT * FROM read_csv('http://example.invalid/x.csv')"
        )
        .await,
        "0A000"
    );
    assert_eq!(
        error_of(
            &client,
            &format!("CREATE EXTERNAL TABLE x STORED AS AVRO LOCATION '{d}/x'")
        )
        .await,
        "0A000"
    );
    assert_eq!(rows(&client, "SELECT count(*) FROM trips").await, ["3"]);
}

/// Compressed files by their names (gzip, bzip2, xz and zstd): written
/// compressed by COPY TO and read by the command-line tool, compressed by
/// the tool and read by read_csv, read_ndjson and COPY FROM, also from a
/// directory named alone; JSON lines
/// loaded by COPY FROM, keys to columns; and Hive-style directories read
/// as columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_files_and_json_lines_load_and_round_trip() {
    let server = start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client.batch_execute(SETUP).await.unwrap();
    let tools = [
        ("gz", "gzip"),
        ("bz2", "bzip2"),
        ("xz", "xz"),
        ("zst", "zstd"),
    ];

    for (suffix, tool) in tools {
        let file = format!("{d}/trips.csv.{suffix}");
        let copy = format!("COPY trips TO '{file}' WITH (FORMAT csv, HEADER true)");
        rows(&client, &copy).await;
        let out = Command::new(tool).args(["-dc", &file]).output().unwrap();
        assert!(out.status.success(), "{tool} -dc {file}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.starts_with("id,rider,fare,at,paid\n"), "{text}");
        assert_eq!(text.lines().count(), 4, "{text}");
        let sum = format!("SELECT count(*), sum(fare) FROM read_csv('{file}')");
        assert_eq!(rows(&client, &sum).await, ["3|19.75"], "{file}");
        let load = format!("COPY loaded FROM '{file}' WITH (FORMAT csv, HEADER true)");
        round_trip(&client, &load).await;
    }

    let lines = "{\"id\": 1, \"doc\": {\"a\": [1, 2]}, \"note\": \"é\"}\n\
                 {\"id\": 2, \"doc\": null, \"other\": true}\n\n{\"id\": 3}\n";
    std::fs::write(dir.path().join("docs.json"), lines).unwrap();
    for (suffix, tool) in tools {
        let status = Command::new(tool)
            .args(["-kq", &format!("{d}/docs.json")])
            .status()
            .unwrap();
        assert!(status.success(), "{tool}");
        let read = format!(
            "SELECT count(*), sum((doc->>'id')::int) FROM read_ndjson('{d}/docs.json.{suffix}')"
        );
        assert_eq!(rows(&client, &read).await, ["3|6"], "{suffix}");
    }
    // A directory named alone: each file read as its name says.
    for (ids, name) in [("1, 2", "a.csv.gz"), ("3", "b.csv.gz")] {
        let copy = format!(
            "COPY (SELECT * FROM trips WHERE id IN ({ids})) TO '{d}/gz/{name}' \
             WITH (FORMAT csv, HEADER true)"
        );
        rows(&client, &copy).await;
    }
    let sum = format!("SELECT count(*), sum(fare) FROM read_csv('{d}/gz/')");
    assert_eq!(rows(&client, &sum).await, ["3|19.75"]);
    round_trip(
        &client,
        &format!("COPY loaded FROM '{d}/gz/' WITH (FORMAT csv, HEADER true)"),
    )
    .await;
    std::fs::create_dir(dir.path().join("lines")).unwrap();
    std::fs::copy(
        dir.path().join("docs.json.gz"),
        dir.path().join("lines/a.json.gz"),
    )
    .unwrap();
    std::fs::copy(
        dir.path().join("docs.json"),
        dir.path().join("lines/b.json"),
    )
    .unwrap();
    let read = format!("SELECT count(*) FROM read_ndjson('{d}/lines/')");
    assert_eq!(rows(&client, &read).await, ["6"]);
    // One table of CSV files compressed in different ways is refused.
    rows(
        &client,
        &format!("COPY trips TO '{d}/gz/c.csv' WITH (FORMAT csv, HEADER true)"),
    )
    .await;
    let mixed = format!("SELECT count(*) FROM read_csv('{d}/gz/')");
    assert_eq!(error_of(&client, &mixed).await, "0A000");

    // COPY FROM JSON lines: each column its key's value, NULL where the
    // key is missing; other keys ignored; jsonb takes the value itself.
    rows(
        &client,
        "CREATE TABLE docs (id int PRIMARY KEY, doc jsonb, note text)",
    )
    .await;
    rows(&client, &format!("COPY docs FROM '{d}/docs.json.zst'")).await;
    assert_eq!(
        rows(
            &client,
            "SELECT id, doc::text, doc IS NULL, note FROM docs ORDER BY id"
        )
        .await,
        ["1|{\"a\": [1, 2]}|f|é", "2|null|f|NULL", "3|NULL|t|NULL"]
    );
    // What COPY TO writes as JSON, COPY FROM loads: plain and compressed.
    for file in ["trips.json", "trips.json.gz"] {
        rows(&client, &format!("COPY trips TO '{d}/{file}'")).await;
        round_trip(&client, &format!("COPY loaded FROM '{d}/{file}'")).await;
    }
    rows(&client, "CREATE TABLE blobs (id int, b bytea)").await;
    rows(
        &client,
        &format!("COPY (SELECT 1 AS id, '\\xdeadbeef'::bytea AS b) TO '{d}/blobs.json'"),
    )
    .await;
    rows(&client, &format!("COPY blobs FROM '{d}/blobs.json'")).await;
    assert_eq!(
        rows(&client, "SELECT id, encode(b, 'hex') FROM blobs").await,
        ["1|deadbeef"]
    );

    // A directory of Hive-style subdirectories: their names are columns.
    for (month, id) in [("11", 1), ("12", 3)] {
        let part = format!("{d}/events/year=2026/month={month}/part.parquet");
        let copy = format!("COPY (SELECT id, rider FROM trips WHERE id = {id}) TO '{part}'");
        rows(&client, &copy).await;
    }
    let events = format!("read_parquet('{d}/events/')");
    assert_eq!(
        rows(
            &client,
            &format!("SELECT rider, year, month FROM {events} WHERE month = '12'")
        )
        .await,
        ["o'neil|2026|12"]
    );
    assert_eq!(
        rows(
            &client,
            &format!("SELECT count(*), min(month) FROM {events} WHERE year::int = 2026")
        )
        .await,
        ["2|11"]
    );

    // Clear errors, nothing loaded, and the session goes on.
    std::fs::write(
        dir.path().join("bad.json"),
        "{\"id\": 9}\n{\"id\": \"nine\"}\n",
    )
    .unwrap();
    assert_eq!(
        error_of(&client, &format!("COPY docs FROM '{d}/bad.json'")).await,
        "22P02"
    );
    std::fs::write(dir.path().join("bad.csv.gz"), "not gzip at all").unwrap();
    let garbage = format!("COPY loaded FROM '{d}/bad.csv.gz' WITH (FORMAT csv)");
    assert_eq!(error_of(&client, &garbage).await, "58030", "{garbage}");
    for refused in [
        format!("SELECT * FROM read_parquet('{d}/x.parquet.gz')"),
        format!("SELECT * FROM read_csv('{d}/x.csv.zip')"),
        format!("COPY trips TO '{d}/t.parquet.gz'"),
    ] {
        assert_eq!(error_of(&client, &refused).await, "0A000", "{refused}");
    }
    assert_eq!(rows(&client, "SELECT count(*) FROM docs").await, ["3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_urls_reach_the_clusters_own_buckets_by_default() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client.batch_execute(SETUP).await.unwrap();
    rows(
        &client,
        "SELECT object_put('exports', 'README', 'exports of trips')",
    )
    .await;

    rows(&client, "COPY trips TO 's3://exports/2026/trips.parquet'").await;
    rows(&client, "COPY (SELECT id, rider FROM trips) TO 's3://exports/2026/riders.csv' WITH (FORMAT csv, HEADER true)").await;
    assert_eq!(
        rows(
            &client,
            "SELECT key FROM ciab.objects WHERE bucket = 'exports' ORDER BY key"
        )
        .await,
        ["2026/riders.csv", "2026/trips.parquet", "README"]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT count(*), sum(fare) FROM read_parquet('s3://exports/2026/*.parquet')"
        )
        .await,
        ["3|19.75"]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT rider FROM read_csv('s3://exports/2026/riders.csv') WHERE id = 2"
        )
        .await,
        ["bob"]
    );
    round_trip(
        &client,
        "COPY loaded FROM 's3://exports/2026/trips.parquet'",
    )
    .await;
    assert_eq!(
        rows(&client, "SELECT path, size, content = CAST('exports of trips' AS bytea) FROM files('s3://exports/README')").await,
        ["s3://exports/README|16|t"]
    );
    rows(
        &client,
        "CREATE EXTERNAL TABLE exported STORED AS PARQUET LOCATION 's3://exports/2026/'",
    )
    .await;
    assert_eq!(rows(&client, "SELECT count(*) FROM exported").await, ["3"]);
    assert_eq!(
        error_of(
            &client,
            "SELECT * FROM read_parquet('s3://exports/nothing/*.parquet')"
        )
        .await,
        "58P01"
    );
    assert_eq!(
        error_of(&client, "COPY trips TO 's3://no-such-bucket/t.parquet'").await,
        "58P01"
    );
}

/// moto's S3 server on a free port, stopped when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let moto = std::path::Path::new(&python()).with_file_name("moto_server");
        let child = Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts (.ci/run installs it): {e}", moto.display()));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto answers");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_s3_service_is_reached_with_the_credentials_set_in_sql() {
    let moto = Moto::start();
    make_bucket(&moto, "lake");

    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client.batch_execute(SETUP).await.unwrap();
    // The cluster's settings, for every session on every node.
    for setting in [
        format!("s3_endpoint = 'http://127.0.0.1:{}'", moto.port),
        "s3_access_key_id = 'moto'".into(),
        "s3_secret_access_key = 'moto'".into(),
    ] {
        rows(&client, &format!("ALTER SYSTEM SET {setting}")).await;
    }
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    rows(&client, "COPY trips TO 's3://lake/trips/1.parquet'").await;
    rows(
        &client,
        "CREATE EXTERNAL TABLE lake_trips STORED AS PARQUET LOCATION 's3://lake/trips/'",
    )
    .await;
    assert_eq!(
        rows(&client, "SELECT count(*), sum(fare) FROM lake_trips").await,
        ["3|19.75"]
    );
    round_trip(&client, "COPY loaded FROM 's3://lake/trips/1.parquet'").await;
    // Nothing went to the cluster's own buckets.
    assert_eq!(
        rows(&client, "SELECT count(*) FROM ciab.objects").await,
        ["0"]
    );

    // A session's SET leads elsewhere for that session only: back to the
    // cluster's own storage, which has no bucket "lake".
    let other = connect(&server.conn_str("ciab")).await.unwrap();
    rows(&other, "SET s3_endpoint = ''").await;
    assert_eq!(
        error_of(&other, "SELECT count(*) FROM lake_trips").await,
        "58030"
    );
    assert_eq!(
        rows(&client, "SELECT count(*) FROM lake_trips").await,
        ["3"]
    );
    drop(moto);
    // A service that is gone fails the statement, not the session.
    assert_eq!(
        error_of(&client, "SELECT count(*) FROM lake_trips").await,
        "58030"
    );
    assert_eq!(rows(&client, "SELECT count(*) FROM trips").await, ["3"]);
}

/// Makes a bucket in moto.
fn make_bucket(moto: &Moto, bucket: &str) {
    let made = Command::new(python())
        .arg("-c")
        .arg(format!(
            "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:{}', \
             aws_access_key_id='moto', aws_secret_access_key='moto', region_name='us-east-1')\
             .create_bucket(Bucket='{bucket}')",
            moto.port
        ))
        .status()
        .unwrap();
    assert!(made.success(), "bucket {bucket} is made in moto");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_and_object_files_can_live_in_an_s3_bucket() {
    let moto = Moto::start();
    make_bucket(&moto, "ciab-files");
    // Credentials and endpoint come from the AWS environment variables.
    let env: Vec<String> = [
        "env".to_string(),
        format!("AWS_ENDPOINT_URL=http://127.0.0.1:{}", moto.port),
        "AWS_ACCESS_KEY_ID=moto".into(),
        "AWS_SECRET_ACCESS_KEY=moto".into(),
        "AWS_REGION=us-east-1".into(),
    ]
    .into();
    let free = || {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let mut server = ciab_sql_tests::TestServer::start_placed(
        crate::binary(),
        &env,
        free(),
        free(),
        &["--object-store".into(), "s3://ciab-files/lake".into()],
    )
    .unwrap();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE readings (id int PRIMARY KEY, v float8);
             INSERT INTO readings SELECT i, i * 0.5 FROM generate_series(1, 5000) AS s(i)",
        )
        .await
        .unwrap();
    rows(
        &client,
        "SELECT object_put('media', 'clip.bin', CAST(repeat('ciab', 100000) AS bytea))",
    )
    .await;
    let inventory = "SELECT (SELECT count(*) || '|' || sum(v) FROM readings), \
                     (SELECT md5(object_read('media', 'clip.bin')))";
    let before = rows(&client, inventory).await;
    server.stop().unwrap();

    // The flush wrote the files to the bucket, under the node's prefix;
    // the data directory keeps the log and the manifest.
    assert!(server.data_dir().join("manifest.json").exists());
    assert!(
        !server.data_dir().join("tables").exists(),
        "no table files on disk"
    );
    server.restart().unwrap();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    assert_eq!(
        rows(&client, inventory).await,
        before,
        "read back from the bucket"
    );
    for setting in [
        format!("s3_endpoint = 'http://127.0.0.1:{}'", moto.port),
        "s3_access_key_id = 'moto'".into(),
        "s3_secret_access_key = 'moto'".into(),
        "datafusion.execution.listing_table_ignore_subdirectory = false".into(),
    ] {
        rows(&client, &format!("SET {setting}")).await;
    }
    let listed = rows(
        &client,
        "SELECT split_part(path, '/', 6), count(*) FROM files('s3://ciab-files/lake/') \
         WHERE path LIKE 's3://ciab-files/lake/node-%' GROUP BY 1 ORDER BY 1",
    )
    .await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed[0].starts_with("objects|") && listed[1].starts_with("tables|"),
        "{listed:?}"
    );
}
