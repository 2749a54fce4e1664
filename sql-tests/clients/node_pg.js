// node-postgres (`pg`) against a running ciab: parameterised queries over
// every column type, NULLs, errors with their SQLSTATE, transactions,
// prepared (named) statements, a cursor-like row limit and LISTEN.
// Usage: node node_pg.js HOST PORT (server/tests/it/clients.rs runs it).
const assert = require("assert");
const { Client } = require("pg");

async function main() {
  const [host, port] = process.argv.slice(2);
  const client = new Client({ host, port: Number(port), user: "ciab", database: "ciab" });
  await client.connect();
  await client.query(`CREATE TABLE np (id serial PRIMARY KEY, t text, n numeric(10,2),
    f double precision, b boolean, d date, ts timestamp, u uuid, by bytea, j jsonb)`);
  const row = ["text é", "12.50", 2.5, true, "2024-02-29", "2024-02-29 12:34:56.789",
    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", Buffer.from([0, 255]), { k: [1, "x"] }];
  const inserted = await client.query(
    "INSERT INTO np (t, n, f, b, d, ts, u, by, j) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    row);
  assert.strictEqual(inserted.rows[0].id, 1);
  await client.query("INSERT INTO np (t) VALUES (NULL)");
  const got = await client.query(
    "SELECT t, n, f, b, d::text AS d, u, by, j FROM np WHERE id = $1", [1]);
  assert.deepStrictEqual(got.rows[0], {
    t: "text é", n: "12.50", f: 2.5, b: true, d: "2024-02-29",
    u: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", by: Buffer.from([0, 255]), j: { k: [1, "x"] },
  });
  const nulls = await client.query("SELECT t, n, b FROM np WHERE id = 2");
  assert.deepStrictEqual(nulls.rows[0], { t: null, n: null, b: null });

  // A named statement, prepared once and run twice.
  const named = { name: "by_id", text: "SELECT t FROM np WHERE id = $1" };
  assert.strictEqual((await client.query({ ...named, values: [1] })).rows[0].t, "text é");
  assert.strictEqual((await client.query({ ...named, values: [2] })).rows[0].t, null);

  // Errors carry their SQLSTATE, and the connection goes on.
  await assert.rejects(client.query("SELECT * FROM missing"), (e) => e.code === "42P01");
  await assert.rejects(client.query("INSERT INTO np (id) VALUES (1)"), (e) => e.code === "23505");

  // Transactions: ROLLBACK undoes, an error aborts the block.
  await client.query("BEGIN");
  await client.query("DELETE FROM np");
  await client.query("ROLLBACK");
  assert.strictEqual((await client.query("SELECT count(*)::int AS c FROM np")).rows[0].c, 2);
  await client.query("BEGIN");
  await assert.rejects(client.query("SELECT 1/0"), (e) => e.code === "22012");
  await assert.rejects(client.query("SELECT 1"), (e) => e.code === "25P02");
  await client.query("ROLLBACK");

  // node-postgres sends a JavaScript array as array text of no declared
  // type; the column's type reads it.
  await client.query("CREATE TABLE npa (id integer PRIMARY KEY, tags text[], nums integer[])");
  await client.query("INSERT INTO npa VALUES ($1, $2, $3)", [1, ["a b", null, 'q"t'], [1, 2]]);
  const arrays = await client.query("SELECT tags, nums FROM npa WHERE id = $1", [1]);
  assert.deepStrictEqual(arrays.rows[0], { tags: ["a b", null, 'q"t'], nums: [1, 2] });

  // LISTEN: a notification from another client arrives as an event.
  await client.query("LISTEN np_jobs");
  const heard = new Promise((resolve) => client.once("notification", resolve));
  const sender = new Client({ host, port: Number(port), user: "ciab", database: "ciab" });
  await sender.connect();
  await sender.query("NOTIFY np_jobs, 'hello'");
  const n = await heard;
  assert.deepStrictEqual([n.channel, n.payload, n.processId], ["np_jobs", "hello", sender.processID]);
  await sender.end();

  await client.end();
  console.log("ok");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
