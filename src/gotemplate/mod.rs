//! A Go `text/template` engine written for the router: the template language
//! Alertmanager users write (`{{ range .Alerts }}`, `{{ define }}`/`{{ template }}`,
//! pipelines, variables, `{{- trim -}}`, comments), executed over typed values with
//! methods (`.Alerts.Firing`, `.Labels.SortedPairs`, `.StartsAt.Format "…"`), Go's
//! builtins and Alertmanager's function map.
//!
//! Module layout: `lex` (tokens), `parse` (node tree and parse-time checks), `exec`
//! (evaluation), `value` (data model and Go print forms), `printf` (Go's `fmt`),
//! `gotime` (`time.Time`/`Duration`), `funcs` (builtins and Alertmanager's functions),
//! `am` (Alertmanager's template data and default templates).
//!
//! Differences from Go, all deliberate: nested `{{template}}` calls stop at
//! [`exec::MAX_TEMPLATE_DEPTH`] (Go: 100 000) and parse nesting at 200 levels, so a
//! template can never overflow the stack; output and every string a function returns
//! are capped at 4 MiB, values a template builds (`list`, `dict`, `append`) nest at most
//! [`exec::MAX_VALUE_DEPTH`] levels, and a render has a work budget (nodes evaluated,
//! `range` iterations, bytes and elements functions copy) so no loop runs for long.

pub mod am;
mod exec;
pub mod funcs;
pub mod gotime;
mod lex;
mod parse;
pub mod printf;
pub mod value;

pub use exec::MAX_OUTPUT;
pub use value::Value;

use std::collections::HashMap;
use std::sync::Arc;

/// Template source text and the name errors give it (a file path, "" for a field).
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// A named template.
#[derive(Debug)]
pub struct Template {
    pub name: String,
    pub src: Arc<Source>,
    body: Vec<parse::Node>,
}

/// A parse or execution error, positioned as `name:line:column`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("template: {name}:{line}:{col}: {msg}")]
    Parse {
        name: String,
        line: usize,
        col: usize,
        msg: String,
    },
    #[error("template: {name}:{line}:{col}: executing {template:?} at <{node}>: {msg}")]
    Exec {
        name: String,
        line: usize,
        col: usize,
        template: String,
        node: String,
        msg: String,
    },
    #[error("template: no template {0:?} defined")]
    Undefined(String),
}

/// 1-based line and column (in characters) of byte offset `pos`.
pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = text.get(..pos).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

impl Error {
    fn parse(name: &str, text: &str, pos: usize, msg: impl Into<String>) -> Error {
        let (line, col) = line_col(text, pos);
        Error::Parse {
            name: name.to_string(),
            line,
            col,
            msg: msg.into(),
        }
    }

    fn exec(name: &str, text: &str, pos: usize, template: &str, node: &str, msg: String) -> Error {
        let (line, col) = line_col(text, pos);
        Error::Exec {
            name: name.to_string(),
            line,
            col,
            template: template.to_string(),
            node: node.to_string(),
            msg,
        }
    }
}

/// Methods of data-model types: `(receiver, method, arguments)`, `None` when the
/// receiver's type has no such method.
pub type MethodHook = fn(&Value, &str, &[Value]) -> Option<Result<Value, String>>;

/// A set of named templates with the functions and methods they may use.
#[derive(Clone)]
pub struct Set {
    templates: HashMap<String, Arc<Template>>,
    funcs: &'static [&'static str],
    methods: Option<MethodHook>,
}

impl std::fmt::Debug for Set {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.templates.keys().collect();
        names.sort();
        f.debug_struct("Set").field("templates", &names).finish()
    }
}

/// A parsed inline template (a configuration field) ready to execute.
pub struct Inline {
    src: Arc<Source>,
    body: Vec<parse::Node>,
    local: HashMap<String, Arc<Template>>,
}

pub(crate) fn call_method(
    set: &Set,
    recv: &Value,
    name: &str,
    args: &[Value],
) -> Option<Result<Value, String>> {
    match recv {
        Value::Time(t) => gotime::time_method(t, name, args),
        Value::Duration(d) => gotime::duration_method(*d, name, args),
        _ => set.methods.and_then(|m| m(recv, name, args)),
    }
}

