//! What table scans tell DataFusion's optimizer: each column's range and
//! distinct values, from which it and ciab's own rules choose join orders
//! and build sides. The rows such plans
//! return are checked against PostgreSQL in
//! `sql-tests/differential/joins.slt`; these tests check the plans.

use ciab_sql_tests::connect;

use crate::{counters, rows, start};

/// A scan reports each column's least and greatest value and how many
/// distinct values it holds (estimated from a sketch per segment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_report_column_ranges_and_distinct_values() {
    let ciab = start();
    let client = connect(&ciab.conn_str("ciab")).await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE s (id int PRIMARY KEY, a int, b text);
             INSERT INTO s VALUES (1, 5, 'x'), (2, 9, 'y'), (3, NULL, 'x');
             INSERT INTO s SELECT i, i % 40, 'z' FROM generate_series(4, 2000) AS g(i);
             SET datafusion.explain.show_statistics = true",
        )
        .await
        .unwrap();
    let plan = rows(&client, "EXPLAIN SELECT id, a, b FROM s")
        .await
        .join("\n");
    for expected in [
        "Rows=Exact(2000)",
        // The primary key: exactly as many distinct values as rows.
        "Min=Inexact(Int32(1)) Max=Inexact(Int32(2000)) Null=Exact(0) Distinct=Inexact(2000)",
        "Min=Inexact(Int32(0)) Max=Inexact(Int32(39)) Null=Exact(1) Distinct=Inexact(",
        r#"Min=Inexact(Utf8("x")) Max=Inexact(Utf8("z")) Null=Exact(0) Distinct=Inexact(3)"#,
    ] {
        assert!(plan.contains(expected), "{expected} in {plan}");
    }
    // Other columns' counts are estimates: 40 values within a tenth.
    let estimate: Vec<u64> = plan
        .split("Distinct=Inexact(")
        .skip(1)
        .map(|s| s[..s.find(')').unwrap()].parse().unwrap())
        .collect();
    assert!((36..=44).contains(&estimate[1]), "{plan}");
}

/// TPC-H q18's shape. With distinct counts, DataFusion builds the semi
/// join's hash table from the few orders the subquery keeps (about 20,000
/// groups, a fifth of them estimated to pass) rather than from the join of
/// every order to every line, which it would otherwise take for 20,000
/// rows: one per order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semi_join_builds_on_its_small_side() {
    let ciab = start();
    let client = connect(&ciab.conn_str("ciab")).await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE orders (ok int PRIMARY KEY, oc int);
             CREATE TABLE lines (lk int, lq int);
             INSERT INTO orders SELECT i, i % 100 FROM generate_series(1, 20000) AS g(i);
             INSERT INTO lines SELECT i / 4 + 1, CASE WHEN (i / 4 + 1) % 2000 = 0 THEN 100 ELSE 1 END
               FROM generate_series(0, 79999) AS g(i)",
        )
        .await
        .unwrap();
    let sql = "SELECT ok, sum(lq) FROM orders, lines \
               WHERE ok IN (SELECT lk FROM lines GROUP BY lk HAVING sum(lq) > 300) AND ok = lk \
               GROUP BY ok ORDER BY ok";
    let expected: Vec<String> = (1..=10).map(|i| format!("{}|400", i * 2000)).collect();
    assert_eq!(rows(&client, sql).await, expected);
    let plan = rows(&client, &format!("EXPLAIN {sql}")).await;
    assert!(
        plan.iter().any(|l| l.contains("join_type=RightSemi")),
        "the subquery's side is built: {plan:#?}"
    );
}

/// TPC-H q12's shape. DataFusion's interval analysis cannot read an IN
/// list of strings, and without ciab's estimate it took the filtered line
/// items for a fifth of the table (8,000 rows) and built the join's hash
/// table from the 10,000 orders. ciab's estimate (2 of 7 modes, a 20th of
/// the days: about 570 rows) builds it from the line items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_of_strings_is_estimated_from_its_conditions() {
    let ciab = start();
    let client = connect(&ciab.conn_str("ciab")).await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE mid (mk int PRIMARY KEY);
             CREATE TABLE big (bk int, mode text, d int);
             INSERT INTO mid SELECT i FROM generate_series(1, 10000) AS g(i);
             INSERT INTO big SELECT i % 10000 + 1, chr(97 + i % 7), i % 400
               FROM generate_series(0, 39999) AS g(i)",
        )
        .await
        .unwrap();
    let sql = "SELECT count(*) FROM mid, big \
               WHERE mk = bk AND mode IN ('a', 'b') AND d >= 100 AND d < 120";
    assert_eq!(rows(&client, sql).await, vec!["571"]);
    let plan = rows(&client, &format!("EXPLAIN {sql}")).await;
    assert!(
        plan.iter()
            .any(|l| l.contains("HashJoinExec") && l.contains("on=[(bk@")),
        "the line items' side is built: {plan:#?}"
    );
}

