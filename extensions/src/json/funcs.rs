//! The strict JSON functions: those behind the operators, and the ones
//! users call by name. Each is a [`Kernel`] over one row's arguments.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

use datafusion::logical_expr::{ScalarUDF, Signature, Volatility};

use super::path::{self, JsonPath};
use super::value::{self, Step, Value, key_order};
use super::{Arg, JsonFn, Kernel, Kind, Out, Returns};
use crate::error::{Error, Result, sqlstate};

/// Every strict JSON function, under PostgreSQL's names.
pub(super) fn all() -> Vec<ScalarUDF> {
    SPECS
        .iter()
        .flat_map(|spec| {
            spec.names
                .iter()
                .map(move |name| ScalarUDF::new_from_impl(spec.function(name)))
        })
        .chain([
            ScalarUDF::new_from_impl(input(Kind::Json)),
            ScalarUDF::new_from_impl(input(Kind::Jsonb)),
        ])
        .collect()
}

/// The function registered as `name`.
pub(super) fn named(name: &str) -> Arc<ScalarUDF> {
    let spec = SPECS
        .iter()
        .find(|s| s.names.contains(&name))
        .unwrap_or_else(|| panic!("no JSON function {name}"));
    Arc::new(ScalarUDF::new_from_impl(spec.function(
        spec.names.iter().find(|n| **n == name).expect("found"),
    )))
}

/// `json_in` and `jsonb_in`, which casts from text become.
pub(super) fn input(kind: Kind) -> JsonFn {
    let (name, kernel): (&'static str, Kernel) = match kind {
        Kind::Json => ("json_in", json_in),
        Kind::Jsonb => ("jsonb_in", jsonb_in),
    };
    JsonFn {
        name,
        default_kind: kind,
        document_first: false,
        signature: Signature::any(1, Volatility::Immutable),
        returns: match kind {
            Kind::Json => Returns::Json,
            Kind::Jsonb => Returns::Jsonb,
        },
        kernel,
    }
}

/// The most arguments `jsonb_extract_path` takes (a longer path can be
/// given as one text array), and a chain of `->` is fused into one call.
pub(super) const PATH_ARGS_MAX: usize = 16;

struct Spec {
    /// The jsonb name first, then json's if PostgreSQL has one.
    names: &'static [&'static str],
    args: std::ops::RangeInclusive<usize>,
    returns: Returns,
    kernel: Kernel,
}

impl Spec {
    fn function(&self, name: &'static str) -> JsonFn {
        let default_kind = if name.starts_with("json_") {
            Kind::Json
        } else {
            Kind::Jsonb
        };
        let signature = Signature::one_of(
            self.args
                .clone()
                .map(datafusion::logical_expr::TypeSignature::Any)
                .collect(),
            Volatility::Immutable,
        );
        JsonFn {
            name,
            default_kind,
            document_first: true,
            signature,
            returns: self.returns,
            kernel: self.kernel,
        }
    }
}

