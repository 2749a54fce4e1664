//! Parameter types. PostgreSQL gives every `$n` of a prepared statement a
//! type before it plans the statement: the type the client declared at
//! Parse, else the one its place implies (a column it is compared with or
//! stored in, an operator's other operand, a function's argument), else
//! text. DataFusion infers a type from comparisons and assignments only;
//! a parameter it leaves untyped runs as text, so `abs($1)` or
//! `repeat($1, $2)` would fail with 42883 where PostgreSQL runs them.
//!
//! ciab closes the gap in two steps at Parse: it plans the statement
//! once, then gives each parameter DataFusion left untyped the declared
//! type or, failing one, the type its place implies: the type a cast of
//! it names (`$1::int[]`), or the type the function it is an argument of
//! coerces it to (DataFusion's own coercion, given an unknown argument:
//! `abs` takes float8, as PostgreSQL picks). A chosen type becomes a cast
//! around the parameter in the statement, which is planned again:
//!
//! ```text
//!  SELECT repeat($1, $2)      Parse types: (unknown, int2)
//!    ──► SELECT repeat($1, $2::int2)      declared
//!    ──► SELECT repeat($1, $2::int2)      repeat(text, int8): $1 stays text
//!  SELECT abs($1)             Parse types: none
//!    ──► SELECT abs($1::float8)           abs coerces an unknown to float8
//! ```
//!
//! A parameter DataFusion did type keeps that type, so statements that ran
//! before keep their plans (and the fast path, which reads the statement as
//! written).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use ciab_storage::PgType;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::expr::{Cast, Placeholder, ScalarFunction, TryCast};
use datafusion::logical_expr::type_coercion::functions::fields_with_udf;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::sql::sqlparser::ast::{
    CastKind, DataType as SqlType, Expr as SqlExpr, Value as SqlValue, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::Result;
use crate::pg_catalog::OID_TYPE;

/// The parameters of a planned statement, by number (`$1` first).
#[derive(Debug, Default)]
pub(crate) struct Params {
    /// The types DataFusion gave; `None` where it left a parameter untyped.
    pub types: Vec<Option<Field>>,
    /// For untyped parameters that are cast or a function's arguments,
    /// the types the casts name or the functions take.
    pub from_functions: BTreeMap<usize, ParamType>,
}

impl Params {
    /// The parameters of `plan`, as DataFusion planned them.
    pub fn of_plan(plan: &LogicalPlan) -> Result<Params> {
        let mut types = Vec::new();
        for (name, field) in plan.get_parameter_fields()? {
            let Some(n) = number(&name) else { continue };
            if types.len() < n {
                types.resize(n, None);
            }
            types[n - 1] = field.map(|f| f.as_ref().clone());
        }
        Ok(Params {
            types,
            from_functions: implied_types(plan),
        })
    }

    /// Parameters typed already: the fast path's, by the columns they
    /// meet.
    pub fn typed(types: Vec<Field>) -> Params {
        Params {
            types: types.into_iter().map(Some).collect(),
            from_functions: BTreeMap::new(),
        }
    }

    /// The types to cast untyped parameters to: the declared one, else the
    /// one a function takes. Text needs no cast: an untyped parameter is
    /// text already.
    ///
    /// A parameter DataFusion typed as a decimal of some precision and
    /// scale (from `$1 + 1.5`, or a `numeric(10,2)` column) is cast to
    /// numeric, which PostgreSQL gives it: a value with more places than
    /// the decimal would be rounded before the statement sees it.
    pub fn casts(&self, declared: &[Option<ParamType>]) -> BTreeMap<usize, ParamType> {
        let numeric = || {
            ParamType::scalar(PgType::Numeric {
                precision: None,
                scale: None,
            })
        };
        (1..=self.types.len().max(declared.len()))
            .filter_map(|n| {
                let declared = declared.get(n - 1).cloned().flatten();
                let ty = match self.types.get(n - 1).cloned().flatten() {
                    None => declared.or_else(|| self.from_functions.get(&n).cloned())?,
                    Some(field) if matches!(field.data_type(), DataType::Decimal128(..)) => {
                        let numeric = numeric();
                        if field.data_type() == numeric.field.data_type()
                            && PgType::of_field(&field) == PgType::of_field(&numeric.field)
                        {
                            return None;
                        }
                        declared.unwrap_or(numeric)
                    }
                    Some(_) => return None,
                };
                (!ty.is_text()).then_some((n, ty))
            })
            .collect()
    }

    /// The types to describe at Parse: DataFusion's, the casts' where it
    /// had none, text for the rest. A parameter the client declared but
    /// the statement never uses is described as declared.
    pub fn describe(&self, casts: &BTreeMap<usize, ParamType>, count: usize) -> Vec<Field> {
        (1..=self.types.len().max(count))
            .map(
                |n| match (self.types.get(n - 1).cloned().flatten(), casts.get(&n)) {
                    (Some(field), _) => field,
                    (None, Some(ty)) => ty.field.clone(),
                    (None, None) => Field::new("", DataType::Utf8, true),
                },
            )
            .collect()
    }
}

/// A type a parameter is given: what it is described as, and the cast
/// that gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamType {
    field: Field,
    sql: SqlType,
}

