//! Object storage end to end: S3 clients (boto3, the aws CLI) against the
//! S3 endpoint and SQL against the same objects
//! (`sql-tests/objects/s3_clients.py`); then the objects it left must come
//! back, byte for byte, after a crash (from the log) and after a clean stop
//! (from the files the flush wrote); and a copy that shares a file with its
//! source keeps that file when the source is deleted.

use std::process::Command;

use ciab_sql_tests::connect;

use crate::clients::python;
use crate::{output_text, repo_root, rows, start};

/// Every object with its size, ETag and the MD5 of its bytes as read back.
const INVENTORY: &str = "SELECT bucket, key, size, etag, content_type, metadata::text, \
     md5(object_read(bucket, key)) FROM ciab.objects ORDER BY bucket, key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_clients_and_sql_share_objects_that_survive_restarts() {
    let mut server = start();
    let out = Command::new(python())
        .arg(repo_root().join("sql-tests/objects/s3_clients.py"))
        .arg(server.addr().ip().to_string())
        .arg(server.addr().port().to_string())
        .arg(server.s3_addr().port().to_string())
        .output()
        .expect("the clients' Python runs (.ci/run installs it)");
    let text = output_text(&out);
    assert!(
        out.status.success() && text.trim_end().ends_with("ok"),
        "{text}\n{}",
        server.log()
    );

    let conn = server.conn_str("ciab");
    let inventory = || async {
        let client = connect(&conn).await.unwrap();
        rows(&client, INVENTORY).await
    };
    let before = inventory().await;
    assert_eq!(before.len(), 10, "{before:#?}");
    // The MD5 read back is the ETag the bytes were written with.
    let single = before.iter().find(|r| r.contains("|a/big.bin|")).unwrap();
    let fields: Vec<&str> = single.split('|').collect();
    assert_eq!(fields[3], fields[6], "{single}");

    server.kill9().unwrap();
    server.restart().unwrap();
    assert_eq!(inventory().await, before, "after a crash, from the log");
    server.stop().unwrap();
    server.restart().unwrap();
    assert_eq!(inventory().await, before, "after a clean stop, from files");
    let files = std::fs::read_dir(server.data_dir().join("objects/photos"))
        .unwrap()
        .count();
    assert!(files > 0, "the flush wrote the objects' bytes as files");

    // The copy shares the source's file; the next flush must keep it.
    let client = connect(&conn).await.unwrap();
    // One string each: a string of several statements is a block, where
    // object writes are refused.
    for sql in [
        "SELECT object_copy('photos', 'a/big.bin', 'photos', 'copies/of-a-file.bin')",
        "SELECT object_delete('photos', 'a/big.bin')",
    ] {
        client.batch_execute(sql).await.unwrap();
    }
    server.stop().unwrap();
    server.restart().unwrap();
    let after = inventory().await;
    let copy = after
        .iter()
        .find(|r| r.contains("|copies/of-a-file.bin|"))
        .unwrap();
    let fields: Vec<&str> = copy.split('|').collect();
    assert_eq!(fields[3], fields[6], "read back whole: {copy}");
    assert_eq!(fields[3..6], single.split('|').collect::<Vec<_>>()[3..6]);
}