/// TPC-H q21's shape. As written, the 40,000 facts are joined with their
/// 1,000 suppliers and then with the 10,000 orders before the join with
/// `dim` keeps the suppliers of one value in 25. ciab joins in the order
/// of the estimated rows: `dim` with the suppliers first, then the facts,
/// then the orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inner_joins_are_joined_in_the_order_of_their_estimated_rows() {
    let ciab = start();
    let client = connect(&ciab.conn_str("ciab")).await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE dim (dk int PRIMARY KEY, name text);
             CREATE TABLE sup (sk int PRIMARY KEY, sdk int);
             CREATE TABLE ord (ok int PRIMARY KEY);
             CREATE TABLE fact (fok int, fsk int);
             INSERT INTO dim SELECT i, 'n' || i FROM generate_series(0, 24) AS g(i);
             INSERT INTO sup SELECT i, i % 25 FROM generate_series(1, 1000) AS g(i);
             INSERT INTO ord SELECT i FROM generate_series(1, 10000) AS g(i);
             INSERT INTO fact SELECT i / 4 + 1, i % 1000 + 1 FROM generate_series(0, 39999) AS g(i)",
        )
        .await
        .unwrap();
    let sql = "SELECT count(*) FROM sup, fact, ord, dim \
               WHERE sk = fsk AND ok = fok AND sdk = dk AND name = 'n3'";
    assert_eq!(rows(&client, sql).await, vec!["1600"]);
    let plan = rows(&client, &format!("EXPLAIN {sql}")).await;
    let joins: Vec<&String> = plan.iter().filter(|l| l.contains("HashJoinExec")).collect();
    // The plan prints each join above its inputs: the last join printed
    // is the first made.
    assert_eq!(joins.len(), 3, "{plan:#?}");
    for (join, key) in joins.iter().zip(["ok", "sk", "dk"]) {
        assert!(
            join.contains(&format!("({key}@")) || join.contains(&format!(", {key}@")),
            "{key} in {join}: {plan:#?}"
        );
    }
}

/// TPC-H q18's subquery: line items stored in order of their order key
/// (as COPY loads a sorted file), summed by it. The aggregation reads them in that order and keeps a few
/// groups at a time, until rows out of order are added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregation_reads_a_scan_in_the_order_of_its_group() {
    let ciab = start();
    let client = connect(&ciab.conn_str("ciab")).await.expect("connect");
    client
        .batch_execute(
            // One partition, so that the rows are stored as generated: with
            // two, an INSERT ... SELECT ... ORDER BY was once stored out of
            // order under CI's load, as nothing binds an INSERT to it.
            "CREATE TABLE lines (ok bigint, qty int);
             SET datafusion.execution.target_partitions = 1;
             INSERT INTO lines SELECT i / 4 + 1, i % 9 FROM generate_series(0, 39999) AS g(i);
             INSERT INTO lines SELECT i / 4 + 1, i % 9 FROM generate_series(40000, 79999) AS g(i);
             RESET datafusion.execution.target_partitions",
        )
        .await
        .unwrap();
    let sql = "SELECT count(*), sum(s) FROM (SELECT ok, sum(qty) AS s FROM lines GROUP BY ok) t";
    let ordered = |plan: &[String]| {
        plan.iter()
            .any(|l| l.contains("AggregateExec") && l.contains("ordering_mode=Sorted"))
    };
    assert_eq!(rows(&client, sql).await, vec!["20000|319996"]);
    let plan = rows(&client, &format!("EXPLAIN {sql}")).await;
    assert!(ordered(&plan), "aggregated in order: {plan:#?}");
    // In two partitions cut between orders, each aggregated whole: no
    // final aggregation hashes every order again.
    client
        .batch_execute("SET datafusion.execution.target_partitions = 2")
        .await
        .unwrap();
    assert_eq!(rows(&client, sql).await, vec!["20000|319996"]);
    let plan = rows(&client, &format!("EXPLAIN {sql}")).await;
    let whole = |plan: &[String]| {
        plan.iter().any(|l| {
            l.contains("AggregateExec: mode=SinglePartitioned")
                && l.contains("ordering_mode=Sorted")
        })
    };
    assert!(whole(&plan), "{plan:#?}");
    assert!(
        !plan
            .iter()
            .any(|l| l.contains("mode=FinalPartitioned, gby=[ok")),
        "{plan:#?}"
    );
    // A key below the greatest, in a later statement: no order any more.
    client
        .batch_execute("INSERT INTO lines VALUES (1, 5)")
        .await
        .unwrap();
    assert_eq!(rows(&client, sql).await, vec!["20000|320001"]);
    let plan = rows(&client, &format!("EXPLAIN {sql}")).await;
    assert!(!ordered(&plan), "hashed: {plan:#?}");
    assert!(!whole(&plan), "{plan:#?}");
}

