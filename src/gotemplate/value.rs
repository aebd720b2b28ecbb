//! Values a Go template works on: Go's basic kinds, `time.Time` and `time.Duration`,
//! and typed slices, maps and structs (each with its Go type name, which method calls
//! and `%T` use), with Go's truthiness, comparison and `fmt` print forms.

use super::gotime::GoTime;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// A template value.
#[derive(Clone, Debug)]
pub enum Value {
    /// Go's `nil`.
    Nil,
    /// What a missing key of a `map[string]any` gives: prints `<no value>`.
    NoValue,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    Time(GoTime),
    /// A `time.Duration` in nanoseconds.
    Duration(i64),
    List(Arc<List>),
    Map(Arc<Map>),
    Struct(Arc<Struct>),
}

/// A slice, e.g. `[]string`, `[]interface {}`, `template.Alerts`.
#[derive(Debug)]
pub struct List {
    pub ty: &'static str,
    pub items: Vec<Value>,
    depth: usize,
}

/// A map with string keys (iterated in key order, as Go's `range` and `fmt` do).
#[derive(Debug)]
pub struct Map {
    pub ty: &'static str,
    /// `map[string]string`-like: a missing key reads as `""` instead of `<no value>`.
    pub string_values: bool,
    pub entries: BTreeMap<String, Value>,
    depth: usize,
}

/// A struct with named fields, in declaration order (for printing).
#[derive(Debug)]
pub struct Struct {
    pub ty: &'static str,
    pub fields: Vec<(&'static str, Value)>,
    depth: usize,
}

/// Printing ([`Value::write_go`], `toJson`) stops past this many bytes: more than the
/// executor's output limit, so a cut-short print always ends in its "too large" error.
pub const MAX_PRINT: usize = super::exec::MAX_OUTPUT + 1;

/// Go type names of the untyped containers.
pub const ANY_LIST: &str = "[]interface {}";
pub const STRING_LIST: &str = "[]string";
pub const ANY_MAP: &str = "map[string]interface {}";

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(Arc::from(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(Arc::from(s))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl Value {
    pub fn list(ty: &'static str, items: Vec<Value>) -> Value {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        Value::List(Arc::new(List { ty, items, depth }))
    }

    pub fn strings<I: IntoIterator<Item = S>, S: Into<Value>>(items: I) -> Value {
        Value::list(STRING_LIST, items.into_iter().map(Into::into).collect())
    }

    pub fn map(ty: &'static str, string_values: bool, entries: BTreeMap<String, Value>) -> Value {
        let depth = 1 + entries.values().map(Value::depth).max().unwrap_or(0);
        Value::Map(Arc::new(Map {
            ty,
            string_values,
            entries,
            depth,
        }))
    }

    pub fn structure(ty: &'static str, fields: Vec<(&'static str, Value)>) -> Value {
        let depth = 1 + fields.iter().map(|(_, v)| v.depth()).max().unwrap_or(0);
        Value::Struct(Arc::new(Struct { ty, fields, depth }))
    }

    /// Nesting depth: 0 for a basic value, 1 + the deepest element for a container
    /// (known when it is built, so this is O(1)).
    pub fn depth(&self) -> usize {
        match self {
            Value::List(l) => l.depth,
            Value::Map(m) => m.depth,
            Value::Struct(s) => s.depth,
            _ => 0,
        }
    }

    /// The Go type name (`%T`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil | Value::NoValue => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Time(_) => "time.Time",
            Value::Duration(_) => "time.Duration",
            Value::List(l) => l.ty,
            Value::Map(m) => m.ty,
            Value::Struct(s) => s.ty,
        }
    }

