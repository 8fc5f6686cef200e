//! Label selectors, as Kubernetes matches them, for an instance's `namespaceSelector`.
//! Our own few lines: k8s-openapi has the type but no matcher, and kube's `Selector` can't be
//! built from a `LabelSelector` that holds an operator it does not know without failing the
//! whole match, where we want the instance to refuse (an unknown operator matches nothing).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Does `labels` match `selector`? An empty selector matches everything; an expression with an
/// unknown operator matches nothing (fail closed).
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn match_labels_and_expressions_all_have_to_hold() {
        let support = labels(&[("team", "support"), ("env", "prod")]);
        let empty = LabelSelector::default();
        assert!(matches(&empty, &support));
        assert!(matches(&empty, &labels(&[])));

        let team = LabelSelector {
            match_labels: Some(labels(&[("team", "support")])),
            ..Default::default()
        };
        assert!(matches(&team, &support));
        assert!(!matches(&team, &labels(&[("team", "sales")])));
        assert!(!matches(&team, &labels(&[])));

        let with = |e| LabelSelector {
            match_expressions: Some(vec![e]),
            ..Default::default()
        };
        assert!(matches(
            &with(expression("env", "In", &["prod", "staging"])),
            &support
        ));
        assert!(!matches(&with(expression("env", "In", &["dev"])), &support));
        assert!(matches(
            &with(expression("env", "NotIn", &["dev"])),
            &support
        ));
        assert!(matches(
            &with(expression("tier", "NotIn", &["dev"])),
            &support
        ));
        assert!(matches(&with(expression("team", "Exists", &[])), &support));
        assert!(!matches(
            &with(expression("team", "DoesNotExist", &[])),
            &support
        ));
        assert!(!matches(
            &with(expression("team", "Sometimes", &[])),
            &support
        ));
    }
}
