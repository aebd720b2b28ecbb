//! Executor for parsed Go templates: walks the node tree over a [`Value`], with Go's
//! scoping of variables, `range`/`with`/`if` semantics, method calls through the set's
//! method hook, the builtin functions (`and`/`or` short-circuit) and bounded recursion
//! and work.

use super::funcs;
use super::parse::{Arg, Cmd, Control, Node, Pipe};
use super::value::Value;
use super::{Error, Set, Source, Template};
use std::collections::HashMap;
use std::sync::Arc;

/// Nesting of `{{template}}` calls and `if`/`with`/`range` blocks (counted together)
/// deeper than this is an error (Go allows 100 000 template calls; the router's worker
/// threads have small stacks).
pub const MAX_TEMPLATE_DEPTH: usize = 100;
/// Output larger than this is an error.
pub const MAX_OUTPUT: usize = 4 << 20;
/// Node evaluations per render (bounds `range` over huge integers and the like).
const MAX_STEPS: u64 = 5_000_000;
/// Values nested deeper than this are an error: `list`, `dict` or `append` in a loop
/// could otherwise nest one deep enough to overflow the stack printing or dropping it.
pub const MAX_VALUE_DEPTH: usize = 100;
/// Work steps one compile of a regular expression costs (a cached pattern costs none).
const REGEX_STEPS: u64 = 5_000;

enum Flow {
    Normal,
    Break,
    Continue,
}

/// An execution failure: a message not yet tied to a position, or a finished error.
pub(crate) enum Fail {
    Msg(String),
    Done(Box<Error>),
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Msg(s)
    }
}

type R<T> = Result<T, Fail>;

pub(crate) struct Exec<'a> {
    pub set: &'a Set,
    pub local: &'a HashMap<String, Arc<Template>>,
    pub out: String,
    vars: Vec<(String, Value)>,
    depth: usize,
    steps: u64,
    regexes: funcs::Regexes,
    src: Arc<Source>,
    tname: String,
    /// HTML output: printed values are HTML-escaped unless the pipeline ends with
    /// `html`, `safeHtml`, `safeUrl` or `urlquery` (see [`super::Set::render_html`]).
    pub html: bool,
}

/// Whether a pipeline's output is already safe in HTML (its last command is an escaper or
/// marks its argument as trusted).
fn ends_html_safe(p: &Pipe) -> bool {
    matches!(
        p.cmds.last().and_then(|c| c.args.first()),
        Some(Arg::Func(f)) if matches!(f.as_str(), "html" | "safeHtml" | "safeUrl" | "urlquery")
    )
}

impl<'a> Exec<'a> {
    pub fn new(
        set: &'a Set,
        local: &'a HashMap<String, Arc<Template>>,
        src: Arc<Source>,
        tname: &str,
    ) -> Self {
        Exec {
            set,
            local,
            out: String::new(),
            vars: Vec::new(),
            depth: 0,
            steps: 0,
            regexes: funcs::Regexes::default(),
            src,
            tname: tname.to_string(),
            html: false,
        }
    }

    /// Run `body` with `data` as dot and `$`.
    pub fn run(&mut self, body: &[Node], data: &Value) -> Result<(), Error> {
        self.vars = vec![("$".to_string(), data.clone())];
        match self.list(body, data).and_then(|_| self.step()) {
            Ok(()) => Ok(()),
            Err(Fail::Done(e)) => Err(*e),
            Err(Fail::Msg(m)) => Err(self.error(0, 0, m)),
        }
    }

    fn error(&self, pos: usize, end: usize, msg: String) -> Error {
        let node = self
            .src
            .text
            .get(pos..end.max(pos))
            .unwrap_or("")
            .trim()
            .to_string();
        Error::exec(&self.src.name, &self.src.text, pos, &self.tname, &node, msg)
    }

    fn at<T>(&self, pos: usize, end: usize, r: R<T>) -> R<T> {
        r.map_err(|f| match f {
            Fail::Msg(m) => Fail::Done(Box::new(self.error(pos, end, m))),
            d => d,
        })
    }

