"""GRAPH_TABLE against walks counted in Python on the same random graphs:
fixed patterns of one and two edges in each direction, quantified edges
({lo,hi}, one row per walk), vertex conditions, and a property graph over
text keys; path modes (TRAIL, ACYCLIC, SIMPLE), bounded and unbounded, and
search prefixes (ANY, ANY SHORTEST, ALL SHORTEST, SHORTEST k [GROUPS])
against walks listed one by one, and over unbounded walks against a
breadth-first search (from 0 to 3 hops, also after a fixed edge, and
on one of two path patterns, which picks before they join) and, for two
matches a pair, against walks counted by length; aggregates
over each walk's edges (count, sum, min, max, listagg, with DISTINCT and
ORDER BY); walks that cross vertex
tables whose keys overlap. Edges are directed and may repeat or loop;
some end at a vertex that is not in the vertex table, and a pattern never
matches those.
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


def steps_out(edges, vertices, both_ways):
    """By vertex, the steps a walk may take from it as (edge's position in
    `edges`, next vertex): edges between vertices of the table, and either
    way (a loop once) where `both_ways`."""
    steps = [(k, s, t) for k, (s, t) in enumerate(edges) if s in vertices and t in vertices]
    if both_ways:
        steps += [(k, t, s) for k, s, t in steps if s != t]
    out = {}
    for k, s, t in steps:
        out.setdefault(s, []).append((k, t))
    return out


def walks(edges, vertices, lo, hi, both_ways):
    """How many walks of lo to hi edges lead from each vertex to each, as
    SQL/PGQ's WALK mode matches them: every vertex on the way is in the
    vertex table, and an edge followed either way is one step (a loop
    once)."""
    out = steps_out(edges, vertices, both_ways)
    found = Counter()
    for start in vertices:
        frontier = Counter({start: 1})
        for k in range(hi + 1):
            if k >= lo:
                for v, n in frontier.items():
                    found[(start, v)] += n
            nxt = Counter()
            for v, n in frontier.items():
                for _, t in out.get(v, []):
                    nxt[t] += n
            frontier = nxt
    return found


def listed(edges, vertices, lo, hi, both_ways, mode):
    """Every walk of lo to hi edges (no hi: any number) that `mode` allows,
    as (first vertex, last vertex, length). Edges are told apart by their
    position in `edges`, as the edge table's key tells them apart."""
    out = steps_out(edges, vertices, both_ways)

    def allowed(path, used):
        if mode == "TRAIL":
            return len(set(used)) == len(used)
        if mode == "ACYCLIC":
            return len(set(path)) == len(path)
        if mode == "SIMPLE":
            inner = path[:-1] if len(path) > 1 and path[0] == path[-1] else path
            return len(set(inner)) == len(inner)
        return True

    found = []

    def extend(path, used):
        if not allowed(path, used):
            return
        if len(used) >= lo:
            found.append((path[0], path[-1], len(used)))
        if hi is not None and len(used) == hi:
            return
        for k, t in out.get(path[-1], []):
            extend(path + [t], used + [k])

    for start in vertices:
        extend([start], [])
    return found


def folded(edges, weights, vertices, lo, hi, both_ways):
    """Each walk of lo to hi edges (lo at least 1) as (first, last, edges,
    sum, min, max, the weights in path order joined by commas; the count,
    sum and sorted list of the distinct weights; the weights sorted
    descending): what aggregates over the quantified edge's variable give."""
    out = steps_out(edges, vertices, both_ways)
    found = Counter()

    def extend(first, at, used):
        if len(used) >= lo:
            w = [weights[k] for k in used]
            once = sorted(set(w))
            listed = ",".join(map(str, w))
            found[(first, at, len(w), sum(w), min(w), max(w), listed, len(once), sum(once),
                   ",".join(map(str, once)), ",".join(map(str, sorted(w, reverse=True))))] += 1
        if len(used) == hi:
            return
        for k, t in out.get(at, []):
            extend(first, t, used + [k])

    for start in vertices:
        extend(start, start, [])
    return found


