//! GBNF (llama.cpp's grammar syntax) to llguidance's Lark dialect. The grammar engine in core is
//! llguidance, which reads only Lark, while our users (and llama.cpp, llama-cpp-python,
//! node-llama-cpp) write GBNF. The grammar is untrusted input: parsing is bounded in nesting
//! and every error names the line and column.
//!
//! Rules whose bodies are made only of characters (literals, classes, `.`, repetitions and
//! other such rules) become Lark terminals (UPPERCASE): llguidance lexes them with one regex
//! instead of parsing them character by character, which is both much faster and what keeps
//! `[0-9]+`-style rules under its complexity limits.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::{Error, Result};

/// How deep parentheses may nest before the grammar is refused (bounds the parser's stack).
const MAX_NESTING: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Alt(Vec<Expr>),
    Seq(Vec<Expr>),
    Literal(String),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    AnyChar,
    Rule(String),
    /// A token reference such as `<[128000]>` or `<|im_end|>`, passed to llguidance as written.
    Token(String),
    Repeat {
        inner: Box<Expr>,
        min: u32,
        max: Option<u32>,
    },
}

/// Is `text` already Lark (llguidance's own syntax) rather than GBNF?
pub(crate) fn is_lark(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with("%llguidance")
        || t.lines()
            .any(|l| l.trim_start().starts_with("start:") || l.trim_start().starts_with("start :"))
}

/// Translate a GBNF grammar into an equivalent Lark grammar whose start rule is `root`.
pub(crate) fn to_lark(gbnf: &str) -> Result<String> {
    let rules = Parser::new(gbnf).parse_rules()?;
    if !rules.contains_key("root") {
        return Err(Error::invalid_argument(
            "grammar: no `root` rule; GBNF grammars start at `root ::= ...`",
        ));
    }
    for (name, body) in &rules {
        let mut missing = None;
        visit_refs(body, &mut |r| {
            if missing.is_none() && !rules.contains_key(r) {
                missing = Some(r.to_string());
            }
        });
        if let Some(m) = missing {
            return Err(Error::invalid_argument(format!(
                "grammar: rule `{name}` refers to `{m}`, which is not defined"
            )));
        }
    }
    let lexical = lexical_rules(&rules);
    let names = lark_names(&rules, &lexical);
    let mut out = String::new();
    if lexical.contains("root") {
        let _ = writeln!(out, "start: {}", names["root"]);
    }
    for (name, body) in &rules {
        let _ = writeln!(out, "{}: {}", names[name.as_str()], emit(body, &names));
    }
    Ok(out)
}

fn visit_refs<'a>(e: &'a Expr, f: &mut impl FnMut(&'a str)) {
    match e {
        Expr::Alt(xs) | Expr::Seq(xs) => xs.iter().for_each(|x| visit_refs(x, f)),
        Expr::Repeat { inner, .. } => visit_refs(inner, f),
        Expr::Rule(r) => f(r),
        Expr::Literal(_) | Expr::Class { .. } | Expr::AnyChar | Expr::Token(_) => {}
    }
}

/// Rules that match characters only, through other such rules and never themselves (Lark
/// terminals cannot recurse): the fixpoint of "every reference is already lexical".
fn lexical_rules(rules: &BTreeMap<String, Expr>) -> BTreeSet<String> {
    fn has_token(e: &Expr) -> bool {
        match e {
            Expr::Alt(xs) | Expr::Seq(xs) => xs.iter().any(has_token),
            Expr::Repeat { inner, .. } => has_token(inner),
            Expr::Token(_) => true,
            _ => false,
        }
    }
    let mut lexical = BTreeSet::new();
    loop {
        let before = lexical.len();
        for (name, body) in rules {
            if lexical.contains(name) || has_token(body) {
                continue;
            }
            let mut all = true;
            visit_refs(body, &mut |r| all &= lexical.contains(r));
            if all {
                lexical.insert(name.clone());
            }
        }
        if lexical.len() == before {
            return lexical;
        }
    }
}

/// GBNF names allow `-` and any case; Lark rules are lowercase and terminals UPPERCASE. An index
/// keeps names that differ only in case or `-`/`_` apart.
fn lark_names<'a>(
    rules: &'a BTreeMap<String, Expr>,
    lexical: &BTreeSet<String>,
) -> BTreeMap<&'a str, String> {
    rules
        .keys()
        .enumerate()
        .map(|(i, name)| {
            let clean: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let lark = if lexical.contains(name) {
                format!("T{i}_{}", clean.to_ascii_uppercase())
            } else if name == "root" {
                "start".to_string()
            } else {
                format!("r{i}_{}", clean.to_ascii_lowercase())
            };
            (name.as_str(), lark)
        })
        .collect()
}

