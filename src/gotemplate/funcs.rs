//! Template functions: Go's builtins (`not`, `len`, `index`, `slice`, `print*`, `html`,
//! `js`, `urlquery`, comparisons; `and`/`or` live in the executor because they
//! short-circuit) and Alertmanager's function map (`toUpper`, `title`, `join`, `match`,
//! `reReplaceAll`, `date`, `tz`, `humanizeDuration`, `toJson`, `dict`, …).

use super::gotime::{self, GoTime};
use super::printf;
use super::value::{self, Value};
use super::Set;
use base64::Engine as _;
use std::collections::{BTreeMap, HashMap};

/// Names of Go's builtin functions.
pub const BUILTINS: [&str; 19] = [
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "html", "js",
    "urlquery", "eq", "ne", "lt", "le", "gt", "ge", "call",
];

/// Names of Alertmanager's functions (all of them registered by [`call`]).
pub const ALERTMANAGER: [&str; 25] = [
    "toUpper",
    "toLower",
    "title",
    "trimSpace",
    "join",
    "match",
    "reReplaceAll",
    "safeHtml",
    "safeUrl",
    "urlUnescape",
    "stringSlice",
    "date",
    "tz",
    "now",
    "since",
    "humanizeDuration",
    "toDate",
    "mustToDate",
    "toJson",
    "base64encode",
    "base64decode",
    "list",
    "append",
    "dict",
    "routeLabels",
];

/// Whether `name` is a function a template may call.
pub fn exists(set: &Set, name: &str) -> bool {
    BUILTINS.contains(&name) || set.funcs.contains(&name)
}

fn arity(args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!("wrong number of args: want {n} got {}", args.len()));
    }
    Ok(())
}

fn string_arg(args: &[Value], i: usize) -> Result<&str, String> {
    match args.get(i) {
        Some(Value::Str(s)) => Ok(s),
        Some(v) => Err(format!(
            "wrong type for value; expected string; got {}",
            v.type_name()
        )),
        None => Err("missing argument".into()),
    }
}

fn time_arg(args: &[Value], i: usize) -> Result<&GoTime, String> {
    match args.get(i) {
        Some(Value::Time(t)) => Ok(t),
        Some(v) => Err(format!(
            "wrong type for value; expected time.Time; got {}",
            v.type_name()
        )),
        None => Err("missing argument".into()),
    }
}

fn int_arg(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) | Value::Duration(i) => Ok(*i),
        v => Err(format!(
            "cannot index slice/array with type {}",
            v.type_name()
        )),
    }
}

/// The regular expressions a render compiled (`match`, `reReplaceAll`), by pattern: a
/// template uses a few patterns, often once per alert. Compiles are counted so the
/// executor can charge them to the render's work budget (a loop compiling a large
/// pattern every time ran for hours).
#[derive(Default)]
pub struct Regexes {
    cache: HashMap<String, regex::Regex>,
    /// Compiles since the executor last took the count.
    pub compiled: u64,
}

/// Compiled size allowed for a template's regular expression (the `regex` crate's default
/// is 10 MB): bounds what one compile costs.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Distinct patterns kept per render.
const REGEX_CACHE: usize = 256;

impl Regexes {
    fn get(&mut self, pattern: &str) -> Result<regex::Regex, String> {
        if let Some(re) = self.cache.get(pattern) {
            return Ok(re.clone());
        }
        self.compiled += 1;
        let re = regex::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| e.to_string())?;
        if self.cache.len() < REGEX_CACHE {
            self.cache.insert(pattern.to_string(), re.clone());
        }
        Ok(re)
    }
}

