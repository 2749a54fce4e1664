//! The planner's one error type, and the one place where failures become
//! PostgreSQL SQLSTATEs.

use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error as a PostgreSQL client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub sqlstate: &'static str,
    pub message: String,
    pub detail: Option<String>,
    /// 1-based character position in the statement, for syntax errors.
    pub position: Option<usize>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.sqlstate)
    }
}

impl std::error::Error for Error {}

pub mod sqlstate {
    pub const SYNTAX_ERROR: &str = "42601";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const DUPLICATE_SCHEMA: &str = "42P06";
    pub const INVALID_SCHEMA_NAME: &str = "3F000";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const GROUPING_ERROR: &str = "42803";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const DUPLICATE_ALIAS: &str = "42712";
    pub const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
    pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const INVALID_BINARY_REPRESENTATION: &str = "22P03";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const STRING_DATA_RIGHT_TRUNCATION: &str = "22001";
    pub const INVALID_DATETIME_FORMAT: &str = "22007";
    pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
    pub const DATA_EXCEPTION: &str = "22000";
    pub const NULL_VALUE_NOT_ALLOWED: &str = "22004";
    pub const CARDINALITY_VIOLATION: &str = "21000";
    pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
    pub const ACTIVE_SQL_TRANSACTION: &str = "25001";
    pub const NO_ACTIVE_SQL_TRANSACTION: &str = "25P01";
    pub const DUPLICATE_CURSOR: &str = "42P03";
    pub const INVALID_CURSOR_NAME: &str = "34000";
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
    pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
    pub const UNDEFINED_SAVEPOINT: &str = "3B001";
    pub const WRONG_OBJECT_TYPE: &str = "42809";
    pub const INVALID_COLUMN_REFERENCE: &str = "42P10";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const CANT_CHANGE_RUNTIME_PARAM: &str = "55P02";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const INVALID_CATALOG_NAME: &str = "3D000";
    pub const DISK_FULL: &str = "53100";
    pub const OUT_OF_MEMORY: &str = "53200";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const QUERY_CANCELED: &str = "57014";
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
    pub const INTERNAL_ERROR: &str = "XX000";
    /// Stored bytes failed their checksum: never returned as rows.
    pub const DATA_CORRUPTED: &str = "XX001";
    /// A file or object a statement names is not there.
    pub const UNDEFINED_FILE: &str = "58P01";
    /// Reading or writing a file or an object store failed.
    pub const IO_ERROR: &str = "58030";
    /// No leader or no majority: the cluster cannot serve this now.
    pub const CANNOT_CONNECT_NOW: &str = "57P03";
    /// A write whose commit was not confirmed: it may or may not be there.
    pub const STATEMENT_COMPLETION_UNKNOWN: &str = "40003";
}

impl Error {
    pub fn new(sqlstate: &'static str, message: impl Into<String>) -> Self {
        Error {
            sqlstate,
            message: message.into(),
            detail: None,
            position: None,
        }
    }

    pub fn unsupported(what: impl std::fmt::Display) -> Self {
        Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("{what} is not supported"),
        )
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Whether running the statement again on a fresh snapshot may succeed.
    pub fn is_retryable(&self) -> bool {
        self.sqlstate == sqlstate::SERIALIZATION_FAILURE
    }

    /// Whether the statement that failed so surely did nothing: its write,
    /// if it made one, was refused rather than lost in the cluster, and it
    /// was not cancelled.
    pub fn did_nothing(&self) -> bool {
        !matches!(
            self.sqlstate,
            sqlstate::STATEMENT_COMPLETION_UNKNOWN
                | sqlstate::CANNOT_CONNECT_NOW
                | sqlstate::QUERY_CANCELED
        )
    }
}

impl From<ciab_storage::Error> for Error {
    fn from(e: ciab_storage::Error) -> Self {
        match e {
            ciab_storage::Error::Rejected(r) => Error {
                sqlstate: r.kind.sqlstate(),
                message: r.message,
                detail: r.detail,
                position: None,
            },
            ciab_storage::Error::Unavailable(m) => Error::new(
                sqlstate::CANNOT_CONNECT_NOW,
                format!("{m}; nothing was done, try again or connect to another node"),
            ),
            ciab_storage::Error::OutcomeUnknown(m) => {
                Error::new(sqlstate::STATEMENT_COMPLETION_UNKNOWN, m)
            }
            ciab_storage::Error::DiskFull(m) => Error::new(sqlstate::DISK_FULL, m),
            ciab_storage::Error::TooLarge(m) => Error::new(sqlstate::PROGRAM_LIMIT_EXCEEDED, m),
            ciab_storage::Error::Corrupt { .. } => {
                Error::new(sqlstate::DATA_CORRUPTED, e.to_string())
            }
            ciab_storage::Error::Io { ref source, .. }
                if source.kind() == std::io::ErrorKind::StorageFull =>
            {
                Error::new(sqlstate::DISK_FULL, e.to_string())
            }
            other => Error::new(sqlstate::INTERNAL_ERROR, other.to_string()),
        }
    }
}

