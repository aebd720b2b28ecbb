use super::*;
use crate::config::Config;
use std::path::Path;
use time::macros::datetime;

const HEAD: &str = "route:\n  receiver: x\nreceivers:\n  - name: x\n";

fn load(yaml: &str) -> Result<Config, String> {
    Config::load_str(&format!("{HEAD}{yaml}"), "t.yml", Path::new(".")).map_err(|e| e.to_string())
}

/// Intervals from a single interval named `i` with the given spec body (YAML lines
/// indented by 6 spaces).
fn one(spec: &str) -> TimeIntervals {
    let yaml = format!("time_intervals:\n  - name: i\n    time_intervals:\n      - {spec}\n");
    TimeIntervals::from_config(&load(&yaml).unwrap())
}

fn err(spec: &str) -> String {
    let yaml = format!("time_intervals:\n  - name: i\n    time_intervals:\n      - {spec}\n");
    load(&yaml).map(|_| ()).unwrap_err()
}

#[test]
fn times_with_end_exclusive_and_24_00() {
    let ti = one("times: [{start_time: '09:00', end_time: '17:30'}]");
    assert!(!ti.contains("i", datetime!(2026-03-02 08:59:59 UTC)));
    assert!(ti.contains("i", datetime!(2026-03-02 09:00 UTC)));
    assert!(ti.contains("i", datetime!(2026-03-02 17:29:59 UTC)));
    assert!(!ti.contains("i", datetime!(2026-03-02 17:30 UTC)));
    let ti = one("times: [{start_time: '22:00', end_time: '24:00'}, {start_time: '00:00', end_time: '01:00'}]");
    assert!(ti.contains("i", datetime!(2026-03-02 23:59:59 UTC)));
    assert!(ti.contains("i", datetime!(2026-03-03 00:30 UTC)));
    assert!(!ti.contains("i", datetime!(2026-03-03 01:00 UTC)));
    assert!(!ti.contains("nope", datetime!(2026-03-03 00:30 UTC)));
}

#[test]
fn weekdays_case_insensitive_and_ranges() {
    let ti = one("weekdays: ['Monday:FRIDAY']");
    // 2026-03-02 is a Monday
    assert!(ti.contains("i", datetime!(2026-03-02 00:00 UTC)));
    assert!(ti.contains("i", datetime!(2026-03-06 23:59 UTC)));
    assert!(!ti.contains("i", datetime!(2026-03-07 12:00 UTC)));
    assert!(!ti.contains("i", datetime!(2026-03-08 12:00 UTC)));
    let ti = one("weekdays: [saturday, sunday]");
    assert!(ti.contains("i", datetime!(2026-03-07 12:00 UTC)));
    assert!(ti.contains("i", datetime!(2026-03-08 12:00 UTC)));
    assert!(!ti.contains("i", datetime!(2026-03-09 12:00 UTC)));
}

#[test]
fn days_of_month_positive_negative_and_clamped() {
    let ti = one("days_of_month: ['1:5', '-1']");
    assert!(ti.contains("i", datetime!(2026-03-01 00:00 UTC)));
    assert!(ti.contains("i", datetime!(2026-03-05 23:59 UTC)));
    assert!(!ti.contains("i", datetime!(2026-03-06 00:00 UTC)));
    assert!(ti.contains("i", datetime!(2026-03-31 12:00 UTC)));
    assert!(!ti.contains("i", datetime!(2026-03-30 12:00 UTC)));
    // last day of February, leap and common years
    assert!(ti.contains("i", datetime!(2026-02-28 12:00 UTC)));
    assert!(!ti.contains("i", datetime!(2028-02-28 12:00 UTC)));
    assert!(ti.contains("i", datetime!(2028-02-29 12:00 UTC)));
    // the last seven days
    let ti = one("days_of_month: ['-7:-1']");
    assert!(ti.contains("i", datetime!(2026-02-22 00:00 UTC)));
    assert!(!ti.contains("i", datetime!(2026-02-21 23:59 UTC)));
    assert!(ti.contains("i", datetime!(2028-02-23 00:00 UTC)));
    assert!(!ti.contains("i", datetime!(2028-02-22 23:59 UTC)));
    // -31 in February clamps to the first day; 30/31 never exist in February
    let ti = one("days_of_month: ['-31:-28']");
    assert!(ti.contains("i", datetime!(2026-02-01 00:00 UTC)));
    let ti = one("days_of_month: ['30:31']");
    assert!(!ti.contains("i", datetime!(2026-02-28 12:00 UTC)));
    assert!(ti.contains("i", datetime!(2026-01-31 12:00 UTC)));
    // a range ending past the month's end is clamped
    let ti = one("days_of_month: ['25:31']");
    assert!(ti.contains("i", datetime!(2026-02-28 12:00 UTC)));
    // bare numbers are accepted
    let ti = one("days_of_month: [15]");
    assert!(ti.contains("i", datetime!(2026-02-15 12:00 UTC)));
}

