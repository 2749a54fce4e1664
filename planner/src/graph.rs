//! SQL/PGQ property graphs (SQL:2023 part 16): `CREATE PROPERTY GRAPH`,
//! `ALTER PROPERTY GRAPH`, `DROP PROPERTY GRAPH` and `GRAPH_TABLE`.
//!
//! A property graph is a view of tables as vertices and edges; it holds no
//! data. DataFusion's parser knows none of this syntax, so a statement that
//! uses it is kept as text (see `Session::parse`) and read here when it
//! runs, against the catalog as it is then: a graph created earlier in the
//! same query string is there.
//!
//! `GRAPH_TABLE (g MATCH pattern [WHERE cond] COLUMNS (...))` becomes a
//! derived table of ordinary joins, and the statement around it is then
//! planned as any other, so a pattern combines with the rest of SQL and
//! DataFusion picks the join order:
//!
//! ```text
//!   GRAPH_TABLE (g MATCH (a IS person)-[e IS knows]->(b IS person)
//!                  WHERE a.name = 'x' COLUMNS (b.name))
//!     ──► (SELECT b.name FROM person AS a, knows AS e, person AS b
//!          WHERE e.src = a.id AND e.dst = b.id AND a.name = 'x')
//! ```
//!
//! A variable whose labels (or none) allow several element tables reads
//! each of them that the edges next to it can join: the derived table is
//! a UNION ALL of one such join per choice of tables, each reading a
//! property its table lacks as NULL, as SQL/PGQ reads it:
//!
//! ```text
//!   GRAPH_TABLE (g MATCH (x) COLUMNS (x.name, x.born))
//!     ──► (SELECT x.name, x.born FROM person AS x
//!          UNION ALL
//!          SELECT x.name, x.born FROM (SELECT *, NULL AS born FROM company) AS x)
//! ```
//!
//! A quantified edge (`-[IS knows]->{1,3}`) becomes a derived table of the
//! walks of that many edges (a chain of joins per length up to
//! [`WALK_UNROLLED_EDGES_MAX`] edges, else a `WITH RECURSIVE`), with one row per walk, as
//! SQL/PGQ's default WALK mode matches them; the upper bound is required
//! (an unbounded walk may never end), but where a search prefix keeps k
//! matches for each pair of ends, which walks that reach no vertex more
//! than k times find ([`shortest_walks`]).
//! Each hop reads any of the edge tables the edge's labels allow that lie
//! on a walk between its ends' tables ([`walk_useful`]); where those cross
//! several vertex tables, the walk carries each vertex as text tagged with
//! its table ([`Walk`]). The edge's variable is then the list of a walk's
//! edges, read through aggregates (`sum(e.w)`, `listagg(e.x, ',')`), which
//! the walks fold hop by hop into columns of their own ([`Carried`]).
//!
//! A path mode (TRAIL, ACYCLIC, SIMPLE) makes each walk carry the
//! identities (from the element tables' keys) of the edges or vertices it
//! visited, and stop before it repeats one, so a mode ends every walk and
//! needs no upper bound; the whole path's arrays are checked once more
//! after the joins, since a mode also spans its fixed edges. A search
//! prefix (ANY SHORTEST, SHORTEST k, ...) numbers each pair of first and
//! last vertices' matches by length with a window function and keeps the
//! first ones in QUALIFY, where MATCH's WHERE then applies, since the
//! prefix picks before that WHERE filters:
//!
//! ```text
//!   MATCH ANY SHORTEST (a)-[IS road]->{1,3}(b) WHERE b.x > 0
//!     ──► ... QUALIFY row_number() OVER (PARTITION BY id(a), id(b)
//!                                         ORDER BY walk.length) <= 1
//!                 AND (b.x > 0)
//! ```
//!
//! Where one branch does not hold all of a pair's matches (the branches
//! share their ends' tables), or the prefix is on one of several path
//! patterns (it picks before they join), the pick is a query of its own
//! that gives the kept matches' element identities, and the pattern's
//! rows are joined to it by theirs ([`Expansion::chosen`]).

use std::borrow::Cow;

use ciab_storage::{
    Catalog, ColumnDef, Command, EdgeEnd, EdgeTable, ElementKind, ElementTable, GraphAlterOp,
    GraphDef, GraphLabel, GraphProperty, TableDef, TableRef,
};
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::ast::{
    DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArguments, Ident, ObjectName, OrderByExpr, OrderByOptions, SelectItem, Value, Visit,
    Visitor, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::error::{Error, Result, sqlstate};
use crate::names::{normalize, quoted_relation};
use crate::session::{Output, Parsed, Session, Tag};

/// SQLSTATE invalid_object_definition: a graph definition that cannot be.
const INVALID_OBJECT_DEFINITION: &str = "42P17";
/// How many `GRAPH_TABLE`s one statement may hold (each expansion is one
/// pass over the statement's text).
const GRAPH_TABLES_PER_STATEMENT_MAX: usize = 64;
/// The longest quantified edge: each hop is one more round of recursion.
const QUANTIFIER_HOPS_MAX: u64 = 1_000;
/// The longest quantified edge whose walks are joins, one per hop; longer
/// ones are a recursive query. Each length of walk is its own chain of
/// joins (`{1,4}` joins 1 + 2 + 3 + 4 hops), but DataFusion looks each
/// join's keys up in the edges it probes, where the recursion, planned
/// anew each round without them, reads every edge for each hop. A range
/// of lengths is joined only for walks from (or to) the vertices a
/// condition picks, whose hops are lookups; without one, every hop reads
/// every edge, and the recursion reads them fewer times.
const WALK_UNROLLED_EDGES_MAX: u64 = 4;
/// How many choices of element tables one pattern may expand to: each is
/// one more branch of a UNION ALL.
const BINDINGS_PER_PATTERN_MAX: usize = 64;

/// Whether a statement's tokens hold property graph syntax, from the first
/// token of the statement up to its end: then it is kept as text.
pub(crate) fn is_graph_statement(tokens: &[&Token]) -> bool {
    let word = |i: usize, w: &str| matches!(tokens.get(i), Some(t) if is_word(t, w));
    let ddl = (word(0, "create") || word(0, "drop") || word(0, "alter"))
        && ((word(1, "property") && word(2, "graph"))
            || (word(1, "or") && word(2, "replace") && word(3, "property") && word(4, "graph")));
    ddl || (0..tokens.len()).any(|i| starts_graph_table(tokens, i))
}

/// Whether a `GRAPH_TABLE (` starts at `tokens[i]` (no whitespace tokens):
/// the word and a `(`, where a table may stand, after FROM, JOIN, LATERAL,
/// a comma or a `(`. A table named graph_table is no graph query:
/// `INSERT INTO graph_table (a) ...`, `COPY graph_table (a) FROM STDIN`.
fn starts_graph_table(tokens: &[&Token], i: usize) -> bool {
    let where_a_table_stands = i.checked_sub(1).is_some_and(|p| {
        matches!(tokens[p], Token::Comma | Token::LParen)
            || ["from", "join", "lateral"]
                .iter()
                .any(|w| is_word(tokens[p], w))
    });
    where_a_table_stands
        && is_word(tokens[i], "graph_table")
        && tokens.get(i + 1).is_some_and(|t| **t == Token::LParen)
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// A byte offset in `sql` from a tokenizer location (1-based line and
/// character column).
pub(crate) fn offset(sql: &str, location: Location) -> usize {
    let mut line = 1;
    let mut start = 0;
    if location.line > 1 {
        for (i, c) in sql.char_indices() {
            if c == '\n' {
                line += 1;
                if line == location.line {
                    start = i + 1;
                    break;
                }
            }
        }
    }
    let column = usize::try_from(location.column.saturating_sub(1)).unwrap_or(usize::MAX);
    sql[start..]
        .char_indices()
        .nth(column)
        .map_or(sql.len(), |(i, _)| start + i)
}

fn syntax(e: ParserError) -> Error {
    Error::from(DataFusionError::SQL(Box::new(e), None))
}

fn syntax_error(message: impl Into<String>) -> Error {
    Error::new(sqlstate::SYNTAX_ERROR, message)
}

/// A parser over `sql` in PostgreSQL's dialect.
fn parser(sql: &str) -> Result<Parser<'static>> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .map_err(syntax)
}

/// Consumes the next token if it is the unquoted word `word`.
fn take_word(p: &mut Parser, word: &str) -> bool {
    if is_word(&p.peek_token().token, word) {
        p.next_token();
        true
    } else {
        false
    }
}

fn expect_word(p: &mut Parser, word: &str) -> Result<()> {
    if take_word(p, word) {
        Ok(())
    } else {
        Err(syntax_error(format!(
            "syntax error at or near \"{}\" (expected {})",
            p.peek_token().token,
            word.to_uppercase()
        )))
    }
}

fn expect_end(p: &mut Parser) -> Result<()> {
    while p.consume_token(&Token::SemiColon) {}
    match p.peek_token().token {
        Token::EOF => Ok(()),
        other => Err(syntax_error(format!("syntax error at or near \"{other}\""))),
    }
}

fn identifier(p: &mut Parser) -> Result<String> {
    Ok(normalize(&p.parse_identifier().map_err(syntax)?))
}

fn column_list(p: &mut Parser) -> Result<Vec<String>> {
    p.expect_token(&Token::LParen).map_err(syntax)?;
    let columns = p
        .parse_comma_separated(|p| p.parse_identifier())
        .map_err(syntax)?;
    p.expect_token(&Token::RParen).map_err(syntax)?;
    Ok(columns.iter().map(normalize).collect())
}

// ---------------------------------------------------------------------------
// CREATE / DROP PROPERTY GRAPH

/// A property graph statement, as written.
#[derive(Debug)]
pub(crate) enum GraphDdl {
    Create {
        name: ObjectName,
        or_replace: bool,
        vertices: Vec<ElementSpec>,
        edges: Vec<EdgeSpec>,
    },
    Drop {
        names: Vec<ObjectName>,
        if_exists: bool,
    },
    Alter {
        name: ObjectName,
        if_exists: bool,
        change: AlterSpec,
    },
}

/// What `ALTER PROPERTY GRAPH` changes, as written.
#[derive(Debug)]
pub(crate) enum AlterSpec {
    Add {
        vertices: Vec<ElementSpec>,
        edges: Vec<EdgeSpec>,
    },
    Drop {
        kind: ElementKind,
        aliases: Vec<String>,
        cascade: bool,
    },
    AddLabels {
        kind: ElementKind,
        element: String,
        labels: Vec<LabelSpec>,
    },
    DropLabel {
        kind: ElementKind,
        element: String,
        label: String,
    },
    AddProperties {
        kind: ElementKind,
        element: String,
        label: String,
        properties: Vec<PropertySpec>,
    },
    DropProperties {
        kind: ElementKind,
        element: String,
        label: String,
        names: Vec<String>,
    },
    Rename {
        to: String,
    },
}

#[derive(Debug)]
pub(crate) struct ElementSpec {
    table: ObjectName,
    alias: Option<String>,
    key: Option<Vec<String>>,
    labels: Vec<LabelSpec>,
}

/// A label (`None` for the default one, the element's alias) and its
/// properties.
type LabelSpec = (Option<String>, PropertiesSpec);

/// A label's properties as written.
#[derive(Debug)]
pub(crate) enum PropertiesSpec {
    /// `PROPERTIES [ARE] ALL COLUMNS`, or none given: every column, as the
    /// table has them when queried.
    All,
    /// `PROPERTIES [ARE] ALL COLUMNS EXCEPT (columns)`: the other columns,
    /// as the table has them when the graph is created.
    AllExcept(Vec<String>),
    /// `PROPERTIES (expr [AS name], ...)`; `NO PROPERTIES` lists none.
    Listed(Vec<PropertySpec>),
}

#[derive(Debug)]
pub(crate) struct PropertySpec {
    expr: Expr,
    name: String,
}

#[derive(Debug)]
pub(crate) struct EdgeSpec {
    element: ElementSpec,
    source: EndSpec,
    destination: EndSpec,
}

#[derive(Debug)]
struct EndSpec {
    columns: Option<Vec<String>>,
    vertex: String,
    references: Option<Vec<String>>,
}

/// Reads `CREATE [OR REPLACE] PROPERTY GRAPH`, `ALTER PROPERTY GRAPH`,
/// `DROP PROPERTY GRAPH`, or nothing if the statement is not one (it is
/// then a query with `GRAPH_TABLE`).
pub(crate) fn parse_ddl(sql: &str) -> Result<Option<GraphDdl>> {
    let mut p = parser(sql)?;
    if take_word(&mut p, "alter") {
        expect_word(&mut p, "property")?;
        expect_word(&mut p, "graph")?;
        let if_exists = if_exists(&mut p)?;
        let name = p.parse_object_name(false).map_err(syntax)?;
        let change = alter_spec(&mut p)?;
        expect_end(&mut p)?;
        return Ok(Some(GraphDdl::Alter {
            name,
            if_exists,
            change,
        }));
    }
    if take_word(&mut p, "drop") {
        expect_word(&mut p, "property")?;
        expect_word(&mut p, "graph")?;
        let if_exists = if_exists(&mut p)?;
        let names = p
            .parse_comma_separated(|p| p.parse_object_name(false))
            .map_err(syntax)?;
        // Nothing depends on a graph (a view over GRAPH_TABLE holds its
        // expansion), so CASCADE and RESTRICT drop alike.
        let _ = cascade(&mut p);
        expect_end(&mut p)?;
        return Ok(Some(GraphDdl::Drop { names, if_exists }));
    }
    if !take_word(&mut p, "create") {
        return Ok(None);
    }
    let or_replace = take_word(&mut p, "or") && {
        expect_word(&mut p, "replace")?;
        true
    };
    if !take_word(&mut p, "property") {
        return Ok(None);
    }
    expect_word(&mut p, "graph")?;
    let name = p.parse_object_name(false).map_err(syntax)?;
    let (vertices, edges) = element_tables(&mut p)?;
    expect_end(&mut p)?;
    Ok(Some(GraphDdl::Create {
        name,
        or_replace,
        vertices,
        edges,
    }))
}

/// `[IF EXISTS]`.
fn if_exists(p: &mut Parser) -> Result<bool> {
    if !take_word(p, "if") {
        return Ok(false);
    }
    expect_word(p, "exists")?;
    Ok(true)
}

/// `[CASCADE | RESTRICT]`: whether CASCADE.
fn cascade(p: &mut Parser) -> bool {
    take_word(p, "cascade") || {
        take_word(p, "restrict");
        false
    }
}

/// `[VERTEX TABLES (...)] [EDGE TABLES (...)]`.
fn element_tables(p: &mut Parser) -> Result<(Vec<ElementSpec>, Vec<EdgeSpec>)> {
    let mut vertices = Vec::new();
    let mut edges = Vec::new();
    if take_word(p, "vertex") || take_word(p, "node") {
        expect_word(p, "tables")?;
        p.expect_token(&Token::LParen).map_err(syntax)?;
        loop {
            vertices.push(element_spec(p)?);
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen).map_err(syntax)?;
    }
    if take_word(p, "edge") || take_word(p, "relationship") {
        expect_word(p, "tables")?;
        p.expect_token(&Token::LParen).map_err(syntax)?;
        loop {
            let mut element = element_head(p)?;
            expect_word(p, "source")?;
            let source = end_spec(p)?;
            expect_word(p, "destination")?;
            let destination = end_spec(p)?;
            element.labels = label_specs(p)?;
            edges.push(EdgeSpec {
                element,
                source,
                destination,
            });
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen).map_err(syntax)?;
    }
    Ok((vertices, edges))
}

/// What follows `ALTER PROPERTY GRAPH name`.
fn alter_spec(p: &mut Parser) -> Result<AlterSpec> {
    if take_word(p, "add") {
        let (vertices, edges) = element_tables(p)?;
        if vertices.is_empty() && edges.is_empty() {
            return Err(syntax_error(format!(
                "syntax error at or near \"{}\" (expected VERTEX TABLES or EDGE TABLES)",
                p.peek_token().token
            )));
        }
        return Ok(AlterSpec::Add { vertices, edges });
    }
    if take_word(p, "drop") {
        let kind = element_kind(p, "tables")?;
        let aliases = column_list(p)?;
        let cascade = cascade(p);
        return Ok(AlterSpec::Drop {
            kind,
            aliases,
            cascade,
        });
    }
    if take_word(p, "rename") {
        expect_word(p, "to")?;
        return Ok(AlterSpec::Rename { to: identifier(p)? });
    }
    if take_word(p, "owner") {
        return Err(Error::unsupported("ALTER PROPERTY GRAPH ... OWNER TO"));
    }
    if take_word(p, "set") {
        return Err(Error::unsupported("ALTER PROPERTY GRAPH ... SET SCHEMA"));
    }
    expect_word(p, "alter")?;
    let kind = element_kind(p, "table")?;
    let element = identifier(p)?;
    if is_word(&p.peek_token().token, "add") {
        let mut labels = Vec::new();
        while take_word(p, "add") {
            expect_word(p, "label")?;
            let name = identifier(p)?;
            labels.push((Some(name), properties(p)?));
        }
        return Ok(AlterSpec::AddLabels {
            kind,
            element,
            labels,
        });
    }
    if take_word(p, "drop") {
        expect_word(p, "label")?;
        let label = identifier(p)?;
        // Nothing depends on a label, so CASCADE and RESTRICT drop alike.
        let _ = cascade(p);
        return Ok(AlterSpec::DropLabel {
            kind,
            element,
            label,
        });
    }
    expect_word(p, "alter")?;
    expect_word(p, "label")?;
    let label = identifier(p)?;
    if take_word(p, "add") {
        expect_word(p, "properties")?;
        return Ok(AlterSpec::AddProperties {
            kind,
            element,
            label,
            properties: property_list(p)?,
        });
    }
    expect_word(p, "drop")?;
    expect_word(p, "properties")?;
    let names = column_list(p)?;
    let _ = cascade(p);
    Ok(AlterSpec::DropProperties {
        kind,
        element,
        label,
        names,
    })
}

/// `VERTEX|NODE` or `EDGE|RELATIONSHIP`, then `word` (TABLE or TABLES).
fn element_kind(p: &mut Parser, word: &str) -> Result<ElementKind> {
    let kind = if take_word(p, "vertex") || take_word(p, "node") {
        ElementKind::Vertex
    } else if take_word(p, "edge") || take_word(p, "relationship") {
        ElementKind::Edge
    } else {
        return Err(syntax_error(format!(
            "syntax error at or near \"{}\" (expected VERTEX or EDGE)",
            p.peek_token().token
        )));
    };
    expect_word(p, word)?;
    Ok(kind)
}

/// `table [AS alias] [KEY (columns)]`.
fn element_head(p: &mut Parser) -> Result<ElementSpec> {
    let table = p.parse_object_name(false).map_err(syntax)?;
    let alias = if take_word(p, "as") {
        Some(identifier(p)?)
    } else {
        None
    };
    let key = if take_word(p, "key") {
        Some(column_list(p)?)
    } else {
        None
    };
    Ok(ElementSpec {
        table,
        alias,
        key,
        labels: Vec::new(),
    })
}

fn element_spec(p: &mut Parser) -> Result<ElementSpec> {
    let mut element = element_head(p)?;
    element.labels = label_specs(p)?;
    Ok(element)
}

/// `[KEY (columns) REFERENCES] vertex [(columns)]`.
fn end_spec(p: &mut Parser) -> Result<EndSpec> {
    let columns = if take_word(p, "key") {
        let columns = column_list(p)?;
        expect_word(p, "references")?;
        Some(columns)
    } else {
        None
    };
    let vertex = identifier(p)?;
    let references = if p.peek_token().token == Token::LParen {
        Some(column_list(p)?)
    } else {
        None
    };
    Ok(EndSpec {
        columns,
        vertex,
        references,
    })
}

/// The label and properties clauses: `LABEL l [props]`, `DEFAULT LABEL
/// [props]`, or properties alone for the default label. None at all is the
/// default label with every column.
fn label_specs(p: &mut Parser) -> Result<Vec<LabelSpec>> {
    let mut labels = Vec::new();
    loop {
        if take_word(p, "label") {
            let name = identifier(p)?;
            labels.push((Some(name), properties(p)?));
        } else if take_word(p, "default") {
            expect_word(p, "label")?;
            labels.push((None, properties(p)?));
        } else if labels.is_empty()
            && (is_word(&p.peek_token().token, "properties")
                || is_word(&p.peek_token().token, "no"))
        {
            labels.push((None, properties(p)?));
        } else {
            break;
        }
    }
    if labels.is_empty() {
        labels.push((None, PropertiesSpec::All));
    }
    Ok(labels)
}

/// `PROPERTIES (expr [AS name], ...)`, `PROPERTIES [ARE] ALL COLUMNS
/// [EXCEPT (columns)]`, `NO PROPERTIES`, or nothing (all columns).
fn properties(p: &mut Parser) -> Result<PropertiesSpec> {
    if take_word(p, "no") {
        expect_word(p, "properties")?;
        return Ok(PropertiesSpec::Listed(Vec::new()));
    }
    if !take_word(p, "properties") {
        return Ok(PropertiesSpec::All);
    }
    if take_word(p, "are") || is_word(&p.peek_token().token, "all") {
        expect_word(p, "all")?;
        expect_word(p, "columns")?;
        if take_word(p, "except") {
            return Ok(PropertiesSpec::AllExcept(column_list(p)?));
        }
        return Ok(PropertiesSpec::All);
    }
    property_list(p).map(PropertiesSpec::Listed)
}

/// `(expr [AS name], ...)`.
fn property_list(p: &mut Parser) -> Result<Vec<PropertySpec>> {
    p.expect_token(&Token::LParen).map_err(syntax)?;
    let list = p
        .parse_comma_separated(|p| {
            let expr = p.parse_expr()?;
            let name = if p.parse_keyword(datafusion::sql::sqlparser::keywords::Keyword::AS) {
                Some(normalize(&p.parse_identifier()?))
            } else {
                None
            };
            Ok((expr, name))
        })
        .map_err(syntax)?;
    p.expect_token(&Token::RParen).map_err(syntax)?;
    list.into_iter()
        .map(|(expr, name)| {
            let name = match (name, &expr) {
                (Some(name), _) => name,
                (None, Expr::Identifier(ident)) => normalize(ident),
                (None, Expr::CompoundIdentifier(parts)) => {
                    normalize(parts.last().expect("a compound identifier has parts"))
                }
                (None, other) => {
                    return Err(syntax_error(format!(
                        "property name required for the expression {other} (use AS)"
                    )));
                }
            };
            Ok(PropertySpec { expr, name })
        })
        .collect()
}

impl Session {
    /// A query with `GRAPH_TABLE`, expanded against the pinned catalog and
    /// parsed.
    pub(crate) fn expand_graph_sql(&self, sql: &str) -> Result<datafusion::sql::parser::Statement> {
        let expanded = expand(sql, &self.catalogs.state().catalog, |name| {
            self.table_ref(name)
        })?;
        // `parse`, not `parse_sql`: what is left to expand is an error, not
        // another round.
        let mut statements = self.parse(&expanded)?;
        match (statements.pop(), statements.is_empty()) {
            (Some(Parsed::Sql(statement)), true) => Ok(statement),
            _ => Err(syntax_error(
                "a GRAPH_TABLE statement must be one statement",
            )),
        }
    }

    pub(crate) async fn graph_ddl(&mut self, ddl: GraphDdl) -> Result<Output> {
        match ddl {
            GraphDdl::Drop { names, if_exists } => {
                let mut commands = Vec::new();
                for name in &names {
                    commands.push(Command::DropPropertyGraph {
                        graph: self.table_ref(name)?,
                        if_exists,
                    });
                }
                for command in commands {
                    self.write_catalog(command).await?;
                }
                Ok(Output::Command(Tag::new("DROP PROPERTY GRAPH")))
            }
            GraphDdl::Alter {
                name,
                if_exists,
                change,
            } => {
                let graph = self.table_ref(&name)?;
                let def = match stored_graph(&self.catalogs.state().catalog, &graph) {
                    Ok(def) => def.clone(),
                    Err(_) if if_exists => {
                        return Ok(Output::Command(Tag::new("ALTER PROPERTY GRAPH")));
                    }
                    Err(e) => return Err(e),
                };
                let op = self.graph_alter_op(&graph.name, &def, change).await?;
                self.write_catalog(Command::AlterPropertyGraph { graph, op })
                    .await?;
                Ok(Output::Command(Tag::new("ALTER PROPERTY GRAPH")))
            }
            GraphDdl::Create {
                name,
                or_replace,
                vertices,
                edges,
            } => {
                let graph = self.table_ref(&name)?;
                let mut def = GraphDef {
                    vertices: Vec::new(),
                    edges: Vec::new(),
                };
                self.add_elements(&mut def, &vertices, &edges).await?;
                self.write_catalog(Command::CreatePropertyGraph {
                    graph,
                    def,
                    or_replace,
                })
                .await?;
                Ok(Output::Command(Tag::new("CREATE PROPERTY GRAPH")))
            }
        }
    }

    /// Checks element tables against the tables they name and the graph
    /// `def` so far, and adds them to it in their catalog form.
    async fn add_elements(
        &self,
        def: &mut GraphDef,
        vertices: &[ElementSpec],
        edges: &[EdgeSpec],
    ) -> Result<()> {
        for spec in vertices {
            let element = self.element(spec, def).await?;
            def.vertices.push(element);
        }
        for spec in edges {
            let element = self.element(&spec.element, def).await?;
            let (tref, table) = self.resolve_table(&spec.element.table)?;
            let state = self.catalogs.state();
            let edge = (&tref, &table);
            let source = end(&state.catalog, def, edge, &spec.source, "SOURCE")?;
            let destination = end(&state.catalog, def, edge, &spec.destination, "DESTINATION")?;
            def.edges.push(EdgeTable {
                element,
                source,
                destination,
            });
        }
        Ok(())
    }

    /// An `ALTER PROPERTY GRAPH` change, checked against the graph's
    /// definition `def` and the tables it names, in the form the state
    /// machine applies to the graph as it is then.
    async fn graph_alter_op(
        &self,
        graph: &str,
        def: &GraphDef,
        change: AlterSpec,
    ) -> Result<GraphAlterOp> {
        Ok(match change {
            AlterSpec::Add { vertices, edges } => {
                let mut grown = def.clone();
                self.add_elements(&mut grown, &vertices, &edges).await?;
                GraphAlterOp::AddTables {
                    vertices: grown.vertices.split_off(def.vertices.len()),
                    edges: grown.edges.split_off(def.edges.len()),
                }
            }
            AlterSpec::Drop {
                kind,
                aliases,
                cascade,
            } => GraphAlterOp::DropTables {
                kind,
                aliases,
                cascade,
            },
            AlterSpec::AddLabels {
                kind,
                element,
                labels,
            } => {
                let found = def.element(graph, kind, &element)?;
                let (tref, table) = self.element_table(found)?;
                let labels = self.labels(&tref, &table, &found.alias, &labels).await?;
                GraphAlterOp::AddLabels {
                    kind,
                    element,
                    labels,
                }
            }
            AlterSpec::DropLabel {
                kind,
                element,
                label,
            } => GraphAlterOp::DropLabel {
                kind,
                element,
                label,
            },
            AlterSpec::AddProperties {
                kind,
                element,
                label,
                properties,
            } => {
                let (tref, table) = self.element_table(def.element(graph, kind, &element)?)?;
                GraphAlterOp::AddProperties {
                    properties: self.listed_properties(&tref, &properties).await?,
                    all_columns: column_properties(&table.columns),
                    kind,
                    element,
                    label,
                }
            }
            AlterSpec::DropProperties {
                kind,
                element,
                label,
                names,
            } => {
                let (_, table) = self.element_table(def.element(graph, kind, &element)?)?;
                GraphAlterOp::DropProperties {
                    all_columns: column_properties(&table.columns),
                    kind,
                    element,
                    label,
                    names,
                }
            }
            AlterSpec::Rename { to } => GraphAlterOp::Rename { to },
        })
    }

    /// The table of an element of a graph, in the pinned catalog.
    fn element_table(&self, element: &ElementTable) -> Result<(TableRef, TableDef)> {
        let state = self.catalogs.state();
        let (tref, table) = element_table(&state.catalog, element)?;
        Ok((tref, table.clone()))
    }

    async fn element(&self, spec: &ElementSpec, graph: &GraphDef) -> Result<ElementTable> {
        let (tref, table) = self.resolve_table(&spec.table)?;
        let alias = spec.alias.clone().unwrap_or_else(|| tref.name.clone());
        graph.check_alias_free(&alias)?;
        let key = match &spec.key {
            Some(key) => key.clone(),
            // Without one, edges name the vertex columns they reference
            // (`REFERENCES v (columns)`); nothing else reads an element's key yet.
            None => table
                .primary_key()
                .map_or_else(Vec::new, |k| k.columns.clone()),
        };
        for column in &key {
            has_column(&table, &tref, column)?;
        }
        let labels = self.labels(&tref, &table, &alias, &spec.labels).await?;
        Ok(ElementTable {
            alias,
            table: table.id,
            key,
            labels,
        })
    }

    /// The labels of element table `alias` of `table`, checked against it.
    async fn labels(
        &self,
        tref: &TableRef,
        table: &TableDef,
        alias: &str,
        specs: &[LabelSpec],
    ) -> Result<Vec<GraphLabel>> {
        let mut labels = Vec::new();
        for (name, properties) in specs {
            let name = name.clone().unwrap_or_else(|| alias.to_string());
            if labels.iter().any(|l: &GraphLabel| l.name == name) {
                return Err(Error::new(
                    sqlstate::DUPLICATE_OBJECT,
                    format!("label \"{name}\" given more than once for element table \"{alias}\""),
                ));
            }
            let properties = match properties {
                PropertiesSpec::All => None,
                PropertiesSpec::AllExcept(except) => {
                    for column in except {
                        has_column(table, tref, column)?;
                    }
                    let kept = table.columns.iter().filter(|c| !except.contains(&c.name));
                    Some(column_properties(kept))
                }
                PropertiesSpec::Listed(list) => Some(self.listed_properties(tref, list).await?),
            };
            labels.push(GraphLabel { name, properties });
        }
        Ok(labels)
    }

    /// Listed properties of `table`'s rows, planned once now so that one
    /// that cannot be read fails here rather than in every query.
    async fn listed_properties(
        &self,
        table: &TableRef,
        list: &[PropertySpec],
    ) -> Result<Vec<GraphProperty>> {
        let list: Vec<GraphProperty> = list
            .iter()
            .map(|p| GraphProperty {
                name: p.name.clone(),
                expr: p.expr.to_string(),
            })
            .collect();
        if !list.is_empty() {
            let select = list
                .iter()
                .map(|p| format!("{} AS {}", p.expr, quote(&p.name)))
                .collect::<Vec<_>>()
                .join(", ");
            let probe = format!("SELECT {select} FROM {}", quoted_relation(table));
            let statement = self.parse_sql(&probe)?.pop().expect("one statement");
            self.plan(statement, None).await?;
        }
        Ok(list)
    }
}

/// Columns as the properties of the same names.
fn column_properties<'a>(columns: impl IntoIterator<Item = &'a ColumnDef>) -> Vec<GraphProperty> {
    columns
        .into_iter()
        .map(|c| GraphProperty {
            name: c.name.clone(),
            expr: quote(&c.name),
        })
        .collect()
}

