//! The functions clients call to introspect a database (`format_type`,
//! `pg_get_indexdef`, `pg_table_is_visible`, ...), answered from the
//! session's pinned catalog, and the rewrites that let PostgreSQL's
//! catalog-query syntax reach DataFusion.
//!
//! Functions that need no catalog (`has_table_privilege`, `array_upper`,
//! ...) and the planner for `regclass`-style type names come
//! from the datafusion-pg-catalog crate.

use std::ops::ControlFlow;
use std::sync::Arc;

use ciab_storage::PgType;
use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Float64Type};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    AccessExpr, ArrayElemTypeDef, BinaryOperator, CaseWhen, CastKind, DataType as SqlDataType,
    Expr as SqlExpr, Function, FunctionArguments, Ident, ObjectName, ObjectNamePart, TableFactor,
    Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_pg_catalog::pg_catalog::{array_bounds_udf, has_privilege_udf};
use datafusion_pg_catalog::sql::rules::{
    CurrentUserVariableToSessionUserFunctionCall, PrependUnqualifiedPgTableName,
    RewritePgCatalogOperator, SqlStatementRewriteRule, StripCallableQualifier, StripCollate,
};

use ciab_extensions::text_format::quote_ident;

use crate::pg_catalog::{
    DATABASE_OWNER_OID, DYNAMIC_TABLES, OWNER_OID, Oid, PG_CATALOG, Relation, RelationKind, checks,
    constraint_definition, foreign_keys, index_definition, relations,
};
use crate::provider::CatalogList;
use crate::settings::SessionFacts;

/// Registers the introspection functions on a session's context.
pub fn register(ctx: &SessionContext, list: &Arc<CatalogList>) {
    ctx.register_udf(array_bounds_udf::create_array_upper_udf());
    ctx.register_udf(array_bounds_udf::create_array_lower_udf());
    // ciab has no privileges yet: every session may do everything.
    for name in [
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_any_column_privilege",
        "has_column_privilege",
        "has_function_privilege",
        "has_sequence_privilege",
    ] {
        ctx.register_udf(has_privilege_udf::create_has_privilege_udf(name));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(PgTypeof::default()));
    ctx.register_udf(ScalarUDF::new_from_impl(GenRandomUuid::default()));
    ctx.register_udf(AsyncScalarUDF::new(Arc::new(PgSleep::default())).into_scalar_udf());
    ctx.register_udf(ScalarUDF::new_from_impl(SettingOrError {
        signature: Signature::exact(
            vec![DataType::Utf8, DataType::Utf8, DataType::Boolean],
            Volatility::Stable,
        ),
    }));
    for f in CatalogFn::ALL {
        ctx.register_udf(ScalarUDF::new_from_impl(CatalogUdf {
            f: *f,
            list: list.clone(),
            signature: Signature::one_of(
                f.arities()
                    .iter()
                    .map(|n| TypeSignature::Any(*n))
                    .chain(f.arities().contains(&0).then_some(TypeSignature::Nullary))
                    .filter(|s| !matches!(s, TypeSignature::Any(0)))
                    .collect(),
                Volatility::Stable,
            ),
        }));
    }
}

/// Whether [`rewrite`] could change a statement of `sql`: the statements
/// on the hot path (`INSERT ... VALUES`, key lookups) skip its tree walks.
pub fn may_rewrite(sql: &str) -> bool {
    [
        "pg_",
        "collate",
        "operator",
        "current_",
        "session_user",
        "array",
        "unnest",
        "generate_series",
        "generate_subscripts",
        // The JSON set-returning functions (`jsonb_array_elements` has
        // `array` already).
        "_keys",
        "_each",
        // jsonb_path_query, and named arguments (`silent => true`).
        "_path_",
        "=>",
        "regclass",
        "regnamespace",
        "regtype",
        "mod(",
        // `(composite).field`
        ").",
    ]
    .iter()
    .any(|w| crate::names::contains_ignore_ascii_case(sql, w))
}

