"""The graph functions against networkx on the same random graphs: degrees,
breadth-first search with and without a depth limit, shortest paths by
edges and by weight, weakly connected components and PageRank, over
integer and text nodes, a table's name and a query; then the errors.
Edges are directed and may repeat (a MultiDiGraph) or loop.
Usage: networkx_diff.py HOST PORT (server/tests/it/graphs.rs runs it).
"""
import math
import random
import sys

import networkx as nx
import psycopg

HOST, PORT = sys.argv[1], int(sys.argv[2])
DSN = f"host={HOST} port={PORT} user=ciab dbname=ciab"
GRAPHS = 6
NODES = 60
EDGES = 150


def check(name, got, want):
    if got != want:
        raise AssertionError(f"{name}:\n got  {got!r}\n want {want!r}")


def random_graph(rng, label):
    """A MultiDiGraph whose nodes are integers (or texts through `label`),
    with repeated edges, self loops and a few isolated pieces."""
    g = nx.MultiDiGraph()
    for _ in range(EDGES):
        # Skewed choice of sources and targets: some nodes gather edges.
        s = int(NODES * rng.random() ** 2)
        t = rng.randrange(NODES) if rng.random() < 0.7 else s
        g.add_edge(label(s), label(t), w=rng.choice([0.5, 1.0, 2.0, 3.5, 7.0]))
    return g


def lit(value):
    """A node as an SQL literal: table functions take constants, which a
    query's parameters are not while it is planned."""
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


def rows(cur, sql):
    cur.execute(sql)
    return cur.fetchall()