/// The table an element of a graph reads.
fn element_table<'a>(
    catalog: &'a Catalog,
    element: &ElementTable,
) -> Result<(TableRef, &'a TableDef)> {
    catalog.table_by_id(element.table).ok_or_else(|| {
        Error::new(
            sqlstate::UNDEFINED_TABLE,
            format!("table of element \"{}\" does not exist", element.alias),
        )
    })
}

/// The definition of the property graph `graph` in `catalog`.
fn stored_graph<'a>(catalog: &'a Catalog, graph: &TableRef) -> Result<&'a GraphDef> {
    catalog
        .schema(&graph.database, &graph.schema)
        .and_then(|s| s.graphs.get(&graph.name))
        .map(|g| &g.def)
        .ok_or_else(|| {
            Error::new(
                sqlstate::UNDEFINED_TABLE,
                format!("property graph \"{}\" does not exist", graph.name),
            )
        })
}

fn has_column(table: &TableDef, tref: &TableRef, column: &str) -> Result<()> {
    match table.column_index(column) {
        Some(_) => Ok(()),
        None => Err(Error::new(
            sqlstate::UNDEFINED_COLUMN,
            format!(
                "column \"{column}\" of relation \"{}\" does not exist",
                tref.name
            ),
        )),
    }
}

/// One end of an edge table, checked against the graph's vertex tables.
fn end(
    catalog: &Catalog,
    graph: &GraphDef,
    edge: (&TableRef, &TableDef),
    spec: &EndSpec,
    which: &str,
) -> Result<EdgeEnd> {
    let vertex = graph
        .vertices
        .iter()
        .find(|v| v.alias == spec.vertex)
        .ok_or_else(|| {
            Error::new(
                sqlstate::UNDEFINED_OBJECT,
                format!("no vertex table \"{}\" in the graph", spec.vertex),
            )
        })?;
    let Some(columns) = spec.columns.clone() else {
        // Without KEY, the end is the edge table's one foreign key to the
        // vertex table, as SQL/PGQ says.
        let keys: Vec<_> = catalog
            .databases
            .get(&edge.0.database)
            .into_iter()
            .flat_map(|db| &db.foreign_keys)
            .filter(|k| k.table == edge.1.id && k.parent == vertex.table)
            .collect();
        let [key] = keys.as_slice() else {
            return Err(Error::new(
                INVALID_OBJECT_DEFINITION,
                format!(
                    "{which} KEY (columns) REFERENCES is required: edge table \"{}\" has {} foreign keys to vertex table \"{}\", not one",
                    edge.0.name,
                    keys.len(),
                    vertex.alias
                ),
            ));
        };
        return Ok(EdgeEnd {
            vertex: vertex.alias.clone(),
            columns: key.columns.clone(),
            references: key.parent_columns.clone(),
        });
    };
    let references = match &spec.references {
        Some(references) => references.clone(),
        None if vertex.key.is_empty() => {
            return Err(Error::new(
                INVALID_OBJECT_DEFINITION,
                format!(
                    "{which} REFERENCES {} needs its columns: the vertex table has no key",
                    vertex.alias
                ),
            ));
        }
        None => vertex.key.clone(),
    };
    if columns.len() != references.len() {
        return Err(Error::new(
            INVALID_OBJECT_DEFINITION,
            format!(
                "{which} KEY has {} columns but references {} vertex columns",
                columns.len(),
                references.len()
            ),
        ));
    }
    for column in &columns {
        has_column(edge.1, edge.0, column)?;
    }
    let (vref, vdef) = catalog
        .table_by_id(vertex.table)
        .expect("a vertex table of the graph being defined exists");
    for column in &references {
        has_column(vdef, &vref, column)?;
    }
    Ok(EdgeEnd {
        vertex: vertex.alias.clone(),
        columns,
        references,
    })
}

fn quote(name: &str) -> String {
    Ident::with_quote('"', name).to_string()
}

// ---------------------------------------------------------------------------
// GRAPH_TABLE

/// `sql` with every `GRAPH_TABLE (...)` replaced by the derived table that
/// computes it. `resolve` places a graph's name in the search path.
pub(crate) fn expand(
    sql: &str,
    catalog: &Catalog,
    resolve: impl Fn(&ObjectName) -> Result<TableRef>,
) -> Result<String> {
    let mut sql = sql.to_string();
    for _ in 0..GRAPH_TABLES_PER_STATEMENT_MAX {
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, &sql)
            .tokenize_with_location()
            .map_err(|e| syntax_error(e.to_string()))?;
        let Some((start, open, close)) = graph_table_span(&tokens)? else {
            return Ok(sql);
        };
        let inner = split_arrows(&tokens[open + 1..close]);
        let mut p = Parser::new(&PostgreSqlDialect {}).with_tokens_with_locations(inner);
        let query = GraphQuery::parse(&mut p)?;
        let replacement = query.sql(catalog, &resolve)?;
        let from = offset(&sql, tokens[start].span.start);
        let to = offset(&sql, tokens[close].span.end);
        sql.replace_range(from..to, &replacement);
    }
    Err(Error::new(
        sqlstate::PROGRAM_LIMIT_EXCEEDED,
        format!("more than {GRAPH_TABLES_PER_STATEMENT_MAX} GRAPH_TABLEs in one statement"),
    ))
}