/// Rewrites PostgreSQL syntax that catalog queries use and DataFusion does
/// not parse or resolve alike, without changing what the statement means:
/// `OPERATOR(pg_catalog.~)` is `~`, `COLLATE pg_catalog.default` is ciab's
/// only (byte-wise) collation, `pg_catalog.f()` is `f()`, an unqualified
/// `pg_class` is `pg_catalog.pg_class` (PostgreSQL searches pg_catalog first),
/// named arguments are positional ([`crate::named_args`]), and
/// `ARRAY(SELECT ...)` is an aggregate ([`crate::arrays`]).
pub fn rewrite(statement: DfStatement) -> DfStatement {
    let DfStatement::Statement(s) = statement else {
        return statement;
    };
    let mut s = *s;
    let rules: [&dyn SqlStatementRewriteRule; 5] = [
        &RewritePgCatalogOperator,
        &StripCollate,
        &StripCallableQualifier,
        &PrependUnqualifiedPgTableName,
        &CurrentUserVariableToSessionUserFunctionCall,
    ];
    for rule in rules {
        s = rule.rewrite(s);
    }
    let _ = s.visit(&mut CatalogSyntax);
    crate::named_args::rewrite(&mut s);
    crate::arrays::rewrite(&mut s);
    DfStatement::Statement(Box::new(s))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CatalogFn {
    FormatType,
    TableIsVisible,
    TypeIsVisible,
    FunctionIsVisible,
    GetIndexdef,
    GetConstraintdef,
    GetUserById,
    ObjDescription,
    ColDescription,
    ShobjDescription,
    CurrentSchema,
    CurrentDatabase,
    SessionUser,
    CurrentUser,
    FunctionResult,
    FunctionArguments,
    StatisticsObjdefColumns,
    RelationIsPublishable,
    GetExpr,
    EncodingToChar,
    ToRegtype,
    /// `x::regclass`, which the rewrite below turns into a call.
    Regclass,
    /// `x::regclass::text`: the relation's name.
    RegclassName,
    /// `x::regnamespace`, and `x::regnamespace::text`: the schema's name.
    Regnamespace,
    RegnamespaceName,
    /// `x::regtype`, and `x::regtype::text`: the type's SQL name.
    Regtype,
    RegtypeName,
    ToRegclass,
    GetSerialSequence,
}

impl CatalogFn {
    const ALL: &[CatalogFn] = &[
        CatalogFn::FormatType,
        CatalogFn::TableIsVisible,
        CatalogFn::TypeIsVisible,
        CatalogFn::FunctionIsVisible,
        CatalogFn::GetIndexdef,
        CatalogFn::GetConstraintdef,
        CatalogFn::GetUserById,
        CatalogFn::ObjDescription,
        CatalogFn::ColDescription,
        CatalogFn::ShobjDescription,
        CatalogFn::CurrentSchema,
        CatalogFn::CurrentDatabase,
        CatalogFn::SessionUser,
        CatalogFn::CurrentUser,
        CatalogFn::FunctionResult,
        CatalogFn::FunctionArguments,
        CatalogFn::StatisticsObjdefColumns,
        CatalogFn::RelationIsPublishable,
        CatalogFn::GetExpr,
        CatalogFn::EncodingToChar,
        CatalogFn::ToRegtype,
        CatalogFn::Regclass,
        CatalogFn::RegclassName,
        CatalogFn::Regnamespace,
        CatalogFn::RegnamespaceName,
        CatalogFn::Regtype,
        CatalogFn::RegtypeName,
        CatalogFn::ToRegclass,
        CatalogFn::GetSerialSequence,
    ];

    fn name(self) -> &'static str {
        match self {
            CatalogFn::FormatType => "format_type",
            CatalogFn::TableIsVisible => "pg_table_is_visible",
            CatalogFn::TypeIsVisible => "pg_type_is_visible",
            CatalogFn::FunctionIsVisible => "pg_function_is_visible",
            CatalogFn::GetIndexdef => "pg_get_indexdef",
            CatalogFn::GetConstraintdef => "pg_get_constraintdef",
            CatalogFn::GetUserById => "pg_get_userbyid",
            CatalogFn::ObjDescription => "obj_description",
            CatalogFn::ColDescription => "col_description",
            CatalogFn::ShobjDescription => "shobj_description",
            CatalogFn::CurrentSchema => "current_schema",
            CatalogFn::CurrentDatabase => "current_database",
            CatalogFn::SessionUser => "session_user",
            CatalogFn::CurrentUser => "current_user",
            CatalogFn::FunctionResult => "pg_get_function_result",
            CatalogFn::FunctionArguments => "pg_get_function_arguments",
            CatalogFn::StatisticsObjdefColumns => "pg_get_statisticsobjdef_columns",
            CatalogFn::RelationIsPublishable => "pg_relation_is_publishable",
            CatalogFn::GetExpr => "pg_get_expr",
            CatalogFn::EncodingToChar => "pg_encoding_to_char",
            CatalogFn::ToRegtype => "to_regtype",
            CatalogFn::Regclass => REGCLASS,
            CatalogFn::RegclassName => REGCLASS_NAME,
            CatalogFn::Regnamespace => RegCast::Namespace.call(),
            CatalogFn::RegnamespaceName => RegCast::Namespace.name_call(),
            CatalogFn::Regtype => RegCast::Type.call(),
            CatalogFn::RegtypeName => RegCast::Type.name_call(),
            CatalogFn::ToRegclass => "to_regclass",
            CatalogFn::GetSerialSequence => "pg_get_serial_sequence",
        }
    }

    fn arities(self) -> &'static [usize] {
        match self {
            CatalogFn::FormatType | CatalogFn::ColDescription | CatalogFn::ShobjDescription => &[2],
            CatalogFn::TableIsVisible
            | CatalogFn::TypeIsVisible
            | CatalogFn::FunctionIsVisible
            | CatalogFn::GetUserById
            | CatalogFn::FunctionResult
            | CatalogFn::FunctionArguments
            | CatalogFn::StatisticsObjdefColumns
            | CatalogFn::RelationIsPublishable
            | CatalogFn::EncodingToChar
            | CatalogFn::ToRegtype
            | CatalogFn::Regclass
            | CatalogFn::RegclassName
            | CatalogFn::Regnamespace
            | CatalogFn::RegnamespaceName
            | CatalogFn::Regtype
            | CatalogFn::RegtypeName
            | CatalogFn::ToRegclass => &[1],
            CatalogFn::GetSerialSequence => &[2],
            CatalogFn::GetIndexdef => &[1, 3],
            CatalogFn::GetExpr => &[2, 3],
            CatalogFn::GetConstraintdef | CatalogFn::ObjDescription => &[1, 2],
            CatalogFn::CurrentSchema
            | CatalogFn::CurrentDatabase
            | CatalogFn::SessionUser
            | CatalogFn::CurrentUser => &[0],
        }
    }

    fn return_type(self) -> DataType {
        match self {
            CatalogFn::TableIsVisible
            | CatalogFn::TypeIsVisible
            | CatalogFn::FunctionIsVisible
            | CatalogFn::RelationIsPublishable => DataType::Boolean,
            CatalogFn::ToRegtype
            | CatalogFn::Regclass
            | CatalogFn::Regnamespace
            | CatalogFn::Regtype
            | CatalogFn::ToRegclass => DataType::Int32,
            _ => DataType::Utf8,
        }
    }
}

struct CatalogUdf {
    f: CatalogFn,
    list: Arc<CatalogList>,
    signature: Signature,
}

bound_udf_identity!(CatalogUdf, bound: list, key: f);

/// What a function needs besides its arguments.
struct Context<'a> {
    list: &'a CatalogList,
    /// Where unqualified names resolve: the first schema of search_path.
    default_schema: &'a str,
    user: &'a str,
}