/// TPC-H q16's shape. NOT IN is three-valued, so DataFusion plans it as a
/// null-aware anti join, built on the outer side (the many parts), unless
/// both keys are never NULL. ciab's Arrow fields are always nullable, and
/// its rule reads NOT NULL from the catalog instead: a primary key and a
/// NOT NULL column make a plain anti join, built on the few suppliers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_in_over_keys_never_null_builds_on_its_small_side() {
    let ciab = start();
    let client = connect(&ciab.conn_str("ciab")).await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE supplier (s int PRIMARY KEY, comment text);
             CREATE TABLE partsupp (p int NOT NULL, s int NOT NULL, s_maybe int);
             INSERT INTO supplier SELECT i, CASE WHEN i % 500 = 0 THEN 'complaints' END
               FROM generate_series(1, 2000) AS g(i);
             INSERT INTO partsupp SELECT i, i % 2000 + 1, i % 2000 + 1 FROM generate_series(1, 20000) AS g(i)",
        )
        .await
        .unwrap();
    let query = |key: &str| {
        format!(
            "SELECT count(*) FROM partsupp \
             WHERE {key} NOT IN (SELECT s FROM supplier WHERE comment = 'complaints')"
        )
    };
    for key in ["s", "s_maybe"] {
        assert_eq!(rows(&client, &query(key)).await, vec!["19960"]);
    }
    let plan = rows(&client, &format!("EXPLAIN {}", query("s"))).await;
    assert!(
        plan.iter().any(|l| l.contains("join_type=RightAnti")),
        "the suppliers' side is built: {plan:#?}"
    );
    assert!(!plan.iter().any(|l| l.contains("null_aware")), "{plan:#?}");
    // A key that may be NULL keeps NOT IN's NULL rules.
    let plan = rows(&client, &format!("EXPLAIN {}", query("s_maybe"))).await;
    assert!(
        plan.iter()
            .any(|l| l.contains("join_type=LeftAnti") && l.contains("null_aware")),
        "{plan:#?}"
    );
}

