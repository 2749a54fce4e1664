//! SQL/JSON path expressions (`jsonpath`), parsed and evaluated as
//! PostgreSQL 15 does for `jsonb_path_query`, `jsonb_path_exists`,
//! `jsonb_path_match`, `@?` and `@@`.
//!
//! A path is a chain of items, each applied to every value the one before
//! it produced:
//!
//! ```text
//!  lax $.orders[*] ? (@.total > $min) .id
//!      │  │      │    └ filter: keeps values whose predicate is true
//!      │  │      └ every element
//!      │  └ member "orders"
//!      └ the document
//! ```
//!
//! The evaluator follows PostgreSQL's `jsonpath_exec.c` item by item, since
//! its results hinge on details the standard leaves open: lax mode unwraps
//! one level of arrays and ignores structural errors (a missing key yields
//! nothing), strict mode reports them; predicates are three-valued, with
//! errors inside them becoming unknown; `silent` suppresses the errors
//! PostgreSQL lets it suppress but not, say, an undefined variable.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use regex::Regex;

use super::numeric::Numeric;
use super::value::{self, Value, key_order};
use crate::error::{Error, Result, sqlstate};

/// Deeper nesting, or a longer chain of steps, than this in a path is
/// refused (54001) rather than risking the stack of the recursive parser
/// and evaluator.
const PATH_DEPTH_MAX: usize = 256;
const SYNTAX_ERROR: &str = "42601";
const UNDEFINED_OBJECT: &str = "42704";
const INVALID_REGULAR_EXPRESSION: &str = "2201B";
const INVALID_SQL_JSON_SUBSCRIPT: &str = "22033";
const NON_NUMERIC_SQL_JSON_ITEM: &str = "22036";
const SINGLETON_SQL_JSON_ITEM_REQUIRED: &str = "22038";
const SQL_JSON_ARRAY_NOT_FOUND: &str = "22039";
const SQL_JSON_MEMBER_NOT_FOUND: &str = "2203A";
const SQL_JSON_NUMBER_NOT_FOUND: &str = "2203B";
const SQL_JSON_OBJECT_NOT_FOUND: &str = "2203C";

/// A parsed path.
#[derive(Debug, Clone)]
pub struct JsonPath {
    lax: bool,
    expr: Item,
}

/// One item of a chain and what follows it.
#[derive(Debug, Clone)]
struct Item {
    kind: Kind,
    next: Option<Box<Item>>,
}

#[derive(Debug, Clone)]
enum Kind {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Variable(String),
    Root,
    Current,
    Last,
    Key(String),
    AnyKey,
    AnyArray,
    /// Subscripts: an index or a range `from to to`.
    Index(Vec<(Item, Option<Item>)>),
    /// `.**{first to last}`; `u32::MAX` stands for `last`.
    Any {
        first: u32,
        last: u32,
    },
    Filter(Box<Item>),
    Method(Method),
    Arith(ArithOp, Box<Item>, Box<Item>),
    Negate(Box<Item>),
    Plus(Box<Item>),
    Compare(CompareOp, Box<Item>, Box<Item>),
    And(Box<Item>, Box<Item>),
    Or(Box<Item>, Box<Item>),
    Not(Box<Item>),
    IsUnknown(Box<Item>),
    Exists(Box<Item>),
    StartsWith(Box<Item>, Box<Item>),
    LikeRegex(Box<Item>, Regex),
}

