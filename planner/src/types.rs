//! PostgreSQL types: from SQL type names to [`PgType`], and the checks and
//! conversions that PostgreSQL applies when a value is stored in a column of
//! that type (length limits, blank padding, uuid and json syntax).

use std::sync::Arc;

use ciab_extensions::json::Kind;
use ciab_storage::{PG_CHAR_LENGTH_METADATA_KEY, PG_TYPE_METADATA_KEY, PgType, TableDef};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, ListArray, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::expr::{BinaryExpr, InList, ScalarFunction};
use datafusion::logical_expr::expr::{Cast, TryCast};
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    ArrayElemTypeDef, CharacterLength, DataType as SqlType, ExactNumberInfo, Ident, ObjectName,
    TimezoneInfo,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner;

use crate::error::{Error, Result, sqlstate};

/// Gives casts PostgreSQL's results. DataFusion carries a field's metadata
/// through a cast to a plain Arrow type, so `uuid_col::text` would keep the
/// `uuid` tag and clients would be told it is a uuid; PostgreSQL says text.
/// And an array cast to text is PostgreSQL's array text (`{1,2}`, an
/// int2vector's `1 2`), not Arrow's `[1, 2]` (`crate::arrays::array_text`);
/// a record's is `(1,"a b")` (`crate::arrays::record_text`).
/// Runs on the plan as SQL planning left it, whose schema is what the wire
/// describes.
pub fn pg_casts(plan: LogicalPlan) -> datafusion::common::Result<LogicalPlan> {
    let plan = text_types(plan)?;
    let untagged = plan.transform_up_with_subqueries(|node| {
        let inputs = node.inputs();
        let schema = match inputs.as_slice() {
            [input] => Arc::clone(input.schema()),
            _ => Arc::clone(node.schema()),
        };
        node.map_expressions(|expr| expr.transform_up(|e| pg_cast(e, &schema)))
    })?;
    if !untagged.transformed {
        return Ok(untagged.data);
    }
    untagged
        .data
        .transform_up_with_subqueries(|node| node.recompute_schema().map(Transformed::yes))
        .map(|t| t.data)
}

fn pg_cast(expr: Expr, schema: &DFSchema) -> datafusion::common::Result<Transformed<Expr>> {
    let tagged = |e: &Expr| {
        e.to_field(schema)
            .is_ok_and(|(_, f)| f.metadata().contains_key(PG_TYPE_METADATA_KEY))
    };
    if let Expr::Cast(Cast { expr, field }) = &expr
        && matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
        && let Ok((_, source)) = expr.to_field(schema)
    {
        match source.data_type() {
            DataType::List(element) => {
                let vector = source
                    .metadata()
                    .get(PG_TYPE_METADATA_KEY)
                    .is_some_and(|tag| tag.ends_with("vector"));
                let text = crate::arrays::array_text(*expr.clone(), element.data_type(), vector)?;
                return Ok(Transformed::yes(text));
            }
            DataType::Struct(fields) => {
                let text = crate::arrays::record_text(*expr.clone(), fields)?;
                return Ok(Transformed::yes(text));
            }
            _ => {}
        }
    }
    // A field with a name is an explicit target: the cast then takes the
    // target's (empty) metadata instead of its input's.
    let target = |field: &FieldRef| Arc::new(Field::new("cast", field.data_type().clone(), true));
    Ok(match expr {
        Expr::Cast(Cast { expr, field }) if field.name().is_empty() && tagged(&expr) => {
            Transformed::yes(Expr::Cast(Cast {
                expr,
                field: target(&field),
            }))
        }
        Expr::TryCast(TryCast { expr, field }) if field.name().is_empty() && tagged(&expr) => {
            Transformed::yes(Expr::TryCast(TryCast {
                expr,
                field: target(&field),
            }))
        }
        other => Transformed::no(other),
    })
}

/// Largest precision an Arrow 128-bit decimal holds.
const NUMERIC_PRECISION_MAX: u64 = 38;

