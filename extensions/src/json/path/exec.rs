//! Running a path over a document, as PostgreSQL's `jsonpath_exec.c` does,
//! item by item.

use std::collections::HashMap;
use std::rc::Rc;

use super::{ArithOp, CompareOp, Item, JsonPath, Kind, Method};
use crate::error::{Error, Result, sqlstate};
use crate::json::numeric::Numeric;
use crate::json::value::{self, Value, key_order};

const UNDEFINED_OBJECT: &str = "42704";
const INVALID_SQL_JSON_SUBSCRIPT: &str = "22033";
const NON_NUMERIC_SQL_JSON_ITEM: &str = "22036";
const SINGLETON_SQL_JSON_ITEM_REQUIRED: &str = "22038";
const SQL_JSON_ARRAY_NOT_FOUND: &str = "22039";
pub(super) const SQL_JSON_MEMBER_NOT_FOUND: &str = "2203A";
const SQL_JSON_NUMBER_NOT_FOUND: &str = "2203B";
const SQL_JSON_OBJECT_NOT_FOUND: &str = "2203C";

/// A value met while evaluating: part of the document or of `vars`, or
/// one the path computed.
#[derive(Debug, Clone)]
enum Val<'a> {
    Doc(&'a Value),
    Own(Rc<Value>, Origin),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Inside an object `.keyvalue()` made (a base object of its own), at
    /// this offset in its binary form.
    Generated(i64),
    Computed,
}

impl<'a> Val<'a> {
    fn value(&self) -> &Value {
        match self {
            Val::Doc(v) => v,
            Val::Own(v, _) => v,
        }
    }

    fn computed(v: Value) -> Val<'a> {
        Val::Own(Rc::new(v), Origin::Computed)
    }

    /// The members' values of an object or the elements of an array.
    fn children(&self) -> Vec<Val<'a>> {
        match self {
            Val::Doc(Value::Array(items)) => items.iter().map(Val::Doc).collect(),
            Val::Doc(Value::Object(members)) => members.iter().map(|(_, v)| Val::Doc(v)).collect(),
            Val::Own(v, origin) => match &**v {
                Value::Array(items) => own_children(v, items.iter(), *origin),
                Value::Object(members) => own_children(v, members.iter().map(|(_, c)| c), *origin),
                _ => vec![],
            },
            Val::Doc(_) => vec![],
        }
    }

    fn member(&self, key: &str) -> Option<Val<'a>> {
        let find = |members: &'_ [(String, Value)]| {
            members.binary_search_by(|(k, _)| key_order(k, key)).ok()
        };
        match self {
            Val::Doc(Value::Object(members)) => find(members).map(|i| Val::Doc(&members[i].1)),
            Val::Own(v, origin) => match &**v {
                Value::Object(members) => find(members)
                    .and_then(|i| own_children(v, std::iter::once(&members[i].1), *origin).pop()),
                _ => None,
            },
            Val::Doc(_) => None,
        }
    }

    fn into_value(self) -> Value {
        match self {
            Val::Doc(v) => v.clone(),
            Val::Own(v, _) => Rc::unwrap_or_clone(v),
        }
    }
}

/// Children of a computed container; those inside a generated object
/// keep their offsets there. Containers sit at 4-byte boundaries, so a
/// child's offset within its parent is the same wherever the parent is,
/// and the parent's layout is worked out once for all its children.
fn own_children<'a, 'v>(
    parent: &Value,
    children: impl Iterator<Item = &'v Value>,
    origin: Origin,
) -> Vec<Val<'a>> {
    let inside = match origin {
        Origin::Generated(offset) => Some((offset, layout(parent))),
        Origin::Computed => None,
    };
    children
        .map(|child| {
            let origin = match &inside {
                Some((offset, layout)) if is_container(child) => {
                    Origin::Generated(offset + layout[&(child as *const Value)])
                }
                _ => Origin::Computed,
            };
            Val::Own(Rc::new(child.clone()), origin)
        })
        .collect()
}

fn is_array(v: &Value) -> bool {
    matches!(v, Value::Array(_))
}

fn is_object(v: &Value) -> bool {
    matches!(v, Value::Object(_))
}

fn is_container(v: &Value) -> bool {
    is_array(v) || is_object(v)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether an item found anything (PostgreSQL's `jperOk`/`jperNotFound`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Ok,
    NotFound,
}

/// An error during evaluation. A soft one is what PostgreSQL returns as
/// `jperError` when errors are not thrown: predicates turn it into
/// unknown and `silent` drops it. A hard one is always raised.
#[derive(Debug)]
struct Fail {
    error: Error,
    soft: bool,
}

fn soft(code: &'static str, message: impl Into<String>) -> Fail {
    Fail {
        error: Error::new(code, message),
        soft: true,
    }
}

fn hard(error: Error) -> Fail {
    Fail { error, soft: false }
}

type Exec = std::result::Result<Res, Fail>;
type Found<'f, 'a> = Option<&'f mut Vec<Val<'a>>>;

/// Three-valued truth of a predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    True,
    False,
    Unknown,
}