/// Call a function by name (`and`/`or` excepted) with evaluated arguments.
pub fn call(set: &Set, regexes: &mut Regexes, name: &str, args: &[Value]) -> Result<Value, String> {
    if !BUILTINS.contains(&name) && !set.funcs.contains(&name) {
        return Err(format!("function {name:?} not defined"));
    }
    let s = |i| string_arg(args, i);
    Ok(match name {
        "not" => {
            arity(args, 1)?;
            Value::Bool(!args[0].truthy())
        }
        "len" => {
            arity(args, 1)?;
            Value::Int(match &args[0] {
                Value::Str(s) => s.len(),
                Value::List(l) => l.items.len(),
                Value::Map(m) => m.entries.len(),
                v => return Err(format!("len of type {}", v.type_name())),
            } as i64)
        }
        "index" => index(args)?,
        "slice" => slice(args)?,
        "print" => Value::from(printf::sprint(args)),
        "println" => Value::from(printf::sprintln(args)),
        "printf" => {
            let f = s(0)?;
            Value::from(printf::sprintf(f, &args[1..]))
        }
        "html" => Value::from(html_escape(&printf::sprint(args))),
        "js" => Value::from(js_escape(&printf::sprint(args))),
        "urlquery" => Value::from(crate::notify::http_config::form_encode(&printf::sprint(
            args,
        ))),
        "eq" => {
            if args.len() < 2 {
                return Err("missing argument for comparison".into());
            }
            let mut any = false;
            for b in &args[1..] {
                if value::basic_eq(&args[0], b)? {
                    any = true;
                    break;
                }
            }
            Value::Bool(any)
        }
        "ne" => {
            arity(args, 2)?;
            Value::Bool(!value::basic_eq(&args[0], &args[1])?)
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(args, 2)?;
            let (a, b) = (&args[0], &args[1]);
            Value::Bool(match name {
                "lt" => value::basic_lt(a, b)?,
                "le" => value::basic_lt(a, b)? || value::basic_eq(a, b)?,
                "gt" => !(value::basic_lt(a, b)? || value::basic_eq(a, b)?),
                _ => !value::basic_lt(a, b)?,
            })
        }
        "call" => return Err("call of a non-function".into()),
        // Alertmanager's functions.
        "toUpper" => {
            arity(args, 1)?;
            Value::from(s(0)?.to_uppercase())
        }
        "toLower" => {
            arity(args, 1)?;
            Value::from(s(0)?.to_lowercase())
        }
        "title" => {
            arity(args, 1)?;
            Value::from(title(s(0)?))
        }
        "trimSpace" => {
            arity(args, 1)?;
            Value::from(s(0)?.trim())
        }
        "safeHtml" | "safeUrl" => {
            arity(args, 1)?;
            Value::from(s(0)?)
        }
        "join" => {
            arity(args, 2)?;
            let sep = s(0)?;
            check_join_len(&args[1], sep)?;
            let items = string_list(&args[1])?;
            Value::from(items.join(sep))
        }
        "match" => {
            arity(args, 2)?;
            let re = regexes.get(s(0)?)?;
            Value::Bool(re.is_match(s(1)?))
        }
        "reReplaceAll" => {
            arity(args, 3)?;
            let re = regexes.get(s(0)?)?;
            Value::from(replace_all_bounded(&re, s(2)?, s(1)?)?)
        }
        "urlUnescape" => {
            arity(args, 1)?;
            Value::from(query_unescape(s(0)?)?)
        }
        "stringSlice" => {
            let mut out = Vec::new();
            for i in 0..args.len() {
                out.push(Value::from(s(i)?));
            }
            Value::list(value::STRING_LIST, out)
        }
        "date" => {
            arity(args, 2)?;
            Value::from(time_arg(args, 1)?.format(s(0)?))
        }
        "tz" => {
            arity(args, 2)?;
            gotime::in_zone(time_arg(args, 1)?, s(0)?)?
        }
        "now" => {
            arity(args, 0)?;
            Value::Time(GoTime::utc(time::OffsetDateTime::now_utc()))
        }
        "since" => {
            arity(args, 1)?;
            let d = (time::OffsetDateTime::now_utc() - time_arg(args, 0)?.t).whole_nanoseconds();
            Value::Duration(d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
        }
        "humanizeDuration" => {
            arity(args, 1)?;
            Value::from(humanize_duration(&args[0])?)
        }
        "toDate" | "mustToDate" => {
            arity(args, 2)?;
            match gotime::parse(s(0)?, s(1)?) {
                Ok(t) => Value::Time(GoTime::utc(t.t)),
                Err(e) if name == "mustToDate" => return Err(e),
                Err(_) => Value::Time(GoTime::zero()),
            }
        }
        "toJson" => {
            arity(args, 1)?;
            let mut out = String::new();
            write_json(&args[0], &mut out);
            Value::from(out)
        }
        "base64encode" => {
            arity(args, 1)?;
            Value::from(base64::engine::general_purpose::URL_SAFE.encode(s(0)?))
        }
        "base64decode" => {
            arity(args, 1)?;
            let b = base64::engine::general_purpose::URL_SAFE
                .decode(s(0)?)
                .map_err(|e| e.to_string())?;
            Value::from(String::from_utf8_lossy(&b).into_owned())
        }
        "list" => Value::list(value::ANY_LIST, args.to_vec()),
        "append" => match args.split_first() {
            Some((Value::List(l), rest)) => {
                let mut items = l.items.clone();
                items.extend(rest.iter().cloned());
                Value::list(value::ANY_LIST, items)
            }
            Some((v, _)) => {
                return Err(format!(
                    "wrong type for value; expected []interface {{}}; got {}",
                    v.type_name()
                ))
            }
            None => return Err("wrong number of args: want at least 1 got 0".into()),
        },
        "dict" => {
            if args.len() % 2 != 0 {
                return Err("dict: odd number of arguments".into());
            }
            let mut m = BTreeMap::new();
            for pair in args.chunks(2) {
                let k = pair[0].as_str().ok_or_else(|| {
                    format!("dict: key must be a string, got {}", pair[0].type_name())
                })?;
                m.insert(k.to_string(), pair[1].clone());
            }
            Value::map(value::ANY_MAP, false, m)
        }
        "routeLabels" => {
            arity(args, 1)?;
            s(0)?;
            // Alertmanager 0.34's route labels; the router's routes have none, and an
            // unknown name is "" there too.
            Value::from("")
        }
        _ => return Err(format!("function {name:?} not defined")),
    })
}

/// Longest string a function may build: the executor's output limit. Checked before
/// building where one input repeated many times could make the result huge (a result
/// over it is an error anyway, but building it first could exhaust memory).
const MAX_RESULT: usize = super::exec::MAX_OUTPUT;

fn too_large() -> String {
    format!("result larger than {MAX_RESULT} bytes")
}

/// Refuse to join a list of strings whose result would be longer than [`MAX_RESULT`].
pub(crate) fn check_join_len(list: &Value, sep: &str) -> Result<(), String> {
    let Value::List(l) = list else {
        return Ok(());
    };
    let seps = sep.len().saturating_mul(l.items.len().saturating_sub(1));
    let total = l
        .items
        .iter()
        .filter_map(Value::as_str)
        .fold(seps, |n, s| n.saturating_add(s.len()));
    if total > MAX_RESULT {
        return Err(too_large());
    }
    Ok(())
}

/// `regexp.ReplaceAllString`, refused once the result would pass [`MAX_RESULT`]: every
/// match repeats the replacement, whose `$0`/`$1` expansions repeat the match again.
fn replace_all_bounded(re: &regex::Regex, text: &str, repl: &str) -> Result<String, String> {
    let dollars = repl.matches('$').count();
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let Some(m) = caps.get(0) else { continue };
        // an expansion is at most the replacement plus one copy of the match per `$`
        let most = repl.len().saturating_add(dollars.saturating_mul(m.len()));
        if (out.len() + (m.start() - last)).saturating_add(most) > MAX_RESULT {
            return Err(too_large());
        }
        out.push_str(text.get(last..m.start()).unwrap_or(""));
        caps.expand(repl, &mut out);
        last = m.end();
    }
    out.push_str(text.get(last..).unwrap_or(""));
    Ok(out)
}

