//! Reading a path's text: PostgreSQL's jsonpath scanner (`jsonpath_scan.l`)
//! and grammar (`jsonpath_gram.y`), by hand: tokens, then recursive descent
//! with the grammar's precedence, checking where predicates, `@` and
//! `last` may stand.

use regex::Regex;

use super::{ArithOp, CompareOp, Item, JsonPath, Kind, Method};
use crate::error::{Error, Result, sqlstate};
use crate::json::numeric::Numeric;
use crate::json::value;

/// Deeper nesting, or a longer chain of steps, than this in a path is
/// refused (54001) rather than risking the stack of the recursive parser
/// and evaluator.
const PATH_DEPTH_MAX: usize = 256;
pub(super) const SYNTAX_ERROR: &str = "42601";
const INVALID_REGULAR_EXPRESSION: &str = "2201B";

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

/// PostgreSQL's keywords, matched regardless of case except the literals.
fn keyword(ident: &str, word: &str) -> bool {
    if matches!(word, "null" | "true" | "false") {
        ident == word
    } else {
        ident.eq_ignore_ascii_case(word)
    }
}

pub(super) fn parse(text: &str) -> Result<JsonPath> {
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
        self.connective(Token::Or, Self::and, Kind::Or)
    }

    fn and(&mut self) -> Result<Item> {
        self.connective(Token::And, Self::not, Kind::And)
    }

    /// Predicates joined by `token` (`||` or `&&`), left-associative.
    fn connective(
        &mut self,
        token: Token,
        operand: fn(&mut Self) -> Result<Item>,
        join: fn(Box<Item>, Box<Item>) -> Kind,
    ) -> Result<Item> {
        let mut left = operand(self)?;
        while *self.peek() == token {
            left = self.predicate(left)?;
            self.pos += 1;
            let right = operand(self)?;
            let right = self.predicate(right)?;
            left = item(join(Box::new(left), Box::new(right)));
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
        self.arithmetic(Self::multiplicative, |t| match t {
            Token::Plus => Some(ArithOp::Add),
            Token::Minus => Some(ArithOp::Sub),
            _ => None,
        })
    }

    fn multiplicative(&mut self) -> Result<Item> {
        self.arithmetic(Self::unary, |t| match t {
            Token::Star => Some(ArithOp::Mul),
            Token::Slash => Some(ArithOp::Div),
            Token::Percent => Some(ArithOp::Mod),
            _ => None,
        })
    }

    /// Operands joined by the operators `op_of` knows, left-associative.
    fn arithmetic(
        &mut self,
        operand: fn(&mut Self) -> Result<Item>,
        op_of: fn(&Token) -> Option<ArithOp>,
    ) -> Result<Item> {
        let mut left = operand(self)?;
        while let Some(op) = op_of(self.peek()) {
            left = self.expr(left)?;
            self.pos += 1;
            let right = operand(self)?;
            let right = self.expr(right)?;
            left = item(Kind::Arith(op, Box::new(left), Box::new(right)));
        }
        Ok(left)
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
