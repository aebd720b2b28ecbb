//! Parser for Go's `text/template`: builds the node tree of a source and its
//! `{{ define }}`/`{{ block }}` templates, checking at parse time what Go checks there
//! (unknown functions, undefined variables, `break` outside `range`, unbalanced
//! `end`/`else`, duplicate definitions within one source).

use super::lex::{Tok, Token};
use super::{Error, Source};
use std::sync::Arc;

/// Parse nesting deeper than this (parentheses, control structures) is refused, so a
/// hostile template cannot overflow the stack.
const MAX_NESTING: usize = 100;

#[derive(Debug)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Control),
    With(Control),
    Range(Control),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

#[derive(Debug)]
pub struct Control {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub struct Pipe {
    pub pos: usize,
    /// Source span of the pipeline (for error messages).
    pub end: usize,
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug)]
pub struct Cmd {
    pub pos: usize,
    pub end: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub enum Arg {
    /// `.A.B` on the dot.
    Field(Vec<String>),
    /// `$x.A.B`
    Var(String, Vec<String>),
    Dot,
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A function name.
    Func(String),
    /// `(pipeline).A.B`
    Pipe(Box<Pipe>, Vec<String>),
}

/// A parsed source: its top-level body and the templates it defines.
pub struct Parsed {
    pub body: Vec<Node>,
    pub defines: Vec<(String, Vec<Node>)>,
}

/// Parse `src`; `is_func` tells which function names exist.
pub fn parse(src: &Arc<Source>, is_func: &dyn Fn(&str) -> bool) -> Result<Parsed, Error> {
    let toks = super::lex::lex(&src.text, &src.name)?;
    let mut p = Parser {
        src,
        toks,
        i: 0,
        vars: vec!["$".to_string()],
        range_depth: 0,
        depth: 0,
        defines: Vec::new(),
        is_func,
    };
    let (body, end) = p.list(true)?;
    if let Stop::Eof = end {
        Ok(Parsed {
            body,
            defines: p.defines,
        })
    } else {
        Err(p.err(p.pos(), "unexpected {{end}}"))
    }
}

enum Stop {
    Eof,
    End,
    Else,
    /// `{{ else if … }}` / `{{ else with … }}`: the keyword was consumed.
    ElseChain(&'static str),
}

struct Parser<'a> {
    src: &'a Arc<Source>,
    toks: Vec<Token>,
    i: usize,
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
    defines: Vec<(String, Vec<Node>)>,
    is_func: &'a dyn Fn(&str) -> bool,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Text(_) => "text".into(),
        Tok::LeftDelim => "\"{{\"".into(),
        Tok::RightDelim => "\"}}\"".into(),
        Tok::Space => "space".into(),
        Tok::Field(f) => format!("<.{f}>"),
        Tok::Dot => "<.>".into(),
        Tok::Var(v) => format!("<{v}>"),
        Tok::Ident(i) => format!("<{i}>"),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Char(c) => format!("{c}"),
        Tok::Number(n) => format!("<{n}>"),
        Tok::Bool(b) => format!("<{b}>"),
        Tok::Nil => "<nil>".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Eof => "EOF".into(),
    }
}