impl Context<'_> {
    /// The OID of the relation `name` names (`'t'`, `'s.t'`, `'"T"'`):
    /// a user relation, or one of PostgreSQL's catalog tables.
    fn relation_oid(&self, name: &str) -> crate::Result<i32> {
        let missing = || {
            crate::Error::new(
                crate::sqlstate::UNDEFINED_TABLE,
                format!("relation \"{name}\" does not exist"),
            )
        };
        let parts = crate::names::parse_relation_name(name).ok_or_else(missing)?;
        let (schema, relation) = match parts.as_slice() {
            [r] => (None, r),
            [s, r] => (Some(s.as_str()), r),
            _ => return Err(missing()),
        };
        if schema.is_none_or(|s| s == crate::pg_catalog::PG_CATALOG)
            && let Some(oid) = catalog_table_oid(relation)
        {
            return Ok(oid);
        }
        let schema = schema.unwrap_or(self.default_schema);
        let state = self.list.state();
        relations(&state, &self.list.database())
            .iter()
            .find(|r| r.schema == schema && r.name == relation)
            .map(|r| r.oid.0)
            .ok_or_else(missing)
    }

    /// The OID of the schema `name` names (`'s'`, `'"S"'`).
    fn namespace_oid(&self, name: &str) -> crate::Result<i32> {
        let missing = || {
            crate::Error::new(
                crate::sqlstate::INVALID_SCHEMA_NAME,
                format!("schema \"{name}\" does not exist"),
            )
        };
        let parts = crate::names::parse_relation_name(name).ok_or_else(missing)?;
        let [schema] = parts.as_slice() else {
            return Err(missing());
        };
        let state = self.list.state();
        crate::pg_catalog::schemas(&state, &self.list.database())
            .into_iter()
            .find(|(n, _)| n == schema)
            .map(|(_, oid)| oid.0)
            .ok_or_else(missing)
    }

    /// How `regnamespace` prints the schema with this OID: its name, quoted
    /// where needed; an OID of no schema prints as its number.
    fn namespace_name(&self, oid: i32) -> String {
        let state = self.list.state();
        crate::pg_catalog::schemas(&state, &self.list.database())
            .into_iter()
            .find(|(_, o)| o.0 == oid)
            .map_or_else(|| oid.to_string(), |(name, _)| quote_ident(&name))
    }

    /// How `regclass` prints the relation with this OID: its name, quoted
    /// where needed and qualified where search_path would not find it; an
    /// OID of no relation prints as its number.
    fn relation_name(&self, oid: i32) -> String {
        if let Some(name) = catalog_table_name(oid) {
            return name.to_string();
        }
        self.relation(i64::from(oid), |r| {
            if r.schema == self.default_schema {
                quote_ident(r.name)
            } else {
                format!("{}.{}", quote_ident(r.schema), quote_ident(r.name))
            }
        })
        .unwrap_or_else(|| oid.to_string())
    }

    /// `pg_get_serial_sequence(table, column)`: the sequence a serial
    /// column draws from, schema-qualified, or None for another column.
    fn serial_sequence(&self, table: &str, column: &str) -> crate::Result<Option<String>> {
        let oid = self.relation_oid(table)?;
        let state = self.list.state();
        let database = self.list.database();
        let relations = relations(&state, &database);
        let found = relations.iter().find(|r| r.oid.0 == oid);
        let Some((schema, RelationKind::Table(def))) = found.map(|r| (r.schema, &r.kind)) else {
            return Ok(None);
        };
        let column = def
            .columns
            .iter()
            .find(|c| c.name == column)
            .ok_or_else(|| {
                crate::Error::new(
                    crate::sqlstate::UNDEFINED_COLUMN,
                    format!("column \"{column}\" of relation \"{table}\" does not exist"),
                )
            })?;
        Ok(column
            .default
            .as_deref()
            .and_then(crate::sequences::serial_sequence)
            .map(|sequence| format!("{}.{}", quote_ident(schema), quote_ident(&sequence))))
    }

    /// `f` of the relation with this OID, if there is one.
    fn relation<T>(&self, oid: i64, f: impl FnOnce(&Relation) -> T) -> Option<T> {
        let state = self.list.state();
        let database = self.list.database();
        relations(&state, &database)
            .iter()
            .find(|r| i64::from(r.oid.0) == oid)
            .map(f)
    }
}

