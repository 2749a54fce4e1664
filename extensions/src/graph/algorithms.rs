//! The graph algorithms behind the graph table functions, over a graph of
//! dense node numbers (`0..n`), so each runs on plain vectors.
//!
//! Their answers are networkx's on the same edges (the differential test
//! `sql-tests/graphs/networkx_diff.py` holds them to it): edges are
//! directed, and repeated edges count as often as they appear, as in a
//! `MultiDiGraph`.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// A dense node number.
pub type Node = u32;

/// An edge: source, target and weight.
pub type Edge = (Node, Node, f64);

/// A directed graph as compressed adjacency lists: the edges out of node
/// `v` are `targets[offsets[v]..offsets[v + 1]]`, with their weights.
#[derive(Debug)]
pub struct Graph {
    offsets: Vec<usize>,
    targets: Vec<Node>,
    weights: Vec<f64>,
}

impl Graph {
    /// The graph of `node_count` nodes and the edges `(source, target,
    /// weight)`.
    pub fn new(node_count: usize, edges: &[Edge]) -> Graph {
        let mut offsets = vec![0; node_count + 1];
        for &(s, _, _) in edges {
            offsets[s as usize + 1] += 1;
        }
        for v in 0..node_count {
            offsets[v + 1] += offsets[v];
        }
        let mut next = offsets.clone();
        let mut targets = vec![0; edges.len()];
        let mut weights = vec![0.0; edges.len()];
        for &(s, t, w) in edges {
            let slot = &mut next[s as usize];
            targets[*slot] = t;
            weights[*slot] = w;
            *slot += 1;
        }
        Graph {
            offsets,
            targets,
            weights,
        }
    }

    pub fn node_count(&self) -> usize {
        self.offsets.len() - 1
    }

    fn out(&self, v: Node) -> impl Iterator<Item = (Node, f64)> + '_ {
        let range = self.offsets[v as usize]..self.offsets[v as usize + 1];
        self.targets[range.clone()]
            .iter()
            .copied()
            .zip(self.weights[range].iter().copied())
    }

    /// Every node's number of edges in and out.
    pub fn degrees(&self) -> Vec<(u64, u64)> {
        let mut degrees = vec![(0, 0); self.node_count()];
        for (v, degree) in degrees.iter_mut().enumerate() {
            degree.1 = (self.offsets[v + 1] - self.offsets[v]) as u64;
        }
        for &t in &self.targets {
            degrees[t as usize].0 += 1;
        }
        degrees
    }

    /// The nodes reachable from `start` within `depth_max` edges, each with
    /// the fewest edges that reach it (`start` itself at 0), in the order a
    /// breadth-first search meets them.
    pub fn bfs(&self, start: Node, depth_max: Option<u64>) -> Vec<(Node, u64)> {
        let mut depth = vec![u64::MAX; self.node_count()];
        let mut queue = VecDeque::from([start]);
        depth[start as usize] = 0;
        let mut reached = vec![];
        while let Some(v) = queue.pop_front() {
            let d = depth[v as usize];
            reached.push((v, d));
            if depth_max.is_some_and(|m| d >= m) {
                continue;
            }
            for (t, _) in self.out(v) {
                if depth[t as usize] == u64::MAX {
                    depth[t as usize] = d + 1;
                    queue.push_back(t);
                }
            }
        }
        reached
    }

    /// A path with the fewest edges from `source` to `target`, or None.
    pub fn shortest_path(&self, source: Node, target: Node) -> Option<Vec<Node>> {
        let mut parent = vec![Node::MAX; self.node_count()];
        parent[source as usize] = source;
        let mut queue = VecDeque::from([source]);
        while let Some(v) = queue.pop_front() {
            if v == target {
                return Some(self.walk_back(&parent, source, target));
            }
            for (t, _) in self.out(v) {
                if parent[t as usize] == Node::MAX {
                    parent[t as usize] = v;
                    queue.push_back(t);
                }
            }
        }
        None
    }

    /// A path of least total weight from `source` to `target` (Dijkstra's;
    /// weights are never negative), with the weight to each node on it.
    pub fn cheapest_path(&self, source: Node, target: Node) -> Option<Vec<(Node, f64)>> {
        let mut cost = vec![f64::INFINITY; self.node_count()];
        let mut parent = vec![Node::MAX; self.node_count()];
        let mut done = vec![false; self.node_count()];
        cost[source as usize] = 0.0;
        parent[source as usize] = source;
        let mut heap = BinaryHeap::from([Reached(0.0, source)]);
        while let Some(Reached(c, v)) = heap.pop() {
            if std::mem::replace(&mut done[v as usize], true) {
                continue;
            }
            if v == target {
                let path = self.walk_back(&parent, source, target);
                return Some(path.into_iter().map(|n| (n, cost[n as usize])).collect());
            }
            for (t, w) in self.out(v) {
                assert!(w >= 0.0, "weights are checked when edges load");
                if c + w < cost[t as usize] {
                    cost[t as usize] = c + w;
                    parent[t as usize] = v;
                    heap.push(Reached(c + w, t));
                }
            }
        }
        None
    }

    fn walk_back(&self, parent: &[Node], source: Node, target: Node) -> Vec<Node> {
        let mut path = vec![target];
        let mut v = target;
        while v != source {
            v = parent[v as usize];
            path.push(v);
            assert!(path.len() <= self.node_count(), "parents form no cycle");
        }
        path.reverse();
        path
    }

    /// Each node's weakly connected component, as the component's first
    /// node in `order` (so the caller picks which node names it).
    pub fn components(&self, order: impl Fn(Node, Node) -> Ordering) -> Vec<Node> {
        fn find(root: &mut [Node], mut v: Node) -> Node {
            while root[v as usize] != v {
                root[v as usize] = root[root[v as usize] as usize];
                v = root[v as usize];
            }
            v
        }
        let mut root: Vec<Node> = (0..self.node_count() as Node).collect();
        for v in 0..self.node_count() as Node {
            for (t, _) in self.out(v) {
                let (a, b) = (find(&mut root, v), find(&mut root, t));
                if a != b {
                    // The root stays the component's first node.
                    let (first, other) = if order(a, b).is_le() { (a, b) } else { (b, a) };
                    root[other as usize] = first;
                }
            }
        }
        (0..self.node_count() as Node)
            .map(|v| find(&mut root, v))
            .collect()
    }

    /// PageRank by networkx's power iteration: ranks start equal, dangling
    /// nodes give theirs to all nodes alike, and iteration stops when the
    /// ranks move less than `node_count * tolerance` in total. None if that
    /// takes more than `iterations_max` rounds.
    pub fn pagerank(
        &self,
        damping: f64,
        iterations_max: usize,
        tolerance: f64,
    ) -> Option<Vec<f64>> {
        let n = self.node_count();
        if n == 0 {
            return Some(vec![]);
        }
        let out_weight: Vec<f64> = (0..n as Node)
            .map(|v| self.out(v).map(|(_, w)| w).sum())
            .collect();
        let uniform = 1.0 / n as f64;
        let mut rank = vec![uniform; n];
        for _ in 0..iterations_max {
            let dangling: f64 = (0..n)
                .filter(|&v| out_weight[v] == 0.0)
                .map(|v| rank[v])
                .sum();
            let mut next = vec![damping * dangling * uniform + (1.0 - damping) * uniform; n];
            for v in 0..n as Node {
                if out_weight[v as usize] == 0.0 {
                    continue;
                }
                let share = damping * rank[v as usize] / out_weight[v as usize];
                for (t, w) in self.out(v) {
                    next[t as usize] += share * w;
                }
            }
            let moved: f64 = next.iter().zip(&rank).map(|(a, b)| (a - b).abs()).sum();
            rank = next;
            if moved < n as f64 * tolerance {
                return Some(rank);
            }
        }
        None
    }
}