#[test]
fn months_and_years() {
    let ti = one("months: ['January:march', 'DECEMBER', '7', '8:9']");
    for (m, want) in [
        (1, true),
        (3, true),
        (4, false),
        (7, true),
        (9, true),
        (11, false),
        (12, true),
    ] {
        let t = datetime!(2026-01-15 12:00 UTC)
            .replace_month(time::Month::try_from(m).unwrap())
            .unwrap();
        assert_eq!(ti.contains("i", t), want, "month {m}");
    }
    let ti = one("years: ['2025:2026', 2030]");
    assert!(ti.contains("i", datetime!(2025-01-01 00:00 UTC)));
    assert!(ti.contains("i", datetime!(2026-12-31 23:59 UTC)));
    assert!(!ti.contains("i", datetime!(2027-06-01 00:00 UTC)));
    assert!(ti.contains("i", datetime!(2030-06-01 00:00 UTC)));
}

#[test]
fn fields_are_anded_specs_ored_and_empty_lists_match_nothing() {
    let yaml = "time_intervals:
  - name: i
    time_intervals:
      - weekdays: [saturday]
        times: [{start_time: '10:00', end_time: '11:00'}]
      - months: [june]
  - name: always
    time_intervals: [{}]
  - name: never
  - name: empty_list
    time_intervals: [{weekdays: []}]
";
    let ti = TimeIntervals::from_config(&load(yaml).unwrap());
    assert!(ti.contains("i", datetime!(2026-03-07 10:30 UTC)));
    assert!(!ti.contains("i", datetime!(2026-03-07 11:30 UTC)));
    assert!(!ti.contains("i", datetime!(2026-03-06 10:30 UTC)));
    assert!(ti.contains("i", datetime!(2026-06-03 03:00 UTC)));
    assert!(ti.contains("always", datetime!(2026-06-03 03:00 UTC)));
    assert!(!ti.contains("never", datetime!(2026-06-03 03:00 UTC)));
    assert!(!ti.contains("empty_list", datetime!(2026-06-03 03:00 UTC)));
}

#[test]
fn locations_and_dst() {
    // Evaluated on the wall clock of the location.
    let ti = one("{times: [{start_time: '09:00', end_time: '17:00'}], weekdays: [monday], location: Asia/Tokyo}");
    // Monday 2026-03-02 00:00 UTC is Monday 09:00 in Tokyo; a day earlier is Sunday there.
    assert!(ti.contains("i", datetime!(2026-03-02 00:00 UTC)));
    assert!(!ti.contains("i", datetime!(2026-03-01 00:00 UTC)));
    assert!(!ti.contains("i", datetime!(2026-03-01 23:59 UTC)));

    // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
    let ny = one("{times: [{start_time: '01:00', end_time: '04:00'}], location: America/New_York}");
    assert!(ny.contains("i", datetime!(2026-03-08 06:59 UTC))); // 01:59 EST
    assert!(ny.contains("i", datetime!(2026-03-08 07:00 UTC))); // 03:00 EDT
    assert!(ny.contains("i", datetime!(2026-03-08 07:59 UTC))); // 03:59 EDT
    assert!(!ny.contains("i", datetime!(2026-03-08 08:00 UTC))); // 04:00 EDT
    assert!(!ny.contains("i", datetime!(2026-03-08 05:59 UTC))); // 00:59 EST
                                                                 // The window 02:00-03:00 does not exist that day.
    let gap =
        one("{times: [{start_time: '02:00', end_time: '03:00'}], location: America/New_York}");
    assert!(!gap.contains("i", datetime!(2026-03-08 06:59 UTC)));
    assert!(!gap.contains("i", datetime!(2026-03-08 07:00 UTC)));
    assert!(gap.contains("i", datetime!(2026-03-09 06:30 UTC))); // 02:30 EDT next day

    // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:xx happens twice.
    let once =
        one("{times: [{start_time: '01:00', end_time: '02:00'}], location: America/New_York}");
    assert!(once.contains("i", datetime!(2026-11-01 05:30 UTC))); // 01:30 EDT
    assert!(once.contains("i", datetime!(2026-11-01 06:30 UTC))); // 01:30 EST
    assert!(!once.contains("i", datetime!(2026-11-01 07:00 UTC))); // 02:00 EST

    // Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    let be = one("{times: [{start_time: '00:00', end_time: '03:00'}], days_of_month: ['29'], location: Europe/Berlin}");
    assert!(be.contains("i", datetime!(2026-03-29 00:59 UTC))); // 01:59 CET
    assert!(!be.contains("i", datetime!(2026-03-29 01:00 UTC))); // 03:00 CEST
    assert!(be.contains("i", datetime!(2026-03-28 23:00 UTC))); // 00:00 CET on the 29th
    assert!(!be.contains("i", datetime!(2026-03-28 22:59 UTC))); // 23:59 on the 28th

    // UTC and Local load; Local is the system zone.
    one("location: UTC").contains("i", datetime!(2026-03-01 00:00 UTC));
    one("location: Local").contains("i", datetime!(2026-03-01 00:00 UTC));
}