/// The tokens with PostgreSQL's user-defined operators that an edge and
/// its quantifier run together into (`]->*`, `]-?`) taken apart.
fn split_arrows(tokens: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let mut split = Vec::with_capacity(tokens.len());
    for t in tokens {
        match &t.token {
            Token::CustomBinaryOperator(op) if op.chars().all(|c| "-<>*+?".contains(c)) => {
                let mut rest = op.as_str();
                while !rest.is_empty() {
                    let (token, len) = match rest.as_bytes() {
                        [b'-', b'>', ..] => (Token::Arrow, 2),
                        [b'-', ..] => (Token::Minus, 1),
                        [b'<', ..] => (Token::Lt, 1),
                        [b'>', ..] => (Token::Gt, 1),
                        [b'*', ..] => (Token::Mul, 1),
                        [b'+', ..] => (Token::Plus, 1),
                        _ => (Token::Question, 1),
                    };
                    split.push(TokenWithSpan::new(token, t.span));
                    rest = &rest[len..];
                }
            }
            _ => split.push(t.clone()),
        }
    }
    split
}

/// The first `GRAPH_TABLE (`: its word, its `(` and the matching `)`.
fn graph_table_span(tokens: &[TokenWithSpan]) -> Result<Option<(usize, usize, usize)>> {
    let solid: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    let kinds: Vec<&Token> = solid.iter().map(|&i| &tokens[i].token).collect();
    let Some(at) = (0..kinds.len()).find(|&i| starts_graph_table(&kinds, i)) else {
        return Ok(None);
    };
    let (start, open) = (solid[at], solid[at + 1]);
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Ok(Some((start, open, i)));
                }
            }
            _ => {}
        }
    }
    Err(syntax_error(
        "syntax error at end of input: GRAPH_TABLE ( has no )",
    ))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Direction {
    /// `-[ ]->`: from the edge's source to its destination.
    Right,
    /// `<-[ ]-`.
    Left,
    /// `-[ ]-`: either way.
    Any,
}

/// A label expression (`IS a | b & !c`, `IS %`): which element tables a
/// vertex or edge pattern may read, by the labels each table has.
#[derive(Debug, Clone)]
enum LabelExpr {
    Label(String),
    /// `%`: any label, so any element table.
    Any,
    Not(Box<LabelExpr>),
    And(Vec<LabelExpr>),
    Or(Vec<LabelExpr>),
}

impl LabelExpr {
    /// Whether an element table with `labels` fits.
    fn matches(&self, labels: &[GraphLabel]) -> bool {
        match self {
            LabelExpr::Label(name) => labels.iter().any(|l| &l.name == name),
            LabelExpr::Any => !labels.is_empty(),
            LabelExpr::Not(e) => !e.matches(labels),
            LabelExpr::And(all) => all.iter().all(|e| e.matches(labels)),
            LabelExpr::Or(any) => any.iter().any(|e| e.matches(labels)),
        }
    }

    /// The label names it mentions.
    fn names(&self) -> Vec<&str> {
        match self {
            LabelExpr::Label(name) => vec![name.as_str()],
            LabelExpr::Any => Vec::new(),
            LabelExpr::Not(e) => e.names(),
            LabelExpr::And(list) | LabelExpr::Or(list) => {
                list.iter().flat_map(LabelExpr::names).collect()
            }
        }
    }
}

/// A vertex variable: every place the pattern names it is the same vertex.
#[derive(Debug, Clone)]
struct VertexVar {
    name: String,
    /// The label expression of each place that gives one; all must hold.
    labels: Vec<LabelExpr>,
    filters: Vec<Expr>,
}

#[derive(Debug, Clone)]
struct EdgeVar {
    name: String,
    named: bool,
    labels: Vec<LabelExpr>,
    filter: Option<Expr>,
    from: usize,
    to: usize,
    direction: Direction,
    /// `{lo,hi}`: a walk of lo to hi edges; no `hi` (`{lo,}`, `*`, `+`)
    /// only where the path's mode bounds it, or where its walks are
    /// `shortest`.
    hops: Option<(u64, Option<u64>)>,
    /// `Some(k)`: its walks are only those the k shortest matches may
    /// take, in a path of WALK mode ([`shortest_walks`]).
    shortest: Option<u64>,
}

impl EdgeVar {
    /// Where its walks are those the k shortest matches may take: `Some((n,
    /// k))` where they tell a vertex's visits apart by the hops so far,
    /// counted up to n, and may reach it k times (more than one match, or
    /// from more than one hop); None where they are SIMPLE (one match from
    /// 0 or 1 hops) or not chosen so at all.
    fn counted(&self) -> Option<(u64, u64)> {
        match (self.shortest, self.hops) {
            (Some(k), Some((lo, _))) if k > 1 || lo > 1 => Some((lo, k)),
            _ => None,
        }
    }
}

/// Which walks a path pattern matches (SQL/PGQ's path modes).
#[derive(Debug, Clone, Copy, PartialEq)]
enum PathMode {
    /// Any walk: edges and vertices may repeat.
    Walk,
    /// No edge twice.
    Trail,
    /// No vertex twice, but the last may be the first (a cycle).
    Simple,
    /// No vertex twice.
    Acyclic,
}

/// Which of a path pattern's matches are kept, for each pair of first and
/// last vertices (SQL/PGQ's search prefixes).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Selector {
    /// `ALL` or none: every match.
    All,
    /// `ANY [k]`: k matches, whichever.
    Any(u64),
    /// `ANY SHORTEST`, `SHORTEST k`: k of the shortest matches.
    Shortest(u64),
    /// `ALL SHORTEST`, `SHORTEST k GROUPS`: every match whose length is
    /// among the k shortest lengths.
    ShortestGroups(u64),
}

/// A vertex or edge variable of a pattern, by index into its vertices or
/// edges.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Variable {
    Vertex(usize),
    Edge(usize),
}

/// The column that carries a variable's identity
/// ([`GraphQuery::derived`]).
fn identity_column(name: &str) -> String {
    format!("__ciab_i_{name}")
}

impl Selector {
    /// The window condition that keeps a match, among those with the same
    /// `ends` (identities of first and last vertices), by its `length`;
    /// None where every match is kept. Among matches of equal length the
    /// pick is any, unless `ties` (the matches' identities) orders them:
    /// a pick that is a query of its own may be run once for each branch
    /// that joins it, and each run must pick the same.
    fn kept(self, ends: &str, length: &str, ties: Option<&str>) -> Option<String> {
        let partition = format!("PARTITION BY {ends}");
        match self {
            Selector::All => None,
            Selector::Any(k) => {
                let order = ties.map(|t| format!(" ORDER BY {t}")).unwrap_or_default();
                Some(format!("row_number() OVER ({partition}{order}) <= {k}"))
            }
            Selector::Shortest(k) => {
                let ties = ties.map(|t| format!(", {t}")).unwrap_or_default();
                Some(format!(
                    "row_number() OVER ({partition} ORDER BY {length}{ties}) <= {k}"
                ))
            }
            Selector::ShortestGroups(k) => Some(format!(
                "dense_rank() OVER ({partition} ORDER BY {length}) <= {k}"
            )),
        }
    }
}

/// The columns a branch gives where the branches' matches are ranked
/// together ([`Expansion::ranked_together`]): the identities of the
/// path's first and last vertices, its length, and whether MATCH's WHERE
/// holds.
const FIRST: &str = "__ciab_first";
const LAST: &str = "__ciab_last";
const LENGTH: &str = "__ciab_length";
const KEPT_WHERE: &str = "__ciab_where";

/// One path pattern of MATCH: its vertices and edges in order, and what
/// its prefix asks of its matches.
#[derive(Debug)]
struct PathPattern {
    /// `p = ...`: the path's variable, read by `path_length(p)`.
    variable: Option<String>,
    /// The vertex it starts at.
    first: usize,
    /// Its edges, by index into the query's, each from the vertex the one
    /// before ended at.
    edges: Vec<usize>,
    mode: PathMode,
    selector: Selector,
}

#[derive(Debug)]
struct GraphQuery {
    graph: ObjectName,
    vertices: Vec<VertexVar>,
    edges: Vec<EdgeVar>,
    paths: Vec<PathPattern>,
    filter: Option<Expr>,
    columns: Vec<SelectItem>,
    /// By edge: the aggregates over a quantified edge's variable that
    /// COLUMNS and WHERE read, which its walks carry.
    groups: Vec<Vec<Carried>>,
}

/// An aggregate over a quantified edge's edges (SQL/PGQ's group
/// variable), which its walks fold hop by hop: the value each hop's edge
/// gives (an expression over the edge's variable) and how the values fold.
#[derive(Debug, Clone, PartialEq)]
struct Carried {
    value: String,
    fold: Fold,
}

/// How a walk folds the values of its edges, as the aggregate of that
/// name over them: NULLs left out but by `List`; no edges give 0 for
/// `Count`, NULL for the others.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fold {
    Count,
    Sum,
    Min,
    Max,
    /// In the path's order, as `array_agg` lists them.
    List,
    /// The count, and the sum, of the values not already in the walk's
    /// `List` fold of the same values, carried at this index: `count(DISTINCT
    /// ...)`, `sum(DISTINCT ...)`.
    CountDistinct(usize),
    SumDistinct(usize),
}

impl Fold {
    /// The fold after the first hop, whose value is `value`.
    fn first(self, value: &str) -> String {
        match self {
            Fold::Count | Fold::CountDistinct(_) => {
                format!("CAST(CASE WHEN {value} IS NULL THEN 0 ELSE 1 END AS BIGINT)")
            }
            // As sum() widens: an integer to BIGINT, a float to DOUBLE.
            Fold::Sum | Fold::SumDistinct(_) => {
                format!("CASE WHEN FALSE THEN CAST(NULL AS BIGINT) ELSE {value} END")
            }
            Fold::Min | Fold::Max => value.to_string(),
            Fold::List => format!("make_array({value})"),
        }
    }

    /// The fold `folded` with `value` added, at the end of the path or
    /// (walked backward) at its start; `fold(k)` reads fold `k` before.
    fn next(
        self,
        folded: &str,
        value: &str,
        backward: bool,
        fold: impl Fn(usize) -> String,
    ) -> String {
        let pick = |better: &str| {
            format!(
                "CASE WHEN {value} IS NULL THEN {folded} \
                 WHEN {folded} IS NULL OR {value} {better} {folded} THEN {value} ELSE {folded} END"
            )
        };
        match self {
            Fold::Count => format!("{folded} + CASE WHEN {value} IS NULL THEN 0 ELSE 1 END"),
            Fold::Sum => format!(
                "CASE WHEN {folded} IS NULL THEN {value} WHEN {value} IS NULL THEN {folded} \
                 ELSE {folded} + {value} END"
            ),
            Fold::Min => pick("<"),
            Fold::Max => pick(">"),
            Fold::CountDistinct(list) => format!(
                "{folded} + CASE WHEN {value} IS NULL OR array_has({list}, {value}) THEN 0 ELSE 1 END",
                list = fold(list)
            ),
            Fold::SumDistinct(list) => format!(
                "CASE WHEN {value} IS NULL OR array_has({list}, {value}) THEN {folded} \
                 WHEN {folded} IS NULL THEN {value} ELSE {folded} + {value} END",
                list = fold(list)
            ),
            Fold::List if backward => format!("array_prepend({value}, {folded})"),
            Fold::List => format!("array_append({folded}, {value})"),
        }
    }

    /// The fold of no edges.
    fn none(self) -> &'static str {
        match self {
            Fold::Count | Fold::CountDistinct(_) => "CAST(0 AS BIGINT)",
            Fold::Sum | Fold::SumDistinct(_) | Fold::Min | Fold::Max | Fold::List => "NULL",
        }
    }
}

/// The aggregates a group variable may be read in, by name.
const GROUP_AGGREGATES: [&str; 8] = [
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "listagg",
    "string_agg",
];

/// What every branch of a pattern's expansion shares.
struct Expansion<'a> {
    catalog: &'a Catalog,
    graph: &'a GraphDef,
    bindings: &'a Bindings,
    selector: Selector,
    /// Whether the search prefix ranks the union of the branches' matches
    /// (each branch then gives the columns it ranks them by, and the
    /// query gives the identities of those it keeps) rather than each
    /// branch its own.
    ranked_together: bool,
    /// Whether each row also gives its elements' identities.
    identities: bool,
    /// The paths (by index) whose search prefix picks in a query of its
    /// own, each with that query, which gives the identities of the
    /// matches it keeps: in a MATCH of several path patterns, those with
    /// a prefix; else the one path, where its matches are ranked together.
    chosen: Vec<(usize, String)>,
    /// Each vertex's conditions, and the rest ([`GraphQuery::vertex_conditions`]).
    filters: Vec<Vec<Expr>>,
    rest: Vec<Expr>,
}

/// One element table for each variable (by index into the graph's
/// vertices and edges): one branch of a pattern's expansion.
struct Binding {
    vertex_of: Vec<usize>,
    edge_of: Vec<usize>,
}

/// How a pattern's variables read element tables.
struct Bindings {
    /// The pattern's rows are the union of each binding's. Where none
    /// fits (`possible` is false) there is one, of the first tables the
    /// labels allow: it has no rows, its columns give the types.
    each: Vec<Binding>,
    possible: bool,
    /// The tables each vertex variable's labels allow, and each edge
    /// variable's: the properties it may read are theirs, NULL where the
    /// table it reads in a branch lacks one.
    vertex_tables: Vec<Vec<usize>>,
    edge_tables: Vec<Vec<usize>>,
    /// For a quantified edge variable, every edge table its walks may take
    /// at each hop, whichever vertex tables it joins (the first stands for
    /// them all in `each`); empty for the others.
    walk_tables: Vec<Vec<usize>>,
}

/// What a `( ... )` or `[ ... ]` holds: variable, labels, condition.
struct Filler {
    name: Option<String>,
    labels: Option<LabelExpr>,
    filter: Option<Expr>,
}

impl GraphQuery {
    /// `g MATCH path [, path ...] [WHERE cond] COLUMNS (items)`.
    fn parse(p: &mut Parser) -> Result<GraphQuery> {
        let graph = p.parse_object_name(false).map_err(syntax)?;
        expect_word(p, "match")?;
        let mut query = GraphQuery {
            graph,
            vertices: Vec::new(),
            edges: Vec::new(),
            paths: Vec::new(),
            filter: None,
            columns: Vec::new(),
            groups: Vec::new(),
        };
        loop {
            query.parse_path(p)?;
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        if take_word(p, "where") {
            query.filter = Some(p.parse_expr().map_err(syntax)?);
        }
        expect_word(p, "columns")?;
        p.expect_token(&Token::LParen).map_err(syntax)?;
        query.columns = p
            .parse_comma_separated(|p| p.parse_select_item())
            .map_err(syntax)?;
        p.expect_token(&Token::RParen).map_err(syntax)?;
        query.fold_group_aggregates()?;
        match p.peek_token().token {
            Token::EOF => Ok(query),
            other => Err(syntax_error(format!(
                "syntax error at or near \"{other}\" in GRAPH_TABLE"
            ))),
        }
    }

    /// `[p =] [search prefix] [path mode] [PATH | PATHS] (v) [-[e]-> (v) ...]`.
    fn parse_path(&mut self, p: &mut Parser) -> Result<()> {
        let variable = match p.peek_token().token {
            Token::Word(_) if p.peek_nth_token(1).token == Token::Eq => {
                let name = normalize(&p.parse_identifier().map_err(syntax)?);
                p.expect_token(&Token::Eq).map_err(syntax)?;
                Some(name)
            }
            _ => None,
        };
        let (selector, mode) = parse_prefix(p)?;
        let first = self.parse_vertex(p)?;
        let mut path = PathPattern {
            variable,
            first,
            edges: Vec::new(),
            mode,
            selector,
        };
        let mut from = first;
        loop {
            let Some((filler, direction)) = parse_edge(p)? else {
                shortest_walks(&path, &mut self.edges)?;
                self.paths.push(path);
                return Ok(());
            };
            let hops = parse_quantifier(p)?;
            let to = self.parse_vertex(p)?;
            let named = filler.name.is_some();
            let name = match filler.name {
                Some(name) => {
                    if self.vertices.iter().any(|v| v.name == name)
                        || self.edges.iter().any(|e| e.name == name)
                    {
                        return Err(Error::unsupported(format!(
                            "the variable \"{name}\" named twice in a pattern, for an edge"
                        )));
                    }
                    name
                }
                None => format!("__ciab_e{}", self.edges.len()),
            };
            path.edges.push(self.edges.len());
            self.edges.push(EdgeVar {
                name,
                named,
                labels: filler.labels.into_iter().collect(),
                filter: filler.filter,
                from,
                to,
                direction,
                hops,
                shortest: None,
            });
            from = to;
        }
    }

    /// `( [var] [IS label [| label ...]] [WHERE cond] )`: the vertex's index.
    fn parse_vertex(&mut self, p: &mut Parser) -> Result<usize> {
        p.expect_token(&Token::LParen).map_err(syntax)?;
        if p.peek_token().token == Token::LParen {
            return Err(Error::unsupported("parenthesized path patterns"));
        }
        let filler = parse_filler(p, &Token::RParen)?;
        let named = filler.name.clone();
        let index = match named.and_then(|n| self.vertices.iter().position(|v| v.name == n)) {
            Some(i) => i,
            None => {
                let name = filler
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("__ciab_v{}", self.vertices.len()));
                if self.edges.iter().any(|e| e.name == name) {
                    return Err(Error::unsupported(format!(
                        "the variable \"{name}\" named twice in a pattern, for an edge"
                    )));
                }
                self.vertices.push(VertexVar {
                    name,
                    labels: Vec::new(),
                    filters: Vec::new(),
                });
                self.vertices.len() - 1
            }
        };
        let vertex = &mut self.vertices[index];
        vertex.labels.extend(filler.labels);
        vertex.filters.extend(filler.filter);
        Ok(index)
    }
}