impl Kind {
    fn is_predicate(&self) -> bool {
        matches!(
            self,
            Kind::Compare(..)
                | Kind::And(..)
                | Kind::Or(..)
                | Kind::Not(_)
                | Kind::IsUnknown(_)
                | Kind::Exists(_)
                | Kind::StartsWith(..)
                | Kind::LikeRegex(..)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Type,
    Size,
    Double,
    Abs,
    Floor,
    Ceiling,
    KeyValue,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Type => "type",
            Method::Size => "size",
            Method::Double => "double",
            Method::Abs => "abs",
            Method::Floor => "floor",
            Method::Ceiling => "ceiling",
            Method::KeyValue => "keyvalue",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl ArithOp {
    fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

thread_local! {
    /// `jsonb_path_*` keep the last path they parsed per thread: a
    /// query's path is nearly always one constant.
    static LAST_PARSED: RefCell<Option<(String, Rc<JsonPath>)>> = const { RefCell::new(None) };
}

/// Parses a path, reusing the last one this thread parsed when the text
/// is the same.
pub fn compile(text: &str) -> Result<Rc<JsonPath>> {
    if let Some(path) = LAST_PARSED.with_borrow(|last| {
        last.as_ref()
            .filter(|(t, _)| t == text)
            .map(|(_, p)| p.clone())
    }) {
        return Ok(path);
    }
    let path = Rc::new(parse(text)?);
    LAST_PARSED.set(Some((text.to_string(), path.clone())));
    Ok(path)
}

// ---------------------------------------------------------------------------
// Lexing

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Dollar,
    Variable(String),
    At,
    Dot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Star,
    AnyPath,
    Question,
    Plus,
    Minus,
    Slash,
    Percent,
    Compare(CompareOp),
    And,
    Or,
    Not,
    /// A numeric literal: its canonical text, and whether it is an integer.
    Number(String, bool),
    String(String),
    /// An identifier as written; keywords are identifiers the parser
    /// recognises where it expects one.
    Ident(String),
    End,
}

/// Characters that end an identifier (PostgreSQL's `special` and blanks).
fn is_special(c: char) -> bool {
    "?%$.[]{}()|&!=<>@#,*:-+/\\\" \t\n\r\x0c".contains(c)
}

fn syntax_error(message: &str, near: Option<&str>) -> Error {
    Error::new(
        SYNTAX_ERROR,
        match near {
            Some(near) => format!("{message} at or near \"{near}\" of jsonpath input"),
            None => format!("{message} at end of jsonpath input"),
        },
    )
}

struct Lexer<'t> {
    text: &'t str,
    pos: usize,
}

impl<'t> Lexer<'t> {
    fn tokens(text: &'t str) -> Result<Vec<(Token, &'t str)>> {
        let mut lexer = Lexer { text, pos: 0 };
        let mut out = Vec::new();
        loop {
            lexer.skip_blanks()?;
            let start = lexer.pos;
            let token = lexer.token()?;
            let end = token == Token::End;
            out.push((token, &text[start..lexer.pos]));
            if end {
                return Ok(out);
            }
        }
    }

    fn rest(&self) -> &'t str {
        &self.text[self.pos..]
    }

    fn skip_blanks(&mut self) -> Result<()> {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\r', '\x0c']);
            self.pos += rest.len() - trimmed.len();
            if let Some(comment) = trimmed.strip_prefix("/*") {
                let Some(end) = comment.find("*/") else {
                    return Err(syntax_error("unexpected end of comment", None));
                };
                self.pos += 2 + end + 2;
            } else {
                return Ok(());
            }
        }
    }

    fn token(&mut self) -> Result<Token> {
        let rest = self.rest();
        let Some(c) = rest.chars().next() else {
            return Ok(Token::End);
        };
        for (text, token) in [
            ("&&", Token::And),
            ("||", Token::Or),
            ("**", Token::AnyPath),
            ("==", Token::Compare(CompareOp::Eq)),
            ("!=", Token::Compare(CompareOp::Ne)),
            ("<>", Token::Compare(CompareOp::Ne)),
            ("<=", Token::Compare(CompareOp::Le)),
            (">=", Token::Compare(CompareOp::Ge)),
        ] {
            if rest.starts_with(text) {
                self.pos += 2;
                return Ok(token);
            }
        }
        let single = match c {
            '@' => Some(Token::At),
            '.' if !rest[1..].starts_with(|c: char| c.is_ascii_digit()) => Some(Token::Dot),
            '[' => Some(Token::LBracket),
            ']' => Some(Token::RBracket),
            '(' => Some(Token::LParen),
            ')' => Some(Token::RParen),
            '{' => Some(Token::LBrace),
            '}' => Some(Token::RBrace),
            ',' => Some(Token::Comma),
            '*' => Some(Token::Star),
            '?' => Some(Token::Question),
            '+' => Some(Token::Plus),
            '-' => Some(Token::Minus),
            '/' => Some(Token::Slash),
            '%' => Some(Token::Percent),
            '!' => Some(Token::Not),
            '<' => Some(Token::Compare(CompareOp::Lt)),
            '>' => Some(Token::Compare(CompareOp::Gt)),
            _ => None,
        };
        if let Some(token) = single {
            self.pos += 1;
            return Ok(token);
        }
        match c {
            '$' => {
                self.pos += 1;
                if self.rest().starts_with('"') {
                    Ok(Token::Variable(self.string()?))
                } else {
                    let name = self.identifier();
                    Ok(if name.is_empty() {
                        Token::Dollar
                    } else {
                        Token::Variable(name)
                    })
                }
            }
            '"' => Ok(Token::String(self.string()?)),
            '0'..='9' | '.' => self.number(),
            c if is_special(c) => Err(syntax_error("syntax error", Some(&c.to_string()))),
            _ => Ok(Token::Ident(self.identifier())),
        }
    }

