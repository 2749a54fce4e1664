"""GRAPH_TABLE against walks counted in Python on the same random graphs:
fixed patterns of one and two edges in each direction, quantified edges
({lo,hi}, one row per walk), vertex conditions, and a property graph over
text keys. Edges are directed and may repeat or loop; some end at a vertex
that is not in the vertex table, and a pattern never matches those.
Usage: pgq_diff.py HOST PORT (server/tests/it/graphs.rs runs it).
"""
import random
import sys
from collections import Counter

import psycopg

HOST, PORT = sys.argv[1], int(sys.argv[2])
DSN = f"host={HOST} port={PORT} user=ciab dbname=ciab"
GRAPHS = 4
NODES = 30
EDGES = 70


def check(name, got, want):
    if got != want:
        missing = want - got
        extra = got - want
        raise AssertionError(f"{name}:\n missing {dict(missing)!r}\n extra   {dict(extra)!r}")


def counted(cur, sql):
    """The query's rows as a multiset: (a, b, n) rows give n of (a, b)."""
    cur.execute(sql)
    got = Counter()
    for a, b, n in cur.fetchall():
        got[(a, b)] += n
    return got


def walks(edges, vertices, lo, hi, both_ways):
    """How many walks of lo to hi edges lead from each vertex to each, as
    SQL/PGQ's WALK mode matches them: every vertex on the way is in the
    vertex table, and an edge followed either way is one step (a loop
    once)."""
    steps = [(s, t) for s, t in edges if s in vertices and t in vertices]
    if both_ways:
        steps += [(t, s) for s, t in steps if s != t]
    out = {}
    for s, t in steps:
        out.setdefault(s, []).append(t)
    found = Counter()
    for start in vertices:
        frontier = Counter({start: 1})
        for k in range(hi + 1):
            if k >= lo:
                for v, n in frontier.items():
                    found[(start, v)] += n
            nxt = Counter()
            for v, n in frontier.items():
                for t in out.get(v, []):
                    nxt[t] += n
            frontier = nxt
    return found