/// The object a value's `.keyvalue()` id counts from.
#[derive(Debug, Clone, Copy)]
enum Base<'a> {
    None,
    Doc(&'a Value, i64),
    Generated(i64),
}

struct Ctx<'a> {
    root: &'a Value,
    vars: Option<&'a Value>,
    lax: bool,
    ignore_structural_errors: bool,
    /// Whether a soft error is raised where it happens (PostgreSQL's
    /// `throwErrors`): not when `silent`, nor inside predicates. Where
    /// PostgreSQL drops an error result, it matters.
    throw_errors: bool,
    current: Val<'a>,
    innermost_array_size: i64,
    base: Base<'a>,
    last_generated_id: i64,
    /// Offsets of containers inside base objects, computed on demand.
    layouts: HashMap<*const Value, HashMap<*const Value, i64>>,
}

/// Runs `path` over `doc`, collecting results into `found` (or stopping at
/// the first when there is nowhere to put them). `Err` holds the error
/// that stopped it; `found` keeps what came before.
fn execute<'a>(
    path: &JsonPath,
    doc: &'a Value,
    vars: Option<&'a Value>,
    found: Found<'_, 'a>,
    silent: bool,
) -> std::result::Result<Res, Fail> {
    if let Some(vars) = vars
        && !is_object(vars)
    {
        return Err(hard(
            Error::invalid_parameter("\"vars\" argument is not an object").with_detail(
                "Jsonpath parameters should be encoded as key-value pairs of \"vars\" object.",
            ),
        ));
    }
    let mut cx = Ctx {
        root: doc,
        vars,
        lax: path.lax,
        ignore_structural_errors: path.lax,
        throw_errors: !silent,
        current: Val::Doc(doc),
        innermost_array_size: -1,
        base: Base::None,
        last_generated_id: if vars.is_some() { 2 } else { 1 },
        layouts: HashMap::new(),
    };
    let root = Val::Doc(doc);
    if !cx.lax && found.is_none() {
        // Strict mode needs every result, to be sure none is an error.
        let mut all = Vec::new();
        cx.item(&path.expr, &root, Some(&mut all))?;
        return Ok(if all.is_empty() {
            Res::NotFound
        } else {
            Res::Ok
        });
    }
    cx.item(&path.expr, &root, found)
}

/// A failure as the SQL function reports it: soft ones vanish when
/// `silent`.
fn raise(fail: Fail, silent: bool) -> Result<()> {
    if fail.soft && silent {
        Ok(())
    } else {
        Err(fail.error)
    }
}

/// `jsonb_path_exists` and `@?`: `None` when an error was silenced.
pub fn exists(
    path: &JsonPath,
    doc: &Value,
    vars: Option<&Value>,
    silent: bool,
) -> Result<Option<bool>> {
    match execute(path, doc, vars, None, silent) {
        Ok(res) => Ok(Some(res == Res::Ok)),
        Err(fail) => raise(fail, silent).map(|()| None),
    }
}

/// `jsonb_path_query` and its `_array` and `_first` forms: what the path
/// yields, or what it yielded before an error `silent` drops.
pub fn query(
    path: &JsonPath,
    doc: &Value,
    vars: Option<&Value>,
    silent: bool,
) -> Result<Vec<Value>> {
    let mut found = Vec::new();
    if let Err(fail) = execute(path, doc, vars, Some(&mut found), silent) {
        raise(fail, silent)?;
    }
    Ok(found.into_iter().map(Val::into_value).collect())
}

/// `jsonb_path_match` and `@@`: the single boolean the path yields, `None`
/// for null or (when `silent`) anything else.
pub fn matches(
    path: &JsonPath,
    doc: &Value,
    vars: Option<&Value>,
    silent: bool,
) -> Result<Option<bool>> {
    let found = query(path, doc, vars, silent)?;
    match found.as_slice() {
        [Value::Bool(b)] => Ok(Some(*b)),
        [Value::Null] => Ok(None),
        _ if silent => Ok(None),
        _ => Err(Error::new(
            SINGLETON_SQL_JSON_ITEM_REQUIRED,
            "single boolean result is expected",
        )),
    }
}

impl<'a> Ctx<'a> {
    /// PostgreSQL's `executeItem`.
    fn item(&mut self, jsp: &Item, jb: &Val<'a>, found: Found<'_, 'a>) -> Exec {
        let unwrap = self.lax;
        self.item_unwrapping(jsp, jb, found, unwrap)
    }

