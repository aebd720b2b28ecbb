//! Lexer for Go's `text/template`: splits a source into text and the tokens of `{{ … }}`
//! actions, applying the `{{- ` / ` -}}` trim markers and dropping comments.

use super::Error;

/// A token and the byte offset where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub pos: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    /// Whitespace separating operands inside an action.
    Space,
    /// `.Name` (the name without the dot).
    Field(String),
    Dot,
    /// `$` or `$name` (with the `$`).
    Var(String),
    Ident(String),
    Str(String),
    Char(i64),
    Number(String),
    Bool(bool),
    Nil,
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
    Eof,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Tokenize a whole template source.
pub fn lex(src: &str, name: &str) -> Result<Vec<Token>, Error> {
    let mut l = Lexer {
        src,
        b: src.as_bytes(),
        pos: 0,
        out: Vec::new(),
        name,
        paren: 0,
    };
    l.run()?;
    Ok(l.out)
}

struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    out: Vec<Token>,
    name: &'a str,
    paren: usize,
}

impl Lexer<'_> {
    fn err(&self, pos: usize, msg: impl Into<String>) -> Error {
        Error::parse(self.name, self.src, pos, msg)
    }

    fn push(&mut self, tok: Tok, pos: usize) {
        self.out.push(Token { tok, pos });
    }

    fn run(&mut self) -> Result<(), Error> {
        let mut trim_next_text = false;
        loop {
            let start = self.pos;
            let next = self.src[start..].find("{{").map(|i| start + i);
            let end = next.unwrap_or(self.src.len());
            let mut text = &self.src[start..end];
            let left_trim = next.is_some_and(|n| {
                self.b.get(n + 2) == Some(&b'-') && self.b.get(n + 3).is_some_and(|c| is_space(*c))
            });
            if trim_next_text {
                text = text.trim_start_matches([' ', '\t', '\r', '\n']);
            }
            if left_trim {
                text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            }
            if !text.is_empty() {
                let p = end - text.len();
                self.push(Tok::Text(text.to_string()), p);
            }
            let Some(n) = next else {
                self.push(Tok::Eof, self.src.len());
                return Ok(());
            };
            self.pos = n + 2;
            if left_trim {
                self.pos += 2;
            }
            trim_next_text = self.action(n)?;
        }
    }

    /// Lex one action starting at `open` (the `{{`), `self.pos` after the delimiter and
    /// trim marker. Returns whether the action ends with a trim marker.
    fn action(&mut self, open: usize) -> Result<bool, Error> {
        // A comment: `/*` right after the delimiter, `*/` right before the closing one.
        let after_ws = self.pos;
        if self.src[after_ws..].starts_with("/*") {
            let Some(close) = self.src[after_ws + 2..].find("*/") else {
                return Err(self.err(open, "unclosed comment"));
            };
            let mut p = after_ws + 2 + close + 2;
            if self.src[p..].starts_with("}}") {
                self.pos = p + 2;
                return Ok(false);
            }
            if self.b.get(p).is_some_and(|c| is_space(*c)) && self.src[p + 1..].starts_with("-}}") {
                p += 4;
                self.pos = p;
                return Ok(true);
            }
            return Err(self.err(open, "comment ends before closing delimiter"));
        }
        self.push(Tok::LeftDelim, open);
        self.paren = 0;
        loop {
            let p = self.pos;
            let Some(&c) = self.b.get(p) else {
                return Err(self.err(open, "unclosed action"));
            };
            if self.src[p..].starts_with("}}") {
                if self.paren > 0 {
                    return Err(self.err(p, "unclosed left paren"));
                }
                self.pos = p + 2;
                self.push(Tok::RightDelim, p);
                return Ok(false);
            }
            if is_space(c) {
                let mut q = p;
                while self.b.get(q).is_some_and(|c| is_space(*c)) {
                    q += 1;
                }
                if self.src[q..].starts_with("-}}") {
                    if self.paren > 0 {
                        return Err(self.err(q, "unclosed left paren"));
                    }
                    self.pos = q + 3;
                    self.push(Tok::RightDelim, q);
                    return Ok(true);
                }
                self.pos = q;
                if !self.src[q..].starts_with("}}") {
                    self.push(Tok::Space, p);
                }
                continue;
            }
            match c {
                b'(' => {
                    self.paren += 1;
                    self.pos += 1;
                    self.push(Tok::LParen, p);
                }
                b')' => {
                    if self.paren == 0 {
                        return Err(self.err(p, "unexpected right paren"));
                    }
                    self.paren -= 1;
                    self.pos += 1;
                    self.push(Tok::RParen, p);
                }
                b'|' => {
                    self.pos += 1;
                    self.push(Tok::Pipe, p);
                }
                b',' => {
                    self.pos += 1;
                    self.push(Tok::Comma, p);
                }
                b':' => {
                    if self.b.get(p + 1) != Some(&b'=') {
                        return Err(self.err(p, "expected :="));
                    }
                    self.pos += 2;
                    self.push(Tok::Declare, p);
                }
                b'=' => {
                    self.pos += 1;
                    self.push(Tok::Assign, p);
                }
                b'"' => self.quoted(open)?,
                b'`' => {
                    let Some(end) = self.src[p + 1..].find('`') else {
                        return Err(self.err(open, "unterminated raw quoted string"));
                    };
                    let s = self.src[p + 1..p + 1 + end].to_string();
                    self.pos = p + end + 2;
                    self.push(Tok::Str(s), p);
                }
                b'\'' => self.char_const(open)?,
                b'$' => {
                    let n = self.ident_len(p + 1);
                    self.pos = p + 1 + n;
                    self.push(Tok::Var(self.src[p..self.pos].to_string()), p);
                }
                b'.' => {
                    if self.b.get(p + 1).is_some_and(u8::is_ascii_digit) {
                        self.number()?;
                    } else {
                        let n = self.ident_len(p + 1);
                        self.pos = p + 1 + n;
                        if n == 0 {
                            self.push(Tok::Dot, p);
                        } else {
                            self.push(Tok::Field(self.src[p + 1..self.pos].to_string()), p);
                        }
                    }
                }
                b'0'..=b'9' => self.number()?,
                b'+' | b'-'
                    if self
                        .b
                        .get(p + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == b'.') =>
                {
                    self.number()?
                }
                _ => {
                    let n = self.ident_len(p);
                    if n == 0 {
                        let ch = self.src[p..].chars().next().unwrap_or('?');
                        return Err(self.err(p, format!("unexpected {ch:?} in command")));
                    }
                    self.pos = p + n;
                    let word = &self.src[p..self.pos];
                    let tok = match word {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        w => Tok::Ident(w.to_string()),
                    };
                    self.push(tok, p);
                }
            }
        }
    }

    fn ident_len(&self, from: usize) -> usize {
        self.src[from..]
            .char_indices()
            .find(|(_, c)| !is_alnum(*c))
            .map_or(self.src.len() - from, |(i, _)| i)
    }

    fn number(&mut self) -> Result<(), Error> {
        let p = self.pos;
        let mut q = p;
        if matches!(self.b.get(q), Some(b'+' | b'-')) {
            q += 1;
        }
        while let Some(&c) = self.b.get(q) {
            let exp_sign = matches!(c, b'+' | b'-')
                && q > p
                && matches!(self.b[q - 1], b'e' | b'E' | b'p' | b'P')
                && !self.src[p..q].to_ascii_lowercase().starts_with("0x")
                || matches!(c, b'+' | b'-') && q > p && matches!(self.b[q - 1], b'p' | b'P');
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || exp_sign {
                q += 1;
            } else {
                break;
            }
        }
        self.pos = q;
        self.push(Tok::Number(self.src[p..q].to_string()), p);
        Ok(())
    }

    /// The unquoted body of a `"…"` or `'…'` literal at `self.pos`; `self.pos` moves past it.
    fn quoted_body(&mut self, open: usize, quote: u8, what: &str) -> Result<String, Error> {
        let p = self.pos;
        let mut q = p + 1;
        loop {
            match self.b.get(q) {
                None | Some(b'\n') => return Err(self.err(open, format!("unterminated {what}"))),
                Some(b'\\') => q += 2,
                Some(c) if *c == quote => break,
                Some(_) => q += 1,
            }
        }
        let s = unquote(&self.src[p + 1..q]).map_err(|m| self.err(p, m))?;
        self.pos = q + 1;
        Ok(s)
    }

    fn quoted(&mut self, open: usize) -> Result<(), Error> {
        let p = self.pos;
        let s = self.quoted_body(open, b'"', "quoted string")?;
        self.push(Tok::Str(s), p);
        Ok(())
    }

    fn char_const(&mut self, open: usize) -> Result<(), Error> {
        let p = self.pos;
        let s = self.quoted_body(open, b'\'', "character constant")?;
        let mut cs = s.chars();
        match (cs.next(), cs.next()) {
            (Some(c), None) => {
                self.push(Tok::Char(i64::from(u32::from(c))), p);
                Ok(())
            }
            _ => Err(self.err(p, format!("malformed character constant: '{s}'"))),
        }
    }
}