impl From<ciab_extensions::Error> for Error {
    fn from(e: ciab_extensions::Error) -> Self {
        Error {
            sqlstate: e.sqlstate,
            message: e.message,
            detail: e.detail,
            position: None,
        }
    }
}

impl From<ArrowError> for Error {
    fn from(e: ArrowError) -> Self {
        arrow_error(&e)
    }
}

/// Arrow's "1000.00 is too large to store in a Decimal128 of precision
/// 5. Max is 999.99" in PostgreSQL's words, which name the precision and
/// scale in a detail.
fn decimal_overflow(m: &str) -> Error {
    let field = m.split_once("of precision ").and_then(|(_, rest)| {
        let (precision, max) = rest.split_once(". Max is ")?;
        let precision: i32 = precision.parse().ok()?;
        let scale = max.split_once('.').map_or(0, |(_, places)| places.len()) as i32;
        Some((precision, scale))
    });
    match field {
        Some((precision, scale)) => {
            ciab_extensions::text_input::numeric_field_overflow(precision, scale).into()
        }
        None => Error::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            "numeric field overflow",
        )
        .with_detail(m.to_string()),
    }
}

/// Arrow's numeric types by PostgreSQL's names, the integers first.
const NUMBER_NAMES: [(&str, &str); 5] = [
    ("Int16", "smallint"),
    ("Int32", "integer"),
    ("Int64", "bigint"),
    ("Float32", "real"),
    ("Float64", "double precision"),
];

fn arrow_error(e: &ArrowError) -> Error {
    match e {
        ArrowError::DivideByZero => Error::new(sqlstate::DIVISION_BY_ZERO, "division by zero"),
        ArrowError::CastError(m) | ArrowError::ParseError(m) => {
            let numbers = NUMBER_NAMES;
            // "Cannot cast string 'x' to value of Int32 type": PostgreSQL
            // names the type and quotes the text.
            if let Some(rest) = m.strip_prefix("Cannot cast string '")
                && let Some((text, arrow)) = rest.rsplit_once("' to value of ")
                && let Some((_, pg)) = numbers
                    .iter()
                    .find(|(name, _)| arrow.strip_suffix(" type") == Some(*name))
            {
                return Error::new(
                    sqlstate::INVALID_TEXT_REPRESENTATION,
                    format!("invalid input syntax for type {pg}: \"{text}\""),
                );
            }
            // "Can't cast value 40000 to type Int16": PostgreSQL names the
            // integer type.
            let integer = numbers[..3].iter().find(|(arrow, _)| {
                m.starts_with("Can't cast value") && m.contains(&format!("to type {arrow}"))
            });
            if let Some((_, pg)) = integer {
                return Error::new(
                    sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                    format!("{pg} out of range"),
                );
            }
            // Any other value too large for its type is a range error; a
            // string that is not a number is a syntax error.
            let state = if m.contains("overflow")
                || m.contains("too large")
                || m.starts_with("Can't cast value")
            {
                sqlstate::NUMERIC_VALUE_OUT_OF_RANGE
            } else {
                sqlstate::INVALID_TEXT_REPRESENTATION
            };
            Error::new(state, m.clone())
        }
        ArrowError::InvalidArgumentError(m) if m.contains("too large to store") => {
            decimal_overflow(m)
        }
        ArrowError::ArithmeticOverflow(m) => {
            Error::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, m.clone())
        }
        ArrowError::ComputeError(m) if m.contains("Overflow") || m.contains("overflow") => {
            Error::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, integer_overflow(m))
        }
        ArrowError::ExternalError(inner) => {
            if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                df_error(df)
            } else if let Some(ext) = inner.downcast_ref::<ciab_extensions::Error>() {
                ext.clone().into()
            } else {
                Error::new(sqlstate::INTERNAL_ERROR, e.to_string())
            }
        }
        _ => Error::new(sqlstate::INTERNAL_ERROR, e.to_string()),
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        df_error(&e)
    }
}

