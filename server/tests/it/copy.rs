//! COPY over the wire: FROM STDIN's formats, errors, atomicity, and loads
//! larger than one chunk surviving a crash; TO STDOUT printing what
//! PostgreSQL prints, and loading back in every format.

use bytes::Bytes;
use ciab_sql_tests::connect;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use futures::{SinkExt, TryStreamExt, pin_mut};
use tokio_postgres::Client;

use crate::{repo_root, rows, sqlstate, start};

pub(crate) async fn copy_in(
    client: &Client,
    sql: &str,
    data: impl AsRef<[u8]>,
) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in(sql).await?;
    pin_mut!(sink);
    sink.send(Bytes::copy_from_slice(data.as_ref())).await?;
    sink.finish().await
}

async fn copy_out(client: &Client, sql: &str) -> Result<Vec<u8>, tokio_postgres::Error> {
    let stream = client.copy_out(sql).await?;
    let parts: Vec<Bytes> = stream.try_collect().await?;
    Ok(parts.concat())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_text_and_csv_with_nulls_defaults_and_errors() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE t (a int PRIMARY KEY, b text, c numeric(10,2) NOT NULL DEFAULT 1.5, d date)",
        )
        .await
        .unwrap();

    let n = copy_in(
        &client,
        "COPY t FROM STDIN",
        "1\thello\\tworld\t2.5\t2020-01-01\n2\t\\N\t3\t\\N\n",
    )
    .await
    .unwrap();
    assert_eq!(n, 2);
    let n = copy_in(
        &client,
        "COPY t (a, b, d) FROM STDIN WITH (FORMAT csv, HEADER)",
        "a,b,d\n3,\"x,\"\"y\"\"\",2021-02-03\n4,,\n5,\"\",\n",
    )
    .await
    .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        rows(&client, "SELECT a, b, c, d, b IS NULL FROM t ORDER BY a").await,
        vec![
            "1|hello\tworld|2.50|2020-01-01|f",
            "2|NULL|3.00|NULL|t",
            "3|x,\"y\"|1.50|2021-02-03|f",
            "4|NULL|1.50|NULL|t",
            "5||1.50|NULL|f",
        ]
    );

    // Dates in the plain form are read straight to days; a chunk with any
    // other form goes through the cast whole, and a day that does not
    // exist (2021 has no February 29th) is refused either way, with
    // PostgreSQL's SQLSTATE.
    client
        .batch_execute("CREATE TABLE days (a int, d date)")
        .await
        .unwrap();
    copy_in(
        &client,
        "COPY days FROM STDIN",
        "1\t2024-02-29\n2\t\\N\n3\t0001-01-01\n",
    )
    .await
    .unwrap();
    copy_in(
        &client,
        "COPY days FROM STDIN",
        "4\t2021-1-5\n5\t9999-12-31\n",
    )
    .await
    .unwrap();
    assert_eq!(
        rows(
            &client,
            "SELECT a, d, d - DATE '1970-01-01' FROM days ORDER BY a"
        )
        .await,
        vec![
            "1|2024-02-29|19782",
            "2|NULL|NULL",
            "3|0001-01-01|-719162",
            "4|2021-01-05|18632",
            "5|9999-12-31|2932896",
        ]
    );
    for data in ["6\t2021-02-29\n", "6\t2021-02-03\n7\t2021-13-01\n"] {
        let e = copy_in(&client, "COPY days FROM STDIN", data)
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "22008", "{data:?}: {e:?}");
    }
    assert_eq!(rows(&client, "SELECT count(*) FROM days").await, vec!["5"]);

    // Every failure leaves the table as it was and the connection usable.
    let cases = [
        (
            "COPY t FROM STDIN",
            "6\tx\t1\t2020-01-01\n7\tx\tabc\t\\N\n",
            "22P02",
        ),
        (
            "COPY t FROM STDIN",
            "8\tdup\t1\t\\N\n1\tdup\t1\t\\N\n",
            "23505",
        ),
        ("COPY t FROM STDIN", "9\tx\n", "22P04"),
        ("COPY t FROM STDIN", "9\tx\t1\t\\N\textra\n", "22P04"),
        ("COPY missing FROM STDIN", "", "42P01"),
        ("COPY t (a, nope) FROM STDIN", "", "42703"),
    ];
    for (sql, data, expected) in cases {
        let e = copy_in(&client, sql, data).await.unwrap_err();
        assert_eq!(sqlstate(&e), expected, "{sql} with {data:?}: {e:?}");
    }
    // A byte that is not UTF-8 is found where it is, in either format.
    for (sql, data) in [
        (
            "COPY t FROM STDIN",
            &b"6\tok\t1\t\\N\n7\tb\xffd\t1\t\\N\n"[..],
        ),
        (
            "COPY t FROM STDIN WITH (FORMAT csv)",
            &b"6,ok,1,\n7,ok,1,\n8,\"b\xffd\",1,\n"[..],
        ),
    ] {
        let e = copy_in(&client, sql, data).await.unwrap_err();
        assert_eq!(sqlstate(&e), "22021", "{sql}: {e:?}");
        let line = if sql.contains("csv") {
            "line 3"
        } else {
            "line 2"
        };
        let message = e.as_db_error().unwrap().message();
        assert!(message.contains(line), "{sql}: {message}");
    }
    assert_eq!(rows(&client, "SELECT count(*) FROM t").await, vec!["5"]);

    // Not supported yet: a clear 0A000, not a silent no-op.
    for sql in [
        "COPY t FROM PROGRAM 'cat x.csv'",
        "COPY t FROM STDIN; SELECT 1",
    ] {
        let e = client.simple_query(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e), "0A000", "{sql}");
    }

    // The client giving up (CopyFail) loads nothing.
    {
        let sink = client.copy_in("COPY t FROM STDIN").await.unwrap();
        pin_mut!(sink);
        sink.send(Bytes::from_static(b"10\tx\t1\t\\N\n"))
            .await
            .unwrap();
        // Dropping the sink unfinished sends CopyFail.
    }
    assert_eq!(rows(&client, "SELECT count(*) FROM t").await, vec!["5"]);

    // Inside a transaction the rows are the transaction's own until COMMIT,
    // and ROLLBACK takes them back.
    client.batch_execute("BEGIN").await.unwrap();
    copy_in(&client, "COPY t (a) FROM STDIN", "20\n21\n")
        .await
        .unwrap();
    assert_eq!(rows(&client, "SELECT count(*) FROM t").await, vec!["7"]);
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(rows(&client, "SELECT count(*) FROM t").await, vec!["5"]);
    client.batch_execute("BEGIN").await.unwrap();
    copy_in(&client, "COPY t (a) FROM STDIN", "20\n21\n")
        .await
        .unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(rows(&client, "SELECT count(*) FROM t").await, vec!["7"]);
}

