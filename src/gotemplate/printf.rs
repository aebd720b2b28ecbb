//! Go's `fmt` for templates: `print`, `println` and `printf` with the common verbs
//! (`%v %s %q %d %x %X %o %b %c %U %e %f %g %t %T %%`), flags (`-+# 0`), width and
//! precision (also `*`), and Go's `%!verb(type=value)` / `MISSING` / `EXTRA` markers.

use super::value::Value;

/// `fmt.Sprint`: operands printed with `%v`, a space between two operands when neither
/// is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        a.write_go(&mut out, false);
    }
    out
}

/// `fmt.Sprintln`: operands separated by spaces, then a newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        a.write_go(&mut out, false);
    }
    out.push('\n');
    out
}

/// Largest width or precision a `*` argument may give (Go's `fmt` limit, 1e6).
const MAX_STAR: u64 = 1_000_000;

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if out.len() > super::value::MAX_PRINT {
            // past the output limit: the caller refuses the result, stop building it
            return out;
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut s = Spec::default();
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '-' => s.minus = true,
                '+' => s.plus = true,
                '#' => s.sharp = true,
                '0' => s.zero = true,
                ' ' => s.space = true,
                _ => break,
            }
            chars.next();
        }
        // `*`: the next argument, if it is an int within Go's ±1e6 (`None` otherwise,
        // which Go reports as BADWIDTH / BADPREC); the argument is used up either way.
        let star = |chars: &mut std::iter::Peekable<std::str::CharIndices>,
                    next: &mut usize|
         -> Option<Option<i64>> {
            if chars.peek().map(|p| p.1) != Some('*') {
                return None;
            }
            chars.next();
            let v = match args.get(*next) {
                Some(Value::Int(i) | Value::Duration(i)) if i.unsigned_abs() <= MAX_STAR => {
                    Some(*i)
                }
                _ => None,
            };
            if *next < args.len() {
                *next += 1;
            }
            Some(v)
        };
        let num = |chars: &mut std::iter::Peekable<std::str::CharIndices>| -> Option<usize> {
            let mut n: Option<usize> = None;
            while let Some(&(_, d)) = chars.peek() {
                match d.to_digit(10) {
                    Some(d) => {
                        n = Some(
                            n.unwrap_or(0)
                                .saturating_mul(10)
                                .saturating_add(d as usize)
                                .min(1 << 20),
                        );
                        chars.next();
                    }
                    None => break,
                }
            }
            n
        };
        match star(&mut chars, &mut next) {
            Some(Some(w)) => {
                if w < 0 {
                    s.minus = true;
                    s.zero = false;
                }
                s.width = usize::try_from(w.unsigned_abs()).ok();
            }
            Some(None) => out.push_str("%!(BADWIDTH)"),
            None => s.width = num(&mut chars),
        }
        if chars.peek().map(|p| p.1) == Some('.') {
            chars.next();
            s.prec = match star(&mut chars, &mut next) {
                Some(Some(p)) if p >= 0 => usize::try_from(p).ok(),
                Some(_) => {
                    out.push_str("%!(BADPREC)");
                    None
                }
                None => Some(num(&mut chars).unwrap_or(0)),
            };
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let body = format_one(verb, &s, arg);
        out.push_str(&body);
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[next..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("{}={}", a.type_name(), a.to_go_string()));
        }
        out.push(')');
    }
    out
}

fn bad(verb: char, v: &Value) -> String {
    match v {
        Value::Nil | Value::NoValue => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", v.type_name(), v.to_go_string()),
    }
}

fn pad(s: String, spec: &Spec, numeric: bool) -> String {
    let Some(w) = spec.width else { return s };
    let len = s.chars().count();
    if len >= w {
        return s;
    }
    let fill = w - len;
    if spec.minus {
        return s + &" ".repeat(fill);
    }
    if spec.zero && numeric {
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'-' | b'+' | b' ') => s.split_at(1),
            _ => ("", s.as_str()),
        };
        return format!("{sign}{}{rest}", "0".repeat(fill));
    }
    if spec.zero {
        return "0".repeat(fill) + &s;
    }
    " ".repeat(fill) + &s
}

