//! Alertmanager-compatible label matchers.
//!
//! This module implements the matcher model used by routes, inhibition rules,
//! silences and API filters (reference §5), and the string forms that end up
//! in group keys (reference §1.3):
//!
//! * [`Matcher`] / [`Matchers`]: `=`, `!=`, `=~`, `!~` against a label set, where
//!   an absent label is matched as the empty string and regular expressions are
//!   fully anchored (`^(?:re)$`).
//! * Parsers: the UTF-8 grammar ([`parse_matchers_utf8`]), the classic
//!   `pkg/labels` grammar ([`parse_matchers_classic`]) and Alertmanager's
//!   default fallback mode ([`parse_matchers`], [`parse_matcher`]).
//! * Printing: [`Matcher`]'s `Display` and [`Matchers::route_key_string`] (route
//!   keys), [`label_set_string`] (group labels) and [`go_quote`]
//!   (Go `strconv.Quote`).
//!
//! Regular expressions use the `regex` crate. To stay close to Go's RE2 the Perl
//! classes `\d \D \w \W \s \S \b \B` are rewritten to their ASCII-only Go
//! meaning before compiling; other differences between the two engines remain
//! (see [`Matcher::new`]).

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use crate::alert::LabelSet;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a matcher could not be built or parsed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum MatcherError {
    /// UTF-8 parser error. `start`/`end` are 0-based character columns of the
    /// offending input (`0:<input length>` for errors at end of input).
    #[error("{start}:{end}: {message}")]
    Syntax {
        start: usize,
        end: usize,
        message: String,
    },
    /// Classic parser: an item does not have the form `name op value`.
    #[error("bad matcher format: {0}")]
    BadFormat(String),
    /// Classic parser: a `"` that is neither escaped nor the closing quote.
    #[error("matcher value contains unescaped double quote: {0}")]
    UnescapedQuote(String),
    /// The value of a `=~` / `!~` matcher is not a valid regular expression.
    #[error("invalid regular expression {quoted}: {reason}", quoted = go_quote(.regex))]
    InvalidRegex { regex: String, reason: String },
    /// A single-matcher input started with `{` or ended with `}`.
    #[error("unexpected open or close brace: {0}")]
    UnexpectedBrace(String),
    /// A single-matcher input held zero or several matchers.
    #[error("expected exactly one matcher, found {0}")]
    MatcherCount(usize),
}

// ---------------------------------------------------------------------------
// MatchType / Matcher / Matchers
// ---------------------------------------------------------------------------

/// Matcher operator. The declaration order is the order used when sorting
/// matchers for route keys (`=`, `!=`, `=~`, `!~`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchType {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchType {
    /// The operator as written in matcher syntax.
    fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        }
    }
}

impl fmt::Display for MatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compiled regex together with the matcher value it was compiled from, so a
/// later change of the public `value` field is detected.
#[derive(Debug, Clone)]
struct CompiledRegex {
    source: String,
    regex: Regex,
}

/// One label matcher: `name op value`.
///
/// Equality compares `name`, `op` and `value` only.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchType,
    pub value: String,
    /// Compiled `^(?:value)$` for `=~` / `!~`.
    re: Option<CompiledRegex>,
}

impl Matcher {
    /// Builds a matcher; for `=~` / `!~` the value is compiled as the fully
    /// anchored regular expression `^(?:value)$` (plain string concatenation,
    /// exactly like Alertmanager).
    ///
    /// The name is not validated here (parsers and config loading do that).
    ///
    /// Regex dialect: the `regex` crate with Go's ASCII meaning of
    /// `\d \D \w \W \s \S \b \B`. Remaining differences from Go RE2 (e.g. no
    /// `\Q…\E`, no 1000 repetition limit, nested character classes) are
    /// accepted as they are.
    pub fn new(
        name: impl Into<String>,
        op: MatchType,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let name = name.into();
        let value = value.into();
        let re = match op {
            MatchType::Regex | MatchType::NotRegex => Some(CompiledRegex {
                regex: compile_anchored(&value)?,
                source: value.clone(),
            }),
            MatchType::Equal | MatchType::NotEqual => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            re,
        })
    }

    /// Whether a label value (use `""` for an absent label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchType::Equal => value == self.value,
            MatchType::NotEqual => value != self.value,
            MatchType::Regex => self.regex_is_match(value),
            MatchType::NotRegex => !self.regex_is_match(value),
        }
    }

    /// Whether the label set satisfies the matcher; an absent label is `""`.
    pub fn matches_labels(&self, labels: &LabelSet) -> bool {
        self.matches(labels.get(&self.name).map_or("", String::as_str))
    }

    /// Regex test. Uses the regex compiled in [`Matcher::new`] unless the public
    /// fields were changed afterwards, in which case the current value is
    /// compiled on the fly; a value that does not compile matches nothing.
    fn regex_is_match(&self, value: &str) -> bool {
        match &self.re {
            Some(c) if c.source == self.value => c.regex.is_match(value),
            _ => compile_anchored(&self.value).is_ok_and(|r| r.is_match(value)),
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

/// Alertmanager's `Matcher.String()`: `name="value"` with the value escaped
/// OpenMetrics-style; if the name contains whitespace or one of
/// `` {}!=~,\"'` `` both name and value are Go-quoted.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.chars().any(is_reserved_char) {
            write!(
                f,
                "{}{}{}",
                go_quote(&self.name),
                self.op,
                go_quote(&self.value)
            )
        } else {
            write!(
                f,
                "{}{}\"{}\"",
                self.name,
                self.op,
                openmetrics_escape(&self.value)
            )
        }
    }
}

/// A list of matchers, all of which must match (AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// True when every matcher matches the label set (true for an empty list).
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.0.iter().all(|m| m.matches_labels(labels))
    }

    /// The route-key form: matchers sorted by name, then value, then operator
    /// (`=`, `!=`, `=~`, `!~`), printed as `{a="1",b=~"x"}`; `{}` when empty.
    pub fn route_key_string(&self) -> String {
        let mut sorted: Vec<&Matcher> = self.0.iter().collect();
        sorted.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then_with(|| a.value.cmp(&b.value))
                .then_with(|| a.op.cmp(&b.op))
        });
        let parts: Vec<String> = sorted.iter().map(|m| m.to_string()).collect();
        format!("{{{}}}", parts.join(","))
    }
}

// ---------------------------------------------------------------------------
// Regex compilation
// ---------------------------------------------------------------------------

/// Compiles `^(?:value)$`, with Go's ASCII Perl classes.
fn compile_anchored(value: &str) -> Result<Regex, MatcherError> {
    let anchored = format!("^(?:{value})$");
    // Compile the pattern as written first so errors refer to the user's text
    // (and so `\b` inside a character class is rejected before any rewrite).
    let original = Regex::new(&anchored).map_err(|e| regex_error(value, &e))?;
    match go_perl_classes(&anchored) {
        Cow::Borrowed(_) => Ok(original),
        Cow::Owned(rewritten) => Regex::new(&rewritten).map_err(|e| regex_error(value, &e)),
    }
}

