//! Shredding: the document fields a query pulls out of a stored table
//! become columns of the table's scan, worked out once per segment and
//! kept with it, so that later queries read the field instead of scanning
//! every document's text again.
//!
//! ```text
//!  Projection: doc ->> 'type'             Projection: "doc ->> 'type'"
//!    Filter: doc @> '{"os": "ios"}'  ──►    Filter: "doc -> 'os'" = '"ios"'
//!      TableScan: events                      TableScan: events + derived columns
//!                                               └ ShreddedScanExec: each segment's
//!                                                 kept column, or worked out and kept
//! ```
//!
//! [`ShredDocuments`] is an optimizer rule: it finds the calls that
//! `ciab_extensions::json::shreddable` allows over a stored table's columns
//! in the nodes right above its scan (filters, sorts, limits, aliases and
//! column-only projections, up to the first projection or aggregate), and
//! replaces each by a column of a copy of the table's provider that has it
//! as a derived column. A segment never changes, so a kept column never
//! goes stale: writes make new segments, with nothing kept yet.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ciab_extensions::json::{containment_fields, shreddable};
use ciab_storage::{PG_TYPE_METADATA_KEY, Segment};
use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DFSchemaRef, internal_err};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    Expr, ExprSchemable, LogicalPlan, Projection, TableScan, TableScanBuilder,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

use crate::provider::{DerivedColumn, StoredTable, slices};

/// Derived columns that scans worked out for a segment, and those they
/// found kept: `ciab.metrics` shows them.
pub(crate) static SHREDDED_BUILT: AtomicU64 = AtomicU64::new(0);
pub(crate) static SHREDDED_REUSED: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Default)]
pub struct ShredDocuments;