fn parse_filler(p: &mut Parser, close: &Token) -> Result<Filler> {
    let mut filler = Filler {
        name: None,
        labels: None,
        filter: None,
    };
    if let Token::Word(w) = &p.peek_token().token
        && !(w.quote_style.is_none()
            && (w.value.eq_ignore_ascii_case("is") || w.value.eq_ignore_ascii_case("where")))
    {
        filler.name = Some(identifier(p)?);
    }
    filler.labels = match p.peek_token().token {
        Token::Colon => {
            p.next_token();
            Some(label_expr(p)?)
        }
        // `a:person`: the tokenizer reads `:person` as a parameter.
        Token::Placeholder(s) if s.starts_with(':') => {
            p.next_token();
            let first = LabelExpr::Label(s[1..].to_lowercase());
            Some(label_expr_after(p, first)?)
        }
        _ if take_word(p, "is") => Some(label_expr(p)?),
        _ => None,
    };
    if take_word(p, "where") {
        filler.filter = Some(p.parse_expr().map_err(syntax)?);
    }
    p.expect_token(close).map_err(syntax)?;
    Ok(filler)
}

/// `term [| term ...]`, a term being `factor [& factor ...]` and a factor
/// `!factor`, `%`, a label, or a parenthesized expression: `|` binds
/// loosest, `!` tightest.
fn label_expr(p: &mut Parser) -> Result<LabelExpr> {
    let first = label_factor(p)?;
    label_expr_after(p, first)
}

/// The rest of a label expression whose first factor is `first`.
fn label_expr_after(p: &mut Parser, first: LabelExpr) -> Result<LabelExpr> {
    let mut terms = vec![label_term_after(p, first)?];
    while p.consume_token(&Token::Pipe) {
        let factor = label_factor(p)?;
        terms.push(label_term_after(p, factor)?);
    }
    Ok(match terms.len() {
        1 => terms.remove(0),
        _ => LabelExpr::Or(terms),
    })
}

fn label_term_after(p: &mut Parser, first: LabelExpr) -> Result<LabelExpr> {
    let mut factors = vec![first];
    while p.consume_token(&Token::Ampersand) {
        factors.push(label_factor(p)?);
    }
    Ok(match factors.len() {
        1 => factors.remove(0),
        _ => LabelExpr::And(factors),
    })
}

fn label_factor(p: &mut Parser) -> Result<LabelExpr> {
    if p.consume_token(&Token::ExclamationMark) {
        return Ok(LabelExpr::Not(Box::new(label_factor(p)?)));
    }
    if p.consume_token(&Token::Mod) {
        return Ok(LabelExpr::Any);
    }
    if p.consume_token(&Token::LParen) {
        let inner = label_expr(p)?;
        p.expect_token(&Token::RParen).map_err(syntax)?;
        return Ok(inner);
    }
    Ok(LabelExpr::Label(identifier(p)?))
}

/// An edge pattern, full (`-[e IS l]->`) or abbreviated (`->`), or None
/// where the path ends.
fn parse_edge(p: &mut Parser) -> Result<Option<(Filler, Direction)>> {
    let bare = || Filler {
        name: None,
        labels: None,
        filter: None,
    };
    let edge = match p.peek_token().token {
        Token::Arrow => {
            p.next_token();
            (bare(), Direction::Right)
        }
        Token::TwoWayArrow => {
            p.next_token();
            (bare(), Direction::Any)
        }
        Token::Minus => {
            p.next_token();
            if p.consume_token(&Token::LBracket) {
                let filler = parse_filler(p, &Token::RBracket)?;
                match p.next_token().token {
                    Token::Arrow => (filler, Direction::Right),
                    Token::Minus => (filler, Direction::Any),
                    other => {
                        return Err(syntax_error(format!(
                            "syntax error at or near \"{other}\" (expected -> or - after ])"
                        )));
                    }
                }
            } else {
                (bare(), Direction::Any)
            }
        }
        Token::Lt => {
            p.next_token();
            p.expect_token(&Token::Minus).map_err(syntax)?;
            if p.consume_token(&Token::LBracket) {
                let filler = parse_filler(p, &Token::RBracket)?;
                match p.next_token().token {
                    Token::Minus => (filler, Direction::Left),
                    Token::Arrow => (filler, Direction::Any),
                    other => {
                        return Err(syntax_error(format!(
                            "syntax error at or near \"{other}\" (expected - or -> after ])"
                        )));
                    }
                }
            } else {
                (bare(), Direction::Left)
            }
        }
        Token::Tilde => return Err(Error::unsupported("undirected edges (~[ ]~)")),
        _ => return Ok(None),
    };
    Ok(Some(edge))
}

/// `{n}`, `{n,m}`, `{,m}`, `{n,}`, `?`, `*` or `+` after an edge: its
/// least and most hops, `None` for no most.
fn parse_quantifier(p: &mut Parser) -> Result<Option<(u64, Option<u64>)>> {
    let number = |p: &mut Parser| -> Result<u64> {
        match p.next_token().token {
            Token::Number(n, _) => n
                .parse()
                .map_err(|_| syntax_error(format!("invalid quantifier bound {n}"))),
            other => Err(syntax_error(format!(
                "syntax error at or near \"{other}\" in a quantifier"
            ))),
        }
    };
    let hops = match p.peek_token().token {
        Token::Mul => {
            p.next_token();
            (0, None)
        }
        Token::Plus => {
            p.next_token();
            (1, None)
        }
        Token::Question => {
            p.next_token();
            (0, Some(1))
        }
        Token::LBrace => {
            p.next_token();
            let lo = if p.peek_token().token == Token::Comma {
                0
            } else {
                number(p)?
            };
            let hi = if p.consume_token(&Token::Comma) {
                if p.peek_token().token == Token::RBrace {
                    None
                } else {
                    Some(number(p)?)
                }
            } else {
                Some(lo)
            };
            p.expect_token(&Token::RBrace).map_err(syntax)?;
            (lo, hi)
        }
        _ => return Ok(None),
    };
    if let (lo, Some(hi)) = hops
        && lo > hi
    {
        return Err(syntax_error(format!(
            "a quantifier's lower bound {lo} is above its upper bound {hi}"
        )));
    }
    if hops.1.unwrap_or(hops.0) > QUANTIFIER_HOPS_MAX {
        return Err(Error::new(
            sqlstate::PROGRAM_LIMIT_EXCEEDED,
            format!("a quantifier's upper bound is at most {QUANTIFIER_HOPS_MAX}"),
        ));
    }
    Ok(Some(hops))
}

/// Makes the walks of a WALK-mode path's quantified edges without an
/// upper bound (`->*`, `->+`, `->{n,}`) end, where the path's search
/// prefix keeps k matches for each pair of ends: the k shortest (`ANY
/// SHORTEST`, `SHORTEST k`), those of the k shortest lengths (`ALL
/// SHORTEST`, `SHORTEST k GROUPS`) or any k (`ANY k`, which may as well
/// be the k shortest). A walk of at least n hops that reaches a vertex m
/// times after as many hops (counted up to n) goes round m - 1 cycles,
/// and leaving out 1, 2, ... of them (the shortest first) makes m - 1
/// shorter matches of m - 1 lengths, the rest of the match as it was; so
/// in a match among those kept, m is at most k. Each of those edges walks
/// only so ([`Visits::counted`]; for one match from 0 or 1 hops, SIMPLE,
/// which ends a walk back at its first vertex), and the prefix ranks the
/// matches that makes. Without a prefix, they would never end (0A000).
fn shortest_walks(path: &PathPattern, edges: &mut [EdgeVar]) -> Result<()> {
    if path.mode != PathMode::Walk {
        return Ok(());
    }
    let k = match path.selector {
        Selector::All => None,
        Selector::Any(k) | Selector::Shortest(k) | Selector::ShortestGroups(k) => Some(k),
    };
    for &i in &path.edges {
        let Some((_, None)) = edges[i].hops else {
            continue;
        };
        if k.is_none() {
            return Err(Error::unsupported(
                "a quantifier without an upper bound (*, +, {n,}) in WALK mode without a \
                 search prefix (ANY SHORTEST, SHORTEST k, ...): give the most hops, as in \
                 {1,5}, or a path mode (TRAIL, SIMPLE, ACYCLIC)",
            ));
        }
        edges[i].shortest = k;
    }
    Ok(())
}

/// A path pattern's search prefix and path mode, each `ALL` and `WALK`
/// where not given: `ANY SHORTEST TRAIL`, `SHORTEST 2 GROUPS`, `ACYCLIC
/// PATHS`, ...
fn parse_prefix(p: &mut Parser) -> Result<(Selector, PathMode)> {
    let count = |p: &mut Parser| -> Result<Option<u64>> {
        let Token::Number(n, _) = p.peek_token().token else {
            return Ok(None);
        };
        p.next_token();
        match n.parse::<u64>() {
            Ok(k) if k > 0 => Ok(Some(k)),
            _ => Err(syntax_error(format!(
                "a search prefix counts paths from 1, not {n}"
            ))),
        }
    };
    let mode = |p: &mut Parser| {
        let mode = [
            ("walk", PathMode::Walk),
            ("trail", PathMode::Trail),
            ("simple", PathMode::Simple),
            ("acyclic", PathMode::Acyclic),
        ]
        .into_iter()
        .find_map(|(word, mode)| take_word(p, word).then_some(mode))
        .unwrap_or(PathMode::Walk);
        // `PATH` and `PATHS` only read well.
        let _ = take_word(p, "path") || take_word(p, "paths");
        mode
    };
    let selector = if take_word(p, "all") {
        if take_word(p, "shortest") {
            Selector::ShortestGroups(1)
        } else {
            Selector::All
        }
    } else if take_word(p, "any") {
        if take_word(p, "shortest") {
            Selector::Shortest(1)
        } else {
            Selector::Any(count(p)?.unwrap_or(1))
        }
    } else if take_word(p, "shortest") {
        let k = count(p)?;
        let mode = mode(p);
        let selector = if take_word(p, "group") || take_word(p, "groups") {
            Selector::ShortestGroups(k.unwrap_or(1))
        } else {
            Selector::Shortest(k.ok_or_else(|| {
                syntax_error("SHORTEST needs a count of paths, as in SHORTEST 3, or GROUP")
            })?)
        };
        return Ok((selector, mode));
    } else {
        Selector::All
    };
    Ok((selector, mode(p)))
}

/// An element table as a query reads it: the source of its FROM item and
/// how to name its columns.
struct Source<'a> {
    tref: TableRef,
    def: &'a TableDef,
    /// `None`: every column is a property, the table is read as it is.
    /// Otherwise the properties, read through a derived table that also
    /// carries each column under a hidden name for the joins.
    properties: Option<Vec<Cow<'a, GraphProperty>>>,
    /// Properties the table lacks that another table the variable may
    /// read has: NULL here, as SQL/PGQ reads a property an element lacks,
    /// typed as the other table's property (see [`Source::typed_null`]).
    nulls: Vec<(String, String)>,
}

impl Source<'_> {
    fn new<'a>(catalog: &'a Catalog, element: &'a ElementTable) -> Result<Source<'a>> {
        let (tref, def) = element_table(catalog, element)?;
        // The element's properties are those of all its labels.
        let mut listed: Vec<Cow<GraphProperty>> = Vec::new();
        let mut all_columns = false;
        for label in &element.labels {
            let Some(list) = &label.properties else {
                all_columns = true;
                continue;
            };
            for p in list {
                if !listed.iter().any(|q| q.name == p.name) {
                    listed.push(Cow::Borrowed(p));
                }
            }
        }
        let properties = if !all_columns {
            Some(listed)
        } else if listed.iter().all(|p| def.column_index(&p.name).is_some()) {
            None
        } else {
            // A label with every column beside one that lists others
            // (`LABEL place PROPERTIES (pop / 100 AS size)`).
            let mut all: Vec<Cow<GraphProperty>> = column_properties(&def.columns)
                .into_iter()
                .map(Cow::Owned)
                .collect();
            for p in listed {
                if !all.iter().any(|q| q.name == p.name) {
                    all.push(p);
                }
            }
            Some(all)
        };
        Ok(Source {
            tref,
            def,
            properties,
            nulls: Vec::new(),
        })
    }

    /// The table of `element`, read with a NULL for each property of
    /// `others` (the tables a variable may read) that it lacks.
    fn with_nulls<'a>(
        catalog: &'a Catalog,
        element: &'a ElementTable,
        others: &[&'a ElementTable],
    ) -> Result<Source<'a>> {
        let mut source = Source::new(catalog, element)?;
        let own = source.property_names();
        for other in others {
            let other = Source::new(catalog, other)?;
            for name in other.property_names() {
                if !own.contains(&name) && !source.nulls.iter().any(|(n, _)| *n == name) {
                    let null = other.typed_null(&name);
                    source.nulls.push((name, null));
                }
            }
        }
        Ok(source)
    }

    /// A NULL of property `name`'s type here. An untyped NULL would do
    /// where tables' rows meet in a UNION, but not in the first part of a
    /// recursive query (which fixes its columns' types before the UNION's
    /// are worked out), where a walk's fold may read it.
    fn typed_null(&self, name: &str) -> String {
        // A property that is a column reads as it, quoted or not.
        let column = |expr: &str| {
            let columns = &self.def.columns;
            (columns.iter().find(|c| c.name == expr))
                .or_else(|| columns.iter().find(|c| quote(&c.name) == expr))
        };
        let expr = match &self.properties {
            None => None,
            Some(properties) => properties.iter().find(|p| p.name == name).map(|p| &p.expr),
        };
        let typed = match expr {
            None => column(name),
            Some(expr) => column(expr),
        };
        match (typed, expr) {
            (Some(c), _) => format!("CAST(NULL AS {})", c.ty.sql_name()),
            // An expression's type is DataFusion's to work out.
            (None, Some(expr)) => format!(
                "(SELECT {expr} FROM {} WHERE FALSE)",
                quoted_relation(&self.tref)
            ),
            (None, None) => "NULL".to_string(),
        }
    }

    fn property_names(&self) -> Vec<String> {
        match &self.properties {
            None => self.def.columns.iter().map(|c| c.name.clone()).collect(),
            Some(properties) => properties.iter().map(|p| p.name.clone()).collect(),
        }
    }

    fn read_as(&self, alias: &str) -> String {
        let relation = quoted_relation(&self.tref);
        let nulls = self
            .nulls
            .iter()
            .map(|(name, null)| format!("{null} AS {}", quote(name)));
        match &self.properties {
            None if self.nulls.is_empty() => format!("{relation} AS {}", quote(alias)),
            None => {
                let select: Vec<String> = std::iter::once("*".to_string()).chain(nulls).collect();
                format!(
                    "(SELECT {} FROM {relation}) AS {}",
                    select.join(", "),
                    quote(alias)
                )
            }
            Some(properties) => {
                let mut select: Vec<String> = properties
                    .iter()
                    .map(|p| format!("{} AS {}", p.expr, quote(&p.name)))
                    .chain(nulls)
                    .collect();
                select.extend(
                    self.def
                        .columns
                        .iter()
                        .map(|c| format!("{} AS {}", quote(&c.name), quote(&hidden(&c.name)))),
                );
                format!(
                    "(SELECT {} FROM {relation}) AS {}",
                    select.join(", "),
                    quote(alias)
                )
            }
        }
    }

    /// A column of the table, as `alias` reads it.
    fn column(&self, alias: &str, column: &str) -> String {
        let name = match self.properties {
            None => column.to_string(),
            Some(_) => hidden(column),
        };
        format!("{}.{}", quote(alias), quote(&name))
    }
}

fn hidden(column: &str) -> String {
    format!("__ciab_k_{column}")
}

impl GraphQuery {
    /// The derived table that computes the pattern's rows.
    fn sql(
        &self,
        catalog: &Catalog,
        resolve: &impl Fn(&ObjectName) -> Result<TableRef>,
    ) -> Result<String> {
        let gref = resolve(&self.graph)?;
        let graph = stored_graph(catalog, &gref)?;
        self.check_group_variables()?;
        self.derived(catalog, graph, &gref.name, false)
    }

    /// The pattern's rows; with `identities`, each row also gives the
    /// identity of each of its variables' elements (`__ciab_i_<name>`):
    /// its table's and its key's, a walk's that of each edge in order.
    fn derived(
        &self,
        catalog: &Catalog,
        graph: &GraphDef,
        graph_name: &str,
        identities: bool,
    ) -> Result<String> {
        let bindings = self.bind(graph, graph_name)?;
        // A search prefix picks among the matches before MATCH's WHERE
        // filters them, so that WHERE waits until then. In a MATCH of
        // several path patterns, each with a prefix picks among its own
        // matches, before they join the others': its matches are a query
        // of their own, which the pattern's rows must be one of.
        let (mut selector, mut chosen) = match self.paths.as_slice() {
            [path] => (path.selector, Vec::new()),
            paths => {
                let mut chosen = Vec::new();
                for (i, path) in paths.iter().enumerate() {
                    if path.selector != Selector::All {
                        let own = self.path_query(i)?;
                        chosen.push((i, own.derived(catalog, graph, graph_name, true)?));
                    }
                }
                (Selector::All, chosen)
            }
        };
        // Each branch can rank its own matches where no two branches share
        // a pair of first and last vertex tables, as a pair's matches then
        // all fall in one branch; else the branches' matches are ranked
        // together, after their union: the identities of those kept are a
        // query of their own, which the pattern's rows must be one of.
        let shared_ends = selector != Selector::All && bindings.possible && {
            let path = &self.paths[0];
            let ends = |b: &Binding| (b.vertex_of[path.first], b.vertex_of[path.last(&self.edges)]);
            let each = &bindings.each;
            (1..each.len()).any(|i| each[..i].iter().any(|b| ends(b) == ends(&each[i])))
        };
        if shared_ends && !identities {
            chosen.push((0, self.derived(catalog, graph, graph_name, true)?));
            selector = Selector::All;
        }
        let ranked_together = shared_ends && identities;
        let (filters, rest) = self.vertex_conditions(selector == Selector::All);
        let expansion = Expansion {
            catalog,
            graph,
            bindings: &bindings,
            selector,
            ranked_together,
            identities,
            chosen,
            filters,
            rest,
        };
        let branches = bindings
            .each
            .iter()
            .map(|binding| self.branch(&expansion, binding))
            .collect::<Result<Vec<_>>>()?;
        let matches = branches.join(" UNION ALL ");
        if !ranked_together {
            return Ok(format!("({matches})"));
        }
        let names: Vec<String> = self
            .variables()
            .map(|v| quote(&identity_column(self.name_of(v))))
            .collect();
        let kept = selector
            .kept(&format!("{FIRST}, {LAST}"), LENGTH, Some(&names.join(", ")))
            .expect("a search prefix keeps some matches");
        Ok(format!(
            "(SELECT {} FROM ({matches}) AS __ciab_matches QUALIFY {kept} AND {KEPT_WHERE})",
            names.join(", ")
        ))
    }