impl ScalarUDFImpl for CatalogUdf {
    fn name(&self) -> &str {
        self.f.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(self.f.return_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let options = args.config_options.clone();
        let user = options
            .extensions
            .get::<SessionFacts>()
            .map(|f| f.user.clone())
            .unwrap_or_default();
        let cx = Context {
            list: &self.list,
            default_schema: &options.catalog.default_schema,
            user: &user,
        };
        let rows = args.number_rows;
        if matches!(
            self.f,
            CatalogFn::FunctionResult | CatalogFn::FunctionArguments
        ) && rows > 0
        {
            // Only PostgreSQL's built-in functions exist, and their
            // signatures are not described yet; psql's \df lists none (it
            // hides pg_catalog) and so never calls this.
            return Err(DataFusionError::NotImplemented(format!(
                "{} is not supported yet",
                self.f.name()
            )));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let values = arrays
                .iter()
                .map(|a| ScalarValue::try_from_array(a, row))
                .collect::<DfResult<Vec<_>>>()?;
            out.push(match self.fallible(&cx, &values) {
                Some(value) => value.map_err(crate::error::to_df)?,
                None => self.call(&cx, &values),
            });
        }
        if out.is_empty() {
            return Ok(ColumnarValue::Array(
                datafusion::arrow::array::new_empty_array(&self.f.return_type()),
            ));
        }
        let array = ScalarValue::iter_to_array(out)?;
        debug_assert_eq!(array.len(), rows);
        Ok(ColumnarValue::Array(array))
    }
}

fn int(v: &ScalarValue) -> Option<i64> {
    if v.is_null() {
        return None;
    }
    match v.cast_to(&DataType::Int64).ok()? {
        ScalarValue::Int64(i) => i,
        _ => None,
    }
}

/// A text argument's value; None for NULL or another type.
fn string(v: Option<&ScalarValue>) -> Option<&str> {
    match v? {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Some(s),
        _ => None,
    }
}

fn text(v: Option<String>) -> ScalarValue {
    ScalarValue::Utf8(v)
}

impl CatalogUdf {
    /// The functions that can fail on their arguments, as PostgreSQL's do;
    /// None for the others.
    fn fallible(&self, cx: &Context, args: &[ScalarValue]) -> Option<crate::Result<ScalarValue>> {
        let name = |i: usize| string(args.get(i));
        // An OID alias (regclass, regnamespace, regtype) from an OID, or
        // from text: digits are an OID, as in PostgreSQL, anything else a
        // name that `lookup` resolves.
        let oid = |lookup: &dyn Fn(&str) -> crate::Result<i32>| -> crate::Result<Option<i32>> {
            if let Some(n) = name(0) {
                return match n.trim().parse::<i64>() {
                    Ok(oid) => Ok(Some(oid as i32)),
                    Err(_) => lookup(n).map(Some),
                };
            }
            Ok(args.first().and_then(int).map(|oid| oid as i32))
        };
        let relation = |n: &str| cx.relation_oid(n);
        let namespace = |n: &str| cx.namespace_oid(n);
        let type_oid = |n: &str| {
            builtin_type_oid(n).ok_or_else(|| {
                crate::Error::new(
                    crate::sqlstate::UNDEFINED_OBJECT,
                    format!("type \"{n}\" does not exist"),
                )
            })
        };
        Some(match self.f {
            CatalogFn::Regclass => oid(&relation).map(ScalarValue::Int32),
            CatalogFn::RegclassName => {
                oid(&relation).map(|oid| text(oid.map(|oid| named(oid, |o| cx.relation_name(o)))))
            }
            CatalogFn::Regnamespace => oid(&namespace).map(ScalarValue::Int32),
            CatalogFn::RegnamespaceName => {
                oid(&namespace).map(|oid| text(oid.map(|oid| named(oid, |o| cx.namespace_name(o)))))
            }
            CatalogFn::Regtype => oid(&type_oid).map(ScalarValue::Int32),
            CatalogFn::RegtypeName => {
                oid(&type_oid).map(|oid| text(oid.map(|oid| named(oid, regtype_name))))
            }
            CatalogFn::ToRegclass => Ok(ScalarValue::Int32(
                name(0).and_then(|n| cx.relation_oid(n).ok()),
            )),
            CatalogFn::GetSerialSequence => {
                let (Some(table), Some(column)) = (name(0), name(1)) else {
                    return Some(Ok(text(None)));
                };
                cx.serial_sequence(table, column).map(text)
            }
            _ => return None,
        })
    }

    fn call(&self, cx: &Context, args: &[ScalarValue]) -> ScalarValue {
        let arg = |i: usize| args.get(i).and_then(int);
        match self.f {
            CatalogFn::FormatType => {
                // format_type(NULL, ...) is NULL; a NULL typmod is none given.
                let Some(oid) = arg(0) else {
                    return text(None);
                };
                text(Some(format_type(oid, arg(1))))
            }
            CatalogFn::TableIsVisible => {
                let Some(oid) = arg(0) else {
                    return ScalarValue::Boolean(None);
                };
                // ciab resolves an unqualified name in the first schema of
                // search_path only; a relation is visible if it lives there.
                let visible = cx.relation(oid, |r| r.schema == cx.default_schema);
                ScalarValue::Boolean(Some(visible.unwrap_or(false)))
            }
            // Types and functions are all built in, in pg_catalog, which is
            // always searched.
            CatalogFn::TypeIsVisible | CatalogFn::FunctionIsVisible => {
                ScalarValue::Boolean(arg(0).map(|_| true))
            }
            CatalogFn::GetIndexdef | CatalogFn::GetConstraintdef => {
                let Some(oid) = arg(0) else {
                    return text(None);
                };
                let state = cx.list.state();
                let database = cx.list.database();
                let found = relations(&state, &database)
                    .iter()
                    .find_map(|r| match &r.kind {
                        RelationKind::Index {
                            table,
                            table_name,
                            position,
                        } => {
                            match self.f {
                                CatalogFn::GetIndexdef if i64::from(r.oid.0) == oid => {
                                    let column = arg(1).unwrap_or(0);
                                    Some(if column > 0 {
                                        // One column of the index, by position.
                                        let index = &table.indexes[*position];
                                        index
                                            .columns
                                            .get(column as usize - 1)
                                            .map(|c| quote_ident(c))
                                            .unwrap_or_default()
                                    } else {
                                        index_definition(r.schema, table, table_name, *position)
                                    })
                                }
                                CatalogFn::GetConstraintdef
                                    if i64::from(Oid::constraint(table.id.0, *position).0)
                                        == oid =>
                                {
                                    constraint_definition(table, *position)
                                }
                                _ => None,
                            }
                        }
                        _ => None,
                    })
                    .or_else(|| match self.f {
                        CatalogFn::GetConstraintdef => foreign_keys(&state, &database)
                            .iter()
                            .find(|k| i64::from(k.oid.0) == oid)
                            .map(|k| k.definition())
                            .or_else(|| {
                                checks(&state, &database)
                                    .iter()
                                    .find(|c| i64::from(c.oid.0) == oid)
                                    .map(|c| c.definition())
                            }),
                        _ => None,
                    });
                text(found)
            }
            CatalogFn::GetUserById => text(arg(0).map(|oid| {
                if oid == i64::from(OWNER_OID) {
                    cx.user.to_string()
                } else if oid == i64::from(DATABASE_OWNER_OID) {
                    "pg_database_owner".to_string()
                } else {
                    format!("unknown (OID={oid})")
                }
            })),
            // ciab stores no comments (COMMENT ON is not supported), so
            // every object's description is NULL, as in PostgreSQL for an
            // object without one.
            CatalogFn::ObjDescription | CatalogFn::ColDescription | CatalogFn::ShobjDescription => {
                text(None)
            }
            CatalogFn::CurrentSchema => text(Some(cx.default_schema.to_string())),
            CatalogFn::CurrentDatabase => text(Some(cx.list.database())),
            CatalogFn::SessionUser | CatalogFn::CurrentUser => text(Some(cx.user.to_string())),
            CatalogFn::FunctionResult | CatalogFn::FunctionArguments => {
                unreachable!("refused in invoke_with_args")
            }
            CatalogFn::Regclass
            | CatalogFn::RegclassName
            | CatalogFn::Regnamespace
            | CatalogFn::RegnamespaceName
            | CatalogFn::Regtype
            | CatalogFn::RegtypeName
            | CatalogFn::ToRegclass
            | CatalogFn::GetSerialSequence => {
                unreachable!("answered by fallible")
            }
            // The OID of a type by name, NULL if there is none (psycopg asks
            // for hstore this way); only built-in types exist.
            CatalogFn::ToRegtype => {
                ScalarValue::Int32(string(args.first()).and_then(builtin_type_oid))
            }
            // ciab stores UTF-8 only; other numbers are PostgreSQL's
            // encodings that no database here uses: an empty name, as
            // PostgreSQL gives for an invalid number.
            CatalogFn::EncodingToChar => text(arg(0).map(|n| {
                match n {
                    0 => "SQL_ASCII",
                    6 => "UTF8",
                    _ => "",
                }
                .to_string()
            })),
            // ciab keeps an expression (pg_attrdef.adbin) as its SQL text,
            // which is what pg_get_expr decompiles PostgreSQL's trees into.
            CatalogFn::GetExpr => text(string(args.first()).map(str::to_string)),
            // ciab has no extended statistics (CREATE STATISTICS), so there
            // is no object to describe.
            CatalogFn::StatisticsObjdefColumns => text(None),
            // As in PostgreSQL: a user's table can be published, nothing else.
            CatalogFn::RelationIsPublishable => {
                let Some(oid) = arg(0) else {
                    return ScalarValue::Boolean(None);
                };
                ScalarValue::Boolean(cx.relation(oid, |r| matches!(r.kind, RelationKind::Table(_))))
            }
        }
    }
}

/// `pg_typeof(x)`: the SQL name of the argument's type, as `regtype`
/// prints it (`integer`, `character varying`, `text[]`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeof {
    signature: Signature,
}