    fn identifier(&mut self) -> String {
        let rest = self.rest();
        let end = rest.find(is_special).unwrap_or(rest.len());
        self.pos += end;
        rest[..end].to_string()
    }

    /// PostgreSQL's numeric literals: `0`, `12`, `1.5`, `1.`, `.5`,
    /// `1e-3`; one followed by identifier characters is an error.
    fn number(&mut self) -> Result<Token> {
        let bytes = self.rest().as_bytes();
        let digits = |from: usize| {
            bytes[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let mut end = digits(0);
        let mut integer = true;
        if end < bytes.len() && bytes[end] == b'.' {
            integer = false;
            end += 1 + digits(end + 1);
        }
        let mut invalid = false;
        if end < bytes.len() && matches!(bytes[end], b'e' | b'E') {
            integer = false;
            let mut exp = end + 1;
            if exp < bytes.len() && matches!(bytes[exp], b'+' | b'-') {
                exp += 1;
            }
            let n = digits(exp);
            invalid = n == 0;
            end = exp + n;
        }
        let text = &self.rest()[..end];
        // PostgreSQL reports a bad literal with what follows it up to the
        // next special character.
        let junk_end = end
            + self.rest()[end..]
                .find(is_special)
                .unwrap_or(self.rest().len() - end);
        let leading_zero =
            text.len() > 1 && text.starts_with('0') && text.as_bytes()[1].is_ascii_digit();
        let junk = self.rest()[end..].starts_with(|c: char| !is_special(c));
        self.pos += end;
        if invalid {
            return Err(syntax_error("invalid numeric literal", Some(text)));
        }
        if junk || leading_zero {
            let near = &self.text[self.pos - end..self.pos - end + junk_end];
            return Err(syntax_error(
                "trailing junk after numeric literal",
                Some(near),
            ));
        }
        let canonical =
            value::canonical_numeric(text).map_err(|e| Error::new(SYNTAX_ERROR, e.message))?;
        Ok(Token::Number(canonical, integer))
    }

    /// A double-quoted string with JSON's escapes and `\xNN`, `\u{N..}`.
    fn string(&mut self) -> Result<String> {
        debug_assert!(self.rest().starts_with('"'));
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    match e {
                        'b' => out.push('\x08'),
                        'f' => out.push('\x0c'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'v' => out.push('\x0b'),
                        'x' => {
                            let hex: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
                            let code = u32::from_str_radix(&hex, 16)
                                .ok()
                                .filter(|_| hex.len() == 2)
                                .and_then(char::from_u32)
                                .ok_or_else(|| {
                                    syntax_error("invalid hexadecimal character sequence", None)
                                })?;
                            out.push(code);
                        }
                        'u' => {
                            let rest = &self.rest()[i + 2..];
                            let (code, used) = unicode_escape(rest)?;
                            let code = if (0xD800..0xDC00).contains(&code) {
                                // A surrogate pair: the low half must follow.
                                let low = rest[used..]
                                    .strip_prefix("\\u")
                                    .map(unicode_escape)
                                    .transpose()?
                                    .filter(|(low, _)| (0xDC00..0xE000).contains(low));
                                let Some((low, low_used)) = low else {
                                    return Err(syntax_error(
                                        "invalid Unicode surrogate pair",
                                        None,
                                    ));
                                };
                                for _ in 0..2 + low_used {
                                    chars.next();
                                }
                                0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                code
                            };
                            let c =
                                char::from_u32(code).filter(|c| *c != '\0').ok_or_else(|| {
                                    Error::new("22P05", "unsupported Unicode escape sequence")
                                })?;
                            out.push(c);
                            for _ in 0..used {
                                chars.next();
                            }
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
        Err(syntax_error("unexpected end of quoted string", None))
    }
}

/// The code point of a `\u` escape's digits (`XXXX` or `{X..}`), and the
/// bytes they take.
fn unicode_escape(rest: &str) -> Result<(u32, usize)> {
    let invalid = || syntax_error("invalid Unicode escape sequence", None);
    if let Some(braced) = rest.strip_prefix('{') {
        let end = braced.find('}').ok_or_else(invalid)?;
        let digits = &braced[..end];
        if digits.is_empty() || digits.len() > 6 {
            return Err(invalid());
        }
        let code = u32::from_str_radix(digits, 16).map_err(|_| invalid())?;
        return Ok((code, end + 2));
    }
    let digits = rest.get(..4).ok_or_else(invalid)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    Ok((u32::from_str_radix(digits, 16).map_err(|_| invalid())?, 4))
}

// ---------------------------------------------------------------------------
// Parsing

/// PostgreSQL's keywords, matched regardless of case except the literals.
fn keyword(ident: &str, word: &str) -> bool {
    if matches!(word, "null" | "true" | "false") {
        ident == word
    } else {
        ident.eq_ignore_ascii_case(word)
    }
}

fn parse(text: &str) -> Result<JsonPath> {
    let tokens = Lexer::tokens(text)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        filters: 0,
        subscripts: 0,
        depth: 0,
    };
    let lax = match p.peek() {
        Token::Ident(w) if keyword(w, "strict") => {
            p.pos += 1;
            false
        }
        Token::Ident(w) if keyword(w, "lax") => {
            p.pos += 1;
            true
        }
        _ => true,
    };
    let expr = p.or()?;
    if *p.peek() != Token::End {
        return Err(p.unexpected());
    }
    Ok(JsonPath { lax, expr })
}

struct Parser<'t> {
    tokens: Vec<(Token, &'t str)>,
    pos: usize,
    /// Filters the parser is inside, where `@` is allowed.
    filters: usize,
    /// Subscripts the parser is inside, where `last` is allowed.
    subscripts: usize,
    depth: usize,
}

fn too_deep() -> Error {
    Error::new(
        sqlstate::STATEMENT_TOO_COMPLEX,
        format!("jsonpath nesting exceeds the maximum allowed depth ({PATH_DEPTH_MAX})"),
    )
}

fn item(kind: Kind) -> Item {
    Item { kind, next: None }
}

/// Appends `tail` to the end of `head`'s chain.
fn chain(head: &mut Item, tail: Item) {
    let mut at = head;
    while at.next.is_some() {
        at = at.next.as_mut().expect("checked");
    }
    at.next = Some(Box::new(tail));
}

/// Whether an item can stand where a value is expected (not a bare
/// predicate).
fn is_expr(item: &Item) -> bool {
    !item.kind.is_predicate() || item.next.is_some()
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos].0
    }

    fn peek_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Token::Ident(w) if keyword(w, word))
    }