/// The column type a SQL type name declares. `serial` types are reported as
/// their integer type with `true`: the caller gives them a sequence default.
pub fn pg_type(sql: &SqlType) -> Result<(PgType, bool)> {
    let length = |l: &Option<CharacterLength>| match l {
        Some(CharacterLength::IntegerLength { length, .. }) => Ok(Some(*length as u32)),
        Some(CharacterLength::Max) => Err(Error::unsupported("varchar(max)")),
        None => Ok(None),
    };
    let ty = match sql {
        SqlType::SmallInt(_) | SqlType::Int2(_) => PgType::Int2,
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => PgType::Int4,
        SqlType::BigInt(_) | SqlType::Int8(_) => PgType::Int8,
        SqlType::Real | SqlType::Float4 => PgType::Float4,
        SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Float8 => PgType::Float8,
        SqlType::Float(info) => match info {
            ExactNumberInfo::Precision(p) if *p <= 24 => PgType::Float4,
            _ => PgType::Float8,
        },
        SqlType::Numeric(info) | SqlType::Decimal(info) | SqlType::Dec(info) => {
            let (precision, scale) = match info {
                ExactNumberInfo::None => (None, None),
                ExactNumberInfo::Precision(p) => (Some(*p), Some(0)),
                ExactNumberInfo::PrecisionAndScale(p, s) => (Some(*p), Some(*s)),
            };
            if let Some(p) = precision
                && !(1..=NUMERIC_PRECISION_MAX).contains(&p)
            {
                return Err(Error::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("NUMERIC precision {p} must be between 1 and {NUMERIC_PRECISION_MAX}"),
                ));
            }
            if let (Some(p), Some(s)) = (precision, scale)
                && (s < 0 || s as u64 > p)
            {
                return Err(Error::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("NUMERIC scale {s} must be between 0 and precision {p}"),
                ));
            }
            PgType::Numeric {
                precision: precision.map(|p| p as u8),
                scale: scale.map(|s| s as i8),
            }
        }
        SqlType::Text | SqlType::String(None) => PgType::Text,
        SqlType::Varchar(l) | SqlType::CharacterVarying(l) | SqlType::CharVarying(l) => {
            PgType::Varchar(length(l)?)
        }
        SqlType::Char(l) | SqlType::Character(l) => PgType::Bpchar(length(l)?.unwrap_or(1)),
        SqlType::Bool | SqlType::Boolean => PgType::Bool,
        SqlType::Bytea => PgType::Bytea,
        SqlType::Date => PgType::Date,
        SqlType::Time(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => PgType::Time,
        SqlType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
            PgType::Timestamp
        }
        SqlType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => PgType::Timestamptz,
        SqlType::Interval { .. } => PgType::Interval,
        SqlType::Uuid => PgType::Uuid,
        SqlType::JSON => PgType::Json,
        SqlType::JSONB => PgType::Jsonb,
        // Any number of brackets, with or without sizes, is one array type
        // in PostgreSQL.
        SqlType::Array(ArrayElemTypeDef::SquareBracket(element, _)) => match pg_type(element)? {
            (_, true) => {
                return Err(Error::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "array of serial is not implemented",
                ));
            }
            (element, false) => PgType::array_of(element),
        },
        SqlType::Custom(name, modifiers) if named_type(name, modifiers)?.is_some() => {
            named_type(name, modifiers)?.expect("matched")
        }
        SqlType::Custom(name, modifiers) if modifiers.is_empty() => {
            match name.to_string().to_ascii_lowercase().as_str() {
                "serial" | "serial4" => return Ok((PgType::Int4, true)),
                "bigserial" | "serial8" => return Ok((PgType::Int8, true)),
                "smallserial" | "serial2" => return Ok((PgType::Int2, true)),
                "timestamptz" => PgType::Timestamptz,
                "bpchar" => PgType::Bpchar(1),
                "float" => PgType::Float8,
                _ => {
                    return Err(Error::new(
                        sqlstate::UNDEFINED_OBJECT,
                        format!("type \"{name}\" does not exist"),
                    ));
                }
            }
        }
        other => {
            return Err(Error::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("type {other} is not supported"),
            ));
        }
    };
    Ok((ty, false))
}