/// Rewrites the Perl classes whose meaning differs between Go RE2 (ASCII) and
/// the `regex` crate (Unicode) into explicit ASCII forms. The replacements are
/// bracketed classes, which the `regex` crate also accepts nested inside a class.
fn go_perl_classes(pattern: &str) -> Cow<'_, str> {
    if !pattern.contains('\\') {
        return Cow::Borrowed(pattern);
    }
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut changed = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(escaped) = chars.next() else {
            out.push('\\');
            break;
        };
        let replacement = match escaped {
            'd' => Some("[0-9]"),
            'D' => Some("[^0-9]"),
            'w' => Some("[0-9A-Za-z_]"),
            'W' => Some("[^0-9A-Za-z_]"),
            's' => Some(r"[\t\n\x0C\r\x20]"),
            'S' => Some(r"[^\t\n\x0C\r\x20]"),
            'b' => Some(r"(?-u:\b)"),
            'B' => Some(r"(?-u:\B)"),
            _ => None,
        };
        match replacement {
            Some(r) => {
                out.push_str(r);
                changed = true;
            }
            None => {
                out.push('\\');
                out.push(escaped);
            }
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(pattern)
    }
}

fn regex_error(value: &str, err: &regex::Error) -> MatcherError {
    let reason = match err {
        regex::Error::Syntax(text) => text
            .lines()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or_else(|| text.trim())
            .to_string(),
        other => other.to_string(),
    };
    MatcherError::InvalidRegex {
        regex: value.to_string(),
        reason,
    }
}

// ---------------------------------------------------------------------------
// Printing helpers
// ---------------------------------------------------------------------------

/// Characters that force quoting of a matcher name and that end an unquoted
/// token in the UTF-8 grammar.
fn is_reserved_char(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '{' | '}' | '!' | '=' | '~' | ',' | '\\' | '"' | '\'' | '`'
        )
}

/// OpenMetrics escaping: `\` → `\\`, newline → `\n`, `"` → `\"`.
fn openmetrics_escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['\\', '\n', '"']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Go's `strconv.IsPrint` for non-ASCII characters: Unicode categories
/// L, M, N, P and S. `None` only if the constant pattern failed to compile,
/// which the tests rule out.
static GO_PRINTABLE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[\p{L}\p{M}\p{N}\p{P}\p{S}]$").ok());

fn is_go_printable(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    let mut buf = [0u8; 4];
    let s: &str = c.encode_utf8(&mut buf);
    GO_PRINTABLE.as_ref().is_none_or(|re| re.is_match(s))
}

/// Go `strconv.Quote`: wraps in `"`, escapes `"` and `\`, `\a \b \f \n \r \t \v`,
/// other control characters as `\xNN`, other non-printable characters as
/// `\uNNNN` / `\UNNNNNNNN`; printable Unicode is kept as is.
pub fn go_quote(s: &str) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_go_printable(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if u32::from(c) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// Alertmanager's `LabelSet.String()` (used for group labels in group keys):
/// `{a="x", b="y"}` with names in byte order, `", "` between pairs, names
/// written as is and values Go-quoted; `{}` when empty.
pub fn label_set_string(labels: &LabelSet) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}={}", go_quote(value)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

// ---------------------------------------------------------------------------
// Fallback mode (Alertmanager default)
// ---------------------------------------------------------------------------

/// Parses zero or more matchers in Alertmanager's default fallback mode: the
/// UTF-8 parser is tried; if it fails and the classic parser succeeds the
/// classic result is used; if both succeed but disagree the classic result is
/// used. When both fail the UTF-8 parser's error is returned (it carries
/// positions and says what was expected; Alertmanager returns the classic one).
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, MatcherError> {
    // Whenever the classic parser succeeds its result is the answer (the UTF-8
    // result is only used when it agrees with it, i.e. is identical), so the
    // UTF-8 parser only needs to run when the classic one fails.
    match parse_matchers_classic(input) {
        Ok(classic) => Ok(classic),
        Err(_) => parse_matchers_utf8(input),
    }
}

/// Parses exactly one matcher (API `filter`, amtool arguments) in fallback
/// mode. Input starting with `{` or ending with `}` is rejected. Note that the
/// classic single-matcher parser takes the whole input as one matcher, so
/// `a=b,c=d` yields `a="b,c=d"` (as in Alertmanager).
pub fn parse_matcher(input: &str) -> Result<Matcher, MatcherError> {
    if input.starts_with('{') || input.ends_with('}') {
        return Err(MatcherError::UnexpectedBrace(input.to_string()));
    }
    match parse_classic_item(input) {
        Ok(classic) => Ok(classic),
        Err(_) => {
            let mut all = parse_matchers_utf8(input)?;
            if all.len() == 1 {
                if let Some(m) = all.pop() {
                    return Ok(m);
                }
            }
            Err(MatcherError::MatcherCount(all.len()))
        }
    }
}

// ---------------------------------------------------------------------------
// LabelIndex
// ---------------------------------------------------------------------------

/// Items that each carry a matcher set (silences, inhibition rules), indexed by one
/// `name="value"` matcher of the set, so a label set is tried only against the items
/// naming one of its labels (plus those with no such matcher). A `name=""` matcher also
/// matches label sets without the label, so it is never the index key.
#[derive(Debug, Clone)]
pub struct LabelIndex<T> {
    by_label: std::collections::HashMap<String, std::collections::HashMap<String, Vec<T>>>,
    unindexed: Vec<T>,
}

impl<T> Default for LabelIndex<T> {
    fn default() -> Self {
        LabelIndex {
            by_label: Default::default(),
            unindexed: Vec::new(),
        }
    }
}

impl<T> LabelIndex<T> {
    /// Add `item`, whose matcher set is `matchers`.
    pub fn insert(&mut self, matchers: &[Matcher], item: T) {
        match matchers
            .iter()
            .find(|m| m.op == MatchType::Equal && !m.value.is_empty())
        {
            Some(m) => self
                .by_label
                .entry(m.name.clone())
                .or_default()
                .entry(m.value.clone())
                .or_default()
                .push(item),
            None => self.unindexed.push(item),
        }
    }

    pub fn clear(&mut self) {
        self.by_label.clear();
        self.unindexed.clear();
    }

    /// Items whose matchers may match `labels` (a superset: callers still run the matchers).
    pub fn candidates<'a>(&'a self, labels: &'a LabelSet) -> impl Iterator<Item = &'a T> + 'a {
        labels
            .iter()
            .filter_map(move |(k, v)| self.by_label.get(k)?.get(v))
            .flatten()
            .chain(self.unindexed.iter())
    }
}

// ---------------------------------------------------------------------------
// Classic parser (pkg/labels)
// ---------------------------------------------------------------------------

/// The classic `pkg/labels` parser: one optional leading `{` and one optional
/// trailing `}` are stripped independently, the rest is split on commas outside
/// double quotes and each item is parsed as `name op value` with names
/// `[a-zA-Z_:][a-zA-Z0-9_:]*` and an optionally double-quoted value.
pub fn parse_matchers_classic(input: &str) -> Result<Vec<Matcher>, MatcherError> {
    let s = input.strip_prefix('{').unwrap_or(input);
    let s = s.strip_suffix('}').unwrap_or(s);

    let mut items: Vec<String> = Vec::new();
    let mut token = String::new();
    let mut inside_quotes = false;
    for c in s.chars() {
        if c == ',' && !inside_quotes {
            items.push(std::mem::take(&mut token));
            continue;
        }
        // A quote preceded by a backslash does not toggle quoting.
        if c == '"' && !token.ends_with('\\') {
            inside_quotes = !inside_quotes;
        }
        token.push(c);
    }
    let last = token.trim();
    if !last.is_empty() {
        items.push(last.to_string());
    }

    items.iter().map(|item| parse_classic_item(item)).collect()
}

/// Whitespace as matched by `\s` in Go's regexp (ASCII only, no `\v`).
fn is_go_regex_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
}