impl Parser<'_> {
    fn err(&self, pos: usize, msg: impl Into<String>) -> Error {
        Error::parse(&self.src.name, &self.src.text, pos, msg)
    }

    fn peek(&self) -> &Tok {
        self.toks.get(self.i).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.src.text.len(), |t| t.pos)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn skip_space(&mut self) {
        while *self.peek() == Tok::Space {
            self.i += 1;
        }
    }

    fn unexpected(&self, ctx: &str) -> Error {
        self.err(
            self.pos(),
            format!("unexpected {} in {ctx}", describe(self.peek())),
        )
    }

    fn expect_right(&mut self, ctx: &str) -> Result<(), Error> {
        self.skip_space();
        if *self.peek() == Tok::RightDelim {
            self.i += 1;
            Ok(())
        } else {
            Err(self.unexpected(ctx))
        }
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.err(self.pos(), "template nesting too deep"));
        }
        Ok(())
    }

    /// Parse nodes up to `{{end}}`, `{{else}}` or the end of input.
    fn list(&mut self, top: bool) -> Result<(Vec<Node>, Stop), Error> {
        let mut nodes = Vec::new();
        loop {
            match self.next() {
                Tok::Text(t) => nodes.push(Node::Text(t)),
                Tok::Eof => {
                    if top {
                        return Ok((nodes, Stop::Eof));
                    }
                    return Err(self.err(self.src.text.len(), "unexpected EOF"));
                }
                Tok::LeftDelim => {
                    self.skip_space();
                    let pos = self.pos();
                    let kw = match self.peek() {
                        Tok::Ident(k) => k.clone(),
                        _ => String::new(),
                    };
                    match kw.as_str() {
                        "end" => {
                            self.i += 1;
                            self.expect_right("end")?;
                            if top {
                                return Err(self.err(pos, "unexpected {{end}}"));
                            }
                            return Ok((nodes, Stop::End));
                        }
                        "else" => {
                            self.i += 1;
                            self.skip_space();
                            if top {
                                return Err(self.err(pos, "unexpected {{else}}"));
                            }
                            match self.peek() {
                                Tok::Ident(k) if k == "if" => {
                                    self.i += 1;
                                    return Ok((nodes, Stop::ElseChain("if")));
                                }
                                Tok::Ident(k) if k == "with" => {
                                    self.i += 1;
                                    return Ok((nodes, Stop::ElseChain("with")));
                                }
                                _ => {
                                    self.expect_right("else")?;
                                    return Ok((nodes, Stop::Else));
                                }
                            }
                        }
                        "if" | "with" | "range" => {
                            self.i += 1;
                            nodes.push(self.control(&kw, pos)?);
                        }
                        "define" => {
                            self.i += 1;
                            if !top || self.depth > 0 {
                                return Err(self.err(pos, "unexpected <define> in command"));
                            }
                            self.define(pos)?;
                        }
                        "block" => {
                            self.i += 1;
                            nodes.push(self.block(pos)?);
                        }
                        "template" => {
                            self.i += 1;
                            let (name, pipe) = self.template_args("template")?;
                            nodes.push(Node::Template { pos, name, pipe });
                        }
                        "break" | "continue" => {
                            self.i += 1;
                            self.expect_right(&kw)?;
                            if self.range_depth == 0 {
                                return Err(
                                    self.err(pos, format!("{{{{{kw}}}}} outside {{{{range}}}}"))
                                );
                            }
                            nodes.push(if kw == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        _ => {
                            let pipe = self.pipeline("command", true, false)?;
                            self.expect_right("command")?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
                t => return Err(self.err(self.pos(), format!("unexpected {}", describe(&t)))),
            }
        }
    }

    fn control(&mut self, kw: &str, pos: usize) -> Result<Node, Error> {
        self.enter()?;
        let mark = self.vars.len();
        let pipe = self.pipeline(kw, true, kw == "range")?;
        self.expect_right(kw)?;
        if kw == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.list(false)?;
        if kw == "range" {
            self.range_depth -= 1;
        }
        let else_list = match end {
            Stop::End => None,
            Stop::Else => {
                let (l, end) = self.list(false)?;
                if !matches!(end, Stop::End) {
                    return Err(self.err(
                        self.pos(),
                        format!("expected end; found {{{{else}}}} in {kw}"),
                    ));
                }
                Some(l)
            }
            Stop::ElseChain(k) if k == kw && kw != "range" => {
                let p = self.pos();
                // `{{else if x}}…{{end}}` is `{{else}}{{if x}}…{{end}}{{end}}` with one end.
                Some(vec![self.control(k, p)?])
            }
            Stop::ElseChain(k) => {
                return Err(self.err(pos, format!("unexpected {{{{else {k}}}}} in {kw}")));
            }
            Stop::Eof => return Err(self.err(self.src.text.len(), "unexpected EOF")),
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        let c = Control {
            pipe,
            list,
            else_list,
        };
        Ok(match kw {
            "if" => Node::If(c),
            "with" => Node::With(c),
            _ => Node::Range(c),
        })
    }

    fn name_arg(&mut self, ctx: &str) -> Result<String, Error> {
        self.skip_space();
        match self.next() {
            Tok::Str(s) => Ok(s),
            t => Err(self.err(
                self.pos(),
                format!("unexpected {} in {ctx} clause", describe(&t)),
            )),
        }
    }

    /// `"name" [pipeline]` of `template`/`block`, through the closing delimiter.
    fn template_args(&mut self, ctx: &str) -> Result<(String, Option<Pipe>), Error> {
        let name = self.name_arg(ctx)?;
        self.skip_space();
        let pipe = if *self.peek() == Tok::RightDelim {
            None
        } else {
            Some(self.pipeline(ctx, false, false)?)
        };
        self.expect_right(ctx)?;
        Ok((name, pipe))
    }

    /// A body that becomes a named template: fresh variables (`$` only), no enclosing range.
    fn body(&mut self) -> Result<Vec<Node>, Error> {
        let vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let range = std::mem::replace(&mut self.range_depth, 0);
        self.enter()?;
        let r = self.list(false);
        self.depth -= 1;
        self.vars = vars;
        self.range_depth = range;
        let (list, end) = r?;
        match end {
            Stop::End => Ok(list),
            _ => Err(self.err(self.pos(), "unexpected {{else}} in define")),
        }
    }

    fn add_define(&mut self, pos: usize, name: String, body: Vec<Node>) -> Result<(), Error> {
        if self.defines.iter().any(|(n, _)| *n == name) {
            return Err(self.err(
                pos,
                format!("template: multiple definition of template {name:?}"),
            ));
        }
        self.defines.push((name, body));
        Ok(())
    }

    fn define(&mut self, pos: usize) -> Result<(), Error> {
        let name = self.name_arg("define")?;
        self.expect_right("define")?;
        let body = self.body()?;
        self.add_define(pos, name, body)
    }

    fn block(&mut self, pos: usize) -> Result<Node, Error> {
        let (name, pipe) = self.template_args("block")?;
        let body = self.body()?;
        self.add_define(pos, name.clone(), body)?;
        Ok(Node::Template { pos, name, pipe })
    }

    /// A pipeline up to (not including) `}}` or `)`; `decl`: variables may be declared
    /// or assigned; `range`: two variables allowed.
    fn pipeline(&mut self, ctx: &str, decl: bool, range: bool) -> Result<Pipe, Error> {
        self.skip_space();
        let pos = self.pos();
        let mut names = Vec::new();
        let mut is_assign = false;
        if decl {
            let save = self.i;
            if let Tok::Var(v) = self.peek().clone() {
                self.i += 1;
                self.skip_space();
                match self.peek() {
                    Tok::Declare | Tok::Assign => {
                        is_assign = *self.peek() == Tok::Assign;
                        self.i += 1;
                        names.push(v);
                    }
                    Tok::Comma if range => {
                        self.i += 1;
                        self.skip_space();
                        if let Tok::Var(v2) = self.next() {
                            self.skip_space();
                            match self.next() {
                                Tok::Declare => {}
                                Tok::Assign => is_assign = true,
                                _ => {
                                    return Err(self.err(pos, "range can only initialize variables"))
                                }
                            }
                            names.push(v);
                            names.push(v2);
                        } else {
                            return Err(self.err(pos, "range can only initialize variables"));
                        }
                    }
                    _ => self.i = save,
                }
            }
        }
        if is_assign {
            for n in &names {
                if !self.vars.contains(n) {
                    return Err(self.err(pos, format!("undefined variable \"{n}\"")));
                }
            }
        }
        let mut cmds = Vec::new();
        loop {
            self.skip_space();
            let cpos = self.pos();
            let args = self.command(ctx)?;
            let end = self.pos();
            cmds.push(Cmd {
                pos: cpos,
                end,
                args,
            });
            self.skip_space();
            if *self.peek() == Tok::Pipe {
                self.i += 1;
                continue;
            }
            break;
        }
        // Declared names are visible after the pipeline (not inside it).
        if !is_assign {
            self.vars.extend(names.iter().cloned());
        }
        for c in cmds.iter().skip(1) {
            if matches!(
                c.args.first(),
                Some(Arg::Nil | Arg::Bool(_) | Arg::Int(_) | Arg::Float(_) | Arg::Str(_))
            ) {
                return Err(self.err(
                    c.pos,
                    format!("non executable command in pipeline stage {}", 2),
                ));
            }
        }
        Ok(Pipe {
            pos,
            end: self.pos(),
            is_assign,
            decl: names,
            cmds,
        })
    }

    fn command(&mut self, ctx: &str) -> Result<Vec<Arg>, Error> {
        let mut args = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Tok::RightDelim | Tok::RParen | Tok::Pipe => break,
                _ => {}
            }
            args.push(self.operand(ctx)?);
            match self.peek() {
                Tok::Space | Tok::RightDelim | Tok::RParen | Tok::Pipe => {}
                _ => return Err(self.unexpected("operand")),
            }
        }
        if args.is_empty() {
            return Err(self.err(self.pos(), format!("missing value for {ctx}")));
        }
        Ok(args)
    }

    fn fields(&mut self) -> Vec<String> {
        let mut f = Vec::new();
        while let Tok::Field(n) = self.peek() {
            f.push(n.clone());
            self.i += 1;
        }
        f
    }

    fn operand(&mut self, ctx: &str) -> Result<Arg, Error> {
        let pos = self.pos();
        let arg = match self.next() {
            Tok::Field(n) => {
                let mut f = vec![n];
                f.extend(self.fields());
                return Ok(Arg::Field(f));
            }
            Tok::Dot => {
                if let Tok::Field(_) = self.peek() {
                    return Err(self.err(pos, "unexpected . after term \".\""));
                }
                Arg::Dot
            }
            Tok::Var(v) => {
                if !self.vars.contains(&v) {
                    return Err(self.err(pos, format!("undefined variable \"{v}\"")));
                }
                let f = self.fields();
                return Ok(Arg::Var(v, f));
            }
            Tok::Ident(name) => {
                if !(self.is_func)(&name) {
                    return Err(self.err(pos, format!("function \"{name}\" not defined")));
                }
                Arg::Func(name)
            }
            Tok::Nil => Arg::Nil,
            Tok::Bool(b) => Arg::Bool(b),
            Tok::Str(s) => Arg::Str(s),
            Tok::Char(c) => Arg::Int(c),
            Tok::Number(n) => parse_number(&n).map_err(|m| self.err(pos, m))?,
            Tok::LParen => {
                self.enter()?;
                let p = self.pipeline("parenthesized pipeline", true, false)?;
                self.skip_space();
                if self.next() != Tok::RParen {
                    return Err(self.err(pos, "unclosed left paren"));
                }
                self.depth -= 1;
                let f = self.fields();
                return Ok(Arg::Pipe(Box::new(p), f));
            }
            t => {
                return Err(self.err(pos, format!("unexpected {} in {ctx}", describe(&t))));
            }
        };
        if let Tok::Field(_) = self.peek() {
            return Err(self.err(self.pos(), "unexpected field after term"));
        }
        Ok(arg)
    }
}

/// A Go number literal: decimal, `0x`/`0o`/`0b`/leading-0 octal integers with `_`
/// separators, and floats.
fn parse_number(text: &str) -> Result<Arg, String> {
    let bad = || format!("bad number syntax: \"{text}\"");
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let (neg, body) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        if h.contains(['.', 'p']) {
            return Err(bad());
        }
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else if lower.bytes().all(|c| c.is_ascii_digit()) {
        lower.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Ok(Arg::Int(if neg { -i } else { i }));
    }
    if lower.is_empty() || !lower.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    if lower
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'+' | b'-'))
    {
        if let Ok(f) = lower.parse::<f64>() {
            return Ok(Arg::Float(if neg { -f } else { f }));
        }
    }
    Err(bad())
}