fn sign(neg: bool, spec: &Spec) -> &'static str {
    if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn format_int(verb: char, i: i64, spec: &Spec) -> Option<String> {
    let u = i.unsigned_abs();
    let (digits, prefix) = match verb {
        'd' | 'v' => (u.to_string(), ""),
        'x' => (format!("{u:x}"), "0x"),
        'X' => (format!("{u:X}"), "0X"),
        'o' => (format!("{u:o}"), "0"),
        'O' => (format!("{u:o}"), "0o"),
        'b' => (format!("{u:b}"), ""),
        'c' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            return Some(pad(c.to_string(), spec, false));
        }
        'q' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            return Some(pad(quote_char(c), spec, false));
        }
        'U' => return Some(pad(format!("U+{u:04X}"), spec, false)),
        _ => return None,
    };
    let mut digits = digits;
    if let Some(p) = spec.prec {
        if digits.len() < p {
            digits = "0".repeat(p - digits.len()) + &digits;
        }
        if p == 0 && i == 0 {
            digits.clear();
        }
    }
    let prefix = if spec.sharp || verb == 'O' {
        prefix
    } else {
        ""
    };
    let s = format!("{}{prefix}{digits}", sign(i < 0, spec));
    let mut spec = *spec;
    if spec.prec.is_some() {
        spec.zero = false;
    }
    Some(pad(s, &spec, true))
}

fn format_one(verb: char, spec: &Spec, v: &Value) -> String {
    if verb == 'T' {
        return pad(
            match v {
                Value::Nil | Value::NoValue => "<nil>".into(),
                _ => v.type_name().into(),
            },
            spec,
            false,
        );
    }
    match v {
        Value::Bool(b) => match verb {
            'v' | 't' => pad(b.to_string(), spec, false),
            _ => bad(verb, v),
        },
        Value::Int(i) | Value::Duration(i) => {
            if let Value::Duration(_) = v {
                if matches!(verb, 'v' | 's') {
                    return pad(v.to_go_string(), spec, false);
                }
            }
            format_int(verb, *i, spec).unwrap_or_else(|| bad(verb, v))
        }
        Value::Float(f) => match verb {
            'v' | 'g' | 'G' | 'e' | 'E' | 'f' | 'F' => {
                let body = match verb {
                    'e' | 'E' => format_float_e(f.abs(), spec.prec.unwrap_or(6), verb == 'E'),
                    'f' | 'F' => format!("{:.*}", spec.prec.unwrap_or(6), f.abs()),
                    _ => format_float_g(f.abs(), spec.prec.map_or(-1, |p| p as i64), verb == 'G'),
                };
                let body = if f.is_nan() {
                    "NaN".to_string()
                } else if f.is_infinite() {
                    "Inf".to_string()
                } else {
                    body
                };
                let neg = f.is_sign_negative() && !f.is_nan();
                pad(format!("{}{body}", sign(neg, spec)), spec, f.is_finite())
            }
            _ => bad(verb, v),
        },
        Value::Str(s) => match verb {
            'v' | 's' => {
                let s: String = match spec.prec {
                    Some(p) => s.chars().take(p).collect(),
                    None => s.to_string(),
                };
                pad(s, spec, false)
            }
            'q' => pad(
                if spec.sharp && !s.contains('`') {
                    format!("`{s}`")
                } else {
                    quote(s)
                },
                spec,
                false,
            ),
            'x' | 'X' => {
                let bytes = match spec.prec {
                    Some(p) => &s.as_bytes()[..p.min(s.len())],
                    None => s.as_bytes(),
                };
                let mut h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                if verb == 'X' {
                    h = h.to_uppercase();
                }
                pad(h, spec, false)
            }
            _ => bad(verb, v),
        },
        Value::Time(_) | Value::Nil | Value::NoValue => match (verb, v) {
            ('v' | 's', Value::Time(_)) => pad(v.to_go_string(), spec, false),
            ('v', _) => pad(v.to_go_string(), spec, false),
            _ => bad(verb, v),
        },
        Value::List(l) => {
            if verb == 'v' {
                return pad(v.to_go_string(), spec, false);
            }
            let parts: Vec<String> = l
                .items
                .iter()
                .map(|e| format_one(verb, &Spec::default(), e))
                .collect();
            pad(format!("[{}]", parts.join(" ")), spec, false)
        }
        Value::Map(m) => {
            if verb == 'v' {
                return pad(v.to_go_string(), spec, false);
            }
            let parts: Vec<String> = m
                .entries
                .iter()
                .map(|(k, e)| {
                    format!(
                        "{}:{}",
                        format_one(verb, &Spec::default(), &Value::from(k.as_str())),
                        format_one(verb, &Spec::default(), e)
                    )
                })
                .collect();
            pad(format!("map[{}]", parts.join(" ")), spec, false)
        }
        Value::Struct(_) => pad(v.to_go_string(), spec, false),
    }
}

