//! Graph functions as table functions over any edge table:
//!
//! ```text
//!  graph_bfs(edges, start [, depth_max])        node, depth
//!  graph_shortest_path(edges, source, target    step, node, distance
//!                      [, weighted])
//!  graph_components(edges)                      node, component
//!  graph_pagerank(edges [, damping])            node, rank
//!  graph_degrees(edges)                         node, in_degree, out_degree
//! ```
//!
//! `edges` is a table's name or a query (`'knows'`, `'SELECT b, a FROM
//! knows'`): its first column is an edge's source, its second the
//! destination (both integers, or both text), its third a weight where
//! one is used. Edges are directed; an undirected graph is the query that
//! adds each edge reversed.
//!
//! ```text
//!  planning:   the edges' query is planned, for the node type
//!  execution:  edges ──► dense node numbers ──► Graph ──► algorithm ──► rows
//!  or, walks:  start ──► edges out of it ──► edges out of those ──► ... ──► rows
//! ```
//!
//! The edges are read when the query runs, in the query's snapshot.
//! Components, PageRank and degrees need every edge, so the graph is
//! built in memory for the call: whole-graph algorithms, which a join
//! plan could not express or would run far slower (PageRank iterates).
//! A breadth-first search and an unweighted shortest path need only the
//! edges out of the nodes they reach, level by level, which is a small
//! part of a large graph for a few levels: they look up each level's
//! edges out (the edges' query filtered by `source IN (level)`), and
//! build the whole graph only when a level grows past
//! [`WALK_LEVEL_NODES_MAX`], where reading every edge once costs less
//! than looking them up level by level.

mod algorithms;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::{Column, DataFusionError, Result, ScalarValue};
use datafusion::execution::TaskContext;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, TableType, lit};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream, collect};
use datafusion::prelude::SessionContext;

use crate::error::{Error, sqlstate};
use algorithms::{Edge, Graph, Node};

/// networkx's PageRank defaults, which the differential test holds us to.
const PAGERANK_DAMPING_DEFAULT: f64 = 0.85;
const PAGERANK_ITERATIONS_MAX: usize = 100;
const PAGERANK_TOLERANCE: f64 = 1e-6;

/// The most nodes one level of a walk looks up the edges out of; a walk
/// whose level grows past it reads all the edges and builds the graph.
const WALK_LEVEL_NODES_MAX: usize = 4_096;

