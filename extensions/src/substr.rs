//! `substr` (and `substring`) taking every integer type for its positions,
//! as PostgreSQL does. DataFusion's own widens int4 to int8 but not int2, so
//! `substr(s, smallint_column)` failed with 42883, and so did psycopg's
//! `substr(%s, %s)`, whose small Python ints are int2 parameters. The
//! function is DataFusion's; only its signature is wider.
//!
//! sqlparser reads `substr(...)` and `substring(...)` as one expression,
//! which DataFusion hands to its expression planners rather than looking
//! the name up: [`SubstringPlanner`] must come before DataFusion's.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::common::types::{NativeType, logical_int64, logical_string};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, Documentation, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, TypeSignature, TypeSignatureClass, Volatility,
};

/// Plans `substring(s FROM a FOR b)` and `substr(s, a, b)` as [`Substr`].
#[derive(Debug)]
pub struct SubstringPlanner(Arc<ScalarUDF>);

impl Default for SubstringPlanner {
    fn default() -> Self {
        SubstringPlanner(Arc::new(ScalarUDF::new_from_impl(Substr::new())))
    }
}

impl ExprPlanner for SubstringPlanner {
    fn plan_substring(&self, args: Vec<Expr>) -> Result<PlannerResult<Vec<Expr>>> {
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::clone(&self.0), args),
        )))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Substr {
    inner: Arc<ScalarUDF>,
    signature: Signature,
}

impl Substr {
    fn new() -> Self {
        let string = Coercion::new_exact(TypeSignatureClass::Native(logical_string()));
        let int64 = Coercion::new_implicit(
            TypeSignatureClass::Native(logical_int64()),
            vec![TypeSignatureClass::Integer],
            NativeType::Int64,
        );
        Substr {
            inner: datafusion::functions::unicode::substr(),
            signature: Signature::one_of(
                vec![
                    TypeSignature::Coercible(vec![string.clone(), int64.clone()]),
                    TypeSignature::Coercible(vec![string, int64.clone(), int64]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for Substr {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.inner.invoke_with_args(args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}
