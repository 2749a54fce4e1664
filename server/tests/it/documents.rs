//! Generated documents and queries, run on ciab and on a real PostgreSQL
//! 15: both must return the same rows, text for text.

use ciab_sql_tests::connect;

use crate::{Rng, counters, outcome, postgres_and_ciab, rows, same_outcome, start};

/// Documents per run and queries over them.
const DOCUMENTS: usize = 300;
const QUERY_ROUNDS: usize = 12;

/// Keys repeat across documents, so that paths find something.
const KEYS: &[&str] = &["a", "b", "c", "aa", "ab", "bb", "ä", "k\\\"q"];

/// JSON text with random spacing; numbers in the forms that jsonb
/// normalises (exponents, trailing zeros), strings with escapes.
fn document(rng: &mut Rng, depth: usize) -> String {
    let space = |rng: &mut Rng| [" ", "", "  ", "\n"][rng.below(4)];
    match rng.below(if depth >= 3 { 5 } else { 8 }) {
        0 => "null".into(),
        1 => rng.pick(&["true", "false"]).into(),
        2 => rng
            .pick(&["0", "-7", "12", "1.50", "2.5e1", "1E-2", "-0.0", "100", "3"])
            .into(),
        3 => rng
            .pick(&[
                r#""x""#,
                r#""a""#,
                r#""é\n""#,
                r#""\u0041b""#,
                r#""""#,
                r#""12""#,
            ])
            .into(),
        4 => format!("\"{}\"", rng.pick(KEYS)),
        5 | 6 => {
            let members: Vec<String> = (0..rng.below(5))
                .map(|_| {
                    let key = rng.pick(KEYS);
                    let (s1, s2) = (space(rng), space(rng));
                    format!("\"{key}\"{s1}:{s2}{}", document(rng, depth + 1))
                })
                .collect();
            format!("{{{}}}", members.join(&format!(",{}", space(rng))))
        }
        _ => {
            let items: Vec<String> = (0..rng.below(5))
                .map(|_| document(rng, depth + 1))
                .collect();
            format!("[{}]", items.join(&format!(",{}", space(rng))))
        }
    }
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_documents_query_as_in_postgres() {
    let (_postgres, _ciab, pg, cb) = postgres_and_ciab().await;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut values = Vec::new();
    for id in 0..DOCUMENTS {
        // Top-level objects mostly, as applications store them.
        let doc = if rng.below(4) == 0 {
            document(&mut rng, 0)
        } else {
            let mut d = document(&mut rng, 2);
            while !d.starts_with('{') {
                d = document(&mut rng, 1);
            }
            d
        };
        values.push(format!("({id}, {}, {})", quoted(&doc), quoted(&doc)));
    }
    let setup = [
        "CREATE TABLE gen (id int PRIMARY KEY, doc jsonb, raw json)".to_string(),
        format!("INSERT INTO gen VALUES {}", values.join(", ")),
    ];
    for sql in &setup {
        pg.batch_execute(sql).await.expect("PostgreSQL setup");
        cb.batch_execute(sql).await.expect("ciab setup");
    }
    let mut queries = vec![
        "SELECT id, doc, raw FROM gen ORDER BY id".to_string(),
        "SELECT id, doc FROM gen ORDER BY doc, id".to_string(),
        "SELECT id, jsonb_typeof(doc), json_typeof(raw), jsonb_strip_nulls(doc) FROM gen ORDER BY id"
            .to_string(),
        "SELECT a.id, b.id FROM gen a JOIN gen b ON a.doc = b.doc WHERE a.id < b.id ORDER BY 1, 2"
            .to_string(),
    ];
    for _ in 0..QUERY_ROUNDS {
        let (k1, k2) = (rng.pick(KEYS), rng.pick(KEYS));
        let probe = loop {
            let d = document(&mut rng, 2);
            if d.len() < 40 {
                break d;
            }
        };
        let index = rng.below(4) as i64 - 1;
        let (k1q, k2q, probe_q) = (quoted(k1), quoted(k2), quoted(&probe));
        let path = quoted(&format!(
            "{{\"{}\",\"{}\"}}",
            k1.replace('\\', "\\\\").replace('"', "\\\""),
            k2.replace('\\', "\\\\").replace('"', "\\\"")
        ));
        queries.push(format!(
            "SELECT id, doc -> {k1q}, doc ->> {k1q}, doc -> {index}, doc #> {path}, \
             doc #>> {path}, raw -> {k1q}, raw ->> {k2q}, raw -> {index} FROM gen ORDER BY id"
        ));
        queries.push(format!(
            "SELECT id, doc @> {probe_q}, doc <@ {probe_q}, doc ? {k1q}, \
             doc ?| array[{k1q}, {k2q}], doc ?& array[{k1q}, {k2q}], doc = {probe_q}, \
             doc < {probe_q} FROM gen ORDER BY id"
        ));
        // Groups of equal values (`1.50` is `1.5`): which member a group
        // shows is not fixed, so show what is.
        queries.push(format!(
            "SELECT count(*), min(id), jsonb_typeof(doc -> {k1q}) FROM gen \
             GROUP BY doc -> {k1q} ORDER BY doc -> {k1q}"
        ));
        queries.push(format!(
            "SELECT count(*) FROM (SELECT DISTINCT doc -> {k2q} AS x, doc -> {k1q} AS y FROM gen) d"
        ));
        // Filters whose `@>` reads fields, beside ones whose cannot.
        let pattern = quoted(&object_pattern(&mut rng, 0));
        queries.push(format!(
            "SELECT id FROM gen WHERE doc @> {pattern} AND NOT doc @> {probe_q} ORDER BY id"
        ));
        queries.push(format!(
            "SELECT doc -> {k1q} ->> {k2q}, count(*) FROM gen WHERE doc ? {k2q} OR doc @> {pattern} \
             GROUP BY 1 ORDER BY 1"
        ));
        queries.push(format!(
            "SELECT id, doc || {probe_q}, doc - {k1q} FROM gen \
             WHERE jsonb_typeof(doc) IN ('object', 'array') ORDER BY id"
        ));
        queries.push(format!(
            "SELECT id, doc #- {path}, jsonb_set(doc, {path}, {probe_q}), \
             jsonb_set(doc, array[{k1q}], {probe_q}, false) \
             FROM gen WHERE jsonb_typeof(doc) = 'object' ORDER BY id"
        ));
    }
    // Twice: the second round reads the fields the first one kept.
    let mut errors = 0;
    for _ in 0..2 {
        for sql in &queries {
            errors += usize::from(same_outcome(&pg, &cb, sql, sql).await);
        }
    }
    // Errors agree too, but most queries must return rows to compare.
    assert!(
        errors * 4 < 2 * queries.len(),
        "{errors} of {} queries failed",
        2 * queries.len()
    );
}

/// An object pattern for `@>`: mostly what a filter reads as fields
/// (strings, booleans and nulls in objects), sometimes a number or an
/// array, which it does not.
fn object_pattern(rng: &mut Rng, depth: usize) -> String {
    let members: Vec<String> = (0..1 + rng.below(2))
        .map(|_| {
            let value = match rng.below(if depth > 0 { 6 } else { 7 }) {
                0 => r#""x""#.to_string(),
                1 => format!("\"{}\"", rng.pick(KEYS)),
                2 => rng.pick(&["true", "false", "null"]).to_string(),
                3 => rng.pick(&["3", "1.5", "[]", r#"["a"]"#]).to_string(),
                4 | 5 => r#""a""#.to_string(),
                _ => object_pattern(rng, depth + 1),
            };
            format!("\"{}\": {value}", rng.pick(KEYS))
        })
        .collect();
    format!("{{{}}}", members.join(", "))
}

/// A key as a path step: bare when it is a plain identifier, else quoted.
fn path_key(key: &str) -> String {
    if key.chars().all(|c| c.is_ascii_alphabetic()) {
        format!(".{key}")
    } else {
        format!(".\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// A chain of accessors after `start`, with filters down to `depth`.
fn path_chain(rng: &mut Rng, start: &str, depth: usize) -> String {
    let mut chain = start.to_string();
    for _ in 0..rng.below(4) {
        let step = match rng.below(if depth == 0 { 14 } else { 16 }) {
            0..=3 => path_key(rng.pick(KEYS)),
            4 => ".*".into(),
            5 => "[*]".into(),
            6 => format!("[{}]", rng.below(3)),
            7 => rng
                .pick(&["[last]", "[0 to 1]", "[last - 1 to last]", "[1, 0]"])
                .into(),
            8 => rng
                .pick(&[".**", ".**{1}", ".**{1 to 2}", ".**{last}"])
                .into(),
            9 => rng.pick(&[".size()", ".type()"]).into(),
            10 => rng
                .pick(&[".abs()", ".floor()", ".ceiling()", ".double()"])
                .into(),
            11..=13 => ".keyvalue()".into(),
            _ => format!(" ? ({})", path_predicate(rng, depth - 1)),
        };
        chain.push_str(&step);
    }
    chain
}

fn path_literal(rng: &mut Rng) -> String {
    rng.pick(&[
        "1", "12", "-7", "1.50", "0", "\"x\"", "\"a\"", "\"\"", "true", "null",
    ])
    .into()
}

fn path_predicate(rng: &mut Rng, depth: usize) -> String {
    let operand = |rng: &mut Rng| match rng.below(3) {
        0 => path_literal(rng),
        _ => path_chain(rng, "@", depth),
    };
    let compare = rng.pick(&["==", "!=", "<", "<=", ">", ">="]);
    match rng.below(if depth == 0 { 4 } else { 8 }) {
        0 | 1 => format!("{} {compare} {}", path_chain(rng, "@", depth), operand(rng)),
        2 => format!("exists ({})", path_chain(rng, "@", depth)),
        3 => format!(
            "{} {}",
            path_chain(rng, "@", depth),
            rng.pick(&[
                "starts with \"a\"",
                "like_regex \"^[ab]\"",
                "like_regex \"X\" flag \"i\""
            ])
        ),
        4 => format!(
            "{} && {}",
            path_predicate(rng, depth - 1),
            path_predicate(rng, depth - 1)
        ),
        5 => format!(
            "{} || {}",
            path_predicate(rng, depth - 1),
            path_predicate(rng, depth - 1)
        ),
        6 => format!("!({})", path_predicate(rng, depth - 1)),
        _ => format!("({}) is unknown", path_predicate(rng, depth - 1)),
    }
}

/// A whole path: a chain from `$` in either mode, sometimes with
/// arithmetic, sometimes a predicate (for `@@`).
fn path(rng: &mut Rng) -> String {
    let mode = rng.pick(&["", "lax ", "strict "]);
    let body = match rng.below(6) {
        0 => format!(
            "{} {} 2",
            path_chain(rng, "$", 2),
            rng.pick(&["+", "*", "/", "%"])
        ),
        1 => format!("-{}", path_chain(rng, "$", 2)),
        2 => path_predicate(rng, 2).replace('@', "$"),
        _ => path_chain(rng, "$", 2),
    };
    format!("{mode}{body}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_paths_query_as_in_postgres() {
    const PATHS: usize = 300;
    let (_postgres, _ciab, pg, cb) = postgres_and_ciab().await;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let values: Vec<String> = (0..DOCUMENTS / 3)
        .map(|id| format!("({id}, {})", quoted(&document(&mut rng, 0))))
        .collect();
    let setup = format!(
        "CREATE TABLE pgen (id int PRIMARY KEY, doc jsonb); INSERT INTO pgen VALUES {}",
        values.join(", ")
    );
    pg.batch_execute(&setup).await.expect("PostgreSQL setup");
    cb.batch_execute(&setup).await.expect("ciab setup");
    let mut found = 0;
    for _ in 0..PATHS {
        let p = quoted(&path(&mut rng));
        // Silent, so that one document's error does not stop the query;
        // errors that silent keeps (a missing variable) must agree too.
        let sql = format!(
            "SELECT id, jsonb_path_query_array(doc, {p}, silent => true), \
             jsonb_path_exists(doc, {p}, silent => true), doc @? {p}, doc @@ {p}, \
             jsonb_path_query_first(doc, {p}, silent => true) FROM pgen ORDER BY id"
        );
        same_outcome(&pg, &cb, &sql, &sql).await;
        let rows = outcome(&pg, &format!(
            "SELECT count(*) FROM pgen WHERE jsonb_path_query_array(doc, {p}, silent => true) <> '[]'"
        ))
        .await;
        found += usize::from(matches!(rows.as_deref(), Ok([n]) if n != "0"));
    }
    // Most paths must find something somewhere, or the comparison is idle.
    assert!(
        found * 3 > PATHS,
        "only {found} of {PATHS} paths found anything"
    );
}

/// A field a query reads out of stored documents is worked out once per
/// segment and kept: the next query over it reads the kept column
/// (`ciab.metrics` counts both), and writes, which make new segments, are
/// seen at once. EXPLAIN shows the scan of derived columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_are_kept_with_their_segments() {
    let ciab = start();
    let client = connect(&ciab.conn_str("ciab")).await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE ev (id int PRIMARY KEY, doc jsonb);
             INSERT INTO ev SELECT i, CASE WHEN i % 3 = 0 THEN '{\"os\": \"ios\"}'::jsonb
                                            ELSE '{\"os\": \"android\", \"n\": 1}'::jsonb END
                              FROM generate_series(1, 3000) g(i)",
        )
        .await
        .unwrap();
    client.batch_execute("VACUUM ev").await.unwrap();
    let metrics = ["shredded_columns_built", "shredded_columns_reused"];
    let sql = "SELECT doc ->> 'os', count(*) FROM ev WHERE doc @> '{\"os\": \"ios\"}' AND id > 1 \
               GROUP BY 1 ORDER BY 1";
    // `@>` reads the field too.
    let plan = rows(&client, &format!("EXPLAIN {sql}")).await.join("\n");
    assert!(plan.contains("ShreddedScanExec"), "{plan}");
    assert!(
        plan.contains(r#"__ciab_jsonb_steps(doc,Utf8("os")) = Utf8(""ios"")"#),
        "{plan}"
    );
    let start = counters(&client, metrics).await;
    assert_eq!(rows(&client, sql).await, ["ios|1000"]);
    let first = counters(&client, metrics).await;
    assert!(first[0] > start[0], "the first query works the field out");
    assert_eq!(rows(&client, sql).await, ["ios|1000"]);
    let second = counters(&client, metrics).await;
    assert_eq!(second[0], first[0], "nothing worked out again");
    assert_eq!(
        second[1] - first[1],
        first[0] - start[0],
        "every field read as kept"
    );
    // Writes make new segments, whose fields are worked out afresh.
    client
        .batch_execute(
            "UPDATE ev SET doc = '{\"os\": \"ios\"}' WHERE id <= 10;
             DELETE FROM ev WHERE id % 3 = 0 AND id > 2000",
        )
        .await
        .unwrap();
    assert_eq!(rows(&client, sql).await, ["ios|672"]);
    client.batch_execute("VACUUM ev").await.unwrap();
    assert_eq!(rows(&client, sql).await, ["ios|672"]);
}

/// Newline-delimited JSON files read with `read_ndjson` hold the documents
/// PostgreSQL's jsonb makes of the same lines, through a glob over two
/// files (one with CRLF line ends, blank lines, no final line break), and
/// load into a table; bad lines and missing files are clear errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_files_read_as_postgres_parses_them() {
    let (_postgres, _ciab, pg, cb) = postgres_and_ciab().await;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    // A line is one document: the generator's spacing newlines become
    // spaces (newlines in strings are escapes).
    let docs: Vec<String> = (0..DOCUMENTS)
        .map(|_| document(&mut rng, 0).replace('\n', " "))
        .collect();
    let dir = tempfile::tempdir().expect("a directory for the files");
    let (first, second) = docs.split_at(DOCUMENTS / 2);
    let mut a = first.join("\n\n");
    a.push_str("\n  \n");
    std::fs::write(dir.path().join("a.ndjson"), a).expect("write a.ndjson");
    std::fs::write(dir.path().join("b.ndjson"), second.join("\r\n")).expect("write b.ndjson");
    std::fs::write(dir.path().join("notes.txt"), "not json").expect("write notes.txt");
    let glob = format!("{}/*.ndjson", dir.path().display());

    let values: Vec<String> = docs.iter().map(|d| format!("({})", quoted(d))).collect();
    pg.batch_execute(&format!(
        "CREATE TABLE nd (doc jsonb); INSERT INTO nd VALUES {}",
        values.join(", ")
    ))
    .await
    .expect("PostgreSQL setup");
    let sorted = |mut rows: Vec<String>| {
        rows.sort();
        rows
    };
    let expected = sorted(rows(&pg, "SELECT doc::text FROM nd").await);
    let read = format!("read_ndjson({})", quoted(&glob));
    let got = sorted(rows(&cb, &format!("SELECT doc::text FROM {read}")).await);
    assert_eq!(got, expected, "the documents of {glob}");

    cb.batch_execute(&format!(
        "CREATE TABLE nd (doc jsonb); INSERT INTO nd (doc) SELECT doc FROM {read}"
    ))
    .await
    .expect("load the files into a table");
    for query in [
        "SELECT count(*), count(DISTINCT doc) FROM nd",
        "SELECT jsonb_typeof(doc), count(*) FROM nd GROUP BY 1 ORDER BY 1",
        "SELECT doc ->> 'a', count(*) FROM nd WHERE doc ? 'a' GROUP BY 1 ORDER BY 1",
    ] {
        same_outcome(&pg, &cb, query, query).await;
    }
    let one_file = format!(
        "read_ndjson({})",
        quoted(&format!("{}/a.ndjson", dir.path().display()))
    );
    assert_eq!(
        rows(&cb, &format!("SELECT count(*) FROM {one_file}")).await,
        vec![(DOCUMENTS / 2).to_string()]
    );
    assert_eq!(
        rows(&cb, &format!("SELECT doc FROM {read} LIMIT 3"))
            .await
            .len(),
        3
    );

    // A bad line names its file and line, and nothing is loaded.
    std::fs::write(dir.path().join("c.ndjson"), "{\"a\": 1}\n{\"a\": }\n").expect("write c.ndjson");
    let error = cb
        .simple_query(&format!("INSERT INTO nd (doc) SELECT doc FROM {read}"))
        .await
        .expect_err("a bad line fails the statement");
    assert_eq!(crate::sqlstate(&error), "22P02", "{error:?}");
    let detail = error
        .as_db_error()
        .and_then(|e| e.detail())
        .unwrap_or_default();
    assert!(
        detail.contains("line 2 of") && detail.contains("c.ndjson"),
        "{detail}"
    );
    assert_eq!(
        rows(&cb, "SELECT count(*) FROM nd").await,
        vec![DOCUMENTS.to_string()]
    );
    for (path, state) in [
        (format!("{}/none/*.ndjson", dir.path().display()), "58P01"),
        (format!("{}/missing.ndjson", dir.path().display()), "58P01"),
        (format!("{}/a.ndjson.zip", dir.path().display()), "0A000"),
    ] {
        let error = cb
            .simple_query(&format!("SELECT * FROM read_ndjson({})", quoted(&path)))
            .await
            .expect_err(&path);
        assert_eq!(crate::sqlstate(&error), state, "{path}: {error:?}");
    }
}
