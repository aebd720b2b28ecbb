//! The routing tree: Alertmanager's `route` with inherited options, `continue`, depth-first
//! matching, group labels and group keys.

use crate::alert::{Fingerprint, LabelSet};
use crate::config::RouteConfig;
use crate::matcher::{label_set_string, MatchType, Matcher, Matchers};
use std::time::Duration;

/// Which labels form a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Labels(Vec<String>),
    /// `group_by: ['...']`: every label.
    All,
}

/// A route node with its options resolved (inherited from the parent where unset).
#[derive(Debug, Clone)]
pub struct Route {
    /// Position in the tree (`0`, `0.2`, `0.2.1`), unique per node; `direct:<receiver>`
    /// for the synthetic routes of `POST /webhook/{receiver}`.
    pub id: String,
    /// Alertmanager's route key: matchers of every node from the root, joined by `/`.
    pub key: String,
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub matchers: Matchers,
    pub continue_matching: bool,
    /// `mute_time_intervals` of this node (Alertmanager does not inherit them).
    pub mute_time_intervals: Vec<String>,
    /// `active_time_intervals` of this node (Alertmanager does not inherit them).
    pub active_time_intervals: Vec<String>,
    pub routes: Vec<Route>,
}

const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(300);
const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

impl Route {
    /// Build the tree from a validated root route.
    pub fn from_config(cfg: &RouteConfig) -> Route {
        let root = Route {
            id: "0".into(),
            key: String::new(),
            receiver: String::new(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            matchers: Matchers::default(),
            continue_matching: false,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            routes: Vec::new(),
        };
        Route::build(cfg, &root, "0".into(), true)
    }

    fn build(cfg: &RouteConfig, parent: &Route, id: String, is_root: bool) -> Route {
        let mut ms: Vec<Matcher> = Vec::new();
        for (k, v) in &cfg.match_eq {
            if let Ok(m) = Matcher::new(k.clone(), MatchType::Equal, v.clone()) {
                ms.push(m);
            }
        }
        for (k, v) in &cfg.match_re.0 {
            if let Ok(m) = Matcher::new(k.clone(), MatchType::Regex, v.clone()) {
                ms.push(m);
            }
        }
        ms.extend(cfg.matchers.1.iter().cloned());
        let matchers = Matchers(ms);
        let own_key = matchers.route_key_string();
        let key = if is_root {
            own_key
        } else {
            format!("{}/{}", parent.key, own_key)
        };
        let group_by = match &cfg.group_by {
            Some(v) if v.len() == 1 && v[0] == "..." => GroupBy::All,
            Some(v) => GroupBy::Labels(v.clone()),
            None => parent.group_by.clone(),
        };
        let mut route = Route {
            id: id.clone(),
            key,
            receiver: cfg
                .receiver
                .as_ref()
                .map(|r| r.value.clone())
                .unwrap_or_else(|| parent.receiver.clone()),
            group_by,
            group_wait: cfg.group_wait.map(|d| d.0).unwrap_or(parent.group_wait),
            group_interval: cfg
                .group_interval
                .map(|d| d.0)
                .unwrap_or(parent.group_interval),
            repeat_interval: cfg
                .repeat_interval
                .map(|d| d.0)
                .unwrap_or(parent.repeat_interval),
            matchers,
            continue_matching: cfg.continue_matching,
            mute_time_intervals: cfg.mute_time_intervals.clone(),
            active_time_intervals: cfg.active_time_intervals.clone(),
            routes: Vec::new(),
        };
        let children = cfg
            .routes
            .iter()
            .enumerate()
            .map(|(i, c)| Route::build(c, &route, format!("{id}.{i}"), false))
            .collect();
        route.routes = children;
        route
    }

    /// The synthetic route used by `POST /webhook/{receiver}`: the root's timing and
    /// grouping, delivering to `receiver`.
    pub fn direct(root: &Route, receiver: &str) -> Route {
        Route {
            id: format!("direct:{receiver}"),
            key: format!("{}/direct:{receiver}", root.key),
            receiver: receiver.to_string(),
            routes: Vec::new(),
            continue_matching: false,
            ..root.clone()
        }
    }

    /// Depth-first match: the deepest matching nodes, honouring `continue`.
    pub fn match_labels<'a>(&'a self, labels: &LabelSet) -> Vec<&'a Route> {
        let mut out = Vec::new();
        self.match_into(labels, &mut out);
        out
    }

    fn match_into<'a>(&'a self, labels: &LabelSet, out: &mut Vec<&'a Route>) -> bool {
        if !self.matchers.matches(labels) {
            return false;
        }
        let before = out.len();
        for child in &self.routes {
            if child.match_into(labels, out) && !child.continue_matching {
                break;
            }
        }
        if out.len() == before {
            out.push(self);
        }
        true
    }

    /// The labels of `labels` that form this route's group (absent labels omitted).
    pub fn group_labels(&self, labels: &LabelSet) -> LabelSet {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        }
    }

    /// Alertmanager's group key: `<route key>:<group labels>`.
    pub fn group_key(&self, group_labels: &LabelSet) -> String {
        format!("{}:{}", self.key, label_set_string(group_labels))
    }

    /// Identity of the aggregation group an alert with these group labels joins.
    pub fn group_id(&self, group_labels: &LabelSet) -> String {
        format!("{}|{}", self.id, Fingerprint::of(group_labels))
    }

    /// Every node, depth-first (for listing).
    pub fn walk<'a>(&'a self, out: &mut Vec<&'a Route>) {
        out.push(self);
        for c in &self.routes {
            c.walk(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn tree(yaml: &str) -> Route {
        let cfg = Config::load_str(yaml, "test.yml", Path::new(".")).unwrap();
        Route::from_config(&cfg.route)
    }

    fn ls(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const YAML: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  group_wait: 10s
  routes:
    - matchers: ['env="prod"']
      receiver: prod
      continue: true
      group_by: [alertname, cluster]
      routes:
        - matchers: ['severity=~"critical|page"']
          receiver: pager
          repeat_interval: 1h
    - match: {team: db}
      receiver: db
    - match_re: {service: "api|web"}
      receiver: web
      group_by: ['...']
receivers:
  - name: default
  - name: prod
  - name: pager
  - name: db
  - name: web
"#;

    fn receivers(r: &Route, labels: &[(&str, &str)]) -> Vec<String> {
        r.match_labels(&ls(labels))
            .iter()
            .map(|r| r.receiver.clone())
            .collect()
    }

    #[test]
    fn depth_first_with_continue() {
        let r = tree(YAML);
        assert_eq!(receivers(&r, &[("alertname", "x")]), ["default"]);
        assert_eq!(
            receivers(&r, &[("env", "prod"), ("severity", "critical")]),
            ["pager"]
        );
        // continue on the prod route lets the db route match too
        assert_eq!(
            receivers(&r, &[("env", "prod"), ("team", "db")]),
            ["prod", "db"]
        );
        // without continue, the first match stops the search
        assert_eq!(receivers(&r, &[("team", "db"), ("service", "api")]), ["db"]);
        // regexes are anchored
        assert_eq!(receivers(&r, &[("service", "apis")]), ["default"]);
        assert_eq!(receivers(&r, &[("service", "web")]), ["web"]);
    }

    #[test]
    fn options_are_inherited() {
        let r = tree(YAML);
        let pager = &r.routes[0].routes[0];
        assert_eq!(pager.group_wait, Duration::from_secs(10));
        assert_eq!(pager.repeat_interval, Duration::from_secs(3600));
        assert_eq!(pager.group_interval, DEFAULT_GROUP_INTERVAL);
        assert_eq!(
            pager.group_by,
            GroupBy::Labels(vec!["alertname".into(), "cluster".into()])
        );
        assert_eq!(
            r.routes[1].group_by,
            GroupBy::Labels(vec!["alertname".into()])
        );
        assert_eq!(r.routes[2].group_by, GroupBy::All);
    }

    #[test]
    fn group_keys_match_alertmanager() {
        let r = tree(YAML);
        let labels = ls(&[
            ("alertname", "HighErrorRate"),
            ("cluster", "aa"),
            ("env", "prod"),
            ("severity", "page"),
        ]);
        let m = r.match_labels(&labels);
        let gl = m[0].group_labels(&labels);
        assert_eq!(
            m[0].group_key(&gl),
            r#"{}/{env="prod"}/{severity=~"critical|page"}:{alertname="HighErrorRate", cluster="aa"}"#
        );
        let root_only = r.group_key(&r.group_labels(&ls(&[("alertname", "test1")])));
        assert_eq!(root_only, r#"{}:{alertname="test1"}"#);
        // absent group_by labels are omitted, not empty
        assert_eq!(
            m[0].group_labels(&ls(&[("alertname", "x")])),
            ls(&[("alertname", "x")])
        );
    }
}