    /// The query of one binding's rows.
    fn branch(&self, expansion: &Expansion, binding: &Binding) -> Result<String> {
        let Expansion {
            catalog,
            graph,
            bindings,
            selector,
            ranked_together,
            identities,
            chosen,
            filters,
            rest,
        } = expansion;
        let (vertex_of, edge_of, possible) =
            (&binding.vertex_of, &binding.edge_of, bindings.possible);
        // The one shortest walk from 0 or 1 hops is SIMPLE; others reach
        // a vertex, told apart with the hops so far, at most k times.
        let mode_of: Vec<PathMode> = (0..self.edges.len())
            .map(|i| {
                let path = self.paths.iter().find(|p| p.edges.contains(&i));
                match (self.edges[i].shortest, self.edges[i].counted()) {
                    (Some(_), None) => PathMode::Simple,
                    (Some(_), Some(_)) => PathMode::Acyclic,
                    (None, _) => path.expect("every edge is on a path").mode,
                }
            })
            .collect();
        let vertex_key = |v: usize| ElementKey::of_vertex(graph, vertex_of[v]);
        let edge_key = |i: usize| ElementKey::of_edge(graph, edge_of[i]);
        let edge_sources = self
            .edges
            .iter()
            .zip(edge_of)
            .zip(&bindings.edge_tables)
            .map(|((var, &t), allowed)| {
                // A quantified edge's variable is never read.
                let others: Vec<&ElementTable> = match var.hops {
                    None => allowed.iter().map(|&u| &graph.edges[u].element).collect(),
                    Some(_) => Vec::new(),
                };
                Source::with_nulls(catalog, &graph.edges[t].element, &others)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut from = Vec::new();
        let mut conditions = Vec::new();
        if !possible {
            conditions.push("FALSE".to_string());
        }
        let mut vertex_sources = Vec::new();
        for ((var, &table), allowed) in self
            .vertices
            .iter()
            .zip(vertex_of)
            .zip(&bindings.vertex_tables)
        {
            let others: Vec<&ElementTable> = allowed.iter().map(|&u| &graph.vertices[u]).collect();
            let source = Source::with_nulls(catalog, &graph.vertices[table], &others)?;
            from.push(source.read_as(&var.name));
            vertex_sources.push(source);
        }
        for f in filters.iter().flatten() {
            conditions.push(format!("({f})"));
        }
        for (i, (var, &table)) in self.edges.iter().zip(edge_of).enumerate() {
            let edge = &graph.edges[table];
            let source = &edge_sources[i];
            let (x, y) = (&self.vertices[var.from].name, &self.vertices[var.to].name);
            let (xs, ys) = (&vertex_sources[var.from], &vertex_sources[var.to]);
            let x_table = graph.vertices[vertex_of[var.from]].alias.as_str();
            let y_table = graph.vertices[vertex_of[var.to]].alias.as_str();
            match var.hops {
                // No rows: the FROM item only gives the columns their types.
                None if !possible => from.push(source.read_as(&var.name)),
                // Only the columns of the folds COLUMNS reads, typed.
                Some(_) if !possible && !self.groups[i].is_empty() => {
                    let columns: Vec<String> = self.groups[i]
                        .iter()
                        .enumerate()
                        .map(|(k, carry)| {
                            let none = match carry.fold {
                                Fold::List => "CAST(NULL AS VARCHAR[])",
                                fold => fold.none(),
                            };
                            format!("{none} AS __ciab_a{k}")
                        })
                        .collect();
                    from.push(format!(
                        "(SELECT {} FROM (VALUES (1)) AS __ciab_none WHERE FALSE) AS {}",
                        columns.join(", "),
                        quote(&format!("__ciab_p{i}"))
                    ));
                }
                Some(_) if !possible => {}
                None => {
                    let forward =
                        edge.source.vertex == x_table && edge.destination.vertex == y_table;
                    let backward =
                        edge.source.vertex == y_table && edge.destination.vertex == x_table;
                    let (forward, backward) = match var.direction {
                        Direction::Right => (forward, false),
                        Direction::Left => (false, backward),
                        Direction::Any => (forward, backward),
                    };
                    assert!(
                        forward || backward,
                        "binding chose an edge table that joins its vertices"
                    );
                    let e = &var.name;
                    let (item, ends) = if forward && backward {
                        // Both ways: the edges and, loops left out, their
                        // reverses, so the join stays an equijoin.
                        let ends = |from: &EdgeEnd, to: &EdgeEnd, skip_loops: bool| {
                            let mut select = end_columns(source, e, from, "s");
                            select.extend(end_columns(source, e, to, "d"));
                            let mut sql = format!(
                                "SELECT {}, {}.* FROM {}",
                                select.join(", "),
                                quote(e),
                                source.read_as(e)
                            );
                            if skip_loops {
                                sql.push_str(&format!(
                                    " WHERE NOT ({})",
                                    loop_condition(source, e, edge)
                                ));
                            }
                            sql
                        };
                        let item = format!(
                            "({} UNION ALL {}) AS {}",
                            ends(&edge.source, &edge.destination, false),
                            ends(&edge.destination, &edge.source, true),
                            quote(e)
                        );
                        let hidden_ends = |which: &str| -> Vec<String> {
                            (0..edge.source.columns.len())
                                .map(|k| {
                                    format!("{}.{}", quote(e), quote(&format!("__ciab_{which}{k}")))
                                })
                                .collect()
                        };
                        (item, (hidden_ends("s"), hidden_ends("d")))
                    } else {
                        let columns = |end: &EdgeEnd| -> Vec<String> {
                            end.columns.iter().map(|c| source.column(e, c)).collect()
                        };
                        let (at_x, at_y) = if forward {
                            (columns(&edge.source), columns(&edge.destination))
                        } else {
                            (columns(&edge.destination), columns(&edge.source))
                        };
                        (source.read_as(e), (at_x, at_y))
                    };
                    from.push(item);
                    // The vertex columns each end references, in the
                    // orientation the edge is read.
                    let (x_refs, y_refs) = if forward {
                        (&edge.source.references, &edge.destination.references)
                    } else {
                        (&edge.destination.references, &edge.source.references)
                    };
                    for (column, r) in ends.0.iter().zip(x_refs) {
                        conditions.push(format!("{column} = {}", xs.column(x, r)));
                    }
                    for (column, r) in ends.1.iter().zip(y_refs) {
                        conditions.push(format!("{column} = {}", ys.column(y, r)));
                    }
                    if let Some(f) = &var.filter {
                        conditions.push(format!("({f})"));
                    }
                }
                Some(hops) => {
                    let alias = format!("__ciab_p{i}");
                    // A walk starts where a vertex's own conditions hold,
                    // not from every vertex: at x if it has some, else at
                    // y, walking back.
                    let seed = if !filters[var.from].is_empty() {
                        Some(Seed {
                            name: x,
                            table: vertex_of[var.from],
                            source: xs,
                            filters: &filters[var.from],
                            backward: false,
                        })
                    } else if !filters[var.to].is_empty() {
                        Some(Seed {
                            name: y,
                            table: vertex_of[var.to],
                            source: ys,
                            filters: &filters[var.to],
                            backward: true,
                        })
                    } else {
                        None
                    };
                    let visits = Visits {
                        vertices: matches!(mode_of[i], PathMode::Simple | PathMode::Acyclic),
                        edges: mode_of[i] == PathMode::Trail,
                        mode: mode_of[i],
                        counted: var.counted(),
                        key: *identities
                            || chosen
                                .iter()
                                .any(|(p, _)| self.paths[*p].edges.contains(&i)),
                    };
                    let ends = (vertex_of[var.from], vertex_of[var.to]);
                    let walk = Walk::new(catalog, graph, &bindings.walk_tables[i], ends, &visits)?;
                    from.push(format!(
                        "{} AS {}",
                        walks(var, &walk, ends.0, hops, seed, &visits, &self.groups[i]),
                        quote(&alias)
                    ));
                    let joins = [("s", walk.at(ends.0, xs, x)), ("d", walk.at(ends.1, ys, y))];
                    for (which, values) in joins {
                        for (k, value) in values.iter().enumerate() {
                            conditions.push(format!(
                                "{}.{} = {value}",
                                quote(&alias),
                                quote(&format!("__ciab_{which}{k}")),
                            ));
                        }
                    }
                }
            }
        }
        for f in rest {
            conditions.push(format!("({f})"));
        }
        let vertex_id = |v: usize| -> Result<String> {
            Ok(vertex_key(v)?.id(&vertex_sources[v], &self.vertices[v].name))
        };
        let walk = |i: usize, column: &str| {
            format!("{}.{}", quote(&format!("__ciab_p{i}")), quote(column))
        };
        // An element's identity: its table's and its key's, and a walk's
        // that of each edge in the path's order (its first vertex is the
        // edge's `from`).
        let identity = |variable: Variable| -> Result<String> {
            Ok(match variable {
                Variable::Vertex(v) => vertex_id(v)?,
                Variable::Edge(i) if self.edges[i].hops.is_some() => walk(i, "__ciab_ek"),
                Variable::Edge(i) => edge_key(i)?.id(&edge_sources[i], &self.edges[i].name),
            })
        };
        if possible {
            for (p, matches) in chosen {
                let alias = quote(&format!("__ciab_s{p}"));
                from.push(format!("{matches} AS {alias}"));
                for variable in self.paths[*p].variables(&self.edges) {
                    conditions.push(format!(
                        "{alias}.{} = {}",
                        quote(&identity_column(self.name_of(variable))),
                        identity(variable)?
                    ));
                }
            }
        }
        if possible {
            for path in &self.paths {
                // The path's vertices after its first, and its edges: each
                // walk's own, without the end the path already has.
                let mut vertices = Vec::new();
                let mut edges = Vec::new();
                for &i in &path.edges {
                    let var = &self.edges[i];
                    match (var.hops, path.mode) {
                        (_, PathMode::Walk) => {}
                        (None, PathMode::Trail) => edges.push(format!(
                            "make_array({})",
                            edge_key(i)?.id(&edge_sources[i], &var.name)
                        )),
                        (None, _) => vertices.push(format!("make_array({})", vertex_id(var.to)?)),
                        (Some(_), PathMode::Trail) => edges.push(walk(i, "__ciab_es")),
                        // A walk visits the path's vertex before it once,
                        // first or (found backward) last: the rest are the
                        // path's. (PostgreSQL's array_remove drops every
                        // match; a cycle back to it must stay.)
                        (Some(_), _) => vertices.push(format!(
                            "array_remove_n({}, {}, 1)",
                            walk(i, "__ciab_vs"),
                            vertex_id(var.from)?
                        )),
                    }
                }
                let concat = |mut parts: Vec<String>| match parts.len() {
                    1 => parts.remove(0),
                    _ => format!("array_concat({})", parts.join(", ")),
                };
                match path.mode {
                    PathMode::Walk => {}
                    PathMode::Trail if edges.is_empty() => {}
                    PathMode::Trail => conditions.push(all_distinct(&concat(edges))),
                    PathMode::Acyclic | PathMode::Simple => {
                        let first = vertex_id(path.first)?;
                        vertices.insert(0, format!("make_array({first})"));
                        let all = concat(vertices);
                        conditions.push(if path.mode == PathMode::Acyclic {
                            all_distinct(&all)
                        } else {
                            let last = vertex_id(path.last(&self.edges))?;
                            format!(
                                "({} OR (cardinality(array_distinct({all})) = cardinality({all}) - 1 \
                                 AND {first} = {last}))",
                                all_distinct(&all)
                            )
                        });
                    }
                }
            }
        }
        let mut columns: Vec<String> = self.columns.iter().map(ToString::to_string).collect();
        if columns.is_empty() {
            return Err(syntax_error("COLUMNS needs at least one column"));
        }
        let mut ids = Vec::new();
        if *identities {
            for variable in self.variables() {
                // No rows: no walks to read either.
                let value = match possible {
                    true => identity(variable)?,
                    false => "CAST(NULL AS VARCHAR)".to_string(),
                };
                let name = identity_column(self.name_of(variable));
                columns.push(format!("{value} AS {}", quote(&name)));
                ids.push(value);
            }
        }
        // What a search prefix ranks a match by: its path's first and last
        // vertices (by their keys, which only a prefix needs), and its
        // length.
        let ranking = match (self.paths.as_slice(), possible) {
            ([path], true) if *selector != Selector::All => {
                let length = path
                    .edges
                    .iter()
                    .map(|&i| match self.edges[i].hops {
                        None => "1".to_string(),
                        Some(_) => walk(i, "__ciab_n"),
                    })
                    .chain(std::iter::once("0".to_string()))
                    .collect::<Vec<_>>()
                    .join(" + ");
                let ends = [vertex_id(path.first)?, vertex_id(path.last(&self.edges))?];
                Some((ends, length))
            }
            _ => None,
        };
        let filter = self.filter.as_ref().map(|f| format!("({f})"));
        if let (true, Some(([first, last], length))) = (*ranked_together, &ranking) {
            // MATCH's WHERE is a column here: it filters after the ranking.
            let kept_where = filter.as_deref().unwrap_or("TRUE");
            columns.extend([
                format!("{first} AS {FIRST}"),
                format!("{last} AS {LAST}"),
                format!("{length} AS {LENGTH}"),
                format!("{kept_where} IS TRUE AS {KEPT_WHERE}"),
            ]);
        }
        let mut sql = format!("SELECT {} FROM {}", columns.join(", "), from.join(", "));
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        if let (false, Some(([first, last], length))) = (*ranked_together, &ranking)
            && let Some(kept) = selector.kept(
                &format!("{first}, {last}"),
                length,
                identities.then(|| ids.join(", ")).as_deref(),
            )
        {
            sql.push_str(&format!(" QUALIFY {kept}"));
            if let Some(f) = &filter {
                sql.push_str(&format!(" AND {f}"));
            }
        }
        Ok(sql)
    }

    /// Each vertex's conditions: its own, and (with `match_where`) the
    /// parts of MATCH's WHERE (split at its top-level ANDs) that read that
    /// vertex and no other variable; and the rest of them. A vertex's
    /// conditions are where a quantified edge's walks start (see [`walks`]).
    fn vertex_conditions(&self, match_where: bool) -> (Vec<Vec<Expr>>, Vec<Expr>) {
        // A condition on a walk's fold (`sum(e.w) < 10`) is no vertex's.
        let folds: Vec<String> = (0..self.edges.len())
            .filter(|&i| !self.groups[i].is_empty())
            .map(|i| format!("__ciab_p{i}"))
            .collect();
        let mut names = variable_names(&self.vertices, &self.edges);
        names.extend(folds.iter().map(String::as_str));
        let mut filters: Vec<Vec<Expr>> = self.vertices.iter().map(|v| v.filters.clone()).collect();
        let mut rest = Vec::new();
        let mut conjuncts = Vec::new();
        if let Some(f) = self.filter.as_ref().filter(|_| match_where) {
            split_and(f, &mut conjuncts);
        }
        for c in conjuncts {
            let used = variables_in(&c, &names);
            match used.as_slice() {
                [one] if let Some(v) = self.vertices.iter().position(|v| &v.name == one) => {
                    filters[v].push(c)
                }
                _ => rest.push(c),
            }
        }
        // A vertex's own condition that reads another variable is not
        // where a walk can start.
        for (v, list) in filters.iter_mut().enumerate() {
            let name = self.vertices[v].name.as_str();
            let (own, other): (Vec<Expr>, Vec<Expr>) = list
                .drain(..)
                .partition(|f| variables_in(f, &names).iter().all(|n| n == name));
            *list = own;
            rest.extend(other);
        }
        (filters, rest)
    }

    /// Aggregates over a quantified edge's variable, a list of edges
    /// (SQL/PGQ's group variable), in COLUMNS and MATCH's WHERE: each
    /// becomes a column its walks carry ([`Carried`]), read from the
    /// walks' derived table `__ciab_p<edge>`. An aggregate over anything
    /// else is refused there: it would aggregate the pattern's rows.
    fn fold_group_aggregates(&mut self) -> Result<()> {
        self.check_path_variables()?;
        self.groups = vec![Vec::new(); self.edges.len()];
        let groups: Vec<(usize, &str)> = self
            .edges
            .iter()
            .enumerate()
            .filter(|(_, e)| e.hops.is_some() && e.named)
            .map(|(i, e)| (i, e.name.as_str()))
            .collect();
        let variables = variable_names(&self.vertices, &self.edges);
        let (paths, edges) = (&self.paths, &self.edges);
        let carried = &mut self.groups;
        let mut fold = |expr: &mut Expr| {
            let folded = match path_length(expr, paths, edges, carried) {
                Ok(None) => group_aggregate(expr, &groups, &variables, carried),
                other => other,
            };
            match folded {
                Ok(Some(folded)) => {
                    *expr = folded;
                    std::ops::ControlFlow::Continue(())
                }
                Ok(None) => std::ops::ControlFlow::Continue(()),
                Err(e) => std::ops::ControlFlow::Break(e),
            }
        };
        for item in &mut self.columns {
            // Named as PostgreSQL names an aggregate's column: by its function.
            if let SelectItem::UnnamedExpr(Expr::Function(f)) = item
                && let [part] = f.name.0.as_slice()
                && let Some(name) = part.as_ident().map(normalize)
                && (GROUP_AGGREGATES.contains(&name.as_str()) || name == "path_length")
            {
                let alias = Ident::new(name);
                *item = SelectItem::ExprWithAlias {
                    expr: Expr::Function(f.clone()),
                    alias,
                };
            }
            if let std::ops::ControlFlow::Break(e) = visit_expressions_mut(item, &mut fold) {
                return Err(e);
            }
        }
        if let Some(filter) = &mut self.filter
            && let std::ops::ControlFlow::Break(e) = visit_expressions_mut(filter, &mut fold)
        {
            return Err(e);
        }
        Ok(())
    }

    /// Path pattern `i` alone, as the query of the matches its search
    /// prefix keeps in a MATCH of several ([`Expansion::chosen`]). Its
    /// matches are picked before they join the others', so what they are
    /// must not depend on them: its conditions read its own variables
    /// only, and a vertex it passes through (neither first nor last) is in
    /// no other path pattern, whose labels and conditions would narrow it
    /// before the pick. (Those at its ends narrow the pairs of ends the
    /// prefix picks for, not the pick.)
    fn path_query(&self, i: usize) -> Result<GraphQuery> {
        let path = &self.paths[i];
        let variables = path.variables(&self.edges);
        let mut vertex_index = vec![None; self.vertices.len()];
        let mut vertices = Vec::new();
        let mut names = Vec::new();
        for variable in &variables {
            if let Variable::Vertex(v) = *variable {
                vertex_index[v] = Some(vertices.len());
                vertices.push(self.vertices[v].clone());
            }
            names.push(self.name_of(*variable));
        }
        let ends = [path.first, path.last(&self.edges)];
        let others = self.paths.iter().enumerate().filter(|(j, _)| *j != i);
        let elsewhere = |v: usize| {
            others
                .clone()
                .any(|(_, q)| q.variables(&self.edges).contains(&Variable::Vertex(v)))
        };
        let conditions = vertices.iter().flat_map(|v| &v.filters).chain(
            path.edges
                .iter()
                .filter_map(|&e| self.edges[e].filter.as_ref()),
        );
        let all_names = variable_names(&self.vertices, &self.edges);
        for condition in conditions {
            if let Some(other) = variables_in(condition, &all_names)
                .into_iter()
                .find(|n| !names.contains(&n.as_str()))
            {
                return Err(Error::unsupported(format!(
                    "a condition in a path pattern with a search prefix that reads \"{other}\", \
                     a variable of another path pattern (put it in MATCH's WHERE)"
                )));
            }
        }
        for variable in &variables {
            if let Variable::Vertex(v) = *variable
                && !ends.contains(&v)
                && elsewhere(v)
            {
                return Err(Error::unsupported(format!(
                    "a search prefix on a path pattern through \"{}\", which another path \
                     pattern of the MATCH also has",
                    self.vertices[v].name
                )));
            }
        }
        let index = |v: usize| vertex_index[v].expect("a path's edges join its vertices");
        let edges: Vec<EdgeVar> = path
            .edges
            .iter()
            .map(|&e| EdgeVar {
                from: index(self.edges[e].from),
                to: index(self.edges[e].to),
                ..self.edges[e].clone()
            })
            .collect();
        let whole = parser("TRUE AS __ciab_match")?
            .parse_select_item()
            .map_err(syntax)?;
        Ok(GraphQuery {
            graph: self.graph.clone(),
            paths: vec![PathPattern {
                variable: None,
                first: index(path.first),
                edges: (0..edges.len()).collect(),
                mode: path.mode,
                selector: path.selector,
            }],
            groups: vec![Vec::new(); edges.len()],
            vertices,
            edges,
            filter: None,
            columns: vec![whole],
        })
    }

    /// Every vertex variable, then every edge variable.
    fn variables(&self) -> impl Iterator<Item = Variable> + use<> {
        let vertices = (0..self.vertices.len()).map(Variable::Vertex);
        vertices.chain((0..self.edges.len()).map(Variable::Edge))
    }

    /// A variable's name.
    fn name_of(&self, variable: Variable) -> &str {
        match variable {
            Variable::Vertex(v) => &self.vertices[v].name,
            Variable::Edge(i) => &self.edges[i].name,
        }
    }

    /// A path's variable names no other path or element, and is read only
    /// by `path_length(p)`, which [`Self::fold_group_aggregates`] replaces:
    /// any read left is refused.
    fn check_path_variables(&self) -> Result<()> {
        let elements = variable_names(&self.vertices, &self.edges);
        let mut seen: Vec<&str> = Vec::new();
        for name in self.paths.iter().filter_map(|p| p.variable.as_deref()) {
            if seen.contains(&name) || elements.contains(&name) {
                return Err(Error::new(
                    sqlstate::DUPLICATE_ALIAS,
                    format!("the variable \"{name}\" is declared more than once in MATCH"),
                ));
            }
            seen.push(name);
        }
        Ok(())
    }

    /// A quantified edge's variable stands for a list of edges (a group
    /// variable), read only through an aggregate, and a path's variable
    /// only through `path_length`: refused elsewhere.
    fn check_group_variables(&self) -> Result<()> {
        let groups: Vec<&str> = self
            .edges
            .iter()
            .filter(|e| e.hops.is_some() && e.named)
            .map(|e| e.name.as_str())
            .collect();
        let paths: Vec<&str> = self
            .paths
            .iter()
            .filter_map(|p| p.variable.as_deref())
            .collect();
        if let Some(name) = self.first_read(&paths, true) {
            return Err(Error::unsupported(format!(
                "reading \"{name}\", a path's variable, other than as path_length({name})"
            )));
        }
        // SQL/PGQ reads a group variable through an aggregate only: on its
        // own it stands for no one edge.
        match self.first_read(&groups, false) {
            Some(name) => Err(Error::new(
                sqlstate::GROUPING_ERROR,
                format!(
                    "\"{name}\" is the variable of a quantified edge, a list of edges: \
                     read it through an aggregate ({})",
                    GROUP_AGGREGATES.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }

    /// The first of `names` that COLUMNS or a condition reads (an edge's
    /// own condition too with `edges_too`).
    fn first_read(&self, names: &[&str], edges_too: bool) -> Option<String> {
        if names.is_empty() {
            return None;
        }
        struct Uses<'a>(&'a [&'a str]);
        impl Visitor for Uses<'_> {
            type Break = String;
            fn pre_visit_expr(&mut self, expr: &Expr) -> std::ops::ControlFlow<String> {
                let first = match expr {
                    Expr::CompoundIdentifier(parts) => parts.first(),
                    Expr::Identifier(ident) => Some(ident),
                    _ => None,
                };
                match first.map(normalize) {
                    Some(name) if self.0.contains(&name.as_str()) => {
                        std::ops::ControlFlow::Break(name)
                    }
                    _ => std::ops::ControlFlow::Continue(()),
                }
            }
        }
        let mut uses = Uses(names);
        let exprs = self.columns.iter().map(|c| c.visit(&mut uses));
        let vertex_filters = self.vertices.iter().flat_map(|v| &v.filters);
        // A quantified edge's own condition reads its variable as one edge.
        let edge_filters = self
            .edges
            .iter()
            .filter(|_| edges_too)
            .filter_map(|e| e.filter.as_ref());
        let conditions = self.filter.iter().chain(vertex_filters).chain(edge_filters);
        exprs
            .chain(conditions.map(|f| f.visit(&mut Uses(names))))
            .find_map(|flow| match flow {
                std::ops::ControlFlow::Break(name) => Some(name),
                std::ops::ControlFlow::Continue(()) => None,
            })
    }

    /// The element tables the variables read: each variable the tables
    /// its labels allow, narrowed to those an edge of the pattern joins,
    /// and every choice of one for each variable that the edges join.
    fn bind(&self, graph: &GraphDef, name: &str) -> Result<Bindings> {
        let all_labels: Vec<&str> = graph
            .vertices
            .iter()
            .chain(graph.edges.iter().map(|e| &e.element))
            .flat_map(|e| e.labels.iter().map(|l| l.name.as_str()))
            .collect();
        for labels in self
            .vertices
            .iter()
            .flat_map(|v| &v.labels)
            .chain(self.edges.iter().flat_map(|e| &e.labels))
        {
            for label in labels.names() {
                if !all_labels.contains(&label) {
                    return Err(Error::new(
                        sqlstate::UNDEFINED_OBJECT,
                        format!("label \"{label}\" does not exist in property graph \"{name}\""),
                    ));
                }
            }
        }
        let by_label = |v: &VertexVar| -> Vec<usize> {
            (0..graph.vertices.len())
                .filter(|&i| {
                    v.labels
                        .iter()
                        .all(|l| l.matches(&graph.vertices[i].labels))
                })
                .collect()
        };
        let edge_by_label = |e: &EdgeVar| -> Vec<usize> {
            (0..graph.edges.len())
                .filter(|&i| {
                    e.labels
                        .iter()
                        .all(|l| l.matches(&graph.edges[i].element.labels))
                })
                .collect()
        };
        let mut vertices: Vec<Vec<usize>> = self.vertices.iter().map(by_label).collect();
        let mut edges: Vec<Vec<usize>> = self.edges.iter().map(edge_by_label).collect();
        // Narrow each side by the other until nothing changes.
        loop {
            let mut changed = false;
            for (e, var) in self.edges.iter().enumerate() {
                let (from, to) = (&vertices[var.from], &vertices[var.to]);
                let (kept, kept_from, kept_to) = if var.hops.is_some() {
                    // A walk may cross other vertex tables on its way: it
                    // keeps the edge tables that lie on some walk between
                    // the ends, and the ends some walk joins.
                    let kept = match walk_useful(graph, var, &edges[e], from, to) {
                        useful if useful.is_empty() => edges[e].clone(),
                        useful => useful,
                    };
                    let reach: Vec<Vec<bool>> = from
                        .iter()
                        .map(|&x| walk_reach(graph, var, &kept, x))
                        .collect();
                    let kept_from: Vec<usize> = from
                        .iter()
                        .zip(&reach)
                        .filter(|(_, r)| to.iter().any(|&y| r[y]))
                        .map(|(&x, _)| x)
                        .collect();
                    let kept_to: Vec<usize> = to
                        .iter()
                        .copied()
                        .filter(|&y| reach.iter().any(|r| r[y]))
                        .collect();
                    (kept, kept_from, kept_to)
                } else {
                    let fits = |t: usize, x: usize, y: usize| fits(graph, var, t, x, y);
                    let kept: Vec<usize> = edges[e]
                        .iter()
                        .copied()
                        .filter(|&t| from.iter().any(|&x| to.iter().any(|&y| fits(t, x, y))))
                        .collect();
                    let kept_from: Vec<usize> = from
                        .iter()
                        .copied()
                        .filter(|&x| kept.iter().any(|&t| to.iter().any(|&y| fits(t, x, y))))
                        .collect();
                    let kept_to: Vec<usize> = to
                        .iter()
                        .copied()
                        .filter(|&y| {
                            kept.iter()
                                .any(|&t| kept_from.iter().any(|&x| fits(t, x, y)))
                        })
                        .collect();
                    (kept, kept_from, kept_to)
                };
                changed |= kept.len() != edges[e].len()
                    || kept_from.len() != vertices[var.from].len()
                    || kept_to.len() != vertices[var.to].len();
                edges[e] = kept;
                vertices[var.from] = kept_from;
                vertices[var.to] = kept_to;
            }
            if !changed {
                break;
            }
        }
        let narrowed = vertices.iter().chain(&edges).all(|c| !c.is_empty());
        // A quantified edge's walks may take any of its edge tables at each
        // hop (the first stands for them all in the bindings), carrying
        // one set of columns for each vertex table they join.
        let mut walk_tables = Vec::with_capacity(edges.len());
        for (var, candidates) in self.edges.iter().zip(&mut edges) {
            if var.hops.is_none() {
                walk_tables.push(Vec::new());
                continue;
            }
            walk_references(graph, candidates)?;
            walk_tables.push(candidates.clone());
            candidates.truncate(1);
        }
        let mut each = Vec::new();
        if narrowed {
            let mut choice = Binding {
                vertex_of: Vec::with_capacity(vertices.len()),
                edge_of: Vec::with_capacity(edges.len()),
            };
            let tables = Tables {
                vertices: &vertices,
                edges: &edges,
                walks: &walk_tables,
            };
            self.choose(graph, &tables, &mut choice, &mut each)?;
        }
        let possible = !each.is_empty();
        if !possible {
            // No rows: any table each variable's labels allow gives the
            // columns their types.
            let first = |candidates: &[usize], what: &str, var: &str| -> Result<usize> {
                candidates.first().copied().ok_or_else(|| {
                    Error::unsupported(format!(
                        "a pattern where {what} \"{var}\" fits no element table of the graph"
                    ))
                })
            };
            each.push(Binding {
                vertex_of: self
                    .vertices
                    .iter()
                    .map(|v| first(&by_label(v), "the vertex", &v.name))
                    .collect::<Result<_>>()?,
                edge_of: self
                    .edges
                    .iter()
                    .map(|e| first(&edge_by_label(e), "the edge", &e.name))
                    .collect::<Result<_>>()?,
            });
        }
        Ok(Bindings {
            each,
            possible,
            vertex_tables: self.vertices.iter().map(by_label).collect(),
            edge_tables: self.edges.iter().map(edge_by_label).collect(),
            walk_tables,
        })
    }

    /// Every way to complete `choice` (tables for the first variables,
    /// vertices then edges) from the candidates, where each edge's table
    /// joins its vertices' tables, added to `each`.
    fn choose(
        &self,
        graph: &GraphDef,
        tables: &Tables,
        choice: &mut Binding,
        each: &mut Vec<Binding>,
    ) -> Result<()> {
        let (v, e) = (choice.vertex_of.len(), choice.edge_of.len());
        if v < tables.vertices.len() {
            for &t in &tables.vertices[v] {
                choice.vertex_of.push(t);
                self.choose(graph, tables, choice, each)?;
                choice.vertex_of.pop();
            }
        } else if e < tables.edges.len() {
            let var = &self.edges[e];
            let (x, y) = (choice.vertex_of[var.from], choice.vertex_of[var.to]);
            let joins = |t: usize| match var.hops {
                None => fits(graph, var, t, x, y),
                Some(_) => walk_reach(graph, var, &tables.walks[e], x)[y],
            };
            for &t in tables.edges[e].iter().filter(|&&t| joins(t)) {
                choice.edge_of.push(t);
                self.choose(graph, tables, choice, each)?;
                choice.edge_of.pop();
            }
        } else {
            if each.len() == BINDINGS_PER_PATTERN_MAX {
                return Err(Error::new(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "a pattern whose variables read more than {BINDINGS_PER_PATTERN_MAX} \
                         combinations of element tables; give them labels"
                    ),
                ));
            }
            each.push(Binding {
                vertex_of: choice.vertex_of.clone(),
                edge_of: choice.edge_of.clone(),
            });
        }
        Ok(())
    }
}

/// The names of a pattern's variables, its vertices' then its edges'.
fn variable_names<'a>(vertices: &'a [VertexVar], edges: &'a [EdgeVar]) -> Vec<&'a str> {
    let vertex_names = vertices.iter().map(|v| v.name.as_str());
    vertex_names
        .chain(edges.iter().map(|e| e.name.as_str()))
        .collect()
}

/// `expr` read as an aggregate over a group variable (`sum(e.w)`): the
/// expression that reads the fold the walks of edge `groups[..].0` carry,
/// added to `carried` (once for equal ones). None where `expr` is no
/// aggregate; an error for an aggregate over no group variable, or one
/// that asks for what a fold cannot do (FILTER, OVER, ORDER BY other than
/// by the value aggregated).
/// `path_length(p)`: the number of edges in the match of the path whose
/// variable is `p`, its edges without a quantifier and the hops each
/// quantified edge's walks count (a fold of each hop's 1, see [`Carried`]).
fn path_length(
    expr: &Expr,
    paths: &[PathPattern],
    edges: &[EdgeVar],
    carried: &mut [Vec<Carried>],
) -> Result<Option<Expr>> {
    let Expr::Function(f) = expr else {
        return Ok(None);
    };
    match f.name.0.as_slice() {
        [part] if part.as_ident().map(normalize).as_deref() == Some("path_length") => {}
        _ => return Ok(None),
    }
    let path = match &f.args {
        FunctionArguments::List(list) if f.filter.is_none() && f.over.is_none() => {
            match list.args.as_slice() {
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(name)))]
                    if list.clauses.is_empty() && list.duplicate_treatment.is_none() =>
                {
                    let name = normalize(name);
                    paths.iter().find(|p| p.variable.as_ref() == Some(&name))
                }
                _ => None,
            }
        }
        _ => None,
    };
    let Some(path) = path else {
        return Err(Error::new(
            sqlstate::UNDEFINED_FUNCTION,
            format!("function {f} does not exist: path_length takes a path's variable (p = ...)"),
        ));
    };
    let (quantified, fixed): (Vec<usize>, Vec<usize>) =
        path.edges.iter().partition(|&&i| edges[i].hops.is_some());
    let hops = quantified.into_iter().map(|edge| {
        let one = Carried {
            value: "1".to_string(),
            fold: Fold::Count,
        };
        carried_column(edge, carry(&mut carried[edge], one))
    });
    let sql = std::iter::once(format!("CAST({} AS BIGINT)", fixed.len()))
        .chain(hops)
        .collect::<Vec<_>>()
        .join(" + ");
    let parsed = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(syntax)?;
    Ok(Some(parsed))
}

/// The index of `fold` among those a quantified edge's walks carry, added
/// if it is not there yet.
fn carry(list: &mut Vec<Carried>, fold: Carried) -> usize {
    match list.iter().position(|c| *c == fold) {
        Some(k) => k,
        None => {
            list.push(fold);
            list.len() - 1
        }
    }
}

/// The column of quantified edge `edge`'s walks that holds fold `k`.
fn carried_column(edge: usize, k: usize) -> String {
    format!(
        "{}.{}",
        quote(&format!("__ciab_p{edge}")),
        quote(&format!("__ciab_a{k}"))
    )
}

fn group_aggregate(
    expr: &Expr,
    groups: &[(usize, &str)],
    variables: &[&str],
    carried: &mut [Vec<Carried>],
) -> Result<Option<Expr>> {
    let Expr::Function(f) = expr else {
        return Ok(None);
    };
    let Some(name) = f
        .name
        .0
        .last()
        .and_then(|part| part.as_ident())
        .map(normalize)
    else {
        return Ok(None);
    };
    if !GROUP_AGGREGATES.contains(&name.as_str()) || f.name.0.len() > 1 {
        return Ok(None);
    }
    let unsupported = |what: &str| {
        Err(Error::unsupported(format!(
            "{what} in {name}() within GRAPH_TABLE: aggregate the GRAPH_TABLE's rows outside it, \
             or a quantified edge's variable inside it (sum(e.weight))"
        )))
    };
    let FunctionArguments::List(list) = &f.args else {
        return unsupported("no argument list");
    };
    let mut args = Vec::with_capacity(list.args.len());
    for arg in &list.args {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(e),
            _ => return unsupported("an argument other than an expression over an edge"),
        }
    }
    let read = args
        .first()
        .map(|a| variables_in(a, variables))
        .unwrap_or_default();
    let group = match read.as_slice() {
        [one] => groups.iter().find(|(_, g)| g == one),
        _ => None,
    };
    let Some(&(edge, group)) = group else {
        return unsupported("an aggregate over no quantified edge's variable alone");
    };
    if f.filter.is_some() || f.over.is_some() || !matches!(f.parameters, FunctionArguments::None) {
        return unsupported(&format!("FILTER or OVER over quantified edge \"{group}\""));
    }
    let distinct = list.duplicate_treatment == Some(DuplicateTreatment::Distinct);
    // ORDER BY in the arguments, or WITHIN GROUP (listagg's): only by the
    // value aggregated, which sorts the list.
    let mut orders: Vec<&OrderByExpr> = f.within_group.iter().collect();
    for clause in &list.clauses {
        match clause {
            FunctionArgumentClause::OrderBy(by) => orders.extend(by),
            _ => return unsupported("a clause other than ORDER BY"),
        }
    }
    let order = match orders.as_slice() {
        [] if distinct => Some(OrderByOptions {
            asc: None,
            nulls_first: None,
        }),
        [] => None,
        [by] if by.expr == *args[0] && by.with_fill.is_none() => Some(by.options),
        _ => {
            return unsupported(&format!(
                "ORDER BY other than by the value aggregated over quantified edge \"{group}\""
            ));
        }
    };
    let separator = match (name.as_str(), args.as_slice()) {
        ("listagg", [_]) => Some(String::new()),
        ("listagg" | "string_agg", [_, separator]) => match separator {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(text) => Some(text.clone()),
                _ => return unsupported("a separator other than a string"),
            },
            _ => return unsupported("a separator other than a string"),
        },
        (_, [_]) => None,
        _ => {
            return Err(Error::new(
                sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "function {name} with {} arguments does not exist",
                    args.len()
                ),
            ));
        }
    };
    let value = args[0].to_string();
    let mut fold = |fold: Fold| {
        let folded = Carried {
            value: value.clone(),
            fold,
        };
        carry(&mut carried[edge], folded)
    };
    let column = |k: usize| carried_column(edge, k);
    let (count, sum) = match distinct {
        false => (Fold::Count, Fold::Sum),
        true => {
            let list = fold(Fold::List);
            (Fold::CountDistinct(list), Fold::SumDistinct(list))
        }
    };
    // The list, its values once each where DISTINCT, sorted where asked
    // (DISTINCT sorts, as PostgreSQL's does): ascending with NULLs last,
    // descending with NULLs first, unless told.
    let mut listed = || {
        let list = column(fold(Fold::List));
        let list = match distinct {
            true => format!("array_distinct({list})"),
            false => list,
        };
        match &order {
            None => list,
            Some(options) => {
                let asc = options.asc.unwrap_or(true);
                let nulls_first = options.nulls_first.unwrap_or(!asc);
                format!(
                    "array_sort({list}, '{}', '{}')",
                    if asc { "ASC" } else { "DESC" },
                    if nulls_first {
                        "NULLS FIRST"
                    } else {
                        "NULLS LAST"
                    }
                )
            }
        }
    };
    let sql = match name.as_str() {
        "count" => column(fold(count)),
        "sum" => column(fold(sum)),
        "min" => column(fold(Fold::Min)),
        "max" => column(fold(Fold::Max)),
        "avg" => format!(
            "CAST({} AS DOUBLE PRECISION) / CAST(NULLIF({}, 0) AS DOUBLE PRECISION)",
            column(fold(sum)),
            column(fold(count))
        ),
        "array_agg" => listed(),
        _ => {
            let separator = separator.expect("listagg and string_agg have a separator");
            format!(
                "array_to_string({}, '{}')",
                listed(),
                separator.replace('\'', "''")
            )
        }
    };
    let parsed = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(syntax)?;
    Ok(Some(parsed))
}

