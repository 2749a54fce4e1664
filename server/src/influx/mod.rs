//! InfluxDB's write API over HTTP, so Telegraf and other agents write
//! into ciab as they would into InfluxDB.
//!
//! ```text
//!  POST /api/v2/write?bucket=DB&precision=ns   (v2; `org` and the token are ignored)
//!  POST /write?db=DB&precision=n               (v1)
//!        │ line protocol, plain or gzip
//!        ▼
//!  line::parse ──► one time-series table per measurement in database DB:
//!                  "time" timestamptz, a text column per tag, a column per field
//!                  (created on first write with day partitions, widened as
//!                  new tags and fields come)
//!        ▼
//!  one transaction of multi-row INSERTs through a planner session
//! ```
//!
//! Writes take the same path as SQL: a request is acknowledged (204) once
//! its transaction committed through Raft, and all of it or none of it is
//! written. A field whose type differs from its column's is refused (400),
//! as InfluxDB refuses a field type conflict. `GET /ping` and `GET /health`
//! answer as InfluxDB's do, for agents that check before writing.

mod line;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use ciab_planner::{Engine, Output, Session, quote_ident, sqlstate};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use futures::TryStreamExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use line::{Point, Precision, Value};

/// The largest request body taken, after decompression: a larger batch
/// should be split (Telegraf sends 1,000 metrics per request by default).
pub const WRITE_BODY_BYTES_MAX: usize = 64 << 20;
/// Rows per INSERT statement, to keep each statement's text moderate.
const INSERT_ROWS_MAX: usize = 1000;
/// The user that HTTP writes run as while ciab has no authentication.
const WRITER: &str = "influx";
const TIME_COLUMN: &str = "time";

/// Serves InfluxDB's write API until the task is dropped.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting an HTTP connection");
                continue;
            }
        };
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let engine = Arc::clone(&engine);
                async move { Ok::<_, Infallible>(handle(request, &engine).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
}

/// Why a write failed, as InfluxDB answers it: a status and a JSON body
/// with a `code` and a `message`.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Failure {
    fn invalid(message: impl Into<String>) -> Self {
        Failure {
            status: StatusCode::BAD_REQUEST,
            code: "invalid",
            message: message.into(),
        }
    }
}

impl From<ciab_planner::Error> for Failure {
    fn from(e: ciab_planner::Error) -> Self {
        let (status, code) = match e.sqlstate {
            sqlstate::INVALID_CATALOG_NAME => (StatusCode::NOT_FOUND, "not found"),
            s if s.starts_with("22") || s.starts_with("23") || s.starts_with("42") => {
                (StatusCode::BAD_REQUEST, "invalid")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        };
        Failure {
            status,
            code,
            message: format!("{} ({})", e.message, e.sqlstate),
        }
    }
}

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let empty = body.is_empty();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if !empty {
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    response
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

async fn handle(request: Request<Incoming>, engine: &Arc<Engine>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let params: HashMap<String, String> = request
        .uri()
        .query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .collect::<HashMap<String, String>>()
        })
        .unwrap_or_default();
    let database_param = match (request.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, "/ping") => {
            return respond(StatusCode::NO_CONTENT, String::new());
        }
        (&Method::GET, "/health") => {
            return respond(
                StatusCode::OK,
                r#"{"name":"ciab","message":"ready for queries and writes","status":"pass"}"#
                    .into(),
            );
        }
        (&Method::POST, "/api/v2/write") => "bucket",
        (&Method::POST, "/write") => "db",
        _ => {
            return respond(
                StatusCode::NOT_FOUND,
                r#"{"code":"not found","message":"path not found"}"#.into(),
            );
        }
    };
    match write(request, &params, database_param, engine).await {
        Ok(()) => respond(StatusCode::NO_CONTENT, String::new()),
        Err(f) => respond(
            f.status,
            format!(
                r#"{{"code":{},"message":{}}}"#,
                json_string(f.code),
                json_string(&f.message)
            ),
        ),
    }
}

/// `a=1&b=x%20y` as pairs, percent- and plus-decoded.
fn url_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'+', _) => out.push(b' '),
                (b'%', Some(b)) => {
                    out.push(b);
                    i += 2;
                }
                (b, _) => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