#[test]
fn invalid_specs_are_rejected() {
    let cases = [
        (
            "times: [{start_time: '09:00'}]",
            "time_intervals[0].times: both start and end times must be provided",
        ),
        (
            "times: [{start_time: '9:00', end_time: '10:00'}]",
            "couldn't parse timestamp 9:00, invalid format",
        ),
        (
            "times: [{start_time: '09:00', end_time: '24:01'}]",
            "couldn't parse timestamp 24:01",
        ),
        (
            "times: [{start_time: '24:00', end_time: '24:00'}]",
            "start time cannot be equal or greater than end time",
        ),
        (
            "times: [{start_time: '10:00', end_time: '09:00'}]",
            "start time cannot be equal or greater than end time",
        ),
        (
            "times: [{start_time: '10:60', end_time: '11:00'}]",
            "invalid format",
        ),
        (
            "times: [{start: '10:00', end_time: '11:00'}]",
            "unknown field `start`",
        ),
        (
            "weekdays: [funday]",
            "time interval \"i\" time_intervals[0].weekdays: funday is not a valid weekday",
        ),
        (
            "weekdays: ['friday:monday']",
            "start day cannot be before end day",
        ),
        (
            "weekdays: ['monday:tuesday:friday']",
            "couldn't parse range monday:tuesday:friday, invalid format",
        ),
        ("weekdays: ['1']", "1 is not a valid weekday"),
        (
            "days_of_month: ['0']",
            "0 is not a valid day of the month: out of range",
        ),
        (
            "days_of_month: ['32']",
            "32 is not a valid day of the month: out of range",
        ),
        (
            "days_of_month: ['-32:-1']",
            "-32 is not a valid day of the month",
        ),
        (
            "days_of_month: ['-3:5']",
            "end day must be negative if start day is negative",
        ),
        (
            "days_of_month: ['10:5']",
            "end day 5 is always before start day 10",
        ),
        (
            "days_of_month: ['-1:-3']",
            "end day -3 is always before start day -1",
        ),
        (
            "days_of_month: ['x']",
            "strconv.Atoi: parsing \"x\": invalid syntax",
        ),
        ("months: ['smarch']", "smarch is not a valid month"),
        (
            "months: ['may:march']",
            "end month march is before start month may",
        ),
        (
            "years: ['2027:2026']",
            "end year 2026 is before start year 2027",
        ),
        ("years: ['twenty']", "invalid syntax"),
        (
            "location: Mars/Olympus",
            "time_intervals[0].location: unknown time zone Mars/Olympus",
        ),
        (
            "location: america/new_york",
            "unknown time zone america/new_york",
        ),
        ("location: ../etc/passwd", "invalid location name"),
        ("hours: [1]", "unknown field `hours`"),
    ];
    for (spec, want) in cases {
        let e = err(spec);
        assert!(e.contains(want), "{spec}\n=> {e}\nwant {want}");
    }
    // Alertmanager does not range-check month numbers; neither do we.
    assert!(load("time_intervals:\n  - name: i\n    time_intervals: [{months: ['13']}]\n").is_ok());
}

