//! InfluxDB's write API: line protocol over HTTP lands in tables that SQL
//! reads, all of a request or none of it.

use std::io::Write;
use std::net::SocketAddr;

use ciab_sql_tests::connect;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{rows, start};

/// One HTTP/1.1 request; the status and the body of the answer.
async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect over HTTP");
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn write(addr: SocketAddr, target: &str, body: &str) -> (u16, String) {
    request(addr, "POST", target, &[], body.as_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_protocol_writes_land_in_tables() {
    let server = start();
    let http = server.http_addr();
    let client = connect(&server.conn_str("ciab")).await.expect("connect");

    assert_eq!(request(http, "GET", "/ping", &[], b"").await.0, 204);
    let (status, body) = request(http, "GET", "/health", &[], b"").await;
    assert_eq!((status, body.contains("\"pass\"")), (200, true), "{body}");

    // v2: the table is created with a column per tag and field.
    let lines = "cpu,host=a,region=eu usage=12.5,cores=8i,ok=t,note=\"x, \\\"y\\\"\" 1767225600000000000\n\
                 cpu,host=b usage=3,cores=2i 1767225610000000000\n";
    let (status, body) = write(http, "/api/v2/write?bucket=ciab&org=x", lines).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        rows(
            &client,
            "SELECT time, host, region, usage, cores, ok, note FROM cpu ORDER BY time"
        )
        .await,
        vec![
            "2026-01-01 00:00:00+00|a|eu|12.5|8|t|x, \"y\"",
            "2026-01-01 00:00:10+00|b|NULL|3|2|NULL|NULL",
        ]
    );

    // v1, in seconds, with a new field: the table gains a column.
    let (status, body) = write(
        http,
        "/write?db=ciab&precision=s",
        "cpu,host=c usage=1,temp=40.5 1767225620\n",
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        rows(&client, "SELECT time, host, temp FROM cpu ORDER BY time").await,
        vec![
            "2026-01-01 00:00:00+00|a|NULL",
            "2026-01-01 00:00:10+00|b|NULL",
            "2026-01-01 00:00:20+00|c|40.5",
        ]
    );

    // gzip, as Telegraf sends it.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"mem,host=a used=7i 1767225600000000000\n")
        .unwrap();
    let gz = gz.finish().unwrap();
    let (status, body) = request(
        http,
        "POST",
        "/api/v2/write?bucket=ciab&precision=ns",
        &[("Content-Encoding", "gzip")],
        &gz,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        rows(&client, "SELECT host, used FROM mem").await,
        vec!["a|7"]
    );

    // Refused requests write nothing, not even their good lines.
    let cases = [
        (
            "/api/v2/write?bucket=ciab",
            "cpu usage=1 1\ncpu usage=\n",
            400,
            "unable to parse line 2",
        ),
        (
            "/api/v2/write?bucket=ciab",
            "cpu,host=z usage=1 1\ncpu cores=1.5 2\n",
            400,
            "field type conflict",
        ),
        (
            "/api/v2/write?bucket=ciab",
            "cpu usage=1 1\ncpu usage=2i 2\n",
            400,
            "field type conflict",
        ),
        (
            "/api/v2/write?bucket=nowhere",
            "cpu usage=1 1\n",
            404,
            "bucket \\\"nowhere\\\" not found",
        ),
        (
            "/api/v2/write?bucket=ciab&precision=h",
            "cpu usage=1 1\n",
            400,
            "invalid precision",
        ),
        (
            "/api/v2/write",
            "cpu usage=1 1\n",
            400,
            "missing the bucket parameter",
        ),
        (
            "/api/v2/write?bucket=ciab",
            "cpu time=1 1\n",
            400,
            "is the timestamp",
        ),
    ];
    for (target, body, status, message) in cases {
        let (got, answer) = write(http, target, body).await;
        assert_eq!(got, status, "{target} {body:?}: {answer}");
        assert!(answer.contains(message), "{target} {body:?}: {answer}");
    }
    assert_eq!(rows(&client, "SELECT count(*) FROM cpu").await, vec!["3"]);
    assert_eq!(request(http, "GET", "/nowhere", &[], b"").await.0, 404);
}