async fn write(
    request: Request<Incoming>,
    params: &HashMap<String, String>,
    database_param: &str,
    engine: &Arc<Engine>,
) -> Result<(), Failure> {
    let database = params
        .get(database_param)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| Failure::invalid(format!("missing the {database_param} parameter")))?
        .clone();
    let precision = match params.get("precision") {
        None => Precision::Nanoseconds,
        Some(p) => Precision::parse(p)
            .ok_or_else(|| Failure::invalid(format!("invalid precision {p:?}")))?,
    };
    let gzip = request
        .headers()
        .get(hyper::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let too_large = || Failure {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "request too large",
        message: format!("the body is over {WRITE_BODY_BYTES_MAX} bytes"),
    };
    let body = Limited::new(request.into_body(), WRITE_BODY_BYTES_MAX)
        .collect()
        .await
        .map_err(|_| too_large())?
        .to_bytes();
    let body = if gzip {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .take(WRITE_BODY_BYTES_MAX as u64 + 1)
            .read_to_end(&mut text)
            .map_err(|e| Failure::invalid(format!("gzip: {e}")))?;
        if text.len() > WRITE_BODY_BYTES_MAX {
            return Err(too_large());
        }
        text
    } else {
        body.to_vec()
    };
    let text = std::str::from_utf8(&body).map_err(|_| Failure::invalid("the body is not UTF-8"))?;
    let points = line::parse(text, precision).map_err(|e| Failure::invalid(e.to_string()))?;
    if points.is_empty() {
        return Ok(());
    }
    let session = engine
        .session(&database, WRITER)
        .map_err(|e| match e.sqlstate {
            sqlstate::INVALID_CATALOG_NAME => Failure {
                status: StatusCode::NOT_FOUND,
                code: "not found",
                message: format!("bucket \"{database}\" not found"),
            },
            _ => Failure::from(e),
        })?;
    Writer { session }.write(&points).await
}

/// Writes points through one planner session.
struct Writer {
    session: Session,
}

/// A measurement's columns as one request needs them: name -> SQL type.
type Columns = BTreeMap<String, &'static str>;

impl Writer {
    async fn write(&mut self, points: &[Point]) -> Result<(), Failure> {
        let mut by_measurement: BTreeMap<&str, Vec<&Point>> = BTreeMap::new();
        for p in points {
            by_measurement.entry(&p.measurement).or_default().push(p);
        }
        let now_ns = i128::from(chrono::Utc::now().timestamp_micros()) * 1000;
        let mut inserts = Vec::new();
        for (measurement, points) in &by_measurement {
            let columns = needed_columns(measurement, points)?;
            self.ensure_table(measurement, &columns).await?;
            inserts.extend(insert_statements(measurement, &columns, points, now_ns)?);
        }
        self.sql("BEGIN").await?;
        for insert in &inserts {
            if let Err(e) = self.sql(insert).await {
                // The session is dropped with the request; ROLLBACK says
                // plainly that nothing of it stays.
                let _ = self.sql("ROLLBACK").await;
                return Err(e.into());
            }
        }
        self.sql("COMMIT").await?;
        Ok(())
    }