/// Parses one classic item, equivalent to matching
/// `^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*((?s).*?)\s*$` and then
/// unescaping the value.
fn parse_classic_item(item: &str) -> Result<Matcher, MatcherError> {
    let bad = || MatcherError::BadFormat(item.to_string());

    let rest = item.trim_start_matches(is_go_regex_space);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| {
            let ok =
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit());
            !ok
        })
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return Err(bad());
    }
    let (name, rest) = rest.split_at_checked(name_len).ok_or_else(bad)?;

    let rest = rest.trim_start_matches(is_go_regex_space);
    let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
        (MatchType::Regex, r)
    } else if let Some(r) = rest.strip_prefix('=') {
        (MatchType::Equal, r)
    } else if let Some(r) = rest.strip_prefix("!=") {
        (MatchType::NotEqual, r)
    } else if let Some(r) = rest.strip_prefix("!~") {
        (MatchType::NotRegex, r)
    } else {
        return Err(bad());
    };

    let raw_value = rest
        .trim_start_matches(is_go_regex_space)
        .trim_end_matches(is_go_regex_space);
    let value = unescape_classic_value(raw_value)?;
    Matcher::new(name, op, value)
}

/// Classic value unescaping: optional surrounding double quotes; `\"` → `"`,
/// `\n` → newline, `\\` → `\`, any other `\x` (and a trailing `\`) kept
/// literally; an unescaped `"` other than the closing one is an error.
fn unescape_classic_value(raw: &str) -> Result<String, MatcherError> {
    let unescaped_quote = || MatcherError::UnescapedQuote(raw.to_string());
    let (body, mut expect_closing_quote) = match raw.strip_prefix('"') {
        Some(body) => (body, true),
        None => (raw, false),
    };

    let mut value = String::with_capacity(body.len());
    let mut escaped = false;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        let is_last = chars.peek().is_none();
        if escaped {
            escaped = false;
            match c {
                'n' => value.push('\n'),
                '"' | '\\' => value.push(c),
                _ => {
                    value.push('\\');
                    value.push(c);
                }
            }
            continue;
        }
        match c {
            '\\' if !is_last => escaped = true,
            '"' => {
                if !expect_closing_quote || !is_last {
                    return Err(unescaped_quote());
                }
                expect_closing_quote = false;
            }
            _ => value.push(c),
        }
    }
    if expect_closing_quote {
        return Err(unescaped_quote());
    }
    Ok(value)
}

// ---------------------------------------------------------------------------
// UTF-8 parser (matcher/parse)
// ---------------------------------------------------------------------------

const EXPECT_OPERATOR: &str = "an operator such as '=', '!=', '=~' or '!~'";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    OpenBrace,
    CloseBrace,
    Comma,
    Op(MatchType),
    Quoted,
    Unquoted,
    Eof,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: TokenKind,
    text: &'a str,
    /// Character columns, end exclusive.
    start: usize,
    end: usize,
}

/// A lexical error; `expected` overrides the parser's expectation.
struct LexError<'a> {
    start: usize,
    end: usize,
    text: &'a str,
    problem: &'static str,
    expected: Option<&'static str>,
}

struct Lexer<'a> {
    input: &'a str,
    /// Byte offset (always on a char boundary).
    pos: usize,
    /// Character column of `pos`.
    col: usize,
    /// Length of the input in characters.
    len_chars: usize,
}

impl<'a> Lexer<'a> {
    fn new(input: &'a str) -> Self {
        Lexer {
            input,
            pos: 0,
            col: 0,
            len_chars: input.chars().count(),
        }
    }

    fn peek_char(&self) -> Option<char> {
        self.input.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        self.col += 1;
        Some(c)
    }

    fn text_from(&self, start_pos: usize) -> &'a str {
        self.input.get(start_pos..self.pos).unwrap_or("")
    }

    fn next_token(&mut self) -> Result<Token<'a>, LexError<'a>> {
        while self.peek_char().is_some_and(char::is_whitespace) {
            self.bump();
        }
        let start_pos = self.pos;
        let start = self.col;
        let Some(c) = self.bump() else {
            return Ok(Token {
                kind: TokenKind::Eof,
                text: "",
                start,
                end: start,
            });
        };
        let kind = match c {
            '{' => TokenKind::OpenBrace,
            '}' => TokenKind::CloseBrace,
            ',' => TokenKind::Comma,
            '=' => {
                if self.peek_char() == Some('~') {
                    self.bump();
                    TokenKind::Op(MatchType::Regex)
                } else {
                    TokenKind::Op(MatchType::Equal)
                }
            }
            '!' => match self.bump() {
                Some('=') => TokenKind::Op(MatchType::NotEqual),
                Some('~') => TokenKind::Op(MatchType::NotRegex),
                Some(_) => {
                    return Err(LexError {
                        start,
                        end: self.col,
                        text: self.text_from(start_pos),
                        problem: "invalid operator",
                        expected: Some("'!=' or '!~'"),
                    })
                }
                None => {
                    return Err(LexError {
                        start,
                        end: self.col,
                        text: self.text_from(start_pos),
                        problem: "end of input",
                        expected: Some("'=' or '~' after '!'"),
                    })
                }
            },
            '"' => loop {
                match self.bump() {
                    Some('"') => break TokenKind::Quoted,
                    Some('\\') => {
                        if self.bump().is_none() {
                            return Err(self.unterminated(start, start_pos));
                        }
                    }
                    Some(_) => {}
                    None => return Err(self.unterminated(start, start_pos)),
                }
            },
            c if is_reserved_char(c) => {
                return Err(LexError {
                    start,
                    end: self.col,
                    text: self.text_from(start_pos),
                    problem: "invalid input",
                    expected: None,
                })
            }
            _ => {
                while self.peek_char().is_some_and(|c| !is_reserved_char(c)) {
                    self.bump();
                }
                TokenKind::Unquoted
            }
        };
        Ok(Token {
            kind,
            text: self.text_from(start_pos),
            start,
            end: self.col,
        })
    }

    fn unterminated(&self, start: usize, start_pos: usize) -> LexError<'a> {
        LexError {
            start,
            end: self.col,
            text: self.text_from(start_pos),
            problem: "unterminated quoted string",
            expected: Some("a closing double quote"),
        }
    }

    /// Next token; lexical errors are reported with `expected` as context.
    fn next(&mut self, expected: &str) -> Result<Token<'a>, MatcherError> {
        self.next_token().map_err(|e| MatcherError::Syntax {
            start: e.start,
            end: e.end,
            message: format!(
                "{}: {}: expected {}",
                e.text,
                e.problem,
                e.expected.unwrap_or(expected)
            ),
        })
    }

    /// Error for a token that is not what the grammar allows here.
    fn unexpected(&self, tok: &Token<'_>, expected: &str) -> MatcherError {
        if tok.kind == TokenKind::Eof {
            MatcherError::Syntax {
                start: 0,
                end: self.len_chars,
                message: format!("end of input: expected {expected}"),
            }
        } else {
            MatcherError::Syntax {
                start: tok.start,
                end: tok.end,
                message: format!("unexpected {}: expected {expected}", tok.text),
            }
        }
    }
}