/// The graph functions, registered as table functions.
pub fn register(ctx: &SessionContext) {
    for algorithm in [
        Algorithm::Bfs,
        Algorithm::ShortestPath,
        Algorithm::Components,
        Algorithm::PageRank,
        Algorithm::Degrees,
    ] {
        ctx.register_udtf(algorithm.name(), Arc::new(GraphFunction(algorithm)));
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Algorithm {
    Bfs,
    ShortestPath,
    Components,
    PageRank,
    Degrees,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Bfs => "graph_bfs",
            Algorithm::ShortestPath => "graph_shortest_path",
            Algorithm::Components => "graph_components",
            Algorithm::PageRank => "graph_pagerank",
            Algorithm::Degrees => "graph_degrees",
        }
    }

    fn usage(self) -> &'static str {
        match self {
            Algorithm::Bfs => "graph_bfs(edges, start [, depth_max])",
            Algorithm::ShortestPath => "graph_shortest_path(edges, source, target [, weighted])",
            Algorithm::Components => "graph_components(edges)",
            Algorithm::PageRank => "graph_pagerank(edges [, damping])",
            Algorithm::Degrees => "graph_degrees(edges)",
        }
    }

    /// How many arguments a call takes, at least and at most.
    fn arity(self) -> (usize, usize) {
        match self {
            Algorithm::Bfs => (2, 3),
            Algorithm::ShortestPath => (3, 4),
            Algorithm::Components | Algorithm::Degrees => (1, 1),
            Algorithm::PageRank => (1, 2),
        }
    }

    fn schema(self, node: &DataType) -> SchemaRef {
        let node_field = |name: &str| Field::new(name, node.clone(), false);
        let fields = match self {
            Algorithm::Bfs => vec![
                node_field("node"),
                Field::new("depth", DataType::Int64, false),
            ],
            Algorithm::ShortestPath => vec![
                Field::new("step", DataType::Int64, false),
                node_field("node"),
                Field::new("distance", DataType::Float64, false),
            ],
            Algorithm::Components => vec![node_field("node"), node_field("component")],
            Algorithm::PageRank => vec![
                node_field("node"),
                Field::new("rank", DataType::Float64, false),
            ],
            Algorithm::Degrees => vec![
                node_field("node"),
                Field::new("in_degree", DataType::Int64, false),
                Field::new("out_degree", DataType::Int64, false),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

#[derive(Debug)]
struct GraphFunction(Algorithm);

impl TableFunctionImpl for GraphFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let algorithm = self.0;
        let (least, most) = algorithm.arity();
        if !(least..=most).contains(&args.exprs().len()) {
            return Err(Error::new(
                sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "{} takes the arguments {}",
                    algorithm.name(),
                    algorithm.usage()
                ),
            )
            .into());
        }
        let values = args
            .exprs()
            .iter()
            .map(|e| match e {
                Expr::Literal(value, _) => Ok(value.clone()),
                _ => Err(Error::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!("{} takes constant arguments", algorithm.name()),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let Some(Some(edges)) = values[0].try_as_str() else {
            return Err(Error::invalid_parameter(
                "the edges are a table's name or a query, as text",
            )
            .into());
        };
        let weighted = match values.get(3) {
            None | Some(ScalarValue::Null | ScalarValue::Boolean(None)) => false,
            Some(ScalarValue::Boolean(Some(weighted))) => *weighted,
            Some(_) => return Err(Error::invalid_parameter("weighted is a boolean").into()),
        };
        let plan = plan_edges(args.session(), edges)?;
        let node_type = node_type(&plan, weighted)?;
        let number = |i: usize, what: &str| -> Result<Option<f64>> {
            match values.get(i) {
                None | Some(ScalarValue::Null) => Ok(None),
                Some(v) => match v.cast_to(&DataType::Float64) {
                    Ok(ScalarValue::Float64(f)) => Ok(f),
                    _ => Err(Error::invalid_parameter(format!("{what} is a number")).into()),
                },
            }
        };
        let (endpoints, depth_max, damping) = match algorithm {
            Algorithm::Bfs => {
                let depth = number(2, "depth_max")?;
                if depth.is_some_and(|d| d < 0.0 || d.fract() != 0.0) {
                    return Err(
                        Error::invalid_parameter("depth_max is a whole number, 0 or more").into(),
                    );
                }
                (vec![values[1].clone()], depth.map(|d| d as u64), None)
            }
            Algorithm::ShortestPath => (vec![values[1].clone(), values[2].clone()], None, None),
            Algorithm::PageRank => {
                let damping = number(1, "damping")?.unwrap_or(PAGERANK_DAMPING_DEFAULT);
                if !(0.0..=1.0).contains(&damping) {
                    return Err(Error::invalid_parameter("damping is between 0 and 1").into());
                }
                (vec![], None, Some(damping))
            }
            Algorithm::Components | Algorithm::Degrees => (vec![], None, None),
        };
        let endpoints = endpoints
            .into_iter()
            .map(|v| v.cast_to(&node_type))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(GraphCall {
            algorithm,
            schema: algorithm.schema(&node_type),
            plan,
            node_type,
            weighted,
            endpoints,
            depth_max,
            damping,
        }))
    }
}

/// Plans the edges, a table's name or a query, in the calling session (so
/// in its snapshot). Table functions are called while a query is planned,
/// synchronously; planning the edges awaits the catalog, so it parks this
/// worker thread meanwhile, as the multi-threaded runtime allows.
fn plan_edges(session: &dyn Session, edges: &str) -> Result<LogicalPlan> {
    let state = session
        .as_any()
        .downcast_ref::<SessionState>()
        .ok_or_else(|| DataFusionError::Internal("a graph function needs a SessionState".into()))?;
    let first_word = edges
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let sql = if edges.trim_start().starts_with('(')
        || matches!(first_word.as_str(), "select" | "with" | "values")
    {
        edges.to_string()
    } else {
        format!("SELECT * FROM {edges}")
    };
    crate::block_on(state.create_logical_plan(&sql)).unwrap_or_else(|| {
        Err(DataFusionError::Internal(
            "graph functions need the multi-threaded runtime".into(),
        ))
    })
}

/// The type nodes have: integers as bigint, text as text.
fn node_type(plan: &LogicalPlan, weighted: bool) -> Result<DataType> {
    let fields = plan.schema().fields();
    let wanted = if weighted { 3 } else { 2 };
    if fields.len() < wanted {
        return Err(Error::new(
            sqlstate::DATATYPE_MISMATCH,
            format!(
                "the edges need {wanted} columns (source, destination{}), not {}",
                if weighted { ", weight" } else { "" },
                fields.len()
            ),
        )
        .into());
    }
    let (source, destination) = (fields[0].data_type(), fields[1].data_type());
    let node = if source.is_integer() && destination.is_integer() {
        DataType::Int64
    } else if is_text(source) && is_text(destination) {
        DataType::Utf8
    } else {
        return Err(Error::new(
            sqlstate::DATATYPE_MISMATCH,
            format!(
                "an edge's source and destination are both integers or both text, not {source} and {destination}"
            ),
        )
        .into());
    };
    if weighted && !fields[2].data_type().is_numeric() {
        return Err(Error::new(
            sqlstate::DATATYPE_MISMATCH,
            format!(
                "an edge's weight is a number, not {}",
                fields[2].data_type()
            ),
        )
        .into());
    }
    Ok(node)
}

fn is_text(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// One call of a graph function: its edges and arguments.
#[derive(Debug, Clone)]
struct GraphCall {
    algorithm: Algorithm,
    schema: SchemaRef,
    plan: LogicalPlan,
    node_type: DataType,
    weighted: bool,
    /// The start (BFS) or source and target (paths), as node values.
    endpoints: Vec<ScalarValue>,
    depth_max: Option<u64>,
    damping: Option<f64>,
}

#[async_trait]
impl TableProvider for GraphCall {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let session = state
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| {
                DataFusionError::Internal("a graph function needs a SessionState".into())
            })?;
        let run = GraphRun {
            call: self.clone(),
            edges: state.create_physical_plan(&self.plan).await?,
            session: session.clone(),
        };
        Ok(Arc::new(StreamingTableExec::try_new(
            self.schema.clone(),
            vec![Arc::new(run)],
            projection,
            [],
            false,
            None,
        )?))
    }
}

/// A call's work, done when its rows are first asked for (not while the
/// query is planned, so EXPLAIN runs nothing, and a cancel or timeout
/// stops the query while it reads the edges).
#[derive(Debug)]
struct GraphRun {
    call: GraphCall,
    edges: Arc<dyn ExecutionPlan>,
    /// The calling session, which plans a walk's lookups.
    session: SessionState,
}

impl PartitionStream for GraphRun {
    fn schema(&self) -> &SchemaRef {
        &self.call.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let call = self.call.clone();
        let edges = self.edges.clone();
        let session = self.session.clone();
        let rows = futures::stream::once(async move {
            if call.walks()
                && let Some(rows) = Walk::new(&call, &session, &ctx).run().await?
            {
                return Ok(rows);
            }
            let batches = collect(edges, ctx).await?;
            let (ids, edges) = load(&batches, &call.node_type, call.weighted)?;
            // The algorithms run to the end once started: off the
            // runtime's worker threads, which serve the other sessions.
            SpawnedTask::spawn_blocking(move || {
                let graph = Graph::new(ids.len(), &edges);
                call.run(&graph, &ids)
            })
            .join_unwind()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
        });
        Box::pin(RecordBatchStreamAdapter::new(
            self.call.schema.clone(),
            rows,
        ))
    }
}

impl GraphCall {
    /// Whether the call walks out from its start, level by level: a
    /// breadth-first search, or an unweighted shortest path.
    fn walks(&self) -> bool {
        match self.algorithm {
            Algorithm::Bfs => true,
            Algorithm::ShortestPath => !self.weighted,
            Algorithm::Components | Algorithm::PageRank | Algorithm::Degrees => false,
        }
    }

    fn run(&self, graph: &Graph, ids: &Ids) -> Result<RecordBatch> {
        let endpoint = |i: usize| ids.number(&self.endpoints[i]);
        let columns: Vec<ArrayRef> = match self.algorithm {
            Algorithm::Bfs => {
                let reached = match endpoint(0) {
                    Some(start) => graph.bfs(start, self.depth_max),
                    None => vec![],
                };
                vec![
                    ids.values(reached.iter().map(|r| r.0)),
                    Arc::new(Int64Array::from_iter_values(
                        reached.iter().map(|r| r.1 as i64),
                    )),
                ]
            }
            Algorithm::ShortestPath => {
                let path = match (endpoint(0), endpoint(1)) {
                    (Some(s), Some(t)) if self.weighted => graph.cheapest_path(s, t),
                    (Some(s), Some(t)) => graph.shortest_path(s, t).map(|p| {
                        p.into_iter()
                            .enumerate()
                            .map(|(i, n)| (n, i as f64))
                            .collect()
                    }),
                    _ => None,
                }
                .unwrap_or_default();
                vec![
                    Arc::new(Int64Array::from_iter_values(0..path.len() as i64)),
                    ids.values(path.iter().map(|p| p.0)),
                    Arc::new(Float64Array::from_iter_values(path.iter().map(|p| p.1))),
                ]
            }
            Algorithm::Components => {
                let component = graph.components(|a, b| ids.order(a, b));
                vec![
                    ids.values(0..ids.len() as Node),
                    ids.values(component.into_iter()),
                ]
            }
            Algorithm::PageRank => {
                let damping = self.damping.expect("PageRank has a damping");
                let rank = graph
                    .pagerank(damping, PAGERANK_ITERATIONS_MAX, PAGERANK_TOLERANCE)
                    .ok_or_else(|| {
                        Error::new(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            format!(
                                "PageRank did not converge in {PAGERANK_ITERATIONS_MAX} iterations"
                            ),
                        )
                    })?;
                vec![
                    ids.values(0..ids.len() as Node),
                    Arc::new(Float64Array::from(rank)),
                ]
            }
            Algorithm::Degrees => {
                let degrees = graph.degrees();
                vec![
                    ids.values(0..ids.len() as Node),
                    Arc::new(Int64Array::from_iter_values(
                        degrees.iter().map(|d| d.0 as i64),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        degrees.iter().map(|d| d.1 as i64),
                    )),
                ]
            }
        };
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// A breadth-first walk from a call's start that looks up the edges out
/// of each level's nodes, numbering the nodes it meets as it goes. It
/// meets them in the order the search over the whole graph does, and
/// gives the same rows.
struct Walk<'a> {
    call: &'a GraphCall,
    session: &'a SessionState,
    ctx: &'a Arc<TaskContext>,
    ids: Ids,
    /// By node number: the fewest edges from the start, and the node the
    /// walk came from (the start's is itself).
    depth: Vec<u64>,
    parent: Vec<Node>,
}

impl<'a> Walk<'a> {
    fn new(call: &'a GraphCall, session: &'a SessionState, ctx: &'a Arc<TaskContext>) -> Self {
        Walk {
            call,
            session,
            ctx,
            ids: Ids::new(&call.node_type),
            depth: Vec::new(),
            parent: Vec::new(),
        }
    }

    /// The call's rows, or None where a level outgrew
    /// [`WALK_LEVEL_NODES_MAX`].
    async fn run(mut self) -> Result<Option<RecordBatch>> {
        let start = self.number(&self.call.endpoints[0])?;
        self.parent[start as usize] = start;
        self.depth[start as usize] = 0;
        let target = self.call.endpoints.get(1);
        let depth_max = self.call.depth_max.unwrap_or(u64::MAX);
        let mut reached = vec![start];
        let mut level = vec![start];
        let mut depth = 0;
        // Whether the start has edges out, once looked up.
        let mut out_of_start = None;
        loop {
            let arrived = target.is_some_and(|t| self.met(t).is_some());
            if level.is_empty() || arrived || (depth > 0 && depth >= depth_max) {
                break;
            }
            if level.len() > WALK_LEVEL_NODES_MAX {
                return Ok(None);
            }
            let out = self.edges_out(&level).await?;
            out_of_start.get_or_insert(!out.is_empty());
            if depth >= depth_max {
                break;
            }
            let mut next = Vec::new();
            for (from, to) in out {
                if self.depth[to as usize] == u64::MAX {
                    self.depth[to as usize] = depth + 1;
                    self.parent[to as usize] = from;
                    next.push(to);
                }
            }
            reached.extend(&next);
            level = next;
            depth += 1;
        }
        // The start is a node of the graph if an edge ends at it.
        let node = match out_of_start {
            Some(true) => true,
            Some(false) => self.any_edge(start, 1).await?,
            None => self.any_edge(start, 0).await? || self.any_edge(start, 1).await?,
        };
        if !node {
            reached.clear();
        }
        let columns: Vec<ArrayRef> = match target {
            None => vec![
                self.ids.values(reached.iter().copied()),
                Arc::new(Int64Array::from_iter_values(
                    reached.iter().map(|&n| self.depth[n as usize] as i64),
                )),
            ],
            Some(target) => {
                let mut path = Vec::new();
                if let Some(mut at) = self.met(target).filter(|_| node) {
                    path.push(at);
                    while at != start {
                        at = self.parent[at as usize];
                        path.push(at);
                    }
                    path.reverse();
                }
                vec![
                    Arc::new(Int64Array::from_iter_values(0..path.len() as i64)),
                    self.ids.values(path.iter().copied()),
                    Arc::new(Float64Array::from_iter_values(
                        (0..path.len()).map(|i| i as f64),
                    )),
                ]
            }
        };
        Ok(Some(RecordBatch::try_new(
            self.call.schema.clone(),
            columns,
        )?))
    }

    /// The number of the node `value`, numbered now if the walk has not
    /// met it.
    fn number(&mut self, value: &ScalarValue) -> Result<Node> {
        let node = self.ids.intern(&value.to_array()?, 0)?;
        self.grow();
        Ok(node)
    }

    /// The node `value` if the walk reached it.
    fn met(&self, value: &ScalarValue) -> Option<Node> {
        self.ids
            .number(value)
            .filter(|&n| self.depth[n as usize] != u64::MAX)
    }

    fn grow(&mut self) {
        self.depth.resize(self.ids.len(), u64::MAX);
        self.parent.resize(self.ids.len(), Node::MAX);
    }

    /// The edges out of `nodes` as (source, destination), in the order of
    /// `nodes` and, for each, of the edges' query.
    async fn edges_out(&mut self, nodes: &[Node]) -> Result<Vec<(Node, Node)>> {
        let mut out: HashMap<Node, Vec<Node>> = HashMap::new();
        for batch in &self.lookup(nodes, 0).await? {
            let source = cast(batch.column(0), &self.call.node_type)?;
            let destination = cast(batch.column(1), &self.call.node_type)?;
            for row in 0..batch.num_rows() {
                if source.is_null(row) || destination.is_null(row) {
                    continue;
                }
                let s = self.ids.intern(&source, row)?;
                let t = self.ids.intern(&destination, row)?;
                out.entry(s).or_default().push(t);
            }
        }
        self.grow();
        Ok(nodes
            .iter()
            .flat_map(|&n| {
                out.remove(&n)
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |t| (n, t))
            })
            .collect())
    }

    /// Whether an edge has `node` at its end `end` (0, the source; 1, the
    /// destination) and a value at the other.
    async fn any_edge(&mut self, node: Node, end: usize) -> Result<bool> {
        let other = 1 - end;
        Ok(self
            .lookup(&[node], end)
            .await?
            .iter()
            .any(|batch| batch.column(other).null_count() < batch.num_rows()))
    }

    /// The edges whose column `end` holds one of `nodes`: the edges' query
    /// filtered by `end IN (nodes)`, which a stored table's scan answers
    /// by looking the nodes up in each segment, not by reading every row.
    async fn lookup(&self, nodes: &[Node], end: usize) -> Result<Vec<RecordBatch>> {
        let plan = &self.call.plan;
        let (qualifier, field) = plan.schema().qualified_field(end);
        let column = Expr::Column(Column::from((qualifier, field)));
        let values = self.ids.values(nodes.iter().copied());
        // The nodes as the column holds them; one it cannot hold is in no
        // edge.
        let list: Vec<Expr> = (0..values.len())
            .filter_map(|i| {
                let value = ScalarValue::try_from_array(&values, i).ok()?;
                let cast = value.cast_to(field.data_type()).ok()?;
                (!cast.is_null()).then(|| lit(cast))
            })
            .collect();
        if list.is_empty() {
            return Ok(Vec::new());
        }
        let lookup = LogicalPlanBuilder::from(plan.clone())
            .filter(column.in_list(list, false))?
            .build()?;
        let physical = self.session.create_physical_plan(&lookup).await?;
        collect(physical, Arc::clone(self.ctx)).await
    }
}

/// The nodes' values by dense number, and the numbers by value.
enum Ids {
    Integers(Vec<i64>, HashMap<i64, Node>),
    Texts(Vec<String>, HashMap<String, Node>),
}

impl Ids {
    fn new(node_type: &DataType) -> Ids {
        match node_type {
            DataType::Int64 => Ids::Integers(vec![], HashMap::new()),
            _ => Ids::Texts(vec![], HashMap::new()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Ids::Integers(values, _) => values.len(),
            Ids::Texts(values, _) => values.len(),
        }
    }

    /// The number of the node with the value at `row` of `column` (cast
    /// to the node type, not NULL).
    fn intern(&mut self, column: &ArrayRef, row: usize) -> Result<Node> {
        let next = Node::try_from(self.len()).map_err(|_| {
            Error::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                "a graph has at most 2^32 nodes",
            )
        })?;
        Ok(match self {
            Ids::Integers(values, numbers) => {
                let value = column.as_primitive::<Int64Type>().value(row);
                *numbers.entry(value).or_insert_with(|| {
                    values.push(value);
                    next
                })
            }
            Ids::Texts(values, numbers) => {
                let value = column.as_string::<i32>().value(row);
                match numbers.get(value) {
                    Some(n) => *n,
                    None => {
                        values.push(value.to_string());
                        numbers.insert(value.to_string(), next);
                        next
                    }
                }
            }
        })
    }

    /// The number of a node given as a value; None if no edge has it.
    fn number(&self, value: &ScalarValue) -> Option<Node> {
        match (self, value) {
            (Ids::Integers(_, numbers), ScalarValue::Int64(Some(v))) => numbers.get(v).copied(),
            (Ids::Texts(_, numbers), ScalarValue::Utf8(Some(v))) => numbers.get(v).copied(),
            _ => None,
        }
    }

    fn order(&self, a: Node, b: Node) -> std::cmp::Ordering {
        match self {
            Ids::Integers(values, _) => values[a as usize].cmp(&values[b as usize]),
            Ids::Texts(values, _) => values[a as usize].cmp(&values[b as usize]),
        }
    }

    fn values(&self, nodes: impl Iterator<Item = Node>) -> ArrayRef {
        match self {
            Ids::Integers(values, _) => Arc::new(Int64Array::from_iter_values(
                nodes.map(|n| values[n as usize]),
            )),
            Ids::Texts(values, _) => Arc::new(StringArray::from_iter_values(
                nodes.map(|n| values[n as usize].as_str()),
            )),
        }
    }
}

/// The edges of `batches` as dense node numbers with their weights (1
/// without a weight column); edges with a NULL end are no edges.
fn load(batches: &[RecordBatch], node_type: &DataType, weighted: bool) -> Result<(Ids, Vec<Edge>)> {
    let mut ids = Ids::new(node_type);
    let mut edges = vec![];
    for batch in batches {
        let source = cast(batch.column(0), node_type)?;
        let destination = cast(batch.column(1), node_type)?;
        let weight = if weighted {
            Some(cast(batch.column(2), &DataType::Float64)?)
        } else {
            None
        };
        for row in 0..batch.num_rows() {
            if source.is_null(row) || destination.is_null(row) {
                continue;
            }
            let (s, t) = (ids.intern(&source, row)?, ids.intern(&destination, row)?);
            let w = match &weight {
                None => 1.0,
                Some(w) if w.is_null(row) => {
                    return Err(Error::new(
                        sqlstate::NULL_VALUE_NOT_ALLOWED,
                        "an edge's weight is NULL",
                    )
                    .into());
                }
                Some(w) => w.as_primitive::<Float64Type>().value(row),
            };
            if w.is_nan() || w < 0.0 {
                return Err(Error::invalid_parameter(format!(
                    "an edge's weight is {w}: weights are 0 or more"
                ))
                .into());
            }
            edges.push((s, t, w));
        }
    }
    Ok((ids, edges))
}