/// A filter asking for a few of a column's many values, and a hash join's
/// probe of such a column from a small build side, look the values up in
/// each large segment instead of reading every row (`segments_looked_up`
/// in `ciab.metrics`); a column of few values is read whole. The rows such scans give are checked against PostgreSQL in
/// `sql-tests/differential/lookups.slt`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn few_of_a_columns_many_values_are_looked_up() {
    let ciab = start();
    let client = connect(&ciab.conn_str("ciab")).await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE e (src bigint, dst bigint, kind int, ref int);
             INSERT INTO e SELECT i / 4, (i * 7919) % 20000, i % 3, i % 100 FROM generate_series(0, 19999) AS g(i)",
        )
        .await
        .unwrap();
    let metric = ["segments_looked_up"];
    let [mut looked_up] = counters(&client, metric).await;
    let mut segments_looked_up = async |sql: &str| {
        let answer = rows(&client, sql).await;
        let [now] = counters(&client, metric).await;
        let delta = now - looked_up;
        looked_up = now;
        (answer, delta)
    };
    // One segment of 20,000 rows, looked up for the two values.
    let (answer, delta) =
        segments_looked_up("SELECT count(*), sum(dst) FROM e WHERE src IN (5, 6)").await;
    assert_eq!((answer, delta), (vec!["8|88772".to_string()], 1));
    let (answer, delta) = segments_looked_up("SELECT count(*) FROM e WHERE kind = 1").await;
    assert_eq!((answer, delta), (vec!["6667".to_string()], 0));
    // A reference to a key: 200 rows a value, as a supplier's line items.
    let (answer, delta) =
        segments_looked_up("SELECT count(*), sum(src) FROM e WHERE ref IN (3, 7)").await;
    assert_eq!((answer, delta), (vec!["400|995200".to_string()], 1));
    // The join's build side: e.src = 0 looked up; its probe side: the
    // four destinations found looked up in each partition of the scan.
    let hop = "SELECT count(*), sum(f.dst) FROM e JOIN e f ON f.src = e.dst WHERE e.src = 0";
    let (answer, delta) = segments_looked_up(hop).await;
    assert_eq!(answer, vec!["8|61956"]);
    assert!(delta >= 2, "{delta} segments looked up");
    // (Planning looks e.src = 0 up as well.)
    let (plan, _) = segments_looked_up(&format!("EXPLAIN {hop}")).await;
    let plan = plan.join("\n");
    assert!(plan.contains("looks up DynamicFilter"), "{plan}");
    // A build side of 1,600 rows holding 400 keys, each four times, in a
    // partitioned join with a condition besides its keys: the keys are
    // looked up counted once.
    client
        .batch_execute(
            "CREATE TABLE k (v bigint);
             INSERT INTO k SELECT i % 400 FROM generate_series(0, 1599) AS g(i);
             SET datafusion.optimizer.hash_join_single_partition_threshold = 0;
             SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 0",
        )
        .await
        .unwrap();
    let keys =
        "SELECT count(*), sum(f.src) FROM k JOIN e f ON f.dst = k.v AND f.src > k.v - 100000";
    let (answer, delta) = segments_looked_up(keys).await;
    assert_eq!(answer, vec!["1600|4003600"]);
    assert!(delta >= 1, "{delta} segments looked up");
    // Keys loaded in order, four segments of 8,192 (a transaction each).
    // 3,000 keys are too many to look up in a segment of 8,192 different
    // values, but each segment looks up only the 750 within its bounds.
    client
        .batch_execute(
            "CREATE TABLE ordered (id bigint, pad int);
             CREATE TABLE wanted (id bigint);
             INSERT INTO wanted SELECT i * 10 + 1 FROM generate_series(0, 2999) AS g(i)",
        )
        .await
        .unwrap();
    for first in (0..32_768).step_by(8_192) {
        let last = first + 8_191;
        let insert = format!(
            "INSERT INTO ordered SELECT i, i % 7 FROM generate_series({first}, {last}) AS g(i)"
        );
        client.batch_execute(&insert).await.unwrap();
    }
    let listed: Vec<String> = (0..3_000).map(|i| (i * 10 + 1).to_string()).collect();
    let in_list = format!(
        "SELECT count(*), sum(id) FROM ordered WHERE id IN ({})",
        listed.join(", ")
    );
    let sum: i64 = (0..3_000).map(|i| i * 10 + 1).sum();
    let (answer, delta) = segments_looked_up(&in_list).await;
    assert_eq!((answer, delta), (vec![format!("3000|{sum}")], 4));
    let join = "SELECT count(*), sum(o.id) FROM wanted w JOIN ordered o ON o.id = w.id";
    let (answer, delta) = segments_looked_up(join).await;
    assert_eq!(answer, vec![format!("3000|{sum}")]);
    assert!(delta >= 4, "{delta} segments looked up");
    // 1,500 keys, more than DataFusion lists in its filter, tapped from
    // the build side (KeyTapExec) and looked up, 390 in each segment, in
    // inner, semi and anti joins (EXISTS and NOT EXISTS with a condition
    // besides the key, as in TPC-H q21), and in a join of two keys by the
    // one whose values are few of the column's (the pads are 7 values).
    client
        .batch_execute(
            "CREATE TABLE many (id bigint, pad int);
             INSERT INTO many SELECT i * 21 + 3, i % 5 FROM generate_series(0, 1499) AS g(i)",
        )
        .await
        .unwrap();
    let sum: i64 = (0..1_500).map(|i| i * 21 + 3).sum();
    let joins = [
        (
            "SELECT count(*), sum(o.id) FROM many m JOIN ordered o ON o.id = m.id".to_string(),
            format!("1500|{sum}"),
        ),
        (
            "SELECT count(*) FROM many m JOIN ordered o ON o.pad = m.pad AND o.id = m.id"
                .to_string(),
            "300".to_string(),
        ),
        (
            "SELECT count(*) FROM many m WHERE EXISTS \
             (SELECT 1 FROM ordered o WHERE o.id = m.id AND o.pad <> m.pad)"
                .to_string(),
            "1200".to_string(),
        ),
        (
            "SELECT count(*) FROM many m WHERE NOT EXISTS \
             (SELECT 1 FROM ordered o WHERE o.id = m.id AND o.pad <> m.pad)"
                .to_string(),
            "300".to_string(),
        ),
    ];
    for (join, expected) in joins {
        let (answer, delta) = segments_looked_up(&join).await;
        assert_eq!(answer, vec![expected], "{join}");
        assert!(delta >= 4, "{delta} segments looked up: {join}");
        let (plan, _) = segments_looked_up(&format!("EXPLAIN {join}")).await;
        let plan = plan.join("\n");
        assert!(plan.contains("KeyTapExec"), "{plan}");
    }
}

