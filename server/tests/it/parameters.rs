//! Parameter types, against PostgreSQL 15: the same statements prepared on
//! both, with the parameter types a driver declares at Parse (psycopg and
//! JDBC name theirs, node-postgres and pgx leave them to the server), then
//! run with values sent as text, as those drivers send them. The types each
//! server describes must be of one kind (integer, float, text, ...), the
//! rows the same, or both must fail with one SQLSTATE.

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

use crate::postgres_and_ciab;

/// What one server made of a statement.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ran {
        params: Vec<&'static str>,
        columns: Vec<&'static str>,
        rows: Vec<Vec<Option<String>>>,
    },
    Failed(String),
}

/// (statement, declared parameter types, values as text)
type Case = (
    &'static str,
    &'static [Type],
    &'static [Option<&'static str>],
);

const CASES: &[Case] = &[
    // Undeclared: a function's argument types give the parameter its type.
    ("SELECT abs($1)", &[], &[Some("-3")]),
    ("SELECT power($1, 2)", &[], &[Some("3")]),
    ("SELECT repeat($1, $2)", &[], &[Some("ab"), Some("2")]),
    ("SELECT left($1, $2)", &[], &[Some("abc"), Some("2")]),
    (
        "SELECT substr($1, $2, $3)",
        &[],
        &[Some("abcdef"), Some("2"), Some("3")],
    ),
    ("SELECT round(2.567, $1)::text", &[], &[Some("1")]),
    ("SELECT coalesce($1, 3)", &[], &[Some("5")]),
    ("SELECT coalesce($1, 3)", &[], &[None]),
    ("SELECT upper($1), length($1)", &[], &[Some("abc")]),
    ("SELECT greatest($1, $2)", &[], &[Some("10"), Some("9")]),
    ("SELECT * FROM generate_series(1, $1)", &[], &[Some("3")]),
    ("SELECT generate_series($1, 3)", &[], &[Some("2")]),
    (
        "SELECT date_trunc($1, TIMESTAMP '2024-05-06 07:08:09')::text",
        &[],
        &[Some("day")],
    ),
    ("SELECT $1", &[], &[Some("x")]),
    ("SELECT abs($1)", &[], &[Some("x")]),
    // Declared, as psycopg declares Python ints (int2 while they fit) and
    // floats, and JDBC declares strings (varchar).
    ("SELECT $1", &[Type::INT2], &[Some("7")]),
    (
        "SELECT $1, $2",
        &[Type::FLOAT8, Type::TEXT],
        &[Some("1.5"), Some("a")],
    ),
    ("SELECT abs($1)", &[Type::INT2], &[Some("-3")]),
    (
        "SELECT greatest($1, $2)",
        &[Type::INT2, Type::INT4],
        &[Some("1"), Some("5")],
    ),
    (
        "SELECT substr($1, $2, $3)",
        &[Type::UNKNOWN, Type::INT2, Type::INT2],
        &[Some("abcdef"), Some("2"), Some("3")],
    ),
    (
        "SELECT repeat($1, $2)",
        &[Type::UNKNOWN, Type::INT2],
        &[Some("ab"), Some("3")],
    ),
    (
        "SELECT * FROM generate_series(1, $1)",
        &[Type::INT2],
        &[Some("2")],
    ),
    ("SELECT $1::text", &[Type::INT4], &[Some("5")]),
    ("SELECT length($1)", &[Type::VARCHAR], &[Some("abcd")]),
    ("SELECT $1 AND true", &[Type::BOOL], &[Some("t")]),
    ("SELECT $1 + 1", &[Type::INT8], &[Some("41")]),
    ("SELECT $1", &[Type::INT4], &[Some("x")]),
    // A parameter compared with a column takes the column's type, whatever
    // was declared; one the statement never uses is described as declared.
    ("SELECT n FROM nums WHERE n = $1", &[], &[Some("2")]),
    (
        "SELECT n FROM nums WHERE n > $1",
        &[Type::INT8],
        &[Some("1")],
    ),
    (
        "SELECT n FROM nums WHERE n = $1",
        &[Type::INT4, Type::TEXT],
        &[Some("3"), Some("unused")],
    ),
    ("SELECT n FROM nums WHERE n = abs($1)", &[], &[Some("-1")]),
    // Arrays: `= ANY($1)` reads an array of the column's type, as psycopg
    // sends a list (int2[] while its ints fit, or undeclared).
    (
        "SELECT n FROM nums WHERE n = ANY($1) ORDER BY n",
        &[],
        &[Some("{1,3}")],
    ),
    (
        "SELECT n FROM nums WHERE n = ANY($1) ORDER BY n",
        &[Type::INT2_ARRAY],
        &[Some("{2,NULL}")],
    ),
    (
        "SELECT $1, cardinality($1)",
        &[Type::TEXT_ARRAY],
        &[Some("{a,NULL,\"b c\"}")],
    ),
    ("SELECT $1", &[Type::INT4_ARRAY], &[Some("{1,x}")]),
    // A statement that plans only once its declared types are known.
    (
        "SELECT * FROM unnest($1)",
        &[Type::INT4_ARRAY],
        &[Some("{3,NULL,1}")],
    ),
    // Writes type their parameters so too.
    (
        "INSERT INTO nums VALUES (abs($1)) RETURNING n",
        &[],
        &[Some("-7")],
    ),
    (
        "UPDATE nums SET n = n * 10 WHERE n = abs($1) RETURNING n",
        &[],
        &[Some("-2")],
    ),
    (
        "DELETE FROM nums WHERE n = length($1) RETURNING n",
        &[],
        &[Some("abc")],
    ),
    ("SELECT n FROM nums ORDER BY n", &[], &[]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_types_match_postgres() {
    let (_postgres, _ciab, pg, cb) = postgres_and_ciab().await;
    for client in [&pg, &cb] {
        client
            .batch_execute(
                "CREATE TABLE nums (n int PRIMARY KEY); INSERT INTO nums VALUES (1), (2), (3)",
            )
            .await
            .unwrap();
    }
    for (sql, declared, values) in CASES {
        let expected = outcome(&pg, sql, declared, values).await;
        let got = outcome(&cb, sql, declared, values).await;
        assert_eq!(got, expected, "{sql} declared as {declared:?}");
    }
}

/// A statement prepared again after what it reads changed is described
/// as it reads now, as PostgreSQL describes it: ciab remembers what Parse
/// answered for a query string (`ciab_planner::remembered`) only while the
/// catalog, the settings and the declared types are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_again_after_changes_describes_as_postgres() {
    let (postgres, ciab, pg, cb) = postgres_and_ciab().await;
    let pg_other = ciab_sql_tests::connect(&ciab_sql_tests::conn_str(postgres.addr(), "ciab"))
        .await
        .unwrap();
    let cb_other = ciab_sql_tests::connect(&ciab.conn_str("ciab"))
        .await
        .unwrap();
    let query = "SELECT * FROM t";
    // (statement run on the session first, or on the other session; the
    // parameter types declared for `query`)
    let steps: &[(&str, bool, &[Type])] = &[
        ("CREATE TABLE t (a int)", false, &[]),
        ("ALTER TABLE t ADD COLUMN b text", false, &[]),
        ("CREATE SCHEMA s", false, &[]),
        ("CREATE TABLE s.t (x float8)", false, &[]),
        ("SET search_path = s, public", false, &[]),
        ("BEGIN", false, &[]),
        ("ALTER TABLE t ADD COLUMN y int", false, &[]),
        ("ROLLBACK", false, &[]),
        ("ALTER TABLE s.t ADD COLUMN z bool", true, &[]),
        ("RESET search_path", false, &[]),
        ("SELECT 1", false, &[Type::INT8]),
        ("SELECT 1", false, &[Type::INT8, Type::TEXT]),
    ];
    for (statement, other, declared) in steps {
        for (client, other_client) in [(&pg, &pg_other), (&cb, &cb_other)] {
            let runner = if *other { other_client } else { client };
            runner.batch_execute(statement).await.unwrap();
        }
        let expected = described(&pg, query, declared).await;
        let got = described(&cb, query, declared).await;
        assert_eq!(
            got, expected,
            "{query} after {statement}, declared {declared:?}"
        );
    }
}

/// The column names and types, and the parameter types, a server describes
/// a statement with; its SQLSTATE if Parse failed.
async fn described(
    client: &tokio_postgres::Client,
    sql: &str,
    declared: &[Type],
) -> Result<(Vec<(String, String)>, Vec<String>), String> {
    let statement = client
        .prepare_typed(sql, declared)
        .await
        .map_err(|e| crate::sqlstate(&e))?;
    let columns = statement.columns().iter();
    Ok((
        columns
            .map(|c| (c.name().to_string(), c.type_().name().to_string()))
            .collect(),
        statement
            .params()
            .iter()
            .map(|t| t.name().to_string())
            .collect(),
    ))
}

async fn outcome(
    client: &tokio_postgres::Client,
    sql: &str,
    declared: &[Type],
    values: &[Option<&str>],
) -> Outcome {
    let statement = match client.prepare_typed(sql, declared).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(crate::sqlstate(&e)),
    };
    let params: Vec<Text> = values.iter().map(|v| Text(v.map(str::to_string))).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
    let rows = match client.query(&statement, &refs).await {
        Ok(rows) => rows,
        Err(e) => return Outcome::Failed(crate::sqlstate(&e)),
    };
    let columns = statement.columns();
    Outcome::Ran {
        params: statement.params().iter().map(kind).collect(),
        columns: columns.iter().map(|c| kind(c.type_())).collect(),
        rows: rows
            .iter()
            .map(|row| {
                (0..columns.len())
                    .map(|i| row.get::<_, Cell>(i).0)
                    .collect()
            })
            .collect(),
    }
}

