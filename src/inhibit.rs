//! Inhibition (Alertmanager's `inhibit_rules`): the config model with its validation, and
//! [`Inhibitor`], an index of the alerts that can act as *sources* which answers "is this
//! alert inhibited at time t, and by which source?" with a few hash lookups per rule.
//!
//! Semantics follow Alertmanager (`inhibit/inhibit.go`): a target alert is inhibited by a
//! rule when all its target matchers match the target, and some source alert firing at `t`
//! matches all its source matchers and has the same values for every `equal` label (a
//! missing label counts as `""`). When the target also matches the source matchers, sources
//! that also match the target matchers are ignored, so an alert never inhibits itself.
//!
//! Alertmanager indexes only the latest-resolving source per rule and `equal` values; this
//! index keeps every source (ordered by end time), so a resolved source is never reported
//! and one firing source is always found while any exists.

use crate::alert::{Fingerprint, LabelSet};
use crate::config::{MatcherStrings, RegexMap};
use crate::matcher::{LabelIndex, MatchType, Matcher, Matchers};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::OffsetDateTime;

/// One entry of `inhibit_rules:`. The matchers of each side are combined with AND:
/// `*_matchers` strings plus the deprecated `*_match` / `*_match_re` maps.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    /// Optional; duplicates are allowed (as in Alertmanager).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub source_matchers: MatcherStrings,
    #[serde(default)]
    pub target_matchers: MatcherStrings,
    /// Labels whose values must be equal on source and target.
    #[serde(default)]
    pub equal: Vec<String>,
    /// Deprecated: label name to exact value.
    #[serde(default)]
    pub source_match: BTreeMap<String, String>,
    /// Deprecated: label name to anchored regex.
    #[serde(default)]
    pub source_match_re: RegexMap,
    /// Deprecated: label name to exact value.
    #[serde(default)]
    pub target_match: BTreeMap<String, String>,
    /// Deprecated: label name to anchored regex.
    #[serde(default)]
    pub target_match_re: RegexMap,
}

/// Alertmanager's classic label name (`[a-zA-Z_][a-zA-Z0-9_]*`), required for the keys
/// of the deprecated `*_match` and `*_match_re` maps.
fn classic_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl InhibitRuleConfig {
    /// Checks what deserialization does not (matchers and regexes are checked while
    /// parsing). Errors name the rule index and the field.
    pub fn validate(&self, index: usize) -> Result<(), String> {
        let at = |field: &str, m: String| format!("inhibit_rules[{index}].{field}: {m}");
        for (field, keys) in [
            ("source_match", self.source_match.keys().collect::<Vec<_>>()),
            ("source_match_re", self.source_match_re.0.keys().collect()),
            ("target_match", self.target_match.keys().collect()),
            ("target_match_re", self.target_match_re.0.keys().collect()),
        ] {
            if let Some(k) = keys.into_iter().find(|k| !classic_label_name(k)) {
                return Err(at(field, format!("invalid label name {k:?}")));
            }
        }
        if let Some(l) = self.equal.iter().find(|l| l.is_empty()) {
            return Err(at(
                "equal",
                format!("invalid label name {l:?} in equal list"),
            ));
        }
        Ok(())
    }

    /// All source matchers: `source_match`, then `source_match_re`, then `source_matchers`.
    pub fn source(&self) -> Matchers {
        combine(
            &self.source_match,
            &self.source_match_re,
            &self.source_matchers,
        )
    }

    /// All target matchers: `target_match`, then `target_match_re`, then `target_matchers`.
    pub fn target(&self) -> Matchers {
        combine(
            &self.target_match,
            &self.target_match_re,
            &self.target_matchers,
        )
    }
}

fn combine(eq: &BTreeMap<String, String>, re: &RegexMap, strings: &MatcherStrings) -> Matchers {
    let mut ms: Vec<Matcher> = eq
        .iter()
        .filter_map(|(k, v)| Matcher::new(k.clone(), MatchType::Equal, v.clone()).ok())
        .collect();
    // Regexes were compiled once while the config was read; a failure cannot happen here.
    ms.extend(
        re.0.iter()
            .filter_map(|(k, v)| Matcher::new(k.clone(), MatchType::Regex, v.clone()).ok()),
    );
    ms.extend(strings.1.iter().cloned());
    Matchers(ms)
}

