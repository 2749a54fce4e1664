"""One scenario per Python driver against a running ciab: connect,
parameterised queries over every column type in text and binary, NULLs,
errors with their SQLSTATE, transactions and savepoints, COPY; then
SQLAlchemy 2 (create_all, the ORM, the Inspector) and pandas over psycopg
and psycopg2.
Usage: python_drivers.py HOST PORT (server/tests/it/clients.rs runs it).
"""
import asyncio
import datetime
import decimal
import sys
import uuid

HOST, PORT = sys.argv[1], int(sys.argv[2])
DSN = f"host={HOST} port={PORT} user=ciab dbname=ciab"
ROW = (1, "text é", decimal.Decimal("12.50"), 2.5, True,
       datetime.date(2024, 2, 29), datetime.datetime(2024, 2, 29, 12, 34, 56, 789000),
       uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), b"\x00\xff")
DDL = """CREATE TABLE {t} (id integer PRIMARY KEY, t text, n numeric(10,2),
    f double precision, b boolean, d date, ts timestamp, u uuid, by bytea)"""


def check(name, got, want):
    if got != want:
        raise AssertionError(f"{name}: got {got!r}, want {want!r}")


def psycopg3():
    import psycopg
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(DDL.format(t="p3"))
        for binary in (False, True):
            with conn.cursor(binary=binary) as cur:
                cur.execute("DELETE FROM p3")
                cur.execute("INSERT INTO p3 VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", ROW)
                cur.execute("INSERT INTO p3 (id) VALUES (%s)", (2,))
                cur.execute("SELECT * FROM p3 WHERE id = %s", (1,))
                check(f"psycopg3 binary={binary}", cur.fetchone(), ROW)
                cur.execute("SELECT t FROM p3 WHERE id = %s", (2,))
                check("psycopg3 NULL", cur.fetchone(), (None,))
        try:
            conn.execute("INSERT INTO p3 (id) VALUES (1)")
            raise AssertionError("duplicate accepted")
        except psycopg.errors.UniqueViolation as e:
            check("psycopg3 sqlstate", e.sqlstate, "23505")
        with conn.transaction():
            conn.execute("INSERT INTO p3 (id) VALUES (3)")
            try:
                with conn.transaction():  # a savepoint
                    conn.execute("INSERT INTO p3 (id) VALUES (3)")
            except psycopg.errors.UniqueViolation:
                pass
        check("psycopg3 savepoint", conn.execute("SELECT count(*) FROM p3").fetchone(), (3,))
        # Columns are described by their types: a cast's result by the cast's
        # type, json_build_object's as json (decoded to a dict).
        cur = conn.execute("SELECT u, u::text, json_build_object('id', id) FROM p3 WHERE id = 1")
        check("psycopg3 described types", [d.type_code for d in cur.description], [2950, 25, 114])
        check("psycopg3 typed values", cur.fetchone(), (ROW[7], str(ROW[7]), {"id": 1}))
        with conn.cursor() as cur:
            with cur.copy("COPY p3 (id, t) TO STDOUT") as copy:
                rows = sorted(copy.rows())
            check("psycopg3 copy out", rows[0], ("1", "text é"))
        # The process id BackendKeyData gave is the session's, which
        # pg_backend_pid() and pg_locks name; set_config() is SET.
        check("psycopg3 backend pid", conn.execute("SELECT pg_backend_pid()").fetchone(),
              (conn.info.backend_pid,))
        conn.execute("SELECT pg_advisory_lock(%s)", (72707369,))
        held = conn.execute("SELECT pid FROM pg_locks WHERE objid = 72707369").fetchall()
        check("psycopg3 pg_locks", held, [(conn.info.backend_pid,)])
        check("psycopg3 unlock", conn.execute("SELECT pg_advisory_unlock(72707369)").fetchone(),
              (True,))
        conn.execute("SELECT set_config('app.tenant', %s, false)", ("acme",))
        check("psycopg3 set_config", conn.execute("SHOW app.tenant").fetchone(), ("acme",))
        # psycopg declares a Python int int2 (while it fits), a float float8,
        # and leaves a str's type to the server: each parameter is typed as
        # PostgreSQL types it, whether a function's argument or alone.
        typed = conn.execute(
            "SELECT abs(%s), round(2.567::numeric, %s), repeat(%s, %s), substr(%s, %s, %s), %s, power(%s, 2)",
            (-3, 1, "ab", 2, "abcdef", 2, 3, 1.5, "3")).fetchone()
        check("psycopg3 parameter types", typed,
              (3, decimal.Decimal("2.6"), "abab", "bcd", 1.5, 9.0))
        check("psycopg3 generate_series", conn.execute(
            "SELECT * FROM generate_series(1, %s)", (3,)).fetchall(), [(1,), (2,), (3,)])
        # A list is an array (int2[] here), in text or in binary (%b).
        for placeholder in ("%s", "%b"):
            check(f"psycopg3 ANY({placeholder})", conn.execute(
                f"SELECT id FROM p3 WHERE id = ANY({placeholder}) ORDER BY id",
                ([1, 3, None],)).fetchall(), [(1,), (3,)])
        check("psycopg3 unnest", conn.execute(
            "SELECT * FROM unnest(%s)", ([2, 1],)).fetchall(), [(2,), (1,)])
        # Array columns take lists and give them back, in text and binary.
        conn.execute("CREATE TABLE p3a (id integer PRIMARY KEY, tags text[], nums integer[])")
        for binary in (False, True):
            with conn.cursor(binary=binary) as cur:
                cur.execute("DELETE FROM p3a")
                cur.execute("INSERT INTO p3a VALUES (%s, %s, %s)",
                            (1, ["a b", None, 'q"t', "{}"], [1, 70000]))
                cur.execute("SELECT tags, nums FROM p3a WHERE id = %s", (1,))
                check(f"psycopg3 arrays binary={binary}", cur.fetchone(),
                      (["a b", None, 'q"t', "{}"], [1, 70000]))
        # LISTEN: another session's notifications arrive in commit order,
        # with its process id, through conn.notifies().
        conn.execute("LISTEN p3_jobs")
        with psycopg.connect(DSN, autocommit=True) as sender:
            sender.execute("NOTIFY p3_jobs, 'one'")
            sender.execute("SELECT pg_notify('p3_jobs', %s)", ("two",))
            heard = [(n.channel, n.payload, n.pid)
                     for n in conn.notifies(timeout=10, stop_after=2)]
            pid = sender.info.backend_pid
            check("psycopg3 notifies", heard, [("p3_jobs", "one", pid), ("p3_jobs", "two", pid)])
    # A named (server-side) cursor: DECLARE with a parameter, Describe of
    # its portal, FETCH FORWARD in parts of itersize, CLOSE.
    with psycopg.connect(DSN) as conn:
        conn.execute("CREATE TABLE p3c AS SELECT i AS n FROM generate_series(1, 2500) AS s(i)")
        with conn.cursor(name="p3_walk") as cur:
            cur.itersize = 1000
            cur.execute("SELECT n, n * 2 AS twice FROM p3c WHERE n %% %s = 0 ORDER BY n", (5,))
            rows = list(cur)
            check("psycopg3 named cursor", (len(rows), rows[0], rows[-1],
                                            [d.name for d in cur.description]),
                  (500, (5, 10), (2500, 5000), ["n", "twice"]))
        with conn.cursor(name="p3_part") as cur:
            cur.execute("SELECT n FROM p3c ORDER BY n")
            check("psycopg3 named cursor fetchmany", (cur.fetchmany(2), cur.fetchone()),
                  ([(1,), (2,)], (3,)))
            # scroll() sends MOVE; forward, relative or absolute.
            cur.scroll(4)
            check("psycopg3 named cursor scroll", cur.fetchone(), (8,))
            cur.scroll(100, mode="absolute")
            check("psycopg3 named cursor scroll absolute", cur.fetchone(), (101,))
        conn.commit()