impl ParamType {
    /// The type a client declared at Parse, by its name in `pg_type`
    /// (`int4`, `varchar`, `_int4` for `int4[]`); `None` for `unknown` and
    /// for types ciab has not.
    pub fn declared(name: &str) -> Option<ParamType> {
        match name {
            "oid" => return Some(Self::oid(false)),
            "_oid" => return Some(Self::oid(true)),
            _ => {}
        }
        match name.strip_prefix('_') {
            Some(element) => Some(Self::array(scalar(element)?)),
            None => Some(Self::scalar(scalar(name)?)),
        }
    }

    /// The type of values of `field`, if it is one a parameter can take.
    fn of_field(field: &Field) -> Option<ParamType> {
        match field.data_type() {
            oid if *oid == OID_TYPE => Some(Self::oid(false)),
            DataType::List(element) if *element.data_type() == OID_TYPE => Some(Self::oid(true)),
            DataType::List(element) => Some(Self::array(PgType::of_field(element)?)),
            _ => Some(Self::scalar(PgType::of_field(field)?)),
        }
    }

    /// `oid` or `oid[]`, which no column has, so no [`PgType`] names.
    fn oid(array: bool) -> ParamType {
        let (sql, field) = match array {
            false => ("oid", Field::new("", OID_TYPE, true)),
            true => (
                "oid[]",
                Field::new_list("", Field::new_list_field(OID_TYPE, true), true),
            ),
        };
        ParamType {
            sql: sql_type(sql),
            field,
        }
    }

    fn scalar(ty: PgType) -> ParamType {
        // The cast names the type alone, so `numeric(p,s)` is numeric.
        let ty = match ty {
            PgType::Numeric { .. } => PgType::Numeric {
                precision: None,
                scale: None,
            },
            ty => ty,
        };
        ParamType {
            sql: sql_type(ty.type_name()),
            field: ty.field(""),
        }
    }

    fn array(element: PgType) -> ParamType {
        ParamType {
            sql: sql_type(&format!("{}[]", element.type_name())),
            field: PgType::array_of(element).field(""),
        }
    }

    fn is_text(&self) -> bool {
        self.field.data_type() == &DataType::Utf8 && self.field.metadata().is_empty()
    }
}

/// A scalar type by its name in `pg_type`.
fn scalar(name: &str) -> Option<PgType> {
    match crate::types::pg_type(&parse_type(name)?) {
        Ok((ty, false)) => Some(ty),
        _ => None,
    }
}

/// The SQL type of a name ciab made: a `pg_type` name, maybe with `[]`.
fn sql_type(name: &str) -> SqlType {
    parse_type(name).expect("pg_type names parse as types")
}

fn parse_type(name: &str) -> Option<SqlType> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(name)
        .and_then(|mut p| p.parse_data_type())
        .ok()
}

