//! The session routes: `GET /v1/sessions` (GetSessionList) and
//! `POST /v1/sessions/{session_id}/revoke` (RevokeSession), behind the same guard as the
//! actor-token routes.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde_json::json;

use crate::errors::{ClerkError, error_response, json_response};
use crate::session::SessionStatus;
use crate::state::Shared;

/// The `status` values GetSessionList's `status` parameter allows (its enum in the spec).
pub(crate) const STATUS_FILTERS: [&str; 7] = [
    "abandoned",
    "active",
    "ended",
    "expired",
    "removed",
    "replaced",
    "revoked",
];
/// `LimitParameter` in the spec: default 10, 1 to 500.
pub(crate) const DEFAULT_LIMIT: i64 = 10;
pub(crate) const MAX_LIMIT: i64 = 500;

/// A GetSessionList query that passed validation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    /// One of [`STATUS_FILTERS`].
    pub status: Option<String>,
    /// `paginated=true`: answer `{data, total_count}` instead of a bare array.
    pub paginated: bool,
    pub limit: usize,
    pub offset: usize,
}

/// Validates a GetSessionList query string against the parameters the spec defines:
/// `client_id`, `user_id` (strings), `status` (its enum), `paginated` (boolean: `true` or
/// `false`), `limit` (integer 1–500, default 10), `offset` (integer ≥ 0, default 0), plus the
/// rule the spec states in words, that at least one of `client_id` and `user_id` is given.
///
/// As a Go form decoder reads a query (Clerk's API is written in Go): a repeated parameter
/// counts once, with its first value; an empty value counts as not given; parameters the
/// spec does not define are ignored. Every problem is reported, as 422 errors.
pub(crate) fn parse_list_query(query: &str) -> Result<ListQuery, Vec<ClerkError>> {
    let mut first: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if !first.iter().any(|(n, _)| *n == name) {
            first.push((name.into_owned(), value.into_owned()));
        }
    }
    let get = |name: &str| {
        first
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let mut problems = Vec::new();

    let client_id = get("client_id");
    let user_id = get("user_id");
    if client_id.is_none() && user_id.is_none() {
        problems.push(ClerkError::param_missing_with(
            "user_id",
            "Either client_id or user_id must be provided.",
        ));
    }
    let status = get("status");
    if let Some(status) = &status
        && !STATUS_FILTERS.contains(&status.as_str())
    {
        problems.push(ClerkError::param_value_invalid(
            "status",
            format!("status must be one of: {}.", STATUS_FILTERS.join(", ")),
        ));
    }
    let paginated = match get("paginated").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            problems.push(ClerkError::param_format_invalid(
                "paginated",
                "must be a boolean (true or false)",
            ));
            false
        }
    };
    let mut integer = |name: &str, default: i64, min: i64, max: i64| {
        let Some(text) = get(name) else {
            return default;
        };
        match text.parse::<i64>() {
            Err(_) => {
                problems.push(ClerkError::param_format_invalid(name, "must be an integer"));
                default
            }
            Ok(n) if n < min || n > max => {
                let range = if max == i64::MAX {
                    format!("{name} must be {min} or more.")
                } else {
                    format!("{name} must be between {min} and {max}.")
                };
                problems.push(ClerkError::param_value_invalid(name, range));
                default
            }
            Ok(n) => n,
        }
    };
    let limit = integer("limit", DEFAULT_LIMIT, 1, MAX_LIMIT);
    let offset = integer("offset", 0, 0, i64::MAX);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ListQuery {
        client_id,
        user_id,
        status,
        paginated,
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        offset: usize::try_from(offset).unwrap_or(usize::MAX),
    })
}

/// Newest first (the spec: "sorted by creation date, with the newest sessions appearing
/// first"), filtered, then `offset`/`limit` applied. `total_count` counts every match.
pub(crate) async fn list(State(sim): State<Arc<Shared>>, uri: Uri) -> Response {
    let query = match parse_list_query(uri.query().unwrap_or("")) {
        Ok(query) => query,
        Err(problems) => return error_response(StatusCode::UNPROCESSABLE_ENTITY, problems),
    };
    let now = sim.now_ms();
    let inner = sim.lock();
    let mut matching: Vec<_> = inner
        .sessions
        .iter()
        .rev()
        .filter(|s| query.client_id.as_ref().is_none_or(|c| *c == s.client_id))
        .filter(|s| query.user_id.as_ref().is_none_or(|u| *u == s.user_id))
        .filter(|s| {
            query
                .status
                .as_deref()
                .is_none_or(|status| status == s.status_at(now).as_str())
        })
        .collect();
    // Stable: sessions made in the same millisecond stay newest (last made) first.
    matching.sort_by_key(|s| std::cmp::Reverse(s.created_ms));
    let total_count = matching.len();
    let page: Vec<_> = matching
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|s| s.body(now))
        .collect();
    if query.paginated {
        json_response(
            StatusCode::OK,
            &json!({ "data": page, "total_count": total_count }),
        )
    } else {
        json_response(StatusCode::OK, &page)
    }
}