/// A type's kind: integers of any width are one kind, as are floats and
/// strings (PostgreSQL types `repeat`'s count int4, DataFusion int8).
fn kind(ty: &Type) -> &'static str {
    match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 => "integer",
        Type::FLOAT4 | Type::FLOAT8 => "float",
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => "text",
        Type::BOOL => "bool",
        _ => match ty.kind() {
            Kind::Array(element) => match kind(element) {
                "integer" => "integer[]",
                "text" => "text[]",
                _ => "other[]",
            },
            _ => "other",
        },
    }
}

/// A parameter sent as text, as psycopg and node-postgres send them: the
/// server reads it as the type it described.
#[derive(Debug)]
struct Text(Option<String>);

impl ToSql for Text {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match &self.0 {
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> tokio_postgres::types::Format {
        tokio_postgres::types::Format::Text
    }

    to_sql_checked!();
}

/// A result value in binary, as text: integers of any width alike.
struct Cell(Option<String>);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        if let Kind::Array(_) = ty.kind() {
            let items = Vec::<Cell>::from_sql(ty, raw)?;
            let items: Vec<String> = items
                .into_iter()
                .map(|c| c.0.unwrap_or_else(|| "NULL".into()))
                .collect();
            return Ok(Cell(Some(format!("{{{}}}", items.join(",")))));
        }
        let text = match *ty {
            Type::INT2 => i16::from_sql(ty, raw)?.to_string(),
            Type::INT4 => i32::from_sql(ty, raw)?.to_string(),
            Type::INT8 => i64::from_sql(ty, raw)?.to_string(),
            Type::FLOAT4 => f32::from_sql(ty, raw)?.to_string(),
            Type::FLOAT8 => f64::from_sql(ty, raw)?.to_string(),
            Type::BOOL => bool::from_sql(ty, raw)?.to_string(),
            _ => String::from_utf8(raw.to_vec())?,
        };
        Ok(Cell(Some(text)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Cell(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}
