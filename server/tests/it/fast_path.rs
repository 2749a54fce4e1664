//! The fast path with parameters, as drivers use it: prepared lookups and
//! inserts with typed, binary parameters, NULLs and errors. The literal
//! shapes are in `sql-tests/slt/fast_path.slt`.

use ciab_sql_tests::connect;
use tokio_postgres::types::Type;

use crate::{sqlstate, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_lookups_and_inserts() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE kv (k integer PRIMARY KEY, v text NOT NULL, big bigint); \
             CREATE TABLE pair (a bigint, b varchar(10), n smallint, PRIMARY KEY (a, b))",
        )
        .await
        .unwrap();

    let insert = client
        .prepare("INSERT INTO kv (k, v, big) VALUES ($1, $2, $3)")
        .await
        .unwrap();
    assert_eq!(insert.params(), &[Type::INT4, Type::TEXT, Type::INT8]);
    for k in 1..=3 {
        let n = client
            .execute(&insert, &[&k, &format!("v{k}"), &(i64::from(k) << 40)])
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    let none: Option<i64> = None;
    client
        .execute(&insert, &[&4i32, &"four", &none])
        .await
        .unwrap();
    let e = client
        .execute(&insert, &[&1i32, &"again", &none])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23505", "{e}");
    let null_text: Option<&str> = None;
    let e = client
        .execute(&insert, &[&5i32, &null_text, &none])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23502", "{e}");

    let lookup = client
        .prepare("SELECT v, big, k FROM kv WHERE k = $1")
        .await
        .unwrap();
    assert_eq!(lookup.params(), &[Type::INT4]);
    let types: Vec<Type> = lookup.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(types, vec![Type::TEXT, Type::INT8, Type::INT4]);
    let row = client.query_one(&lookup, &[&2i32]).await.unwrap();
    assert_eq!(row.get::<_, &str>(0), "v2");
    assert_eq!(row.get::<_, i64>(1), 2 << 40);
    assert_eq!(row.get::<_, i32>(2), 2);
    let row = client.query_one(&lookup, &[&4i32]).await.unwrap();
    assert_eq!(row.get::<_, Option<i64>>(1), None);
    assert!(client.query(&lookup, &[&9i32]).await.unwrap().is_empty());
    let null_key: Option<i32> = None;
    assert!(
        client
            .query(&lookup, &[&null_key])
            .await
            .unwrap()
            .is_empty()
    );

    // A composite key, one parameter per column, the string one first.
    let insert_pair = client
        .prepare("INSERT INTO pair VALUES ($2, $1, 7), ($2, 'z', $3)")
        .await
        .unwrap();
    // Each parameter is described as its column's type, varchar included.
    assert_eq!(
        insert_pair.params(),
        &[Type::VARCHAR, Type::INT8, Type::INT2]
    );
    client
        .execute(&insert_pair, &[&"y", &10i64, &8i16])
        .await
        .unwrap();
    let e = client
        .execute(&insert_pair, &[&"much too long", &11i64, &8i16])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22001", "{e}");
    let lookup_pair = client
        .prepare("SELECT n FROM pair WHERE b = $1 AND a = $2")
        .await
        .unwrap();
    let row = client
        .query_one(&lookup_pair, &[&"z", &10i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i16>(0), 8);
    let row = client
        .query_one(&lookup_pair, &[&"y", &10i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i16>(0), 7);

    // The statement outlives a change of the table: it is resolved again
    // at each execution.
    client
        .batch_execute("DELETE FROM kv WHERE k = 2; INSERT INTO kv VALUES (2, 'new', NULL)")
        .await
        .unwrap();
    let row = client.query_one(&lookup, &[&2i32]).await.unwrap();
    assert_eq!(row.get::<_, &str>(0), "new");
}

/// An integer literal is described as PostgreSQL types it: integer when it
/// fits, bigint when not; by the fast path (`SELECT 1`) and the planner
/// (`SELECT 1 + 1`) alike, so drivers read the same types as from
/// PostgreSQL (node-postgres, say, gives a bigint as a string).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_literals_are_described_as_postgresql_types_them() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    let cases = [
        (
            "SELECT 1, -2147483648, 2147483648",
            1,
            [Type::INT4, Type::INT4, Type::INT8],
        ),
        (
            "SELECT 1 + 1, 2 * 3000000000, 7 / 2",
            2,
            [Type::INT4, Type::INT8, Type::INT4],
        ),
        (
            "SELECT * FROM (VALUES (5, 6, 3000000000)) v",
            5,
            [Type::INT4, Type::INT4, Type::INT8],
        ),
    ];
    for (sql, first, want) in cases {
        let statement = client.prepare(sql).await.unwrap();
        let types: Vec<Type> = statement
            .columns()
            .iter()
            .map(|c| c.type_().clone())
            .collect();
        assert_eq!(types, want, "{sql}");
        let row = client.query_one(&statement, &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), first, "{sql}");
    }
    let e = client
        .query("SELECT 2147483647 + 1", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22003", "{e}");
}
