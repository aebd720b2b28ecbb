//! Go's `time.Time` and `time.Duration` for templates: layout-string formatting and
//! parsing (`2006-01-02 15:04:05`), Go's print forms, the methods templates call
//! (`Format`, `UTC`, `In`, `Unix`, `IsZero`, `Add`, `Sub`, …) and IANA zones read from
//! the tz database (system zoneinfo, else the copy built into the binary) for `tz`.

use super::value::Value;
use std::sync::Arc;
use time::{Duration, OffsetDateTime, UtcOffset};

/// A point in time with the zone it is shown in: `zone` is the zone's abbreviation
/// (`UTC`, `CEST`), empty for an unnamed fixed offset (printed as `+0200`).
#[derive(Clone, Debug)]
pub struct GoTime {
    pub t: OffsetDateTime,
    pub zone: Arc<str>,
}

/// Go's zero time, `0001-01-01 00:00:00 +0000 UTC`.
const ZERO_UNIX: i64 = -62_135_596_800;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

impl GoTime {
    pub fn utc(t: OffsetDateTime) -> Self {
        GoTime {
            t: t.to_offset(UtcOffset::UTC),
            zone: Arc::from("UTC"),
        }
    }

    pub fn zero() -> Self {
        match OffsetDateTime::from_unix_timestamp(ZERO_UNIX) {
            Ok(t) => GoTime::utc(t),
            Err(_) => GoTime::utc(OffsetDateTime::UNIX_EPOCH),
        }
    }

    /// Parse RFC 3339 as Go's JSON decoding does: `Z` (and, with the local zone being
    /// UTC, `+00:00`) gives the `UTC` zone, another offset an unnamed fixed zone.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let t = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
        Some(GoTime::with_offset(t))
    }

    fn with_offset(t: OffsetDateTime) -> Self {
        let zone = if t.offset().is_utc() { "UTC" } else { "" };
        GoTime {
            t,
            zone: Arc::from(zone),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.t.unix_timestamp() == ZERO_UNIX && self.t.nanosecond() == 0
    }

    /// Same instant and same zone (Go's `==` on `time.Time` in templates).
    pub fn same_value(&self, o: &GoTime) -> bool {
        self.t == o.t && self.t.offset() == o.t.offset()
    }

    pub fn to_go_string(&self) -> String {
        self.format("2006-01-02 15:04:05.999999999 -0700 MST")
    }

    pub fn to_rfc3339_nano(&self) -> String {
        self.format("2006-01-02T15:04:05.999999999Z07:00")
    }

    /// `Format(layout)`.
    pub fn format(&self, layout: &str) -> String {
        let t = self.t;
        let mut out = String::new();
        for chunk in chunks(layout) {
            match chunk {
                Chunk::Lit(s) => out.push_str(s),
                Chunk::Std(std) => format_std(&mut out, std, t, &self.zone),
            }
        }
        out
    }
}

fn month_index(t: OffsetDateTime) -> usize {
    usize::from(u8::from(t.month())) - 1
}

fn pad(out: &mut String, v: i64, width: usize) {
    if v < 0 {
        out.push('-');
    }
    out.push_str(&format!("{:0width$}", v.unsigned_abs()));
}