const SPECS: &[Spec] = &[
    Spec {
        names: &["jsonb_object_field", "json_object_field"],
        args: 2..=2,
        returns: Returns::SameKind,
        kernel: get,
    },
    Spec {
        names: &["jsonb_array_element", "json_array_element"],
        args: 2..=2,
        returns: Returns::SameKind,
        kernel: get,
    },
    Spec {
        names: &["jsonb_object_field_text", "json_object_field_text"],
        args: 2..=2,
        returns: Returns::Text,
        kernel: get_text,
    },
    Spec {
        names: &["jsonb_array_element_text", "json_array_element_text"],
        args: 2..=2,
        returns: Returns::Text,
        kernel: get_text,
    },
    Spec {
        names: &["jsonb_extract_path", "json_extract_path"],
        args: 1..=PATH_ARGS_MAX,
        returns: Returns::SameKind,
        kernel: get_path,
    },
    Spec {
        names: &["jsonb_extract_path_text", "json_extract_path_text"],
        args: 1..=PATH_ARGS_MAX,
        returns: Returns::Text,
        kernel: get_path_text,
    },
    Spec {
        names: &["__ciab_jsonb_steps"],
        args: 2..=PATH_ARGS_MAX,
        returns: Returns::SameKind,
        kernel: get,
    },
    Spec {
        names: &["__ciab_jsonb_steps_text"],
        args: 2..=PATH_ARGS_MAX,
        returns: Returns::Text,
        kernel: get_text,
    },
    Spec {
        names: &["__ciab_jsonb_path"],
        args: 2..=2,
        returns: Returns::SameKind,
        kernel: path_operator,
    },
    Spec {
        names: &["__ciab_jsonb_path_text"],
        args: 2..=2,
        returns: Returns::Text,
        kernel: path_text_operator,
    },
    Spec {
        names: &["jsonb_typeof", "json_typeof"],
        args: 1..=1,
        returns: Returns::Text,
        kernel: type_of,
    },
    Spec {
        names: &["jsonb_array_length", "json_array_length"],
        args: 1..=1,
        returns: Returns::Int,
        kernel: array_length,
    },
    Spec {
        names: &["jsonb_contains"],
        args: 2..=2,
        returns: Returns::Bool,
        kernel: contains,
    },
    Spec {
        names: &["jsonb_exists"],
        args: 2..=2,
        returns: Returns::Bool,
        kernel: exists,
    },
    Spec {
        names: &["jsonb_exists_any"],
        args: 2..=2,
        returns: Returns::Bool,
        kernel: exists_any,
    },
    Spec {
        names: &["jsonb_exists_all"],
        args: 2..=2,
        returns: Returns::Bool,
        kernel: exists_all,
    },
    Spec {
        names: &["jsonb_concat"],
        args: 2..=2,
        returns: Returns::Jsonb,
        kernel: concat,
    },
    Spec {
        names: &["jsonb_delete"],
        args: 2..=2,
        returns: Returns::Jsonb,
        kernel: delete,
    },
    Spec {
        names: &["jsonb_delete_path"],
        args: 2..=2,
        returns: Returns::Jsonb,
        kernel: delete_path,
    },
    Spec {
        names: &["jsonb_set"],
        args: 3..=4,
        returns: Returns::Jsonb,
        kernel: set,
    },
    Spec {
        names: &["jsonb_insert"],
        args: 3..=4,
        returns: Returns::Jsonb,
        kernel: insert,
    },
    Spec {
        names: &["jsonb_strip_nulls"],
        args: 1..=1,
        returns: Returns::Jsonb,
        kernel: strip_nulls,
    },
    Spec {
        names: &["jsonb_pretty"],
        args: 1..=1,
        returns: Returns::Text,
        kernel: pretty,
    },
    Spec {
        names: &["jsonb_path_exists"],
        args: 2..=4,
        returns: Returns::Bool,
        kernel: path_exists,
    },
    Spec {
        names: &["jsonb_path_match"],
        args: 2..=4,
        returns: Returns::Bool,
        kernel: path_match,
    },
    Spec {
        names: &["jsonb_path_query_array"],
        args: 2..=4,
        returns: Returns::Jsonb,
        kernel: path_query_array,
    },
    Spec {
        names: &["jsonb_path_query_first"],
        args: 2..=4,
        returns: Returns::Jsonb,
        kernel: path_query_first,
    },
    Spec {
        names: &[PATH_EXISTS_OPERATOR],
        args: 2..=2,
        returns: Returns::Bool,
        kernel: path_exists_operator,
    },
    Spec {
        names: &[PATH_MATCH_OPERATOR],
        args: 2..=2,
        returns: Returns::Bool,
        kernel: path_match_operator,
    },
];

/// The functions behind `@?` and `@@`: `jsonb_path_exists` and
/// `jsonb_path_match` with no variables, silent.
pub(super) const PATH_EXISTS_OPERATOR: &str = "__ciab_jsonb_path_exists_opr";
pub(super) const PATH_MATCH_OPERATOR: &str = "__ciab_jsonb_path_match_opr";

fn jsonb(arg: &Arg<'_>) -> Result<Value> {
    value::parse(arg.text()?)
}

fn jsonb_out(v: &Value) -> Option<Out> {
    Some(Out::Text(v.to_jsonb_text()))
}

fn json_in(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let text = args[0].text()?;
    value::validate(text)?;
    Ok(Some(Out::Text(text.to_string())))
}

fn jsonb_in(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    Ok(jsonb_out(&jsonb(&args[0])?))
}

/// The step `->` takes: a key, or a position in an array.
fn step<'a>(arg: &'a Arg<'_>) -> Result<Step<'a>> {
    match arg {
        Arg::Int(i) => Ok(Step::Index(*i)),
        Arg::Text(t) => Ok(Step::Key(t)),
        other => Err(other.mismatch("text or integer")),
    }
}

