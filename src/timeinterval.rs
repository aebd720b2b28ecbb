//! Time intervals (Alertmanager's `time_intervals` and deprecated `mute_time_intervals`):
//! the config model, validation with Alertmanager's rules and messages, [`TimeIntervals`]
//! to ask whether an instant lies in a named interval, and [`muted_by`] for routes with
//! `mute_time_intervals` / `active_time_intervals`.
//!
//! Semantics follow `timeinterval/timeinterval.go`: an interval matches if any of its specs
//! matches; a spec matches if all its given fields match, each evaluated on the wall clock
//! of the spec's `location` (default UTC). IANA zones come from the tz database compiled
//! into the binary (jiff's bundled copy), so they work without tzdata on the host.

use crate::config::{Config, RouteConfig};
use crate::route::Route;
use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::Spanned;
use std::collections::{BTreeSet, HashMap};
use time::OffsetDateTime;

/// One named interval of `time_intervals:` (or `mute_time_intervals:`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalConfig {
    pub name: Spanned<String>,
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalSpec>,
}

/// One spec of an interval, as written. A field left out (or `null`) matches any time;
/// an empty list matches none (as in Alertmanager).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalSpec {
    #[serde(default)]
    pub times: Option<Vec<TimeRangeConfig>>,
    #[serde(default)]
    pub weekdays: Option<Vec<Scalar>>,
    #[serde(default)]
    pub days_of_month: Option<Vec<Scalar>>,
    #[serde(default)]
    pub months: Option<Vec<Scalar>>,
    #[serde(default)]
    pub years: Option<Vec<Scalar>>,
    /// IANA name, `Local` or `UTC` (default UTC).
    #[serde(default)]
    pub location: Option<String>,
}

/// `{start_time: "HH:MM", end_time: "HH:MM"}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRangeConfig {
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
}

/// A range written as a YAML scalar: `monday:friday`, `'1:5'`, `-1`, or a bare number
/// (`2026`), which Go's YAML decoder also reads as a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Inclusive range of integers.
type Range = (i64, i64);

/// A validated spec, ready to evaluate.
#[derive(Debug, Clone)]
struct Spec {
    /// Minutes of the day, start inclusive, end exclusive.
    times: Option<Vec<Range>>,
    /// 0 = Sunday.
    weekdays: Option<Vec<Range>>,
    days_of_month: Option<Vec<Range>>,
    months: Option<Vec<Range>>,
    years: Option<Vec<Range>>,
    location: TimeZone,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Go's `strconv.Atoi` (optional sign, decimal digits), with its error text.
fn atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {s:?}: invalid syntax"));
    }
    s.parse()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: value out of range"))
}

/// `a` or `a:b` (lowercased first), each member read by `member`.
fn parse_range(input: &str, member: impl Fn(&str) -> Result<i64, String>) -> Result<Range, String> {
    let s = input.to_lowercase();
    if s.contains(':') {
        let parts: Vec<&str> = s.split(':').collect();
        let [a, b] = parts.as_slice() else {
            return Err(format!("couldn't parse range {s}, invalid format"));
        };
        Ok((member(a)?, member(b)?))
    } else {
        let v = member(&s)?;
        Ok((v, v))
    }
}

fn weekday_range(s: &str) -> Result<Range, String> {
    let (b, e) = parse_range(s, |m| {
        WEEKDAYS
            .iter()
            .position(|d| *d == m)
            .map(|i| i as i64)
            .ok_or_else(|| format!("{m} is not a valid weekday"))
    })?;
    if b > e {
        return Err("start day cannot be before end day".into());
    }
    Ok((b, e))
}

fn day_of_month_range(s: &str) -> Result<Range, String> {
    let (b, e) = parse_range(s, atoi)?;
    for d in [b, e] {
        if d == 0 || !(-31..=31).contains(&d) {
            return Err(format!("{d} is not a valid day of the month: out of range"));
        }
    }
    if b < 0 && e > 0 {
        return Err("end day must be negative if start day is negative".into());
    }
    let norm = |d: i64| if d < 0 { 28 + d } else { d };
    if norm(b) > norm(e) {
        return Err(format!("end day {e} is always before start day {b}"));
    }
    Ok((b, e))
}

fn month_name(n: i64) -> &'static str {
    usize::try_from(n - 1)
        .ok()
        .and_then(|i| MONTHS.get(i))
        .copied()
        .unwrap_or("")
}