/// A quantified edge of at most four hops is a join per hop, whose keys
/// the scans of the edges look up; a longer one is a recursive query,
/// whose rounds read every edge. Their walks are checked against Python's
/// in `sql-tests/graphs/pgq_diff.py`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_quantified_edges_are_joins_that_look_their_keys_up() {
    let ciab = start();
    let client = connect(&ciab.conn_str("ciab")).await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE v (id bigint PRIMARY KEY);
             CREATE TABLE e (src bigint, dst bigint);
             INSERT INTO v SELECT i FROM generate_series(0, 4999) AS g(i);
             INSERT INTO e SELECT i / 4, (i * 7919) % 5000 FROM generate_series(0, 19999) AS g(i);
             CREATE PROPERTY GRAPH g VERTEX TABLES (v) EDGE TABLES
               (e SOURCE KEY (src) REFERENCES v DESTINATION KEY (dst) REFERENCES v)",
        )
        .await
        .unwrap();
    let walks = |quantifier: &str| {
        format!(
            "SELECT count(*) FROM GRAPH_TABLE (g MATCH (a WHERE a.id = 7)-[]->{quantifier}(b) \
             COLUMNS (b.id))"
        )
    };
    assert_eq!(rows(&client, &walks("{2}")).await, vec!["16"]);
    let plan = rows(&client, &format!("EXPLAIN {}", walks("{2}")))
        .await
        .join("\n");
    assert!(!plan.contains("RecursiveQueryExec"), "{plan}");
    assert!(
        plan.matches("looks up DynamicFilter").count() >= 2,
        "{plan}"
    );
    let plan = rows(&client, &format!("EXPLAIN {}", walks("{1,5}")))
        .await
        .join("\n");
    assert!(plan.contains("RecursiveQueryExec"), "{plan}");
}

/// `1 - discount`, with the literal's scale below the column's, is planned
/// with the literal at the column's scale, so Arrow subtracts without
/// rescaling every row, and the product of two decimals of at most 18
/// digits is `decimal_product` (`planner/src/decimal_scales.rs`); the
/// values are checked against PostgreSQL in
/// `sql-tests/differential/numeric_literals.slt`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimal_literals_take_the_scale_of_what_they_are_added_to() {
    let ciab = start();
    let client = connect(&ciab.conn_str("ciab")).await.expect("connect");
    client
        .batch_execute("CREATE TABLE lines (price numeric(15, 2), discount numeric(15, 2))")
        .await
        .unwrap();
    let plan = rows(
        &client,
        "EXPLAIN SELECT sum(price * (1 - discount)), sum(discount + 0.5) FROM lines",
    )
    .await
    .join("\n");
    for expected in [
        "decimal_product(lines.price, Decimal128(1.00,12,2) - lines.discount)",
        "discount + 0.50",
    ] {
        assert!(plan.contains(expected), "{expected} in {plan}");
    }
}

/// `LIKE '%a%b%'`, which Arrow would match by a regular expression, is
/// planned as a search for each part (`planner/src/like_parts.rs`); the
/// patterns Arrow matches itself stay LIKE. The results are checked
/// against PostgreSQL in `sql-tests/differential/like_patterns.slt`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn like_patterns_of_several_parts_are_searched_part_by_part() {
    let ciab = start();
    let client = connect(&ciab.conn_str("ciab")).await.expect("connect");
    client
        .batch_execute("CREATE TABLE notes (body text)")
        .await
        .unwrap();
    let plan = |pattern: &'static str| {
        let client = &client;
        async move {
            let sql = format!("EXPLAIN SELECT count(*) FROM notes WHERE body NOT LIKE '{pattern}'");
            rows(client, &sql).await.join("\n")
        }
    };
    let parts = plan("%special%requests%").await;
    assert!(
        parts.contains("NOT like_parts(notes.body, Utf8(\"%special%requests%\"))"),
        "{parts}"
    );
    for pattern in [
        "%requests%",
        "special%",
        "%spe_ial%requests%",
        "special%requests%",
    ] {
        let kept = plan(pattern).await;
        assert!(!kept.contains("like_parts"), "{pattern}: {kept}");
        assert!(kept.contains("NOT LIKE"), "{pattern}: {kept}");
    }
}