fn df_error(e: &DataFusionError) -> Error {
    match e {
        DataFusionError::Context(_, inner) => df_error(inner),
        DataFusionError::Diagnostic(_, inner) => df_error(inner),
        DataFusionError::Shared(inner) => df_error(inner),
        // Errors gathered from several places (the branches of a UNION, a
        // GRAPH_TABLE's among them): the first names the SQLSTATE.
        DataFusionError::Collection(all) if let Some(first) = all.first() => df_error(first),
        DataFusionError::ArrowError(a, _) => arrow_error(a),
        DataFusionError::External(inner) => {
            if let Some(ours) = inner.downcast_ref::<Error>() {
                ours.clone()
            } else if let Some(ext) = inner.downcast_ref::<ciab_extensions::Error>() {
                ext.clone().into()
            } else if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                df_error(df)
            } else if let Some(a) = inner.downcast_ref::<ArrowError>() {
                arrow_error(a)
            } else {
                Error::new(sqlstate::INTERNAL_ERROR, inner.to_string())
            }
        }
        DataFusionError::SQL(p, _) => Error::new(sqlstate::SYNTAX_ERROR, p.to_string()),
        // DataFusion decorrelates outer columns in conditions only.
        DataFusionError::NotImplemented(m) if m.contains("OuterReferenceColumn") => Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            "a LATERAL or correlated subquery that uses outer columns outside its WHERE \
             (in its select list or FROM) is not supported",
        ),
        DataFusionError::NotImplemented(m) => {
            Error::new(sqlstate::FEATURE_NOT_SUPPORTED, m.clone())
        }
        DataFusionError::SchemaError(s, _) => match s.as_ref() {
            SchemaError::FieldNotFound { field, .. } => Error::new(
                sqlstate::UNDEFINED_COLUMN,
                format!("column \"{}\" does not exist", field.name()),
            ),
            SchemaError::AmbiguousReference { field } => Error::new(
                sqlstate::AMBIGUOUS_COLUMN,
                format!("column reference \"{}\" is ambiguous", field.name()),
            ),
            SchemaError::DuplicateQualifiedField { name, .. }
            | SchemaError::DuplicateUnqualifiedField { name } => Error::new(
                sqlstate::DUPLICATE_COLUMN,
                format!("column \"{name}\" specified more than once"),
            ),
        },
        DataFusionError::Plan(m) => plan_error(m),
        DataFusionError::Execution(m) => {
            if m.contains("Divide by zero") || m.contains("division by zero") {
                Error::new(sqlstate::DIVISION_BY_ZERO, "division by zero")
            } else if m.contains("overflow") {
                Error::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, m.clone())
            } else {
                Error::new(sqlstate::DATA_EXCEPTION, m.clone())
            }
        }
        DataFusionError::ResourcesExhausted(m) => Error::new(sqlstate::OUT_OF_MEMORY, m.clone()),
        DataFusionError::ObjectStore(e) => object_store_error(e),
        DataFusionError::IoError(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Error::new(sqlstate::UNDEFINED_FILE, e.to_string())
        }
        DataFusionError::IoError(e) => Error::new(sqlstate::IO_ERROR, e.to_string()),
        DataFusionError::ParquetError(e) => Error::new(
            sqlstate::DATA_EXCEPTION,
            format!("not a readable Parquet file: {e}"),
        ),
        other => Error::new(sqlstate::INTERNAL_ERROR, other.to_string()),
    }
}

/// PostgreSQL's words for an integer kernel's overflow (`abs` of the
/// smallest bigint: "Int64Array overflow on abs(-9223372036854775808)").
fn integer_overflow(m: &str) -> String {
    let integer = NUMBER_NAMES[..3]
        .iter()
        .find(|(arrow, _)| m.starts_with(&format!("{arrow}Array overflow")));
    match integer {
        Some((_, pg)) => format!("{pg} out of range"),
        None => m.to_string(),
    }
}

/// Files and objects that are not there are PostgreSQL's missing files;
/// anything else that goes wrong in a store is an I/O error.
fn object_store_error(e: &datafusion::object_store::Error) -> Error {
    use datafusion::object_store::Error as StoreError;
    match e {
        StoreError::NotFound { path, .. } => Error::new(
            sqlstate::UNDEFINED_FILE,
            format!("could not open file \"{path}\": No such file or object"),
        ),
        other => Error::new(sqlstate::IO_ERROR, other.to_string()),
    }
}

fn plan_error(m: &str) -> Error {
    let lower = m.to_ascii_lowercase();
    if lower.contains("table '") && lower.contains("not found") {
        let name = m.split('\'').nth(1).unwrap_or("");
        let name = name.rsplit('.').next().unwrap_or(name);
        Error::new(
            sqlstate::UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        )
    } else if lower.contains("invalid function") || lower.contains("no function matches") {
        Error::new(sqlstate::UNDEFINED_FUNCTION, m.to_string())
    } else if lower.contains("cannot be cast")
        || lower.contains("cannot coerce")
        || lower.contains("there isn't a common type")
        || lower.contains("no coercion")
    {
        Error::new(sqlstate::DATATYPE_MISMATCH, m.to_string())
    } else if lower.contains("unsupported") {
        Error::new(sqlstate::FEATURE_NOT_SUPPORTED, m.to_string())
    } else {
        Error::new(sqlstate::SYNTAX_ERROR, m.to_string())
    }
}

/// DataFusion's own error, for errors that must travel through it.
pub fn to_df(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_overflow_speaks_postgresqls_words() {
        let e = arrow_error(&ArrowError::InvalidArgumentError(
            "100000000000000000000.00 is too large to store in a Decimal128 of precision 8. Max is 999999.99".into(),
        ));
        assert_eq!(e.sqlstate, sqlstate::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(e.message, "numeric field overflow");
        assert_eq!(
            e.detail.as_deref(),
            Some(
                "A field with precision 8, scale 2 must round to an absolute value less than 10^6."
            )
        );
        let whole =
            decimal_overflow("100 is too large to store in a Decimal128 of precision 2. Max is 99");
        assert_eq!(
            whole.detail.as_deref(),
            Some(
                "A field with precision 2, scale 0 must round to an absolute value less than 10^2."
            )
        );
    }
}