def shortest_walks(edges, vertices, lo, start):
    """From start, each vertex a walk of at least lo edges reaches, as
    (start, end, length) with the number of shortest walks there: a
    breadth-first search over (vertex, edges so far up to lo) that counts
    walks, independent of the path modes."""
    out = steps_out(edges, vertices, False)
    found = Counter()
    seen = {(start, 0)}
    frontier = Counter({(start, 0): 1})
    length = 0
    if lo == 0:
        found[(start, start, 0)] = 1
    while frontier:
        step = Counter()
        for (v, c), n in frontier.items():
            for _, t in out.get(v, []):
                step[(t, min(c + 1, lo))] += n
        length += 1
        # A walk on through a state it reached late is no shortest walk.
        frontier = Counter({s: n for s, n in step.items() if s not in seen})
        for (t, c), n in frontier.items():
            seen.add((t, c))
            if c == lo:
                found[(start, t, length)] = n
    return found


def walks_by_length(edges, vertices, lo, start, longest):
    """From start, how many walks of at least lo edges reach each vertex,
    by length up to longest, as {(start, end, length): count}."""
    out = steps_out(edges, vertices, False)
    found = Counter()
    layer = Counter({(start, 0): 1})
    if lo == 0:
        found[(start, start, 0)] = 1
    for length in range(1, longest + 1):
        step = Counter()
        for (v, c), n in layer.items():
            for _, t in out.get(v, []):
                step[(t, min(c + 1, lo))] += n
        layer = step
        for (t, c), n in layer.items():
            if c == lo:
                found[(start, t, length)] += n
    return found