    fn bump(&mut self) -> Token {
        let token = self.tokens[self.pos].0.clone();
        if token != Token::End {
            self.pos += 1;
        }
        token
    }

    fn unexpected(&self) -> Error {
        match &self.tokens[self.pos] {
            (Token::End, _) => syntax_error("syntax error", None),
            // PostgreSQL's scanner ends an identifier on the next
            // character, so one that ends the input is reported at its end.
            (Token::Ident(_), _) if self.tokens[self.pos + 1].0 == Token::End => {
                syntax_error("syntax error", None)
            }
            (_, text) => syntax_error("syntax error", Some(text)),
        }
    }

    fn expect(&mut self, token: Token) -> Result<()> {
        if *self.peek() == token {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect_keyword(&mut self, word: &str) -> Result<()> {
        if self.peek_keyword(word) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.depth += 1;
        if self.depth > PATH_DEPTH_MAX {
            self.depth -= 1;
            return Err(too_deep());
        }
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn predicate(&mut self, item: Item) -> Result<Item> {
        if is_expr(&item) {
            Err(self.unexpected())
        } else {
            Ok(item)
        }
    }

    fn expr(&mut self, item: Item) -> Result<Item> {
        if is_expr(&item) {
            Ok(item)
        } else {
            Err(self.unexpected())
        }
    }

    fn or(&mut self) -> Result<Item> {
        let mut left = self.and()?;
        while *self.peek() == Token::Or {
            left = self.predicate(left)?;
            self.pos += 1;
            let right = self.and()?;
            let right = self.predicate(right)?;
            left = item(Kind::Or(Box::new(left), Box::new(right)));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Item> {
        let mut left = self.not()?;
        while *self.peek() == Token::And {
            left = self.predicate(left)?;
            self.pos += 1;
            let right = self.not()?;
            let right = self.predicate(right)?;
            left = item(Kind::And(Box::new(left), Box::new(right)));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Item> {
        if *self.peek() == Token::Not {
            self.pos += 1;
            // Only a parenthesised predicate or exists() may follow.
            if *self.peek() != Token::LParen && !self.peek_keyword("exists") {
                return Err(self.unexpected());
            }
            let operand = self.nested(|p| p.primary())?;
            let operand = self.predicate(operand)?;
            return Ok(item(Kind::Not(Box::new(operand))));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Item> {
        let left = self.additive()?;
        if let Token::Compare(op) = *self.peek() {
            let left = self.expr(left)?;
            self.pos += 1;
            let right = self.additive()?;
            let right = self.expr(right)?;
            return Ok(item(Kind::Compare(op, Box::new(left), Box::new(right))));
        }
        if self.peek_keyword("starts") {
            let left = self.expr(left)?;
            self.pos += 1;
            self.expect_keyword("with")?;
            let initial = match self.bump() {
                Token::String(s) => item(Kind::String(s)),
                Token::Variable(v) => item(Kind::Variable(v)),
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected());
                }
            };
            return Ok(item(Kind::StartsWith(Box::new(left), Box::new(initial))));
        }
        if self.peek_keyword("like_regex") {
            let left = self.expr(left)?;
            self.pos += 1;
            let Token::String(pattern) = self.bump() else {
                self.pos -= 1;
                return Err(self.unexpected());
            };
            let mut flags = String::new();
            if self.peek_keyword("flag") {
                self.pos += 1;
                let Token::String(f) = self.bump() else {
                    self.pos -= 1;
                    return Err(self.unexpected());
                };
                flags = f;
            }
            let regex = like_regex(&pattern, &flags)?;
            return Ok(item(Kind::LikeRegex(Box::new(left), regex)));
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Item> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Token::Plus => ArithOp::Add,
                Token::Minus => ArithOp::Sub,
                _ => return Ok(left),
            };
            left = self.expr(left)?;
            self.pos += 1;
            let right = self.multiplicative()?;
            let right = self.expr(right)?;
            left = item(Kind::Arith(op, Box::new(left), Box::new(right)));
        }
    }

    fn multiplicative(&mut self) -> Result<Item> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Token::Star => ArithOp::Mul,
                Token::Slash => ArithOp::Div,
                Token::Percent => ArithOp::Mod,
                _ => return Ok(left),
            };
            left = self.expr(left)?;
            self.pos += 1;
            let right = self.unary()?;
            let right = self.expr(right)?;
            left = item(Kind::Arith(op, Box::new(left), Box::new(right)));
        }
    }

    fn unary(&mut self) -> Result<Item> {
        let negate = match self.peek() {
            Token::Minus => true,
            Token::Plus => false,
            _ => return self.accessors(),
        };
        self.pos += 1;
        let operand = self.nested(|p| p.unary())?;
        let operand = self.expr(operand)?;
        // A signed numeric literal is a constant, as PostgreSQL folds it.
        Ok(match (negate, &operand.kind, &operand.next) {
            (false, Kind::Number(_), None) => operand,
            (true, Kind::Number(n), None) => item(Kind::Number(Numeric::parse(n).neg().text())),
            (true, ..) => item(Kind::Negate(Box::new(operand))),
            (false, ..) => item(Kind::Plus(Box::new(operand))),
        })
    }

    /// A primary followed by accessors: `.key`, `[..]`, `? (..)`, methods.
    fn accessors(&mut self) -> Result<Item> {
        let parenthesised = *self.peek() == Token::LParen;
        let mut head = self.nested(|p| p.primary())?;
        // Of predicates, only `( predicate )` takes accessors.
        let takes_accessors =
            is_expr(&head) || (parenthesised && !matches!(head.kind, Kind::IsUnknown(_)));
        // Evaluation recurses once per step of a chain.
        let mut steps = 0;
        loop {
            let accessor = match self.peek() {
                Token::Dot => {
                    self.pos += 1;
                    self.member()?
                }
                Token::LBracket => {
                    self.pos += 1;
                    self.subscripts()?
                }
                Token::Question => {
                    self.pos += 1;
                    self.expect(Token::LParen)?;
                    self.filters += 1;
                    let predicate = self.nested(|p| p.or());
                    self.filters -= 1;
                    let predicate = self.predicate(predicate?)?;
                    self.expect(Token::RParen)?;
                    item(Kind::Filter(Box::new(predicate)))
                }
                _ => return Ok(head),
            };
            if !takes_accessors {
                return Err(self.unexpected());
            }
            steps += 1;
            if steps > PATH_DEPTH_MAX {
                return Err(too_deep());
            }
            chain(&mut head, accessor);
        }
    }

    fn member(&mut self) -> Result<Item> {
        if *self.peek() == Token::End {
            return Err(self.unexpected());
        }
        let (token, text) = self.tokens[self.pos].clone();
        self.pos += 1;
        Ok(match token {
            Token::Star => item(Kind::AnyKey),
            Token::AnyPath => self.any_path()?,
            Token::String(key) => item(Kind::Key(key)),
            Token::Ident(name) => {
                if *self.peek() == Token::LParen {
                    let method = [
                        Method::Type,
                        Method::Size,
                        Method::Double,
                        Method::Abs,
                        Method::Floor,
                        Method::Ceiling,
                        Method::KeyValue,
                    ]
                    .into_iter()
                    .find(|m| keyword(&name, m.name()));
                    if keyword(&name, "datetime") {
                        return Err(Error::new(
                            sqlstate::FEATURE_NOT_SUPPORTED,
                            "jsonpath item method .datetime() is not supported yet",
                        ));
                    }
                    let Some(method) = method else {
                        return Err(self.unexpected());
                    };
                    self.pos += 1;
                    self.expect(Token::RParen)?;
                    item(Kind::Method(method))
                } else {
                    item(Kind::Key(name))
                }
            }
            _ => {
                self.pos -= 1;
                return Err(syntax_error("syntax error", Some(text)));
            }
        })
    }

    /// `**`, `**{n}`, `**{n to m}`, where a level may be `last`.
    fn any_path(&mut self) -> Result<Item> {
        let (mut first, mut last) = (0, u32::MAX);
        if *self.peek() == Token::LBrace {
            self.pos += 1;
            first = self.level()?;
            last = first;
            if self.peek_keyword("to") {
                self.pos += 1;
                last = self.level()?;
            }
            self.expect(Token::RBrace)?;
        }
        Ok(item(Kind::Any { first, last }))
    }

    fn level(&mut self) -> Result<u32> {
        match self.bump() {
            Token::Number(n, true) => n.parse().map_err(|_| self.unexpected()),
            Token::Ident(w) if keyword(&w, "last") => Ok(u32::MAX),
            _ => {
                self.pos -= 1;
                Err(self.unexpected())
            }
        }
    }

    fn subscripts(&mut self) -> Result<Item> {
        if *self.peek() == Token::Star {
            self.pos += 1;
            self.expect(Token::RBracket)?;
            return Ok(item(Kind::AnyArray));
        }
        self.subscripts += 1;
        let list = self.subscript_list();
        self.subscripts -= 1;
        Ok(item(Kind::Index(list?)))
    }

    fn subscript_list(&mut self) -> Result<Vec<(Item, Option<Item>)>> {
        let mut list = Vec::new();
        loop {
            let from = self.nested(|p| p.additive())?;
            let from = self.expr(from)?;
            let to = if self.peek_keyword("to") {
                self.pos += 1;
                let to = self.nested(|p| p.additive())?;
                Some(self.expr(to)?)
            } else {
                None
            };
            list.push((from, to));
            match self.bump() {
                Token::Comma => {}
                Token::RBracket => return Ok(list),
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected());
                }
            }
        }
    }

    fn primary(&mut self) -> Result<Item> {
        let (token, text) = self.tokens[self.pos].clone();
        self.pos += 1;
        Ok(match token {
            Token::Dollar => item(Kind::Root),
            Token::At => {
                if self.filters == 0 {
                    return Err(Error::new(
                        SYNTAX_ERROR,
                        "@ is not allowed in root expressions",
                    ));
                }
                item(Kind::Current)
            }
            Token::Variable(name) => item(Kind::Variable(name)),
            Token::Number(n, _) => item(Kind::Number(n)),
            Token::String(s) => item(Kind::String(s)),
            Token::Ident(w) if keyword(&w, "null") => item(Kind::Null),
            Token::Ident(w) if keyword(&w, "true") => item(Kind::Bool(true)),
            Token::Ident(w) if keyword(&w, "false") => item(Kind::Bool(false)),
            Token::Ident(w) if keyword(&w, "last") => {
                if self.subscripts == 0 {
                    return Err(Error::new(
                        SYNTAX_ERROR,
                        "LAST is allowed only in array subscripts",
                    ));
                }
                item(Kind::Last)
            }
            Token::Ident(w) if keyword(&w, "exists") => {
                self.expect(Token::LParen)?;
                let operand = self.nested(|p| p.or())?;
                let operand = self.expr(operand)?;
                self.expect(Token::RParen)?;
                item(Kind::Exists(Box::new(operand)))
            }
            Token::LParen => {
                let inner = self.nested(|p| p.or())?;
                self.expect(Token::RParen)?;
                if !is_expr(&inner) && self.peek_keyword("is") {
                    self.pos += 1;
                    self.expect_keyword("unknown")?;
                    item(Kind::IsUnknown(Box::new(inner)))
                } else {
                    inner
                }
            }
            _ => {
                self.pos -= 1;
                return Err(match token {
                    Token::End => syntax_error("syntax error", None),
                    _ => syntax_error("syntax error", Some(text)),
                });
            }
        })
    }
}

/// `like_regex`'s pattern with XQuery's flags, as PostgreSQL maps them.
fn like_regex(pattern: &str, flags: &str) -> Result<Regex> {
    let mut builder_flags = String::new();
    let mut quote = false;
    let mut expanded = false;
    for f in flags.chars() {
        match f {
            'i' => builder_flags.push('i'),
            's' => builder_flags.push('s'),
            'm' => builder_flags.push('m'),
            'x' => expanded = true,
            'q' => quote = true,
            other => {
                return Err(
                    Error::new(SYNTAX_ERROR, "invalid input syntax for type jsonpath").with_detail(
                        format!("Unrecognized flag character \"{other}\" in LIKE_REGEX predicate."),
                    ),
                );
            }
        }
    }
    if expanded && !quote {
        return Err(Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            "XQuery \"x\" flag (expanded regular expressions) is not implemented",
        ));
    }
    let body = if quote {
        regex::escape(pattern)
    } else {
        pattern.to_string()
    };
    let full = if builder_flags.is_empty() {
        body
    } else {
        format!("(?{builder_flags}){body}")
    };
    Regex::new(&full).map_err(|e| {
        Error::new(
            INVALID_REGULAR_EXPRESSION,
            format!("invalid regular expression: {e}"),
        )
    })
}