fn emit(e: &Expr, names: &BTreeMap<&str, String>) -> String {
    match e {
        Expr::Alt(xs) => xs
            .iter()
            .map(|x| emit(x, names))
            .collect::<Vec<_>>()
            .join(" | "),
        Expr::Seq(xs) if xs.is_empty() => "\"\"".to_string(),
        Expr::Seq(xs) => xs
            .iter()
            .map(|x| match x {
                Expr::Alt(_) => format!("({})", emit(x, names)),
                _ => emit(x, names),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Expr::Literal(s) => lark_string(s),
        Expr::Class { negated, ranges } => {
            let mut re = String::from(if *negated { "/[^" } else { "/[" });
            for &(a, b) in ranges {
                // Every character as \x{..}: nothing in it can be a regex metacharacter or `/`.
                let _ = write!(re, "\\x{{{:x}}}", a as u32);
                if a != b {
                    let _ = write!(re, "-\\x{{{:x}}}", b as u32);
                }
            }
            re.push_str("]/");
            re
        }
        Expr::AnyChar => "/(?s:.)/".to_string(),
        Expr::Rule(r) => names[r.as_str()].clone(),
        Expr::Token(t) => t.clone(),
        Expr::Repeat { inner, min, max } => {
            let body = match **inner {
                Expr::Alt(_) | Expr::Seq(_) | Expr::Repeat { .. } => {
                    format!("({})", emit(inner, names))
                }
                _ => emit(inner, names),
            };
            match (min, max) {
                (_, Some(0)) => "\"\"".to_string(),
                (0, None) => format!("{body}*"),
                (1, None) => format!("{body}+"),
                (0, Some(1)) => format!("{body}?"),
                (m, None) => format!("{body}{{{m},}}"),
                (m, Some(n)) if m == n => format!("{body}{{{m}}}"),
                (m, Some(n)) => format!("{body}{{{m},{n}}}"),
            }
        }
    }
}

/// A Lark (JSON-style) string literal.
fn lark_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser {
            src,
            pos: 0,
            depth: 0,
        }
    }

    fn error(&self, what: &str) -> Error {
        let before = &self.src[..self.pos];
        let line = before.matches('\n').count() + 1;
        let col = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
        Error::invalid_argument(format!("grammar: {what} at line {line}, column {col}"))
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.src[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Skip spaces, tabs and `#` comments, and newlines too where `newlines` (inside
    /// parentheses, after `::=` and `|`).
    fn space(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' => self.pos += 1,
                '\r' | '\n' if newlines => self.pos += 1,
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                _ => break,
            }
        }
    }

    fn name(&mut self) -> Option<String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.pos += 1;
        }
        (self.pos > start).then(|| self.src[start..self.pos].to_string())
    }

    fn parse_rules(&mut self) -> Result<BTreeMap<String, Expr>> {
        let mut rules = BTreeMap::new();
        loop {
            self.space(true);
            if self.peek().is_none() {
                return Ok(rules);
            }
            let Some(name) = self.name() else {
                return Err(self.error("expected a rule name (`name ::= ...`)"));
            };
            self.space(false);
            if !self.eat("::=") {
                return Err(self.error(&format!("expected `::=` after rule name `{name}`")));
            }
            self.space(true);
            let body = self.alternatives()?;
            if rules.insert(name.clone(), body).is_some() {
                return Err(self.error(&format!("rule `{name}` is defined twice")));
            }
            match self.peek() {
                None | Some('\n' | '\r') => {}
                Some(c) => return Err(self.error(&format!("unexpected `{c}`"))),
            }
        }
    }

    fn alternatives(&mut self) -> Result<Expr> {
        let mut alts = vec![self.sequence()?];
        while self.eat("|") {
            self.space(true);
            alts.push(self.sequence()?);
        }
        Ok(if alts.len() == 1 {
            alts.swap_remove(0)
        } else {
            Expr::Alt(alts)
        })
    }

    fn sequence(&mut self) -> Result<Expr> {
        let nested = self.depth > 0;
        let mut items = Vec::new();
        loop {
            let item =
                match self.peek() {
                    Some('"') => {
                        self.pos += 1;
                        Expr::Literal(self.literal()?)
                    }
                    Some('[') => {
                        self.pos += 1;
                        self.class()?
                    }
                    Some('.') => {
                        self.pos += 1;
                        Expr::AnyChar
                    }
                    Some('<') => self.token()?,
                    Some('!') => return Err(self.error(
                        "negated token references (`!<...>`) are not supported; list the allowed \
                         text instead",
                    )),
                    Some('(') => {
                        self.pos += 1;
                        self.depth += 1;
                        if self.depth > MAX_NESTING {
                            return Err(self.error(&format!(
                                "parentheses nest deeper than {MAX_NESTING} levels"
                            )));
                        }
                        self.space(true);
                        let inner = self.alternatives()?;
                        if !self.eat(")") {
                            return Err(self.error("expected `)`"));
                        }
                        self.depth -= 1;
                        inner
                    }
                    Some(c) if c.is_ascii_alphanumeric() || c == '-' || c == '_' => {
                        let start = self.pos;
                        let name = self.name().unwrap_or_default();
                        // A name followed by `::=` starts the next rule: this sequence is over.
                        let mut probe = Parser {
                            src: self.src,
                            pos: self.pos,
                            depth: 0,
                        };
                        probe.space(false);
                        if probe.src[probe.pos..].starts_with("::=") {
                            self.pos = start;
                            break;
                        }
                        Expr::Rule(name)
                    }
                    _ => break,
                };
            self.space(nested);
            let item = self.postfix(item)?;
            self.space(nested);
            items.push(item);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Expr::Seq(items)
        })
    }

    fn postfix(&mut self, mut item: Expr) -> Result<Expr> {
        loop {
            let (min, max) = match self.peek() {
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('?') => (0, Some(1)),
                Some('{') => {
                    self.pos += 1;
                    let bounds = self.braces()?;
                    item = Expr::Repeat {
                        inner: Box::new(item),
                        min: bounds.0,
                        max: bounds.1,
                    };
                    self.space(self.depth > 0);
                    continue;
                }
                _ => return Ok(item),
            };
            self.pos += 1;
            item = Expr::Repeat {
                inner: Box::new(item),
                min,
                max,
            };
            self.space(self.depth > 0);
        }
    }

    /// `{m}`, `{m,}`, `{m,n}` (the `{` is consumed).
    fn braces(&mut self) -> Result<(u32, Option<u32>)> {
        self.space(false);
        let min = self.number()?;
        self.space(false);
        let max = if self.eat(",") {
            self.space(false);
            if self.peek() == Some('}') {
                None
            } else {
                Some(self.number()?)
            }
        } else {
            Some(min)
        };
        self.space(false);
        if !self.eat("}") {
            return Err(self.error("expected `}` closing a repetition"));
        }
        if max.is_some_and(|n| n < min) {
            return Err(self.error("a repetition's maximum is below its minimum"));
        }
        Ok((min, max))
    }

    fn number(&mut self) -> Result<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.src[start..self.pos]
            .parse()
            .map_err(|_| self.error("expected a repetition count"))
    }

    /// The rest of a `"..."` literal (the opening quote is consumed).
    fn literal(&mut self) -> Result<String> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => return Err(self.error("unterminated string literal")),
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.escape()?),
                Some(c) => out.push(c),
            }
        }
    }

    /// The rest of a `[...]` class (the `[` is consumed).
    fn class(&mut self) -> Result<Expr> {
        let negated = self.eat("^");
        let mut ranges = Vec::new();
        loop {
            let first = match self.bump() {
                None | Some('\n') => return Err(self.error("unterminated character class")),
                Some(']') => return Ok(Expr::Class { negated, ranges }),
                Some('\\') => self.escape()?,
                Some(c) => c,
            };
            let mut last = first;
            if self.peek() == Some('-') && !self.src[self.pos + 1..].starts_with(']') {
                self.pos += 1;
                last = match self.bump() {
                    None => return Err(self.error("unterminated character class")),
                    Some('\\') => self.escape()?,
                    Some(c) => c,
                };
                if last < first {
                    return Err(
                        self.error(&format!("character range `{first}-{last}` is reversed"))
                    );
                }
            }
            ranges.push((first, last));
        }
    }

    /// One escape after `\`: `\n \r \t \\ \" \[ \] \- \xHH \uHHHH \UHHHHHHHH`.
    fn escape(&mut self) -> Result<char> {
        let hex = |p: &mut Self, n: usize| -> Result<char> {
            let digits = p.src.get(p.pos..p.pos + n).unwrap_or("");
            let value = u32::from_str_radix(digits, 16)
                .ok()
                .filter(|_| digits.len() == n)
                .and_then(char::from_u32)
                .ok_or_else(|| p.error("invalid hex escape"))?;
            p.pos += n;
            Ok(value)
        };
        match self.bump() {
            Some('n') => Ok('\n'),
            Some('r') => Ok('\r'),
            Some('t') => Ok('\t'),
            Some('x') => hex(self, 2),
            Some('u') => hex(self, 4),
            Some('U') => hex(self, 8),
            Some(c @ ('\\' | '"' | '[' | ']' | '-' | '^' | '/')) => Ok(c),
            Some(c) => Err(self.error(&format!("unknown escape `\\{c}`"))),
            None => Err(self.error("unterminated escape")),
        }
    }

    /// `<[123]>` or `<|name|>`-style token references, kept as written.
    fn token(&mut self) -> Result<Expr> {
        let start = self.pos;
        match self.src[self.pos..].find('>') {
            Some(end) if !self.src[self.pos..self.pos + end].contains('\n') => {
                self.pos += end + 1;
                Ok(Expr::Token(self.src[start..self.pos].to_string()))
            }
            _ => Err(self.error("unterminated token reference `<...>`")),
        }
    }
}

#[cfg(test)]
mod tests;