fn format_std(out: &mut String, std: Std, t: OffsetDateTime, zone: &str) {
    let hour = i64::from(t.hour());
    let offset = t.offset().whole_seconds();
    match std {
        Std::LongMonth => out.push_str(MONTHS[month_index(t)]),
        Std::Month => out.push_str(&MONTHS[month_index(t)][..3]),
        Std::NumMonth => pad(out, month_index(t) as i64 + 1, 1),
        Std::ZeroMonth => pad(out, month_index(t) as i64 + 1, 2),
        Std::LongWeekDay => out.push_str(DAYS[usize::from(t.weekday().number_days_from_sunday())]),
        Std::WeekDay => {
            out.push_str(&DAYS[usize::from(t.weekday().number_days_from_sunday())][..3])
        }
        Std::Day => pad(out, i64::from(t.day()), 1),
        Std::UnderDay => {
            if t.day() < 10 {
                out.push(' ');
            }
            pad(out, i64::from(t.day()), 1)
        }
        Std::ZeroDay => pad(out, i64::from(t.day()), 2),
        Std::YearDay(w) => pad(out, i64::from(t.ordinal()), w),
        Std::Hour => pad(out, hour, 2),
        Std::Hour12(w) => {
            let h = match hour % 12 {
                0 => 12,
                h => h,
            };
            pad(out, h, w)
        }
        Std::Minute(w) => pad(out, i64::from(t.minute()), w),
        Std::Second(w) => pad(out, i64::from(t.second()), w),
        Std::LongYear => pad(out, i64::from(t.year()), 4),
        Std::Year => pad(out, i64::from(t.year()).rem_euclid(100), 2),
        Std::PM(upper) => {
            let s = if hour >= 12 { "PM" } else { "AM" };
            out.push_str(&if upper {
                s.to_string()
            } else {
                s.to_lowercase()
            })
        }
        Std::Tz => {
            if zone.is_empty() {
                let m = offset / 60;
                out.push(if m < 0 { '-' } else { '+' });
                pad(out, i64::from(m.abs() / 60), 2);
                pad(out, i64::from(m.abs() % 60), 2);
            } else {
                out.push_str(zone)
            }
        }
        Std::Iso {
            z,
            colon,
            secs,
            mins,
        } => {
            if z && offset == 0 {
                out.push('Z');
                return;
            }
            let a = offset.abs();
            out.push(if offset < 0 { '-' } else { '+' });
            pad(out, i64::from(a / 3600), 2);
            if mins {
                if colon {
                    out.push(':');
                }
                pad(out, i64::from(a / 60 % 60), 2);
            }
            if secs {
                if colon {
                    out.push(':');
                }
                pad(out, i64::from(a % 60), 2);
            }
        }
        Std::Frac { sep, digits, trim } => {
            let ns = format!("{:09}", t.nanosecond());
            let mut d = ns[..digits.min(9)].to_string();
            if trim {
                d = d.trim_end_matches('0').to_string();
                if d.is_empty() {
                    return;
                }
            }
            out.push(sep);
            out.push_str(&d);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    YearDay(usize),
    Hour,
    Hour12(usize),
    Minute(usize),
    Second(usize),
    LongYear,
    Year,
    PM(bool),
    Tz,
    Iso {
        z: bool,
        colon: bool,
        secs: bool,
        mins: bool,
    },
    Frac {
        sep: char,
        digits: usize,
        trim: bool,
    },
}

enum Chunk<'a> {
    Lit(&'a str),
    Std(Std),
}

/// Split a Go layout into literal text and layout elements (Go's `nextStdChunk`).
fn chunks(layout: &str) -> Vec<Chunk<'_>> {
    let b = layout.as_bytes();
    let mut out = Vec::new();
    let mut lit = 0;
    let mut i = 0;
    while i < b.len() {
        let rest = &layout[i..];
        let found: Option<(Std, usize)> = match b[i] {
            b'J' if rest.starts_with("January") => Some((Std::LongMonth, 7)),
            b'J' if rest.starts_with("Jan") => Some((Std::Month, 3)),
            b'M' if rest.starts_with("Monday") => Some((Std::LongWeekDay, 6)),
            b'M' if rest.starts_with("Mon") => Some((Std::WeekDay, 3)),
            b'M' if rest.starts_with("MST") => Some((Std::Tz, 3)),
            b'0' if rest.starts_with("002") => Some((Std::YearDay(3), 3)),
            b'0' => match b.get(i + 1) {
                Some(b'1') => Some((Std::ZeroMonth, 2)),
                Some(b'2') => Some((Std::ZeroDay, 2)),
                Some(b'3') => Some((Std::Hour12(2), 2)),
                Some(b'4') => Some((Std::Minute(2), 2)),
                Some(b'5') => Some((Std::Second(2), 2)),
                Some(b'6') => Some((Std::Year, 2)),
                _ => None,
            },
            b'1' if rest.starts_with("15") => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if rest.starts_with("2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            b'_' if rest.starts_with("_2006") => None,
            b'_' if rest.starts_with("__2") => Some((Std::YearDay(1), 3)),
            b'_' if rest.starts_with("_2") => Some((Std::UnderDay, 2)),
            b'3' => Some((Std::Hour12(1), 1)),
            b'4' => Some((Std::Minute(1), 1)),
            b'5' => Some((Std::Second(1), 1)),
            b'P' if rest.starts_with("PM") => Some((Std::PM(true), 2)),
            b'p' if rest.starts_with("pm") => Some((Std::PM(false), 2)),
            b'-' | b'Z' => {
                let z = b[i] == b'Z';
                let body = &rest[1..];
                let iso = |colon, mins, secs| Std::Iso {
                    z,
                    colon,
                    secs,
                    mins,
                };
                if body.starts_with("07:00:00") {
                    Some((iso(true, true, true), 9))
                } else if body.starts_with("070000") {
                    Some((iso(false, true, true), 7))
                } else if body.starts_with("07:00") {
                    Some((iso(true, true, false), 6))
                } else if body.starts_with("0700") {
                    Some((iso(false, true, false), 5))
                } else if body.starts_with("07") {
                    Some((iso(false, false, false), 3))
                } else {
                    None
                }
            }
            c @ (b'.' | b',') if matches!(b.get(i + 1), Some(b'0' | b'9')) => {
                let d = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == d {
                    j += 1;
                }
                if b.get(j).is_some_and(u8::is_ascii_digit) {
                    None
                } else {
                    Some((
                        Std::Frac {
                            sep: c as char,
                            digits: j - i - 1,
                            trim: d == b'9',
                        },
                        j - i,
                    ))
                }
            }
            _ => None,
        };
        match found {
            Some((std, len)) => {
                if lit < i {
                    out.push(Chunk::Lit(&layout[lit..i]));
                }
                out.push(Chunk::Std(std));
                i += len;
                lit = i;
            }
            None => {
                i += layout[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    if lit < layout.len() {
        out.push(Chunk::Lit(&layout[lit..]));
    }
    out
}

/// `time.Parse(layout, value)`: the numeric layout elements, month/day names, `PM`,
/// numeric zones and zone abbreviations (`UTC`/`GMT`, others as UTC). The result is in
/// UTC unless the value carries an offset.
pub fn parse(layout: &str, value: &str) -> Result<GoTime, String> {
    let err = || format!("parsing time {value:?} as {layout:?}: cannot parse");
    let mut v = value;
    let (mut year, mut month, mut day, mut hour, mut min, mut sec, mut nanos) =
        (1i32, 1u8, 1u8, 0u8, 0u8, 0u8, 0u32);
    let mut pm: Option<bool> = None;
    let mut offset: Option<i32> = None;
    let num = |v: &mut &str, min: usize, max: usize| -> Result<i64, String> {
        let n = v.bytes().take(max).take_while(u8::is_ascii_digit).count();
        if n < min {
            return Err(err());
        }
        let (d, rest) = v.split_at(n);
        *v = rest;
        d.parse::<i64>().map_err(|_| err())
    };
    let name = |v: &mut &str, names: &[&str], short: bool| -> Result<usize, String> {
        for (i, n) in names.iter().enumerate() {
            let n = if short { &n[..3] } else { n };
            if v.get(..n.len()).is_some_and(|p| p.eq_ignore_ascii_case(n)) {
                *v = &v[n.len()..];
                return Ok(i);
            }
        }
        Err(err())
    };
    for chunk in chunks(layout) {
        match chunk {
            Chunk::Lit(l) => {
                v = v.strip_prefix(l).ok_or_else(err)?;
            }
            Chunk::Std(std) => match std {
                Std::LongYear => year = num(&mut v, 4, 4)? as i32,
                Std::Year => {
                    let y = num(&mut v, 2, 2)? as i32;
                    year = if y >= 69 { 1900 + y } else { 2000 + y };
                }
                Std::LongMonth => month = name(&mut v, &MONTHS, false)? as u8 + 1,
                Std::Month => month = name(&mut v, &MONTHS, true)? as u8 + 1,
                Std::NumMonth => month = num(&mut v, 1, 2)? as u8,
                Std::ZeroMonth => month = num(&mut v, 2, 2)? as u8,
                Std::LongWeekDay => {
                    name(&mut v, &DAYS, false)?;
                }
                Std::WeekDay => {
                    name(&mut v, &DAYS, true)?;
                }
                Std::Day => day = num(&mut v, 1, 2)? as u8,
                Std::UnderDay => {
                    v = v.strip_prefix(' ').unwrap_or(v);
                    day = num(&mut v, 1, 2)? as u8
                }
                Std::ZeroDay => day = num(&mut v, 2, 2)? as u8,
                Std::YearDay(w) => {
                    num(&mut v, w, 3)?;
                }
                Std::Hour => hour = num(&mut v, 2, 2)? as u8,
                Std::Hour12(w) => hour = num(&mut v, w, 2)? as u8,
                Std::Minute(w) => min = num(&mut v, w, 2)? as u8,
                Std::Second(w) => {
                    sec = num(&mut v, w, 2)? as u8;
                    // Go accepts a fractional second after seconds even if the layout has none.
                    if v.starts_with('.') && v[1..].starts_with(|c: char| c.is_ascii_digit()) {
                        v = &v[1..];
                        let n = v.bytes().take_while(u8::is_ascii_digit).count();
                        nanos = frac_nanos(&v[..n]);
                        v = &v[n..];
                    }
                }
                Std::Frac { sep, digits, trim } => {
                    if let Some(rest) = v.strip_prefix(sep) {
                        let n = rest.bytes().take_while(u8::is_ascii_digit).count();
                        if !trim && n != digits {
                            return Err(err());
                        }
                        nanos = frac_nanos(&rest[..n]);
                        v = &rest[n..];
                    } else if !trim {
                        return Err(err());
                    }
                }
                Std::PM(upper) => {
                    let (a, p) = if upper { ("AM", "PM") } else { ("am", "pm") };
                    if let Some(r) = v.strip_prefix(p) {
                        pm = Some(true);
                        v = r;
                    } else if let Some(r) = v.strip_prefix(a) {
                        pm = Some(false);
                        v = r;
                    } else {
                        return Err(err());
                    }
                }
                Std::Tz => {
                    let n = v.bytes().take_while(u8::is_ascii_uppercase).count();
                    if n < 3 {
                        return Err(err());
                    }
                    v = &v[n..];
                }
                Std::Iso {
                    z,
                    colon,
                    secs,
                    mins,
                } => {
                    if z {
                        if let Some(r) = v.strip_prefix('Z') {
                            v = r;
                            offset = Some(0);
                            continue;
                        }
                    }
                    let sign = match v.as_bytes().first() {
                        Some(b'+') => 1,
                        Some(b'-') => -1,
                        _ => return Err(err()),
                    };
                    v = &v[1..];
                    let mut o = num(&mut v, 2, 2)? * 3600;
                    if mins {
                        if colon {
                            v = v.strip_prefix(':').ok_or_else(err)?;
                        }
                        o += num(&mut v, 2, 2)? * 60;
                    }
                    if secs {
                        if colon {
                            v = v.strip_prefix(':').ok_or_else(err)?;
                        }
                        o += num(&mut v, 2, 2)?;
                    }
                    offset = Some(sign * o as i32);
                }
            },
        }
    }
    if !v.is_empty() {
        return Err(format!(
            "parsing time {value:?} as {layout:?}: extra text: {v:?}"
        ));
    }
    match pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    let month = time::Month::try_from(month).map_err(|e| e.to_string())?;
    let date = time::Date::from_calendar_date(year, month, day).map_err(|e| e.to_string())?;
    let tm = time::Time::from_hms_nano(hour, min, sec, nanos).map_err(|e| e.to_string())?;
    let off = UtcOffset::from_whole_seconds(offset.unwrap_or(0)).map_err(|e| e.to_string())?;
    Ok(GoTime::with_offset(
        time::PrimitiveDateTime::new(date, tm).assume_offset(off),
    ))
}

fn frac_nanos(digits: &str) -> u32 {
    let mut d: String = digits.chars().take(9).collect();
    while d.len() < 9 {
        d.push('0');
    }
    d.parse().unwrap_or(0)
}

/// Go's `Duration.String()`: `1h30m1.5s`, `2m0s`, `1.5ms`, `0s`.
pub fn duration_string(d: i64) -> String {
    let neg = d < 0;
    let u = d.unsigned_abs();
    let mut s = if u < 1_000_000_000 {
        if u == 0 {
            return "0s".into();
        } else if u < 1_000 {
            format!("{u}ns")
        } else if u < 1_000_000 {
            format!("{}µs", frac(u, 3))
        } else {
            format!("{}ms", frac(u, 6))
        }
    } else {
        let secs = u / 1_000_000_000;
        let mut out = format!("{}s", frac_part(secs % 60, u % 1_000_000_000, 9));
        let mins = secs / 60;
        if mins > 0 {
            out = format!("{}m{out}", mins % 60);
            let hours = mins / 60;
            if hours > 0 {
                out = format!("{hours}h{out}");
            }
        }
        out
    };
    if neg {
        s.insert(0, '-');
    }
    s
}

/// `v / 10^prec` with the fraction's trailing zeros removed.
fn frac(v: u64, prec: u32) -> String {
    let p = 10u64.pow(prec);
    frac_part(v / p, v % p, prec as usize)
}

fn frac_part(int: u64, fraction: u64, width: usize) -> String {
    if fraction == 0 {
        return int.to_string();
    }
    let f = format!("{fraction:0width$}");
    format!("{int}.{}", f.trim_end_matches('0'))
}

fn int_arg(args: &[Value], i: usize) -> Result<i64, String> {
    match args.get(i) {
        Some(Value::Int(n)) | Some(Value::Duration(n)) => Ok(*n),
        Some(v) => Err(format!(
            "wrong type for value; expected time.Duration; got {}",
            v.type_name()
        )),
        None => Err("wrong number of args".into()),
    }
}

fn time_arg(args: &[Value]) -> Result<&GoTime, String> {
    match args.first() {
        Some(Value::Time(t)) => Ok(t),
        Some(v) => Err(format!(
            "wrong type for value; expected time.Time; got {}",
            v.type_name()
        )),
        None => Err("wrong number of args".into()),
    }
}

fn want(args: &[Value], n: usize, name: &str) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

/// A method of `time.Time`; `None` when there is no such method.
pub fn time_method(t: &GoTime, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
    let nullary = |v: Value| want(args, 0, name).map(|_| v);
    let tt = t.t;
    Some(match name {
        "Format" => want(args, 1, name).and_then(|_| match &args[0] {
            Value::Str(l) => Ok(Value::from(t.format(l))),
            v => Err(format!(
                "wrong type for value; expected string; got {}",
                v.type_name()
            )),
        }),
        "String" => nullary(Value::from(t.to_go_string())),
        "UTC" | "Local" => nullary(Value::Time(GoTime::utc(tt))),
        "In" => want(args, 1, name).and_then(|_| match &args[0] {
            Value::Struct(s) if s.ty == "*time.Location" => match s.fields.first() {
                Some((_, Value::Str(n))) => in_zone(t, n),
                _ => Err("invalid location".into()),
            },
            v => Err(format!(
                "wrong type for value; expected *time.Location; got {}",
                v.type_name()
            )),
        }),
        "Location" => nullary(Value::structure(
            "*time.Location",
            vec![("name", Value::from(zone_name(t)))],
        )),
        "Unix" => nullary(Value::Int(tt.unix_timestamp())),
        "UnixMilli" => nullary(Value::Int((tt.unix_timestamp_nanos() / 1_000_000) as i64)),
        "UnixMicro" => nullary(Value::Int((tt.unix_timestamp_nanos() / 1_000) as i64)),
        "UnixNano" => nullary(Value::Int(tt.unix_timestamp_nanos() as i64)),
        "IsZero" => nullary(Value::Bool(t.is_zero())),
        "Year" => nullary(Value::Int(i64::from(tt.year()))),
        "Month" => nullary(Value::from(MONTHS[month_index(tt)])),
        "Day" => nullary(Value::Int(i64::from(tt.day()))),
        "Hour" => nullary(Value::Int(i64::from(tt.hour()))),
        "Minute" => nullary(Value::Int(i64::from(tt.minute()))),
        "Second" => nullary(Value::Int(i64::from(tt.second()))),
        "Nanosecond" => nullary(Value::Int(i64::from(tt.nanosecond()))),
        "YearDay" => nullary(Value::Int(i64::from(tt.ordinal()))),
        "Weekday" => nullary(Value::from(
            DAYS[usize::from(tt.weekday().number_days_from_sunday())],
        )),
        "Add" => want(args, 1, name).and_then(|_| {
            let d = int_arg(args, 0)?;
            Ok(Value::Time(GoTime {
                t: tt.saturating_add(Duration::nanoseconds(d)),
                zone: t.zone.clone(),
            }))
        }),
        "Sub" => want(args, 1, name).and_then(|_| {
            let o = time_arg(args)?;
            let d = (tt - o.t).whole_nanoseconds();
            Ok(Value::Duration(
                d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            ))
        }),
        "Before" => want(args, 1, name).and_then(|_| Ok(Value::Bool(tt < time_arg(args)?.t))),
        "After" => want(args, 1, name).and_then(|_| Ok(Value::Bool(tt > time_arg(args)?.t))),
        "Equal" => want(args, 1, name).and_then(|_| Ok(Value::Bool(tt == time_arg(args)?.t))),
        "Truncate" | "Round" => want(args, 1, name).and_then(|_| {
            let d = i128::from(int_arg(args, 0)?);
            if d <= 0 {
                return Ok(Value::Time(t.clone()));
            }
            let ns = tt.unix_timestamp_nanos() - i128::from(ZERO_UNIX) * 1_000_000_000;
            let mut r = ns.rem_euclid(d);
            if name == "Round" && r + r >= d {
                r -= d;
            }
            Ok(Value::Time(GoTime {
                t: tt.saturating_sub(Duration::nanoseconds(r as i64)),
                zone: t.zone.clone(),
            }))
        }),
        _ => return None,
    })
}

fn zone_name(t: &GoTime) -> String {
    if &*t.zone == "UTC" {
        "UTC".into()
    } else {
        String::new()
    }
}

/// A method of `time.Duration`.
pub fn duration_method(d: i64, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
    let nullary = |v: Value| want(args, 0, name).map(|_| v);
    let f = d as f64;
    Some(match name {
        "String" => nullary(Value::from(duration_string(d))),
        "Hours" => nullary(Value::Float(f / 3.6e12)),
        "Minutes" => nullary(Value::Float(f / 6e10)),
        "Seconds" => nullary(Value::Float(f / 1e9)),
        "Milliseconds" => nullary(Value::Int(d / 1_000_000)),
        "Microseconds" => nullary(Value::Int(d / 1_000)),
        "Nanoseconds" => nullary(Value::Int(d)),
        "Abs" => nullary(Value::Duration(d.saturating_abs())),
        "Truncate" | "Round" => want(args, 1, name).and_then(|_| {
            let m = int_arg(args, 0)?;
            if m <= 0 {
                return Ok(Value::Duration(d));
            }
            Ok(Value::Duration(if name == "Round" {
                round_duration(d, m)
            } else {
                d - d % m
            }))
        }),
        _ => return None,
    })
}

/// Go's `Duration.Round` for `m > 0`: halfway rounds away from zero, and a result
/// beyond the range saturates at the largest or smallest duration.
fn round_duration(d: i64, m: i64) -> i64 {
    let r = d % m;
    let truncated = d - r;
    if r.unsigned_abs() * 2 < m.unsigned_abs() {
        truncated
    } else if d < 0 {
        truncated.checked_sub(m).unwrap_or(i64::MIN)
    } else {
        truncated.checked_add(m).unwrap_or(i64::MAX)
    }
}

/// `t` shown in the IANA zone `name` (`tz`, `In`): `UTC`, `Local` (this process runs
/// on UTC) or an IANA name, looked up in the system's zoneinfo or, where there is none (the
/// slim container image), in the tz database built into the binary.
pub fn in_zone(t: &GoTime, name: &str) -> Result<Value, String> {
    if name.is_empty() || name == "UTC" || name == "Local" {
        return Ok(Value::Time(GoTime::utc(t.t)));
    }
    let unknown = || format!("unknown time zone {name}");
    let tz = jiff::tz::TimeZone::get(name).map_err(|_| unknown())?;
    let ts = jiff::Timestamp::from_second(t.t.unix_timestamp()).map_err(|_| unknown())?;
    let info = tz.to_offset_info(ts);
    let offset =
        UtcOffset::from_whole_seconds(info.offset().seconds()).map_err(|e| e.to_string())?;
    Ok(Value::Time(GoTime {
        t: t.t.to_offset(offset),
        zone: Arc::from(info.abbreviation()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> GoTime {
        GoTime::parse_rfc3339(s).expect("time")
    }

    /// Go's `Duration.Round`/`Truncate`, including results out of range (which used to
    /// overflow: a panic in debug builds, a wrapped value in release).
    #[test]
    fn duration_round_and_truncate_like_go() {
        let round = |d: i64, m: i64| duration_method(d, "Round", &[Value::Int(m)]);
        let trunc = |d: i64, m: i64| duration_method(d, "Truncate", &[Value::Int(m)]);
        let dur = |v: Option<Result<Value, String>>| match v {
            Some(Ok(Value::Duration(d))) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(dur(round(1_500, 1_000)), 2_000);
        assert_eq!(dur(round(1_499, 1_000)), 1_000);
        assert_eq!(dur(round(-1_500, 1_000)), -2_000);
        assert_eq!(dur(round(-1_499, 1_000)), -1_000);
        assert_eq!(dur(round(7, 0)), 7);
        assert_eq!(dur(trunc(-1_999, 1_000)), -1_000);
        // m larger than d: rounds up to m (r * 2 overflowed i64 here)
        assert_eq!(
            dur(round(5_000_000_000_000_000_000, 6_000_000_000_000_000_000)),
            6_000_000_000_000_000_000
        );
        // out of range: Go's maxDuration / minDuration
        assert_eq!(
            dur(round(9_000_000_000_000_000_000, 6_000_000_000_000_000_000)),
            i64::MAX
        );
        assert_eq!(
            dur(round(-9_000_000_000_000_000_000, 6_000_000_000_000_000_000)),
            i64::MIN
        );
        assert_eq!(dur(round(i64::MAX, i64::MAX)), i64::MAX);
        assert_eq!(dur(round(i64::MIN, i64::MAX)), -i64::MAX);
        assert_eq!(dur(trunc(i64::MIN, i64::MAX)), -i64::MAX);
    }

    #[test]
    fn prints_like_go() {
        assert_eq!(
            t("2024-05-01T10:00:00.5Z").to_go_string(),
            "2024-05-01 10:00:00.5 +0000 UTC"
        );
        assert_eq!(
            t("2024-05-01T12:00:00+02:00").to_go_string(),
            "2024-05-01 12:00:00 +0200 +0200"
        );
        assert_eq!(
            GoTime::zero().to_go_string(),
            "0001-01-01 00:00:00 +0000 UTC"
        );
        assert!(GoTime::zero().is_zero());
    }

    #[test]
    fn formats_layouts() {
        let x = t("2024-03-04T05:06:07.089Z");
        assert_eq!(x.format("2006-01-02 15:04:05"), "2024-03-04 05:06:07");
        assert_eq!(
            x.format("Mon Jan _2 3:4:5 PM MST 06 .000 .999"),
            "Mon Mar  4 5:6:7 AM UTC 24 .089 .089"
        );
        assert_eq!(x.format(time_layout_rfc3339()), "2024-03-04T05:06:07Z");
        assert_eq!(
            t("2024-03-04T05:06:07-07:30").format("Z07:00 -0700 -07"),
            "-07:30 -0730 -07"
        );
        assert_eq!(x.format("January Monday 002"), "March Monday 064");
    }

    fn time_layout_rfc3339() -> &'static str {
        "2006-01-02T15:04:05Z07:00"
    }

    #[test]
    fn parses_layouts() {
        let p = parse("2006-01-02", "2024-05-01").unwrap();
        assert_eq!(p.to_go_string(), "2024-05-01 00:00:00 +0000 UTC");
        let p = parse(time_layout_rfc3339(), "2024-05-01T10:00:00+02:00").unwrap();
        assert_eq!(p.to_go_string(), "2024-05-01 10:00:00 +0200 +0200");
        let p = parse("Jan 2 2006 3:04PM", "Feb 3 2021 1:05PM").unwrap();
        assert_eq!(p.format("15:04"), "13:05");
        assert!(parse("2006-01-02", "2024-5-01").is_err());
        assert!(parse("2006-01-02", "2024-05-01x").is_err());
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(duration_string(0), "0s");
        assert_eq!(
            duration_string(5_400_000_000_000 + 1_500_000_000),
            "1h30m1.5s"
        );
        assert_eq!(duration_string(120_000_000_000), "2m0s");
        assert_eq!(duration_string(1_500_000), "1.5ms");
        assert_eq!(duration_string(1_500), "1.5µs");
        assert_eq!(duration_string(-3_600_000_000_000), "-1h0m0s");
    }

    #[test]
    fn converts_to_iana_zones() {
        let x = t("2024-07-01T10:00:00Z");
        match in_zone(&x, "Europe/Paris") {
            Ok(Value::Time(p)) => assert_eq!(p.to_go_string(), "2024-07-01 12:00:00 +0200 CEST"),
            other => panic!("{other:?}"),
        }
        assert!(in_zone(&x, "Nowhere/Land").is_err());
        assert!(in_zone(&x, "../etc/passwd").is_err());
    }
}