/// The candidate tables of each variable [`GraphQuery::choose`] picks
/// from, and the edge tables each quantified edge's walks take.
struct Tables<'a> {
    vertices: &'a [Vec<usize>],
    edges: &'a [Vec<usize>],
    walks: &'a [Vec<usize>],
}

/// The vertex tables (by index) a hop of quantified edge `var` along edge
/// table `t` leads from and to, each way `var`'s direction allows.
fn hop_ends(graph: &GraphDef, var: &EdgeVar, t: usize) -> Vec<(usize, usize)> {
    let edge = &graph.edges[t];
    let (s, d) = (
        vertex_index(graph, &edge.source.vertex),
        vertex_index(graph, &edge.destination.vertex),
    );
    match var.direction {
        Direction::Right => vec![(s, d)],
        Direction::Left => vec![(d, s)],
        Direction::Any if s == d => vec![(s, d)],
        Direction::Any => vec![(s, d), (d, s)],
    }
}

fn vertex_index(graph: &GraphDef, alias: &str) -> usize {
    graph
        .vertices
        .iter()
        .position(|v| v.alias == alias)
        .expect("an edge's ends are vertex tables of its graph")
}

/// Which vertex tables (a flag by index) the walks of quantified edge
/// `var` over edge tables `tables` can end at from one of vertex table
/// `x`: those that many hops reach, the tables of the vertices aside.
fn walk_reach(graph: &GraphDef, var: &EdgeVar, tables: &[usize], x: usize) -> Vec<bool> {
    let (lo, hi) = var.hops.expect("a quantified edge");
    let hops: Vec<(usize, usize)> = tables
        .iter()
        .flat_map(|&t| hop_ends(graph, var, t))
        .collect();
    let step = |at: &[bool]| {
        let mut next = vec![false; at.len()];
        for &(u, v) in &hops {
            next[v] |= at[u];
        }
        next
    };
    let mut at = vec![false; graph.vertices.len()];
    at[x] = true;
    for _ in 0..lo {
        at = step(&at);
    }
    let mut reached = at.clone();
    match hi {
        // Bounded by QUANTIFIER_HOPS_MAX.
        Some(hi) => {
            for _ in lo..hi {
                at = step(&at);
                for (r, a) in reached.iter_mut().zip(&at) {
                    *r |= a;
                }
            }
        }
        // Any number more: what the reached tables reach.
        None => reached = closure(&hops, reached),
    }
    reached
}