    /// Runs a query string; the rows of its statements, if any, as text.
    async fn sql(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, ciab_planner::Error> {
        let mut script = self.session.script(sql)?;
        let mut batches = Vec::new();
        while let Some(output) = self.session.step(&mut script).await {
            if let Output::Rows { stream, .. } = output? {
                let rows: Vec<_> = stream.try_collect().await?;
                batches.extend(rows);
            }
        }
        let mut rows = Vec::new();
        for batch in batches {
            let columns = batch
                .columns()
                .iter()
                .map(|c| cast(c, &DataType::Utf8))
                .collect::<Result<Vec<_>, _>>()?;
            for r in 0..batch.num_rows() {
                rows.push(
                    columns
                        .iter()
                        .map(|c| {
                            c.is_valid(r)
                                .then(|| c.as_string::<i32>().value(r).to_string())
                        })
                        .collect(),
                );
            }
        }
        Ok(rows)
    }

    /// The table's columns now: name -> PostgreSQL type name.
    async fn table_columns(
        &mut self,
        measurement: &str,
    ) -> Result<HashMap<String, String>, Failure> {
        let rows = self
            .sql(&format!(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = {}",
                literal(measurement)
            ))
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|mut r| Some((r[0].take()?, r[1].take()?)))
            .collect())
    }

    /// Creates the measurement's table, or adds the columns it lacks, and
    /// checks that the columns it has hold this request's types.
    async fn ensure_table(&mut self, measurement: &str, columns: &Columns) -> Result<(), Failure> {
        let mut existing = self.table_columns(measurement).await?;
        if existing.is_empty() {
            let defs: Vec<String> =
                std::iter::once(format!("{} timestamptz NOT NULL", quote_ident(TIME_COLUMN)))
                    .chain(
                        columns
                            .iter()
                            .map(|(name, t)| format!("{} {t}", quote_ident(name))),
                    )
                    .collect();
            self.sql(&format!(
                "CREATE TABLE IF NOT EXISTS {} ({}) WITH (time_column = {})",
                quote_ident(measurement),
                defs.join(", "),
                literal(TIME_COLUMN)
            ))
            .await?;
            existing = self.table_columns(measurement).await?;
        }
        for (name, wanted) in columns {
            match existing.get(name) {
                Some(have) if have == wanted => {}
                Some(have) => {
                    return Err(Failure::invalid(format!(
                        "field type conflict: column \"{name}\" of \"{measurement}\" is {have}, \
                         the write gives {wanted}"
                    )));
                }
                None => {
                    let added = self
                        .sql(&format!(
                            "ALTER TABLE {} ADD COLUMN {} {wanted}",
                            quote_ident(measurement),
                            quote_ident(name)
                        ))
                        .await;
                    // Another writer may have added it first.
                    if let Err(e) = added
                        && e.sqlstate != sqlstate::DUPLICATE_COLUMN
                    {
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(())
    }
}

/// Every tag and field of the points with the type of its column; a key
/// both a tag and a field, or a field with two types, is refused.
fn needed_columns(measurement: &str, points: &[&Point]) -> Result<Columns, Failure> {
    let mut columns = Columns::new();
    let mut add = |name: &str, t: &'static str| -> Result<(), Failure> {
        if name == TIME_COLUMN {
            return Err(Failure::invalid(format!(
                "\"{TIME_COLUMN}\" of \"{measurement}\" is the timestamp: it cannot be a tag or a field"
            )));
        }
        match columns.insert(name.to_string(), t) {
            Some(before) if before != t => Err(Failure::invalid(format!(
                "field type conflict: \"{name}\" of \"{measurement}\" is both {before} and {t}"
            ))),
            _ => Ok(()),
        }
    };
    for p in points {
        for (tag, _) in &p.tags {
            add(tag, "text")?;
        }
        for (field, value) in &p.fields {
            add(field, value.sql_type())?;
        }
    }
    Ok(columns)
}

/// The INSERTs for a measurement's points, each of up to INSERT_ROWS_MAX rows.
fn insert_statements(
    measurement: &str,
    columns: &Columns,
    points: &[&Point],
    now_ns: i128,
) -> Result<Vec<String>, Failure> {
    let names: Vec<&str> = std::iter::once(TIME_COLUMN)
        .chain(columns.keys().map(String::as_str))
        .collect();
    let head = format!(
        "INSERT INTO {} ({}) VALUES ",
        quote_ident(measurement),
        names
            .iter()
            .map(|n| quote_ident(n))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut statements = Vec::new();
    for chunk in points.chunks(INSERT_ROWS_MAX) {
        let mut rows = Vec::with_capacity(chunk.len());
        for p in chunk {
            let values: HashMap<&str, String> = p
                .tags
                .iter()
                .map(|(k, v)| (k.as_str(), literal(v)))
                .chain(p.fields.iter().map(|(k, v)| (k.as_str(), value_literal(v))))
                .collect();
            let time = timestamp_literal(p.time_ns.unwrap_or(now_ns))?;
            let row: Vec<String> = std::iter::once(time)
                .chain(columns.keys().map(|c| {
                    values
                        .get(c.as_str())
                        .cloned()
                        .unwrap_or_else(|| "NULL".into())
                }))
                .collect();
            rows.push(format!("({})", row.join(", ")));
        }
        statements.push(format!("{head}{}", rows.join(", ")));
    }
    Ok(statements)
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn value_literal(value: &Value) -> String {
    match value {
        Value::Float(f) => format!("{f:?}::float8"),
        Value::Integer(i) | Value::Unsigned(i) => format!("{i}::int8"),
        Value::String(s) => literal(s),
        Value::Boolean(b) => b.to_string(),
    }
}

/// Nanoseconds as a timestamptz literal, to the microsecond (PostgreSQL's
/// precision; the rest is dropped).
fn timestamp_literal(ns: i128) -> Result<String, Failure> {
    let micros = i64::try_from(ns.div_euclid(1000))
        .ok()
        .and_then(chrono::DateTime::from_timestamp_micros)
        .ok_or_else(|| Failure::invalid(format!("timestamp {ns} ns is out of range")))?;
    Ok(format!(
        "'{}'::timestamptz",
        micros.format("%Y-%m-%d %H:%M:%S%.6f+00")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            url_pairs("bucket=my%20db&precision=ms&org=a+b&x"),
            vec![
                ("bucket".into(), "my db".into()),
                ("precision".into(), "ms".into()),
                ("org".into(), "a b".into()),
                ("x".into(), String::new()),
            ]
        );
    }

    #[test]
    fn timestamps_keep_microseconds() {
        assert_eq!(
            timestamp_literal(1_700_000_000_123_456_789).unwrap(),
            "'2023-11-14 22:13:20.123456+00'::timestamptz"
        );
        assert_eq!(
            timestamp_literal(-1).unwrap(),
            "'1969-12-31 23:59:59.999999+00'::timestamptz"
        );
    }

    #[test]
    fn a_field_with_two_types_is_refused() {
        let points = line::parse("m f=1\nm f=1i\n", Precision::Nanoseconds).unwrap();
        let refs: Vec<&Point> = points.iter().collect();
        let e = needed_columns("m", &refs).unwrap_err();
        assert!(e.message.contains("field type conflict"), "{}", e.message);
    }
}