/// Rows of about 120 bytes: 700,000 of them pass both the chunk size and
/// the store's flush threshold, so the load is staged over many log entries
/// and a snapshot writes staged rows to Parquet while it runs.
fn bulk(from: u64, to: u64) -> String {
    let mut out = String::new();
    for i in from..to {
        out.push_str(&format!("{i}\t{}\n", "p".repeat(100) + &i.to_string()));
    }
    out
}

/// Rows land in input order, as in PostgreSQL: a serial column numbers
/// them in the order they came, past DataFusion's batch size of 8192.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_keeps_input_order() {
    const ROWS: u64 = 30_000;
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client
        .batch_execute("CREATE TABLE ordered (n bigint PRIMARY KEY, price numeric(12,2), s serial)")
        .await
        .unwrap();
    let data: String = (1..=ROWS).map(|i| format!("{i},{i}.5\n")).collect();
    let n = copy_in(
        &client,
        "COPY ordered (n, price) FROM STDIN WITH (FORMAT csv)",
        &data,
    )
    .await
    .unwrap();
    assert_eq!(n, ROWS);
    assert_eq!(
        rows(
            &client,
            "SELECT count(*), sum(price), count(*) FILTER (WHERE s <> n) FROM ordered"
        )
        .await,
        vec![format!("{ROWS}|{}.00|0", ROWS * (ROWS + 1) / 2 + ROWS / 2)]
    );
}

