//! PostgreSQL types: from SQL type names to [`PgType`], and the checks and
//! conversions that PostgreSQL applies when a value is stored in a column of
//! that type (length limits, blank padding, uuid and json syntax).

use std::sync::Arc;

use ciab_extensions::json::Kind;
use ciab_storage::{PG_TYPE_METADATA_KEY, PgType, TableDef};
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::expr::{Cast, TryCast};
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::sql::sqlparser::ast::{
    CharacterLength, DataType as SqlType, ExactNumberInfo, TimezoneInfo,
};
use datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner;

use crate::error::{Error, Result, sqlstate};

/// Gives casts PostgreSQL's results. DataFusion carries a field's metadata
/// through a cast to a plain Arrow type, so `uuid_col::text` would keep the
/// `uuid` tag and clients would be told it is a uuid; PostgreSQL says text.
/// And an array cast to text is PostgreSQL's array text (`{1,2}`, an
/// int2vector's `1 2`), not Arrow's `[1, 2]` (`crate::arrays::array_text`).
/// Runs on the plan as SQL planning left it, whose schema is what the wire
/// describes.
pub fn pg_casts(plan: LogicalPlan) -> datafusion::common::Result<LogicalPlan> {
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
        && let DataType::List(element) = source.data_type()
    {
        let vector = source
            .metadata()
            .get(PG_TYPE_METADATA_KEY)
            .is_some_and(|tag| tag.ends_with("vector"));
        let text = crate::arrays::array_text(*expr.clone(), element.data_type(), vector)?;
        return Ok(Transformed::yes(text));
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
/// normalises uuid and json text.
pub fn conform_rows(def: &TableDef, batch: RecordBatch) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    let mut changed = false;
    for (i, column) in def.columns.iter().enumerate() {
        let conform: Option<Conform> = match column.ty {
            PgType::Varchar(Some(_)) | PgType::Bpchar(_) => Some(conform_chars),
            PgType::Uuid => Some(conform_uuid),
            PgType::Json | PgType::Jsonb => Some(conform_json),
            _ => None,
        };
        let Some(conform) = conform else { continue };
        let strings = columns[i]
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::new(sqlstate::INTERNAL_ERROR, "text column is not Utf8"))?;
        let mut out: Option<Vec<Option<String>>> = None;
        for row in 0..strings.len() {
            if strings.is_null(row) {
                continue;
            }
            if let Some(new) = conform(strings.value(row), &column.ty)? {
                let out = out.get_or_insert_with(|| {
                    (0..strings.len())
                        .map(|r| (!strings.is_null(r)).then(|| strings.value(r).to_string()))
                        .collect()
                });
                out[row] = Some(new);
            }
        }
        if let Some(out) = out {
            columns[i] = Arc::new(StringArray::from(out)) as ArrayRef;
            changed = true;
        }
    }
    if !changed {
        return Ok(batch);
    }
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

fn conform_chars(value: &str, ty: &PgType) -> Result<Option<String>> {
    let (limit, pad, name) = match ty {
        PgType::Varchar(Some(n)) => (*n as usize, false, "character varying"),
        PgType::Bpchar(n) => (*n as usize, true, "character"),
        _ => return Ok(None),
    };
    let chars = value.chars().count();
    if chars > limit {
        // PostgreSQL drops excess trailing spaces rather than failing.
        let trimmed = value.trim_end_matches(' ');
        if trimmed.chars().count() <= limit {
            let cut: String = value.chars().take(limit).collect();
            return Ok(Some(cut));
        }
        return Err(Error::new(
            sqlstate::STRING_DATA_RIGHT_TRUNCATION,
            format!("value too long for type {name}({limit})"),
        ));
    }
    if pad && chars < limit {
        return Ok(Some(format!("{value}{}", " ".repeat(limit - chars))));
    }
    Ok(None)
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

/// Plans PostgreSQL's type names: json and jsonb as text tagged with their
/// type (a cast to them becomes their input function, see
/// `ciab_extensions::json::rewrite_plan`), then the catalog's oid types.
#[derive(Debug)]
pub struct PgTypePlanner;

impl TypePlanner for PgTypePlanner {
    fn plan_type_field(&self, sql_type: &SqlType) -> datafusion::common::Result<Option<FieldRef>> {
        let kind = match sql_type {
            SqlType::JSON => Kind::Json,
            SqlType::JSONB => Kind::Jsonb,
            other => return PgOidTypePlanner.plan_type_field(other),
        };
        // A named field: `pg_casts` leaves casts to it their tag.
        Ok(Some(Arc::new(
            kind.field(&sql_type.to_string().to_lowercase()),
        )))
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
        assert_eq!(
            conform_chars("ab", &PgType::Bpchar(4)).unwrap(),
            Some("ab  ".into())
        );
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