/// `reached` (a flag by vertex table) with every table that `hops` (from,
/// to) lead to from one in it, any number of hops on.
fn closure(hops: &[(usize, usize)], mut reached: Vec<bool>) -> Vec<bool> {
    loop {
        let mut grown = false;
        for &(u, v) in hops {
            if reached[u] && !reached[v] {
                reached[v] = true;
                grown = true;
            }
        }
        if !grown {
            return reached;
        }
    }
}

/// The edge tables among `tables` that some walk of `var` from a vertex
/// table of `from` to one of `to` may take: a hop that leaves a table the
/// walks reach and enters one from which they reach `to`.
fn walk_useful(
    graph: &GraphDef,
    var: &EdgeVar,
    tables: &[usize],
    from: &[usize],
    to: &[usize],
) -> Vec<usize> {
    let hops: Vec<(usize, (usize, usize))> = tables
        .iter()
        .flat_map(|&t| hop_ends(graph, var, t).into_iter().map(move |h| (t, h)))
        .collect();
    let flags = |tables: &[usize]| {
        let mut flags = vec![false; graph.vertices.len()];
        for &v in tables {
            flags[v] = true;
        }
        flags
    };
    let forth: Vec<(usize, usize)> = hops.iter().map(|&(_, h)| h).collect();
    let back: Vec<(usize, usize)> = forth.iter().map(|&(u, v)| (v, u)).collect();
    let (ahead, behind) = (closure(&forth, flags(from)), closure(&back, flags(to)));
    let mut useful: Vec<usize> = hops
        .iter()
        .filter(|(_, (u, v))| ahead[*u] && behind[*v])
        .map(|(t, _)| *t)
        .collect();
    useful.dedup();
    useful
}

/// The columns a quantified edge's walks over `tables` carry for each
/// vertex table (by index; None for the tables they do not join): the
/// columns their ends there reference, where all reference the same,
/// else the table's key, to which a hop turns the others (see
/// [`Walk::translates`]).
fn walk_references<'a>(graph: &'a GraphDef, tables: &[usize]) -> Result<Vec<Option<&'a [String]>>> {
    let mut references: Vec<Option<&[String]>> = vec![None; graph.vertices.len()];
    for &t in tables {
        let edge = &graph.edges[t];
        for end in [&edge.source, &edge.destination] {
            let v = vertex_index(graph, &end.vertex);
            let key = graph.vertices[v].key.as_slice();
            match references[v] {
                None => references[v] = Some(&end.references),
                Some(seen) if seen == end.references.as_slice() || seen == key => {}
                Some(_) if !key.is_empty() => references[v] = Some(key),
                Some(_) => {
                    return Err(Error::unsupported(format!(
                        "a quantified edge over edge tables that reference vertex table \"{}\" \
                         by different columns, which has no key to walk by: give it one with \
                         KEY (columns) in CREATE PROPERTY GRAPH",
                        end.vertex
                    )));
                }
            }
        }
    }
    Ok(references)
}

/// Whether edge table `t` can be (unquantified) `var`'s edge between
/// vertex tables `x` and `y`, in the direction `var` asks for.
fn fits(graph: &GraphDef, var: &EdgeVar, t: usize, x: usize, y: usize) -> bool {
    let alias_of = |i: usize| graph.vertices[i].alias.as_str();
    let edge = &graph.edges[t];
    let (s, d) = (
        edge.source.vertex.as_str(),
        edge.destination.vertex.as_str(),
    );
    let right = s == alias_of(x) && d == alias_of(y);
    let left = s == alias_of(y) && d == alias_of(x);
    match var.direction {
        Direction::Right => right,
        Direction::Left => left,
        Direction::Any => right || left,
    }
}

impl PathPattern {
    /// The vertex it ends at.
    fn last(&self, edges: &[EdgeVar]) -> usize {
        self.edges.last().map_or(self.first, |&i| edges[i].to)
    }

    /// Its vertices and edges in order, each vertex once.
    fn variables(&self, edges: &[EdgeVar]) -> Vec<Variable> {
        let mut variables = vec![Variable::Vertex(self.first)];
        for &i in &self.edges {
            variables.push(Variable::Edge(i));
            let to = Variable::Vertex(edges[i].to);
            if !variables.contains(&to) {
                variables.push(to);
            }
        }
        variables
    }
}

/// How a path mode tells elements apart: an element table's key and its
/// tag in the graph (`v3`, the fourth vertex table; `e0`, the first edge
/// table).
struct ElementKey<'a> {
    key: &'a [String],
    tag: String,
}

impl ElementKey<'_> {
    /// The key of `what` (an element table), which path modes and search
    /// prefixes cannot do without.
    fn new<'a>(key: &'a [String], tag: String, what: &str) -> Result<ElementKey<'a>> {
        if key.is_empty() {
            return Err(Error::unsupported(format!(
                "a path mode or search prefix over {what}, which has no key: \
                 give it one with KEY (columns) in CREATE PROPERTY GRAPH"
            )));
        }
        Ok(ElementKey { key, tag })
    }

    /// The key of the graph's vertex table `v`.
    fn of_vertex(graph: &GraphDef, v: usize) -> Result<ElementKey<'_>> {
        let table = &graph.vertices[v];
        let what = format!("vertex table \"{}\"", table.alias);
        ElementKey::new(&table.key, format!("v{v}"), &what)
    }

    /// The key of the graph's edge table `t`.
    fn of_edge(graph: &GraphDef, t: usize) -> Result<ElementKey<'_>> {
        let table = &graph.edges[t].element;
        let what = format!("edge table \"{}\"", table.alias);
        ElementKey::new(&table.key, format!("e{t}"), &what)
    }

    /// The identity of the element `alias` reads, as text unique among
    /// all the graph's elements (see [`text_id`]).
    fn id(&self, source: &Source, alias: &str) -> String {
        let columns: Vec<String> = self.key.iter().map(|c| source.column(alias, c)).collect();
        text_id(&self.tag, &columns)
    }
}

/// Values as one text that tells them apart from those of other tags:
/// the tag, then each value as text, after its length where there are
/// several. NULL where one is.
fn text_id(tag: &str, values: &[String]) -> String {
    let text = |v: &String| format!("CAST({v} AS VARCHAR)");
    let parts: Vec<String> = match values {
        [one] => vec![text(one)],
        several => several
            .iter()
            .map(|v| {
                format!(
                    "CAST(character_length({t}) AS VARCHAR) || ':' || {t}",
                    t = text(v)
                )
            })
            .collect(),
    };
    format!("'{tag}:' || {}", parts.join(" || ':' || "))
}

/// What a quantified edge's walks keep of the elements they visit, for
/// their path's mode: the identities of their vertices (first to last) as
/// `__ciab_vs`, of their edges as `__ciab_es`.
struct Visits {
    vertices: bool,
    edges: bool,
    mode: PathMode,
    /// `Some((n, k))`: each vertex kept is told apart with the walk's hops
    /// so far, counted up to n (`'v0:7#2'`), so a walk may come back to it
    /// before it has made n hops, and a walk may reach it k times.
    counted: Option<(u64, u64)>,
    /// Whether the walks also carry their edges as one text in the path's
    /// order (`__ciab_ek`), which tells a walk from every other between
    /// the same vertices: each edge's identity after its length.
    key: bool,
}

impl Visits {
    /// What a walk keeps of vertex `id` after `hops` hops.
    fn state(&self, id: &str, hops: &str) -> String {
        match self.counted {
            Some((n, _)) => format!("{id} || '#' || CAST(least({hops}, {n}) AS VARCHAR)"),
            None => id.to_string(),
        }
    }

    /// Whether a walk that has kept `visited` may reach `next`.
    fn allows(&self, visited: &str, next: &str) -> String {
        match self.counted {
            Some((_, k)) if k > 1 => {
                format!("cardinality(array_positions({visited}, {next})) < {k}")
            }
            _ => format!("NOT array_has({visited}, {next})"),
        }
    }
}

/// An edge table a quantified edge's walks may take at each hop: how they
/// read it, the vertex tables (by index) its source and destination are,
/// and its key where the walks keep their edges.
struct WalkTable<'a> {
    edge: &'a EdgeTable,
    source: Source<'a>,
    ends: (usize, usize),
    key: Option<ElementKey<'a>>,
}

/// A vertex table a quantified edge's walks start at, cross or end at.
struct WalkVertex<'a> {
    source: Source<'a>,
    /// `v<index>`: the table in a walk's ends where those are text.
    tag: String,
    /// What the walks carry from one hop to the next for a vertex of
    /// this table: the columns their edges reference it by, or its key
    /// where they reference it by different ones or none joins it.
    references: Vec<String>,
    /// Its key, where the walks keep the vertices they visit.
    key: Option<ElementKey<'a>>,
}

/// The tables a quantified edge's walks read.
struct Walk<'a> {
    steps: Vec<WalkTable<'a>>,
    /// By index into the graph's vertex tables: those the walks meet.
    vertices: Vec<Option<WalkVertex<'a>>>,
    /// Every hop and both ends are on one vertex table: the walks carry
    /// the columns its edges reference as they are. Otherwise each end is
    /// one text, tagged with its table (`'v3:' || id`), so that vertices
    /// of two tables with equal keys stay apart.
    typed: bool,
}