/// Wraps every `$n` of `casts` in a cast to its type.
pub(crate) fn cast(
    statement: &mut datafusion::sql::parser::Statement,
    casts: &BTreeMap<usize, ParamType>,
) {
    let datafusion::sql::parser::Statement::Statement(statement) = statement else {
        return;
    };
    // Visited after its children, so a new cast is not visited again.
    let _ = visit_expressions_mut(statement.as_mut(), |e| {
        if let SqlExpr::Value(v) = e
            && let SqlValue::Placeholder(name) = &v.value
            && let Some(target) = number(name).and_then(|n| casts.get(&n))
        {
            *e = SqlExpr::Cast {
                kind: CastKind::DoubleColon,
                expr: Box::new(e.clone()),
                data_type: target.sql.clone(),
                array: false,
                format: None,
            };
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `$n`'s number; `None` for names that are not positional.
fn number(name: &str) -> Option<usize> {
    name.strip_prefix('$')?.parse().ok().filter(|&n| n > 0)
}

/// The types that casts of untyped parameters name, and that functions
/// coerce their untyped parameter arguments to, by parameter number. A
/// parameter used in several places keeps the first one's type, as
/// PostgreSQL types it at its first use.
fn implied_types(plan: &LogicalPlan) -> BTreeMap<usize, ParamType> {
    let mut found = BTreeMap::new();
    let _ = plan.apply_with_subqueries(|node| {
        let inputs = node.inputs();
        let schema = match inputs.as_slice() {
            [input] => Arc::clone(input.schema()),
            _ => Arc::clone(node.schema()),
        };
        node.apply_expressions(|e| {
            e.apply(|e| {
                match e {
                    Expr::ScalarFunction(call) => call_arguments(call, &schema, &mut found),
                    Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
                        if let Expr::Placeholder(Placeholder { id, field: None }) = expr.as_ref()
                            && let Some(n) = number(id)
                            && let Some(ty) = ParamType::of_field(field)
                        {
                            found.entry(n).or_insert(ty);
                        }
                    }
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
}

fn call_arguments(
    call: &ScalarFunction,
    schema: &datafusion::common::DFSchema,
    found: &mut BTreeMap<usize, ParamType>,
) {
    let untyped = |e: &Expr| match e {
        Expr::Placeholder(Placeholder { id, field: None }) => number(id),
        _ => None,
    };
    if !call.args.iter().any(|a| untyped(a).is_some()) {
        return;
    }
    let fields: Option<Vec<FieldRef>> = call
        .args
        .iter()
        .map(|a| match untyped(a) {
            Some(_) => Some(Arc::new(Field::new("", DataType::Null, true))),
            None => a.to_field(schema).ok().map(|(_, f)| f),
        })
        .collect();
    let Some(fields) = fields else { return };
    // `x = ANY($1)`: the array holds values of x's type, as PostgreSQL
    // reads it; DataFusion cannot coerce an unknown to an array.
    if call.func.name() == "array_has"
        && let [array, value] = call.args.as_slice()
        && let Some(n) = untyped(array)
        && untyped(value).is_none()
        && let Some(ty) = ParamType::of_field(&Field::new_list("", Arc::clone(&fields[1]), true))
    {
        found.entry(n).or_insert(ty);
        return;
    }
    let Ok(coerced) = fields_with_udf(&fields, call.func.as_ref()) else {
        return;
    };
    for (arg, field) in call.args.iter().zip(coerced) {
        if let Some(n) = untyped(arg)
            && let Some(ty) = ParamType::of_field(&field)
        {
            found.entry(n).or_insert(ty);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(name: &str) -> Option<DataType> {
        ParamType::declared(name).map(|t| t.field.data_type().clone())
    }

    #[test]
    fn declared_names_are_pg_type_names() {
        assert_eq!(declared("int4"), Some(DataType::Int32));
        assert_eq!(declared("float8"), Some(DataType::Float64));
        assert_eq!(declared("varchar"), Some(DataType::Utf8));
        assert_eq!(
            ParamType::declared("varchar").map(|t| t.sql.to_string()),
            Some("VARCHAR".into())
        );
        assert_eq!(declared("jsonb"), Some(DataType::Utf8));
        let int4s = DataType::List(Arc::new(PgType::Int4.field("item")));
        assert_eq!(declared("_int4"), Some(int4s));
        assert_eq!(
            ParamType::declared("_int4").map(|t| t.sql.to_string()),
            Some("INT4[]".into())
        );
        assert_eq!(declared("unknown"), None);
        assert_eq!(declared("_unknown"), None);
        assert_eq!(declared("serial"), None);
        assert_eq!(declared("oid"), Some(OID_TYPE));
        let oids = DataType::List(Arc::new(Field::new_list_field(OID_TYPE, true)));
        assert_eq!(declared("_oid"), Some(oids));
    }

    #[test]
    fn a_cast_parameter_has_the_type_the_cast_names() {
        use datafusion::logical_expr::{LogicalPlanBuilder, cast, placeholder};
        let int4s = DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true)));
        let oids = DataType::List(Arc::new(Field::new_list_field(OID_TYPE, true)));
        let plan = LogicalPlanBuilder::empty(true)
            .project(vec![
                cast(placeholder("$1"), int4s.clone()).alias("a"),
                cast(placeholder("$2"), oids.clone()).alias("b"),
                cast(placeholder("$3"), DataType::Utf8).alias("c"),
            ])
            .and_then(|b| b.build())
            .expect("a plan");
        let params = Params::of_plan(&plan).expect("parameters");
        let casts = params.casts(&[]);
        let described: Vec<DataType> = params
            .describe(&casts, 3)
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(described, [int4s, oids, DataType::Utf8]);
        assert_eq!(casts[&2].sql.to_string(), "oid[]");
    }

    #[test]
    fn only_untyped_parameters_are_cast() {
        let ty = |name| ParamType::declared(name).expect("a type");
        let params = Params {
            types: vec![
                Some(Field::new("", DataType::Int32, true)),
                None,
                None,
                None,
            ],
            from_functions: [(3, ty("float8")), (4, ty("text"))].into(),
        };
        let declared = [
            Some(ty("int8")),
            Some(ty("int2")),
            None,
            None,
            Some(ty("bool")),
        ];
        let casts = params.casts(&declared);
        assert_eq!(
            casts,
            [(2, ty("int2")), (3, ty("float8")), (5, ty("bool"))].into()
        );
        let described: Vec<DataType> = params
            .describe(&casts, declared.len())
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            described,
            [
                DataType::Int32,
                DataType::Int16,
                DataType::Float64,
                DataType::Utf8,
                DataType::Boolean
            ]
        );
    }
}