def check_graph(cur, i, label):
    rng = random.Random(20261201 + i)
    nodes = [label(n) for n in range(NODES)]
    # The last few nodes are edge ends only: no vertex row.
    vertices = set(nodes[: NODES - 3])
    edges = []
    for _ in range(EDGES):
        s = nodes[int(NODES * rng.random() ** 2)]
        t = nodes[rng.randrange(NODES)] if rng.random() < 0.8 else s
        edges.append((s, t))
    kind = "text" if isinstance(nodes[0], str) else "int"
    cur.execute(f"CREATE TABLE v{i} (id {kind} PRIMARY KEY, name text)")
    cur.execute(f"CREATE TABLE e{i} (src {kind}, dst {kind}, w int)")
    with cur.copy(f"COPY v{i} (id, name) FROM STDIN") as copy:
        for v in sorted(vertices):
            copy.write_row((v, f"name {v}"))
    with cur.copy(f"COPY e{i} (src, dst, w) FROM STDIN") as copy:
        for s, t in edges:
            copy.write_row((s, t, rng.randrange(10)))
    cur.execute(
        f"CREATE PROPERTY GRAPH g{i} VERTEX TABLES (v{i}) EDGE TABLES "
        f"(e{i} SOURCE KEY (src) REFERENCES v{i} (id) DESTINATION KEY (dst) REFERENCES v{i} (id))"
    )

    def graph_table(pattern, where=""):
        return counted(
            cur,
            f"SELECT a, b, count(*) FROM GRAPH_TABLE (g{i} MATCH {pattern} {where} "
            f"COLUMNS (x.id AS a, y.id AS b)) GROUP BY a, b",
        )

    one = walks(edges, vertices, 1, 1, False)
    check(f"g{i} (x)-[]->(y)", graph_table("(x)-[e]->(y)"), one)
    check(f"g{i} (x)->(y)", graph_table(f"(x IS v{i})->(y IS v{i})"), one)
    check(f"g{i} (y)<-[]-(x)", graph_table("(y)<-[e]-(x)"), one)
    check(f"g{i} (x)-[]-(y)", graph_table("(x)-[e]-(y)"), walks(edges, vertices, 1, 1, True))
    check(f"g{i} (x)->()->(y)", graph_table("(x)->()->(y)"), walks(edges, vertices, 2, 2, False))
    for lo, hi in [(1, 1), (1, 3), (0, 2), (2, 4), (0, 0)]:
        want = walks(edges, vertices, lo, hi, False)
        check(f"g{i} {{{lo},{hi}}}", graph_table(f"(x)-[IS e{i}]->{{{lo},{hi}}}(y)"), want)
        reversed_want = Counter({(b, a): n for (a, b), n in want.items()})
        check(f"g{i} <-{{{lo},{hi}}}", graph_table(f"(x)<-[IS e{i}]-{{{lo},{hi}}}(y)"), reversed_want)
    check(f"g{i} -{{1,2}}-", graph_table("(x)-[]-{1,2}(y)"), walks(edges, vertices, 1, 2, True))
    # A condition on a vertex, and one on the whole pattern.
    start = sorted(vertices)[0]
    lit = f"'{start}'" if kind == "text" else str(start)
    want = Counter({k: n for k, n in walks(edges, vertices, 1, 3, False).items() if k[0] == start})
    check(f"g{i} from {start}", graph_table(f"(x WHERE x.id = {lit})-[]->{{1,3}}(y)"), want)
    check(f"g{i} where {start}", graph_table("(x)-[]->{1,3}(y)", f"WHERE x.id = {lit}"), want)
    # Conditions on the end: walks found backward from it; a condition on
    # both ends; either way.
    end = sorted(vertices)[len(vertices) // 2]
    end_lit = f"'{end}'" if kind == "text" else str(end)
    for lo, hi, both in [(1, 3, False), (0, 2, False), (1, 2, True)]:
        arrow = f"-[]-{{{lo},{hi}}}" if both else f"-[]->{{{lo},{hi}}}"
        all_walks = walks(edges, vertices, lo, hi, both)
        want = Counter({k: n for k, n in all_walks.items() if k[1] == end})
        check(f"g{i} {arrow} to {end}", graph_table(f"(x){arrow}(y WHERE y.id = {end_lit})"), want)
        check(f"g{i} {arrow} where to {end}", graph_table(f"(x){arrow}(y)", f"WHERE y.id = {end_lit} AND TRUE"), want)
        want = Counter({k: n for k, n in all_walks.items() if k[0] < k[1]})
        check(f"g{i} {arrow} x < y", graph_table(f"(x){arrow}(y)", "WHERE x.id < y.id"), want)
    # The same with the start as a parameter of a prepared statement.
    cur.execute(
        f"SELECT a, b, count(*) FROM GRAPH_TABLE (g{i} MATCH (x)-[]->{{1,3}}(y) WHERE x.id = %s "
        f"COLUMNS (x.id AS a, y.id AS b)) GROUP BY a, b",
        (start,),
        prepare=True,
    )
    got = Counter({(a, b): n for a, b, n in cur.fetchall()})
    want = Counter({k: n for k, n in walks(edges, vertices, 1, 3, False).items() if k[0] == start})
    check(f"g{i} prepared from {start}", got, want)
    return one


def main():
    with psycopg.connect(DSN, autocommit=True) as conn, conn.cursor() as cur:
        edges_of = [
            check_graph(cur, i, (lambda n: f"n{n}") if i % 2 else (lambda n: n))
            for i in range(GRAPHS)
        ]
        # A query string that makes a graph and reads it: each statement
        # reads the catalog as the ones before it left it.
        cur.execute(
            "CREATE PROPERTY GRAPH again VERTEX TABLES (v0) EDGE TABLES "
            "(e0 SOURCE KEY (src) REFERENCES v0 DESTINATION KEY (dst) REFERENCES v0); "
            "SELECT count(*) FROM GRAPH_TABLE (again MATCH (x)-[]->(y) COLUMNS (x.id))"
        )
        cur.nextset()
        if cur.fetchone()[0] != sum(edges_of[0].values()):
            raise AssertionError("a graph made earlier in the same query string")
    print("ok")


main()