/// The UTF-8 matchers parser:
/// `[ "{" ] [ matcher { "," matcher } [ "," ] ] [ "}" ]` (braces both or
/// neither), `matcher := name op value`, name and value either double-quoted
/// (Go string-literal escapes, must be valid UTF-8) or unquoted (no whitespace
/// and none of `` {}!=~,\"'` ``). Empty input or `{}` gives no matchers.
pub fn parse_matchers_utf8(input: &str) -> Result<Vec<Matcher>, MatcherError> {
    let mut lx = Lexer::new(input);
    let mut out = Vec::new();

    let first = lx.next("a matcher or an opening brace")?;
    let has_open = first.kind == TokenKind::OpenBrace;
    let mut tok = if has_open {
        lx.next("a matcher or close brace")?
    } else {
        first
    };
    let mut after_comma = false;

    loop {
        match tok.kind {
            TokenKind::Eof => {
                if has_open {
                    return Err(lx.unexpected(&tok, "close brace"));
                }
                return Ok(out);
            }
            TokenKind::CloseBrace => {
                if !has_open {
                    return Err(MatcherError::Syntax {
                        start: tok.start,
                        end: tok.end,
                        message: "}: expected opening brace".to_string(),
                    });
                }
                let end = lx.next("end of input")?;
                if end.kind != TokenKind::Eof {
                    return Err(lx.unexpected(&end, "end of input"));
                }
                return Ok(out);
            }
            TokenKind::Quoted | TokenKind::Unquoted => {}
            _ => {
                let expected = if after_comma {
                    "a matcher or close brace after comma"
                } else {
                    "label name"
                };
                return Err(lx.unexpected(&tok, expected));
            }
        }

        // name
        let name = decode_token(&tok)?;
        if name.is_empty() {
            return Err(MatcherError::Syntax {
                start: tok.start,
                end: tok.end,
                message: format!(
                    "{}: invalid input: expected a non-empty label name",
                    tok.text
                ),
            });
        }
        // operator
        let op_tok = lx.next(EXPECT_OPERATOR)?;
        let TokenKind::Op(op) = op_tok.kind else {
            return Err(lx.unexpected(&op_tok, EXPECT_OPERATOR));
        };
        // value
        let value_tok = lx.next("label value")?;
        if !matches!(value_tok.kind, TokenKind::Quoted | TokenKind::Unquoted) {
            return Err(lx.unexpected(&value_tok, "label value"));
        }
        let value = decode_token(&value_tok)?;
        out.push(Matcher::new(name, op, value)?);

        // separator
        let sep = lx.next("a comma or close brace")?;
        match sep.kind {
            TokenKind::Comma => {
                tok = lx.next("a matcher or close brace after comma")?;
                after_comma = true;
            }
            TokenKind::CloseBrace | TokenKind::Eof => {
                tok = sep;
            }
            _ => return Err(lx.unexpected(&sep, "a comma or close brace")),
        }
    }
}

/// The string a name/value token stands for.
fn decode_token(tok: &Token<'_>) -> Result<String, MatcherError> {
    if tok.kind != TokenKind::Quoted {
        return Ok(tok.text.to_string());
    }
    let invalid = |reason: String| MatcherError::Syntax {
        start: tok.start,
        end: tok.end,
        message: format!("{}: invalid quoted string: {reason}", tok.text),
    };
    let body = tok
        .text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(|| invalid("expected surrounding double quotes".to_string()))?;
    go_unquote_body(body).map_err(invalid)
}

/// Decodes the inside of a Go double-quoted string literal (`strconv.Unquote`
/// rules) into bytes and checks that the result is valid UTF-8.
fn go_unquote_body(body: &str) -> Result<String, String> {
    const VALID: &str =
        "expected one of \\\\ \\\" \\a \\b \\f \\n \\r \\t \\v \\xHH \\uHHHH \\UHHHHHHHH \\OOO";
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\n' {
            return Err("unescaped newline: expected the escape sequence \\n".to_string());
        }
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some(e) = chars.next() else {
            return Err(format!("trailing backslash: {VALID}"));
        };
        match e {
            'a' => out.push(0x07),
            'b' => out.push(0x08),
            'f' => out.push(0x0c),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(0x0b),
            '\\' => out.push(b'\\'),
            '"' => out.push(b'"'),
            'x' => {
                let v = read_digits(&mut chars, 2, 16)
                    .ok_or_else(|| "invalid escape \\x: expected two hex digits".to_string())?;
                out.push(u8::try_from(v).map_err(|_| "invalid escape \\x".to_string())?);
            }
            'u' | 'U' => {
                let n = if e == 'u' { 4 } else { 8 };
                let v = read_digits(&mut chars, n, 16)
                    .ok_or_else(|| format!("invalid escape \\{e}: expected {n} hex digits"))?;
                let ch = char::from_u32(v).ok_or_else(|| {
                    format!("invalid escape \\{e}{v:0n$x}: not a valid Unicode code point")
                })?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            '0'..='7' => {
                let rest = read_digits(&mut chars, 2, 8).ok_or_else(|| {
                    "invalid octal escape: expected three octal digits".to_string()
                })?;
                let v = e.to_digit(8).unwrap_or(0) * 64 + rest;
                let byte = u8::try_from(v)
                    .map_err(|_| format!("invalid octal escape \\{v:03o}: value above \\377"))?;
                out.push(byte);
            }
            other => return Err(format!("invalid escape sequence \\{other}: {VALID}")),
        }
    }
    String::from_utf8(out).map_err(|_| "not valid UTF-8 after decoding escapes".to_string())
}

