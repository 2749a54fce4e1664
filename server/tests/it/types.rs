//! Values as drivers receive them, in text and in binary, and statements as
//! drivers prepare them. What the SQL means is checked against PostgreSQL in
//! `sql-tests/differential/character_types.slt` and `writes.slt`; the slt
//! runner folds blanks, so char(n)'s padding is checked here.

use ciab_sql_tests::connect;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::types::Type;

use crate::start;

/// ciab keeps char(n) values without trailing blanks; the wire pads them
/// back to n, in both formats, as PostgreSQL sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn char_values_arrive_padded_in_text_and_binary() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE ch (id int PRIMARY KEY, c char(4)); \
             INSERT INTO ch VALUES (1, 'ab'), (2, 'abcd  '), (3, NULL)",
        )
        .await
        .unwrap();

    let text: Vec<Option<String>> = client
        .simple_query("SELECT c FROM ch ORDER BY id")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_string)),
            _ => None,
        })
        .collect();
    assert_eq!(text, [Some("ab  ".into()), Some("abcd".into()), None]);

    // tokio-postgres asks for every result column in binary.
    let statement = client
        .prepare("SELECT c, 'x'::char(3), c::text FROM ch WHERE id = $1")
        .await
        .unwrap();
    let types: Vec<Type> = statement
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    assert_eq!(types, [Type::BPCHAR, Type::BPCHAR, Type::TEXT]);
    let row = client.query_one(&statement, &[&1i32]).await.unwrap();
    assert_eq!(row.get::<_, &str>(0), "ab  ");
    assert_eq!(row.get::<_, &str>(1), "x  ");
    assert_eq!(row.get::<_, &str>(2), "ab");
}

/// DEFAULT beside parameters, in prepared INSERTs and UPDATEs, and a
/// prepared UPDATE ... FROM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_writes_with_default_and_from() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client
        .batch_execute("CREATE TABLE d (id serial PRIMARY KEY, v text DEFAULT 'x', n int)")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO d VALUES (DEFAULT, $1, DEFAULT) RETURNING id")
        .await
        .unwrap();
    assert_eq!(insert.params(), &[Type::TEXT]);
    for (v, id) in [("a", 1), ("b", 2)] {
        let row = client.query_one(&insert, &[&v]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), id);
    }
    let update = client
        .prepare("UPDATE d SET v = DEFAULT, n = $1 WHERE id = $2")
        .await
        .unwrap();
    assert_eq!(client.execute(&update, &[&7i32, &2i32]).await.unwrap(), 1);
    let update_from = client
        .prepare("UPDATE d SET n = $2 FROM d AS other WHERE d.id = other.id AND other.id = $1")
        .await
        .unwrap();
    assert_eq!(update_from.params(), &[Type::INT4, Type::INT4]);
    assert_eq!(
        client.execute(&update_from, &[&1i32, &5i32]).await.unwrap(),
        1
    );
    let rows: Vec<(i32, String, Option<i32>)> = client
        .query("SELECT id, v, n FROM d ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(rows, [(1, "a".into(), Some(5)), (2, "x".into(), Some(7))]);
}
