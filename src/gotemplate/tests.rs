//! Unit tests of the engine: syntax, execution semantics, builtins, Alertmanager's
//! functions and data model, error positions and limits. Expected values follow Go's
//! documented `text/template` and `fmt` behaviour (and were cross-checked with Go
//! where noted in tests/go_templates.rs, which compares with Alertmanager itself).

use super::*;
use crate::alert::{LabelSet, Status, WebhookAlert, WebhookMessage};

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn alert(pairs: &[(&str, &str)], status: Status, starts: &str, ends: &str) -> WebhookAlert {
    let l = labels(pairs);
    WebhookAlert {
        status,
        fingerprint: crate::alert::Fingerprint::of(&l).to_string(),
        labels: l,
        annotations: labels(&[("summary", "disk full"), ("runbook", "http://rb/x")]),
        starts_at: starts.into(),
        ends_at: ends.into(),
        generator_url: "http://prom/graph".into(),
    }
}

fn msg() -> WebhookMessage {
    WebhookMessage::new(
        "team.ops",
        vec![
            alert(
                &[
                    ("alertname", "Disk"),
                    ("instance", "a:9100"),
                    ("job", "node"),
                ],
                Status::Firing,
                "2024-05-01T10:00:00.5Z",
                "0001-01-01T00:00:00Z",
            ),
            alert(
                &[
                    ("alertname", "Disk"),
                    ("instance", "b:9100"),
                    ("job", "node"),
                ],
                Status::Resolved,
                "2024-05-01T12:00:00+02:00",
                "2024-05-01T11:00:00Z",
            ),
        ],
        labels(&[("alertname", "Disk")]),
        "http://am.example/",
        "{}:{alertname=\"Disk\"}",
        "first notification",
    )
}

fn render(src: &str) -> Result<String, Error> {
    let set = am::default_set().expect("defaults parse");
    set.render(src, &am::data(&msg()))
}

fn ok(src: &str) -> String {
    match render(src) {
        Ok(s) => s,
        Err(e) => panic!("{src:?}: {e}"),
    }
}