/// The value `->` finds (`->>` as text), or a chain of them
/// (`doc -> 'a' -> 0`, one argument a step), in one scan.
fn field<'a>(kind: Kind, args: &[Arg<'a>]) -> Result<Option<&'a str>> {
    let mut found = args[0].text()?.trim();
    for arg in &args[1..] {
        let step = step(arg)?;
        // PostgreSQL keeps a jsonb scalar as a one-item array, and `->`
        // with a position shows it: `'"s"'::jsonb -> 0` is `"s"`.
        if kind == Kind::Jsonb
            && let Step::Index(i) = step
            && !matches!(value::type_of(found), "object" | "array")
        {
            if i == 0 || i == -1 {
                continue;
            }
            return Ok(None);
        }
        match value::locate(found, &[step], kind == Kind::Jsonb)? {
            Some((start, end)) => found = &found[start..end],
            None => return Ok(None),
        }
    }
    Ok(Some(found))
}

/// The value `#>` and `jsonb_extract_path` find: the path is a text array
/// (for `#>`, text is read as one: `'{a,b}'`) or the arguments after the
/// document (each text one element), each element a key or a position.
fn at_path<'a>(kind: Kind, args: &[Arg<'a>], operator: bool) -> Result<Option<&'a str>> {
    let text = args[0].text()?;
    let mut elements: Vec<String> = Vec::new();
    for arg in &args[1..] {
        let items = match arg {
            Arg::Text(t) if !operator => vec![Some(t.to_string())],
            Arg::Int(i) => vec![Some(i.to_string())],
            other => other.texts()?,
        };
        for item in items {
            // A NULL element leads nowhere.
            let Some(item) = item else { return Ok(None) };
            elements.push(item);
        }
    }
    let steps: Vec<Step<'_>> = elements.iter().map(|e| Step::Text(e)).collect();
    Ok(value::locate(text, &steps, kind == Kind::Jsonb)?.map(|(s, e)| &text[s..e]))
}

fn as_json(found: Option<&str>) -> Option<Out> {
    found.map(|s| Out::Text(s.to_string()))
}

fn as_text(found: Option<&str>) -> Result<Option<Out>> {
    Ok(match found {
        Some(s) => value::as_text(s)?.map(Out::Text),
        None => None,
    })
}

fn get(kind: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    Ok(as_json(field(kind, args)?))
}

fn get_text(kind: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    as_text(field(kind, args)?)
}

fn get_path(kind: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    Ok(as_json(at_path(kind, args, false)?))
}

fn get_path_text(kind: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    as_text(at_path(kind, args, false)?)
}

fn path_operator(kind: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    Ok(as_json(at_path(kind, args, true)?))
}

fn path_text_operator(kind: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    as_text(at_path(kind, args, true)?)
}

fn type_of(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    Ok(Some(Out::Text(value::type_of(args[0].text()?).to_string())))
}

fn array_length(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let text = args[0].text()?;
    match value::array_items(text)? {
        Some(items) => Ok(Some(Out::Int(items.len() as i32))),
        None => Err(Error::invalid_parameter(match value::type_of(text) {
            "object" => "cannot get array length of a non-array",
            _ => "cannot get array length of a scalar",
        })),
    }
}

/// A document argument as canonical jsonb text: jsonb is (see
/// `JsonFn::invoke_with_args`), json is parsed into it.
fn canonical<'a>(kind: Kind, arg: &'a Arg<'_>) -> Result<Cow<'a, str>> {
    let text = arg.text()?;
    Ok(match kind {
        Kind::Jsonb => text.into(),
        Kind::Json => value::parse(text)?.to_jsonb_text().into(),
    })
}

fn contains(kind: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let want = jsonb(&args[1])?;
    let have = canonical(kind, &args[0])?;
    Ok(Some(Out::Bool(value::contains_text(&have, &want)?)))
}

fn exists(kind: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let have = canonical(kind, &args[0])?;
    Ok(Some(Out::Bool(value::has_key_text(
        &have,
        args[1].text()?,
    )?)))
}

/// A key list's keys; NULL elements match nothing.
fn keys(arg: &Arg<'_>) -> Result<Vec<String>> {
    Ok(arg.texts()?.into_iter().flatten().collect())
}

fn exists_any(kind: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let have = canonical(kind, &args[0])?;
    for key in keys(&args[1])? {
        if value::has_key_text(&have, &key)? {
            return Ok(Some(Out::Bool(true)));
        }
    }
    Ok(Some(Out::Bool(false)))
}

fn exists_all(kind: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let have = canonical(kind, &args[0])?;
    for key in keys(&args[1])? {
        if !value::has_key_text(&have, &key)? {
            return Ok(Some(Out::Bool(false)));
        }
    }
    Ok(Some(Out::Bool(true)))
}