/// Validate every rule of `inhibit_rules`.
pub fn validate_rules(rules: &[InhibitRuleConfig]) -> Result<(), String> {
    rules
        .iter()
        .enumerate()
        .try_for_each(|(i, r)| r.validate(i))
}

/// End of a source as a sort key: nanoseconds since the epoch, `i128::MAX` for "no end".
type EndKey = i128;

fn end_key(ends_at: Option<OffsetDateTime>) -> EndKey {
    ends_at.map_or(EndKey::MAX, OffsetDateTime::unix_timestamp_nanos)
}

/// The sources of one rule sharing the same `equal` values, each set ordered by end time.
#[derive(Debug, Default)]
struct Bucket {
    /// Sources that do not match the rule's target matchers.
    one_sided: BTreeSet<(EndKey, Fingerprint)>,
    /// Sources that also match the target matchers (ignored for targets that match the
    /// source matchers).
    two_sided: BTreeSet<(EndKey, Fingerprint)>,
}

impl Bucket {
    fn set(&mut self, two_sided: bool) -> &mut BTreeSet<(EndKey, Fingerprint)> {
        if two_sided {
            &mut self.two_sided
        } else {
            &mut self.one_sided
        }
    }

    fn is_empty(&self) -> bool {
        self.one_sided.is_empty() && self.two_sided.is_empty()
    }
}

/// The latest-ending source of `set` other than `not`, if it still fires at `t`.
fn firing(
    set: &BTreeSet<(EndKey, Fingerprint)>,
    not: Fingerprint,
    t: EndKey,
) -> Option<Fingerprint> {
    set.iter()
        .rev()
        .find(|(_, fp)| *fp != not)
        .filter(|(end, _)| *end > t)
        .map(|(_, fp)| *fp)
}

/// Where a source sits in a rule's index.
#[derive(Debug)]
struct Indexed {
    key: Vec<String>,
    end: EndKey,
    two_sided: bool,
}

#[derive(Debug)]
struct Rule {
    source: Matchers,
    target: Matchers,
    /// Sorted, without duplicates.
    equal: Vec<String>,
    buckets: HashMap<Vec<String>, Bucket>,
    sources: HashMap<Fingerprint, Indexed>,
}

impl Rule {
    fn key(&self, labels: &LabelSet) -> Vec<String> {
        self.equal
            .iter()
            .map(|n| labels.get(n).cloned().unwrap_or_default())
            .collect()
    }

    fn remove(&mut self, fp: Fingerprint) {
        let Some(old) = self.sources.remove(&fp) else {
            return;
        };
        if let Some(b) = self.buckets.get_mut(&old.key) {
            b.set(old.two_sided).remove(&(old.end, fp));
            if b.is_empty() {
                self.buckets.remove(&old.key);
            }
        }
    }
}

/// Index of the source alerts of every inhibition rule. Fed by the dispatcher with each
/// alert change ([`Inhibitor::observe`], [`Inhibitor::forget`]) and asked at flush time
/// ([`Inhibitor::inhibited_by`]). Holds only alerts that match some rule's source matchers.
#[derive(Debug, Default)]
pub struct Inhibitor {
    rules: Vec<Rule>,
    /// Rules whose source matchers include `name="value"` (value non-empty), by that
    /// matcher: an alert is only tried against the rules indexed under its own labels and
    /// the unindexed ones, so a hundred rules cost a few hash lookups per observed alert.
    by_source_label: RuleIndex,
    /// The same for the target matchers (what [`Inhibitor::inhibited_by`] tries).
    by_target_label: RuleIndex,
}

/// Rule indices by one equality matcher of one side.
#[derive(Debug, Default)]
struct RuleIndex(LabelIndex<usize>);