/// Only an active session can be revoked. Revoking one that is already revoked or has
/// expired answers 400 (the spec declares a 400 for RevokeSession, and a request with only a
/// path parameter can only be refused for the state it finds), in the words Clerk uses for
/// an actor token that cannot be revoked. Revoke takes no body: whatever is sent is ignored.
pub(crate) async fn revoke(
    State(sim): State<Arc<Shared>>,
    Path(session_id): Path<String>,
) -> Response {
    let now = sim.now_ms();
    let mut inner = sim.lock();
    let Some(&index) = inner.session_index.get(&session_id) else {
        return error_response(
            StatusCode::NOT_FOUND,
            vec![ClerkError::not_found("session", &session_id)],
        );
    };
    let session = &mut inner.sessions[index];
    match session.status_at(now) {
        SessionStatus::Active => {
            session.revoked_ms = Some(now);
            json_response(StatusCode::OK, &session.body(now))
        }
        status => error_response(
            StatusCode::BAD_REQUEST,
            vec![ClerkError::new(
                SESSION_CANNOT_BE_REVOKED,
                "cannot revoke",
                format!(
                    "Session cannot be revoked because its status is {}. Only active sessions can be revoked.",
                    status.as_str()
                ),
            )],
        ),
    }
}

/// The code of the 400 for revoking a session that is not active. Clerk's error index lists
/// none for this case; the simulator names it after `actor_token_cannot_be_revoked_code`.
pub(crate) const SESSION_CANNOT_BE_REVOKED: &str = "session_cannot_be_revoked_code";

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(query: &str) -> Vec<(String, String)> {
        parse_list_query(query)
            .unwrap_err()
            .into_iter()
            .map(|e| {
                let param = e
                    .meta
                    .get("param_name")
                    .and_then(|p| p.as_str())
                    .unwrap_or("")
                    .to_owned();
                (e.code, param)
            })
            .collect()
    }

    fn pair(code: &str, param: &str) -> (String, String) {
        (code.to_owned(), param.to_owned())
    }

    #[test]
    fn defaults_apply_when_only_a_user_is_given() {
        assert_eq!(
            parse_list_query("user_id=user_1").unwrap(),
            ListQuery {
                client_id: None,
                user_id: Some("user_1".into()),
                status: None,
                paginated: false,
                limit: 10,
                offset: 0,
            }
        );
    }

    #[test]
    fn every_parameter_is_read_and_decoded() {
        let q = parse_list_query(
            "client_id=client_1&user_id=user%5F1&status=active&paginated=true&limit=500&offset=3",
        )
        .unwrap();
        assert_eq!(q.client_id.as_deref(), Some("client_1"));
        assert_eq!(q.user_id.as_deref(), Some("user_1"));
        assert_eq!(q.status.as_deref(), Some("active"));
        assert!(q.paginated);
        assert_eq!((q.limit, q.offset), (500, 3));
        assert!(
            !parse_list_query("user_id=u&paginated=false")
                .unwrap()
                .paginated
        );
    }

    #[test]
    fn a_client_or_a_user_is_required() {
        assert_eq!(codes(""), [pair("form_param_missing", "user_id")]);
        assert_eq!(
            codes("user_id=&status=active"),
            [pair("form_param_missing", "user_id")]
        );
        assert!(parse_list_query("client_id=client_1").is_ok());
    }

    #[test]
    fn bad_values_are_422_with_the_parameter_named() {
        assert_eq!(
            codes("user_id=u&status=Active"),
            [pair("form_param_value_invalid", "status")]
        );
        assert_eq!(
            codes("user_id=u&status=pending"),
            [pair("form_param_value_invalid", "status")]
        );
        assert_eq!(
            codes("user_id=u&limit=0"),
            [pair("form_param_value_invalid", "limit")]
        );
        assert_eq!(
            codes("user_id=u&limit=501"),
            [pair("form_param_value_invalid", "limit")]
        );
        assert_eq!(
            codes("user_id=u&limit=ten"),
            [pair("form_param_format_invalid", "limit")]
        );
        assert_eq!(
            codes("user_id=u&limit=1.5"),
            [pair("form_param_format_invalid", "limit")]
        );
        assert_eq!(
            codes("user_id=u&offset=-1"),
            [pair("form_param_value_invalid", "offset")]
        );
        assert_eq!(
            codes("user_id=u&paginated=yes"),
            [pair("form_param_format_invalid", "paginated")]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        assert_eq!(
            codes("status=x&paginated=1&limit=x&offset=-2"),
            [
                pair("form_param_missing", "user_id"),
                pair("form_param_value_invalid", "status"),
                pair("form_param_format_invalid", "paginated"),
                pair("form_param_format_invalid", "limit"),
                pair("form_param_value_invalid", "offset"),
            ]
        );
    }

    #[test]
    fn first_value_wins_empty_counts_as_absent_unknown_is_ignored() {
        let q = parse_list_query("user_id=a&user_id=b&limit=&limit=7&other=1").unwrap();
        assert_eq!(q.user_id.as_deref(), Some("a"));
        assert_eq!(
            q.limit, 10,
            "the first limit is empty, so the default holds"
        );
    }
}