/// A node reached at a cost, ordered for a min-heap on the cost.
#[derive(PartialEq)]
struct Reached(f64, Node);

impl Eq for Reached {}

impl PartialOrd for Reached {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Reached {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(other.1.cmp(&self.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(n: usize, edges: &[(Node, Node)]) -> Graph {
        let edges: Vec<_> = edges.iter().map(|&(s, t)| (s, t, 1.0)).collect();
        Graph::new(n, &edges)
    }

    #[test]
    fn bfs_counts_fewest_edges_and_stops_at_depth() {
        let g = graph(5, &[(0, 1), (1, 2), (0, 2), (2, 3), (3, 0)]);
        assert_eq!(g.bfs(0, None), vec![(0, 0), (1, 1), (2, 1), (3, 2)]);
        assert_eq!(g.bfs(0, Some(1)), vec![(0, 0), (1, 1), (2, 1)]);
        assert_eq!(g.bfs(4, None), vec![(4, 0)]);
    }

    #[test]
    fn paths_by_edges_and_by_weight() {
        let g = Graph::new(
            4,
            &[
                (0, 1, 1.0),
                (1, 3, 1.0),
                (0, 2, 0.5),
                (2, 3, 0.25),
                (0, 3, 5.0),
            ],
        );
        assert_eq!(g.shortest_path(0, 3), Some(vec![0, 3]));
        assert_eq!(
            g.cheapest_path(0, 3),
            Some(vec![(0, 0.0), (2, 0.5), (3, 0.75)])
        );
        assert_eq!(g.shortest_path(3, 0), None);
        assert_eq!(g.cheapest_path(0, 0), Some(vec![(0, 0.0)]));
    }

    #[test]
    fn components_are_named_by_their_first_node() {
        let g = graph(6, &[(5, 4), (2, 1), (1, 0)]);
        assert_eq!(g.components(|a, b| a.cmp(&b)), vec![0, 0, 0, 3, 4, 4]);
        assert_eq!(g.components(|a, b| b.cmp(&a)), vec![2, 2, 2, 3, 5, 5]);
    }

    #[test]
    fn pagerank_sums_to_one_and_favours_the_linked() {
        let g = graph(3, &[(0, 1), (2, 1), (1, 0)]);
        let rank = g.pagerank(0.85, 100, 1e-6).unwrap();
        assert!((rank.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(rank[1] > rank[0] && rank[0] > rank[2]);
        assert_eq!(g.degrees(), vec![(1, 1), (2, 1), (0, 1)]);
    }
}