impl RuleIndex {
    fn build<'a>(sides: impl Iterator<Item = &'a Matchers>) -> Self {
        let mut idx = LabelIndex::default();
        for (i, ms) in sides.enumerate() {
            idx.insert(&ms.0, i);
        }
        RuleIndex(idx)
    }

    /// Rules that may match `labels`, in rule order, each once.
    fn candidates(&self, labels: &LabelSet) -> Vec<usize> {
        let mut v: Vec<usize> = self.0.candidates(labels).copied().collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

impl Inhibitor {
    /// Build the index for validated rules.
    pub fn new(rules: &[InhibitRuleConfig]) -> Self {
        let rules = rules
            .iter()
            .map(|r| {
                let equal: BTreeSet<String> = r.equal.iter().cloned().collect();
                Rule {
                    source: r.source(),
                    target: r.target(),
                    equal: equal.into_iter().collect(),
                    buckets: HashMap::new(),
                    sources: HashMap::new(),
                }
            })
            .collect::<Vec<Rule>>();
        Inhibitor {
            by_source_label: RuleIndex::build(rules.iter().map(|r| &r.source)),
            by_target_label: RuleIndex::build(rules.iter().map(|r| &r.target)),
            rules,
        }
    }

    /// No rules: nothing is ever inhibited.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Record the current state of an alert (new, updated or resolved): indexed as a source
    /// for every rule whose source matchers it matches.
    pub fn observe(&mut self, fp: Fingerprint, labels: &LabelSet, ends_at: Option<OffsetDateTime>) {
        let end = end_key(ends_at);
        if self.rules.is_empty() {
            return;
        }
        let candidates = self.by_source_label.candidates(labels);
        for (i, rule) in self.rules.iter_mut().enumerate() {
            if !candidates.contains(&i) || !rule.source.matches(labels) {
                // Labels of a fingerprint do not change, but stay exact if a caller reuses one.
                if !rule.sources.is_empty() {
                    rule.remove(fp);
                }
                continue;
            }
            let key = rule.key(labels);
            let two_sided = rule.target.matches(labels);
            if let Some(old) = rule.sources.get(&fp) {
                if old.end == end && old.key == key && old.two_sided == two_sided {
                    continue;
                }
                rule.remove(fp);
            }
            rule.buckets
                .entry(key.clone())
                .or_default()
                .set(two_sided)
                .insert((end, fp));
            rule.sources.insert(
                fp,
                Indexed {
                    key,
                    end,
                    two_sided,
                },
            );
        }
    }

    /// The alert is gone from the store.
    pub fn forget(&mut self, fp: Fingerprint, labels: &LabelSet) {
        for rule in &mut self.rules {
            if rule.source.matches(labels) || rule.sources.contains_key(&fp) {
                rule.remove(fp);
            }
        }
    }

    /// Fingerprint of a source alert firing at `t` that inhibits this alert, if any (the
    /// first rule that inhibits it wins, as in Alertmanager).
    pub fn inhibited_by(
        &self,
        fp: Fingerprint,
        labels: &LabelSet,
        t: OffsetDateTime,
    ) -> Option<Fingerprint> {
        let t = t.unix_timestamp_nanos();
        if self.rules.iter().all(|r| r.sources.is_empty()) {
            return None;
        }
        self.by_target_label
            .candidates(labels)
            .into_iter()
            .find_map(|i| {
                let rule = &self.rules[i];
                if rule.sources.is_empty() || !rule.target.matches(labels) {
                    return None;
                }
                let bucket = rule.buckets.get(&rule.key(labels))?;
                firing(&bucket.one_sided, fp, t).or_else(|| {
                    if rule.source.matches(labels) {
                        None
                    } else {
                        firing(&bucket.two_sided, fp, t)
                    }
                })
            })
    }

    /// Drop every source that ended at or before `t`: it cannot inhibit anything any more
    /// (if it fires again, [`Inhibitor::observe`] indexes it anew). Keeps memory bounded
    /// as resolved alerts leave the store.
    pub fn prune(&mut self, t: OffsetDateTime) {
        let t = t.unix_timestamp_nanos();
        for rule in &mut self.rules {
            let ended: Vec<Fingerprint> = rule
                .sources
                .iter()
                .filter(|(_, i)| i.end <= t)
                .map(|(fp, _)| *fp)
                .collect();
            for fp in ended {
                rule.remove(fp);
            }
        }
    }

    /// Number of (rule, source) entries held (for tests and metrics).
    pub fn indexed_sources(&self) -> usize {
        self.rules.iter().map(|r| r.sources.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn ls(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rules(yaml: &str) -> Vec<InhibitRuleConfig> {
        let text =
            format!("route:\n  receiver: x\nreceivers:\n  - name: x\ninhibit_rules:\n{yaml}");
        Config::load_str(&text, "t.yml", Path::new("."))
            .unwrap()
            .inhibit_rules
    }

    fn load_err(yaml: &str) -> String {
        let text =
            format!("route:\n  receiver: x\nreceivers:\n  - name: x\ninhibit_rules:\n{yaml}");
        Config::load_str(&text, "t.yml", Path::new("."))
            .unwrap_err()
            .to_string()
    }

    type Labels<'a> = &'a [(&'a str, &'a str)];

    /// Feed alerts (labels, ends_at) and ask about `target`.
    fn check(
        yaml: &str,
        sources: &[(Labels, Option<OffsetDateTime>)],
        target: &[(&str, &str)],
    ) -> Option<Fingerprint> {
        let mut ih = Inhibitor::new(&rules(yaml));
        for (labels, end) in sources {
            let l = ls(labels);
            ih.observe(Fingerprint::of(&l), &l, *end);
        }
        let t = ls(target);
        ih.inhibited_by(Fingerprint::of(&t), &t, NOW)
    }

    const RULE: &str = "  - source_matchers: ['severity=\"critical\"']\n    target_matchers: ['severity=\"warning\"']\n    equal: [cluster]\n";

    #[test]
    fn basic_and_equal_labels() {
        let src: &[(&str, &str)] = &[("severity", "critical"), ("cluster", "a")];
        let fp = Fingerprint::of(&ls(src));
        assert_eq!(
            check(
                RULE,
                &[(src, None)],
                &[("severity", "warning"), ("cluster", "a")]
            ),
            Some(fp)
        );
        // different equal value
        assert_eq!(
            check(
                RULE,
                &[(src, None)],
                &[("severity", "warning"), ("cluster", "b")]
            ),
            None
        );
        // target matchers do not match
        assert_eq!(
            check(
                RULE,
                &[(src, None)],
                &[("severity", "info"), ("cluster", "a")]
            ),
            None
        );
        // equal label missing on one side only
        assert_eq!(
            check(RULE, &[(src, None)], &[("severity", "warning")]),
            None
        );
        // missing on both sides: "" == "" inhibits
        let bare: &[(&str, &str)] = &[("severity", "critical")];
        assert_eq!(
            check(RULE, &[(bare, None)], &[("severity", "warning")]),
            Some(Fingerprint::of(&ls(bare)))
        );
        // empty value and missing label are the same
        assert_eq!(
            check(
                RULE,
                &[(bare, None)],
                &[("severity", "warning"), ("cluster", "")]
            ),
            Some(Fingerprint::of(&ls(bare)))
        );
    }

    #[test]
    fn resolved_sources_do_not_inhibit() {
        let src: &[(&str, &str)] = &[("severity", "critical"), ("cluster", "a")];
        let target: &[(&str, &str)] = &[("severity", "warning"), ("cluster", "a")];
        let past = Some(NOW - time::Duration::minutes(1));
        let future = Some(NOW + time::Duration::minutes(1));
        assert_eq!(check(RULE, &[(src, past)], target), None);
        // resolving exactly now counts as resolved
        assert_eq!(check(RULE, &[(src, Some(NOW))], target), None);
        // an end time in the future still fires
        assert!(check(RULE, &[(src, future)], target).is_some());
    }

    #[test]
    fn one_of_two_sources_resolved() {
        let a = ls(&[("severity", "critical"), ("cluster", "a"), ("i", "1")]);
        let b = ls(&[("severity", "critical"), ("cluster", "a"), ("i", "2")]);
        let (fa, fb) = (Fingerprint::of(&a), Fingerprint::of(&b));
        let target = ls(&[("severity", "warning"), ("cluster", "a")]);
        let tf = Fingerprint::of(&target);
        let mut ih = Inhibitor::new(&rules(RULE));
        ih.observe(fa, &a, None);
        ih.observe(fb, &b, None);
        assert!(ih.inhibited_by(tf, &target, NOW).is_some());
        // a resolves: b still fires
        ih.observe(fa, &a, Some(NOW - time::Duration::seconds(1)));
        assert_eq!(ih.inhibited_by(tf, &target, NOW), Some(fb));
        // the other order: b resolves later than a fires again
        ih.observe(fa, &a, None);
        ih.observe(fb, &b, Some(NOW - time::Duration::seconds(1)));
        assert_eq!(ih.inhibited_by(tf, &target, NOW), Some(fa));
        // both resolved
        ih.observe(fa, &a, Some(NOW));
        assert_eq!(ih.inhibited_by(tf, &target, NOW), None);
        // a source ending in the future inhibits until then only
        let soon = NOW + time::Duration::minutes(5);
        ih.observe(fb, &b, Some(soon));
        assert_eq!(ih.inhibited_by(tf, &target, NOW), Some(fb));
        assert_eq!(ih.inhibited_by(tf, &target, soon), None);
        // forgotten sources are gone
        ih.forget(fb, &b);
        ih.forget(fa, &a);
        assert_eq!(ih.indexed_sources(), 0);
        assert_eq!(ih.inhibited_by(tf, &target, NOW), None);
    }

    #[test]
    fn never_inhibits_itself_and_two_sided_matches() {
        // Every alert with a `cluster` label is both source and target.
        let rule =
            "  - source_matchers: ['cluster=~\".+\"']\n    target_matchers: ['cluster=~\".+\"']\n";
        let a: &[(&str, &str)] = &[("cluster", "a")];
        assert_eq!(check(rule, &[(a, None)], a), None);
        // another alert matching both sides does not inhibit one matching both sides
        assert_eq!(check(rule, &[(a, None)], &[("cluster", "b")]), None);

        // source matchers: a=1; target matchers: b=1
        let rule = "  - source_matchers: [a=1]\n    target_matchers: [b=1]\n";
        let both: &[(&str, &str)] = &[("a", "1"), ("b", "1"), ("n", "x")];
        let src_only: &[(&str, &str)] = &[("a", "1")];
        // a target that is not a source is inhibited by a two-sided source
        assert_eq!(
            check(rule, &[(both, None)], &[("b", "1")]),
            Some(Fingerprint::of(&ls(both)))
        );
        // a two-sided target ignores two-sided sources but not one-sided ones
        let other_both: &[(&str, &str)] = &[("a", "1"), ("b", "1"), ("n", "y")];
        assert_eq!(check(rule, &[(both, None)], other_both), None);
        assert_eq!(
            check(rule, &[(both, None), (src_only, None)], other_both),
            Some(Fingerprint::of(&ls(src_only)))
        );
    }

    #[test]
    fn deprecated_keys_and_no_target_matchers() {
        let rule = "  - source_match: {alertname: NodeDown}\n    source_match_re: {dc: 'eu-.*'}\n    target_match: {severity: warning}\n    target_match_re: {team: 'db|web'}\n    equal: [instance]\n";
        let src: &[(&str, &str)] = &[("alertname", "NodeDown"), ("dc", "eu-1"), ("instance", "h")];
        let tgt: &[(&str, &str)] = &[("severity", "warning"), ("team", "db"), ("instance", "h")];
        assert!(check(rule, &[(src, None)], tgt).is_some());
        let wrong_dc: &[(&str, &str)] =
            &[("alertname", "NodeDown"), ("dc", "us-1"), ("instance", "h")];
        assert_eq!(check(rule, &[(wrong_dc, None)], tgt), None);
        let wrong_team: &[(&str, &str)] =
            &[("severity", "warning"), ("team", "dba"), ("instance", "h")];
        assert_eq!(check(rule, &[(src, None)], wrong_team), None);
        // deprecated and new matchers are ANDed
        let mixed =
            "  - source_match: {alertname: NodeDown}\n    source_matchers: ['dc=\"eu-1\"']\n";
        assert!(check(mixed, &[(src, None)], &[("x", "y")]).is_some());
        assert_eq!(check(mixed, &[(wrong_dc, None)], &[("x", "y")]), None);

        // no target matchers: every alert is a target; no equal: any source inhibits
        let rule = "  - source_matchers: [maintenance=true]\n";
        let src: &[(&str, &str)] = &[("maintenance", "true")];
        assert!(check(rule, &[(src, None)], &[("alertname", "Anything")]).is_some());
        // the source itself (matches both sides) is not inhibited
        assert_eq!(check(rule, &[(src, None)], src), None);
    }

    #[test]
    fn only_sources_are_held_and_rules_are_ordered() {
        let two = format!("{RULE}  - source_matchers: [a=1]\n");
        let mut ih = Inhibitor::new(&rules(&two));
        assert!(!ih.is_empty());
        let plain = ls(&[("severity", "warning")]);
        ih.observe(Fingerprint::of(&plain), &plain, None);
        assert_eq!(ih.indexed_sources(), 0);
        let src = ls(&[("severity", "critical"), ("a", "1")]);
        ih.observe(Fingerprint::of(&src), &src, None);
        assert_eq!(ih.indexed_sources(), 2);
        assert!(Inhibitor::new(&[]).is_empty());
        assert!(Inhibitor::new(&[])
            .inhibited_by(Fingerprint(1), &plain, NOW)
            .is_none());
    }

    #[test]
    fn invalid_rules_are_rejected() {
        let cases = [
            ("  - source_matchers: ['a=~[z']\n", "invalid matcher"),
            (
                "  - source_match: {'1a': x}\n",
                "inhibit_rules[0].source_match: invalid label name \"1a\"",
            ),
            (
                "  - target_match_re: {'a-b': x}\n",
                "inhibit_rules[0].target_match_re: invalid label name",
            ),
            ("  - target_match_re: {a: '('}\n", "match_re a"),
            (
                "  - equal: [a]\n  - equal: ['']\n",
                "inhibit_rules[1].equal: invalid label name \"\" in equal list",
            ),
            (
                "  - sourse_matchers: []\n",
                "unknown field `sourse_matchers`",
            ),
        ];
        for (yaml, want) in cases {
            let e = load_err(yaml);
            assert!(e.contains(want), "{yaml}\n=> {e}\nwant {want}");
        }
    }

    /// Random observe/forget/query sequences against a brute-force scan of every alert.
    #[test]
    fn index_agrees_with_a_full_scan() {
        let cfg = rules(
            "  - source_matchers: ['sev=~\"crit|both\"']\n    target_matchers: ['sev=~\"warn|both\"']\n    equal: [c]\n  - source_matchers: [k=1]\n",
        );
        let mut ih = Inhibitor::new(&cfg);
        let (src, tgt) = (cfg[0].source(), cfg[0].target());
        let (src2, tgt2) = (cfg[1].source(), cfg[1].target());
        let mut live: HashMap<Fingerprint, (LabelSet, Option<OffsetDateTime>)> = HashMap::new();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        let sevs = ["crit", "warn", "both", "info"];
        let mut outcomes = [0u32; 2];
        for _ in 0..20_000 {
            let mut l = ls(&[("sev", sevs[next(4) as usize])]);
            if next(3) > 0 {
                l.insert("c".into(), format!("{}", next(3)));
            }
            if next(2) == 0 {
                l.insert("k".into(), "1".into());
            }
            l.insert("i".into(), format!("{}", next(4)));
            let fp = Fingerprint::of(&l);
            match next(4) {
                0 => {
                    ih.forget(fp, &l);
                    live.remove(&fp);
                }
                1 => {
                    let end = match next(3) {
                        0 => None,
                        1 => Some(NOW - time::Duration::seconds(next(3) as i64)),
                        _ => Some(NOW + time::Duration::seconds(next(3) as i64)),
                    };
                    ih.observe(fp, &l, end);
                    live.insert(fp, (l, end));
                }
                _ => {
                    let firing = |e: &Option<OffsetDateTime>| e.is_none_or(|e| e > NOW);
                    let scan = |s: &Matchers, t: &Matchers, eq: &[&str]| {
                        t.matches(&l)
                            && live.iter().any(|(sfp, (sl, e))| {
                                *sfp != fp
                                    && firing(e)
                                    && s.matches(sl)
                                    && !(s.matches(&l) && t.matches(sl))
                                    && eq.iter().all(|n| sl.get(*n) == l.get(*n))
                            })
                    };
                    let want = scan(&src, &tgt, &["c"]) || scan(&src2, &tgt2, &[]);
                    let got = ih.inhibited_by(fp, &l, NOW);
                    assert_eq!(got.is_some(), want, "{l:?}");
                    outcomes[usize::from(want)] += 1;
                    if let Some(g) = got {
                        let (_, e) = &live[&g];
                        assert!(firing(e), "reported a resolved source");
                    }
                }
            }
        }
        assert!(outcomes.iter().all(|&n| n > 500), "{outcomes:?}");
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Inhibitor>();
    }
}
