//! PostgreSQL's named arguments (`jsonb_path_query(doc, path, silent =>
//! true)`) made positional, with the defaults of the parameters skipped,
//! before anything else reads the calls. DataFusion resolves names only
//! for fixed signatures and cannot skip a parameter that has a default.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName, Statement,
    TableFactor, Value, VisitMut, VisitorMut,
};

/// One parameter: its name, and its default when it has one.
struct Parameter {
    name: &'static str,
    default: Option<fn() -> Expr>,
}

const fn required(name: &'static str) -> Parameter {
    Parameter {
        name,
        default: None,
    }
}

fn empty_object() -> Expr {
    Expr::value(Value::SingleQuotedString("{}".into()))
}

fn false_() -> Expr {
    Expr::value(Value::Boolean(false))
}

/// `jsonb_path_*(target, path, vars => '{}', silent => false)`.
const JSONB_PATH: &[Parameter] = &[
    required("target"),
    required("path"),
    Parameter {
        name: "vars",
        default: Some(empty_object),
    },
    Parameter {
        name: "silent",
        default: Some(false_),
    },
];

fn parameters(name: &ObjectName) -> Option<&'static [Parameter]> {
    let last = name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    match last.as_str() {
        "jsonb_path_query"
        | "jsonb_path_query_array"
        | "jsonb_path_query_first"
        | "jsonb_path_exists"
        | "jsonb_path_match" => Some(JSONB_PATH),
        _ => None,
    }
}

pub fn rewrite(statement: &mut Statement) {
    let _ = statement.visit(&mut NamedArguments);
}

struct NamedArguments;

impl VisitorMut for NamedArguments {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(Function {
            name,
            args: FunctionArguments::List(list),
            ..
        }) = expr
            && let Some(parameters) = parameters(name)
        {
            make_positional(parameters, &mut list.args);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            args: Some(args),
            ..
        } = factor
            && let Some(parameters) = parameters(name)
        {
            make_positional(parameters, &mut args.args);
        }
        ControlFlow::Continue(())
    }
}

/// Reorders `args` by `parameters`, filling skipped ones with their
/// defaults. Calls it cannot place (an unknown name, a missing required
/// argument) stay as they are, for the planner to refuse.
fn make_positional(parameters: &[Parameter], args: &mut Vec<FunctionArg>) {
    let named = |arg: &FunctionArg| -> Option<String> {
        match arg {
            FunctionArg::Named { name, .. } => Some(name.value.to_ascii_lowercase()),
            FunctionArg::ExprNamed {
                name: Expr::Identifier(name),
                ..
            } => Some(name.value.to_ascii_lowercase()),
            _ => None,
        }
    };
    if !args.iter().any(|a| named(a).is_some()) {
        return;
    }
    let mut placed: Vec<Option<Expr>> = vec![None; parameters.len()];
    for (i, arg) in args.iter().enumerate() {
        let (slot, value) = match (named(arg), arg) {
            (None, FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => (Some(i), e),
            (
                Some(name),
                FunctionArg::Named {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                }
                | FunctionArg::ExprNamed {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                },
            ) => (parameters.iter().position(|p| p.name == name), e),
            _ => return,
        };
        match slot {
            Some(slot) if slot < placed.len() && placed[slot].is_none() => {
                placed[slot] = Some(value.clone());
            }
            _ => return,
        }
    }
    // The last argument given decides how many are passed.
    let count = placed
        .iter()
        .rposition(Option::is_some)
        .map_or(0, |i| i + 1);
    let mut positional = Vec::with_capacity(count);
    for (parameter, value) in parameters.iter().zip(placed).take(count) {
        match value.or_else(|| parameter.default.map(|d| d())) {
            Some(value) => positional.push(FunctionArg::Unnamed(FunctionArgExpr::Expr(value))),
            None => return,
        }
    }
    *args = positional;
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        super::rewrite(&mut statement);
        statement.to_string()
    }

    #[test]
    fn named_arguments_become_positional_with_defaults() {
        assert_eq!(
            rewritten("SELECT jsonb_path_query(d, '$', silent => true) FROM t"),
            "SELECT jsonb_path_query(d, '$', '{}', true) FROM t"
        );
        assert_eq!(
            rewritten("SELECT * FROM jsonb_path_query_array(path => '$.a', target => '{}')"),
            "SELECT * FROM jsonb_path_query_array('{}', '$.a')"
        );
        // What it cannot place is left for the planner to refuse.
        assert_eq!(
            rewritten("SELECT jsonb_path_exists(d, '$', nope => 1)"),
            "SELECT jsonb_path_exists(d, '$', nope => 1)"
        );
    }
}