#[test]
fn names_and_references_are_checked() {
    let cases = [
        (
            "time_intervals:\n  - name: ''\n",
            "missing name in time interval",
        ),
        (
            "time_intervals:\n  - name: a\n  - name: a\n",
            "time interval \"a\" is not unique",
        ),
        (
            "mute_time_intervals:\n  - name: a\ntime_intervals:\n  - name: a\n",
            "time interval \"a\" is not unique",
        ),
        (
            "mute_time_intervals:\n  - name: a\n  - name: a\n",
            "mute time interval \"a\" is not unique",
        ),
        (
            "time_intervals:\n  - time_intervals: []\n",
            "missing field `name`",
        ),
    ];
    for (yaml, want) in cases {
        let e = load(yaml).map(|_| ()).unwrap_err();
        assert!(e.contains(want), "{yaml}\n=> {e}\nwant {want}");
    }
    let route = |keys: &str| {
        format!("route:\n  receiver: x\n{keys}receivers:\n  - name: x\ntime_intervals:\n  - name: a\nmute_time_intervals:\n  - name: b\n")
    };
    let bad = [
        (
            "  mute_time_intervals: [a]\n",
            "root route must not have any mute time intervals",
        ),
        (
            "  active_time_intervals: [a]\n",
            "root route must not have any active time intervals",
        ),
        (
            "  routes:\n    - mute_time_intervals: [a, c]\n",
            "route.routes[0].mute_time_intervals: undefined time interval \"c\" used in route",
        ),
        (
            "  routes:\n    - routes:\n        - active_time_intervals: [zz]\n",
            "route.routes[0].routes[0].active_time_intervals: undefined time interval \"zz\"",
        ),
    ];
    for (keys, want) in bad {
        let e = Config::load_str(&route(keys), "t.yml", Path::new("."))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{keys}\n=> {e}\nwant {want}");
    }
    // both sections may be referenced
    let ok =
        route("  routes:\n    - mute_time_intervals: [a, b]\n      active_time_intervals: [b]\n");
    assert!(Config::load_str(&ok, "t.yml", Path::new(".")).is_ok());
}

const TREE: &str = "route:
  receiver: x
  routes:
    - matchers: [team=a]
      mute_time_intervals: [weekends, nights]
      active_time_intervals: [y2026]
      routes:
        - matchers: [sev=page]
    - matchers: [team=b]
      active_time_intervals: [y2026, y2030]
receivers:
  - name: x
time_intervals:
  - name: weekends
    time_intervals: [{weekdays: [saturday, sunday]}, {weekdays: [saturday]}]
  - name: y2026
    time_intervals: [{years: ['2026']}]
  - name: y2030
    time_intervals: [{years: ['2030']}]
mute_time_intervals:
  - name: nights
    time_intervals: [{times: [{start_time: '00:00', end_time: '06:00'}]}]
";

#[test]
fn route_intervals_are_not_inherited() {
    let cfg = Config::load_str(TREE, "t.yml", Path::new(".")).unwrap();
    let root = Route::from_config(&cfg.route);
    let a = &root.routes[0];
    assert_eq!(a.mute_time_intervals, ["weekends", "nights"]);
    assert_eq!(a.active_time_intervals, ["y2026"]);
    assert!(root.mute_time_intervals.is_empty() && root.active_time_intervals.is_empty());
    let child = &a.routes[0];
    assert!(child.mute_time_intervals.is_empty());
    assert!(child.active_time_intervals.is_empty());
}

#[test]
fn muted_by_mute_and_active_intervals() {
    let cfg = Config::load_str(TREE, "t.yml", Path::new(".")).unwrap();
    let ti = TimeIntervals::from_config(&cfg);
    let root = Route::from_config(&cfg.route);
    let (a, b) = (&root.routes[0], &root.routes[1]);
    // Saturday night 2026: both mute intervals, "weekends" once though two specs match
    let sat_night = datetime!(2026-03-07 03:00 UTC);
    assert_eq!(muted_by(a, &ti, sat_night), ["weekends", "nights"]);
    assert_eq!(
        muted_by(a, &ti, datetime!(2026-03-07 12:00 UTC)),
        ["weekends"]
    );
    assert!(muted_by(a, &ti, datetime!(2026-03-09 12:00 UTC)).is_empty());
    // outside every active interval: all active interval names, mute intervals not consulted
    assert_eq!(muted_by(a, &ti, datetime!(2027-03-06 03:00 UTC)), ["y2026"]);
    assert_eq!(
        muted_by(b, &ti, datetime!(2027-03-06 03:00 UTC)),
        ["y2026", "y2030"]
    );
    assert!(muted_by(b, &ti, datetime!(2030-03-06 03:00 UTC)).is_empty());
    // no intervals at all: never muted
    assert!(muted_by(&root, &ti, sat_night).is_empty());
    assert!(muted_by(&a.routes[0], &ti, sat_night).is_empty());
}