// ---------------------------------------------------------------------------
// Evaluation

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
                Value::Array(items) => items.iter().map(|c| own_child(v, c, *origin)).collect(),
                Value::Object(members) => members
                    .iter()
                    .map(|(_, c)| own_child(v, c, *origin))
                    .collect(),
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
                Value::Object(members) => {
                    find(members).map(|i| own_child(v, &members[i].1, *origin))
                }
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

/// A child of a computed container; one inside a generated object keeps
/// its offset there. Containers sit at 4-byte boundaries, so a child's
/// offset within its parent is the same wherever the parent is.
fn own_child<'a>(parent: &Value, child: &Value, origin: Origin) -> Val<'a> {
    let origin = match origin {
        Origin::Generated(offset) if is_container(child) => {
            let inside = layout(parent)[&(child as *const Value)];
            Origin::Generated(offset + inside)
        }
        _ => Origin::Computed,
    };
    Val::Own(Rc::new(child.clone()), origin)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn q(doc: &str, path: &str) -> Result<Vec<String>> {
        let doc = value::parse(doc).unwrap();
        let vars = Value::Object(vec![]);
        let path = parse(path)?;
        Ok(query(&path, &doc, Some(&vars), false)?
            .iter()
            .map(Value::to_jsonb_text)
            .collect())
    }

    #[test]
    fn lax_and_strict_accessors() {
        let doc = r#"{"a": [{"b": 1}, {"b": 2}, {"c": 3}], "d": {"e": "x"}}"#;
        assert_eq!(q(doc, "$.a.b").unwrap(), ["1", "2"]);
        assert_eq!(q(doc, "$.a[*].b").unwrap(), ["1", "2"]);
        assert_eq!(q(doc, "$.a[last].c").unwrap(), ["3"]);
        assert_eq!(q(doc, "$.a[0 to 1].b").unwrap(), ["1", "2"]);
        assert_eq!(
            q(doc, "strict $.a[*].b").unwrap_err().sqlstate,
            SQL_JSON_MEMBER_NOT_FOUND
        );
        assert_eq!(q(doc, "$.d.*").unwrap(), [r#""x""#]);
        // Lax `.b` also unwraps the array `.**` passes on the way: twice.
        assert_eq!(q(doc, "$.**.b").unwrap(), ["1", "2", "1", "2"]);
        assert_eq!(q(doc, "strict $.**.b").unwrap(), ["1", "2"]);
        assert_eq!(q(doc, "$.a.size()").unwrap(), ["3"]);
        assert_eq!(q(doc, "$.d.e.type()").unwrap(), [r#""string""#]);
    }

    #[test]
    fn filters_and_arithmetic() {
        let doc = r#"{"a": [1, 2.5, 3, "x", null]}"#;
        assert_eq!(q(doc, "$.a[*] ? (@ > 1.5)").unwrap(), ["2.5", "3"]);
        assert_eq!(q(doc, "$.a ? (@ == null)").unwrap(), ["null"]);
        assert_eq!(q(doc, "$.a[0] * 2 + 1").unwrap(), ["3"]);
        assert_eq!(q(doc, "$.a[1] / 3").unwrap(), ["0.83333333333333333333"]);
        assert_eq!(q(doc, "-$.a[0 to 2]").unwrap(), ["-1", "-2.5", "-3"]);
        assert_eq!(
            q(doc, "$.a[*] ? (@ starts with \"x\")").unwrap(),
            [r#""x""#]
        );
        assert_eq!(
            q(doc, "$.a[*] ? (@ like_regex \"^X\" flag \"i\")").unwrap(),
            [r#""x""#]
        );
        assert_eq!(q(doc, "exists($.a ? (@ == 3))").unwrap(), ["true"]);
        assert_eq!(q(doc, "$.a[3] > 1").unwrap(), ["null"]);
        assert_eq!(q(doc, "($.a[3] > 1) is unknown").unwrap(), ["true"]);
    }

    #[test]
    fn keyvalue_ids_are_offsets_in_binary_jsonb() {
        assert_eq!(
            q(r#"{"x": "20", "y": 32}"#, "$.keyvalue()").unwrap(),
            [
                r#"{"id": 0, "key": "x", "value": "20"}"#,
                r#"{"id": 0, "key": "y", "value": 32}"#
            ]
        );
        assert_eq!(
            q(r#"{"a": {"b": 1}}"#, "$.a.keyvalue()").unwrap(),
            [r#"{"id": 16, "key": "b", "value": 1}"#]
        );
    }

    #[test]
    fn bad_paths_are_syntax_errors() {
        for bad in [
            "",
            "$.",
            "@.a",
            "last",
            "$ ? (@.a)",
            "1a",
            "$[1",
            "$.a ==",
            "$x y",
        ] {
            assert_eq!(parse(bad).unwrap_err().sqlstate, SYNTAX_ERROR, "{bad}");
        }
        assert_eq!(
            parse("$.a.datetime()").unwrap_err().sqlstate,
            sqlstate::FEATURE_NOT_SUPPORTED
        );
    }
}