/// Checks one stored text value; `Some` replaces it with a normalised form.
type Conform = fn(&str, &PgType) -> Result<Option<String>>;

/// Applies PostgreSQL's storage rules to rows already cast to the table's
/// Arrow types: rejects over-long strings, pads `char(n)`, checks and
/// normalises uuid and json text, in arrays of them too.
pub fn conform_rows(def: &TableDef, batch: RecordBatch) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    let mut changed = false;
    for (i, column) in def.columns.iter().enumerate() {
        let conformed = match &column.ty {
            PgType::Array(element) => match conform_of(element) {
                Some(conform) => conform_list(columns[i].as_list::<i32>(), element, conform)?,
                None => None,
            },
            ty => match conform_of(ty) {
                Some(conform) => conform_strings(text_values(&columns[i])?, ty, conform)?
                    .map(|strings| Arc::new(strings) as ArrayRef),
                None => None,
            },
        };
        if let Some(conformed) = conformed {
            columns[i] = conformed;
            changed = true;
        }
    }
    if !changed {
        return Ok(batch);
    }
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

fn conform_of(ty: &PgType) -> Option<Conform> {
    match ty {
        PgType::Varchar(Some(_)) | PgType::Bpchar(_) => Some(conform_chars),
        PgType::Uuid => Some(conform_uuid),
        PgType::Json | PgType::Jsonb => Some(conform_json),
        _ => None,
    }
}

fn text_values(array: &ArrayRef) -> Result<&StringArray> {
    array
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| Error::new(sqlstate::INTERNAL_ERROR, "text column is not Utf8"))
}

/// The strings conformed to `ty`, if any of them changed.
fn conform_strings(
    strings: &StringArray,
    ty: &PgType,
    conform: Conform,
) -> Result<Option<StringArray>> {
    let mut out: Option<Vec<Option<String>>> = None;
    for row in 0..strings.len() {
        if strings.is_null(row) {
            continue;
        }
        if let Some(new) = conform(strings.value(row), ty)? {
            let out = out.get_or_insert_with(|| {
                (0..strings.len())
                    .map(|r| (!strings.is_null(r)).then(|| strings.value(r).to_string()))
                    .collect()
            });
            out[row] = Some(new);
        }
    }
    Ok(out.map(StringArray::from))
}

/// The lists with their items conformed to `element`, if any changed.
fn conform_list(list: &ListArray, element: &PgType, conform: Conform) -> Result<Option<ArrayRef>> {
    let offsets = list.value_offsets();
    let (first, last) = (offsets[0], offsets[list.len()]);
    let items = list.values().slice(first as usize, (last - first) as usize);
    let Some(items) = conform_strings(text_values(&items)?, element, conform)? else {
        return Ok(None);
    };
    let field = match list.data_type() {
        DataType::List(field) => Arc::clone(field),
        other => unreachable!("a list's type is a list: {other}"),
    };
    let offsets = OffsetBuffer::new(offsets.iter().map(|o| o - first).collect());
    let list = ListArray::try_new(field, offsets, Arc::new(items), list.nulls().cloned())?;
    Ok(Some(Arc::new(list)))
}

fn conform_chars(value: &str, ty: &PgType) -> Result<Option<String>> {
    let (limit, name) = match ty {
        PgType::Varchar(Some(n)) => (*n as usize, "character varying"),
        PgType::Bpchar(n) => (*n as usize, "character"),
        _ => return Ok(None),
    };
    // char(n) keeps no trailing blanks: they are padding, which the wire
    // layer adds back (see PG_CHAR_LENGTH_METADATA_KEY).
    let kept = match ty {
        PgType::Bpchar(_) => value.trim_end_matches(' '),
        _ => value,
    };
    // A character is at least a byte: most values are no longer in bytes
    // than the limit, and need no count (which was a tenth of a COPY's
    // parsing).
    if kept.len() > limit && kept.chars().count() > limit {
        // PostgreSQL drops excess trailing spaces rather than failing.
        if kept.trim_end_matches(' ').chars().count() <= limit {
            return Ok(Some(kept.chars().take(limit).collect()));
        }
        return Err(Error::new(
            sqlstate::STRING_DATA_RIGHT_TRUNCATION,
            format!("value too long for type {name}({limit})"),
        ));
    }
    Ok((kept.len() != value.len()).then(|| kept.to_string()))
}