/// Integers, numerics and dates in their plain form are read as the
/// records are split; the first value in another form turns its field to
/// text and the casts for the rest of the load. Both give the same values,
/// across the load's chunks, and a day that does not exist is refused
/// with its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_reads_plain_and_other_forms_alike() {
    // About 20 MB: two chunks. The odd forms are in the second.
    const ROWS: u64 = 300_000;
    const ODD: u64 = 290_000;
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE plain (n bigint PRIMARY KEY, k smallint, price numeric(12,2), d date, pad text)",
        )
        .await
        .unwrap();
    let record = |i: u64| {
        let pad = "p".repeat(40);
        if i == ODD {
            // Blanks, a sign, an exponent to round and a short date:
            // PostgreSQL reads them as 290000, 7, 290000.50 and 2024-01-03.
            format!(" {i},+7,{i}499e-3,2024-1-3,{pad}\n")
        } else {
            format!("{i},{},{i}.5,2024-01-{:02},{pad}\n", i % 100, i % 28 + 1)
        }
    };
    let data: String = (1..=ROWS).map(record).collect();
    assert!(data.len() > 16 << 20, "the load spans two chunks");
    let n = copy_in(&client, "COPY plain FROM STDIN WITH (FORMAT csv)", &data)
        .await
        .unwrap();
    assert_eq!(n, ROWS);
    let odd_days = (1..=ROWS).filter(|i| *i != ODD && i % 28 + 1 == 3).count() + 1;
    assert_eq!(
        rows(
            &client,
            "SELECT count(*), sum(price), sum(k), count(*) FILTER (WHERE d = DATE '2024-01-03') FROM plain"
        )
        .await,
        vec![format!(
            "{ROWS}|{}.00|{}|{odd_days}",
            ROWS * (ROWS + 1) / 2 + ROWS / 2,
            (1..=ROWS).map(|i| if i == ODD { 7 } else { i % 100 }).sum::<u64>()
        )]
    );
    assert_eq!(
        rows(
            &client,
            &format!(
                "SELECT n, k, price, d FROM plain WHERE n IN ({}, {ROWS})",
                ODD
            )
        )
        .await,
        vec![
            format!("{ODD}|7|{ODD}.50|2024-01-03"),
            format!("{ROWS}|0|{ROWS}.50|2024-01-{:02}", ROWS % 28 + 1),
        ]
    );
    // February 29th, 2023 in the second chunk: 22008, naming its line.
    client.batch_execute("TRUNCATE plain").await.unwrap();
    let data: String = (1..=ROWS)
        .map(|i| {
            if i == ODD {
                format!("{i},1,1,2023-02-29,x\n")
            } else {
                record(i)
            }
        })
        .collect();
    let e = copy_in(&client, "COPY plain FROM STDIN WITH (FORMAT csv)", &data)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22008", "{e:?}");
    let message = e.as_db_error().unwrap().message();
    assert!(message.contains(&format!("line {ODD}")), "{message}");
    assert_eq!(rows(&client, "SELECT count(*) FROM plain").await, vec!["0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_copy_is_atomic_and_survives_a_crash() {
    const ROWS: u64 = 700_000;
    let mut server = start();
    let conn = server.conn_str("ciab");
    let client = connect(&conn).await.unwrap();
    let observer = connect(&conn).await.unwrap();
    client
        .batch_execute("CREATE TABLE big (id bigint PRIMARY KEY, payload text)")
        .await
        .unwrap();

    let sink = client.copy_in("COPY big FROM STDIN").await.unwrap();
    pin_mut!(sink);
    let step = ROWS / 10;
    for part in 0..10 {
        sink.send(Bytes::from(bulk(part * step, (part + 1) * step)))
            .await
            .unwrap();
        // Whatever the server staged so far stays invisible.
        assert_eq!(rows(&observer, "SELECT count(*) FROM big").await, vec!["0"]);
    }
    // A flush while the load runs writes what it staged so far to files.
    // (None before the first snapshot.)
    let manifest = || -> serde_json::Value {
        match std::fs::read_to_string(server.data_dir().join("manifest.json")) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(_) => serde_json::Value::Null,
        }
    };
    // Waits until most rows sent are in stage files (the server holds back
    // the last part of the input until COPY ends). A flush of the first rows
    // alone leaves a file too small to keep, which a later snapshot merges
    // with its neighbours into a file of the table's own.
    let staged_rows = || -> u64 {
        manifest()["stages"]
            .as_object()
            .into_iter()
            .flat_map(|stages| stages.values())
            .flat_map(|stage| stage["files"].as_array().unwrap())
            .map(|file| file["rows"].as_u64().unwrap())
            .sum()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while staged_rows() < ROWS / 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the stage was not flushed"
        );
        observer.batch_execute("VACUUM").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The manifest may be a background snapshot's, written before it points
    // the stage at its files: a VACUUM waits for that snapshot to finish.
    observer.batch_execute("VACUUM").await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), ROWS);
    assert_eq!(
        rows(&observer, "SELECT count(*) FROM big").await,
        vec![ROWS.to_string()]
    );
    // The table took over the staged files: no snapshot writes those rows
    // again.
    observer.batch_execute("VACUUM big").await.unwrap();
    let manifest = manifest();
    let files = manifest["tables"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|t| t["files"].as_array().unwrap())
        .collect::<Vec<_>>();
    let adopted = files
        .iter()
        .filter(|f| f["path"].as_str().unwrap().starts_with("stages/"))
        .collect::<Vec<_>>();
    assert!(!adopted.is_empty(), "{files:?}");
    assert!(
        adopted.iter().all(|f| f["first_rowid"].is_u64()),
        "{files:?}"
    );
    // Each file keeps its columns' distinct-value sketches for a restart.
    for file in &files {
        let path = server.data_dir().join(file["path"].as_str().unwrap());
        let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
        let metadata = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap();
        let sketches = metadata
            .iter()
            .find(|kv| kv.key == "ciab.distinct_sketches")
            .and_then(|kv| kv.value.clone())
            .unwrap();
        assert!(sketches.split(',').all(|s| s.len() == 512), "{sketches}");
    }
    // Row ids of the taken-over files are the table's own: a delete and an
    // update find their rows (and, after the crash below, still do).
    observer
        .batch_execute(
            "DELETE FROM big WHERE id % 10000 = 1; \
             UPDATE big SET payload = 'changed' WHERE id % 10000 = 2",
        )
        .await
        .unwrap();
    let (deleted, changed) = (ROWS / 10_000, ROWS / 10_000);

    // A second load, cut off by a crash half way through, never appears.
    let sink = client.copy_in("COPY big FROM STDIN").await.unwrap();
    pin_mut!(sink);
    sink.send(Bytes::from(bulk(ROWS, ROWS + 300_000)))
        .await
        .unwrap();
    sink.flush().await.unwrap();
    // Let the server stage what it received before the crash.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    server.kill9().unwrap();
    server.restart().unwrap();

    let client = connect(&conn).await.unwrap();
    let kept = (0..ROWS).filter(|i| i % 10_000 != 1);
    assert_eq!(
        rows(
            &client,
            "SELECT count(*), min(id), max(id), sum(length(payload)), \
                    count(*) FILTER (WHERE payload = 'changed') FROM big"
        )
        .await,
        vec![format!(
            "{}|0|{}|{}|{changed}",
            ROWS - deleted,
            ROWS - 1,
            kept.map(|i| match i % 10_000 {
                2 => "changed".len() as u64,
                _ => 100 + i.to_string().len() as u64,
            })
            .sum::<u64>()
        )]
    );
    // The key index came back with the rows.
    let e = copy_in(&client, "COPY big FROM STDIN", "5\tdup\n")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23505");
}