def selected(paths, prefix):
    """The (first, last) multiset of the paths a search prefix keeps."""
    by_pair = {}
    for a, b, n in paths:
        by_pair.setdefault((a, b), []).append(n)
    kept = Counter()
    for pair, lengths in by_pair.items():
        lengths.sort()
        if prefix.startswith("ANY SHORTEST"):
            kept[pair] = 1
        elif prefix.startswith("ALL SHORTEST"):
            kept[pair] = lengths.count(lengths[0])
        elif prefix.startswith("SHORTEST 2 GROUPS"):
            kept[pair] = sum(1 for n in lengths if n in sorted(set(lengths))[:2])
        elif prefix.startswith("SHORTEST 3"):
            kept[pair] = min(3, len(lengths))
        elif prefix.startswith("ANY 2"):
            kept[pair] = min(2, len(lengths))
        else:
            raise ValueError(prefix)
    return kept


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
    cur.execute(f"CREATE TABLE e{i} (id int PRIMARY KEY, src {kind}, dst {kind}, w int)")
    with cur.copy(f"COPY v{i} (id, name) FROM STDIN") as copy:
        for v in sorted(vertices):
            copy.write_row((v, f"name {v}"))
    weights = []
    with cur.copy(f"COPY e{i} (id, src, dst, w) FROM STDIN") as copy:
        for k, (s, t) in enumerate(edges):
            weights.append(rng.randrange(10))
            copy.write_row((k, s, t, weights[-1]))
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
    # Up to four edges, joins; past four, a recursive query.
    for lo, hi in [(1, 1), (1, 3), (0, 2), (2, 4), (0, 0), (3, 6)]:
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
    # Path modes: bounded on the whole graph, unbounded from one vertex
    # (but not TRAIL: millions of trails start at the hub).
    for mode in ["TRAIL", "ACYCLIC", "SIMPLE"]:
        for arrow, both in [("-[]->{1,3}", False), ("<-[]-{0,3}", False), ("-[]-{1,3}", True)]:
            lo, hi = (0, 3) if "{0" in arrow else (1, 3)
            paths = listed(edges, vertices, lo, hi, both, mode)
            if arrow.startswith("<"):
                paths = [(b, a, n) for a, b, n in paths]
            want = Counter((a, b) for a, b, _ in paths)
            check(f"g{i} {mode} {arrow}", graph_table(f"{mode} (x){arrow}(y)"), want)
        if mode == "TRAIL":
            continue
        paths = [p for p in listed(edges, vertices, 1, None, False, mode) if p[0] == start]
        want = Counter((a, b) for a, b, _ in paths)
        check(f"g{i} {mode} + from {start}", graph_table(f"{mode} PATHS (x)-[]->+(y)", f"WHERE x.id = {lit}"), want)
    # A mode over a fixed edge and a walk together: the path's vertices.
    paths = listed(edges, vertices, 2, 3, False, "ACYCLIC")
    want = Counter((a, b) for a, b, _ in paths)
    check(f"g{i} ACYCLIC ->{{1,2}}", graph_table("ACYCLIC (x)-[]->(m)-[]->{1,2}(y)"), want)
    # Search prefixes, over walks and over trails.
    for prefix in ["ANY SHORTEST", "ALL SHORTEST", "SHORTEST 3", "SHORTEST 2 GROUPS", "ANY 2"]:
        for mode in ["", "TRAIL"]:
            paths = listed(edges, vertices, 1, 3, False, mode or "WALK")
            want = selected(paths, prefix)
            # The mode goes before GROUPS.
            words = prefix.split(" GROUPS")
            pattern = f"{words[0]} {mode} {'GROUPS' if len(words) > 1 else ''} (x)-[]->{{1,3}}(y)"
            check(f"g{i} {pattern}", graph_table(pattern), want)
    paths = [p for p in listed(edges, vertices, 0, None, False, "ACYCLIC") if p[0] == start]
    check(
        f"g{i} ANY SHORTEST ACYCLIC * from {start}",
        graph_table("ANY SHORTEST ACYCLIC (x)-[]->*(y)", f"WHERE x.id = {lit}"),
        selected(paths, "ANY SHORTEST"),
    )
    # Unbounded WALK under a prefix that keeps shortest walks, from the
    # start and (found backward) to the end, against a breadth-first search.
    def lengths(pattern, where, length="count(e.w)"):
        cur.execute(
            f"SELECT * FROM GRAPH_TABLE (g{i} MATCH {pattern} {where} "
            f"COLUMNS (x.id AS a, y.id AS b, {length}))"
        )
        return Counter(tuple(row) for row in cur.fetchall())

    for quantifier, lo in [("*", 0), ("+", 1), ("{2,}", 2), ("{3,}", 3)]:
        from_start = shortest_walks(edges, vertices, lo, start)
        to_end = Counter()
        for v in vertices:
            to_end.update({k: n for k, n in shortest_walks(edges, vertices, lo, v).items() if k[1] == end})
        pattern = f"(x)-[e]->{quantifier}(y)"
        for found, where in [(from_start, f"WHERE x.id = {lit}"), (to_end, f"WHERE y.id = {end_lit}")]:
            check(f"g{i} ALL SHORTEST WALK {pattern} {where}", lengths(f"ALL SHORTEST {pattern}", where), found)
            # The same lengths from the path's variable.
            check(
                f"g{i} p = ALL SHORTEST WALK {pattern} {where}, path_length(p)",
                lengths(f"p = ALL SHORTEST {pattern}", where, "path_length(p)"),
                found,
            )
            check(f"g{i} ANY SHORTEST WALK {pattern} {where}", lengths(f"ANY SHORTEST {pattern}", where), Counter(set(found)))
    # More than one match for each pair: the second may go round a cycle.
    # (From the hub of one graph: there are many such walks.)
    if i == 0:
        counts = walks_by_length(edges, vertices, 1, start, 3 * NODES)
        by_end = {}
        for (_, y, length), n in sorted(counts.items()):
            by_end.setdefault(y, []).append((length, n))
        for prefix in ["SHORTEST 2", "SHORTEST 2 GROUPS"]:
            want = Counter()
            for y, found in by_end.items():
                if prefix == "SHORTEST 2 GROUPS":
                    want.update({(start, y, length): n for length, n in found[:2]})
                    continue
                left = 2
                for length, n in found:
                    want[(start, y, length)] += min(n, left)
                    left -= min(n, left)
            want = +want
            got = lengths(f"{prefix} (x)-[e]->+(y)", f"WHERE x.id = {lit}")
            check(f"g{i} {prefix} (x)-[e]->+(y) from {start}", got, want)
    # An unbounded walk after a fixed edge: a shortest match takes, from
    # each vertex the edge reaches, a shortest walk on.
    after_edge = {}
    for _, m in steps_out(edges, vertices, False).get(start, []):
        for (_, y, length), n in shortest_walks(edges, vertices, 1, m).items():
            after_edge.setdefault(y, Counter())[length + 1] += n
    want = Counter({(start, y, min(c)): c[min(c)] for y, c in after_edge.items()})
    check(
        f"g{i} ALL SHORTEST (x)-[]->(m)-[e]->+(y) from {start}",
        lengths("ALL SHORTEST (x)-[]->(m)-[e]->+(y)", f"WHERE x.id = {lit}", "count(e.w) + 1"),
        want,
    )
    # A prefix on one of two path patterns picks before they join: the
    # shortest walks from the start to each y, each with every edge out
    # of y.
    out = steps_out(edges, vertices, False)
    for prefix in ["ALL SHORTEST", "ANY SHORTEST"]:
        want = Counter()
        for (_, y, _), n in shortest_walks(edges, vertices, 1, start).items():
            for _, z in out.get(y, []):
                want[(y, z)] += n if prefix == "ALL SHORTEST" else 1
        got = counted(
            cur,
            f"SELECT a, b, count(*) FROM GRAPH_TABLE (g{i} MATCH {prefix} (x WHERE x.id = {lit})-[e]->+(y), "
            f"(y)-[]->(z) COLUMNS (y.id AS a, z.id AS b)) GROUP BY a, b",
        )
        check(f"g{i} {prefix} (x)-[e]->+(y), (y)-[]->(z) from {start}", got, want)
    # Aggregates over the edges of each walk, found forward, backward (from
    # a condition on the end) and either way.
    def aggregates(pattern):
        cur.execute(
            f"SELECT * FROM GRAPH_TABLE (g{i} MATCH {pattern} COLUMNS (x.id AS a, y.id AS b, "
            f"count(e.w), sum(e.w), min(e.w), max(e.w), listagg(e.w, ','), count(DISTINCT e.w), "
            f"sum(DISTINCT e.w), string_agg(DISTINCT e.w, ','), "
            f"listagg(e.w, ',') WITHIN GROUP (ORDER BY e.w DESC)))"
        )
        return Counter(tuple(row) for row in cur.fetchall())

    want = folded(edges, weights, vertices, 1, 3, False)
    check(f"g{i} folds ->{{1,3}}", aggregates("(x)-[e]->{1,3}(y)"), want)
    check(f"g{i} folds to {end}", aggregates(f"(x)-[e]->{{1,3}}(y WHERE y.id = {end_lit})"),
          Counter({k: n for k, n in want.items() if k[1] == end}))
    check(f"g{i} folds -{{1,2}}-", aggregates("(x)-[e]-{1,2}(y)"), folded(edges, weights, vertices, 1, 2, True))
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