fn err(src: &str) -> String {
    match render(src) {
        Ok(s) => panic!("{src:?} rendered {s:?}, expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn fields_and_methods_of_the_data_model() {
    assert_eq!(
        ok("{{ .Receiver }}|{{ .Status }}|{{ .ExternalURL }}"),
        "team\\.ops|firing|http://am.example"
    );
    assert_eq!(
        ok("{{ len .Alerts }} {{ len .Alerts.Firing }} {{ .Alerts.Resolved | len }}"),
        "2 1 1"
    );
    assert_eq!(
        ok("{{ range .Alerts.Firing }}{{ .Labels.instance }}{{ end }}"),
        "a:9100"
    );
    assert_eq!(
        ok("{{ .CommonLabels.SortedPairs.Names }}"),
        "[alertname job]"
    );
    assert_eq!(
        ok("{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }};{{ end }}"),
        "alertname=Disk;job=node;"
    );
    assert_eq!(
        ok("{{ .CommonLabels.Remove .GroupLabels.Names }}"),
        "map[job:node]"
    );
    assert_eq!(
        ok("{{ (.CommonLabels.Remove (stringSlice \"job\")).Values }}"),
        "[Disk]"
    );
    assert_eq!(ok("{{ .CommonLabels.Values.Join \":\" }}"), "Disk:node");
    assert_eq!(ok("{{ .CommonLabels }}"), "map[alertname:Disk job:node]");
    assert_eq!(ok("{{ (index .Alerts 0).Fingerprint | len }}"), "16");
    assert_eq!(ok("{{ .NotificationReason }}"), "first notification");
    assert!(ok("{{ toJson . }}").contains(r#""alerts":[{"status":"firing","#));
    assert!(ok("{{ toJson . }}")
        .contains(r#""notification_reason":"first notification","groupLabels""#));
}

#[test]
fn sorted_pairs_put_alertname_first() {
    let mut m = msg();
    m.common_labels = labels(&[("a", "1"), ("alertname", "X"), ("zz", "2")]);
    let out = am::default_set()
        .unwrap()
        .render(
            "{{ .CommonLabels.Names }} {{ range $k, $v := .CommonLabels }}{{ $k }}{{ end }}",
            &am::data(&m),
        )
        .unwrap();
    // SortedPairs: alertname first; range over the map: plain key order.
    assert_eq!(out, "[alertname a zz] aalertnamezz");
}

#[test]
fn missing_label_is_empty_and_any_map_key_is_no_value() {
    assert_eq!(ok("[{{ .CommonLabels.nope }}]"), "[]");
    assert_eq!(
        ok("{{ if eq .CommonLabels.nope \"\" }}empty{{ end }}"),
        "empty"
    );
    assert_eq!(ok("[{{ index .CommonLabels \"nope\" }}]"), "[]");
    assert_eq!(ok("{{ (dict \"a\" 1).b }}"), "<no value>");
    assert_eq!(ok("{{ index (dict \"a\" 1) \"a\" }}"), "1");
}

#[test]
fn times_print_and_format_like_go() {
    assert_eq!(
        ok("{{ (index .Alerts 0).StartsAt }}"),
        "2024-05-01 10:00:00.5 +0000 UTC"
    );
    assert_eq!(
        ok("{{ (index .Alerts 1).StartsAt }}"),
        "2024-05-01 12:00:00 +0200 +0200"
    );
    assert_eq!(
        ok("{{ (index .Alerts 0).EndsAt }}"),
        "0001-01-01 00:00:00 +0000 UTC"
    );
    assert_eq!(
        ok("{{ (index .Alerts 1).StartsAt.UTC.Format \"15:04 MST\" }}"),
        "10:00 UTC"
    );
    assert_eq!(ok("{{ (index .Alerts 0).StartsAt.Unix }}"), "1714557600");
    assert_eq!(ok("{{ (index .Alerts 0).EndsAt.IsZero }} {{ if (index .Alerts 0).EndsAt }}struct-true{{ end }}"), "true struct-true");
    assert_eq!(
        ok("{{ with index .Alerts 1 }}{{ .EndsAt.Sub .StartsAt }}{{ end }}"),
        "1h0m0s"
    );
    assert_eq!(
        ok("{{ date \"2006-01-02\" (index .Alerts 0).StartsAt }}"),
        "2024-05-01"
    );
    assert_eq!(
        ok("{{ (index .Alerts 0).StartsAt | tz \"Europe/Paris\" }}"),
        "2024-05-01 12:00:00.5 +0200 CEST"
    );
    assert_eq!(
        ok("{{ $t := (index .Alerts 0).StartsAt }}{{ $t.In ($t | tz \"Asia/Tokyo\").Location }}"),
        "2024-05-01 10:00:00.5 +0000 UTC"
    );
    assert!(err("{{ tz \"No/Where\" (index .Alerts 0).StartsAt }}").contains("unknown time zone"));
    assert_eq!(
        ok("{{ toDate \"2006-01-02\" \"2024-02-03\" }}"),
        "2024-02-03 00:00:00 +0000 UTC"
    );
    assert_eq!(ok("{{ (toDate \"2006-01-02\" \"junk\").IsZero }}"), "true");
    assert!(err("{{ mustToDate \"2006-01-02\" \"junk\" }}").contains("error calling mustToDate"));
    assert!(ok("{{ since (index .Alerts 0).StartsAt }}").ends_with('s'));
}

#[test]
fn alertmanager_functions() {
    assert_eq!(ok("{{ toUpper \"abc\" }} {{ toLower \"ÀB\" }} {{ title \"hELLO wORLD o'brian foo-bar\" }}"), "ABC àb Hello World O'brian Foo-Bar");
    assert_eq!(
        ok("{{ trimSpace \"  x \\n\" }}|{{ join \", \" .CommonLabels.Values }}"),
        "x|Disk, node"
    );
    assert_eq!(ok("{{ match \"^D\" .CommonLabels.alertname }} {{ match \"sk\" \"Disk\" }} {{ match \"^x\" \"Disk\" }}"), "true true false");
    assert_eq!(
        ok("{{ reReplaceAll \"(.*):(\\\\d+)\" \"$1\" \"host:9100\" }}"),
        "host"
    );
    assert_eq!(
        ok("{{ reReplaceAll \"a(?P<x>b)\" \"${x}${x}\" \"abab\" }}"),
        "bbbb"
    );
    assert!(err("{{ match \"(\" \"x\" }}").contains("error calling match"));
    assert_eq!(
        ok("{{ safeHtml \"<b>\" }} {{ urlUnescape \"a+b%2Fc\" }}"),
        "<b> a b/c"
    );
    assert!(err("{{ urlUnescape \"%zz\" }}").contains("invalid URL escape"));
    assert_eq!(
        ok("{{ base64encode \"a?b>\" }} {{ base64decode \"YT9iPg==\" }}"),
        "YT9iPg== a?b>"
    );
    assert_eq!(
        ok("{{ toJson .CommonLabels }}"),
        r#"{"alertname":"Disk","job":"node"}"#
    );
    assert_eq!(ok("{{ toJson \"<a&b>\" }}"), r#""\u003ca\u0026b\u003e""#);
    assert_eq!(
        ok("{{ toJson (index .Alerts 0) }}"),
        r#"{"status":"firing","labels":{"alertname":"Disk","instance":"a:9100","job":"node"},"annotations":{"runbook":"http://rb/x","summary":"disk full"},"startsAt":"2024-05-01T10:00:00.5Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom/graph","fingerprint":""#
            .to_string()
            + &msg().alerts[0].fingerprint
            + "\"}"
    );
    assert_eq!(
        ok("{{ list }} {{ list 1 \"a\" }} {{ append (list 1) 2 3 }}"),
        "[] [1 a] [1 2 3]"
    );
    assert_eq!(
        ok("{{ $d := dict \"b\" 2 \"a\" 1 }}{{ $d }} {{ $d.a }} {{ toJson $d }}"),
        r#"map[a:1 b:2] 1 {"a":1,"b":2}"#
    );
    assert!(err("{{ dict \"a\" }}").contains("odd number"));
    assert!(err("{{ dict 1 2 }}").contains("key must be a string"));
    assert_eq!(ok("[{{ routeLabels \"team\" }}]"), "[]");
    assert!(err("{{ routeLabels }}").contains("wrong number of args"));
}

#[test]
fn humanize_duration_follows_prometheus() {
    for (input, want) in [
        ("0", "0s"),
        ("1", "1s"),
        ("4.5", "4.5s"),
        ("65", "1m 5s"),
        ("7205", "2h 0m 5s"),
        ("93784", "1d 2h 3m 4s"),
        ("0.5", "500ms"),
        ("0.0000015", "1.5us"),
        ("-65", "-1m 5s"),
        ("\"60\"", "1m 0s"),
    ] {
        assert_eq!(
            ok(&format!("{{{{ humanizeDuration {input} }}}}")),
            want,
            "{input}"
        );
    }
    assert!(err("{{ humanizeDuration \"x\" }}").contains("error calling humanizeDuration"));
}

#[test]
fn builtins() {
    assert_eq!(
        ok("{{ html \"<a href='x'>&\\\"\" }}"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&#34;"
    );
    assert_eq!(
        ok("{{ js \"a'b\\\"<>&=\\n\" }}"),
        "a\\'b\\\"\\u003C\\u003E\\u0026\\u003D\\u000A"
    );
    assert_eq!(ok("{{ urlquery \"a b&c/d\" }}"), "a+b%26c%2Fd");
    assert_eq!(
        ok("{{ slice \"abcdef\" 1 3 }} {{ slice .CommonLabels.Names 1 }}"),
        "bc [job]"
    );
    assert_eq!(
        ok("{{ index \"abc\" 1 }} {{ len \"héllo\" }} {{ len .CommonLabels }}"),
        "98 6 2"
    );
    assert!(err("{{ index .Alerts 5 }}").contains("index out of range: 5"));
    assert_eq!(
        ok("{{ print 1 2 \"a\" 3 }}|{{ println \"x\" 1 }}"),
        "1 2a3|x 1\n"
    );
    assert_eq!(
        ok("{{ printf \"%s=%q %5.2f %v %03d %x %T\" \"a\" \"b\" 3.14159 true 7 255 .Alerts }}"),
        "a=\"b\"  3.14 true 007 ff template.Alerts"
    );
    assert_eq!(ok("{{ \"x\" | printf \"%s-%s\" \"y\" }}"), "y-x");
    assert_eq!(ok("{{ not 0 }} {{ not \"a\" }} {{ and 1 0 2 }} {{ or 0 \"\" 3 }} {{ and 1 2 }} {{ or 0 \"\" }}"), "true false 0 3 2 ");
}

#[test]
fn comparisons() {
    assert_eq!(
        ok("{{ eq .Status \"resolved\" \"firing\" }} {{ eq 1 2 3 }} {{ ne \"a\" \"b\" }}"),
        "true false true"
    );
    assert_eq!(
        ok("{{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2.5 }}"),
        "true true true false"
    );
    assert!(err("{{ eq 1 1.0 }}").contains("incompatible types for comparison"));
    assert!(err("{{ lt true false }}").contains("invalid type for comparison"));
    assert!(err("{{ eq .Alerts .Alerts }}").contains("non-comparable"));
}

#[test]
fn and_or_short_circuit() {
    // The second operand would fail (index out of range) if evaluated.
    assert_eq!(
        ok("{{ and (eq .Status \"resolved\") (index .Alerts 99) }}"),
        "false"
    );
    assert_eq!(
        ok("{{ or (eq .Status \"firing\") (index .Alerts 99) }}"),
        "true"
    );
    assert!(err("{{ and true (index .Alerts 99) }}").contains("index out of range"));
}

#[test]
fn control_structures() {
    assert_eq!(
        ok("{{ if eq .Status \"x\" }}a{{ else if eq .Status \"firing\" }}b{{ else }}c{{ end }}"),
        "b"
    );
    assert_eq!(
        ok("{{ with .CommonLabels.job }}[{{ . }}]{{ else }}none{{ end }}"),
        "[node]"
    );
    assert_eq!(
        ok("{{ with .CommonLabels.nope }}[{{ . }}]{{ else with .Status }}{{ . }}{{ end }}"),
        "firing"
    );
    assert_eq!(ok("{{ range .Alerts }}x{{ else }}EMPTY{{ end }}"), "xx");
    assert_eq!(
        ok("{{ range .CommonLabels.Remove .CommonLabels.Names }}x{{ else }}EMPTY{{ end }}"),
        "EMPTY"
    );
    assert_eq!(
        ok("{{ range $i, $a := .Alerts }}{{ $i }}:{{ $a.Status }} {{ end }}"),
        "0:firing 1:resolved "
    );
    assert_eq!(
        ok("{{ range $k, $v := .CommonLabels }}{{ $k }}={{ $v }} {{ end }}"),
        "alertname=Disk job=node "
    );
    assert_eq!(ok("{{ range 3 }}{{ . }}{{ end }}"), "012");
    assert_eq!(ok("{{ range $i, $e := list 1 2 3 4 }}{{ if eq $e 2 }}{{ continue }}{{ end }}{{ if eq $e 4 }}{{ break }}{{ end }}{{ $e }}{{ end }}"), "13");
    assert_eq!(
        ok("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ end }}{{ $x }}"),
        "2"
    );
    assert_eq!(
        ok("{{ range .Alerts }}{{ $.Receiver }};{{ end }}"),
        "team\\.ops;team\\.ops;"
    );
    assert_eq!(
        ok("{{ $n := 0 }}{{ range .Alerts }}{{ $n = len $.Alerts }}{{ end }}{{ $n }}"),
        "2"
    );
}

#[test]
fn trim_markers_and_comments() {
    assert_eq!(ok("a  {{- 1 -}}  \n b"), "a1b");
    assert_eq!(ok("a \n{{-\n1\n-}}\n b"), "a1b");
    assert_eq!(ok("a {{/* note */}} b"), "a  b");
    assert_eq!(ok("a {{- /* note */ -}} b"), "ab");
    assert_eq!(ok("{{ -1 }}|{{- 2 }}"), "-1|2");
}

#[test]
fn literals() {
    assert_eq!(ok("{{ 0x10 }} {{ 0o17 }} {{ 1_000 }} {{ 'a' }} {{ 1.5 }} {{ 1e6 }} {{ true }} {{ `raw\\n` }} {{ \"\\u00e9\\t|\" }}"), "16 15 1000 97 1.5 1e+06 true raw\\n é\t|");
    assert_eq!(ok("{{ printf \"%v\" nil }}"), "<nil>");
}

#[test]
fn define_template_block() {
    assert_eq!(
        ok("{{ define \"x\" }}[{{ . }}]{{ end }}{{ template \"x\" .Status }}{{ template \"x\" }}"),
        "[firing][<no value>]"
    );
    assert_eq!(
        ok("{{ block \"b\" .Status }}<{{ . }}>{{ end }}"),
        "<firing>"
    );
    // An inline define shadows the set's template of that name.
    assert_eq!(ok("{{ define \"__alertmanager\" }}Router{{ end }}{{ template \"slack.default.username\" . }}"), "Router");
    assert!(err("{{ template \"nope\" . }}").contains("template \"nope\" not defined"));
}

#[test]
fn default_templates() {
    assert_eq!(
        ok("{{ template \"__subject\" . }}"),
        "[FIRING:1] Disk (node)"
    );
    assert_eq!(
        ok("{{ template \"slack.default.title\" . }}"),
        "[FIRING:1] Disk (node)"
    );
    assert_eq!(
        ok("{{ template \"slack.default.titlelink\" . }}"),
        "http://am.example/#/alerts?receiver=team%5C.ops"
    );
    assert_eq!(ok("{{ template \"slack.default.color\" . }}|{{ template \"slack.default.username\" . }}|{{ template \"slack.default.text\" . }}|"), "danger|Alertmanager||");
    assert_eq!(ok("{{ template \"jira.default.priority\" . }}"), "");
    let text = ok("{{ template \"__text_alert_list\" .Alerts.Firing }}");
    assert_eq!(text, "Labels:\n - alertname = Disk\n - instance = a:9100\n - job = node\nAnnotations:\n - runbook = http://rb/x\n - summary = disk full\nSource: http://prom/graph\n");
    let html = ok("{{ template \"email.default.html\" . }}");
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("1 firing, 1 resolved"),
        "{html}"
    );
    for name in [
        "email.default.subject",
        "discord.default.title",
        "discord.default.message",
        "telegram.default.message",
        "msteams.default.text",
        "msteamsv2.default.title",
        "webex.default.message",
        "mattermost.default.text",
        "rocketchat.default.title",
        "opsgenie.default.description",
        "__alertmanagerURL",
        "__text_alert_list_markdown",
    ] {
        let arg = if name.starts_with("__text") {
            ".Alerts"
        } else {
            "."
        };
        ok(&format!("{{{{ template {name:?} {arg} }}}}"));
    }
}

#[test]
fn jira_priority_follows_severity() {
    let mut m = msg();
    m.alerts[0]
        .labels
        .insert("severity".into(), "Warning".into());
    m.alerts[1]
        .labels
        .insert("severity".into(), "critical".into());
    let s = am::default_set().unwrap();
    // Firing alerts decide (the critical one is resolved).
    assert_eq!(
        s.render("{{ template \"jira.default.priority\" . }}", &am::data(&m))
            .unwrap(),
        "Medium"
    );
    m.alerts[0].status = Status::Resolved;
    m.alerts[0].labels.insert("severity".into(), "info".into());
    assert_eq!(
        s.render("{{ template \"jira.default.priority\" . }}", &am::data(&m))
            .unwrap(),
        "High"
    );
}

#[test]
fn parse_errors_name_line_and_column() {
    assert_eq!(
        err("ok\n  {{ nosuch 1 }}"),
        "template: :2:6: function \"nosuch\" not defined"
    );
    assert!(
        err("{{ if true }}x").contains(":1:15: unexpected EOF"),
        "{}",
        err("{{ if true }}x")
    );
    assert!(err("{{ end }}").contains("unexpected {{end}}"));
    assert!(err("{{ $x }}").contains("undefined variable \"$x\""));
    assert!(err("{{ break }}").contains("outside {{range}}"));
    assert!(err("{{ .A").contains("unclosed action"));
    assert!(err("{{ \"abc }}").contains("unterminated quoted string"));
    assert!(err("{{ 1 | 2 }}").contains("non executable command"));
    assert!(
        err("{{ define \"a\" }}{{ end }}{{ define \"a\" }}{{ end }}")
            .contains("multiple definition of template \"a\"")
    );
    assert!(err("{{/* x */ }}").contains("comment ends before closing delimiter"));
}

#[test]
fn exec_errors_name_line_column_and_node() {
    let e = err("line1\n{{ .Alerts.Nope }}");
    assert!(e.starts_with("template: :2:4: executing \"\" at <.Alerts.Nope>: can't evaluate field Nope in type template.Alerts"), "{e}");
    assert!(err("{{ .Status 1 }}").contains("not a method but has arguments"));
    assert!(err("{{ .NoSuchField }}")
        .contains("can't evaluate field NoSuchField in type template.Data"));
}

#[test]
fn recursion_is_an_error_not_a_crash() {
    let e = err("{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}");
    assert!(e.contains("exceeded maximum template depth"), "{e}");
    assert_eq!(ok("{{ ((((1)))) }}"), "1");
    let nested = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
    assert!(err(&nested).contains("nesting too deep"));
    let ifs = format!(
        "{}{}",
        "{{ if true }}".repeat(5000),
        "{{ end }}".repeat(5000)
    );
    assert!(err(&ifs).contains("nesting too deep"));
    // Blocks and template calls count together: deep blocks inside a recursive
    // template stop at the limit instead of exhausting the stack.
    let blocks = format!(
        "{}x{}",
        "{{ if true }}{{ with 1 }}".repeat(49),
        "{{ end }}{{ end }}".repeat(49)
    );
    assert_eq!(ok(&blocks), "x");
    let t = format!(
        "{{{{ define \"r\" }}}}{}{{{{ template \"r\" . }}}}{}{{{{ end }}}}{{{{ template \"r\" . }}}}",
        "{{ if true }}{{ with 1 }}".repeat(49),
        "{{ end }}{{ end }}".repeat(49)
    );
    assert!(err(&t).contains("exceeded maximum template depth"));
}

/// Run `f` on a thread with a 2 MiB stack (a worker thread's), failing after 60 s.
fn on_small_stack(src: &'static str) -> Result<String, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let _ = tx.send(render(src).map_err(|e| e.to_string()));
        })
        .unwrap();
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{src:?} still running after 60 s"))
}

/// Found by tests/properties.rs: values a template builds in a loop are bounded. Nested
/// 200 000 deep, `list $x` overflowed the stack when printed, serialised or dropped; a
/// list holding itself twice per round prints as 2^40 elements; `append` in a loop and
/// empty nested ranges ran for hours.
#[test]
fn template_built_values_and_loops_are_bounded() {
    let cases: [(&'static str, Result<&str, &str>); 16] = [
        (
            "{{ $x := list }}{{ range 200000 }}{{ $x = list $x }}{{ end }}{{ toJson $x }}",
            Err("value nested deeper than 100 levels"),
        ),
        (
            "{{ $x := dict }}{{ range 200000 }}{{ $x = dict \"a\" $x }}{{ end }}",
            Err("value nested deeper than 100 levels"),
        ),
        (
            "{{ $x := list }}{{ range 99 }}{{ $x = list $x }}{{ end }}{{ len $x }}",
            Ok("1"),
        ),
        (
            "{{ $x := list 1 2 }}{{ range 40 }}{{ $x = list $x $x }}{{ end }}{{ $x }}",
            Err("output larger than"),
        ),
        (
            "{{ $x := list 1 2 }}{{ range 40 }}{{ $x = list $x $x }}{{ end }}{{ toJson $x | len }}",
            Err("result larger than"),
        ),
        (
            "{{ $x := list }}{{ range 1000000 }}{{ $x = append $x 1 }}{{ end }}{{ len $x }}",
            Err("work limit"),
        ),
        (
            "{{ $x := list }}{{ range 5000 }}{{ $x = append $x 1 }}{{ end }}{{ len $x }}",
            Ok("5000"),
        ),
        (
            "{{ $x := \"ab\" }}{{ range 64 }}{{ $x = printf \"%s%s\" $x $x }}{{ end }}{{ len $x }}",
            Err("result larger than"),
        ),
        (
            "{{ range 4999999 }}{{ range 4999999 }}{{ end }}{{ end }}",
            Err("work limit"),
        ),
        (
            "{{ printf \"%*d\" 9223372036854775807 1 }}",
            Ok("%!(BADWIDTH)1"),
        ),
        // one replacement per match, each repeating a 1 MB string: 10^11 bytes
        (
            "{{ reReplaceAll \"\" (printf \"%100000s\" \"\") (printf \"%1000000s\" \"\") }}",
            Err("result larger than"),
        ),
        (
            "{{ reReplaceAll \"b+\" \"[$0]\" \"abbc\" }}",
            Ok("a[bb]c"),
        ),
        // a pattern compiled afresh 2 million times; the same small one is compiled once
        (
            "{{ range $i := 2000000 }}{{ match (printf \"(a|b){1,100}%d\" $i) \"ab\" }}{{ end }}",
            Err("work limit"),
        ),
        (
            "{{ range 20000 }}{{ if match \"^a+$\" \"aa\" }}{{ end }}{{ end }}ok",
            Ok("ok"),
        ),
        (
            "{{ $x := printf \"%1000000s\" \"\" }}{{ join $x (stringSlice $x $x $x $x $x) }}",
            Err("result larger than"),
        ),
        (
            "{{ $x := printf \"%1000000s\" \"\" }}{{ printf \"%s%s%s%s%s%s%s%s\" $x $x $x $x $x $x $x $x 1 2 3 | len }}",
            Err("result larger than"),
        ),
    ];
    for (src, want) in cases {
        match (on_small_stack(src), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{src}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{src}: {got}"),
            (got, want) => panic!("{src}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn later_files_replace_defines_and_blank_ones_do_not() {
    let mut s = am::default_set().unwrap();
    s.add_file(
        "a.tmpl",
        "{{ define \"slack.default.title\" }}custom {{ .Status }}{{ end }}",
    )
    .unwrap();
    s.add_file("b.tmpl", "{{ define \"slack.default.title\" }}  {{ end }}")
        .unwrap();
    let out = s
        .render(
            "{{ template \"slack.default.title\" . }}",
            &am::data(&msg()),
        )
        .unwrap();
    assert_eq!(out, "custom firing");
    let e = s
        .add_file("c.tmpl", "\n\n  {{ nosuch }}")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "template: c.tmpl:3:6: function \"nosuch\" not defined");
}

/// Every prefix and every one-character deletion of a template using most of the syntax
/// (with multi-byte text) parses or fails cleanly, and renders or fails cleanly: no panic.
#[test]
fn truncated_and_damaged_templates_never_panic() {
    let src = "é{{- /* ü */ -}}{{ define \"d\" }}{{ range $i, $e := . }}{{ if eq $i 1 }}{{ break }}{{ end }}{{ printf \"%-5s|%q\" $e 'é' }}{{ end }}{{ end }}\
               {{ $x := .CommonLabels.Remove (stringSlice \"a\" `ü`) }}{{ with $x }}{{ .SortedPairs }}{{ else }}ø{{ end }}\
               {{ template \"d\" .Alerts }}{{ (index .Alerts 0).StartsAt.Format \"Jan 2 15:04 MST\" }}{{ toDate \"Jan 2006\" \"Jé 2006\" }}\
               {{ 0x1F | printf \"%x\" }} {{ \"\\u00e9\\x41\" }} {{ .Status -}} ü";
    let set = am::default_set().unwrap();
    let data = am::data(&msg());
    let mut cuts: Vec<String> = src
        .char_indices()
        .map(|(i, _)| src[..i].to_string())
        .collect();
    for (i, c) in src.char_indices() {
        cuts.push(format!("{}{}", &src[..i], &src[i + c.len_utf8()..]));
    }
    let mut rendered = 0;
    for t in &cuts {
        if set.render(t, &data).is_ok() {
            rendered += 1;
        }
    }
    assert!(
        set.render(src, &data).is_ok(),
        "{:?}",
        set.render(src, &data)
    );
    assert!(rendered > 10, "{rendered}");
}

#[test]
fn html_fields_escape_printed_values() {
    let mut m = msg();
    let team = "<b>ops</b> & \"co\"";
    m.common_labels.insert("team".into(), team.into());
    m.alerts[0].labels.insert("team".into(), team.into());
    let set = am::default_set().unwrap();
    let d = am::data(&m);
    let html = |t: &str| set.render_html(t, &d).unwrap();
    assert_eq!(
        html("<p>{{ .CommonLabels.team }}</p>"),
        "<p>&lt;b&gt;ops&lt;/b&gt; &amp; &#34;co&#34;</p>"
    );
    // Escapers and trusted values are not escaped twice; text parts are never escaped.
    assert_eq!(
        html("{{ .CommonLabels.team | html }}"),
        "&lt;b&gt;ops&lt;/b&gt; &amp; &#34;co&#34;"
    );
    assert_eq!(
        html("{{ safeHtml \"<i>x</i>\" }}|{{ .CommonLabels.team | urlquery }}"),
        "<i>x</i>|%3Cb%3Eops%3C%2Fb%3E+%26+%22co%22"
    );
    assert_eq!(
        html("{{ define \"t\" }}<u>{{ . }}</u>{{ end }}{{ template \"t\" \"<x>\" }}"),
        "<u>&lt;x&gt;</u>"
    );
    // The same template in a text field prints values as they are.
    assert_eq!(
        set.render("{{ .CommonLabels.team }}", &d).unwrap(),
        "<b>ops</b> & \"co\""
    );
    let mail = html("{{ template \"email.default.html\" . }}");
    assert!(
        mail.contains("&lt;b&gt;ops") && !mail.contains("<b>ops") && !mail.contains("&amp;lt;"),
        "{mail}"
    );
}