fn conform_uuid(value: &str, _: &PgType) -> Result<Option<String>> {
    let parsed = uuid::Uuid::parse_str(value.trim()).map_err(|_| {
        Error::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type uuid: \"{value}\""),
        )
    })?;
    let canonical = parsed.hyphenated().to_string();
    Ok((canonical != value).then_some(canonical))
}

fn conform_json(value: &str, ty: &PgType) -> Result<Option<String>> {
    if *ty == PgType::Json {
        // json keeps its text exactly as given.
        ciab_extensions::json::validate(value)?;
        return Ok(None);
    }
    let out = ciab_extensions::json::parse(value)?.to_jsonb_text();
    Ok((out != value).then_some(out))
}

/// Plans PostgreSQL's type names where DataFusion's differ or are missing:
/// - json and jsonb as text tagged with their type (a cast to them becomes
///   their input function, see `ciab_extensions::json::rewrite_plan`);
/// - numeric as columns store it (unconstrained, it is tagged, and shown
///   without the trailing zeros of its storage scale);
/// - uuid, varchar(n) and char(n) as tagged text, whose casts
///   [`text_types`] gives PostgreSQL's rules;
/// - `bpchar`, `name`, and names quoted as `pg_catalog` spells its types
///   (`"timestamp"`);
/// - `oid` as [`crate::pg_catalog::OID_TYPE`], then the other OID types
///   of the catalogs (`regclass`, ...) as int4.
#[derive(Debug)]
pub struct PgTypePlanner;

impl TypePlanner for PgTypePlanner {
    fn plan_type_field(&self, sql_type: &SqlType) -> datafusion::common::Result<Option<FieldRef>> {
        // A named field: `pg_casts` leaves casts to it their tag.
        let name = sql_type.to_string().to_lowercase();
        let field = match sql_type {
            SqlType::JSON => Kind::Json.field(&name),
            SqlType::JSONB => Kind::Jsonb.field(&name),
            SqlType::Uuid
            | SqlType::Char(_)
            | SqlType::Character(_)
            | SqlType::Varchar(_)
            | SqlType::CharacterVarying(_)
            | SqlType::CharVarying(_)
            | SqlType::Numeric(_)
            | SqlType::Decimal(_)
            | SqlType::Dec(_) => pg_type(sql_type).map_err(external)?.0.field(&name),
            SqlType::Custom(type_name, modifiers) if is_oid_type(type_name, modifiers) => {
                Field::new(&name, crate::pg_catalog::OID_TYPE, true)
            }
            SqlType::Custom(type_name, modifiers) => {
                match named_type(type_name, modifiers).map_err(external)? {
                    Some(ty) => ty.field(&name),
                    None if matches!(type_name.0.last().and_then(|p| p.as_ident()),
                        Some(i) if i.value == "bpchar") =>
                    {
                        // `bpchar` alone: blank-padded text of any length.
                        Field::new(&name, DataType::Utf8, true).with_metadata(
                            [(PG_TYPE_METADATA_KEY.to_string(), "bpchar".to_string())].into(),
                        )
                    }
                    None => return PgOidTypePlanner.plan_type_field(sql_type),
                }
            }
            other => return PgOidTypePlanner.plan_type_field(other),
        };
        Ok(Some(Arc::new(field)))
    }
}

fn external(e: Error) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(e))
}