/// Interpret Go escapes in a quoted string body.
pub fn unquote(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut cs = s.chars().peekable();
    let bad = || format!("invalid syntax in quoted string \"{s}\"");
    while let Some(c) = cs.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = cs.next() else {
            return Err(bad());
        };
        let hex =
            |cs: &mut std::iter::Peekable<std::str::Chars>, n: usize| -> Result<u32, String> {
                let h: String = cs.by_ref().take(n).collect();
                if h.len() != n {
                    return Err(bad());
                }
                u32::from_str_radix(&h, 16).map_err(|_| bad())
            };
        match e {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' | '\'' | '"' => out.push(e),
            'x' => {
                let v = hex(&mut cs, 2)?;
                // Go strings are bytes; a lone high byte is not valid UTF-8 here.
                out.push(char::from_u32(v).filter(|_| v < 0x80).ok_or_else(bad)?);
            }
            'u' => out.push(char::from_u32(hex(&mut cs, 4)?).ok_or_else(bad)?),
            'U' => out.push(char::from_u32(hex(&mut cs, 8)?).ok_or_else(bad)?),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let d = cs.next().and_then(|c| c.to_digit(8)).ok_or_else(bad)?;
                    v = v * 8 + d;
                }
                out.push(char::from_u32(v).filter(|_| v < 0x80).ok_or_else(bad)?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}
