//! sqlx against a server at HOST PORT: sqlx speaks only the extended
//! protocol with binary values, and checks every column's described type
//! against the Rust type it decodes into. Prints `ok` when all passed;
//! passes against PostgreSQL 15 too.

use sqlx::types::chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use sqlx::types::{Decimal, JsonValue, Uuid};
use sqlx::{Connection, Row};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, host, port] = &args[..] else {
        panic!("usage: ciab-sqlx-scenario HOST PORT");
    };

    let url = format!("postgres://ciab@{host}:{port}/ciab");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TABLE sx (id integer PRIMARY KEY, s smallint, i integer, b bigint, r real, \
         d double precision, ok boolean, n numeric(12, 3), t text, v varchar(20), by bytea, \
         dt date, tm time, ts timestamp, tz timestamptz, u uuid, j jsonb)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let at = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let time = NaiveTime::from_hms_micro_opt(12, 34, 56, 789_000).unwrap();
    let numbers: (i16, i32, i64, f32, f64, bool, Decimal) = (
        -7,
        1 << 20,
        1 << 40,
        1.5,
        -2.25,
        true,
        Decimal::new(-123_456, 3),
    );
    #[allow(clippy::type_complexity)]
    let others: (
        String,
        String,
        Vec<u8>,
        NaiveDate,
        NaiveTime,
        NaiveDateTime,
        DateTime<Utc>,
        Uuid,
        JsonValue,
    ) = (
        "text é".into(),
        "varchar".into(),
        vec![0, 255, 10],
        at,
        time,
        at.and_time(time),
        at.and_time(time).and_utc(),
        Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap(),
        serde_json::json!({"a": [1, 2], "b": null}),
    );
    let insert = "INSERT INTO sx VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                  $13, $14, $15, $16, $17)";
    sqlx::query(insert)
        .bind(1)
        .bind(numbers.0)
        .bind(numbers.1)
        .bind(numbers.2)
        .bind(numbers.3)
        .bind(numbers.4)
        .bind(numbers.5)
        .bind(numbers.6)
        .bind(&others.0)
        .bind(&others.1)
        .bind(&others.2)
        .bind(others.3)
        .bind(others.4)
        .bind(others.5)
        .bind(others.6)
        .bind(others.7)
        .bind(&others.8)
        .execute(&mut conn)
        .await
        .unwrap();
    let got = sqlx::query_as("SELECT s, i, b, r, d, ok, n FROM sx WHERE id = $1")
        .bind(1)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(numbers, got);
    let got = sqlx::query_as("SELECT t, v, by, dt, tm, ts, tz, u, j FROM sx WHERE id = $1")
        .bind(1)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(others, got);

    // NULLs both ways.
    sqlx::query("INSERT INTO sx (id, t, n) VALUES ($1, $2, $3)")
        .bind(2)
        .bind(None::<String>)
        .bind(None::<Decimal>)
        .execute(&mut conn)
        .await
        .unwrap();
    let nulls = sqlx::query("SELECT t, n, u FROM sx WHERE id = 2")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(nulls.get::<Option<String>, _>(0), None);
    assert_eq!(nulls.get::<Option<Decimal>, _>(1), None);
    assert_eq!(nulls.get::<Option<Uuid>, _>(2), None);

    // Errors carry their SQLSTATE; the connection goes on.
    let e = sqlx::query("INSERT INTO sx (id) VALUES (1)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(
        e.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("23505"),
        "{e}"
    );

    // A rolled-back transaction leaves nothing behind.
    let mut txn = conn.begin().await.unwrap();
    sqlx::query("DELETE FROM sx")
        .execute(&mut *txn)
        .await
        .unwrap();
    txn.rollback().await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM sx")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 2);
    conn.close().await.unwrap();
    println!("ok");
}
