//! The CEL the admission policies are made of, as small functions so that each rule is written
//! once and shared by the policies that need it (ClusterClerkInstance and ClerkInstance params
//! check the same user and actor rules).

use crate::api::{APPROVE_VERB, FINALIZER, GROUP, ISSUE_VERB, USE_VERB};

/// The decision conditions, as a CEL list.
pub const DECISIONS: &str = "['Approved', 'Denied']";

/// `request.userInfo` as the object the policies stamp (`spec.requester`, `status.decidedBy`),
/// built with the type path `ty` (e.g. `Object.spec.requester`). `uid` is absent for users who
/// authenticate by certificate, so it is carried as an optional field.
pub fn stamped_user(ty: &str) -> String {
    format!(
        "{ty}{{username: request.userInfo.username, ?uid: request.userInfo.?uid, \
         groups: request.userInfo.?groups.orValue([])}}"
    )
}

/// `field` (an optional-chained path to a stamped user, e.g. `object.spec.?requester`) is
/// exactly `request.userInfo`.
pub fn is_the_user(field: &str) -> String {
    format!(
        "{field}.?username == optional.of(request.userInfo.username) && \
         {field}.?uid == request.userInfo.?uid && \
         {field}.?groups.orValue([]) == request.userInfo.?groups.orValue([])"
    )
}

/// An authorizer check of `verb` on the request's instance.
pub fn may_on_instance(verb: &str) -> String {
    format!(
        "(object.spec.instanceRef.kind == 'ClusterClerkInstance' ? \
         authorizer.group('{GROUP}').resource('clusterclerkinstances').name(object.spec.instanceRef.name).check('{verb}').allowed() : \
         authorizer.group('{GROUP}').resource('clerkinstances').namespace(request.namespace).name(object.spec.instanceRef.name).check('{verb}').allowed())"
    )
}

pub fn may_use_instance() -> String {
    may_on_instance(USE_VERB)
}

pub fn may_approve_on_instance() -> String {
    may_on_instance(APPROVE_VERB)
}

/// The operator is whoever holds the virtual verb `issue` on requests: the chart grants it to
/// the operator's ServiceAccount alone. So the policies need no username of it.
pub fn is_operator() -> String {
    format!(
        "authorizer.group('{GROUP}').resource('actortokenrequests').namespace(request.namespace).check('{ISSUE_VERB}').allowed()"
    )
}

/// The request's instance, for messages: `ClusterClerkInstance default`.
pub fn instance_described() -> &'static str {
    "object.spec.instanceRef.kind + ' ' + object.spec.instanceRef.name"
}

/// The JSONPatch operations that put the operator's finalizer on a new request, unless there.
pub fn add_finalizer() -> String {
    format!(
        "!has(object.metadata.finalizers) ? \
         [JSONPatch{{op: 'add', path: '/metadata/finalizers', value: ['{FINALIZER}']}}] : \
         (object.metadata.finalizers.exists(f, f == '{FINALIZER}') ? [] : \
         [JSONPatch{{op: 'add', path: '/metadata/finalizers/-', value: '{FINALIZER}'}}])"
    )
}

/// A label selector (`selector`, a path to a `LabelSelector`) matching `labels` (a map), as
/// Kubernetes matches it; an unknown operator matches nothing.
pub fn selector_matches(selector: &str, labels: &str) -> String {
    format!(
        "{selector}.?matchLabels.orValue({{}}).all(k, k in {labels} && {labels}[k] == {selector}.matchLabels[k]) && \
         {selector}.?matchExpressions.orValue([]).all(e, \
           e.operator == 'In' ? (e.key in {labels} && {labels}[e.key] in e.?values.orValue([])) : \
           e.operator == 'NotIn' ? (!(e.key in {labels}) || !({labels}[e.key] in e.?values.orValue([]))) : \
           e.operator == 'Exists' ? e.key in {labels} : \
           e.operator == 'DoesNotExist' ? !(e.key in {labels}) : false)"
    )
}

/// A subject (RBAC-like: `kind`, `name`, `namespace`) naming the user making the request.
pub fn subject_is_the_user(subject: &str) -> String {
    format!(
        "({subject}.kind == 'User' ? {subject}.name == request.userInfo.username : \
          {subject}.kind == 'Group' ? {subject}.name in request.userInfo.?groups.orValue([]) : \
          request.userInfo.username == 'system:serviceaccount:' + {subject}.?__namespace__.orValue('') + ':' + {subject}.name)"
    )
}