/// `||`: objects merge (the right wins), arrays concatenate, and anything
/// else joins an array as an item (two non-arrays make a two-item array).
fn concat(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let out = match (jsonb(&args[0])?, jsonb(&args[1])?) {
        (Value::Object(mut a), Value::Object(b)) => {
            a.extend(b);
            Value::object(a)
        }
        (Value::Array(mut a), Value::Array(b)) => {
            a.extend(b);
            Value::Array(a)
        }
        (Value::Array(mut a), b) => {
            a.push(b);
            Value::Array(a)
        }
        (a, Value::Array(b)) => Value::Array(std::iter::once(a).chain(b).collect()),
        (a, b) => Value::Array(vec![a, b]),
    };
    Ok(jsonb_out(&out))
}

/// `-`: a key (or string items), several keys, or a position.
fn delete(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let v = jsonb(&args[0])?;
    if v.is_scalar() {
        return Err(Error::invalid_parameter("cannot delete from scalar"));
    }
    let out = match (&args[1], v) {
        (Arg::Int(i), Value::Array(mut items)) => {
            if let Some(at) = position(*i, items.len()) {
                items.remove(at);
            }
            Value::Array(items)
        }
        (Arg::Int(_), _) => {
            return Err(Error::invalid_parameter(
                "cannot delete from object using integer index",
            ));
        }
        (names, v) => {
            let names: Vec<String> = match names {
                Arg::Text(t) => vec![t.to_string()],
                other => keys(other)?,
            };
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            match v {
                Value::Object(members) => Value::Object(
                    members
                        .into_iter()
                        .filter(|(k, _)| !names.contains(&k.as_str()))
                        .collect(),
                ),
                Value::Array(items) => Value::Array(
                    items
                        .into_iter()
                        .filter(|i| !matches!(i, Value::String(s) if names.contains(&s.as_str())))
                        .collect(),
                ),
                _ => unreachable!("scalars refused above"),
            }
        }
    };
    Ok(jsonb_out(&out))
}

/// A position in an array of `len` items, negative from the end; `None`
/// if outside it.
fn position(index: i64, len: usize) -> Option<usize> {
    let at = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&at).then_some(at as usize)
}

/// The text path of `#-`, `jsonb_set` and `jsonb_insert`.
fn text_path(arg: &Arg<'_>) -> Result<Vec<String>> {
    arg.texts()?
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            item.ok_or_else(|| {
                Error::invalid_parameter(format!("path element at position {} is null", i + 1))
            })
        })
        .collect()
}

fn array_index(step: &str, depth: usize) -> Result<i64> {
    step.trim().parse::<i64>().map_err(|_| {
        Error::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!(
                "path element at position {} is not an integer: \"{step}\"",
                depth + 1
            ),
        )
    })
}

fn delete_path(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let mut v = jsonb(&args[0])?;
    if v.is_scalar() {
        return Err(Error::invalid_parameter("cannot delete path in scalar"));
    }
    let path = text_path(&args[1])?;
    if let Some((last, parents)) = path.split_last()
        && let Some(target) = walk(&mut v, parents)?
    {
        match target {
            Value::Object(members) => members.retain(|(k, _)| k != last),
            Value::Array(items) => {
                if let Some(at) = position(array_index(last, parents.len())?, items.len()) {
                    items.remove(at);
                }
            }
            _ => {}
        }
    }
    Ok(jsonb_out(&v))
}