def check_graph(cur, g, edges, where):
    nodes = sorted(g.nodes())
    degrees = {n: (g.in_degree(n), g.out_degree(n)) for n in nodes}
    got = {n: (i, o) for n, i, o in rows(cur, f"SELECT * FROM graph_degrees({edges})")}
    check(f"degrees {where}", got, degrees)

    for start in nodes[:: max(1, len(nodes) // 8)]:
        for depth in (None, 0, 1, 2):
            want = nx.single_source_shortest_path_length(g, start, cutoff=depth)
            limit = "" if depth is None else f", {depth}"
            got = dict(rows(cur, f"SELECT node, depth FROM graph_bfs({edges}, {lit(start)}{limit})"))
            check(f"bfs from {start!r} depth {depth} {where}", got, want)

    simple = nx.DiGraph()
    simple.add_nodes_from(g.nodes())
    for s, t, w in g.edges(data="w"):
        if not simple.has_edge(s, t) or simple[s][t]["w"] > w:
            simple.add_edge(s, t, w=w)
    rng = random.Random(len(nodes))
    for _ in range(12):
        s, t = rng.choice(nodes), rng.choice(nodes)
        for weighted in (False, True):
            path = rows(
                cur,
                f"SELECT step, node, distance FROM graph_shortest_path({edges}, {lit(s)}, {lit(t)}, {weighted}) "
                "ORDER BY step",
            )
            weight = "w" if weighted else None
            try:
                want = nx.shortest_path_length(simple, s, t, weight=weight)
            except nx.NetworkXNoPath:
                check(f"no path {s!r}->{t!r} {where}", path, [])
                continue
            check(f"path ends {s!r}->{t!r} {where}", (path[0][1], path[-1][1]), (s, t))
            check(f"path steps {s!r}->{t!r} {where}", [p[0] for p in path], list(range(len(path))))
            total = 0.0
            for (_, a, da), (_, b, db) in zip(path, path[1:]):
                if not simple.has_edge(a, b):
                    raise AssertionError(f"{a!r}->{b!r} is no edge {where}")
                step = simple[a][b]["w"] if weighted else 1
                total += step
                check(f"distance along {s!r}->{t!r} {where}", db, da + step)
            if not math.isclose(path[-1][2], want) or not math.isclose(total, want):
                raise AssertionError(f"{s!r}->{t!r} weighted={weighted} {where}: {path[-1][2]} vs {want}")

    want = {}
    for component in nx.weakly_connected_components(g):
        first = min(component)
        want.update({n: first for n in component})
    got = dict(rows(cur, f"SELECT node, component FROM graph_components({edges})"))
    check(f"components {where}", got, want)

    for damping in (None, 0.5):
        alpha = 0.85 if damping is None else damping
        # No weight attribute: each edge, repeats included, counts 1.
        want = nx.pagerank(g, alpha=alpha, weight=None)
        call = f"graph_pagerank({edges})" if damping is None else f"graph_pagerank({edges}, {damping})"
        got = dict(rows(cur, f"SELECT node, rank FROM {call}"))
        check(f"pagerank nodes {where}", sorted(got), sorted(want))
        for n, r in want.items():
            if abs(got[n] - r) > 1e-9:
                raise AssertionError(f"pagerank of {n!r} {where}: {got[n]} vs {r}")


def check_wide(cur):
    """A level of a walk wider than it looks up level by level (4,096
    nodes): the walk reads all the edges instead, with the same answers;
    and starts and targets that are no node, or only an edge's end."""
    g = nx.MultiDiGraph()
    leaves = 5000
    for i in range(1, leaves + 1):
        g.add_edge(0, i)
        g.add_edge(i, leaves + i)
    g.add_edge(2 * leaves, 3 * leaves)
    cur.execute("CREATE TABLE wide (src int, dst int)")
    with cur.copy("COPY wide (src, dst) FROM STDIN") as copy:
        for s, t in g.edges():
            copy.write_row((s, t))
    for depth in (None, 0, 1, 2):
        want = nx.single_source_shortest_path_length(g, 0, cutoff=depth)
        limit = "" if depth is None else f", {depth}"
        got = dict(rows(cur, f"SELECT node, depth FROM graph_bfs('wide', 0{limit})"))
        check(f"bfs from 0 depth {depth} in wide", got, want)
    path = rows(cur, f"SELECT node FROM graph_shortest_path('wide', 0, {3 * leaves}) ORDER BY step")
    check("path across the wide level", [n for (n,) in path], [0, leaves, 2 * leaves, 3 * leaves])
    for sql, want in [
        ("SELECT step, node, distance FROM graph_shortest_path('wide', 7, 7)", [(0, 7, 0.0)]),
        (f"SELECT step, node, distance FROM graph_shortest_path('wide', {3 * leaves}, {3 * leaves})",
         [(0, 3 * leaves, 0.0)]),
        ("SELECT * FROM graph_shortest_path('wide', 99999, 99999)", []),
        ("SELECT * FROM graph_shortest_path('wide', 7, 99999)", []),
        ("SELECT * FROM graph_shortest_path('wide', 7, 0)", []),
        ("SELECT * FROM graph_bfs('wide', 99999)", []),
        ("SELECT * FROM graph_bfs('wide', 99999, 0)", []),
        # Only the end of an edge.
        (f"SELECT node, depth FROM graph_bfs('wide', {3 * leaves})", [(3 * leaves, 0)]),
        (f"SELECT node, depth FROM graph_bfs('wide', {3 * leaves}, 0)", [(3 * leaves, 0)]),
        ("SELECT node, depth FROM graph_bfs('wide', 7, 0)", [(7, 0)]),
        # A node the column cannot hold is no node.
        ("SELECT * FROM graph_bfs('wide', 99999999999)", []),
    ]:
        check(sql, rows(cur, sql), want)


def main():
    with psycopg.connect(DSN, autocommit=True) as conn, conn.cursor() as cur:
        rng = random.Random(20261201)
        for i in range(GRAPHS):
            text = i % 3 == 2
            g = random_graph(rng, (lambda n: f"n{n}") if text else (lambda n: n))
            kind = "text" if text else "bigint"
            cur.execute(f"CREATE TABLE e{i} (src {kind}, dst {kind}, w double precision)")
            with cur.copy(f"COPY e{i} (src, dst, w) FROM STDIN") as copy:
                for s, t, w in g.edges(data="w"):
                    copy.write_row((s, t, w))
            check_graph(cur, g, f"'e{i}'", f"in graph e{i}")
            # The same edges reversed, through a query.
            check_graph(cur, g.reverse(), f"'SELECT dst, src, w FROM e{i}'", f"in e{i} reversed")

        check_wide(cur)

        cur.execute("CREATE TABLE bad (src int, dst int, w int)")
        cur.execute("INSERT INTO bad VALUES (1, 2, -1), (2, NULL, 1)")
        for sql, state in [
            ("SELECT * FROM graph_bfs('e0')", "42883"),
            ("SELECT * FROM graph_bfs('missing', 1)", "42P01"),
            ("SELECT * FROM graph_bfs('e0', 1, -1)", "22023"),
            ("SELECT * FROM graph_shortest_path('bad', 1, 2, true)", "22023"),
            ("SELECT * FROM graph_bfs('SELECT src, w FROM e0', 1)", "42804"),
            ("SELECT * FROM graph_pagerank('e0', 2)", "22023"),
            ("SELECT * FROM graph_bfs('e0', 1, 'x')", "22023"),
            ("SELECT * FROM graph_shortest_path('e0', 1, 2, 'x')", "22023"),
            ("SELECT * FROM graph_bfs('e0', 1, 2, 3)", "42883"),
        ]:
            try:
                cur.execute(sql)
            except psycopg.Error as e:
                check(sql, e.sqlstate, state)
            else:
                raise AssertionError(f"{sql} succeeded")
        # An edge with a NULL end is no edge; the connection lives on.
        check("null ends", rows(cur, "SELECT node, depth FROM graph_bfs('bad', 2) ORDER BY 1"), [(2, 0)])
    print("ok")


main()
