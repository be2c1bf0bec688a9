//! SCIM 2.0 filters (RFC 7644 §3.4.2.2): a hand-written recursive-descent
//! parser into [`Filter`], bounded in size, nesting and number of terms so a
//! hostile filter costs little and fails with a clear message.
//!
//! Precedence, tightest first: grouping, attribute operators, `not`, `and`,
//! `or`. Keywords and attribute names are case-insensitive; literals are
//! JSON strings, numbers, `true`, `false` and `null`.

use std::fmt;

use serde_json::Value;

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 4096;
/// The deepest nesting of parentheses, `not ( )` and value filters `[ ]`.
pub const MAX_DEPTH: usize = 16;
/// The most comparisons (`pr` included) in one filter.
pub const MAX_TERMS: usize = 64;

/// `[URI ":"] ATTRNAME *1subAttr`, e.g. `name.givenName` or
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN, as written.
    pub urn: Option<String>,
    pub attr: String,
    pub sub_attr: Option<String>,
}

impl AttrPath {
    /// A path without schema URN.
    pub fn new(attr: &str, sub_attr: Option<&str>) -> Self {
        Self {
            urn: None,
            attr: attr.to_owned(),
            sub_attr: sub_attr.map(str::to_owned),
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// The attribute operators that take a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<Self> {
        const ALL: [(&str, CompareOp); 9] = [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ];
        ALL.iter()
            .find(|(name, _)| word.eq_ignore_ascii_case(name))
            .map(|&(_, op)| op)
    }

    /// The operator's keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Co => "co",
            Self::Sw => "sw",
            Self::Ew => "ew",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
        }
    }
}

/// A parsed filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Value,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work"]`: the inner filter's paths are relative to one element.
    ValuePath {
        attr: AttrPath,
        filter: Box<Filter>,
    },
}

/// Why a filter or path was refused; its `Display` is the message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    message: String,
}

impl FilterError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    fn at(at: usize, message: impl fmt::Display) -> Self {
        Self::new(format!("{message} (at byte {at})"))
    }

    /// The message, suitable for a SCIM `invalidFilter` or `invalidPath` detail.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Parses a SCIM filter.
pub fn parse_filter(input: &str) -> Result<Filter, FilterError> {
    let mut parser = Parser::new(input)?;
    let filter = parser.or_expr()?;
    parser.finish()?;
    Ok(filter)
}

/// Parses a bare attribute path, as `sortBy` carries.
pub fn parse_attr_path(input: &str) -> Result<AttrPath, FilterError> {
    let mut parser = Parser::new(input)?;
    let (word, _) = parser.word("an attribute name")?;
    let path = attr_path(word)?;
    parser.finish()?;
    Ok(path)
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok<'a> {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    /// Attribute paths, keywords, numbers and `true`/`false`/`null`.
    Word(&'a str),
    Str(String),
}

impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Open => f.write_str("`(`"),
            Tok::Close => f.write_str("`)`"),
            Tok::OpenBracket => f.write_str("`[`"),
            Tok::CloseBracket => f.write_str("`]`"),
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Str(_) => f.write_str("a string"),
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'$' | b'+')
}

/// Splits the input into tokens with their byte offsets.
fn tokenize(input: &str) -> Result<Vec<(Tok<'_>, usize)>, FilterError> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let start = i;
        let tok = match b {
            b' ' => {
                i += 1;
                continue;
            }
            b'(' => Tok::Open,
            b')' => Tok::Close,
            b'[' => Tok::OpenBracket,
            b']' => Tok::CloseBracket,
            b'"' => {
                i = string_end(bytes, start)?;
                let text = &input[start..i];
                let value: String = serde_json::from_str(text)
                    .map_err(|e| FilterError::at(start, format!("invalid string literal: {e}")))?;
                out.push((Tok::Str(value), start));
                continue;
            }
            b if is_word_byte(b) => {
                while bytes.get(i).copied().is_some_and(is_word_byte) {
                    i += 1;
                }
                out.push((Tok::Word(&input[start..i]), start));
                continue;
            }
            _ => {
                let c = input[start..].chars().next().unwrap_or('?');
                return Err(FilterError::at(
                    start,
                    if c.is_control() {
                        format!("control character U+{:04X} outside a string", u32::from(c))
                    } else {
                        format!("unexpected character `{c}`")
                    },
                ));
            }
        };
        i += 1;
        out.push((tok, start));
    }
    Ok(out)
}