/// Whether a custom type name is `oid` (or `pg_catalog.oid`).
fn is_oid_type(name: &ObjectName, modifiers: &[String]) -> bool {
    modifiers.is_empty() && type_ident(name).is_some_and(|i| i.value.eq_ignore_ascii_case("oid"))
}

/// A type name's identifier, alone or qualified by `pg_catalog`.
fn type_ident(name: &ObjectName) -> Option<&Ident> {
    match name.0.as_slice() {
        [t] => t.as_ident(),
        [schema, t] if schema.as_ident().is_some_and(|s| s.value == "pg_catalog") => t.as_ident(),
        _ => None,
    }
}

/// A type that sqlparser leaves as a custom name: `name`, `bpchar(n)`, or a
/// quoted name of `pg_type` (`"timestamp"`, `"numeric"`). `None` for names
/// this does not know, and for `bpchar` alone.
fn named_type(name: &ObjectName, modifiers: &[String]) -> Result<Option<PgType>> {
    let Some(ident) = type_ident(name) else {
        return Ok(None);
    };
    let length = || -> Result<Option<u32>> {
        match modifiers {
            [] => Ok(None),
            [n] => n.parse().map(Some).map_err(|_| {
                Error::new(
                    sqlstate::SYNTAX_ERROR,
                    format!("invalid type modifier \"{n}\""),
                )
            }),
            _ => Err(Error::new(
                sqlstate::SYNTAX_ERROR,
                "too many type modifiers",
            )),
        }
    };
    Ok(match (ident.quote_style, ident.value.as_str()) {
        (None, "name") if modifiers.is_empty() => Some(PgType::Text),
        (None, "bpchar") => length()?.map(PgType::Bpchar),
        (Some(_), spelled) => {
            let text = match modifiers {
                [] => spelled.to_string(),
                _ => format!("{spelled}({})", modifiers.join(",")),
            };
            let reparsed = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&text)
                .and_then(|mut p| p.parse_data_type());
            match reparsed {
                Ok(SqlType::Custom(name, modifiers)) if name.0.len() == 1 => {
                    named_type(&name, &modifiers)?
                }
                Ok(SqlType::Custom(..)) | Err(_) => None,
                // Quoted, a name is matched as PostgreSQL matches it: with
                // pg_type's names exactly ("int4", not "integer" or "INT4").
                Ok(ty) => pg_type(&ty)
                    .ok()
                    .map(|(ty, _)| ty)
                    .filter(|ty| ty.type_name() == spelled),
            }
        }
        _ => None,
    })
}

/// Gives casts to uuid, varchar(n) and char(n) PostgreSQL's rules, as
/// [`TextCast`] calls; compares char(n) values with text literals without
/// the literals' trailing blanks, as PostgreSQL does once it has read the
/// literal as char(n); and counts char(n)'s padding in `octet_length`.
fn text_types(plan: LogicalPlan) -> datafusion::common::Result<LogicalPlan> {
    // What a value's field says of it: char(n), varchar(n) or uuid.
    let rule = |e: &Expr, schema: &DFSchema| {
        e.to_field(schema)
            .ok()
            .and_then(|(_, field)| TextRule::of(&field))
    };
    let bpchar = |e: &Expr, schema: &DFSchema| matches!(rule(e, schema), Some(TextRule::Bpchar(_)));
    let char_length = |e: &Expr, schema: &DFSchema| match rule(e, schema) {
        Some(TextRule::Bpchar(Some(n))) => Some(n as i64),
        _ => None,
    };
    let trimmed = |e: Expr| match e {
        Expr::Literal(ScalarValue::Utf8(Some(text)), metadata) if text.ends_with(' ') => {
            Expr::Literal(
                ScalarValue::Utf8(Some(text.trim_end_matches(' ').to_string())),
                metadata,
            )
        }
        other => other,
    };
    ciab_extensions::with_schemas(ciab_extensions::rewrite_expressions(plan, |e, schema| {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if ciab_extensions::is_comparison(op)
                    && (bpchar(&left, schema) || bpchar(&right, schema)) =>
            {
                Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                    left: Box::new(trimmed(*left)),
                    op,
                    right: Box::new(trimmed(*right)),
                })))
            }
            // char(n)'s octet length counts its padding.
            Expr::ScalarFunction(ScalarFunction { func, mut args })
                if func.name() == "octet_length"
                    && args.len() == 1
                    && let Some(n) = char_length(&args[0], schema) =>
            {
                let arg = args.pop().expect("one argument");
                let padded = datafusion::functions::unicode::rpad()
                    .call(vec![arg, Expr::Literal(ScalarValue::Int64(Some(n)), None)]);
                Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                    func,
                    args: vec![padded],
                })))
            }
            Expr::InList(InList {
                expr,
                list,
                negated,
            }) if bpchar(&expr, schema) => Ok(Transformed::yes(Expr::InList(InList {
                expr,
                list: list.into_iter().map(trimmed).collect(),
                negated,
            }))),
            Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field })
                if TextRule::of(&field).is_some() =>
            {
                let rule = TextRule::of(&field).expect("matched");
                let udf = ScalarUDF::new_from_impl(TextCast {
                    rule,
                    field,
                    signature: Signature::any(1, Volatility::Immutable),
                });
                Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(Arc::new(udf), vec![*expr]),
                )))
            }
            other => Ok(Transformed::no(other)),
        }
    })?)
}

