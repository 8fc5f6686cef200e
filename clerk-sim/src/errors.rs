//! Clerk's error envelope (`ClerkErrors` in the spec) and the errors the simulator answers with.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::RngExt;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// One entry of `errors` (`ClerkError` in the spec: `message`, `long_message`, `code` required,
/// `meta` an object; the simulator always sends `meta`, empty when there is nothing to say).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ClerkError {
    pub message: String,
    pub long_message: String,
    pub code: String,
    pub meta: Map<String, Value>,
}

impl ClerkError {
    pub fn new(code: &str, message: &str, long_message: impl Into<String>) -> Self {
        ClerkError {
            message: message.to_owned(),
            long_message: long_message.into(),
            code: code.to_owned(),
            meta: Map::new(),
        }
    }

    fn with_param(mut self, param: &str) -> Self {
        self.meta
            .insert("param_name".to_owned(), Value::String(param.to_owned()));
        self
    }

    pub fn param_unknown(param: &str) -> Self {
        ClerkError::new(
            "form_param_unknown",
            "is unknown",
            format!("{param} is not a valid parameter for this request."),
        )
        .with_param(param)
    }

    pub fn param_missing(param: &str) -> Self {
        ClerkError::new(
            "form_param_missing",
            "is missing",
            format!("{param} is missing."),
        )
        .with_param(param)
    }

    /// `form_param_missing` with its own long message (for a rule over several parameters).
    pub fn param_missing_with(param: &str, long_message: impl Into<String>) -> Self {
        ClerkError::new("form_param_missing", "is missing", long_message).with_param(param)
    }

    pub fn param_format_invalid(param: &str, must: &str) -> Self {
        ClerkError::new(
            "form_param_format_invalid",
            "is invalid",
            format!("{param} {must}."),
        )
        .with_param(param)
    }

    pub fn param_value_invalid(param: &str, long_message: impl Into<String>) -> Self {
        ClerkError::new("form_param_value_invalid", "is invalid", long_message).with_param(param)
    }

    pub fn request_body_invalid() -> Self {
        ClerkError::new(
            "request_body_invalid",
            "Request body invalid",
            "The request body is invalid. Please consult the API documentation for more information.",
        )
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ClerkError::new(
            "resource_not_found",
            "not found",
            format!("No {what} was found with id {id}"),
        )
    }
}

/// A `ClerkErrors` body (`errors` plus a fresh `clerk_trace_id`) with this status.
pub(crate) fn error_response(status: StatusCode, errors: Vec<ClerkError>) -> Response {
    let trace: u128 = rand::rng().random();
    let body = json!({ "errors": errors, "clerk_trace_id": format!("{trace:032x}") });
    json_response(status, &body)
}

pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("simulator bodies serialise");
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn unauthorized(kind: AuthFailure) -> Response {
    let error = match kind {
        AuthFailure::Missing => ClerkError::new(
            "authentication_invalid",
            "Invalid authentication",
            "Unable to authenticate the request, you need to supply an active secret key in the Authorization header",
        ),
        AuthFailure::Malformed => ClerkError::new(
            "authorization_header_format_invalid",
            "Invalid Authorization header format",
            "Invalid Authorization header format. Must be 'Bearer <YOUR_API_KEY>'",
        ),
        AuthFailure::UnknownKey => ClerkError::new(
            "clerk_key_invalid",
            "The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct.",
            "The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct.",
        ),
    };
    error_response(StatusCode::UNAUTHORIZED, vec![error])
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum AuthFailure {
    Missing,
    Malformed,
    UnknownKey,
}

pub(crate) fn too_many_requests(retry_after_seconds: u64) -> Response {
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        vec![ClerkError::new(
            "too_many_requests",
            "Too Many Requests",
            "Too many requests, please try again later.",
        )],
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
    response
}

pub(crate) fn server_error(status: StatusCode) -> Response {
    let error = match status {
        StatusCode::BAD_GATEWAY => ClerkError::new(
            "bad_gateway",
            "Bad gateway",
            "The server received an invalid response from an upstream server. Please try again later.",
        ),
        StatusCode::SERVICE_UNAVAILABLE => ClerkError::new(
            "service_unavailable",
            "Service unavailable",
            "The service is temporarily unavailable. Please try again later.",
        ),
        _ => ClerkError::new(
            "internal_clerk_error",
            "Oops, an unexpected error occurred",
            "There was an internal error on our servers. We've been notified and are working on fixing it.",
        ),
    };
    error_response(status, vec![error])
}