fn month_range(s: &str) -> Result<Range, String> {
    // Like Alertmanager, numbers are not range-checked (13 is accepted and never matches).
    let (b, e) = parse_range(s, |m| match MONTHS.iter().position(|x| *x == m) {
        Some(i) => Ok(i as i64 + 1),
        None => atoi(m).map_err(|_| format!("{m} is not a valid month")),
    })?;
    if b > e {
        return Err(format!(
            "end month {} is before start month {}",
            month_name(e),
            month_name(b)
        ));
    }
    Ok((b, e))
}

fn year_range(s: &str) -> Result<Range, String> {
    let (b, e) = parse_range(s, atoi)?;
    if b > e {
        return Err(format!("end year {e} is before start year {b}"));
    }
    Ok((b, e))
}

/// `HH:MM` (00:00–23:59, or 24:00) to minutes of the day.
fn parse_clock(s: &str) -> Result<i64, String> {
    let bad = || format!("couldn't parse timestamp {s}, invalid format");
    if s == "24:00" {
        return Ok(24 * 60);
    }
    let b = s.as_bytes();
    if b.len() != 5
        || b[2] != b':'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_digit())
    {
        return Err(bad());
    }
    let num = |x: &[u8]| x.iter().fold(0i64, |n, c| n * 10 + i64::from(c - b'0'));
    let (h, m) = (num(&b[..2]), num(&b[3..]));
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn time_range(t: &TimeRangeConfig) -> Result<Range, String> {
    let (Some(start), Some(end)) = (
        t.start_time.as_deref().filter(|s| !s.is_empty()),
        t.end_time.as_deref().filter(|s| !s.is_empty()),
    ) else {
        return Err("both start and end times must be provided".into());
    };
    let (start, end) = (parse_clock(start)?, parse_clock(end)?);
    if start >= end {
        return Err("start time cannot be equal or greater than end time".into());
    }
    Ok((start, end))
}

/// Go's `time.LoadLocation`: `""` and `UTC` are UTC, `Local` the system zone, anything
/// else an IANA name (exact case).
fn location(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        _ if name.contains("..") || name.starts_with(['/', '\\']) => {
            Err("time: invalid location name".into())
        }
        _ => match TimeZone::get(name) {
            Ok(tz) if tz.iana_name() == Some(name) => Ok(tz),
            _ => Err(format!("unknown time zone {name}")),
        },
    }
}

fn ranges(
    field: &'static str,
    v: &Option<Vec<Scalar>>,
    parse: fn(&str) -> Result<Range, String>,
) -> Result<Option<Vec<Range>>, (&'static str, String)> {
    v.as_ref()
        .map(|items| items.iter().map(|s| parse(&s.0)).collect())
        .transpose()
        .map_err(|m| (field, m))
}

impl TimeIntervalSpec {
    fn compile(&self) -> Result<Spec, (&'static str, String)> {
        Ok(Spec {
            times: self
                .times
                .as_ref()
                .map(|ts| ts.iter().map(time_range).collect())
                .transpose()
                .map_err(|m| ("times", m))?,
            weekdays: ranges("weekdays", &self.weekdays, weekday_range)?,
            days_of_month: ranges("days_of_month", &self.days_of_month, day_of_month_range)?,
            months: ranges("months", &self.months, month_range)?,
            years: ranges("years", &self.years, year_range)?,
            location: match &self.location {
                Some(l) => location(l).map_err(|m| ("location", m))?,
                None => TimeZone::UTC,
            },
        })
    }
}

fn any_contains(ranges: &Option<Vec<Range>>, v: i64) -> bool {
    ranges
        .as_ref()
        .is_none_or(|rs| rs.iter().any(|&(b, e)| b <= v && v <= e))
}

impl Spec {
    fn contains(&self, t: OffsetDateTime) -> bool {
        let Ok(ts) = jiff::Timestamp::from_nanosecond(t.unix_timestamp_nanos()) else {
            return false;
        };
        let dt = self.location.to_datetime(ts);
        let minute = i64::from(dt.hour()) * 60 + i64::from(dt.minute());
        if let Some(times) = &self.times {
            if !times.iter().any(|&(s, e)| s <= minute && minute < e) {
                return false;
            }
        }
        if let Some(days) = &self.days_of_month {
            let dim = i64::from(dt.date().days_in_month());
            let day = i64::from(dt.day());
            let hit = days.iter().any(|&(b, e)| {
                let begin = if b < 0 { dim + b + 1 } else { b };
                let end = if e < 0 { dim + e + 1 } else { e };
                if begin > dim {
                    return false;
                }
                let (begin, end) = (begin.clamp(-dim, dim), end.clamp(-dim, dim));
                begin <= day && day <= end
            });
            if !hit {
                return false;
            }
        }
        any_contains(&self.months, i64::from(dt.month()))
            && any_contains(
                &self.weekdays,
                i64::from(dt.weekday().to_sunday_zero_offset()),
            )
            && any_contains(&self.years, i64::from(dt.year()))
    }
}