/// Whether a define's body is blank (only whitespace text): such a definition does not
/// replace an existing one (Go's rule, so that `{{define "x"}}{{end}}` in a later file
/// does not erase a template).
fn is_blank(body: &[parse::Node]) -> bool {
    body.iter().all(|n| match n {
        parse::Node::Text(t) => t.trim().is_empty(),
        _ => false,
    })
}

impl Set {
    /// An empty set with Go's builtins only.
    pub fn new() -> Self {
        Set {
            templates: HashMap::new(),
            funcs: &[],
            methods: None,
        }
    }

    /// An empty set with extra functions (see [`funcs::call`]) and a method hook.
    pub fn with(funcs: &'static [&'static str], methods: Option<MethodHook>) -> Self {
        Set {
            templates: HashMap::new(),
            funcs,
            methods,
        }
    }

    fn parse(&self, name: &str, text: &str) -> Result<(Arc<Source>, parse::Parsed), Error> {
        let src = Arc::new(Source {
            name: name.to_string(),
            text: text.to_string(),
        });
        let parsed = parse::parse(&src, &|f| funcs::exists(self, f))?;
        Ok((src, parsed))
    }

    /// Parse a template file into the set: its `define`s replace earlier ones of the
    /// same name (unless blank); two of one name in the file are an error.
    pub fn add_file(&mut self, name: &str, text: &str) -> Result<(), Error> {
        let (src, parsed) = self.parse(name, text)?;
        for (n, body) in parsed.defines {
            if is_blank(&body)
                && self
                    .templates
                    .get(&n)
                    .is_some_and(|old| !is_blank(&old.body))
            {
                continue;
            }
            self.templates.insert(
                n.clone(),
                Arc::new(Template {
                    name: n,
                    src: src.clone(),
                    body,
                }),
            );
        }
        Ok(())
    }

    /// Whether a template of this name is defined.
    pub fn has(&self, name: &str) -> bool {
        self.templates.contains_key(name)
    }

    /// Parse a field's template (its own `define`s shadow the set's while it runs).
    pub fn parse_inline(&self, text: &str) -> Result<Inline, Error> {
        let (src, parsed) = self.parse("", text)?;
        let local = parsed
            .defines
            .into_iter()
            .map(|(n, body)| {
                let t = Template {
                    name: n.clone(),
                    src: src.clone(),
                    body,
                };
                (n, Arc::new(t))
            })
            .collect();
        Ok(Inline {
            src,
            body: parsed.body,
            local,
        })
    }

    /// Execute a parsed field template; `html`: escape printed values for HTML.
    pub fn execute_inline(&self, t: &Inline, data: &Value, html: bool) -> Result<String, Error> {
        let mut ex = exec::Exec::new(self, &t.local, t.src.clone(), "");
        ex.html = html;
        ex.run(&t.body, data)?;
        Ok(ex.out)
    }

    /// Parse and execute a field's template.
    pub fn render(&self, text: &str, data: &Value) -> Result<String, Error> {
        self.execute_inline(&self.parse_inline(text)?, data, false)
    }

    /// [`Set::render`] for an HTML field (email `html`, Telegram in HTML mode): every
    /// printed value is HTML-escaped unless its pipeline ends with `html`, `safeHtml`,
    /// `safeUrl` or `urlquery` — a simple stand-in for `html/template`'s contextual
    /// escaping (one escaping for every context, no URL filtering).
    pub fn render_html(&self, text: &str, data: &Value) -> Result<String, Error> {
        self.execute_inline(&self.parse_inline(text)?, data, true)
    }

    /// Execute a named template of the set.
    pub fn execute(&self, name: &str, data: &Value) -> Result<String, Error> {
        let t = self
            .templates
            .get(name)
            .ok_or_else(|| Error::Undefined(name.to_string()))?;
        let local = HashMap::new();
        let mut ex = exec::Exec::new(self, &local, t.src.clone(), &t.name);
        ex.run(&t.body, data)?;
        Ok(ex.out)
    }
}

impl Default for Set {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