    /// The item after `cur`, or `v` itself as a result.
    fn next(&mut self, cur: &Item, v: Val<'a>, found: Found<'_, 'a>) -> Exec {
        match &cur.next {
            Some(next) => self.item(next, &v, found),
            None => {
                if let Some(found) = found {
                    found.push(v);
                }
                Ok(Res::Ok)
            }
        }
    }

    fn structural(&self, code: &'static str, message: impl Into<String>) -> Exec {
        if self.ignore_structural_errors {
            Ok(Res::NotFound)
        } else {
            Err(soft(code, message))
        }
    }

    /// PostgreSQL's `executeItemOptUnwrapTarget`.
    fn item_unwrapping(
        &mut self,
        jsp: &Item,
        jb: &Val<'a>,
        mut found: Found<'_, 'a>,
        unwrap: bool,
    ) -> Exec {
        let value = jb.value();
        match &jsp.kind {
            Kind::And(..)
            | Kind::Or(..)
            | Kind::Not(_)
            | Kind::IsUnknown(_)
            | Kind::Compare(..)
            | Kind::Exists(_)
            | Kind::StartsWith(..)
            | Kind::LikeRegex(..) => {
                let truth = self.truth(jsp, jb)?;
                if jsp.next.is_none() && found.is_none() {
                    return Ok(Res::Ok);
                }
                let v = match truth {
                    Truth::True => Value::Bool(true),
                    Truth::False => Value::Bool(false),
                    Truth::Unknown => Value::Null,
                };
                self.next(jsp, Val::computed(v), found)
            }
            Kind::Key(key) => {
                if is_object(value) {
                    match jb.member(key) {
                        Some(v) => self.next(jsp, v, found),
                        None => self.structural(
                            SQL_JSON_MEMBER_NOT_FOUND,
                            format!("JSON object does not contain key \"{key}\""),
                        ),
                    }
                } else if unwrap && is_array(value) {
                    self.unwrap_array(Some(jsp), jb, found, false)
                } else {
                    self.structural(
                        SQL_JSON_MEMBER_NOT_FOUND,
                        "jsonpath member accessor can only be applied to an object",
                    )
                }
            }
            Kind::Root => {
                let saved = self.base;
                self.base = Base::Doc(self.root, 0);
                let root = Val::Doc(self.root);
                let res = self.next(jsp, root, found);
                self.base = saved;
                res
            }
            Kind::Current => {
                let current = self.current.clone();
                self.next(jsp, current, found)
            }
            Kind::AnyArray => {
                if is_array(value) {
                    let unwrap_elements = self.lax;
                    self.unwrap_array(jsp.next.as_deref(), jb, found, unwrap_elements)
                } else if self.lax {
                    self.next(jsp, jb.clone(), found)
                } else {
                    self.structural(
                        SQL_JSON_ARRAY_NOT_FOUND,
                        "jsonpath wildcard array accessor can only be applied to an array",
                    )
                }
            }
            Kind::Index(subscripts) => {
                if !is_array(value) && !self.lax {
                    return self.structural(
                        SQL_JSON_ARRAY_NOT_FOUND,
                        "jsonpath array accessor can only be applied to an array",
                    );
                }
                let elements = match value {
                    Value::Array(_) => Some(jb.children()),
                    _ => None,
                };
                let size = elements.as_ref().map_or(1, Vec::len) as i64;
                let saved = self.innermost_array_size;
                self.innermost_array_size = size;
                let res = self.subscripts(jsp, jb, elements, size, subscripts, found);
                self.innermost_array_size = saved;
                res
            }
            Kind::Last => {
                assert!(
                    self.innermost_array_size >= 0,
                    "the parser keeps LAST inside subscripts"
                );
                if jsp.next.is_none() && found.is_none() {
                    return Ok(Res::Ok);
                }
                let last = Numeric::from_i64(self.innermost_array_size - 1).text();
                self.next(jsp, Val::computed(Value::Number(last)), found)
            }
            Kind::AnyKey => {
                if is_object(value) {
                    let unwrap_next = self.lax;
                    self.any(jsp.next.as_deref(), jb, found, 1, 1, 1, false, unwrap_next)
                } else if unwrap && is_array(value) {
                    self.unwrap_array(Some(jsp), jb, found, false)
                } else {
                    self.structural(
                        SQL_JSON_OBJECT_NOT_FOUND,
                        "jsonpath wildcard member accessor can only be applied to an object",
                    )
                }
            }
            Kind::Arith(op, left, right) => self.arithmetic(jsp, *op, left, right, jb, found),
            Kind::Negate(operand) | Kind::Plus(operand) => {
                let negate = matches!(jsp.kind, Kind::Negate(_));
                self.unary(jsp, negate, operand, jb, found)
            }
            Kind::Filter(predicate) => {
                if unwrap && is_array(value) {
                    return self.unwrap_array(Some(jsp), jb, found, false);
                }
                if self.nested_truth(predicate, jb)? != Truth::True {
                    return Ok(Res::NotFound);
                }
                self.next(jsp, jb.clone(), found)
            }
            Kind::Any { first, last } => {
                let mut res = Ok(Res::NotFound);
                if *first == 0 {
                    let saved = self.ignore_structural_errors;
                    self.ignore_structural_errors = true;
                    res = self.next(jsp, jb.clone(), found.as_deref_mut());
                    self.ignore_structural_errors = saved;
                    match &res {
                        Ok(Res::Ok) if found.is_none() => return res,
                        // Raised where it happened, in PostgreSQL.
                        Err(fail) if self.throw_errors || !fail.soft => return res,
                        _ => {}
                    }
                }
                if is_container(value) {
                    // PostgreSQL drops an error from level 0 here.
                    let unwrap_next = self.lax;
                    res = self.any(
                        jsp.next.as_deref(),
                        jb,
                        found,
                        1,
                        *first,
                        *last,
                        true,
                        unwrap_next,
                    );
                }
                res
            }
            Kind::Null | Kind::Bool(_) | Kind::Number(_) | Kind::String(_) | Kind::Variable(_) => {
                let variable = matches!(jsp.kind, Kind::Variable(_));
                if jsp.next.is_none() && found.is_none() && !variable {
                    return Ok(Res::Ok);
                }
                let saved = self.base;
                let v = match &jsp.kind {
                    Kind::Null => Val::computed(Value::Null),
                    Kind::Bool(b) => Val::computed(Value::Bool(*b)),
                    Kind::Number(n) => Val::computed(Value::Number(n.clone())),
                    Kind::String(s) => Val::computed(Value::String(s.clone())),
                    Kind::Variable(name) => self.variable(name)?,
                    _ => unreachable!("a literal or variable"),
                };
                let res = self.next(jsp, v, found);
                self.base = saved;
                res
            }
            Kind::Method(method) => self.method(jsp, *method, jb, found, unwrap),
        }
    }