/// COPY TO prints byte for byte what PostgreSQL 15 printed for the same
/// rows (`sql-tests/copy`, recorded by its capture.sh) in text, CSV and
/// binary, and what PostgreSQL printed loads back into an equal table in
/// each of the three formats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_prints_what_postgresql_prints_and_loads_back() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    let dir = repo_root().join("sql-tests/copy");
    let schema = std::fs::read_to_string(dir.join("types.sql")).unwrap();
    client.batch_execute(&schema).await.unwrap();

    let commands = std::fs::read_to_string(dir.join("commands.txt")).unwrap();
    let mut outputs = Vec::new();
    for (n, command) in commands.lines().enumerate() {
        let expected = std::fs::read(dir.join(format!("expected/{}.out", n + 1))).unwrap();
        let actual = copy_out(&client, command)
            .await
            .unwrap_or_else(|e| panic!("{command}: {e}"));
        assert_eq!(
            String::from_utf8_lossy(&actual),
            String::from_utf8_lossy(&expected),
            "{command}"
        );
        assert_eq!(actual, expected, "{command}");
        outputs.push(expected);
    }

    // The text, CSV and binary files load back (PostgreSQL's output into
    // ciab) and print the same again.
    client
        .batch_execute("CREATE TABLE copy_back AS SELECT * FROM copy_types WHERE false")
        .await
        .unwrap();
    for (output, from, to) in [
        (
            &outputs[0],
            "COPY copy_back FROM STDIN",
            "COPY (SELECT * FROM copy_back ORDER BY id) TO STDOUT",
        ),
        (
            &outputs[1],
            "COPY copy_back FROM STDIN (FORMAT csv, HEADER)",
            "COPY (SELECT * FROM copy_back ORDER BY id) TO STDOUT (FORMAT csv, HEADER)",
        ),
        (
            &outputs[2],
            "COPY copy_back FROM STDIN (FORMAT binary)",
            "COPY (SELECT * FROM copy_back ORDER BY id) TO STDOUT (FORMAT binary)",
        ),
    ] {
        client.batch_execute("TRUNCATE copy_back").await.unwrap();
        assert_eq!(copy_in(&client, from, output).await.unwrap(), 4, "{from}");
        let again = copy_out(&client, to).await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(output),
            "{from}"
        );
        assert_eq!(&again, output, "{from}");
    }

    // Binary data that is not what it claims: nothing is loaded.
    client.batch_execute("TRUNCATE copy_back").await.unwrap();
    let binary = &outputs[2];
    // The signature (11 bytes), flags and header extension length.
    let header = 19;
    let mut wrong_count = binary[..header].to_vec();
    wrong_count.extend_from_slice(&[0, 1, 0, 0, 0, 4, 0, 0, 0, 9, 0xff, 0xff]);
    let mut short_int = binary[..header].to_vec();
    short_int.extend_from_slice(&[0, 1, 0, 0, 0, 2, 0, 9, 0xff, 0xff]);
    let (all, id) = (
        "COPY copy_back FROM STDIN (FORMAT binary)",
        "COPY copy_back (id) FROM STDIN (FORMAT binary)",
    );
    for (sql, data, state) in [
        (all, b"not a copy file".to_vec(), "22P04"),
        // Cut inside the last tuple.
        (all, binary[..binary.len() - 7].to_vec(), "22P04"),
        (all, wrong_count, "22P04"),
        // A 2-byte integer.
        (id, short_int, "22P03"),
    ] {
        let e = copy_in(&client, sql, &data).await.unwrap_err();
        assert_eq!(sqlstate(&e), state, "{e}");
    }
    assert_eq!(
        rows(&client, "SELECT count(*) FROM copy_back").await,
        vec!["0"]
    );

    // The table form names its columns; a view must be copied as a query.
    client
        .batch_execute("CREATE VIEW copy_view AS SELECT id FROM copy_types")
        .await
        .unwrap();
    for (sql, state) in [
        ("COPY copy_view TO STDOUT", "42809"),
        ("COPY copy_types (nope) TO STDOUT", "42703"),
        ("COPY missing TO STDOUT", "42P01"),
        ("COPY copy_types TO STDOUT (FORMAT binary, HEADER)", "0A000"),
        (
            "COPY copy_types (id) TO STDOUT (FORMAT csv, FORCE_QUOTE (t))",
            "42P10",
        ),
        ("COPY copy_types TO STDOUT (FORCE_QUOTE (t))", "0A000"),
        ("COPY copy_types TO '/tmp/file'", "0A000"),
    ] {
        let e = copy_out(&client, sql).await.unwrap_err();
        assert_eq!(sqlstate(&e), state, "{sql}: {e}");
    }
    let empty = copy_out(
        &client,
        "COPY (SELECT id FROM copy_types WHERE false) TO STDOUT (FORMAT csv, HEADER)",
    )
    .await
    .unwrap();
    assert_eq!(empty, b"id\n");
    // The connection is still good.
    assert_eq!(
        rows(&client, "SELECT count(*) FROM copy_types").await,
        vec!["4"]
    );
}