/// The offset just past the closing quote of the string opening at `start`.
fn string_end(bytes: &[u8], start: usize) -> Result<usize, FilterError> {
    let mut i = start + 1;
    loop {
        match bytes.get(i) {
            None => return Err(FilterError::at(start, "unterminated string")),
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => i += 2,
            Some(&b) if b < 0x20 => {
                return Err(FilterError::at(
                    i,
                    format!("control character U+{b:04X} in a string: escape it"),
                ));
            }
            Some(_) => i += 1,
        }
    }
}

/// `ATTRNAME = ALPHA *(nameChar)`, plus `$ref` (RFC 7643 §2.3.7).
fn valid_name(name: &str) -> bool {
    name == "$ref"
        || name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits a word into schema URN, attribute and sub-attribute.
pub(super) fn attr_path(word: &str) -> Result<AttrPath, FilterError> {
    let bad = || FilterError::new(format!("`{word}` is not a valid attribute path"));
    let (urn, rest) = match word.rsplit_once(':') {
        Some((urn, rest)) if urn.len() > 4 && urn[..4].eq_ignore_ascii_case("urn:") => {
            (Some(urn.to_owned()), rest)
        }
        Some(_) => return Err(bad()),
        None => (None, word),
    };
    let (attr, sub_attr) = match rest.split_once('.') {
        Some((attr, sub)) => (attr, Some(sub)),
        None => (rest, None),
    };
    if !valid_name(attr) || sub_attr.is_some_and(|s| !valid_name(s)) {
        return Err(bad());
    }
    Ok(AttrPath {
        urn,
        attr: attr.to_owned(),
        sub_attr: sub_attr.map(str::to_owned),
    })
}

/// The parser's state: tokens, position, and the bounds spent so far.
pub(super) struct Parser<'a> {
    toks: Vec<(Tok<'a>, usize)>,
    pos: usize,
    end: usize,
    depth: usize,
    terms: usize,
    in_value_filter: bool,
}

impl<'a> Parser<'a> {
    pub(super) fn new(input: &'a str) -> Result<Self, FilterError> {
        if input.len() > MAX_FILTER_BYTES {
            return Err(FilterError::new(format!(
                "the filter is {} bytes long; at most {MAX_FILTER_BYTES} are accepted",
                input.len()
            )));
        }
        let toks = tokenize(input)?;
        if toks.is_empty() {
            return Err(FilterError::new("the filter is empty"));
        }
        Ok(Self {
            toks,
            pos: 0,
            end: input.len(),
            depth: 0,
            terms: 0,
            in_value_filter: false,
        })
    }

    fn peek(&self) -> Option<&Tok<'a>> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    /// The offset of the next token, or of the end of input.
    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |&(_, at)| at)
    }

    fn unexpected(&self, wanted: &str) -> FilterError {
        match self.peek() {
            Some(tok) => FilterError::at(self.offset(), format!("expected {wanted}, found {tok}")),
            None => FilterError::new(format!("expected {wanted} at the end of the filter")),
        }
    }

    fn bump(&mut self) -> Option<(Tok<'a>, usize)> {
        let tok = self.toks.get(self.pos).cloned();
        self.pos += 1;
        tok
    }

    fn expect(&mut self, tok: &Tok<'_>, wanted: &str) -> Result<(), FilterError> {
        if self.peek() == Some(tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(wanted))
        }
    }

    pub(super) fn word(&mut self, wanted: &str) -> Result<(&'a str, usize), FilterError> {
        match self.peek() {
            Some(&Tok::Word(w)) => {
                let at = self.offset();
                self.pos += 1;
                Ok((w, at))
            }
            _ => Err(self.unexpected(wanted)),
        }
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    pub(super) fn at_open_bracket(&self) -> bool {
        self.peek() == Some(&Tok::OpenBracket)
    }

    pub(super) fn finish(&self) -> Result<(), FilterError> {
        match self.peek() {
            None => Ok(()),
            Some(tok) => Err(FilterError::at(
                self.offset(),
                format!("unexpected {tok} after the end of the expression"),
            )),
        }
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::at(
                self.offset(),
                format!("the filter nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn term(&mut self) -> Result<(), FilterError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(FilterError::at(
                self.offset(),
                format!("the filter has more than {MAX_TERMS} comparisons"),
            ));
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and_expr()?;
        while self.at_keyword("or") {
            self.pos += 1;
            let right = self.and_expr()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.at_keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        // `not` is a keyword only before `(`: an attribute may be called "not".
        let not =
            self.at_keyword("not") && matches!(self.toks.get(self.pos + 1), Some((Tok::Open, _)));
        if not {
            self.pos += 1;
            return Ok(Filter::Not(Box::new(self.group()?)));
        }
        match self.peek() {
            Some(Tok::Open) => self.group(),
            Some(&Tok::Word(_)) => self.attr_expr(),
            _ => Err(self.unexpected("an attribute name, `not` or `(`")),
        }
    }

    fn group(&mut self) -> Result<Filter, FilterError> {
        self.expect(&Tok::Open, "`(`")?;
        self.enter()?;
        let inner = self.or_expr()?;
        self.expect(&Tok::Close, "`)` or a logical operator")?;
        self.depth -= 1;
        Ok(inner)
    }

    fn attr_expr(&mut self) -> Result<Filter, FilterError> {
        let (word, at) = self.word("an attribute name")?;
        let path = attr_path(word).map_err(|e| FilterError::at(at, e))?;
        if self.at_open_bracket() {
            let filter = self.value_filter(&path, at)?;
            return Ok(Filter::ValuePath {
                attr: path,
                filter: Box::new(filter),
            });
        }
        let (op, op_at) = self.word(&format!(
            "an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr) after `{word}`"
        ))?;
        self.term()?;
        if op.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::parse(op) else {
            return Err(FilterError::at(
                op_at,
                format!("`{op}` is not an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr)"),
            ));
        };
        let value = self.value(op)?;
        Ok(Filter::Compare { path, op, value })
    }

    /// The `"[" valFilter "]"` after `attr`, the opening bracket next.
    pub(super) fn value_filter(
        &mut self,
        attr: &AttrPath,
        at: usize,
    ) -> Result<Filter, FilterError> {
        if self.in_value_filter {
            return Err(FilterError::at(at, "value filters `[ ]` cannot be nested"));
        }
        if attr.sub_attr.is_some() {
            return Err(FilterError::at(
                at,
                format!("a value filter applies to a whole attribute, not to `{attr}`"),
            ));
        }
        self.expect(&Tok::OpenBracket, "`[`")?;
        self.enter()?;
        self.in_value_filter = true;
        let filter = self.or_expr()?;
        self.in_value_filter = false;
        self.expect(&Tok::CloseBracket, "`]` or a logical operator")?;
        self.depth -= 1;
        Ok(filter)
    }

    fn value(&mut self, op: CompareOp) -> Result<Value, FilterError> {
        let at = self.offset();
        let wanted = format!(
            "a value after `{}` (a quoted string, a number, true, false or null)",
            op.as_str()
        );
        match self.bump() {
            Some((Tok::Str(s), _)) => Ok(Value::String(s)),
            Some((Tok::Word(w), _)) => {
                if w.eq_ignore_ascii_case("true") {
                    Ok(Value::Bool(true))
                } else if w.eq_ignore_ascii_case("false") {
                    Ok(Value::Bool(false))
                } else if w.eq_ignore_ascii_case("null") {
                    Ok(Value::Null)
                } else if let Ok(n) = serde_json::from_str::<serde_json::Number>(w) {
                    Ok(Value::Number(n))
                } else {
                    Err(FilterError::at(
                        at,
                        format!("expected {wanted}, found `{w}` (strings must be quoted)"),
                    ))
                }
            }
            _ => {
                self.pos -= 1;
                Err(self.unexpected(&wanted))
            }
        }
    }
}

#[cfg(test)]
mod tests;