fn string_list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::List(l) => l
            .items
            .iter()
            .map(|e| {
                e.as_str().map(str::to_string).ok_or_else(|| {
                    format!(
                        "wrong type for value; expected []string; got {}",
                        v.type_name()
                    )
                })
            })
            .collect(),
        v => Err(format!(
            "wrong type for value; expected []string; got {}",
            v.type_name()
        )),
    }
}

fn index(args: &[Value]) -> Result<Value, String> {
    let Some((first, keys)) = args.split_first() else {
        return Err("wrong number of args: want at least 1 got 0".into());
    };
    let mut v = first.clone();
    for k in keys {
        v = match &v {
            Value::List(l) => {
                let i = int_arg(k)?;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| l.items.get(i))
                    .cloned()
                    .ok_or_else(|| format!("index out of range: {i}"))?
            }
            Value::Str(s) => {
                let i = int_arg(k)?;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| s.as_bytes().get(i))
                    .map(|b| Value::Int(i64::from(*b)))
                    .ok_or_else(|| format!("index out of range: {i}"))?
            }
            Value::Map(m) => {
                let key = k
                    .as_str()
                    .ok_or_else(|| format!("value has type {}; should be string", k.type_name()))?;
                match m.entries.get(key) {
                    Some(v) => v.clone(),
                    None if m.string_values => Value::from(""),
                    None => Value::NoValue,
                }
            }
            Value::Nil | Value::NoValue => return Err("index of untyped nil".into()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(v)
}

fn slice(args: &[Value]) -> Result<Value, String> {
    let Some((first, idx)) = args.split_first() else {
        return Err("wrong number of args: want at least 1 got 0".into());
    };
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let mut ix = Vec::new();
    for i in idx {
        let i = int_arg(i)?;
        ix.push(usize::try_from(i).map_err(|_| format!("index out of range: {i}"))?);
    }
    let len = match first {
        Value::Str(s) => s.len(),
        Value::List(l) => l.items.len(),
        Value::Nil | Value::NoValue => return Err("slice of untyped nil".into()),
        v => return Err(format!("can't slice item of type {}", v.type_name())),
    };
    if ix.len() == 3 && matches!(first, Value::Str(_)) {
        return Err("cannot 3-index slice a string".into());
    }
    let lo = ix.first().copied().unwrap_or(0);
    let hi = ix.get(1).copied().unwrap_or(len);
    let cap = ix.get(2).copied().unwrap_or(len);
    if lo > hi || hi > cap || cap > len {
        return Err(format!("invalid slice index: {lo} > {hi}"));
    }
    Ok(match first {
        Value::Str(s) => Value::from(
            s.get(lo..hi)
                .ok_or_else(|| "slice splits a character".to_string())?,
        ),
        Value::List(l) => Value::list(l.ty, l.items[lo..hi].to_vec()),
        _ => Value::Nil,
    })
}

/// Go's `template.HTMLEscapeString`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryUnescape`.
fn query_unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let h = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        let bad: String = s[i..].chars().take(3).collect();
                        format!("invalid URL escape {bad:?}")
                    })?;
                out.push(h);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Title case as `golang.org/x/text/cases` does it: each word's first letter upper