    /// Go's `if` truth: false, 0, nil, empty string/slice/map are false; structs true.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil | Value::NoValue => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Duration(d) => *d != 0,
            Value::Time(_) | Value::Struct(_) => true,
            Value::List(l) => !l.items.is_empty(),
            Value::Map(m) => !m.entries.is_empty(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// `fmt.Sprint(v)` of one value (`%v`).
    pub fn to_go_string(&self) -> String {
        let mut out = String::new();
        self.write_go(&mut out, true);
        out
    }

    /// Append the `%v` form; `top` is false inside containers (where nil prints `<nil>`
    /// and a `<no value>` also prints as `<nil>`, as in Go). Stops early once `out` is
    /// longer than [`MAX_PRINT`] (containers can share elements, so a small value can
    /// print as exabytes; the executor refuses output that long anyway).
    pub fn write_go(&self, out: &mut String, top: bool) {
        if out.len() > MAX_PRINT {
            return;
        }
        match self {
            Value::Nil => out.push_str("<nil>"),
            Value::NoValue => out.push_str(if top { "<no value>" } else { "<nil>" }),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&super::printf::format_float_g(*f, -1, false)),
            Value::Str(s) => out.push_str(s),
            Value::Time(t) => out.push_str(&t.to_go_string()),
            Value::Duration(d) => out.push_str(&super::gotime::duration_string(*d)),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_go(out, false);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.entries.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_go(out, false);
                }
                out.push(']');
            }
            Value::Struct(s) => {
                out.push('{');
                for (i, (_, v)) in s.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_go(out, false);
                }
                out.push('}');
            }
        }
    }

    /// JSON form (`toJson`): maps become objects, times RFC 3339 strings, structs objects
    /// keyed by their JSON names (see [`Struct`] users).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Nil | Value::NoValue => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.to_string()),
            Value::Time(t) => J::String(t.to_rfc3339_nano()),
            Value::Duration(d) => J::from(*d),
            Value::List(l) => J::Array(l.items.iter().map(Value::to_json).collect()),
            Value::Map(m) => J::Object(
                m.entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
            Value::Struct(s) => J::Object(
                s.fields
                    .iter()
                    .map(|(k, v)| (json_name(k), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// The JSON name of a data-model field (`StartsAt` → `startsAt`, `GeneratorURL` →
/// `generatorURL`), as Alertmanager's struct tags spell them.
pub fn json_name(field: &str) -> String {
    if field == "NotificationReason" {
        return "notification_reason".into();
    }
    let mut c = field.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Go's basic kinds for comparison.
#[derive(PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) | Value::Duration(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

/// `eq a b`: equality of two basic values, Go's `incompatible types` error otherwise.
pub fn basic_eq(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Int(x), Value::Int(y)) | (Value::Duration(x), Value::Duration(y)) => Ok(x == y),
        (Value::Int(x), Value::Duration(y)) | (Value::Duration(x), Value::Int(y)) => Ok(x == y),
        (Value::Float(x), Value::Float(y)) => Ok(x == y),
        (Value::Str(x), Value::Str(y)) => Ok(x == y),
        (Value::Time(x), Value::Time(y)) => Ok(x.same_value(y)),
        (Value::Nil, Value::Nil) => Ok(true),
        (Value::NoValue, _) | (_, Value::NoValue) => Err("invalid type for comparison".into()),
        (Value::Nil, _) | (_, Value::Nil) => Ok(false),
        _ if kind(a) == Kind::Other || kind(b) == Kind::Other => {
            if a.type_name() != b.type_name() {
                Err("incompatible types for comparison".into())
            } else {
                Err(format!("non-comparable type {}", a.type_name()))
            }
        }
        _ => Err("incompatible types for comparison".into()),
    }
}

/// `lt a b`: ordering of two basic values of one kind.
pub fn basic_lt(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) | (Value::Duration(x), Value::Duration(y)) => Ok(x < y),
        (Value::Int(x), Value::Duration(y)) | (Value::Duration(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        _ if kind(a) != kind(b) => Err("incompatible types for comparison".into()),
        _ => Err("invalid type for comparison".into()),
    }
}