impl<'a> Walk<'a> {
    /// The walks over edge tables `tables` from vertex table `ends.0` to
    /// `ends.1` (indexes into the graph's), with what `visits` asks for.
    fn new(
        catalog: &'a Catalog,
        graph: &'a GraphDef,
        tables: &[usize],
        ends: (usize, usize),
        visits: &Visits,
    ) -> Result<Walk<'a>> {
        assert!(!tables.is_empty(), "a possible walk takes some edge table");
        let references = walk_references(graph, tables)?;
        let steps = tables
            .iter()
            .map(|&t| {
                let element = &graph.edges[t].element;
                let others: Vec<&ElementTable> = tables
                    .iter()
                    .filter(|&&u| u != t)
                    .map(|&u| &graph.edges[u].element)
                    .collect();
                let key = (visits.edges || visits.key)
                    .then(|| ElementKey::of_edge(graph, t))
                    .transpose()?;
                let edge = &graph.edges[t];
                Ok(WalkTable {
                    edge,
                    source: Source::with_nulls(catalog, element, &others)?,
                    ends: (
                        vertex_index(graph, &edge.source.vertex),
                        vertex_index(graph, &edge.destination.vertex),
                    ),
                    key,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut vertices: Vec<Option<WalkVertex>> = Vec::new();
        vertices.resize_with(graph.vertices.len(), || None);
        let met = steps
            .iter()
            .flat_map(|s| [s.ends.0, s.ends.1])
            .chain([ends.0, ends.1]);
        for v in met {
            if vertices[v].is_some() {
                continue;
            }
            let table = &graph.vertices[v];
            let source = Source::new(catalog, table)?;
            let references = match references[v] {
                Some(columns) => columns.to_vec(),
                None if !table.key.is_empty() => table.key.clone(),
                // Reached by no hop: only a walk of no edges stays there.
                None => source.def.columns.iter().map(|c| c.name.clone()).collect(),
            };
            let key = visits
                .vertices
                .then(|| ElementKey::of_vertex(graph, v))
                .transpose()?;
            vertices[v] = Some(WalkVertex {
                source,
                tag: format!("v{v}"),
                references,
                key,
            });
        }
        let one = steps[0].ends.0;
        let typed = ends == (one, one) && steps.iter().all(|s| s.ends == (one, one));
        Ok(Walk {
            steps,
            vertices,
            typed,
        })
    }

    fn vertex(&self, v: usize) -> &WalkVertex<'a> {
        self.vertices[v]
            .as_ref()
            .expect("a walk meets the vertex tables of its hops and ends")
    }

    /// How many columns a walk's end is.
    fn width(&self) -> usize {
        match self.typed {
            true => self.vertex(self.steps[0].ends.0).references.len(),
            false => 1,
        }
    }

    /// A walk's end at the vertex `alias` reads (of table `v`, through
    /// `source`), as the walks carry it.
    fn at(&self, v: usize, source: &Source, alias: &str) -> Vec<String> {
        let columns = self.vertex(v).references.iter();
        self.carried(v, columns.map(|r| source.column(alias, r)).collect())
    }

    /// Whether `end` (of an edge, at vertex table `v`) references other
    /// columns than the walks carry for `v`: a hop then reads them from
    /// the vertex's row.
    fn translates(&self, end: &EdgeEnd, v: usize) -> bool {
        end.references != self.vertex(v).references
    }

    /// A walk's end at the vertex `alias` reads (of table `v`), named
    /// `__ciab_<which><k>`.
    fn vertex_end(&self, v: usize, alias: &str, which: &str) -> Vec<String> {
        named_ends(self.at(v, &self.vertex(v).source, alias), which)
    }

    /// A walk's end at edge `alias`'s `end` (of step `step`, at vertex
    /// table `v`), named `__ciab_<which><k>`.
    fn edge_end(
        &self,
        step: &WalkTable,
        alias: &str,
        end: &EdgeEnd,
        v: usize,
        which: &str,
    ) -> Vec<String> {
        let columns = end.columns.iter();
        let values = self.carried(v, columns.map(|c| step.source.column(alias, c)).collect());
        named_ends(values, which)
    }

    /// The columns of a vertex of table `v` as the walks carry them: as
    /// they are where typed, else as one text tagged with the table.
    fn carried(&self, v: usize, columns: Vec<String>) -> Vec<String> {
        match self.typed {
            true => columns,
            false => vec![text_id(&self.vertex(v).tag, &columns)],
        }
    }
}

/// An array a walk keeps for its path mode: its column, its value after
/// the first hop and after each next one, and what a next hop must meet.
struct Kept {
    column: String,
    first: String,
    next: String,
    /// What a next hop must meet, if anything.
    allows: Option<String>,
}

/// Whether the array `array` holds no value twice.
fn all_distinct(array: &str) -> String {
    format!("cardinality(array_distinct({array})) = cardinality({array})")
}

/// Where a quantified edge's walks start: a vertex variable and the
/// conditions that read only it.
struct Seed<'a> {
    name: &'a str,
    /// Its vertex table, by index.
    table: usize,
    source: &'a Source<'a>,
    filters: &'a [Expr],
    /// The vertex is the walks' end: they are found walking back from it.
    backward: bool,
}

/// `expr`'s top-level AND operands.
fn split_and(expr: &Expr, into: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
            right,
        } => {
            split_and(left, into);
            split_and(right, into);
        }
        Expr::Nested(inner) => split_and(inner, into),
        other => into.push(other.clone()),
    }
}

/// The pattern variables among `names` that `expr` reads, each once.
fn variables_in(expr: &Expr, names: &[&str]) -> Vec<String> {
    struct Reads<'a>(&'a [&'a str], Vec<String>);
    impl Visitor for Reads<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> std::ops::ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = expr
                && let Some(first) = parts.first()
            {
                let name = normalize(first);
                if self.0.contains(&name.as_str()) && !self.1.contains(&name) {
                    self.1.push(name);
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut reads = Reads(names, Vec::new());
    let _ = expr.visit(&mut reads);
    reads.1
}

/// An edge end's columns as `edge` reads them, named `__ciab_<which><k>`.
fn end_columns(source: &Source, edge: &str, end: &EdgeEnd, which: &str) -> Vec<String> {
    let columns = end.columns.iter();
    named_ends(columns.map(|c| source.column(edge, c)).collect(), which)
}

/// An end's values, named `__ciab_<which><k>`.
fn named_ends(values: Vec<String>, which: &str) -> Vec<String> {
    values
        .into_iter()
        .enumerate()
        .map(|(k, value)| format!("{value} AS {}", quote(&format!("__ciab_{which}{k}"))))
        .collect()
}

/// Whether an edge row is a loop: its ends hold the same key.
fn loop_condition(source: &Source, e: &str, edge: &EdgeTable) -> String {
    let same: Vec<String> = edge
        .source
        .columns
        .iter()
        .zip(&edge.destination.columns)
        .map(|(a, b)| format!("{} = {}", source.column(e, a), source.column(e, b)))
        .collect();
    same.join(" AND ")
}

/// The walks of `lo` to `hi` edges of `walk`'s tables from vertex table
/// `start`, as a derived table of their first and last vertices as the
/// walk carries them ([`Walk::at`]: `__ciab_s<k>`, `__ciab_d<k>`) and
/// their length (`__ciab_n`), one row per walk, and what `visits` asks to
/// keep. Every vertex a walk reaches is a row of its vertex table, as for
/// a fixed pattern; the first is joined by the caller. With a seed, only
/// the walks from (or, backward, to) the vertices its conditions allow
/// are followed, as DataFusion cannot push a filter into a recursive
/// query. No `hi`: the path mode ends every walk (no edge or no vertex
/// twice). Each walk also carries the folds of `carried` (`__ciab_a<k>`).
fn walks(
    var: &EdgeVar,
    walk: &Walk,
    start: usize,
    (lo, hi): (u64, Option<u64>),
    seed: Option<Seed>,
    visits: &Visits,
    carried: &[Carried],
) -> String {
    let n = walk.width();
    let s: Vec<String> = (0..n).map(|k| quote(&format!("__ciab_s{k}"))).collect();
    let d: Vec<String> = (0..n).map(|k| quote(&format!("__ciab_d{k}"))).collect();
    let e = &var.name;
    let reached = "__ciab_x";
    // The vertex a hop leaves, where it is joined.
    const LEFT: &str = "__ciab_l";
    // One hop along `step` from vertex table `from.1` to `to.1`, as (s, d)
    // in the walk's direction, and the identities of the vertex it reaches
    // and of its edge where the walk keeps them.
    let hop = |step: &WalkTable, from: (&EdgeEnd, usize), to: (&EdgeEnd, usize), skip_loops| {
        let WalkTable {
            edge, source, key, ..
        } = step;
        let vertex = walk.vertex(to.1);
        // An end that references other columns than the walk carries is
        // read from its vertex's row: the one reached, and for the other
        // end one joined here.
        let left = walk.translates(from.0, from.1).then(|| walk.vertex(from.1));
        let mut select = match left {
            Some(_) => walk.vertex_end(from.1, LEFT, "s"),
            None => walk.edge_end(step, e, from.0, from.1, "s"),
        };
        select.extend(match walk.translates(to.0, to.1) {
            true => walk.vertex_end(to.1, reached, "d"),
            false => walk.edge_end(step, e, to.0, to.1, "d"),
        });
        if let Some(key) = &vertex.key {
            select.push(format!("{} AS __ciab_vid", key.id(&vertex.source, reached)));
        }
        if let Some(key) = key {
            select.push(format!("{} AS __ciab_eid", key.id(source, e)));
        }
        for (k, carry) in carried.iter().enumerate() {
            select.push(format!("({}) AS __ciab_v{k}", carry.value));
        }
        let mut conditions: Vec<String> =
            to.0.columns
                .iter()
                .zip(&to.0.references)
                .map(|(c, r)| {
                    format!(
                        "{} = {}",
                        vertex.source.column(reached, r),
                        source.column(e, c)
                    )
                })
                .collect();
        let mut from_items = vec![source.read_as(e), vertex.source.read_as(reached)];
        if let Some(left) = left {
            from_items.push(left.source.read_as(LEFT));
            conditions.extend(from.0.columns.iter().zip(&from.0.references).map(|(c, r)| {
                format!("{} = {}", left.source.column(LEFT, r), source.column(e, c))
            }));
        }
        if let Some(f) = &var.filter {
            conditions.push(format!("({f})"));
        }
        if skip_loops {
            conditions.push(format!("NOT ({})", loop_condition(source, e, edge)));
        }
        format!(
            "SELECT {} FROM {} WHERE {}",
            select.join(", "),
            from_items.join(", "),
            conditions.join(" AND ")
        )
    };
    let backward = seed.as_ref().is_some_and(|seed| seed.backward);
    let direction = match (var.direction, backward) {
        (Direction::Right, true) => Direction::Left,
        (Direction::Left, true) => Direction::Right,
        (direction, _) => direction,
    };
    let hops: Vec<String> = walk
        .steps
        .iter()
        .map(|step| {
            let edge = step.edge;
            let forth = (&edge.source, step.ends.0);
            let back = (&edge.destination, step.ends.1);
            match direction {
                Direction::Right => hop(step, forth, back, false),
                Direction::Left => hop(step, back, forth, false),
                // A loop is one edge either way: taken once.
                Direction::Any => format!(
                    "{} UNION ALL {}",
                    hop(step, forth, back, false),
                    hop(step, back, forth, step.ends.0 == step.ends.1)
                ),
            }
        })
        .collect();
    let hops = hops.join(" UNION ALL ");
    // The seed's rows, as a FROM item and conditions to add.
    let seeded = |at: &[String]| -> (String, String) {
        match &seed {
            None => (String::new(), String::new()),
            Some(seed) => {
                let mut conditions: Vec<String> = walk
                    .at(seed.table, seed.source, seed.name)
                    .iter()
                    .zip(at)
                    .map(|(v, c)| format!("{c} = {v}"))
                    .collect();
                conditions.extend(seed.filters.iter().map(|f| format!("({f})")));
                (
                    format!(", {}", seed.source.read_as(seed.name)),
                    format!(" AND {}", conditions.join(" AND ")),
                )
            }
        }
    };
    let columns = |prefix: &str, names: &[String]| -> Vec<String> {
        names.iter().map(|c| format!("{prefix}.{c}")).collect()
    };
    let counter = quote("__ciab_n");
    // Walked backward, a walk's first vertex is the caller's last.
    let (out_s, out_d) = if backward { (&d, &s) } else { (&s, &d) };
    let mut output: Vec<String> = out_s
        .iter()
        .zip(&s)
        .chain(out_d.iter().zip(&d))
        .map(|(from, to)| format!("__ciab_w.{from} AS {to}"))
        .collect();
    output.push(format!("__ciab_w.{counter} AS {counter}"));
    let first = walk.vertex(start);
    let mut kept: Vec<Kept> = Vec::new();
    if visits.vertices {
        // The first vertex is the seed's row, or one joined for its key.
        let (table, source, alias) = match &seed {
            Some(seed) => (seed.table, seed.source, seed.name),
            None => (start, &first.source, "__ciab_y"),
        };
        let key = walk.vertex(table).key.as_ref();
        let first_id = key
            .expect("a walk that keeps its vertices has their keys")
            .id(source, alias);
        let visited = "__ciab_w.__ciab_vs";
        let vid = "__ciab_h.__ciab_vid";
        let next = visits.state(vid, &format!("__ciab_w.{counter} + 1"));
        let unseen = visits.allows(visited, &next);
        kept.push(Kept {
            column: "__ciab_vs".to_string(),
            first: format!(
                "make_array({}, {})",
                visits.state(&first_id, "0"),
                visits.state(vid, "1")
            ),
            next: format!("array_append({visited}, {next})"),
            allows: Some(match visits.mode {
                // Back to the first vertex ends a simple path.
                PathMode::Simple => format!(
                    "({unseen} OR {next} = array_element({visited}, 1)) \
                     AND array_element({visited}, 1) <> \
                     array_element({visited}, CAST(cardinality({visited}) AS BIGINT))"
                ),
                _ => unseen,
            }),
        });
    }
    if visits.edges {
        let visited = "__ciab_w.__ciab_es";
        let next = "__ciab_h.__ciab_eid";
        kept.push(Kept {
            column: "__ciab_es".to_string(),
            first: format!("make_array({next})"),
            next: format!("array_append({visited}, {next})"),
            allows: Some(format!("NOT array_has({visited}, {next})")),
        });
    }
    if visits.key {
        let (walked, next) = ("__ciab_w.__ciab_ek", "__ciab_h.__ciab_eid");
        let one = format!("CAST(character_length({next}) AS VARCHAR) || ':' || {next}");
        kept.push(Kept {
            column: "__ciab_ek".to_string(),
            first: one.clone(),
            // Walked backward, the path's order is the other way.
            next: match backward {
                true => format!("{one} || {walked}"),
                false => format!("{walked} || {one}"),
            },
            allows: None,
        });
    }
    for (k, carry) in carried.iter().enumerate() {
        let (value, folded) = (
            format!("__ciab_h.__ciab_v{k}"),
            format!("__ciab_w.__ciab_a{k}"),
        );
        kept.push(Kept {
            column: format!("__ciab_a{k}"),
            first: carry.fold.first(&value),
            next: carry.fold.next(&folded, &value, backward, |j| {
                format!("__ciab_w.__ciab_a{j}")
            }),
            allows: None,
        });
    }
    output.extend(
        kept.iter()
            .map(|k| format!("__ciab_w.{c} AS {c}", c = k.column)),
    );
    let mut parts = Vec::new();
    if hi.is_none_or(|hi| hi > 0) {
        let (mut seed_from, mut seed_where) = seeded(&columns("__ciab_h", &s));
        if seed.is_none() && visits.vertices {
            seed_from = format!(", {}", first.source.read_as("__ciab_y"));
            let join: Vec<String> = walk
                .at(start, &first.source, "__ciab_y")
                .iter()
                .zip(columns("__ciab_h", &s))
                .map(|(v, c)| format!(" AND {c} = {v}"))
                .collect();
            seed_where = join.concat();
        }
        let mut next_conditions: Vec<String> = (0..n)
            .map(|k| format!("__ciab_h.{} = __ciab_w.{}", s[k], d[k]))
            .collect();
        if let Some(hi) = hi {
            next_conditions.push(format!("__ciab_w.{counter} < {hi}"));
        }
        next_conditions.extend(kept.iter().filter_map(|k| k.allows.clone()));
        let extra = |part: fn(&Kept) -> &str| -> String {
            kept.iter().map(|k| format!(", {}", part(k))).collect()
        };
        let declared = format!(
            "{all}, {counter}{kept_columns}",
            all = [s.clone(), d.clone()].concat().join(", "),
            kept_columns = extra(|k| &k.column),
        );
        let first_hop = format!(
            "SELECT {hs}, 1{first} FROM ({hops}) AS __ciab_h{seed_from} WHERE TRUE{seed_where}",
            hs = columns("__ciab_h", &[s.clone(), d.clone()].concat()).join(", "),
            first = extra(|k| &k.first),
        );
        let next_hop = |walks: &str| {
            format!(
                "SELECT {ws}, {hd}, __ciab_w.{counter} + 1{next} FROM {walks}, ({hops}) AS __ciab_h \
                 WHERE {next_conditions}",
                ws = columns("__ciab_w", &s).join(", "),
                hd = columns("__ciab_h", &d).join(", "),
                next = extra(|k| &k.next),
                next_conditions = next_conditions.join(" AND "),
            )
        };
        let output = output.join(", ");
        let lo = lo.max(1);
        // Without a seed, a range of lengths would join its first hops
        // again for each length, each over every edge.
        let unrolled = |&hi: &u64| hi <= WALK_UNROLLED_EDGES_MAX && (seed.is_some() || lo == hi);
        let walked = match hi.filter(unrolled) {
            // A few hops, each a join of the walks so far with the edges:
            // DataFusion passes each join's keys to the scan of the edges
            // it probes, which looks them up (crate::lookups), where a
            // recursive query's hops, planned anew for each round, would
            // read every edge.
            Some(hi) => {
                let mut levels = vec![format!("__ciab_w1 ({declared}) AS ({first_hop})")];
                for level in 2..=hi {
                    let walks = format!("__ciab_w{} AS __ciab_w", level - 1);
                    levels.push(format!(
                        "__ciab_w{level} ({declared}) AS ({})",
                        next_hop(&walks)
                    ));
                }
                let kept: Vec<String> = (lo..=hi)
                    .map(|level| format!("SELECT * FROM __ciab_w{level}"))
                    .collect();
                format!(
                    "WITH {} SELECT {output} FROM ({}) AS __ciab_w",
                    levels.join(", "),
                    kept.join(" UNION ALL ")
                )
            }
            None => format!(
                "WITH RECURSIVE __ciab_w ({declared}) AS ({first_hop} UNION ALL {}) \
                 SELECT {output} FROM __ciab_w WHERE __ciab_w.{counter} >= {lo}",
                next_hop("__ciab_w")
            ),
        };
        parts.push(walked);
    }
    if lo == 0 {
        // A walk of no edges stays at its first vertex.
        let at = walk.at(start, &first.source, reached);
        let mut select = Vec::new();
        for names in [&s, &d] {
            for (value, name) in at.iter().zip(names) {
                select.push(format!("{value} AS {name}"));
            }
        }
        select.push(format!("0 AS {counter}"));
        if let Some(key) = &first.key {
            select.push(format!(
                "make_array({}) AS __ciab_vs",
                visits.state(&key.id(&first.source, reached), "0")
            ));
        }
        if visits.edges {
            select.push("CAST(make_array() AS VARCHAR[]) AS __ciab_es".to_string());
        }
        if visits.key {
            select.push("CAST('' AS VARCHAR) AS __ciab_ek".to_string());
        }
        for (k, carry) in carried.iter().enumerate() {
            select.push(format!("{} AS __ciab_a{k}", carry.fold.none()));
        }
        let (seed_from, seed_where) = seeded(&at);
        parts.push(format!(
            "SELECT {} FROM {}{seed_from} WHERE TRUE{seed_where}",
            select.join(", "),
            first.source.read_as(reached)
        ));
    }
    format!("({})", parts.join(" UNION ALL "))
}
