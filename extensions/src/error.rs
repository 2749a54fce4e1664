//! The extensions' one error type: a failure with the SQLSTATE PostgreSQL
//! gives for it. It travels through DataFusion as an external error, and
//! the planner's error mapping hands it to the client as it is.

use datafusion::arrow::datatypes::DataType;
use datafusion::error::DataFusionError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub sqlstate: &'static str,
    pub message: String,
    pub detail: Option<String>,
}

pub mod sqlstate {
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const UNTRANSLATABLE_CHARACTER: &str = "22P05";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const STATEMENT_TOO_COMPLEX: &str = "54001";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const DATETIME_VALUE_OUT_OF_RANGE: &str = "22008";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";
    pub const NULL_VALUE_NOT_ALLOWED: &str = "22004";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const UNDEFINED_FILE: &str = "58P01";
    pub const IO_ERROR: &str = "58030";
    pub const ARRAY_SUBSCRIPT_ERROR: &str = "2202E";
    pub const INVALID_ARGUMENT_FOR_WIDTH_BUCKET_FUNCTION: &str = "2201G";
}

impl Error {
    pub fn new(sqlstate: &'static str, message: impl Into<String>) -> Self {
        Error {
            sqlstate,
            message: message.into(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub(crate) fn invalid_parameter(message: impl Into<String>) -> Self {
        Error::new(sqlstate::INVALID_PARAMETER_VALUE, message)
    }

    /// No version of the function takes these argument types (42883).
    pub(crate) fn undefined_function(name: &str, args: &[DataType]) -> Self {
        let types: Vec<String> = args.iter().map(|t| t.to_string()).collect();
        Error::new(
            sqlstate::UNDEFINED_FUNCTION,
            format!("function {name}({}) does not exist", types.join(", ")),
        )
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.sqlstate)
    }
}

impl std::error::Error for Error {}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        DataFusionError::External(Box::new(e))
    }
}