/// What an explicit cast to a checked text type does to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TextRule {
    /// `uuid`: checked, and written in its canonical form.
    Uuid,
    /// `varchar(n)`: cut to n characters; an explicit cast cuts rather than
    /// fails.
    Varchar(usize),
    /// `char(n)`, or `bpchar` of no length: cut to n characters, and kept
    /// without trailing blanks as char(n) columns keep it.
    Bpchar(Option<usize>),
}

impl TextRule {
    fn of(field: &Field) -> Option<TextRule> {
        let length = field
            .metadata()
            .get(PG_CHAR_LENGTH_METADATA_KEY)
            .and_then(|n| n.parse().ok());
        match field
            .metadata()
            .get(PG_TYPE_METADATA_KEY)
            .map(String::as_str)
        {
            Some("uuid") => Some(TextRule::Uuid),
            Some("varchar") => length.map(TextRule::Varchar),
            Some("bpchar") => Some(TextRule::Bpchar(length)),
            _ => None,
        }
    }

    fn apply<'a>(self, text: &'a str) -> Result<std::borrow::Cow<'a, str>> {
        let cut = |text: &'a str, n: usize| match text.char_indices().nth(n) {
            Some((end, _)) => &text[..end],
            None => text,
        };
        Ok(match self {
            TextRule::Uuid => match conform_uuid(text, &PgType::Uuid)? {
                Some(canonical) => canonical.into(),
                None => text.into(),
            },
            TextRule::Varchar(n) => cut(text, n).into(),
            TextRule::Bpchar(n) => {
                let text = n.map_or(text, |n| cut(text, n));
                text.trim_end_matches(' ').into()
            }
        })
    }
}

/// An explicit cast to uuid, varchar(n) or char(n); see [`TextRule`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct TextCast {
    rule: TextRule,
    /// The cast's target: the result's type and tags.
    field: FieldRef,
    signature: Signature,
}