/// case, the rest lower case; `'`, `.` and `:` between letters and `_` do not end a word.
pub fn title(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            if in_word {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
                in_word = true;
            }
            continue;
        }
        let joins = match c {
            '_' => in_word,
            '\'' | '’' | '.' | ':' => {
                in_word
                    && i > 0
                    && chars[i - 1].is_alphanumeric()
                    && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric())
            }
            _ => false,
        };
        in_word = joins;
        out.push(c);
    }
    out
}

/// Prometheus' `humanizeDuration`: seconds as `1d 2h 3m 4s`, `4.5s`, `500ms`.
fn humanize_duration(v: &Value) -> Result<String, String> {
    let mut v = match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Duration(d) => *d as f64 / 1e9,
        Value::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))?,
        other => return Err(format!("can't convert {} to float", other.type_name())),
    };
    let g4 = |x: f64| printf::format_float_g(x, 4, false);
    if v.is_nan() || v.is_infinite() {
        return Ok(g4(v));
    }
    if v == 0.0 {
        return Ok(format!("{}s", g4(v)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (secs, mins, hours, days) = (d % 60, d / 60 % 60, d / 3600 % 24, d / 86400);
        return Ok(if days != 0 {
            format!("{sign}{days}d {hours}h {mins}m {secs}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {mins}m {secs}s")
        } else if mins != 0 {
            format!("{sign}{mins}m {secs}s")
        } else {
            format!("{sign}{}s", g4(v))
        });
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    Ok(format!("{}{prefix}s", g4(v)))
}

/// `json.Marshal` as Go writes it: struct fields in declaration order, map keys
/// sorted, `<`, `>`, `&`, U+2028 and U+2029 escaped.
pub fn write_json(v: &Value, out: &mut String) {
    if out.len() > value::MAX_PRINT {
        return;
    }
    match v {
        Value::Map(m) => {
            out.push('{');
            for (i, (k, e)) in m.entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                write_json(e, out);
            }
            out.push('}');
        }
        Value::Struct(s) => {
            out.push('{');
            for (i, (k, e)) in s.fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(&value::json_name(k), out);
                out.push(':');
                write_json(e, out);
            }
            out.push('}');
        }
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(e, out);
            }
            out.push(']');
        }
        Value::Str(s) => json_string(s, out),
        Value::Time(t) => json_string(&t.to_rfc3339_nano(), out),
        Value::Float(f) => out.push_str(&json_float(*f)),
        other => out.push_str(&other.to_json().to_string()),
    }
}

/// Go's JSON number form of a float.
fn json_float(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