def psycopg2_():
    import psycopg2
    conn = psycopg2.connect(DSN)
    cur = conn.cursor()
    # psycopg2 opens a transaction block before the DDL: it stays invisible
    # until the commit below.
    cur.execute(DDL.format(t="p2"))
    cur.execute("INSERT INTO p2 VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                ROW[:7] + (str(ROW[7]), psycopg2.Binary(ROW[8])))
    cur.execute("SELECT id, t, n, f, b, d, ts, u::text FROM p2 WHERE id = %s", (1,))
    check("psycopg2", cur.fetchone(), ROW[:7] + (str(ROW[7]),))
    cur.execute("CREATE TABLE p2a (tags text[], nums integer[])")
    cur.execute("INSERT INTO p2a VALUES (%s, %s)", (["a b", None], [1, 2]))
    cur.execute("SELECT tags, nums FROM p2a")
    check("psycopg2 arrays", cur.fetchone(), (["a b", None], [1, 2]))
    conn.commit()
    try:
        cur.execute("SELECT 1/0")
        raise AssertionError("division by zero accepted")
    except psycopg2.Error as e:
        check("psycopg2 sqlstate", e.pgcode, "22012")
    conn.rollback()
    # A named (server-side) cursor: DECLARE, then FETCH FORWARD itersize.
    cur.execute("CREATE TABLE p2c AS SELECT i AS n FROM generate_series(1, 100) AS s(i)")
    named = conn.cursor(name="p2_walk")
    named.itersize = 7
    named.execute("SELECT n FROM p2c WHERE n > %s ORDER BY n", (90,))
    check("psycopg2 named cursor", [r[0] for r in named], list(range(91, 101)))
    named.close()
    conn.commit()
    conn.close()


async def asyncpg_():
    import asyncpg
    conn = await asyncpg.connect(host=HOST, port=PORT, user="ciab", database="ciab")
    await conn.execute(DDL.format(t="ap"))
    # Parameters are described with their columns' types: uuid as uuid.
    await conn.execute("INSERT INTO ap VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", *ROW)
    check("asyncpg uuid parameter",
          await conn.fetchval("SELECT id FROM ap WHERE u = $1", ROW[7]), 1)
    row = await conn.fetchrow("SELECT * FROM ap WHERE id = $1", 1)
    check("asyncpg", tuple(row), ROW)
    # Array parameters are described with their columns' array types. Of
    # arrays, asyncpg knows text[] and oid[] by heart; it looks the others
    # up in pg_type with a query of its own, whose oid[] column must be
    # described as oid[] (as int4[], asyncpg would look that up in turn).
    await conn.execute("CREATE TABLE apa (id integer PRIMARY KEY, tags text[], nums integer[], "
                       "big bigint[], ids uuid[], days date[], flags boolean[])")
    day = datetime.date(2026, 12, 3)
    await conn.execute("INSERT INTO apa VALUES ($1, $2, $3, $4, $5, $6, $7)", 1, ["a b", None],
                       [1, None, -3], [2**40], [ROW[7]], [day], [True, False])
    check("asyncpg arrays",
          tuple(await conn.fetchrow("SELECT tags, nums, big, ids, days, flags FROM apa WHERE id = $1", 1)),
          (["a b", None], [1, None, -3], [2**40], [ROW[7]], [day], [True, False]))
    check("asyncpg array query",
          await conn.fetchval("SELECT ARRAY[1, 2] || nums FROM apa WHERE $1 = ANY(nums)", -3),
          [1, 2, 1, None, -3])
    # An oid is an oid, as in PostgreSQL.
    check("asyncpg oid",
          await conn.fetchval("SELECT atttypid FROM pg_attribute WHERE attrelid = 'apa'::regclass "
                              "AND attname = 'nums'"), 1007)
    stmt = await conn.prepare("SELECT t FROM ap WHERE id = $1")
    check("asyncpg prepared", await stmt.fetchval(1), "text é")
    check("asyncpg NULL", await stmt.fetchval(5), None)
    try:
        await conn.execute("SELECT * FROM missing_table")
        raise AssertionError("missing table accepted")
    except asyncpg.PostgresError as e:
        check("asyncpg sqlstate", e.sqlstate, "42P01")
    # add_listener LISTENs and calls back with what arrives while idle.
    heard = asyncio.Queue()
    await conn.add_listener("ap_jobs", lambda _c, pid, channel, payload:
                            heard.put_nowait((channel, payload)))
    sender = await asyncpg.connect(host=HOST, port=PORT, user="ciab", database="ciab")
    async with sender.transaction():
        await sender.execute("INSERT INTO ap (id) VALUES (9)")
        await sender.execute("SELECT pg_notify('ap_jobs', 'row 9')")
    await sender.close()
    check("asyncpg notification", await asyncio.wait_for(heard.get(), 10), ("ap_jobs", "row 9"))
    check("asyncpg notified row", await conn.fetchval("SELECT count(*) FROM ap WHERE id = 9"), 1)
    await conn.close()


def sqlalchemy_():
    import pandas
    import sqlalchemy as sa
    from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

    class Base(DeclarativeBase):
        pass

    class Author(Base):
        __tablename__ = "author"
        id: Mapped[int] = mapped_column(primary_key=True)  # serial
        name: Mapped[str] = mapped_column(sa.String(50), unique=True)
        born: Mapped[datetime.date | None]

    class Book(Base):
        __tablename__ = "book"
        id: Mapped[int] = mapped_column(primary_key=True)
        author_id: Mapped[int] = mapped_column(sa.ForeignKey("author.id", ondelete="CASCADE"))

    for dialect in ("psycopg", "psycopg2"):
        engine = sa.create_engine(f"postgresql+{dialect}://ciab@{HOST}:{PORT}/ciab")
        Base.metadata.drop_all(engine)
        # create_all runs its DDL in one transaction block.
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all([Author(name="Ada", born=datetime.date(1815, 12, 10)),
                             Author(name="Alan")])
            session.commit()
            ids = session.scalars(sa.select(Author.id).order_by(Author.id)).all()
            check(f"sqlalchemy {dialect} serial ids", ids, [1, 2])
            ada = session.scalars(sa.select(Author).where(Author.name == "Ada")).one()
            check(f"sqlalchemy {dialect} orm", (ada.id, ada.born), (1, datetime.date(1815, 12, 10)))
            session.add(Author(name="Ada"))
            try:
                session.commit()
                raise AssertionError("duplicate name accepted")
            except sa.exc.IntegrityError as e:
                check(f"sqlalchemy {dialect} sqlstate", e.orig.sqlstate if dialect == "psycopg"
                      else e.orig.pgcode, "23505")
            session.rollback()
            session.add(Book(author_id=ada.id))
            session.commit()
            session.add(Book(author_id=999))
            try:
                session.commit()
                raise AssertionError("a book of no author accepted")
            except sa.exc.IntegrityError as e:
                check(f"sqlalchemy {dialect} foreign key sqlstate", e.orig.sqlstate
                      if dialect == "psycopg" else e.orig.pgcode, "23503")
            session.rollback()
            # The author's books go with the author (ON DELETE CASCADE).
            session.execute(sa.delete(Author).where(Author.name == "Ada"))
            session.commit()
            check(f"sqlalchemy {dialect} cascade",
                  session.scalar(sa.select(sa.func.count()).select_from(Book)), 0)
        inspector = sa.inspect(engine)
        check(f"sqlalchemy {dialect} tables", "author" in inspector.get_table_names(), True)
        columns = {c["name"]: (str(c["type"]), c["nullable"]) for c in inspector.get_columns("author")}
        check(f"sqlalchemy {dialect} columns", columns,
              {"id": ("INTEGER", False), "name": ("VARCHAR(50)", False), "born": ("DATE", True)})
        check(f"sqlalchemy {dialect} pk", inspector.get_pk_constraint("author")["constrained_columns"],
              ["id"])
        check(f"sqlalchemy {dialect} unique", [u["column_names"] for u in
              inspector.get_unique_constraints("author")], [["name"]])
        check(f"sqlalchemy {dialect} foreign keys", inspector.get_foreign_keys("author"), [])
        check(f"sqlalchemy {dialect} book's foreign keys",
              [(k["name"], k["constrained_columns"], k["referred_table"], k["referred_columns"],
                k["options"]) for k in inspector.get_foreign_keys("book")],
              [("book_author_id_fkey", ["author_id"], "author", ["id"], {"ondelete": "CASCADE"})])
        check(f"sqlalchemy {dialect} indexes", [(i["name"], i["unique"], i["column_names"])
              for i in inspector.get_indexes("author")], [("author_name_key", True, ["name"])])
        # pandas: to_sql creates and fills a table, read_sql reads it back.
        frame = pandas.DataFrame({"k": [1, 2, 3], "v": ["x", None, "z"], "f": [0.5, 1.5, None]})
        # (if_exists="replace" would reflect the old table: see above.)
        frame.to_sql(f"frame_{dialect}", engine, index=False)
        back = pandas.read_sql(f"SELECT k, v, f FROM frame_{dialect} ORDER BY k", engine)
        check(f"pandas {dialect}", back.astype(object).where(back.notna(), None).values.tolist(),
              [[1, "x", 0.5], [2, None, 1.5], [3, "z", None]])
        engine.dispose()


for scenario in (psycopg3, psycopg2_, lambda: asyncio.run(asyncpg_()), sqlalchemy_):
    scenario()
print("ok")