impl OptimizerRule for ShredDocuments {
    fn name(&self) -> &str {
        "ciab_shred_documents"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !matches!(
            plan,
            LogicalPlan::Projection(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::Sort(_)
                | LogicalPlan::Limit(_)
        ) {
            return Ok(Transformed::no(plan));
        }
        let Some(provider) = stored_scan_below(&plan) else {
            return Ok(Transformed::no(plan));
        };
        let Some(table) = provider.downcast_ref::<StoredTable>() else {
            return Ok(Transformed::no(plan));
        };
        let mut wanted = Vec::new();
        let mut node = &plan;
        loop {
            let filter = matches!(node, LogicalPlan::Filter(_));
            node.apply_expressions(|e| {
                let e = if filter {
                    fields_of_containment(e.clone(), table)
                } else {
                    e.clone()
                };
                e.apply(|sub| {
                    if let Expr::ScalarFunction(f) = sub
                        && let Some(column) = derived_column(f, table)?
                    {
                        wanted.push(column);
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })?;
            match node.inputs().as_slice() {
                [LogicalPlan::TableScan(_)] => break,
                [input] => node = *input,
                _ => unreachable!("a chain down to the scan"),
            }
        }
        if wanted.is_empty() {
            return Ok(Transformed::no(plan));
        }
        let table = Arc::new(table.with_derived(wanted));
        let schema = Arc::clone(plan.schema());
        let rebuilt = rebuild(plan, &table, true)?;
        // A filter, sort or limit on top now passes the derived columns on
        // too; its parent sees the columns it saw before.
        if rebuilt.schema().fields().len() == schema.fields().len() {
            return Ok(Transformed::yes(rebuilt));
        }
        let columns = schema.columns().into_iter().map(Expr::Column).collect();
        Ok(Transformed::yes(LogicalPlan::Projection(
            Projection::try_new(columns, Arc::new(rebuilt))?,
        )))
    }
}

/// The provider of the scan under `plan`'s chain of nodes that pass
/// their input's columns on by name.
fn stored_scan_below(plan: &LogicalPlan) -> Option<Arc<dyn TableProvider>> {
    let mut node = plan;
    loop {
        let inputs = node.inputs();
        let [input] = inputs.as_slice() else {
            return None;
        };
        let input: &LogicalPlan = input;
        match input {
            LogicalPlan::TableScan(scan) => return source_as_provider(&scan.source).ok(),
            LogicalPlan::Filter(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::SubqueryAlias(_) => node = input,
            LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
                node = input
            }
            _ => return None,
        }
    }
}

/// The derived column for `call` over one of `table`'s own columns, when
/// the JSON functions allow keeping it.
fn derived_column(call: &ScalarFunction, table: &StoredTable) -> Result<Option<DerivedColumn>> {
    let Some(Expr::Column(column)) = call.args.first() else {
        return Ok(None);
    };
    let Some((position, field)) = table.own_column(&column.name) else {
        return Ok(None);
    };
    if !shreddable(call, field) {
        return Ok(None);
    }
    let with_first = |first: Expr| {
        let mut args = call.args.clone();
        args[0] = first;
        Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(&call.func), args))
    };
    let expr = with_first(Expr::Column(Column::new_unqualified(&column.name)));
    let key = with_first(Expr::Column(Column::new_unqualified(format!(
        "#{position}"
    ))));
    let stored = DFSchema::try_from(table.stored_schema().as_ref().clone())?;
    let (_, out) = expr.to_field(&stored)?;
    let name = expr.schema_name().to_string();
    if table.own_column(&name).is_some() {
        // A user column of that very name: leave the call be.
        return Ok(None);
    }
    // The column's type is part of what the function reads (json's text
    // as written, jsonb's canonical): ALTER ... TYPE keeps the segments.
    let tag = field.metadata().get(PG_TYPE_METADATA_KEY);
    let key = format!("{key}::{}", tag.map_or("", String::as_str));
    Ok(Some(DerivedColumn {
        key,
        field: Arc::new(out.as_ref().clone().with_name(name).with_nullable(true)),
        expr,
    }))
}

/// A filter's predicate with each `doc @> pattern` conjunct over one of
/// `table`'s columns as the fields that decide it.
fn fields_of_containment(predicate: Expr, table: &StoredTable) -> Expr {
    let conjuncts = split_conjunction_owned(predicate)
        .into_iter()
        .flat_map(|c| {
            if let Expr::ScalarFunction(f) = &c
                && let Some(Expr::Column(column)) = f.args.first()
                && let Some((_, field)) = table.own_column(&column.name)
                && let Some(fields) = containment_fields(f, field)
            {
                return fields;
            }
            vec![c]
        });
    conjunction(conjuncts).expect("a predicate has a conjunct")
}

/// `node` and the chain under it over `table` (the scan's provider with
/// its derived columns): calls that have a derived column read it.
fn rebuild(node: LogicalPlan, table: &Arc<StoredTable>, top: bool) -> Result<LogicalPlan> {
    let node = match node {
        LogicalPlan::TableScan(scan) => return rescan(scan, table),
        node => {
            node.map_children(|child| rebuild(child, table, false).map(Transformed::yes))?
                .data
        }
    };
    let input: DFSchemaRef = Arc::clone(node.inputs()[0].schema());
    let names = (top && matches!(node, LogicalPlan::Projection(_) | LogicalPlan::Aggregate(_)))
        .then(NamePreserver::new_for_projection);
    let filter = matches!(node, LogicalPlan::Filter(_));
    let mut node = node
        .map_expressions(|e| {
            let saved = names.as_ref().map(|n| n.save(&e));
            let e = if filter {
                fields_of_containment(e, table)
            } else {
                e
            };
            let e = e
                .transform_up(|e| match &e {
                    Expr::ScalarFunction(f) => match derived_column(f, table)? {
                        Some(derived) => Ok(Transformed::yes(column_of(&input, &derived)?)),
                        None => Ok(Transformed::no(e)),
                    },
                    _ => Ok(Transformed::no(e)),
                })?
                .data;
            Ok(Transformed::yes(match saved {
                Some(saved) => saved.restore(e),
                None => e,
            }))
        })?
        .data;
    // A column-only projection in the chain passes the derived columns up.
    if !top && let LogicalPlan::Projection(p) = &mut node {
        for derived in table.derived() {
            p.expr.push(column_of(&input, derived)?);
        }
    }
    node.recompute_schema()
}

/// The derived column as `schema` (a rebuilt node's input) names it.
fn column_of(schema: &DFSchema, derived: &DerivedColumn) -> Result<Expr> {
    let (qualifier, field) = schema.qualified_field_with_unqualified_name(derived.field.name())?;
    Ok(Expr::Column(Column::new(qualifier.cloned(), field.name())))
}

/// The scan over `table`, reading every derived column it has too (the
/// optimizer drops those nothing reads).
fn rescan(scan: TableScan, table: &Arc<StoredTable>) -> Result<LogicalPlan> {
    let own = table.own_len();
    let projection = scan.projection.map(|mut p| {
        for i in own..table.schema().fields().len() {
            if !p.contains(&i) {
                p.push(i);
            }
        }
        p
    });
    let provider: Arc<dyn TableProvider> = Arc::clone(table) as _;
    Ok(LogicalPlan::TableScan(
        TableScanBuilder::new(scan.table_name, provider_as_source(provider))
            .with_projection(projection)
            .with_filters(scan.filters)
            .with_fetch(scan.fetch)
            .with_statistics_requests(scan.statistics_requests)
            .build()?,
    ))
}

/// Where an output column of [`ShreddedScanExec`] comes from.
#[derive(Debug)]
enum Source {
    Stored(usize),
    Derived {
        key: String,
        expr: Arc<dyn PhysicalExpr>,
    },
}

/// A scan of `table`'s `partitions` of segments whose `projection` names
/// derived columns.
pub(crate) fn scan(
    state: &dyn Session,
    table: &StoredTable,
    partitions: Vec<Vec<Arc<Segment>>>,
    projection: &[usize],
) -> Result<Arc<dyn ExecutionPlan>> {
    let own = table.own_len();
    let stored = DFSchema::try_from(table.stored_schema().as_ref().clone())?;
    let sources = projection
        .iter()
        .map(|&i| match i.checked_sub(own) {
            None => Ok(Source::Stored(i)),
            Some(d) => {
                let derived = &table.derived()[d];
                Ok(Source::Derived {
                    key: derived.key.clone(),
                    expr: state.create_physical_expr(derived.expr.clone(), &stored)?,
                })
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let schema = Arc::new(table.schema().project(projection)?);
    Ok(Arc::new(ShreddedScanExec::new(
        partitions,
        Arc::new(sources),
        schema,
    )))
}

/// Reads segments' columns, stored and derived: a derived column kept
/// with its segment is read, one not kept yet is worked out (and kept).
#[derive(Debug)]
pub(crate) struct ShreddedScanExec {
    partitions: Vec<Vec<Arc<Segment>>>,
    sources: Arc<Vec<Source>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl ShreddedScanExec {
    fn new(
        partitions: Vec<Vec<Arc<Segment>>>,
        sources: Arc<Vec<Source>>,
        schema: SchemaRef,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        ShreddedScanExec {
            partitions,
            sources,
            schema,
            properties: Arc::new(properties),
        }
    }
}

/// One segment's batch of the scan's columns.
fn read(segment: &Segment, sources: &[Source], schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = sources
        .iter()
        .map(|source| match source {
            Source::Stored(i) => Ok(Arc::clone(segment.batch.column(*i))),
            Source::Derived { key, expr } => {
                let mut built = false;
                let column = segment.derived(key, |batch| -> Result<ArrayRef> {
                    built = true;
                    expr.evaluate(batch)?.into_array(batch.num_rows())
                })?;
                let counter = if built {
                    &SHREDDED_BUILT
                } else {
                    &SHREDDED_REUSED
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(column)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(segment.batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

impl DisplayAs for ShreddedScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let sizes: Vec<usize> = self.partitions.iter().map(Vec::len).collect();
        let derived: Vec<&str> = self
            .sources
            .iter()
            .zip(self.schema.fields())
            .filter(|(s, _)| matches!(s, Source::Derived { .. }))
            .map(|(_, f)| f.name().as_str())
            .collect();
        write!(
            f,
            "ShreddedScanExec: partitions={}, segments={sizes:?}, derived={derived:?}",
            sizes.len()
        )
    }
}

impl ExecutionPlan for ShreddedScanExec {
    fn name(&self) -> &str {
        "ShreddedScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for source in self.sources.iter() {
            if let Source::Derived { expr, .. } = source
                && f(expr)? == TreeNodeRecursion::Stop
            {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return internal_err!("ShreddedScanExec has no inputs");
        }
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let Some(segments) = self.partitions.get(partition).cloned() else {
            return internal_err!("ShreddedScanExec has no partition {partition}");
        };
        let sources = Arc::clone(&self.sources);
        let schema = Arc::clone(&self.schema);
        // Derived columns are kept per segment, so a segment is read
        // whole and handed on in batches of the session's size.
        let batch_rows = context.session_config().batch_size();
        let batches =
            segments
                .into_iter()
                .flat_map(move |segment| match read(&segment, &sources, &schema) {
                    Ok(batch) => slices(&batch, batch_rows).map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::iter(batches),
        )))
    }
}
