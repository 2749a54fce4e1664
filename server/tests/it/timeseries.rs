//! Generated times and queries for TimescaleDB's functions, checked
//! against a real PostgreSQL 15. PostgreSQL has no `time_bucket`, `first`
//! or gap filling, so each ciab query is paired with one that computes the
//! same thing from what PostgreSQL has: `time_bucket` is `date_bin` from
//! Monday 2000-01-03 (or months counted from 2000-01-01), `first` is the
//! head of an ordered `array_agg`, and gap filling is a grid of buckets
//! left-joined with the aggregate, with window functions for `locf` and
//! `interpolate`.

use ciab_sql_tests::connect;

use crate::{Rng, counters, postgres_and_ciab, rows, same_outcome, start};

const EVENTS: usize = 400;
const QUERY_ROUNDS: usize = 10;

const WIDTHS: &[&str] = &[
    "1 second",
    "7 seconds",
    "90 seconds",
    "15 minutes",
    "1 hour",
    "3 hours 20 minutes",
    "1 day",
    "7 days",
    "10 days",
];

/// A time between 1960 and 2040, to the microsecond.
fn timestamp(rng: &mut Rng) -> String {
    let low = -315_619_200_000_000_i64;
    let span = 2_524_608_000_000_000_u64;
    let micros = low + (rng.next() % span) as i64;
    chrono::DateTime::from_timestamp_micros(micros)
        .expect("in range")
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

/// Times near one another, so that gap filling has rows and gaps.
fn recent(rng: &mut Rng) -> String {
    let micros = 1_577_836_800_000_000 + (rng.next() % 172_800_000_000) as i64;
    chrono::DateTime::from_timestamp_micros(micros)
        .expect("in range")
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_time_queries_match_postgres() {
    let (_postgres, _ciab, pg, cb) = postgres_and_ciab().await;
    pg.batch_execute("SET TimeZone = 'UTC'").await.expect("UTC");
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut values = Vec::new();
    for id in 0..EVENTS {
        let ts = match rng.below(10) {
            0 => "NULL".to_string(),
            1..=4 => format!("'{}'", timestamp(&mut rng)),
            _ => format!("'{}'", recent(&mut rng)),
        };
        let host = format!("h{}", rng.below(4));
        // Whole numbers: sums and averages are exact in any order.
        let v = match rng.below(8) {
            0 => "NULL".to_string(),
            _ => format!("{}", rng.below(1000)),
        };
        values.push(format!("({id}, '{host}', {ts}, {ts}, {v})"));
    }
    let setup = [
        "CREATE TABLE ev (id int, host text, ts timestamp, tz timestamptz, v double precision)"
            .to_string(),
        format!("INSERT INTO ev VALUES {}", values.join(", ")),
    ];
    for sql in &setup {
        pg.batch_execute(sql).await.expect("PostgreSQL setup");
        cb.batch_execute(sql).await.expect("ciab setup");
    }

    // (ciab's query, PostgreSQL's query for the same rows)
    let mut pairs: Vec<(String, String)> = vec![(
        "SELECT host, first(v, ts), last(v, ts), first(id, tz), last(id, tz) \
         FROM ev GROUP BY host ORDER BY host"
            .into(),
        "SELECT host, (array_agg(v ORDER BY ts) FILTER (WHERE ts IS NOT NULL))[1], \
         (array_agg(v ORDER BY ts DESC) FILTER (WHERE ts IS NOT NULL))[1], \
         (array_agg(id ORDER BY tz) FILTER (WHERE tz IS NOT NULL))[1], \
         (array_agg(id ORDER BY tz DESC) FILTER (WHERE tz IS NOT NULL))[1] \
         FROM ev GROUP BY host ORDER BY host"
            .into(),
    )];
    let same = |sql: String| (sql.clone(), sql);
    pairs.push(same(
        "SELECT host, percentile_disc(0.5) WITHIN GROUP (ORDER BY v), \
         percentile_disc(0.9) WITHIN GROUP (ORDER BY ts DESC), \
         percentile_cont(0.5) WITHIN GROUP (ORDER BY v) FROM ev GROUP BY host ORDER BY host"
            .into(),
    ));
    for round in 0..QUERY_ROUNDS {
        let width = rng.pick(WIDTHS);
        let origin = timestamp(&mut rng);
        let offset = rng.pick(&["1 minute", "-2 hours", "90 seconds", "3 days"]);
        let months = [1, 2, 3, 4, 6, 12, 24][rng.below(7)];
        pairs.push((
            format!(
                "SELECT id, time_bucket('{width}', ts), time_bucket('{width}', tz), \
                 time_bucket('{width}', ts, timestamp '{origin}'), \
                 time_bucket('{width}', ts, interval '{offset}') FROM ev ORDER BY id"
            ),
            format!(
                "SELECT id, date_bin('{width}', ts, timestamp '2000-01-03'), \
                 date_bin('{width}', tz, timestamptz '2000-01-03 00:00:00+00'), \
                 date_bin('{width}', ts, timestamp '{origin}'), \
                 date_bin('{width}', ts - interval '{offset}', timestamp '2000-01-03') \
                 + interval '{offset}' FROM ev ORDER BY id"
            ),
        ));
        pairs.push((
            format!("SELECT id, time_bucket('{months} months', ts) FROM ev ORDER BY id"),
            format!(
                "SELECT id, timestamp '2000-01-01' + (floor((extract(year from ts) * 12 \
                 + extract(month from ts) - 24001) / {months})::int * {months}) \
                 * interval '1 month' FROM ev ORDER BY id"
            ),
        ));
        pairs.push(same(format!(
            "SELECT id, date_bin('{width}', ts, timestamp '{origin}') FROM ev ORDER BY id"
        )));
        // Gap filling over two days of recent events, in hours or more.
        let width = rng.pick(&["1 hour", "3 hours", "20 minutes", "1 day"]);
        let start = recent(&mut rng);
        let finish = if round % 2 == 0 {
            "2020-01-03 00:00:00".to_string()
        } else {
            recent(&mut rng)
        };
        pairs.push(gapfill(width, &start, &finish));
    }

    let mut errors = 0;
    for (ours, theirs) in &pairs {
        errors += usize::from(same_outcome(&pg, &cb, theirs, ours).await);
    }
    assert_eq!(errors, 0, "PostgreSQL refused a query it should answer");
}

/// ciab's gap-filling query and PostgreSQL's equivalent. The WHERE clause
/// keeps every row inside the range, so no row passes through unfilled.
fn gapfill(width: &str, start: &str, finish: &str) -> (String, String) {
    let (s, f) = (
        format!("timestamp '{start}'"),
        format!("timestamp '{finish}'"),
    );
    let ours = format!(
        "SELECT time_bucket_gapfill('{width}', ts, {s}, {f}) AS b, host, avg(v), count(*), \
         locf(avg(v)), interpolate(avg(v)) FROM ev WHERE ts >= {s} AND ts < {f} \
         GROUP BY b, host ORDER BY host, b"
    );
    let origin = "timestamp '2000-01-03'";
    let theirs = format!(
        "WITH agg AS (SELECT date_bin('{width}', ts, {origin}) AS b, host, avg(v) AS a, \
                count(*) AS c FROM ev WHERE ts >= {s} AND ts < {f} GROUP BY 1, 2), \
         grid AS (SELECT h.host, g.b FROM (SELECT DISTINCT host FROM agg) h CROSS JOIN \
                generate_series(date_bin('{width}', {s}, {origin}), \
                {f} - interval '1 microsecond', interval '{width}') AS g(b)), \
         j AS (SELECT grid.b, grid.host, agg.a, agg.c, agg.b IS NOT NULL AS real \
                FROM grid LEFT JOIN agg USING (host, b)), \
         k AS (SELECT *, count(*) FILTER (WHERE real) OVER (PARTITION BY host ORDER BY b) AS before, \
                count(*) FILTER (WHERE real) OVER (PARTITION BY host ORDER BY b DESC) AS after FROM j), \
         n AS (SELECT *, first_value(a) OVER (PARTITION BY host, before ORDER BY b) AS pa, \
                first_value(b) OVER (PARTITION BY host, before ORDER BY b) AS pb, \
                first_value(a) OVER (PARTITION BY host, after ORDER BY b DESC) AS na, \
                first_value(b) OVER (PARTITION BY host, after ORDER BY b DESC) AS nb FROM k) \
         SELECT b, host, a, c, CASE WHEN before > 0 THEN pa END, \
                CASE WHEN real THEN a \
                     WHEN before = 0 OR after = 0 OR pa IS NULL OR na IS NULL THEN NULL \
                     WHEN pa = na THEN pa \
                     ELSE (pa * (extract(epoch from nb - b) * 1000000)::float8 \
                           + na * (extract(epoch from b - pb) * 1000000)::float8) \
                          / (extract(epoch from nb - pb) * 1000000)::float8 END \
         FROM n ORDER BY host, b"
    );
    (ours, theirs)
}

/// A scan skips the segments whose bounds rule its filters out: rows
/// written in time order make segments that each cover a stretch of time,
/// so a time range reads only the segments that overlap it. EXPLAIN shows
/// the batches the scan keeps (`partition_sizes`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_range_reads_only_the_segments_it_overlaps() {
    let ciab = start();
    let client = connect(&ciab.conn_str("ciab")).await.expect("connect");
    client
        .batch_execute("CREATE TABLE z (ts timestamp, v int, s text)")
        .await
        .unwrap();
    // Three INSERTs of 2,000 rows: three segments, a minute a row.
    for k in 0..3 {
        client
            .batch_execute(&format!(
                "INSERT INTO z SELECT CAST(to_timestamp(1577836800 + i * 60) AS timestamp), \
                 CASE WHEN i % 100 = 7 THEN NULL ELSE i END, 'k{k}' \
                 FROM generate_series({}, {}) AS g(i)",
                k * 2000,
                k * 2000 + 1999
            ))
            .await
            .unwrap();
    }
    // The scan's line of the plan; none when DataFusion knows from the
    // kept segments' row counts that there is nothing to read.
    let scan = |plan: Vec<String>| {
        plan.into_iter()
            .find(|line| line.contains("DataSourceExec"))
            .unwrap_or_else(|| "no scan: partition_sizes=[0]".into())
    };
    let cases = [
        // The second segment only: minutes 2000-3999.
        (
            "SELECT count(*), min(v), max(v) FROM z WHERE ts >= timestamp '2020-01-02 10:00:00' \
          AND ts < timestamp '2020-01-02 12:00:00'",
            "partition_sizes=[1]",
            "120|2040|2159",
        ),
        // v between two segments' bounds: two segments.
        // (4007 is NULL.)
        (
            "SELECT count(*) FROM z WHERE v BETWEEN 3990 AND 4010",
            "partition_sizes=[1, 1]",
            "20",
        ),
        (
            "SELECT count(*) FROM z WHERE s = 'k2'",
            "partition_sizes=[1]",
            "2000",
        ),
        // Before every segment: one partition with nothing to read.
        (
            "SELECT count(*) FROM z WHERE ts < timestamp '2019-01-01 00:00:00'",
            "partition_sizes=[0]",
            "0",
        ),
        // Every segment has NULLs.
        (
            "SELECT count(*) FROM z WHERE v IS NULL",
            "partition_sizes=[2, 1]",
            "60",
        ),
    ];
    for (sql, partitions, answer) in cases {
        let plan = scan(rows(&client, &format!("EXPLAIN {sql}")).await);
        assert!(plan.contains(partitions), "{sql}: {plan}");
        assert_eq!(rows(&client, sql).await, vec![answer], "{sql}");
    }
}

/// A time-series table keeps each partition in files of its own under a
/// directory named for the partition, sorted by time however late the
/// rows came; a time range scans only its partitions; and partitions past
/// the retention are dropped by the leader, for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_series_tables_partition_sort_and_expire() {
    let mut ciab = start();
    let conn = ciab.conn_str("ciab");
    let client = connect(&conn).await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE m (ts timestamptz, host text, v bigint) \
             WITH (time_column = 'ts', partition_interval = '1 day', retention = '30 days')",
        )
        .await
        .unwrap();
    // Three days of a minute a row, written day 3, day 1, day 2, each day
    // backwards: every row arrives late.
    let day_us = 86_400_000_000_i64;
    let today = chrono::Utc::now().timestamp_micros().div_euclid(day_us) * day_us;
    let first = today - 3 * day_us;
    for day in [2, 0, 1] {
        let start = first + day * day_us;
        client
            .batch_execute(&format!(
                "INSERT INTO m SELECT to_timestamp(({start} + i * 60000000) / 1000000), 'h' || (i % 7), i \
                 FROM generate_series(1439, 0, -1) AS g(i)"
            ))
            .await
            .unwrap();
    }
    let partitions = "SELECT extract(epoch FROM partition_start)::bigint, rows, files \
                      FROM ciab.partitions WHERE table_name = 'm' ORDER BY 1";
    let expected = |files: u8| {
        (0..3)
            .map(|d| format!("{}|1440|{files}", (first + d * day_us) / 1_000_000))
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&client, partitions).await, expected(0));

    // A clean stop writes the files; they come back on restart.
    drop(client);
    ciab.stop().unwrap();
    let table_dir = std::fs::read_dir(ciab.data_dir().join("tables"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("the table's directory");
    let mut dirs: Vec<String> = std::fs::read_dir(&table_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let dir_of = |us: i64| {
        chrono::DateTime::from_timestamp_micros(us)
            .unwrap()
            .format("%Y-%m-%dT%H%M%SZ")
            .to_string()
    };
    assert_eq!(
        dirs,
        (0..3)
            .map(|d| dir_of(first + d * day_us))
            .collect::<Vec<_>>()
    );
    for dir in &dirs {
        let files: Vec<_> = std::fs::read_dir(table_dir.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "one file for the partition {dir}");
        let times = file_times(&files[0]);
        assert_eq!(times.len(), 1440);
        assert!(times.is_sorted(), "{dir}'s file is in time order");
    }
    ciab.restart().unwrap();
    let client = connect(&conn).await.expect("connect");
    assert_eq!(rows(&client, partitions).await, expected(1));

    // A day's range reads that day's partition only.
    let day2 = (first + day_us) / 1_000_000;
    let sql = format!(
        "SELECT count(*), min(v), max(v) FROM m \
         WHERE ts >= to_timestamp({day2}) AND ts < to_timestamp({day2} + 86400)"
    );
    let plan = rows(&client, &format!("EXPLAIN {sql}")).await;
    let scan = plan.iter().find(|l| l.contains("DataSourceExec")).unwrap();
    assert!(scan.contains("partition_sizes=[1]"), "{scan}");
    // ciab.metrics counts what scans read and skipped.
    let metrics = ["segments_read", "segments_skipped"];
    let before = counters(&client, metrics).await;
    assert_eq!(rows(&client, &sql).await, vec!["1440|0|1439"]);
    let after = counters(&client, metrics).await;
    assert_eq!(
        [after[0] - before[0], after[1] - before[1]],
        [1, 2],
        "one partition read, two skipped"
    );

    // Rows in files sorted by time (their row ids out of order) are found
    // by id: an UPDATE there and back.
    let h3 = "SELECT count(*), sum(v) FROM m WHERE host = 'h3'";
    let before = rows(&client, h3).await;
    client
        .batch_execute("UPDATE m SET v = -v - 1 WHERE host = 'h3'")
        .await
        .unwrap();
    let (count, sum) = before[0].split_once('|').unwrap();
    let negated: i64 = -sum.parse::<i64>().unwrap() - count.parse::<i64>().unwrap();
    assert_eq!(rows(&client, h3).await, vec![format!("{count}|{negated}")]);
    client
        .batch_execute("UPDATE m SET v = -v - 1 WHERE host = 'h3'")
        .await
        .unwrap();
    assert_eq!(rows(&client, h3).await, before);

    // Rows from 40 days ago are past the retention: the leader drops
    // their partition within a second or two. The rest stays.
    let old = first - 37 * day_us;
    client
        .batch_execute(&format!(
            "INSERT INTO m VALUES (to_timestamp({}), 'old', -1), (to_timestamp({}), 'old', -2)",
            old / 1_000_000 + 1,
            old / 1_000_000 + 2
        ))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while rows(&client, "SELECT count(*) FROM m WHERE host = 'old'").await != vec!["0"] {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired partition is still there"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // (The UPDATEs left every partition's rows in memory, to be written
    // by the next snapshot.)
    assert_eq!(rows(&client, partitions).await, expected(0));
    // Dropped for good: a restart does not bring the rows back.
    drop(client);
    ciab.kill9().unwrap();
    ciab.restart().unwrap();
    let client = connect(&conn).await.expect("connect");
    assert_eq!(
        rows(&client, "SELECT count(*), sum(v) FROM m").await,
        vec![format!("{}|{}", 3 * 1440, 3 * (1439 * 1440 / 2))]
    );

    // A shorter retention takes effect at once: of the three days, the
    // first ended two days ago.
    client
        .batch_execute("ALTER TABLE m SET (retention = '2 days')")
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while rows(&client, "SELECT count(*) FROM m").await != vec![(2 * 1440).to_string()] {
        assert!(
            std::time::Instant::now() < deadline,
            "the first day outlived the new retention"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let kept = rows(&client, partitions).await;
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept[0].starts_with(&format!("{}|", (first + day_us) / 1_000_000)));
}

/// The time column of each row in a Parquet file ciab wrote.
fn file_times(path: &std::path::Path) -> Vec<i64> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::TimestampMicrosecondType;
    let file = std::fs::File::open(path).unwrap();
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
    reader
        .flat_map(|batch| {
            let batch = batch.unwrap();
            let ts = batch.column(0).as_primitive::<TimestampMicrosecondType>();
            ts.values().to_vec()
        })
        .collect()
}