/// `strconv.Quote`.
pub fn quote(s: &str) -> String {
    crate::matcher::go_quote(s)
}

fn quote_char(c: char) -> String {
    let mut out = String::from("'");
    match c {
        '\'' => out.push_str("\\'"),
        '\\' => out.push_str("\\\\"),
        c => push_escaped(&mut out, c),
    }
    out.push('\'');
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if c.is_control() || matches!(c as u32, 0x2028 | 0x2029 | 0xFEFF) => {
            if (c as u32) < 0x10000 {
                out.push_str(&format!("\\u{:04x}", c as u32))
            } else {
                out.push_str(&format!("\\U{:08x}", c as u32))
            }
        }
        c => out.push(c),
    }
}

/// Decimal digits and decimal-point position of `f` (≥ 0): shortest when `prec` is
/// `None`, else rounded to `prec` significant digits; trailing zeros removed.
fn digits(f: f64, prec: Option<usize>) -> (Vec<u8>, i64) {
    let s = match prec {
        None => format!("{f:e}"),
        Some(p) => format!("{:.*e}", p.max(1) - 1, f),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.len() > 1 && d.last() == Some(&b'0') {
        d.pop();
    }
    if d == [b'0'] {
        return (Vec::new(), 0);
    }
    (d, exp + 1)
}

fn exp_suffix(exp: i64, upper: bool) -> String {
    format!(
        "{}{}{:02}",
        if upper { 'E' } else { 'e' },
        if exp < 0 { '-' } else { '+' },
        exp.abs()
    )
}

fn fmt_e(d: &[u8], dp: i64, prec: usize, upper: bool) -> String {
    let mut out = String::new();
    out.push(d.first().map_or('0', |c| *c as char));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(d.get(i).map_or('0', |c| *c as char));
        }
    }
    let exp = if d.is_empty() { 0 } else { dp - 1 };
    out + &exp_suffix(exp, upper)
}

fn fmt_f(d: &[u8], dp: i64, decimals: usize) -> String {
    let mut out = String::new();
    if dp <= 0 {
        out.push('0');
    } else {
        for i in 0..dp as usize {
            out.push(d.get(i).map_or('0', |c| *c as char));
        }
    }
    if decimals > 0 {
        out.push('.');
        for i in 0..decimals as i64 {
            let at = dp + i;
            out.push(if at < 0 {
                '0'
            } else {
                d.get(at as usize).map_or('0', |c| *c as char)
            });
        }
    }
    out
}

/// `%e` of a non-negative float with `prec` decimals.
fn format_float_e(f: f64, prec: usize, upper: bool) -> String {
    let (d, dp) = digits(f, Some(prec + 1));
    fmt_e(&d, dp, prec, upper)
}