impl Default for PgTypeof {
    fn default() -> Self {
        PgTypeof {
            signature: Signature::any(1, Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let name = type_name(&args.arg_fields[0]);
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

/// What `current_setting` becomes: a setting's value, or for a name no
/// setting has, NULL when `missing_ok` and 42704 otherwise.
const SETTING_OR_ERROR: &str = "__ciab_setting_or_error";

#[derive(Debug, PartialEq, Eq, Hash)]
struct SettingOrError {
    signature: Signature,
}

impl ScalarUDFImpl for SettingOrError {
    fn name(&self) -> &str {
        SETTING_OR_ERROR
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [value, name, missing_ok] = arrays.as_slice() else {
            unreachable!("the signature takes three arguments")
        };
        let value = value.as_string::<i32>();
        let name = name.as_string::<i32>();
        let missing_ok = missing_ok.as_boolean();
        // Custom settings (`app.user_id`) are the session's alone, and
        // pg_settings does not list them, as in PostgreSQL.
        let facts = args.config_options.extensions.get::<SessionFacts>();
        let mut out = Vec::with_capacity(value.len());
        for row in 0..value.len() {
            if !value.is_null(row) || name.is_null(row) {
                out.push((!value.is_null(row)).then(|| value.value(row).to_string()));
                continue;
            }
            let wanted = name.value(row).to_ascii_lowercase();
            let custom = facts.and_then(|f| f.settings.get(&wanted)).cloned();
            if custom.is_none() && !missing_ok.value(row) {
                return Err(DataFusionError::External(Box::new(
                    crate::session::unrecognized_setting(name.value(row)),
                )));
            }
            out.push(custom);
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `pg_sleep(seconds)`: waits, once per row, as a cancel or
/// statement_timeout may cut short; returns PostgreSQL's `void` (empty).
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgSleep {
    signature: Signature,
}

impl Default for PgSleep {
    fn default() -> Self {
        PgSleep {
            signature: Signature::exact(vec![DataType::Float64], Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for PgSleep {
    fn name(&self) -> &str {
        "pg_sleep"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        unreachable!("DataFusion calls asynchronous functions through invoke_async_with_args")
    }
}

#[async_trait::async_trait]
impl AsyncScalarUDFImpl for PgSleep {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let seconds = ColumnarValue::values_to_arrays(&args.args)?;
        let seconds = seconds[0].as_primitive::<Float64Type>();
        let mut out = Vec::with_capacity(seconds.len());
        for row in 0..seconds.len() {
            if seconds.is_null(row) {
                out.push(None);
                continue;
            }
            // As PostgreSQL's: a negative or NaN time does not wait, and a
            // huge one waits as long as a Duration can say (tokio takes it
            // as forever).
            let wait = std::time::Duration::try_from_secs_f64(seconds.value(row).max(0.0))
                .unwrap_or(std::time::Duration::MAX);
            tokio::time::sleep(wait).await;
            out.push(Some(""));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `gen_random_uuid()`: a version 4 UUID per row, typed uuid.
#[derive(Debug, PartialEq, Eq, Hash)]
struct GenRandomUuid {
    signature: Signature,
}

impl Default for GenRandomUuid {
    fn default() -> Self {
        GenRandomUuid {
            signature: Signature::exact(vec![], Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for GenRandomUuid {
    fn name(&self) -> &str {
        "gen_random_uuid"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(Arc::new(PgType::Uuid.field(self.name())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let uuids: StringArray = (0..args.number_rows)
            .map(|_| Some(uuid::Uuid::new_v4().hyphenated().to_string()))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(uuids)))
    }
}

/// The SQL name of a field's type, as `pg_typeof` and `format_type` give it.
pub(crate) fn type_name(field: &datafusion::arrow::datatypes::Field) -> String {
    match field.data_type() {
        DataType::Null => "unknown".into(),
        oid if *oid == crate::pg_catalog::OID_TYPE => "oid".into(),
        DataType::List(element) | DataType::LargeList(element) => {
            format!("{}[]", type_name(element))
        }
        _ => match PgType::of_field(field) {
            Some(ty) => format_type(i64::from(ty.oid()), None),
            None => "unknown".into(),
        },
    }
}

/// What `x::regclass` becomes: a call that resolves a name to its OID.
const REGCLASS: &str = "__ciab_regclass";
/// What `x::regclass::text` becomes: a call that names the relation.
const REGCLASS_NAME: &str = "__ciab_regclass_name";

/// The OIDs of PostgreSQL 15's catalog tables that clients name as
/// `'pg_catalog.pg_class'::regclass` (fixed in PostgreSQL's catalog headers).
fn catalog_table_oid(name: &str) -> Option<i32> {
    CATALOG_TABLE_OIDS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, oid)| *oid)
}

fn catalog_table_name(oid: i32) -> Option<&'static str> {
    CATALOG_TABLE_OIDS
        .iter()
        .find(|(_, o)| *o == oid)
        .map(|(name, _)| *name)
}

const CATALOG_TABLE_OIDS: &[(&str, i32)] = &[
    ("pg_type", 1247),
    ("pg_attribute", 1249),
    ("pg_proc", 1255),
    ("pg_class", 1259),
    ("pg_authid", 1260),
    ("pg_database", 1262),
    ("pg_am", 2601),
    ("pg_attrdef", 2604),
    ("pg_constraint", 2606),
    ("pg_depend", 2608),
    ("pg_description", 2609),
    ("pg_index", 2610),
    ("pg_inherits", 2611),
    ("pg_namespace", 2615),
    ("pg_rewrite", 2618),
    ("pg_trigger", 2620),
    ("pg_sequence", 2224),
    ("pg_collation", 3456),
];

/// PostgreSQL syntax of catalog queries that DataFusion has no equivalent
/// for, rewritten into calls it plans: `x::regclass` resolves a name (or
/// keeps an OID; ciab's regclass values are OIDs), `x::regclass::text`
/// names the relation, and
/// `generate_subscripts(a, 1)` is the unnest of `1..cardinality(a)`, which
/// runs in step with an `unnest(a)` beside it as in PostgreSQL.
struct CatalogSyntax;

impl VisitorMut for CatalogSyntax {
    type Break = ();

    /// PostgreSQL searches pg_catalog first: an unqualified name of a
    /// catalog table ciab builds itself (`pg_indexes`, `pg_locks`) is that
    /// table, as `PrependUnqualifiedPgTableName` does for the others.
    fn pre_visit_table_factor(&mut self, table_factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name, args: None, ..
        } = table_factor
            && let [ObjectNamePart::Identifier(ident)] = name.0.as_slice()
            && ident.quote_style.is_none()
            && let Some(table) = DYNAMIC_TABLES
                .iter()
                .find(|t| t.eq_ignore_ascii_case(&ident.value))
        {
            *name = ObjectName::from(vec![Ident::new(PG_CATALOG), Ident::new(*table)]);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut SqlExpr) -> ControlFlow<()> {
        match expr {
            SqlExpr::Cast {
                expr: inner,
                data_type,
                ..
            } if RegCast::of(data_type).is_some() => {
                let cast = RegCast::of(data_type).expect("matched above");
                *expr = function_call(cast.call(), vec![(**inner).clone()]);
            }
            // Visited after its inner cast, which is a call by now.
            SqlExpr::Cast {
                expr: inner,
                data_type: SqlDataType::Text,
                ..
            } if RegCast::called(inner).is_some() => {
                let (cast, f) = RegCast::called(inner).expect("matched above");
                *expr = SqlExpr::Function(Function {
                    name: ObjectName::from(vec![Ident::new(cast.name_call())]),
                    ..f.clone()
                });
            }
            // pg_proc.proargtypes is PostgreSQL's oidvector, which ciab's
            // pg_proc keeps as its text ("16 23"): unnest its OIDs.
            SqlExpr::Function(f) if function_named(f, "unnest") => {
                if let [vector] = &unnamed_args(f)[..]
                    && names_column(vector, "proargtypes")
                {
                    *expr = function_call("unnest", vec![oid_array(vector.clone())]);
                }
            }
            // mod(a, b), which DataFusion has as an operator only.
            SqlExpr::Function(f) if function_named(f, "mod") => {
                if let [a, b] = &unnamed_args(f)[..] {
                    *expr = SqlExpr::Nested(Box::new(SqlExpr::BinaryOp {
                        left: Box::new(a.clone()),
                        op: BinaryOperator::Modulo,
                        right: Box::new(b.clone()),
                    }));
                }
            }
            // current_setting(name [, missing_ok]): the value pg_settings
            // shows (the session's, else the cluster's, else the default).
            SqlExpr::Function(f) if function_named(f, "current_setting") => {
                let args = unnamed_args(f);
                if let [name, rest @ ..] = &args[..]
                    && rest.len() <= 1
                {
                    let missing_ok = rest
                        .first()
                        .cloned()
                        .unwrap_or(SqlExpr::value(Value::Boolean(false)));
                    let sql = format!(
                        "{SETTING_OR_ERROR}((SELECT setting FROM pg_catalog.pg_settings \
                         WHERE lower(name) = lower({name})), {name}, {missing_ok})"
                    );
                    if let Ok(call) = Parser::new(&PostgreSqlDialect {})
                        .try_with_sql(&sql)
                        .and_then(|mut p| p.parse_expr())
                    {
                        *expr = call;
                    }
                }
            }
            SqlExpr::Function(f) if function_named(f, "generate_subscripts") => {
                if let [array, dimension] = &unnamed_args(f)[..] {
                    *expr = function_call("unnest", vec![subscripts(array, dimension)]);
                }
            }
            // information_schema._pg_expandarray(a): the rows (x, n) of a's
            // elements and their subscripts (JDBC's getPrimaryKeys and
            // getIndexInfo join indkey with it).
            SqlExpr::Function(f) if function_named(f, "_pg_expandarray") => {
                if let [array] = &unnamed_args(f)[..] {
                    let one = SqlExpr::value(Value::Number("1".into(), false));
                    let text = |v: &str| SqlExpr::value(Value::SingleQuotedString(v.into()));
                    *expr = function_call(
                        "named_struct",
                        vec![
                            text("x"),
                            function_call("unnest", vec![array.clone()]),
                            text("n"),
                            function_call("unnest", vec![subscripts(array, &one)]),
                        ],
                    );
                }
            }
            // `(composite).field`, which DataFusion plans only for columns.
            SqlExpr::CompoundFieldAccess { root, access_chain }
                if access_chain
                    .iter()
                    .all(|a| matches!(a, AccessExpr::Dot(SqlExpr::Identifier(_)))) =>
            {
                let mut value = (**root).clone();
                for access in access_chain.iter() {
                    let AccessExpr::Dot(SqlExpr::Identifier(field)) = access else {
                        unreachable!("matched above")
                    };
                    let name = SqlExpr::value(Value::SingleQuotedString(field.value.clone()));
                    value = function_call("get_field", vec![value, name]);
                }
                *expr = value;
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// The positional arguments of a call, when it has only those.
/// Whether `expr` is the column `name`, qualified or not.
fn names_column(expr: &SqlExpr, name: &str) -> bool {
    match expr {
        SqlExpr::Identifier(i) => i.value.eq_ignore_ascii_case(name),
        SqlExpr::CompoundIdentifier(parts) => parts
            .last()
            .is_some_and(|i| i.value.eq_ignore_ascii_case(name)),
        _ => false,
    }
}

/// An oidvector's text (`'16 23'`, `''`) as an array of its OIDs.
fn oid_array(vector: SqlExpr) -> SqlExpr {
    let text = |v: &str| SqlExpr::value(Value::SingleQuotedString(v.into()));
    let words = function_call("string_to_array", vec![vector, text(" ")]);
    SqlExpr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(function_call("array_remove", vec![words, text("")])),
        data_type: SqlDataType::Array(ArrayElemTypeDef::SquareBracket(
            Box::new(SqlDataType::Int(None)),
            None,
        )),
        array: false,
        format: None,
    }
}

fn unnamed_args(f: &Function) -> Vec<SqlExpr> {
    let FunctionArguments::List(list) = &f.args else {
        return vec![];
    };
    crate::arrays::positional(&list.args).unwrap_or_default()
}

/// `generate_series(1, n)` for the subscripts of `array` along `dimension`.
fn subscripts(array: &SqlExpr, dimension: &SqlExpr) -> SqlExpr {
    // ciab's arrays have one dimension: any other has none.
    let length = SqlExpr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![CaseWhen {
            condition: SqlExpr::BinaryOp {
                left: Box::new(dimension.clone()),
                op: BinaryOperator::Eq,
                right: Box::new(SqlExpr::value(Value::Number("1".into(), false))),
            },
            result: function_call("cardinality", vec![array.clone()]),
        }],
        else_result: Some(Box::new(SqlExpr::value(Value::Number("0".into(), false)))),
    };
    // cardinality is unsigned: one integer type for both arms.
    let length = SqlExpr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(length),
        data_type: SqlDataType::BigInt(None),
        array: false,
        format: None,
    };
    function_call(
        "generate_series",
        vec![SqlExpr::value(Value::Number("1".into(), false)), length],
    )
}

/// PostgreSQL's OID alias types that catalog queries cast to: ciab keeps
/// their values as OIDs, and names the object when cast on to text.
#[derive(Debug, Clone, Copy)]
enum RegCast {
    Class,
    Namespace,
    Type,
}

impl RegCast {
    const ALL: [RegCast; 3] = [RegCast::Class, RegCast::Namespace, RegCast::Type];

    fn type_name(self) -> &'static str {
        match self {
            RegCast::Class => "regclass",
            RegCast::Namespace => "regnamespace",
            RegCast::Type => "regtype",
        }
    }

    /// The call `x::regX` becomes: the OID, from a name or an OID.
    fn call(self) -> &'static str {
        match self {
            RegCast::Class => REGCLASS,
            RegCast::Namespace => "__ciab_regnamespace",
            RegCast::Type => "__ciab_regtype",
        }
    }

    /// The call `x::regX::text` becomes: the object's name.
    fn name_call(self) -> &'static str {
        match self {
            RegCast::Class => REGCLASS_NAME,
            RegCast::Namespace => "__ciab_regnamespace_name",
            RegCast::Type => "__ciab_regtype_name",
        }
    }

    fn of(data_type: &SqlDataType) -> Option<RegCast> {
        let name = match data_type {
            SqlDataType::Regclass => return Some(RegCast::Class),
            SqlDataType::Custom(name, modifiers) if modifiers.is_empty() => {
                name.0.last().and_then(|p| p.as_ident())?
            }
            _ => return None,
        };
        Self::ALL
            .into_iter()
            .find(|c| name.value.eq_ignore_ascii_case(c.type_name()))
    }

    /// The cast whose call `expr` is, and the call.
    fn called(expr: &SqlExpr) -> Option<(RegCast, &Function)> {
        let SqlExpr::Function(f) = expr else {
            return None;
        };
        Self::ALL
            .into_iter()
            .find(|c| function_named(f, c.call()))
            .map(|c| (c, f))
    }
}

fn function_named(f: &Function, name: &str) -> bool {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .is_some_and(|i| i.value.eq_ignore_ascii_case(name))
}

fn function_call(name: &str, args: Vec<SqlExpr>) -> SqlExpr {
    crate::arrays::call(name, args, vec![])
}

/// `format_type(oid, typmod)`: the SQL name of a type, as PostgreSQL prints
/// it. `typmod` is `None` where no modifier is given at all (a NULL
/// argument, `regtype`), which differs from `Some(-1)` for one type only:
/// `character` means `character(1)` in SQL, so PostgreSQL names a `bpchar`
/// whose modifier is given as -1 (no length) `bpchar`.
pub fn format_type(oid: i64, typmod: Option<i64>) -> String {
    const VARHDRSZ: i32 = 4;
    let given = typmod.is_some();
    let typmod = typmod.map_or(-1, |t| i32::try_from(t).unwrap_or(-1));
    let length = (typmod >= VARHDRSZ).then(|| (typmod - VARHDRSZ) as u32);
    // An array's modifier is its element's: `character varying(10)[]`.
    if let Some(element) = u32::try_from(oid).ok().and_then(PgType::element_oid) {
        let typmod = given.then_some(i64::from(typmod));
        return format!("{}[]", format_type(i64::from(element), typmod));
    }
    let ty = match oid {
        16 => PgType::Bool,
        17 => PgType::Bytea,
        20 => PgType::Int8,
        21 => PgType::Int2,
        23 => PgType::Int4,
        25 => PgType::Text,
        114 => PgType::Json,
        700 => PgType::Float4,
        701 => PgType::Float8,
        1042 => match length {
            Some(n) => PgType::Bpchar(n),
            None if given => return "bpchar".into(),
            None => return "character".into(),
        },
        1043 => PgType::Varchar(length),
        1082 => PgType::Date,
        1083 => PgType::Time,
        1114 => PgType::Timestamp,
        1184 => PgType::Timestamptz,
        1186 => PgType::Interval,
        1700 => PgType::Numeric {
            precision: length.map(|l| (l >> 16) as u8),
            scale: length.map(|l| (l & 0xffff) as i8),
        },
        2950 => PgType::Uuid,
        3802 => PgType::Jsonb,
        other => return builtin_type_name(other).unwrap_or_else(|| "???".into()),
    };
    ty.sql_name()
}

/// How an OID alias (`regclass`, ...) prints: the object's name, or `-`
/// for OID 0, which names no object (`typelem` of a type that is no
/// array).
fn named(oid: i32, name: impl Fn(i32) -> String) -> String {
    match oid {
        0 => "-".to_string(),
        oid => name(oid),
    }
}

/// How `regtype` prints a type's OID: its SQL name, or the number for an
/// OID of no type ciab knows.
fn regtype_name(oid: i32) -> String {
    match format_type(i64::from(oid), None) {
        unknown if unknown == "???" => oid.to_string(),
        name => name,
    }
}

/// The OID of a built-in type named as SQL names it (`integer`,
/// `pg_catalog.int4`, `text[]`), from PostgreSQL's own `pg_type` rows.
fn builtin_type_oid(name: &str) -> Option<i32> {
    use datafusion::arrow::array::AsArray;
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    let (base, array) = match name.strip_suffix("[]") {
        Some(base) => (base.trim(), true),
        None => (name, false),
    };
    let base = match base {
        "integer" | "int" => "int4",
        "smallint" => "int2",
        "bigint" => "int8",
        "real" => "float4",
        "double precision" => "float8",
        "boolean" => "bool",
        "character varying" => "varchar",
        "character" => "bpchar",
        "decimal" => "numeric",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        other => other,
    };
    let typname = if array {
        format!("_{base}")
    } else {
        base.to_string()
    };
    let tables = crate::pg_catalog::builtin_tables().ok()?;
    for batch in tables.pg_type.data() {
        let oids = batch.column_by_name("oid")?;
        let oids = oids.as_primitive_opt::<datafusion::arrow::datatypes::Int32Type>()?;
        let names = batch.column_by_name("typname")?;
        let names = names.as_string_opt::<i32>()?;
        if let Some(i) = (0..batch.num_rows()).find(|&i| names.value(i) == typname) {
            return Some(oids.value(i));
        }
    }
    None
}

/// The name of a built-in type from PostgreSQL's own `pg_type` rows.
fn builtin_type_name(oid: i64) -> Option<String> {
    use datafusion::arrow::array::AsArray;
    let tables = crate::pg_catalog::builtin_tables().ok()?;
    for batch in tables.pg_type.data() {
        let oids = batch.column_by_name("oid")?;
        let names = batch.column_by_name("typname")?;
        let oids = oids.as_primitive_opt::<datafusion::arrow::datatypes::Int32Type>()?;
        let names = names.as_string_opt::<i32>()?;
        let elements = batch.column_by_name("typelem")?;
        let elements = elements.as_primitive_opt::<datafusion::arrow::datatypes::Int32Type>()?;
        for i in 0..batch.num_rows() {
            if i64::from(oids.value(i)) == oid {
                let name = names.value(i);
                // PostgreSQL prints an array type as its element's name
                // followed by [], and quotes "char".
                return Some(if name.starts_with('_') && elements.value(i) != 0 {
                    format!("{}[]", format_type(i64::from(elements.value(i)), None))
                } else if name == "char" {
                    "\"char\"".into()
                } else {
                    name.to_string()
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_regtype_finds_built_in_types_by_their_sql_names() {
        assert_eq!(builtin_type_oid("integer"), Some(23));
        assert_eq!(builtin_type_oid("pg_catalog.int4"), Some(23));
        assert_eq!(builtin_type_oid("text[]"), Some(1009));
        assert_eq!(builtin_type_oid("timestamp with time zone"), Some(1184));
        assert_eq!(builtin_type_oid("hstore"), None);
    }

    #[test]
    fn format_type_matches_postgresql() {
        assert_eq!(format_type(23, Some(-1)), "integer");
        assert_eq!(format_type(1043, Some(14)), "character varying(10)");
        assert_eq!(format_type(1043, Some(-1)), "character varying");
        assert_eq!(format_type(1042, Some(9)), "character(5)");
        assert_eq!(format_type(1700, Some((10 << 16) + 4)), "numeric(10,0)");
        assert_eq!(
            format_type(1700, Some(((12 << 16) | 2) + 4)),
            "numeric(12,2)"
        );
        assert_eq!(format_type(1700, Some(-1)), "numeric");
        assert_eq!(format_type(19, Some(-1)), "name");
        assert_eq!(format_type(1007, Some(-1)), "integer[]");
        assert_eq!(format_type(1_000_000, Some(-1)), "???");
        // Only bpchar tells a modifier of -1 from none at all.
        assert_eq!(format_type(1042, Some(-1)), "bpchar");
        assert_eq!(format_type(1042, None), "character");
        assert_eq!(format_type(1014, Some(-1)), "bpchar[]");
        assert_eq!(format_type(1014, None), "character[]");
        assert_eq!(format_type(1014, Some(9)), "character(5)[]");
        assert_eq!(format_type(1043, None), "character varying");
    }
}