    fn variable(&mut self, name: &str) -> std::result::Result<Val<'a>, Fail> {
        let Some(vars) = self.vars else {
            return Ok(Val::computed(Value::Null));
        };
        let Some(v) = Val::Doc(vars).member(name) else {
            return Err(hard(Error::new(
                UNDEFINED_OBJECT,
                format!("could not find jsonpath variable \"{name}\""),
            )));
        };
        self.base = Base::Doc(vars, 1);
        Ok(v)
    }

    /// `[subscripts]` over an array's elements, or over a scalar taken as
    /// an array of one (lax mode).
    fn subscripts(
        &mut self,
        jsp: &Item,
        jb: &Val<'a>,
        elements: Option<Vec<Val<'a>>>,
        size: i64,
        subscripts: &[(Item, Option<Item>)],
        mut found: Found<'_, 'a>,
    ) -> Exec {
        let mut res = Res::NotFound;
        for (from, to) in subscripts {
            let index_from = self.array_index(from, jb)?;
            let index_to = match to {
                Some(to) => self.array_index(to, jb)?,
                None => index_from,
            };
            if !self.ignore_structural_errors
                && (index_from < 0 || index_from > index_to || index_to >= size)
            {
                return Err(soft(
                    INVALID_SQL_JSON_SUBSCRIPT,
                    "jsonpath array subscript is out of bounds",
                ));
            }
            let index_from = index_from.max(0);
            let index_to = index_to.min(size - 1);
            res = Res::NotFound;
            for index in index_from..=index_to {
                let v = match &elements {
                    Some(elements) => elements[index as usize].clone(),
                    None => jb.clone(),
                };
                if jsp.next.is_none() && found.is_none() {
                    return Ok(Res::Ok);
                }
                res = self.next(jsp, v, found.as_deref_mut())?;
                if res == Res::Ok && found.is_none() {
                    break;
                }
            }
            if res == Res::Ok && found.is_none() {
                break;
            }
        }
        Ok(res)
    }

    /// A subscript's value: one number, truncated to an int4.
    fn array_index(&mut self, jsp: &Item, jb: &Val<'a>) -> std::result::Result<i64, Fail> {
        let mut found = Vec::new();
        self.item(jsp, jb, Some(&mut found))?;
        let [v] = found.as_slice() else {
            return Err(soft(
                INVALID_SQL_JSON_SUBSCRIPT,
                "jsonpath array subscript is not a single numeric value",
            ));
        };
        let Value::Number(n) = v.value() else {
            return Err(soft(
                INVALID_SQL_JSON_SUBSCRIPT,
                "jsonpath array subscript is not a single numeric value",
            ));
        };
        Numeric::parse(n).to_i32().map(i64::from).ok_or_else(|| {
            soft(
                INVALID_SQL_JSON_SUBSCRIPT,
                "jsonpath array subscript is out of integer range",
            )
        })
    }

    /// An array's elements, each through `jsp` (or as results).
    fn unwrap_array(
        &mut self,
        jsp: Option<&Item>,
        jb: &Val<'a>,
        found: Found<'_, 'a>,
        unwrap_elements: bool,
    ) -> Exec {
        self.any(jsp, jb, found, 1, 1, 1, false, unwrap_elements)
    }

    /// PostgreSQL's `executeAnyItem`: the values nested in a container
    /// between levels `first` and `last`, depth first.
    #[allow(clippy::too_many_arguments)]
    fn any(
        &mut self,
        jsp: Option<&Item>,
        container: &Val<'a>,
        mut found: Found<'_, 'a>,
        level: u32,
        first: u32,
        last: u32,
        ignore_structural_errors: bool,
        unwrap_next: bool,
    ) -> Exec {
        let mut res = Res::NotFound;
        if level > last {
            return Ok(res);
        }
        for child in container.children() {
            let leaves_only = first == u32::MAX && last == u32::MAX && !is_container(child.value());
            if level >= first || leaves_only {
                match jsp {
                    Some(jsp) => {
                        let saved = self.ignore_structural_errors;
                        if ignore_structural_errors {
                            self.ignore_structural_errors = true;
                        }
                        let r =
                            self.item_unwrapping(jsp, &child, found.as_deref_mut(), unwrap_next);
                        self.ignore_structural_errors = saved;
                        res = r?;
                        if res == Res::Ok && found.is_none() {
                            break;
                        }
                    }
                    None => match found.as_deref_mut() {
                        Some(found) => found.push(child.clone()),
                        None => return Ok(Res::Ok),
                    },
                }
            }
            if level < last && is_container(child.value()) {
                res = self.any(
                    jsp,
                    &child,
                    found.as_deref_mut(),
                    level + 1,
                    first,
                    last,
                    ignore_structural_errors,
                    unwrap_next,
                )?;
                if res == Res::Ok && found.is_none() {
                    break;
                }
            }
        }
        Ok(res)
    }

    /// PostgreSQL's `executeItemOptUnwrapResult`: the item's results, with
    /// arrays among them unwrapped one level in lax mode.
    fn results(
        &mut self,
        jsp: &Item,
        jb: &Val<'a>,
        unwrap: bool,
    ) -> std::result::Result<Vec<Val<'a>>, Fail> {
        let mut seq = Vec::new();
        self.item(jsp, jb, Some(&mut seq))?;
        if !(unwrap && self.lax) {
            return Ok(seq);
        }
        let mut out = Vec::with_capacity(seq.len());
        for v in seq {
            if is_array(v.value()) {
                out.extend(v.children());
            } else {
                out.push(v);
            }
        }
        Ok(out)
    }

    fn arithmetic(
        &mut self,
        jsp: &Item,
        op: ArithOp,
        left: &Item,
        right: &Item,
        jb: &Val<'a>,
        found: Found<'_, 'a>,
    ) -> Exec {
        let lseq = self.results(left, jb, true)?;
        let rseq = self.results(right, jb, true)?;
        let single = |seq: &[Val<'a>], side: &str| -> std::result::Result<Numeric, Fail> {
            match seq {
                [v] => match v.value() {
                    Value::Number(n) => Ok(Numeric::parse(n)),
                    _ => Err(()),
                },
                _ => Err(()),
            }
            .map_err(|()| {
                soft(
                    SINGLETON_SQL_JSON_ITEM_REQUIRED,
                    format!(
                        "{side} operand of jsonpath operator {} is not a single numeric value",
                        op.symbol()
                    ),
                )
            })
        };
        let l = single(&lseq, "left")?;
        let r = single(&rseq, "right")?;
        let result = match op {
            ArithOp::Add => l.add(&r),
            ArithOp::Sub => l.sub(&r),
            ArithOp::Mul => l.mul(&r),
            ArithOp::Div => l.div(&r).map_err(|e| Fail {
                error: e,
                soft: true,
            })?,
            ArithOp::Mod => l.rem(&r).map_err(|e| Fail {
                error: e,
                soft: true,
            })?,
        };
        if jsp.next.is_none() && found.is_none() {
            return Ok(Res::Ok);
        }
        self.next(jsp, Val::computed(Value::Number(result.text())), found)
    }

    fn unary(
        &mut self,
        jsp: &Item,
        negate: bool,
        operand: &Item,
        jb: &Val<'a>,
        mut found: Found<'_, 'a>,
    ) -> Exec {
        let seq = self.results(operand, jb, true)?;
        let mut res = Res::NotFound;
        let has_next = jsp.next.is_some();
        for v in seq {
            let Value::Number(n) = v.value() else {
                if found.is_none() && !has_next {
                    continue;
                }
                return Err(soft(
                    SQL_JSON_NUMBER_NOT_FOUND,
                    format!(
                        "operand of unary jsonpath operator {} is not a numeric value",
                        if negate { "-" } else { "+" }
                    ),
                ));
            };
            if found.is_none() && !has_next {
                return Ok(Res::Ok);
            }
            let n = Numeric::parse(n);
            let n = if negate { n.neg() } else { n };
            let r = self.next(
                jsp,
                Val::computed(Value::Number(n.text())),
                found.as_deref_mut(),
            )?;
            if r == Res::Ok {
                if found.is_none() {
                    return Ok(Res::Ok);
                }
                res = Res::Ok;
            }
        }
        Ok(res)
    }

    fn method(
        &mut self,
        jsp: &Item,
        method: Method,
        jb: &Val<'a>,
        found: Found<'_, 'a>,
        unwrap: bool,
    ) -> Exec {
        let value = jb.value();
        let not_applicable = |code: &'static str, what: &str| -> Exec {
            Err(soft(
                code,
                format!(
                    "jsonpath item method .{}() can only be applied to {what}",
                    method.name()
                ),
            ))
        };
        match method {
            Method::Type => {
                let name = type_name(value).to_string();
                self.next(jsp, Val::computed(Value::String(name)), found)
            }
            Method::Size => {
                let size = match value {
                    Value::Array(items) => items.len() as i64,
                    _ if !self.lax => {
                        return self.structural(
                            SQL_JSON_ARRAY_NOT_FOUND,
                            "jsonpath item method .size() can only be applied to an array",
                        );
                    }
                    _ => 1,
                };
                let size = Numeric::from_i64(size).text();
                self.next(jsp, Val::computed(Value::Number(size)), found)
            }
            Method::Abs | Method::Floor | Method::Ceiling => {
                if unwrap && is_array(value) {
                    return self.unwrap_array(Some(jsp), jb, found, false);
                }
                let Value::Number(n) = value else {
                    return not_applicable(NON_NUMERIC_SQL_JSON_ITEM, "a numeric value");
                };
                let n = Numeric::parse(n);
                let n = match method {
                    Method::Abs => n.abs(),
                    Method::Floor => n.floor(),
                    _ => n.ceil(),
                };
                if jsp.next.is_none() && found.is_none() {
                    return Ok(Res::Ok);
                }
                self.next(jsp, Val::computed(Value::Number(n.text())), found)
            }
            Method::Double => {
                if unwrap && is_array(value) {
                    return self.unwrap_array(Some(jsp), jb, found, false);
                }
                let v = match value {
                    Value::Number(n) => {
                        let f: f64 = n.parse().unwrap_or(f64::INFINITY);
                        if !f.is_finite() {
                            return Err(soft(
                                NON_NUMERIC_SQL_JSON_ITEM,
                                "numeric argument of jsonpath item method .double() is out of range for type double precision",
                            ));
                        }
                        jb.clone()
                    }
                    Value::String(s) => {
                        let f = parse_float8(s).filter(|f| f.is_finite()).ok_or_else(|| {
                            soft(
                                NON_NUMERIC_SQL_JSON_ITEM,
                                "string argument of jsonpath item method .double() is not a valid representation of a double precision number",
                            )
                        })?;
                        let n = Numeric::from_f64(f).map_err(|e| Fail {
                            error: e,
                            soft: true,
                        })?;
                        Val::computed(Value::Number(n.text()))
                    }
                    _ => {
                        return not_applicable(
                            NON_NUMERIC_SQL_JSON_ITEM,
                            "a string or numeric value",
                        );
                    }
                };
                self.next(jsp, v, found)
            }
            Method::KeyValue => {
                if unwrap && is_array(value) {
                    return self.unwrap_array(Some(jsp), jb, found, false);
                }
                self.key_value(jsp, jb, found)
            }
        }
    }

    /// `.keyvalue()`: an object `{"id", "key", "value"}` per member, where
    /// the id is PostgreSQL's: the object's byte offset inside its base
    /// object's binary jsonb, plus 10^10 times the base object's number.
    fn key_value(&mut self, jsp: &Item, jb: &Val<'a>, mut found: Found<'_, 'a>) -> Exec {
        let Value::Object(members) = jb.value() else {
            return Err(soft(
                SQL_JSON_OBJECT_NOT_FOUND,
                "jsonpath item method .keyvalue() can only be applied to an object",
            ));
        };
        if members.is_empty() {
            return Ok(Res::NotFound);
        }
        let id = self.object_id(jb)?;
        let mut res = Res::NotFound;
        for (key, value) in members {
            res = Res::Ok;
            if jsp.next.is_none() && found.is_none() {
                break;
            }
            let object = Value::object(vec![
                ("key".into(), Value::String(key.clone())),
                ("value".into(), value.clone()),
                ("id".into(), Value::Number(id.to_string())),
            ]);
            let saved = self.base;
            self.base = Base::Generated(self.last_generated_id);
            self.last_generated_id += 1;
            let r = self.next(
                jsp,
                Val::Own(Rc::new(object), Origin::Generated(0)),
                found.as_deref_mut(),
            );
            self.base = saved;
            res = r?;
            if res == Res::Ok && found.is_none() {
                break;
            }
        }
        Ok(res)
    }

    fn object_id(&mut self, jb: &Val<'a>) -> std::result::Result<i64, Fail> {
        const BASE_ID_FACTOR: i64 = 10_000_000_000;
        let unsupported = || {
            hard(Error::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "jsonpath item method .keyvalue() of an object nested in a computed value is not supported yet",
            ))
        };
        match (jb, self.base) {
            (Val::Doc(v), Base::Doc(base, id)) => {
                let layout = self
                    .layouts
                    .entry(base as *const Value)
                    .or_insert_with(|| layout(base));
                let offset = *layout.get(&(*v as *const Value)).ok_or_else(unsupported)?;
                Ok(offset + id * BASE_ID_FACTOR)
            }
            (Val::Own(_, Origin::Generated(offset)), Base::Generated(id)) => {
                Ok(offset + id * BASE_ID_FACTOR)
            }
            _ => Err(unsupported()),
        }
    }

    /// PostgreSQL's `...NoThrow` evaluations: soft errors are not raised
    /// inside, and come out as `None`.
    fn no_throw<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> std::result::Result<T, Fail>,
    ) -> std::result::Result<Option<T>, Fail> {
        let saved = std::mem::replace(&mut self.throw_errors, false);
        let r = f(self);
        self.throw_errors = saved;
        match r {
            Ok(v) => Ok(Some(v)),
            Err(fail) if fail.soft => Ok(None),
            Err(fail) => Err(fail),
        }
    }

    fn nested_truth(&mut self, predicate: &Item, jb: &Val<'a>) -> std::result::Result<Truth, Fail> {
        let saved = std::mem::replace(&mut self.current, jb.clone());
        let truth = self.truth(predicate, jb);
        self.current = saved;
        truth
    }

    /// PostgreSQL's `executeBoolItem`. Errors inside become unknown; only
    /// hard ones get out.
    fn truth(&mut self, jsp: &Item, jb: &Val<'a>) -> std::result::Result<Truth, Fail> {
        Ok(match &jsp.kind {
            Kind::And(l, r) => {
                let left = self.truth(l, jb)?;
                if left == Truth::False {
                    return Ok(Truth::False);
                }
                let right = self.truth(r, jb)?;
                if right == Truth::True { left } else { right }
            }
            Kind::Or(l, r) => {
                let left = self.truth(l, jb)?;
                if left == Truth::True {
                    return Ok(Truth::True);
                }
                let right = self.truth(r, jb)?;
                if right == Truth::False { left } else { right }
            }
            Kind::Not(operand) => match self.truth(operand, jb)? {
                Truth::True => Truth::False,
                Truth::False => Truth::True,
                Truth::Unknown => Truth::Unknown,
            },
            Kind::IsUnknown(operand) => {
                if self.truth(operand, jb)? == Truth::Unknown {
                    Truth::True
                } else {
                    Truth::False
                }
            }
            Kind::Compare(op, l, r) => {
                let op = *op;
                self.predicate(l, Some(r.as_ref()), jb, true, |a, b| {
                    compare(op, a, b.expect("two operands"))
                })?
            }
            Kind::StartsWith(l, r) => {
                self.predicate(l, Some(r.as_ref()), jb, false, |whole, initial| {
                    match (whole, initial.expect("two operands")) {
                        (Value::String(w), Value::String(i)) => truth(w.starts_with(i.as_str())),
                        _ => Truth::Unknown,
                    }
                })?
            }
            Kind::LikeRegex(l, regex) => self.predicate(l, None, jb, false, |s, _| match s {
                Value::String(s) => truth(regex.is_match(s)),
                _ => Truth::Unknown,
            })?,
            Kind::Exists(operand) => {
                if !self.lax {
                    let mut vals = Vec::new();
                    match self.no_throw(|cx| cx.item(operand, jb, Some(&mut vals)))? {
                        None => Truth::Unknown,
                        Some(_) => truth(!vals.is_empty()),
                    }
                } else {
                    match self.no_throw(|cx| cx.item(operand, jb, None))? {
                        None => Truth::Unknown,
                        Some(res) => truth(res == Res::Ok),
                    }
                }
            }
            _ => unreachable!("the parser allows only predicates here"),
        })
    }

    /// PostgreSQL's `executePredicate`: true if any pair of values from
    /// the two sides satisfies `test`; in strict mode unknown if any pair
    /// is unknown, in lax mode only if none is true.
    fn predicate(
        &mut self,
        left: &Item,
        right: Option<&Item>,
        jb: &Val<'a>,
        unwrap_right: bool,
        test: impl Fn(&Value, Option<&Value>) -> Truth,
    ) -> std::result::Result<Truth, Fail> {
        let Some(lseq) = self.no_throw(|cx| cx.results(left, jb, true))? else {
            return Ok(Truth::Unknown);
        };
        let rseq = match right {
            Some(right) => match self.no_throw(|cx| cx.results(right, jb, unwrap_right))? {
                Some(seq) => Some(seq),
                None => return Ok(Truth::Unknown),
            },
            None => None,
        };
        let strict = !self.lax;
        let (mut error, mut found) = (false, false);
        for l in &lseq {
            let rights: Vec<Option<&Value>> = match &rseq {
                Some(rseq) => rseq.iter().map(|r| Some(r.value())).collect(),
                None => vec![None],
            };
            for r in rights {
                match test(l.value(), r) {
                    Truth::Unknown => {
                        if strict {
                            return Ok(Truth::Unknown);
                        }
                        error = true;
                    }
                    Truth::True => {
                        if !strict {
                            return Ok(Truth::True);
                        }
                        found = true;
                    }
                    Truth::False => {}
                }
            }
        }
        Ok(if found {
            Truth::True
        } else if error {
            Truth::Unknown
        } else {
            Truth::False
        })
    }
}