    fn step(&mut self) -> R<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(Fail::Msg(
                "template execution exceeded its work limit".into(),
            ));
        }
        if self.out.len() > MAX_OUTPUT {
            return Err(Fail::Msg(format!("output larger than {MAX_OUTPUT} bytes")));
        }
        Ok(())
    }

    fn enter(&mut self) -> R<()> {
        if self.depth >= MAX_TEMPLATE_DEPTH {
            return Err(Fail::Msg(format!(
                "exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})"
            )));
        }
        self.depth += 1;
        Ok(())
    }

    fn list(&mut self, nodes: &[Node], dot: &Value) -> R<Flow> {
        for n in nodes {
            match self.node(n, dot)? {
                Flow::Normal => {}
                f => return Ok(f),
            }
        }
        Ok(Flow::Normal)
    }

    fn node(&mut self, n: &Node, dot: &Value) -> R<Flow> {
        self.step()?;
        match n {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(p) => {
                let v = self.pipeline(p, dot, true)?;
                if p.decl.is_empty() {
                    if self.html && !ends_html_safe(p) {
                        let s = funcs::html_escape(&v.to_go_string());
                        self.out.push_str(&s);
                    } else {
                        v.write_go(&mut self.out, true);
                    }
                }
            }
            Node::If(c) | Node::With(c) | Node::Range(c) => {
                self.enter()?;
                let r = match n {
                    Node::Range(_) => self.range(c, dot),
                    _ => self.cond(c, dot, matches!(n, Node::With(_))),
                };
                self.depth -= 1;
                return r;
            }
            Node::Template { pos, name, pipe } => {
                let v = match pipe {
                    Some(p) => self.pipeline(p, dot, true)?,
                    None => Value::NoValue,
                };
                let end = pipe.as_ref().map_or(*pos + name.len() + 11, |p| p.end);
                let r = self.call_template(name, v);
                self.at(*pos, end, r)?;
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn call_template(&mut self, name: &str, dot: Value) -> R<()> {
        let t = self
            .local
            .get(name)
            .cloned()
            .or_else(|| self.set.templates.get(name).cloned())
            .ok_or_else(|| format!("template {name:?} not defined"))?;
        self.enter()?;
        let vars = std::mem::replace(&mut self.vars, vec![("$".to_string(), dot.clone())]);
        let src = std::mem::replace(&mut self.src, t.src.clone());
        let tname = std::mem::replace(&mut self.tname, t.name.clone());
        let r = self.list(&t.body, &dot);
        self.vars = vars;
        self.src = src;
        self.tname = tname;
        self.depth -= 1;
        r.map(|_| ())
    }

    fn cond(&mut self, c: &Control, dot: &Value, with: bool) -> R<Flow> {
        let mark = self.vars.len();
        let v = self.pipeline(&c.pipe, dot, true)?;
        let r = if v.truthy() {
            self.list(&c.list, if with { &v } else { dot })
        } else if let Some(e) = &c.else_list {
            self.list(e, dot)
        } else {
            Ok(Flow::Normal)
        };
        self.vars.truncate(mark);
        r
    }

    fn range(&mut self, c: &Control, dot: &Value) -> R<Flow> {
        let mark = self.vars.len();
        let v = self.pipeline(&c.pipe, dot, false)?;
        // Integers are counted lazily (a range over 4 999 999 holds no 5-million-element list).
        type Items = Box<dyn Iterator<Item = (Value, Value)>>;
        let (len, items): (usize, Items) = match &v {
            Value::List(l) => {
                let items: Vec<(Value, Value)> = l
                    .items
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (Value::Int(i as i64), e.clone()))
                    .collect();
                (items.len(), Box::new(items.into_iter()))
            }
            Value::Map(m) => {
                let items: Vec<(Value, Value)> = m
                    .entries
                    .iter()
                    .map(|(k, e)| (Value::from(k.as_str()), e.clone()))
                    .collect();
                (items.len(), Box::new(items.into_iter()))
            }
            Value::Int(n) => {
                if *n > MAX_STEPS as i64 {
                    let r = Err(Fail::Msg(format!("range over {n} exceeds the work limit")));
                    return self.at(c.pipe.pos, c.pipe.end, r);
                }
                let n = *n;
                (
                    usize::try_from(n).unwrap_or(0),
                    Box::new((0..n).map(|i| (Value::Int(i), Value::Int(i)))),
                )
            }
            Value::Nil | Value::NoValue => (0, Box::new(std::iter::empty())),
            other => {
                let r = Err(Fail::Msg(format!(
                    "range can't iterate over {}",
                    other.to_go_string()
                )));
                return self.at(c.pipe.pos, c.pipe.end, r);
            }
        };
        if len == 0 {
            let r = match &c.else_list {
                Some(e) => self.list(e, dot),
                None => Ok(Flow::Normal),
            };
            self.vars.truncate(mark);
            return r.map(|_| Flow::Normal);
        }
        let int_range = matches!(v, Value::Int(_));
        for (k, e) in items {
            // every iteration counts, so nested loops with empty bodies end too
            if let Err(f) = self.step() {
                self.vars.truncate(mark);
                return self.at(c.pipe.pos, c.pipe.end, Err(f));
            }
            self.vars.truncate(mark);
            match c.pipe.decl.as_slice() {
                [one] => self.set_var(
                    one,
                    if int_range { k.clone() } else { e.clone() },
                    c.pipe.is_assign,
                ),
                [a, b] => {
                    self.set_var(a, k.clone(), c.pipe.is_assign);
                    self.set_var(b, e.clone(), c.pipe.is_assign);
                }
                _ => {}
            }
            match self.list(&c.list, &e)? {
                Flow::Break => break,
                Flow::Continue | Flow::Normal => {}
            }
        }
        self.vars.truncate(mark);
        Ok(Flow::Normal)
    }

    fn set_var(&mut self, name: &str, v: Value, assign: bool) {
        if assign {
            if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                slot.1 = v;
                return;
            }
        }
        self.vars.push((name.to_string(), v));
    }

    fn var(&self, name: &str) -> R<Value> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| Fail::Msg(format!("undefined variable: {name}")))
    }

    /// Evaluate a pipeline; `declare`: apply its `$x :=`/`$x =` (range does that itself).
    fn pipeline(&mut self, p: &Pipe, dot: &Value, declare: bool) -> R<Value> {
        let mut val: Option<Value> = None;
        for c in &p.cmds {
            let r = self.cmd(c, dot, val.take());
            val = Some(self.at(c.pos, c.end, r)?);
        }
        let v = val.unwrap_or(Value::Nil);
        if declare {
            for name in &p.decl {
                self.set_var(name, v.clone(), p.is_assign);
            }
        }
        Ok(v)
    }

    fn cmd(&mut self, c: &Cmd, dot: &Value, fin: Option<Value>) -> R<Value> {
        self.step()?;
        let (first, rest) = match c.args.split_first() {
            Some(x) => x,
            None => return Err(Fail::Msg("empty command".into())),
        };
        let not_fn = |what: &str| -> R<()> {
            if !rest.is_empty() || fin.is_some() {
                return Err(Fail::Msg(format!(
                    "can't give argument to non-function {what}"
                )));
            }
            Ok(())
        };
        match first {
            Arg::Func(name) => self.call(name, rest, fin, dot),
            Arg::Field(f) => self.chain(dot.clone(), f, rest, fin, dot),
            Arg::Var(v, f) => {
                let val = self.var(v)?;
                if f.is_empty() {
                    not_fn(v)?;
                    Ok(val)
                } else {
                    self.chain(val, f, rest, fin, dot)
                }
            }
            Arg::Pipe(p, f) => {
                let val = self.pipeline(p, dot, true)?;
                if f.is_empty() {
                    not_fn("(pipeline)")?;
                    Ok(val)
                } else {
                    self.chain(val, f, rest, fin, dot)
                }
            }
            Arg::Nil => Err(Fail::Msg("nil is not a command".into())),
            lit => {
                not_fn("literal")?;
                self.arg(lit, dot)
            }
        }
    }

    /// Evaluate an argument (no arguments of its own).
    fn arg(&mut self, a: &Arg, dot: &Value) -> R<Value> {
        Ok(match a {
            Arg::Field(f) => self.chain(dot.clone(), f, &[], None, dot)?,
            Arg::Var(v, f) => {
                let val = self.var(v)?;
                if f.is_empty() {
                    val
                } else {
                    self.chain(val, f, &[], None, dot)?
                }
            }
            Arg::Pipe(p, f) => {
                let val = self.pipeline(p, dot, true)?;
                if f.is_empty() {
                    val
                } else {
                    self.chain(val, f, &[], None, dot)?
                }
            }
            Arg::Func(name) => self.call(name, &[], None, dot)?,
            Arg::Dot => dot.clone(),
            Arg::Nil => Value::Nil,
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Int(i) => Value::Int(*i),
            Arg::Float(f) => Value::Float(*f),
            Arg::Str(s) => Value::from(s.as_str()),
        })
    }

    fn args(&mut self, args: &[Arg], fin: Option<Value>, dot: &Value) -> R<Vec<Value>> {
        let mut out = Vec::with_capacity(args.len() + 1);
        for a in args {
            out.push(self.arg(a, dot)?);
        }
        out.extend(fin);
        Ok(out)
    }

    /// `.A.B.C args…`: every field but the last without arguments.
    fn chain(
        &mut self,
        mut recv: Value,
        fields: &[String],
        args: &[Arg],
        fin: Option<Value>,
        dot: &Value,
    ) -> R<Value> {
        let Some((last, init)) = fields.split_last() else {
            return Ok(recv);
        };
        for f in init {
            recv = self.field(&recv, f, Vec::new(), false)?;
        }
        let has_args = !args.is_empty() || fin.is_some();
        let vals = self.args(args, fin, dot)?;
        self.field(&recv, last, vals, has_args)
    }

    fn field(&mut self, recv: &Value, name: &str, args: Vec<Value>, has_args: bool) -> R<Value> {
        if let Some(r) = super::call_method(self.set, recv, name, &args) {
            return r.map_err(Fail::Msg);
        }
        let v = match recv {
            Value::Map(m) => match m.entries.get(name) {
                Some(v) => v.clone(),
                None if m.string_values => Value::from(""),
                None => Value::NoValue,
            },
            Value::Struct(s) => match s.fields.iter().find(|(n, _)| *n == name) {
                Some((_, v)) => v.clone(),
                None => {
                    return Err(Fail::Msg(format!(
                        "can't evaluate field {name} in type {}",
                        recv.type_name()
                    )))
                }
            },
            Value::Nil | Value::NoValue => {
                return Err(Fail::Msg(format!(
                    "nil pointer evaluating interface {{}}.{name}"
                )))
            }
            _ => {
                return Err(Fail::Msg(format!(
                    "can't evaluate field {name} in type {}",
                    recv.type_name()
                )))
            }
        };
        if has_args {
            return Err(Fail::Msg(format!(
                "{name} is not a method but has arguments"
            )));
        }
        Ok(v)
    }

    fn call(&mut self, name: &str, args: &[Arg], fin: Option<Value>, dot: &Value) -> R<Value> {
        match name {
            "and" | "or" => {
                let n = args.len() + usize::from(fin.is_some());
                if n == 0 {
                    return Err(Fail::Msg(format!(
                        "wrong number of args for {name}: want at least 1 got 0"
                    )));
                }
                let mut last = Value::Nil;
                for a in args {
                    last = self.arg(a, dot)?;
                    if last.truthy() != (name == "and") {
                        return Ok(last);
                    }
                }
                if let Some(f) = fin {
                    last = f;
                }
                Ok(last)
            }
            _ => {
                let vals = self.args(args, fin, dot)?;
                funcs::call(self.set, &mut self.regexes, name, &vals)
                    .and_then(|v| self.account(&vals, v))
                    .map_err(|e| Fail::Msg(format!("error calling {name}: {e}")))
            }
        }
    }

    /// Bound what a function built: its nesting, the length of a string result, and
    /// the work it took — the strings it read and wrote and the elements it copied are
    /// charged to the step budget, so a loop of `append` or of string doubling ends with
    /// an error instead of running for hours.
    fn account(&mut self, args: &[Value], v: Value) -> Result<Value, String> {
        if v.depth() > MAX_VALUE_DEPTH {
            return Err(format!("value nested deeper than {MAX_VALUE_DEPTH} levels"));
        }
        if v.as_str().is_some_and(|s| s.len() > MAX_OUTPUT) {
            return Err(format!("result larger than {MAX_OUTPUT} bytes"));
        }
        let bytes: usize = args
            .iter()
            .chain(std::iter::once(&v))
            .filter_map(Value::as_str)
            .map(str::len)
            .sum();
        let items = match &v {
            Value::List(l) => l.items.len(),
            Value::Map(m) => m.entries.len(),
            _ => 0,
        };
        self.steps += (bytes / 1024 + items / 4) as u64;
        self.steps += std::mem::take(&mut self.regexes.compiled) * REGEX_STEPS;
        Ok(v)
    }
}