/// Validate `time_intervals` and `mute_time_intervals` (names unique across both) and the
/// interval references of the route tree rooted at `route`. Returns the message and, when
/// known, the line and column of the interval's name.
pub fn validate(
    time_intervals: &[TimeIntervalConfig],
    mute_time_intervals: &[TimeIntervalConfig],
    route: &RouteConfig,
) -> Result<(), (Option<(u64, u64)>, String)> {
    let mut names = BTreeSet::new();
    for (section, list) in [
        ("mute_time_intervals", mute_time_intervals),
        ("time_intervals", time_intervals),
    ] {
        for ti in list {
            let name = &ti.name.value;
            let at = Some((ti.name.referenced.line(), ti.name.referenced.column()));
            let what = if section == "time_intervals" {
                "time interval"
            } else {
                "mute time interval"
            };
            if name.is_empty() {
                return Err((at, format!("{section}: missing name in {what}")));
            }
            if !names.insert(name.as_str()) {
                return Err((at, format!("{section}: {what} {name:?} is not unique")));
            }
            for (i, spec) in ti.time_intervals.iter().enumerate() {
                spec.compile().map_err(|(field, m)| {
                    (
                        at,
                        format!("{section}: {what} {name:?} time_intervals[{i}].{field}: {m}"),
                    )
                })?;
            }
        }
    }
    if !route.mute_time_intervals.is_empty() {
        return Err((
            None,
            "route: root route must not have any mute time intervals".into(),
        ));
    }
    if !route.active_time_intervals.is_empty() {
        return Err((
            None,
            "route: root route must not have any active time intervals".into(),
        ));
    }
    check_route(route, "route", &names).map_err(|m| (None, m))
}

fn check_route(r: &RouteConfig, path: &str, names: &BTreeSet<&str>) -> Result<(), String> {
    for (field, list) in [
        ("active_time_intervals", &r.active_time_intervals),
        ("mute_time_intervals", &r.mute_time_intervals),
    ] {
        if let Some(n) = list.iter().find(|n| !names.contains(n.as_str())) {
            return Err(format!(
                "{path}.{field}: undefined time interval {n:?} used in route"
            ));
        }
    }
    r.routes
        .iter()
        .enumerate()
        .try_for_each(|(i, c)| check_route(c, &format!("{path}.routes[{i}]"), names))
}

/// Every named interval of a configuration, ready to evaluate.
#[derive(Debug, Clone, Default)]
pub struct TimeIntervals {
    intervals: HashMap<String, Vec<Spec>>,
}

impl TimeIntervals {
    /// Build from a validated configuration (`time_intervals` and `mute_time_intervals`).
    pub fn from_config(cfg: &Config) -> Self {
        let intervals = cfg
            .mute_time_intervals
            .iter()
            .chain(&cfg.time_intervals)
            .map(|ti| {
                let specs = ti
                    .time_intervals
                    .iter()
                    .filter_map(|s| s.compile().ok())
                    .collect();
                (ti.name.value.clone(), specs)
            })
            .collect();
        TimeIntervals { intervals }
    }

    /// Whether `t` lies in the named interval (any of its specs matches). An unknown
    /// name contains nothing.
    pub fn contains(&self, name: &str, t: OffsetDateTime) -> bool {
        self.intervals
            .get(name)
            .is_some_and(|specs| specs.iter().any(|s| s.contains(t)))
    }
}

/// Names of the intervals that mute `route` at `t` (empty = not muted), as Alertmanager's
/// API reports them in `mutedBy`: outside all of its `active_time_intervals`, every active
/// interval name; otherwise the `mute_time_intervals` that contain `t` (each name once).
pub fn muted_by(route: &Route, intervals: &TimeIntervals, t: OffsetDateTime) -> Vec<String> {
    muted_by_names(
        &route.mute_time_intervals,
        &route.active_time_intervals,
        intervals,
        t,
    )
}

/// [`muted_by`] for a route's two lists.
pub fn muted_by_names(
    mute: &[String],
    active: &[String],
    intervals: &TimeIntervals,
    t: OffsetDateTime,
) -> Vec<String> {
    if !active.is_empty() && !active.iter().any(|n| intervals.contains(n, t)) {
        return active.to_vec();
    }
    let mut out: Vec<String> = Vec::new();
    for n in mute {
        if !out.contains(n) && intervals.contains(n, t) {
            out.push(n.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