fn truth(b: bool) -> Truth {
    if b { Truth::True } else { Truth::False }
}

/// PostgreSQL's `compareItems`.
fn compare(op: CompareOp, a: &Value, b: &Value) -> Truth {
    use std::cmp::Ordering;
    let ordering = match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) | (_, Value::Null) => return truth(op == CompareOp::Ne),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => value::numeric_cmp(x, y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => return Truth::Unknown,
    };
    truth(match op {
        CompareOp::Eq => ordering.is_eq(),
        CompareOp::Ne => ordering.is_ne(),
        CompareOp::Lt => ordering.is_lt(),
        CompareOp::Le => ordering.is_le(),
        CompareOp::Gt => ordering.is_gt(),
        CompareOp::Ge => ordering.is_ge(),
    })
}

/// float8's input: surrounding blanks allowed, no other junk.
fn parse_float8(s: &str) -> Option<f64> {
    let t = s.trim_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let lower = t.to_ascii_lowercase();
    let plain = lower.trim_start_matches(['+', '-']);
    if matches!(plain, "inf" | "infinity" | "nan") {
        return Some(f64::INFINITY);
    }
    t.parse().ok()
}

/// Where each container of `base` sits in PostgreSQL's binary jsonb form,
/// as a byte offset from the root container: what `.keyvalue()` ids are
/// made of. Mirrors `convertJsonbValue`: a 4-byte varlena header first,
/// containers and numerics aligned to 4 bytes, a 4-byte container header
/// and a 4-byte entry per element (two per member, keys before values).
fn layout(base: &Value) -> HashMap<*const Value, i64> {
    const VARHDRSZ: usize = 4;
    fn pad(len: &mut usize) {
        *len = len.next_multiple_of(4);
    }
    fn walk(v: &Value, len: &mut usize, out: &mut HashMap<*const Value, i64>) {
        match v {
            Value::Null | Value::Bool(_) => {}
            Value::String(s) => *len += s.len(),
            Value::Number(n) => {
                pad(len);
                *len += Numeric::parse(n).datum_bytes();
            }
            Value::Array(items) => {
                pad(len);
                out.insert(v as *const Value, (*len - VARHDRSZ) as i64);
                *len += 4 + 4 * items.len();
                for item in items {
                    walk(item, len, out);
                }
            }
            Value::Object(members) => {
                pad(len);
                out.insert(v as *const Value, (*len - VARHDRSZ) as i64);
                *len += 4 + 8 * members.len();
                for (key, _) in members {
                    *len += key.len();
                }
                for (_, value) in members {
                    walk(value, len, out);
                }
            }
        }
    }
    let mut out = HashMap::new();
    let mut len = VARHDRSZ;
    walk(base, &mut len, &mut out);
    out
}
