//! SQL's PREPARE and EXECUTE: statements a session prepares by name in
//! SQL, as the extended protocol's Parse and Bind do on the wire.
//!
//! ```text
//!  PREPARE q (int) AS SELECT ... $1 ...   ─► Session::prepare_parsed, kept as `q`
//!  EXECUTE q (41 + 1)                     ─► arguments evaluated, cast to the
//!                                            parameters' types ─► the statement
//!  DEALLOCATE q | ALL                     ─► the front end (it also holds the
//!                                            protocol's named statements)
//! ```
//!
//! As in PostgreSQL, a prepared statement lives until DEALLOCATE or the
//! end of the session, whatever transactions begin or end meanwhile, and
//! its plan's types are fixed when it is prepared.

use std::sync::Arc;

use datafusion::arrow::datatypes::Field;
use datafusion::common::ParamValues;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr as PlanExpr, ExprSchemable, LogicalPlanBuilder};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{DataType as SqlType, Expr, Ident, ObjectName, Statement};

use crate::error::{Error, Result, sqlstate};
use crate::names::{self, normalize};
use crate::session::{Output, Parsed, Prepared, Session, Tag};

impl Session {
    /// `PREPARE name [(types)] AS statement`.
    pub(crate) async fn prepare_named(
        &mut self,
        name: &Ident,
        types: &[SqlType],
        statement: &Statement,
    ) -> Result<Output> {
        let name = normalize(name);
        if self.named.contains_key(&name) {
            return Err(Error::new(
                sqlstate::DUPLICATE_PREPARED_STATEMENT,
                format!("prepared statement \"{name}\" already exists"),
            ));
        }
        // Declared as the extended protocol declares them: by name, which
        // `Params` reads as SQL does (an array's as `_` and its element's).
        let names: Vec<String> = types
            .iter()
            .map(|ty| {
                let name = ty.to_string();
                match name.strip_suffix("[]") {
                    Some(element) => format!("_{element}"),
                    None => name,
                }
            })
            .collect();
        let declared: Vec<Option<&str>> = names.iter().map(|n| Some(n.as_str())).collect();
        let sql = statement.to_string();
        let parsed = Arc::new(Parsed::Sql(DfStatement::Statement(Box::new(
            statement.clone(),
        ))));
        let prepared = self.prepare_parsed(&sql, parsed, &declared).await?;
        self.named.insert(name, prepared);
        Ok(Output::Command(Tag::new("PREPARE")))
    }

    /// The statement `PREPARE` named so.
    pub(crate) fn named(&self, name: &ObjectName) -> Result<&Prepared> {
        let name = statement_name(name);
        self.named.get(&name).ok_or_else(|| {
            Error::new(
                sqlstate::INVALID_SQL_STATEMENT_NAME,
                format!("prepared statement \"{name}\" does not exist"),
            )
        })
    }

    /// `EXECUTE name [(arguments)]`: the statement's answer, as if it ran
    /// itself.
    pub(crate) async fn execute_named(
        &mut self,
        name: &ObjectName,
        arguments: &[Expr],
    ) -> Result<Output> {
        match self.bind_named(name, arguments).await? {
            Some((statement, params)) => self.execute_once(&statement, params).await,
            None => Ok(Output::Empty),
        }
    }

    /// The statement EXECUTE runs with its parameters' values; None for an
    /// empty one.
    pub(crate) async fn bind_named(
        &mut self,
        name: &ObjectName,
        arguments: &[Expr],
    ) -> Result<Option<(DfStatement, Option<ParamValues>)>> {
        let prepared = self.named(name)?.clone();
        let expected = prepared.param_types.len();
        if arguments.len() != expected {
            return Err(Error::new(
                sqlstate::SYNTAX_ERROR,
                format!(
                    "wrong number of parameters for prepared statement \"{}\"",
                    statement_name(name)
                ),
            )
            .with_detail(format!(
                "Expected {expected} parameters but got {}.",
                arguments.len()
            )));
        }
        let values = self
            .argument_values(arguments, &prepared.param_types)
            .await?;
        let Some(statement) = &prepared.statement else {
            return Ok(None);
        };
        let Parsed::Sql(statement) = statement.as_ref() else {
            return Err(Error::unsupported("EXECUTE of a prepared graph statement"));
        };
        let params = (!values.is_empty())
            .then(|| ParamValues::List(values.into_iter().map(Into::into).collect()));
        Ok(Some((statement.clone(), params)))
    }

    /// The values of EXECUTE's arguments: expressions over no table,
    /// evaluated as one SELECT that casts each to its parameter's type as
    /// a query casts, so that text reads as PostgreSQL's input for the type
    /// (`'{a,b}'` for a text[] parameter is an array of two).
    async fn argument_values(
        &mut self,
        arguments: &[Expr],
        types: &[Field],
    ) -> Result<Vec<ScalarValue>> {
        if arguments.is_empty() {
            return Ok(Vec::new());
        }
        let exprs: Vec<String> = arguments.iter().map(ToString::to_string).collect();
        let statements = self.parse_sql(&format!("SELECT {}", exprs.join(", ")))?;
        let Ok([statement]) = <[DfStatement; 1]>::try_from(statements) else {
            return Err(Error::new(
                sqlstate::SYNTAX_ERROR,
                "EXECUTE's arguments must be expressions",
            ));
        };
        // Equal arguments (`EXECUTE q(1, 1)`) would be two columns of one
        // name, which a projection refuses: the names are never shown.
        let (statement, _) = names::unique_output_names(&statement)?;
        let plan = self.plan(statement, None).await?;
        let casts = plan
            .schema()
            .columns()
            .into_iter()
            .zip(types)
            .enumerate()
            .map(|(i, (column, ty))| {
                let cast = PlanExpr::Column(column).cast_to(ty.data_type(), plan.schema())?;
                Ok(cast.alias(format!("${}", i + 1)))
            })
            .collect::<Result<Vec<_>>>()?;
        let plan = LogicalPlanBuilder::from(plan).project(casts)?.build()?;
        let batches = self.ctx.execute_logical_plan(plan).await?.collect().await?;
        let batch = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .expect("a SELECT without FROM returns one row");
        Ok(batch
            .columns()
            .iter()
            .map(|column| ScalarValue::try_from_array(column, 0))
            .collect::<datafusion::error::Result<_>>()?)
    }
}

impl Session {
    /// DEALLOCATE of a statement PREPARE made (`None`: all of them);
    /// whether there was one.
    pub fn deallocate(&mut self, name: Option<&str>) -> bool {
        match name {
            Some(name) => self.named.remove(name).is_some(),
            None => {
                self.named.clear();
                true
            }
        }
    }
}

/// A prepared statement's name as EXECUTE gives it.
fn statement_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .filter_map(|part| part.as_ident())
        .map(normalize)
        .collect::<Vec<_>>()
        .join(".")
}