/// `strconv.FormatFloat(f, 'g', prec, 64)` (`prec` -1 = shortest), sign included.
pub fn format_float_g(f: f64, prec: i64, upper: bool) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let neg = if f.is_sign_negative() && f != 0.0 {
        "-"
    } else {
        ""
    };
    let shortest = prec < 0;
    let (d, dp) = digits(
        f.abs(),
        if shortest {
            None
        } else {
            Some(prec.max(1) as usize)
        },
    );
    let nd = d.len() as i64;
    let mut p = if shortest { nd } else { prec.max(1) };
    let mut eprec = p;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    let body = if !d.is_empty() && (exp < -4 || exp >= eprec) {
        if p > nd {
            p = nd;
        }
        fmt_e(&d, dp, (p - 1).max(0) as usize, upper)
    } else {
        if p > dp {
            p = nd;
        }
        fmt_f(&d, dp, (p - dp).max(0) as usize)
    };
    format!("{neg}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    /// `*` width and precision come from an argument; Go refuses beyond ±1e6 instead of
    /// padding (a huge one used to try to allocate that many bytes and abort).
    #[test]
    fn star_width_and_precision_are_bounded_like_go() {
        let i = Value::Int;
        assert_eq!(sprintf("%*d|", &[i(4), i(7)]), "   7|");
        assert_eq!(sprintf("%*d|", &[i(-4), i(7)]), "7   |");
        assert_eq!(sprintf("%.*f", &[i(2), Value::Float(1.0)]), "1.00");
        assert_eq!(sprintf("%*d", &[i(i64::MAX), i(1)]), "%!(BADWIDTH)1");
        assert_eq!(sprintf("%*d", &[i(1_000_001), i(1)]), "%!(BADWIDTH)1");
        assert_eq!(sprintf("%*d", &[s("x"), i(1)]), "%!(BADWIDTH)1");
        assert_eq!(
            sprintf("%.*f", &[i(i64::MAX), Value::Float(1.0)]),
            "%!(BADPREC)1.000000"
        );
        assert_eq!(sprintf("%.*d", &[i(-1), i(1)]), "%!(BADPREC)1");
        assert_eq!(sprintf("%*d", &[]), "%!(BADWIDTH)%!d(MISSING)");
        assert_eq!(sprintf("%*d", &[i(1_000_000), i(1)]).len(), 1_000_000);
    }

    #[test]
    fn printf_matches_go_for_common_verbs() {
        let args = [
            s("a"),
            s("b"),
            Value::Float(1.23456),
            Value::Bool(true),
            Value::Int(7),
            Value::Int(255),
        ];
        assert_eq!(
            sprintf("%s=%q %5.2f %v %03d %x", &args),
            "a=\"b\"  1.23 true 007 ff"
        );
        assert_eq!(sprintf("%-5s|%5s|%%", &[s("ab"), s("cd")]), "ab   |   cd|%");
        assert_eq!(
            sprintf("%d %s", &[s("x"), Value::Int(1)]),
            "%!d(string=x) %!s(int=1)"
        );
        assert_eq!(sprintf("%s %s", &[s("x")]), "x %!s(MISSING)");
        assert_eq!(sprintf("%s", &[s("x"), Value::Int(2)]), "x%!(EXTRA int=2)");
        assert_eq!(
            sprintf(
                "%T %T %.1f %e",
                &[
                    s("x"),
                    Value::Int(1),
                    Value::Float(2.25),
                    Value::Float(123456.0)
                ]
            ),
            "string int 2.2 1.234560e+05"
        );
        assert_eq!(
            sprintf(
                "%+d %#x %X %o %b %c %U",
                &[
                    Value::Int(5),
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(8),
                    Value::Int(5),
                    Value::Int(65),
                    Value::Int(65)
                ]
            ),
            "+5 0xff FF 10 101 A U+0041"
        );
        assert_eq!(sprintf("%q", &[s("a\"b\n\u{1}")]), "\"a\\\"b\\n\\x01\"");
        assert_eq!(
            sprintf(
                "%x %.2s %*d",
                &[s("hi"), s("hello"), Value::Int(4), Value::Int(7)]
            ),
            "6869 he    7"
        );
    }

    #[test]
    fn floats_print_like_go() {
        assert_eq!(format_float_g(1.0, -1, false), "1");
        assert_eq!(format_float_g(0.5, -1, false), "0.5");
        assert_eq!(format_float_g(1e6, -1, false), "1e+06");
        assert_eq!(format_float_g(123456789.0, -1, false), "1.23456789e+08");
        assert_eq!(format_float_g(100000.0, -1, false), "100000");
        assert_eq!(format_float_g(0.0001, -1, false), "0.0001");
        assert_eq!(format_float_g(0.00001, -1, false), "1e-05");
        assert_eq!(format_float_g(4.5, 4, false), "4.5");
        assert_eq!(format_float_g(12.34567, 4, false), "12.35");
        assert_eq!(format_float_g(123456.0, 4, false), "1.235e+05");
        assert_eq!(format_float_g(0.0, 4, false), "0");
        assert_eq!(format_float_g(-2.5, -1, false), "-2.5");
        assert_eq!(
            sprint(&[Value::Int(1), Value::Int(2), s("a"), Value::Int(3)]),
            "1 2a3"
        );
        assert_eq!(sprintln(&[Value::Int(1), s("a")]), "1 a\n");
    }
}