/// The container at `path` inside `v`, if every step finds one.
fn walk<'v>(mut v: &'v mut Value, path: &[String]) -> Result<Option<&'v mut Value>> {
    for (depth, step) in path.iter().enumerate() {
        v = match v {
            Value::Object(members) => match members.binary_search_by(|(k, _)| key_order(k, step)) {
                Ok(i) => &mut members[i].1,
                Err(_) => return Ok(None),
            },
            Value::Array(items) => {
                let len = items.len();
                match position(array_index(step, depth)?, len) {
                    Some(at) => &mut items[at],
                    None => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
    }
    Ok(Some(v))
}

fn flag(args: &[Arg<'_>], i: usize, default: bool) -> Result<bool> {
    match args.get(i) {
        Some(Arg::Bool(b)) => Ok(*b),
        Some(other) => Err(other.mismatch("boolean")),
        None => Ok(default),
    }
}

/// `jsonb_set(target, path, new [, create_if_missing])`.
fn set(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let mut v = jsonb(&args[0])?;
    if v.is_scalar() {
        return Err(Error::invalid_parameter("cannot set path in scalar"));
    }
    let path = text_path(&args[1])?;
    let new = jsonb(&args[2])?;
    let create = flag(args, 3, true)?;
    if let Some((last, parents)) = path.split_last()
        && let Some(target) = walk(&mut v, parents)?
    {
        match target {
            Value::Object(members) => match members.binary_search_by(|(k, _)| key_order(k, last)) {
                Ok(i) => members[i].1 = new,
                Err(i) if create => members.insert(i, (last.clone(), new)),
                Err(_) => {}
            },
            Value::Array(items) => {
                let index = array_index(last, parents.len())?;
                match position(index, items.len()) {
                    Some(at) => items[at] = new,
                    None if create && index < 0 => items.insert(0, new),
                    None if create => items.push(new),
                    None => {}
                }
            }
            _ => {}
        }
    }
    Ok(jsonb_out(&v))
}

/// `jsonb_insert(target, path, new [, insert_after])`.
fn insert(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let mut v = jsonb(&args[0])?;
    if v.is_scalar() {
        return Err(Error::invalid_parameter("cannot set path in scalar"));
    }
    let path = text_path(&args[1])?;
    let new = jsonb(&args[2])?;
    let after = flag(args, 3, false)?;
    if let Some((last, parents)) = path.split_last()
        && let Some(target) = walk(&mut v, parents)?
    {
        match target {
            Value::Object(members) => match members.binary_search_by(|(k, _)| key_order(k, last)) {
                Ok(_) => {
                    return Err(Error::invalid_parameter("cannot replace existing key")
                        .with_detail("Try using the function jsonb_set to replace key value."));
                }
                Err(i) => members.insert(i, (last.clone(), new)),
            },
            Value::Array(items) => {
                let index = array_index(last, parents.len())?;
                let len = items.len() as i64;
                let at = if index < 0 { len + index } else { index };
                let at = if after { at + 1 } else { at };
                items.insert(at.clamp(0, len) as usize, new);
            }
            _ => {}
        }
    }
    Ok(jsonb_out(&v))
}

fn strip_nulls(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    fn strip(v: Value) -> Value {
        match v {
            Value::Object(members) => Value::Object(
                members
                    .into_iter()
                    .filter(|(_, v)| *v != Value::Null)
                    .map(|(k, v)| (k, strip(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(strip).collect()),
            other => other,
        }
    }
    Ok(jsonb_out(&strip(jsonb(&args[0])?)))
}

fn pretty(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let mut out = String::new();
    jsonb(&args[0])?.write_pretty(&mut out, 0);
    Ok(Some(Out::Text(out)))
}

/// A `jsonb_path_*` call's document, path, variables (`'{}'` unless
/// given) and `silent` flag (false unless given).
pub(super) fn path_args(args: &[Arg<'_>]) -> Result<(Value, Rc<JsonPath>, Value, bool)> {
    let (doc, path) = path_operands(args)?;
    let vars = match args.get(2) {
        Some(vars) => jsonb(vars)?,
        None => Value::Object(vec![]),
    };
    Ok((doc, path, vars, flag(args, 3, false)?))
}

/// A path call's document and path. The operators take only these: they
/// have no variables (`$x` is null) and are silent.
fn path_operands(args: &[Arg<'_>]) -> Result<(Value, Rc<JsonPath>)> {
    Ok((jsonb(&args[0])?, path::compile(args[1].text()?)?))
}

fn path_exists(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let (doc, path, vars, silent) = path_args(args)?;
    Ok(path::exists(&path, &doc, Some(&vars), silent)?.map(Out::Bool))
}

fn path_exists_operator(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let (doc, path) = path_operands(args)?;
    Ok(path::exists(&path, &doc, None, true)?.map(Out::Bool))
}

fn path_match(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let (doc, path, vars, silent) = path_args(args)?;
    Ok(path::matches(&path, &doc, Some(&vars), silent)?.map(Out::Bool))
}

fn path_match_operator(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let (doc, path) = path_operands(args)?;
    Ok(path::matches(&path, &doc, None, true)?.map(Out::Bool))
}

fn path_query_array(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let (doc, path, vars, silent) = path_args(args)?;
    let found = path::query(&path, &doc, Some(&vars), silent)?;
    Ok(jsonb_out(&Value::Array(found)))
}

fn path_query_first(_: Kind, args: &[Arg<'_>]) -> Result<Option<Out>> {
    let (doc, path, vars, silent) = path_args(args)?;
    let found = path::query(&path, &doc, Some(&vars), silent)?;
    Ok(found.first().and_then(jsonb_out))
}