impl ScalarUDFImpl for TextCast {
    fn name(&self) -> &str {
        "__ciab_text_cast"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(
        &self,
        _args: ReturnFieldArgs,
    ) -> datafusion::common::Result<FieldRef> {
        Ok(Arc::clone(&self.field))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let input = args.args[0].to_array(args.number_rows)?;
        let text = datafusion::arrow::compute::cast(&input, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(text.len(), text.value_data().len());
        for value in text.iter() {
            match value {
                Some(v) => out.append_value(self.rule.apply(v).map_err(external)?),
                None => out.append_null(),
            }
        }
        let out: ArrayRef = Arc::new(out.finish());
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(out),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_types_follow_postgres() {
        let v5 = PgType::Varchar(Some(5));
        assert_eq!(conform_chars("abc", &v5).unwrap(), None);
        assert_eq!(
            conform_chars("abcde   ", &v5).unwrap(),
            Some("abcde".into())
        );
        assert_eq!(
            conform_chars("abcdef", &v5).unwrap_err().sqlstate,
            sqlstate::STRING_DATA_RIGHT_TRUNCATION
        );
        // char(n) is kept without its padding.
        assert_eq!(conform_chars("ab", &PgType::Bpchar(4)).unwrap(), None);
        assert_eq!(
            conform_chars("abcd    ", &PgType::Bpchar(4)).unwrap(),
            Some("abcd".into())
        );
        assert!(conform_chars("abcde", &PgType::Bpchar(4)).is_err());
        // The limit counts characters, not bytes.
        assert_eq!(conform_chars("ééééé", &v5).unwrap(), None);
        assert!(conform_chars("éééééé", &v5).is_err());
        assert_eq!(conform_chars("ééééé  ", &v5).unwrap(), Some("ééééé".into()));
    }

    #[test]
    fn explicit_casts_cut_rather_than_fail() {
        let apply = |rule: TextRule, text: &str| rule.apply(text).unwrap().into_owned();
        assert_eq!(apply(TextRule::Varchar(3), "abcdef"), "abc");
        assert_eq!(apply(TextRule::Varchar(3), "ab"), "ab");
        assert_eq!(apply(TextRule::Varchar(2), "été"), "ét");
        assert_eq!(apply(TextRule::Bpchar(Some(4)), "ab cdef"), "ab c");
        assert_eq!(apply(TextRule::Bpchar(Some(4)), "ab  x"), "ab");
        assert_eq!(apply(TextRule::Bpchar(None), "ab   "), "ab");
        assert!(TextRule::Uuid.apply("nope").is_err());
    }

    #[test]
    fn quoted_and_catalog_type_names_are_known() {
        let parse = |sql: &str| {
            Parser::new(&PostgreSqlDialect {})
                .try_with_sql(sql)
                .and_then(|mut p| p.parse_data_type())
                .unwrap()
        };
        let named = |sql: &str| match parse(sql) {
            SqlType::Custom(name, modifiers) => named_type(&name, &modifiers).unwrap(),
            other => panic!("{sql} is not a custom type: {other:?}"),
        };
        assert_eq!(named("\"timestamp\""), Some(PgType::Timestamp));
        assert_eq!(named("pg_catalog.\"int4\""), Some(PgType::Int4));
        assert_eq!(named("bpchar(3)"), Some(PgType::Bpchar(3)));
        assert_eq!(named("\"char\""), None);
        assert_eq!(named("\"integer\""), None);
        assert_eq!(named("\"varchar\"(3)"), Some(PgType::Varchar(Some(3))));
        assert_eq!(named("name"), Some(PgType::Text));
        assert_eq!(named("bpchar"), None);
        assert_eq!(named("\"TIMESTAMP\""), None);
        assert_eq!(named("box"), None);
    }

    #[test]
    fn jsonb_is_normalised_like_postgres() {
        let out = conform_json(r#"{"bb":1,"a":[1,2e1],"c":{"z":null}}"#, &PgType::Jsonb)
            .unwrap()
            .unwrap();
        assert_eq!(out, r#"{"a": [1, 20], "c": {"z": null}, "bb": 1}"#);
        assert_eq!(
            conform_json("{bad", &PgType::Jsonb).unwrap_err().sqlstate,
            sqlstate::INVALID_TEXT_REPRESENTATION
        );
        assert_eq!(
            conform_json(r#"{"b":1, "a":2}"#, &PgType::Json).unwrap(),
            None
        );
    }

    #[test]
    fn uuid_is_canonical() {
        let out = conform_uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", &PgType::Uuid).unwrap();
        assert_eq!(out.as_deref(), Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
        assert!(conform_uuid("nope", &PgType::Uuid).is_err());
    }
}
