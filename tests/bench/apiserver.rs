//! API-server writes, counted by the API server itself: `apiserver_request_total` from its
//! `/metrics`, read before and after a phase.

use std::collections::BTreeMap;

use crate::support::control_plane;

/// Write requests answered, by `"verb resource[/subresource]"` (verbs as kubectl names them:
/// create, update, patch, delete, deletecollection, apply), with ` [CODE]` added for answers
/// other than 2xx (a 409 is a write attempted and refused).
pub type Writes = BTreeMap<String, u64>;

/// Reads the API server's metrics now.
pub fn snapshot() -> Writes {
    let out = control_plane()
        .kubectl()
        .args(["get", "--raw", "/metrics"])
        .output()
        .expect("run kubectl get --raw /metrics");
    assert!(
        out.status.success(),
        "could not read the API server's metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_writes(&String::from_utf8_lossy(&out.stdout))
}

/// The write counts in a Prometheus text exposition.
pub fn parse_writes(text: &str) -> Writes {
    let mut writes = Writes::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let labels = parse_labels(labels);
        let Some(verb) = labels.get("verb").and_then(|v| write_verb(v)) else {
            continue;
        };
        let resource = match labels.get("subresource").map(String::as_str) {
            Some("") | None => labels.get("resource").cloned().unwrap_or_default(),
            Some(sub) => format!(
                "{}/{sub}",
                labels.get("resource").cloned().unwrap_or_default()
            ),
        };
        let code = labels.get("code").map(String::as_str).unwrap_or("");
        let key = if code.starts_with('2') {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource} [{code}]")
        };
        let count = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        *writes.entry(key).or_default() += count;
    }
    writes
}

/// The metric's verb label (HTTP-style) as kubectl's verb, for the verbs that write.
fn write_verb(label: &str) -> Option<&'static str> {
    Some(match label {
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        "DELETECOLLECTION" => "deletecollection",
        "APPLY" => "apply",
        _ => return None,
    })
}

/// `a="x",b="y\"z"` → {a: x, b: y"z}.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() || chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(name.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

/// What was written between two snapshots (series that didn't move are left out).
pub fn delta(before: &Writes, after: &Writes) -> Writes {
    after
        .iter()
        .filter_map(|(key, n)| {
            let d = n.saturating_sub(before.get(key).copied().unwrap_or(0));
            (d > 0).then(|| (key.clone(), d))
        })
        .collect()
}

/// `writes` less the ones the benchmark itself made (the operator made the rest).
pub fn without(mut writes: Writes, own: &[(&str, u64)]) -> Writes {
    for (key, n) in own {
        if let Some(count) = writes.get_mut(*key) {
            *count = count.saturating_sub(*n);
        }
    }
    writes.retain(|_, n| *n > 0);
    writes
}

pub fn total(writes: &Writes) -> u64 {
    writes.values().sum()
}

/// Writes that serve requests: everything but Leases, which kube-apiserver renews for itself
/// every 10 s (and an operator with leader election every few seconds), whatever the load,
/// and reviews (SubjectAccessReviews and the like), which are questions, not stored objects.
pub fn per_request(writes: &Writes) -> u64 {
    writes
        .iter()
        .filter(|(key, _)| !matches!(resource_of(key), "leases") && !is_review(key))
        .map(|(_, n)| n)
        .sum()
}

/// [`per_request`] less Events.
pub fn per_request_without_events(writes: &Writes) -> u64 {
    writes
        .iter()
        .filter(|(key, _)| !matches!(resource_of(key), "leases" | "events") && !is_review(key))
        .map(|(_, n)| n)
        .sum()
}

/// Events alone.
pub fn events(writes: &Writes) -> u64 {
    writes
        .iter()
        .filter(|(key, _)| resource_of(key) == "events")
        .map(|(_, n)| n)
        .sum()
}

/// SubjectAccessReviews sent (any answer): the governance checks' calls, apart from writes.
pub fn subject_access_reviews(writes: &Writes) -> u64 {
    writes
        .iter()
        .filter(|(key, _)| resource_of(key) == "subjectaccessreviews")
        .map(|(_, n)| n)
        .sum()
}

/// A POST to a review resource (`subjectaccessreviews`, `selfsubjectaccessreviews`,
/// `tokenreviews`, …) asks the API server a question and stores nothing.
fn is_review(key: &str) -> bool {
    resource_of(key).ends_with("reviews")
}

/// `"patch actortokenrequests/status [409]"` → `"actortokenrequests"`.
fn resource_of(key: &str) -> &str {
    let resource = key.split(' ').nth(1).unwrap_or("");
    resource.split('/').next().unwrap_or("")
}