def check_mixed(cur):
    """Walks that cross vertex tables: people (mp) and clubs (mc), whose
    keys overlap (person 3 and club 3 are two vertices), joined by people
    knowing people (mk), joining clubs (mj) and clubs naming people (mf).
    A vertex is its name (`p3`, `c3`), which tells the tables apart."""
    rng = random.Random(20261204)
    people, clubs = 12, 8
    # The last person has no row: a walk never reaches it.
    vertices = {f"p{n}" for n in range(people - 1)} | {f"c{n}" for n in range(clubs)}
    size = {"mp": people, "mc": clubs}
    prefix = {"mp": "p", "mc": "c"}
    # Each edge table: its source's and destination's vertex tables, and rows.
    tables = {"mk": ("mp", "mp", 24), "mj": ("mp", "mc", 16), "mf": ("mc", "mp", 8)}
    cur.execute("CREATE TABLE mp (id int PRIMARY KEY, name text)")
    cur.execute("CREATE TABLE mc (id int PRIMARY KEY, name text)")
    for table in ["mp", "mc"]:
        with cur.copy(f"COPY {table} (id, name) FROM STDIN") as copy:
            for v in sorted(v for v in vertices if v[0] == prefix[table]):
                copy.write_row((int(v[1:]), v))
    edges_of = {}
    for table, (source, destination, count) in tables.items():
        sn, dn = size[source], size[destination]
        edges = []
        for _ in range(count):
            s = rng.randrange(sn)
            # Equal keys at both ends are no loop across tables.
            t = s if rng.random() < 0.2 and s < dn else rng.randrange(dn)
            edges.append((s, t))
        cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, src int, dst int)")
        with cur.copy(f"COPY {table} (id, src, dst) FROM STDIN") as copy:
            for k, (s, t) in enumerate(edges):
                copy.write_row((k, s, t))
        edges_of[table] = [(f"{prefix[source]}{s}", f"{prefix[destination]}{t}") for s, t in edges]
    cur.execute(
        "CREATE PROPERTY GRAPH mixed VERTEX TABLES (mp, mc) EDGE TABLES ("
        + ", ".join(
            f"{t} SOURCE KEY (src) REFERENCES {s} (id) DESTINATION KEY (dst) REFERENCES {d} (id)"
            for t, (s, d, _) in tables.items()
        )
        + ")"
    )
    every = [e for t in tables for e in edges_of[t]]

    def graph_table(pattern, where=""):
        return counted(
            cur,
            f"SELECT a, b, count(*) FROM GRAPH_TABLE (mixed MATCH {pattern} {where} "
            f"COLUMNS (x.name AS a, y.name AS b)) GROUP BY a, b",
        )

    def kept(found, first="", last=""):
        return Counter({k: n for k, n in found.items() if k[0].startswith(first) and k[1].startswith(last)})

    for lo, hi in [(1, 1), (1, 3), (0, 2), (2, 4)]:
        check(f"mixed {{{lo},{hi}}}", graph_table(f"(x)-[]->{{{lo},{hi}}}(y)"), walks(every, vertices, lo, hi, False))
        check(f"mixed -{{{lo},{hi}}}-", graph_table(f"(x)-[]-{{{lo},{hi}}}(y)"), walks(every, vertices, lo, hi, True))
    want = walks(every, vertices, 1, 3, False)
    check("mixed <-{1,3}", graph_table("(y)<-[]-{1,3}(x)"), want)
    check("mixed mp to mc", graph_table("(x IS mp)-[]->{0,3}(y IS mc)"), kept(want, "p", "c"))
    check("mixed mc to mc", graph_table("(x IS mc)-[]->{0,3}(y IS mc)"),
          kept(walks(every, vertices, 0, 3, False), "c", "c"))
    clubs_only = edges_of["mj"] + edges_of["mf"]
    check("mixed IS mj|mf", graph_table("(x)-[IS mj|mf]->{1,4}(y)"), walks(clubs_only, vertices, 1, 4, False))
    # Joining and naming alone: no second hop after a join, so one edge.
    check("mixed IS mj {1,3}", graph_table("(x)-[IS mj]->{1,3}(y)"), walks(edges_of["mj"], vertices, 1, 1, False))
    # Walks from one vertex, and found backward from one.
    both = walks(every, vertices, 1, 3, True)
    check("mixed from p0", graph_table("(x WHERE x.name = 'p0')-[]-{1,3}(y)"), kept(both, "p0"))
    check("mixed to c2", graph_table("(x)-[]->{1,3}(y WHERE y.name = 'c2')"), kept(want, "", "c2"))
    check("mixed from c1", graph_table("(x)-[]-{1,3}(y)", "WHERE x.name = 'c1'"), kept(both, "c1"))
    # Path modes: edges told apart by table and key, vertices by table and key.
    for mode in ["TRAIL", "ACYCLIC", "SIMPLE"]:
        for both_ways in [False, True]:
            arrow = "-[]-{1,3}" if both_ways else "-[]->{1,3}"
            paths = listed(every, vertices, 1, 3, both_ways, mode)
            check(f"mixed {mode} {arrow}", graph_table(f"{mode} (x){arrow}(y)"),
                  Counter((a, b) for a, b, _ in paths))
    paths = [p for p in listed(every, vertices, 1, None, False, "ACYCLIC") if p[0] == "p0"]
    check("mixed ACYCLIC + from p0", graph_table("ACYCLIC (x WHERE x.name = 'p0')-[]->+(y)"),
          Counter((a, b) for a, b, _ in paths))
    paths = [p for p in listed(every, vertices, 1, 3, False, "WALK") if p[0][0] == "p" and p[1][0] == "c"]
    check("mixed ANY SHORTEST", graph_table("ANY SHORTEST (x IS mp)-[]->{1,3}(y IS mc)"),
          selected(paths, "ANY SHORTEST"))


def main():
    with psycopg.connect(DSN, autocommit=True) as conn, conn.cursor() as cur:
        edges_of = [
            check_graph(cur, i, (lambda n: f"n{n}") if i % 2 else (lambda n: n))
            for i in range(GRAPHS)
        ]
        check_mixed(cur)
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