/// Reads exactly `n` digits in `radix`.
fn read_digits(chars: &mut std::str::Chars<'_>, n: usize, radix: u32) -> Option<u32> {
    let mut v: u32 = 0;
    for _ in 0..n {
        let d = chars.next()?.to_digit(radix)?;
        v = v.checked_mul(radix)?.checked_add(d)?;
    }
    Some(v)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, op: MatchType, value: &str) -> Matcher {
        Matcher::new(name, op, value).unwrap()
    }

    fn ls(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    type Triple = (String, MatchType, String);

    fn triples(ms: &[Matcher]) -> Vec<Triple> {
        ms.iter()
            .map(|m| (m.name.clone(), m.op, m.value.clone()))
            .collect()
    }

    fn t(name: &str, op: MatchType, value: &str) -> Triple {
        (name.to_string(), op, value.to_string())
    }

    use MatchType::{Equal as EQ, NotEqual as NE, NotRegex as NRE, Regex as RE};

    // ----- semantics -----------------------------------------------------

    #[test]
    fn match_type_display_and_order() {
        assert_eq!(EQ.to_string(), "=");
        assert_eq!(NE.to_string(), "!=");
        assert_eq!(RE.to_string(), "=~");
        assert_eq!(NRE.to_string(), "!~");
        let mut v = vec![NRE, RE, NE, EQ];
        v.sort();
        assert_eq!(v, vec![EQ, NE, RE, NRE]);
    }

    #[test]
    fn equality_operators() {
        assert!(m("a", EQ, "x").matches("x"));
        assert!(!m("a", EQ, "x").matches("xy"));
        assert!(m("a", NE, "x").matches("y"));
        assert!(!m("a", NE, "x").matches("x"));
    }

    #[test]
    fn regex_is_fully_anchored() {
        let re = m("foo", RE, "a");
        assert!(re.matches("a"));
        assert!(!re.matches("ab"));
        assert!(!re.matches("ba"));
        let alt = m("foo", RE, "a|b");
        assert!(alt.matches("b"));
        assert!(!alt.matches("ab"));
        assert!(!m("foo", NRE, "a").matches("a"));
        assert!(m("foo", NRE, "a").matches("ab"));
    }

    #[test]
    fn regex_dot_does_not_match_newline() {
        assert!(!m("foo", RE, ".*").matches("a\nb"));
        assert!(m("foo", RE, "(?s).*").matches("a\nb"));
        assert!(!m("foo", RE, "a.*").matches("a\n"));
    }

    #[test]
    fn regex_perl_classes_are_ascii_like_go() {
        // Arabic-indic digit three, e-acute and a no-break space.
        let digits = m("x", RE, r"\d+");
        assert!(digits.matches("123"));
        assert!(!digits.matches("\u{663}"));
        assert!(m("x", RE, r"\D").matches("\u{663}"));
        assert!(!m("x", RE, r"\w").matches("é"));
        assert!(m("x", RE, r"\W").matches("é"));
        assert!(m("x", RE, r"[\w]+").matches("a_1"));
        assert!(!m("x", RE, r"[\w]+").matches("é"));
        assert!(m("x", RE, r"[^\d]").matches("a"));
        assert!(!m("x", RE, r"\s").matches("\u{a0}"));
        assert!(!m("x", RE, r"\s").matches("\u{b}"));
        assert!(m("x", RE, r"\s").matches(" "));
        assert!(m("x", RE, r"\S").matches("\u{a0}"));
        // Go's \b is an ASCII word boundary: "é" is not a word character.
        assert!(m("x", RE, r".\bfoo").matches("éfoo"));
        // An escaped backslash followed by 'd' stays literal.
        assert!(m("x", RE, r"\\d").matches("\\d"));
        assert!(m("x", RE, r"\pL+").matches("éa"));
    }

    #[test]
    fn absent_label_is_empty_string() {
        let labels = ls(&[("other", "1")]);
        assert!(m("foo", EQ, "").matches_labels(&labels));
        assert!(m("foo", NRE, ".+").matches_labels(&labels));
        assert!(m("foo", NE, "x").matches_labels(&labels));
        assert!(!m("foo", RE, ".+").matches_labels(&labels));
        assert!(!m("foo", EQ, "x").matches_labels(&labels));
        assert!(!m("foo", NRE, ".+").matches_labels(&ls(&[("foo", "x")])));
        assert!(m("other", EQ, "1").matches_labels(&labels));
    }

    #[test]
    fn matchers_are_anded() {
        let ms = Matchers(vec![m("a", EQ, "1"), m("b", RE, "x|y")]);
        assert!(ms.matches(&ls(&[("a", "1"), ("b", "y")])));
        assert!(!ms.matches(&ls(&[("a", "1"), ("b", "z")])));
        assert!(!ms.matches(&ls(&[("b", "x")])));
        assert!(Matchers::default().matches(&ls(&[])));
        assert!(Matchers(vec![]).matches(&ls(&[("a", "1")])));
    }

    #[test]
    fn invalid_regex_is_an_error_naming_the_regex() {
        let err = Matcher::new("foo", RE, "[a-z").unwrap_err();
        assert!(matches!(&err, MatcherError::InvalidRegex { regex, .. } if regex == "[a-z"));
        let msg = err.to_string();
        assert!(
            msg.starts_with("invalid regular expression \"[a-z\": "),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        assert!(Matcher::new("foo", NRE, "(").is_err());
        // Equality matchers do not compile their value.
        assert!(Matcher::new("foo", EQ, "[a-z").is_ok());
        // \b inside a class is rejected (Go rejects it too).
        assert!(Matcher::new("foo", RE, r"[\b]").is_err());
    }

    #[test]
    fn anchoring_is_plain_concatenation_like_alertmanager() {
        // "^(?:a)|(b)$" – Alertmanager builds the pattern by concatenation.
        let quirky = m("foo", RE, "a)|(b");
        assert!(quirky.matches("a"));
        assert!(quirky.matches("axyz"));
        assert!(!quirky.matches("xa"));
    }

    #[test]
    fn matcher_equality_ignores_compiled_regex() {
        assert_eq!(m("a", RE, "x"), m("a", RE, "x"));
        assert_ne!(m("a", RE, "x"), m("a", NRE, "x"));
        assert_ne!(m("a", EQ, "x"), m("a", EQ, "y"));
        assert_ne!(m("a", EQ, "x"), m("b", EQ, "x"));
    }

    #[test]
    fn mutated_public_fields_are_honoured() {
        let mut mm = m("a", RE, "x+");
        mm.value = "y+".to_string();
        assert!(mm.matches("yy"));
        assert!(!mm.matches("xx"));
        mm.op = NRE;
        assert!(!mm.matches("yy"));
        let mut eq = m("a", EQ, "z");
        eq.op = RE;
        assert!(eq.matches("z"));
        eq.value = "(".to_string();
        assert!(!eq.matches("("));
    }

    // ----- printing -----------------------------------------------------

    #[test]
    fn matcher_display() {
        assert_eq!(m("env", EQ, "prod").to_string(), r#"env="prod""#);
        assert_eq!(m("env", NE, "prod").to_string(), r#"env!="prod""#);
        assert_eq!(m("env", RE, "p.*").to_string(), r#"env=~"p.*""#);
        assert_eq!(m("env", NRE, "p.*").to_string(), r#"env!~"p.*""#);
        // OpenMetrics escaping of the value only (tab is kept raw).
        assert_eq!(
            m("a", EQ, "q\"b\\s\nn\tt").to_string(),
            "a=\"q\\\"b\\\\s\\nn\tt\""
        );
        assert_eq!(m("a", EQ, "🙂").to_string(), "a=\"🙂\"");
    }

    #[test]
    fn matcher_display_quotes_reserved_names() {
        assert_eq!(m("my name", EQ, "v").to_string(), r#""my name"="v""#);
        // With a quoted name the value is Go-quoted, so a tab is escaped.
        assert_eq!(m("a,b", RE, "x\ty").to_string(), r#""a,b"=~"x\ty""#);
        for name in [
            "a{", "a}", "a!", "a=", "a~", "a\\", "a\"", "a'", "a`", "a\u{a0}",
        ] {
            let s = m(name, EQ, "v").to_string();
            assert!(s.starts_with('"'), "{name:?} -> {s}");
            assert_eq!(s, format!("{}={}", go_quote(name), go_quote("v")));
        }
        // Dashes, dots, colons and unicode letters need no quoting.
        assert_eq!(m("a-b.c:d", EQ, "v").to_string(), r#"a-b.c:d="v""#);
        assert_eq!(m("ünï", EQ, "v").to_string(), r#"ünï="v""#);
    }

    #[test]
    fn route_key_string_single_and_empty() {
        assert_eq!(
            Matchers(vec![m("env", EQ, "prod")]).route_key_string(),
            r#"{env="prod"}"#
        );
        assert_eq!(Matchers::default().route_key_string(), "{}");
    }

    #[test]
    fn route_key_string_sorts_by_name_value_op() {
        let ms = Matchers(vec![
            m("b", RE, "x"),
            m("a", NRE, "1"),
            m("a", EQ, "2"),
            m("a", RE, "1"),
            m("a", EQ, "1"),
            m("a", NE, "1"),
        ]);
        assert_eq!(
            ms.route_key_string(),
            r#"{a="1",a!="1",a=~"1",a!~"1",a="2",b=~"x"}"#
        );
        // The list itself is not reordered.
        assert_eq!(ms.0[0].name, "b");
    }

    #[test]
    fn route_key_string_quotes_names_with_spaces() {
        let ms = Matchers(vec![m("z", EQ, "1"), m("my name", EQ, "v")]);
        assert_eq!(ms.route_key_string(), r#"{"my name"="v",z="1"}"#);
    }

    #[test]
    fn go_quote_basics() {
        assert_eq!(go_quote(""), r#""""#);
        assert_eq!(go_quote("abc"), r#""abc""#);
        assert_eq!(go_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(go_quote("it's `x`"), r#""it's `x`""#);
    }

    #[test]
    fn go_quote_control_chars() {
        assert_eq!(
            go_quote("\u{7}\u{8}\u{c}\n\r\t\u{b}"),
            r#""\a\b\f\n\r\t\v""#
        );
        assert_eq!(go_quote("\u{0}\u{1}\u{1b}\u{7f}"), r#""\x00\x01\x1b\x7f""#);
        // C1 control, no-break space, zero-width space, BOM, private use.
        assert_eq!(
            go_quote("\u{85}\u{a0}\u{200b}\u{feff}\u{e000}"),
            r#""\u0085\u00a0\u200b\ufeff\ue000""#
        );
        // Non-printable outside the BMP (private use plane 15).
        assert_eq!(go_quote("\u{f0000}"), r#""\U000f0000""#);
    }

    #[test]
    fn go_quote_keeps_printable_unicode() {
        assert_eq!(
            go_quote("héllo wörld 🙂 日本 ½ €"),
            "\"héllo wörld 🙂 日本 ½ €\""
        );
        // Combining mark (M) and symbol (S) are printable.
        assert_eq!(go_quote("e\u{301}\u{2603}"), "\"e\u{301}\u{2603}\"");
        assert!(GO_PRINTABLE.is_some());
    }

    #[test]
    fn label_set_string_format() {
        let labels = ls(&[
            ("service", "api"),
            ("alertname", "HighErrorRate"),
            ("cluster", "aa"),
        ]);
        assert_eq!(
            label_set_string(&labels),
            r#"{alertname="HighErrorRate", cluster="aa", service="api"}"#
        );
        assert_eq!(label_set_string(&LabelSet::new()), "{}");
        assert_eq!(
            label_set_string(&ls(&[("alertname", "test1")])),
            r#"{alertname="test1"}"#
        );
        assert_eq!(
            label_set_string(&ls(&[("a", "x\"y\n"), ("B", "é")])),
            r#"{B="é", a="x\"y\n"}"#
        );
    }

    #[test]
    fn group_key_examples_from_spec() {
        let root = Matchers::default().route_key_string();
        let child = Matchers(vec![m("env", EQ, "prod")]).route_key_string();
        let labels = ls(&[
            ("alertname", "HighErrorRate"),
            ("cluster", "aa"),
            ("service", "api"),
        ]);
        assert_eq!(
            format!("{root}/{child}:{}", label_set_string(&labels)),
            r#"{}/{env="prod"}:{alertname="HighErrorRate", cluster="aa", service="api"}"#
        );
    }

    // ----- UTF-8 parser: accepted ---------------------------------------

    #[test]
    fn utf8_ok_examples() {
        let cases: Vec<(&str, Vec<Triple>)> = vec![
            ("foo=bar", vec![t("foo", EQ, "bar")]),
            ("foo = bar", vec![t("foo", EQ, "bar")]),
            (
                r#"{foo="bar", baz!~"q.*",}"#,
                vec![t("foo", EQ, "bar"), t("baz", NRE, "q.*")],
            ),
            ("foo=~[a-z]+", vec![t("foo", RE, "[a-z]+")]),
            ("foo=🙂", vec![t("foo", EQ, "🙂")]),
            (r#""foo bar"="baz""#, vec![t("foo bar", EQ, "baz")]),
            (r#"{"foo"="\\d+"}"#, vec![t("foo", EQ, r"\d+")]),
            (r#"foo="\xf0\x9f\x99\x82""#, vec![t("foo", EQ, "🙂")]),
            (
                r#"name-with-dashes="x""#,
                vec![t("name-with-dashes", EQ, "x")],
            ),
            (r#"foo="""#, vec![t("foo", EQ, "")]),
            (r#"foo="bar,baz""#, vec![t("foo", EQ, "bar,baz")]),
            ("", vec![]),
            ("   ", vec![]),
            ("{}", vec![]),
            (" { } ", vec![]),
            (
                "a=1,b!=2,c=~3,d!~4",
                vec![
                    t("a", EQ, "1"),
                    t("b", NE, "2"),
                    t("c", RE, "3"),
                    t("d", NRE, "4"),
                ],
            ),
            ("foo=bar,", vec![t("foo", EQ, "bar")]),
            ("\tfoo\u{a0}=\u{3000}bar\n", vec![t("foo", EQ, "bar")]),
        ];
        for (input, want) in cases {
            let got = parse_matchers_utf8(input)
                .unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
            assert_eq!(triples(&got), want, "input {input:?}");
        }
    }

    #[test]
    fn utf8_go_escapes() {
        let got = parse_matchers_utf8(r#"a="\a\b\f\n\r\t\v\\\"\x41\101\u00e9\U0001F642""#).unwrap();
        assert_eq!(got[0].value, "\u{7}\u{8}\u{c}\n\r\t\u{b}\\\"AAé🙂");
        // Raw (unescaped) tab and unicode inside quotes are fine.
        let got = parse_matchers_utf8("a=\"x\ty🙂\"").unwrap();
        assert_eq!(got[0].value, "x\ty🙂");
        // Reserved characters are fine inside quotes.
        let got = parse_matchers_utf8(r#""{}!=~,'`"="{}!=~,'`""#).unwrap();
        assert_eq!(triples(&got), vec![t("{}!=~,'`", EQ, "{}!=~,'`")]);
    }

    // ----- UTF-8 parser: rejected ---------------------------------------

    fn utf8_err(input: &str) -> String {
        match parse_matchers_utf8(input) {
            Ok(ms) => panic!("{input:?} should fail, got {:?}", triples(&ms)),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn utf8_missing_value() {
        assert_eq!(utf8_err("foo="), "0:4: end of input: expected label value");
        assert_eq!(
            parse_matchers_utf8("foo=").unwrap_err(),
            MatcherError::Syntax {
                start: 0,
                end: 4,
                message: "end of input: expected label value".to_string()
            }
        );
        assert!(utf8_err("{foo=}").contains("unexpected }: expected label value"));
    }

    #[test]
    fn utf8_brace_errors() {
        assert_eq!(
            utf8_err("{foo=bar"),
            "0:8: end of input: expected close brace"
        );
        assert_eq!(utf8_err("foo=bar}"), "7:8: }: expected opening brace");
        assert!(utf8_err("{").contains("expected close brace"));
        assert!(utf8_err("}").contains("expected opening brace"));
        assert!(utf8_err("{foo=bar,").contains("expected close brace"));
        assert_eq!(
            utf8_err("{{foo=bar}}"),
            "1:2: unexpected {: expected label name"
        );
        assert_eq!(
            utf8_err("{foo=bar}}"),
            "9:10: unexpected }: expected end of input"
        );
        assert!(utf8_err("{foo=bar} x").contains("expected end of input"));
    }

    #[test]
    fn utf8_missing_name() {
        assert_eq!(utf8_err(","), "0:1: unexpected ,: expected label name");
        assert_eq!(utf8_err("{,}"), "1:2: unexpected ,: expected label name");
        assert!(utf8_err("foo=bar,,").contains("expected a matcher or close brace after comma"));
        assert!(utf8_err("=bar").contains("expected label name"));
        assert!(utf8_err(r#"""=bar"#).contains("expected a non-empty label name"));
    }

    #[test]
    fn utf8_unexpected_after_value() {
        assert_eq!(
            utf8_err(r#"{foo=:"bar"}"#),
            r#"6:11: unexpected "bar": expected a comma or close brace"#
        );
        assert_eq!(
            utf8_err("foo=bar baz"),
            "8:11: unexpected baz: expected a comma or close brace"
        );
    }

    #[test]
    fn utf8_invalid_escapes() {
        let e = utf8_err(r#"{foo="bar\w"}"#);
        assert!(
            e.starts_with(r#"5:12: "bar\w": invalid quoted string: invalid escape sequence \w"#),
            "{e}"
        );
        assert!(e.contains("expected one of"), "{e}");
        let e = utf8_err(r#"{"foo"=~"\d+"}"#);
        assert!(e.contains(r"invalid escape sequence \d"), "{e}");
        assert!(utf8_err(r#"a="\'""#).contains(r"invalid escape sequence \'"));
        assert!(utf8_err(r#"a="\x4""#).contains("two hex digits"));
        assert!(utf8_err(r#"a="\u12""#).contains("4 hex digits"));
        assert!(utf8_err(r#"a="\ud800""#).contains("not a valid Unicode code point"));
        assert!(utf8_err(r#"a="\U00110000""#).contains("not a valid Unicode code point"));
        assert!(utf8_err(r#"a="\400""#).contains("value above"));
        assert!(utf8_err(r#"a="\08""#).contains("three octal digits"));
        assert!(utf8_err("a=\"x\ny\"").contains("unescaped newline"));
    }

    #[test]
    fn utf8_backslash_is_reserved() {
        // Literal backslash followed by n, outside quotes.
        assert_eq!(
            utf8_err(r"{foo=bar\n}"),
            r"8:9: \: invalid input: expected a comma or close brace"
        );
        assert!(utf8_err(r"foo=\d").contains("invalid input: expected label value"));
    }

    #[test]
    fn utf8_bad_operators() {
        assert_eq!(
            utf8_err("foo!bar"),
            "3:5: !b: invalid operator: expected '!=' or '!~'"
        );
        assert!(utf8_err("foo!").contains("expected '=' or '~' after '!'"));
        assert!(utf8_err("foo~bar").contains("~: invalid input: expected an operator"));
        assert_eq!(
            utf8_err("foo"),
            "0:3: end of input: expected an operator such as '=', '!=', '=~' or '!~'"
        );
        assert!(utf8_err("foo bar").contains("unexpected bar: expected an operator"));
        assert!(utf8_err("foo==bar").contains("unexpected =: expected label value"));
    }

    #[test]
    fn utf8_single_quotes_and_backticks_rejected() {
        assert_eq!(
            utf8_err("foo='bar'"),
            "4:5: ': invalid input: expected label value"
        );
        assert!(utf8_err("foo=`bar`").contains("invalid input"));
    }

    #[test]
    fn utf8_unterminated_quote() {
        let e = utf8_err(r#"foo="bar"#);
        assert_eq!(
            e,
            r#"4:8: "bar: unterminated quoted string: expected a closing double quote"#
        );
        assert!(utf8_err(r#"foo="bar\""#).contains("unterminated"));
    }

    #[test]
    fn utf8_regex_error() {
        let err = parse_matchers_utf8(r#"foo=~"[a-z""#).unwrap_err();
        assert!(matches!(&err, MatcherError::InvalidRegex { regex, .. } if regex == "[a-z"));
    }

    #[test]
    fn utf8_invalid_utf8_after_unescape() {
        assert!(utf8_err(r#""foo"="\xf0\x9f""#).contains("not valid UTF-8"));
        assert!(utf8_err(r#"foo="\377""#).contains("not valid UTF-8"));
    }

    #[test]
    fn utf8_columns_count_characters() {
        // "🙂" is one column.
        assert_eq!(
            utf8_err("🙂=a b"),
            "4:5: unexpected b: expected a comma or close brace"
        );
        assert_eq!(utf8_err("🙂="), "0:2: end of input: expected label value");
    }

    // ----- classic parser ----------------------------------------------

    #[test]
    fn classic_ok_examples() {
        let cases: Vec<(&str, Vec<Triple>)> = vec![
            ("foo=", vec![t("foo", EQ, "")]),
            ("{foo=bar}}", vec![t("foo", EQ, "bar}")]),
            ("foo=bar}", vec![t("foo", EQ, "bar")]),
            ("{foo=bar", vec![t("foo", EQ, "bar")]),
            ("tricky=~~~", vec![t("tricky", RE, "~~")]),
            ("foo=bar baz", vec![t("foo", EQ, "bar baz")]),
            ("{foo='}", vec![t("foo", EQ, "'")]),
            (
                r#"contains_quote != "\"" , contains_comma !~ "foo,bar" , "#,
                vec![
                    t("contains_quote", NE, "\""),
                    t("contains_comma", NRE, "foo,bar"),
                ],
            ),
            ("", vec![]),
            ("{}", vec![]),
            ("a=1,", vec![t("a", EQ, "1")]),
            (r#"foo="bar""#, vec![t("foo", EQ, "bar")]),
            (r#"foo="""#, vec![t("foo", EQ, "")]),
            ("  ns:sub_1  =~  \"a b\"  ", vec![t("ns:sub_1", RE, "a b")]),
            (":x=1", vec![t(":x", EQ, "1")]),
            ("foo= =x", vec![t("foo", EQ, "=x")]),
            ("foo=\n multi\nline \t", vec![t("foo", EQ, "multi\nline")]),
        ];
        for (input, want) in cases {
            let got = parse_matchers_classic(input)
                .unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
            assert_eq!(triples(&got), want, "input {input:?}");
        }
    }

    #[test]
    fn classic_value_unescaping() {
        let one = |s: &str| parse_matchers_classic(s).unwrap().remove(0).value;
        assert_eq!(one(r#"a="x\"y""#), "x\"y");
        assert_eq!(one(r#"a="x\ny""#), "x\ny");
        assert_eq!(one(r#"a="x\\y""#), "x\\y");
        // Unknown escapes keep the backslash.
        assert_eq!(one(r#"a="\d+""#), r"\d+");
        assert_eq!(one(r"a=\t"), r"\t");
        // A trailing backslash is literal.
        assert_eq!(one(r"a=x\"), r"x\");
        assert_eq!(one(r"a=\é"), r"\é");
    }

    fn classic_err(input: &str) -> MatcherError {
        match parse_matchers_classic(input) {
            Ok(ms) => panic!("{input:?} should fail, got {:?}", triples(&ms)),
            Err(e) => e,
        }
    }

    #[test]
    fn classic_rejected_examples() {
        assert_eq!(
            classic_err(r#"{invalid-name = "x"}"#),
            MatcherError::BadFormat(r#"invalid-name = "x""#.to_string())
        );
        assert_eq!(
            classic_err(r#""foo"="bar""#).to_string(),
            r#"bad matcher format: "foo"="bar""#
        );
        assert_eq!(
            classic_err(r#"job="value"#),
            MatcherError::UnescapedQuote(r#""value"#.to_string())
        );
        assert_eq!(
            classic_err(r#"job=value""#).to_string(),
            r#"matcher value contains unescaped double quote: value""#
        );
        assert_eq!(classic_err("{,}"), MatcherError::BadFormat(String::new()));
        assert_eq!(classic_err(",").to_string(), "bad matcher format: ");
        assert!(matches!(
            classic_err(r#"foo=~"[a-z""#),
            MatcherError::InvalidRegex { regex, .. } if regex == "[a-z"
        ));
        assert!(matches!(classic_err("1abc=x"), MatcherError::BadFormat(_)));
        assert!(matches!(
            classic_err("a=1,,b=2"),
            MatcherError::BadFormat(_)
        ));
        assert!(matches!(classic_err("foo~bar"), MatcherError::BadFormat(_)));
        assert!(matches!(
            classic_err(r#"a="x"y""#),
            MatcherError::UnescapedQuote(_)
        ));
        assert!(matches!(
            classic_err(r#"a=""""#),
            MatcherError::UnescapedQuote(_)
        ));
        assert!(matches!(
            classic_err(r#"a=""#),
            MatcherError::UnescapedQuote(_)
        ));
        // \v and no-break space are not `\s` in Go's regexp.
        assert!(matches!(
            classic_err("\u{b}a=1,b=2"),
            MatcherError::BadFormat(_)
        ));
        assert!(matches!(
            classic_err("a\u{a0}=1"),
            MatcherError::BadFormat(_)
        ));
    }

    #[test]
    fn classic_comma_splitting_respects_quotes() {
        let got = parse_matchers_classic(r#"a="1,2",b="3""#).unwrap();
        assert_eq!(triples(&got), vec![t("a", EQ, "1,2"), t("b", EQ, "3")]);
        // An escaped quote does not close the quoted section.
        let got = parse_matchers_classic(r#"a="x\",y",b=2"#).unwrap();
        assert_eq!(triples(&got), vec![t("a", EQ, "x\",y"), t("b", EQ, "2")]);
    }

    // ----- fallback mode ------------------------------------------------

    #[test]
    fn fallback_uses_classic_when_utf8_fails() {
        assert!(parse_matchers_utf8("foo=").is_err());
        assert_eq!(
            triples(&parse_matchers("foo=").unwrap()),
            vec![t("foo", EQ, "")]
        );
        assert_eq!(
            triples(&parse_matchers(r#"foo="\d+""#).unwrap()),
            vec![t("foo", EQ, r"\d+")]
        );
        assert_eq!(
            triples(&parse_matchers("foo=bar}").unwrap()),
            vec![t("foo", EQ, "bar")]
        );
        assert_eq!(
            triples(&parse_matchers("foo=bar baz").unwrap()),
            vec![t("foo", EQ, "bar baz")]
        );
        assert_eq!(
            triples(&parse_matchers("tricky=~~~").unwrap()),
            vec![t("tricky", RE, "~~")]
        );
    }

    #[test]
    fn fallback_uses_utf8_when_classic_fails() {
        assert!(parse_matchers_classic(r#"{invalid-name = "x"}"#).is_err());
        assert_eq!(
            triples(&parse_matchers(r#"{invalid-name = "x"}"#).unwrap()),
            vec![t("invalid-name", EQ, "x")]
        );
        assert_eq!(
            triples(&parse_matchers(r#""foo bar"=~"b.*""#).unwrap()),
            vec![t("foo bar", RE, "b.*")]
        );
    }

    #[test]
    fn fallback_prefers_classic_on_disagreement() {
        // UTF-8 decodes \t to a tab; classic keeps the backslash.
        let input = r#"foo="a\tb""#;
        assert_eq!(parse_matchers_utf8(input).unwrap()[0].value, "a\tb");
        assert_eq!(parse_matchers_classic(input).unwrap()[0].value, r"a\tb");
        assert_eq!(parse_matchers(input).unwrap()[0].value, r"a\tb");
    }

    #[test]
    fn fallback_agreement_and_errors() {
        let got = parse_matchers(r#"{foo="bar", baz!~"q.*",}"#).unwrap();
        assert_eq!(
            triples(&got),
            vec![t("foo", EQ, "bar"), t("baz", NRE, "q.*")]
        );
        assert!(parse_matchers("").unwrap().is_empty());
        assert!(parse_matchers("{}").unwrap().is_empty());
        // Both fail: the UTF-8 error is reported.
        assert_eq!(
            parse_matchers("foo!bar").unwrap_err().to_string(),
            "3:5: !b: invalid operator: expected '!=' or '!~'"
        );
        assert!(matches!(
            parse_matchers(r#"foo=~"[a-z""#).unwrap_err(),
            MatcherError::InvalidRegex { .. }
        ));
        assert!(parse_matchers(",").is_err());
        assert!(parse_matchers("{,}").is_err());
        assert!(parse_matchers(r#""foo"="\xf0\x9f""#).is_err());
    }

    #[test]
    fn single_matcher_rejects_braces() {
        for input in ["{foo=bar}", "{foo=bar", "foo=bar}", "{}"] {
            assert_eq!(
                parse_matcher(input).unwrap_err(),
                MatcherError::UnexpectedBrace(input.to_string()),
                "{input}"
            );
        }
        assert_eq!(
            parse_matcher("{foo=bar}").unwrap_err().to_string(),
            "unexpected open or close brace: {foo=bar}"
        );
        // Only the very first / last character counts.
        assert_eq!(parse_matcher("foo={bar").unwrap().value, "{bar");
        assert_eq!(parse_matcher("foo=bar} ").unwrap().value, "bar}");
    }

    #[test]
    fn single_matcher_parses_one() {
        assert_eq!(parse_matcher("foo=bar").unwrap(), m("foo", EQ, "bar"));
        assert_eq!(
            parse_matcher(r#"foo!~"a.*""#).unwrap(),
            m("foo", NRE, "a.*")
        );
        assert_eq!(parse_matcher("foo=").unwrap(), m("foo", EQ, ""));
        assert_eq!(
            parse_matcher(r#""my label"="x""#).unwrap(),
            m("my label", EQ, "x")
        );
        // The classic single parser takes the whole input as the value.
        assert_eq!(
            parse_matcher("foo=bar,baz=qux").unwrap(),
            m("foo", EQ, "bar,baz=qux")
        );
        assert_eq!(parse_matcher("foo=bar,").unwrap(), m("foo", EQ, "bar,"));
    }

    #[test]
    fn single_matcher_requires_exactly_one() {
        assert_eq!(
            parse_matcher(r#"foo="a",bar="b""#).unwrap_err(),
            MatcherError::MatcherCount(2)
        );
        assert_eq!(
            parse_matcher(r#""x y"="a","z"="b""#)
                .unwrap_err()
                .to_string(),
            "expected exactly one matcher, found 2"
        );
        assert_eq!(
            parse_matcher("").unwrap_err(),
            MatcherError::MatcherCount(0)
        );
        assert!(parse_matcher("foo!bar").is_err());
        assert!(parse_matcher(r#"foo=~"[a-z""#).is_err());
    }

    // ----- robustness ---------------------------------------------------

    #[test]
    fn no_panics_on_awkward_inputs() {
        let inputs = [
            "",
            "{",
            "}",
            "\"",
            "\\",
            "!",
            "=",
            "~",
            "=~",
            "!~",
            "{\"",
            "a=\"\\",
            "a=\"\\x",
            "a=\"\\u",
            "a=\"\\U0010FFFF\"",
            "\"\\",
            "🙂",
            "🙂🙂=🙂!",
            "a=\u{0}",
            "{a=b,}}",
            ",,,",
            "a=b,,c=d",
            "\u{a0}",
            "a=\"é\\",
            "a=\\\"",
            "a=\"\\\"\"",
            "{a=\"}\"}",
            "a=~\"\\\"",
            "a=~\\",
            "\u{10ffff}=\u{10ffff}",
        ];
        for input in inputs {
            let _ = parse_matchers(input);
            let _ = parse_matchers_utf8(input);
            let _ = parse_matchers_classic(input);
            let _ = parse_matcher(input);
            let _ = go_quote(input);
        }
        // A sample of the results above, so the loop is not vacuous.
        assert!(parse_matchers_utf8("a=\"\\").is_err());
        assert_eq!(
            parse_matchers_utf8(r#"a="\U0010FFFF""#).unwrap()[0].value,
            "\u{10ffff}"
        );
        assert_eq!(parse_matchers_utf8(r#"{a="}"}"#).unwrap()[0].value, "}");
    }
}
