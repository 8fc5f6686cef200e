//! Clerk's OpenAPI spec as the contract tests read it: `spec/bapi-2026-05-12.yml`, parsed at
//! test time (nothing copied into code), `$ref`s into `#/components/...` inlined and
//! `nullable: true` turned into a JSON-Schema type union, checked as JSON Schema draft 4 (the
//! draft OpenAPI 3.0 schemas derive from).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use clerk_sim::Simulator;
use serde_json::{Map, Value, json};

use super::{Answer, client};

pub const CREATE_PATH: &str = "/actor_tokens";
pub const REVOKE_PATH: &str = "/actor_tokens/{actor_token_id}/revoke";
pub const LIST_SESSIONS_PATH: &str = "/sessions";
pub const REVOKE_SESSION_PATH: &str = "/sessions/{session_id}/revoke";

/// The method the simulator serves each path with.
pub fn method(path: &str) -> &'static str {
    match path {
        LIST_SESSIONS_PATH => "get",
        CREATE_PATH | REVOKE_PATH | REVOKE_SESSION_PATH => "post",
        _ => panic!("the simulator does not serve {path}"),
    }
}

pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/bapi-2026-05-12.yml");
        let text = std::fs::read_to_string(path).expect("spec file");
        let options = serde_saphyr::options! { budget: None };
        serde_saphyr::from_str_with_options(&text, options).expect("spec parses as YAML")
    })
}

pub fn pointer(reference: &str) -> &'static Value {
    let path = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("only local refs: {reference}"));
    spec()
        .pointer(path)
        .unwrap_or_else(|| panic!("dangling $ref {reference}"))
}

/// Inlines `$ref`s and turns OpenAPI 3.0 schema keywords into JSON Schema.
pub fn to_json_schema(schema: &Value, seen: &mut Vec<String>) -> Value {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                if seen.contains(reference) {
                    return json!({}); // a cycle: accept anything below this point
                }
                seen.push(reference.clone());
                let resolved = to_json_schema(pointer(reference), seen);
                seen.pop();
                return resolved;
            }
            let mut out = Map::new();
            for (key, value) in map {
                if key == "nullable"
                    || key == "example"
                    || key == "discriminator"
                    || key.starts_with("x-")
                {
                    continue;
                }
                // Keywords whose value is a map of names → schemas, or schemas themselves.
                let converted = match key.as_str() {
                    "properties" | "patternProperties" => Value::Object(
                        value
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(name, s)| (name.clone(), to_json_schema(s, seen)))
                            .collect(),
                    ),
                    "items" | "additionalProperties" | "not" | "allOf" | "anyOf" | "oneOf" => {
                        to_json_schema(value, seen)
                    }
                    _ => value.clone(),
                };
                out.insert(key.clone(), converted);
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                match out.get_mut("type") {
                    Some(Value::String(t)) => {
                        let t = t.clone();
                        out.insert("type".into(), json!([t, "null"]));
                        if let Some(Value::Array(values)) = out.get_mut("enum") {
                            values.push(Value::Null);
                        }
                    }
                    _ => return json!({"anyOf": [Value::Object(out), {"type": "null"}]}),
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|s| to_json_schema(s, seen)).collect())
        }
        other => other.clone(),
    }
}

pub fn operation(path: &str) -> &'static Value {
    let op = &spec()["paths"][path][method(path)];
    assert!(op.is_object(), "the spec has {} {path}", method(path));
    op
}

/// The response object (resolved) the spec gives for this status on this operation, or the
/// spec's own response for that status elsewhere when the operation does not declare it.
pub fn response_spec(path: &str, status: u16) -> &'static Value {
    let declared = &operation(path)["responses"][status.to_string()];
    let response = if declared.is_object() {
        declared
    } else {
        pointer(match status {
            401 => "#/components/responses/AuthenticationInvalid",
            429 => "#/components/responses/TooManyRequests",
            500..=599 => "#/components/responses/ClerkErrors",
            _ => {
                panic!("the simulator answers {status} for {path}, which the spec does not declare")
            }
        })
    };
    match response.get("$ref") {
        Some(Value::String(r)) => pointer(r),
        _ => response,
    }
}

pub fn body_validator(path: &str, status: u16) -> jsonschema::Validator {
    let response = response_spec(path, status);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{path} {status}: the spec gives a JSON schema"
    );
    let schema = to_json_schema(schema, &mut Vec::new());
    jsonschema::draft4::new(&schema).expect("schema compiles")
}

/// The schema of one item of the 200 answer's array (GetSessionList: `Session`).
pub fn item_validator(path: &str) -> jsonschema::Validator {
    let schema = &response_spec(path, 200)["content"]["application/json"]["schema"];
    assert_eq!(schema["type"], "array", "{path} answers an array");
    jsonschema::draft4::new(&to_json_schema(&schema["items"], &mut Vec::new()))
        .expect("schema compiles")
}

pub fn assert_valid(path: &str, a: &Answer) {
    let validator = body_validator(path, a.status);
    let errors: Vec<String> = validator
        .iter_errors(&a.body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{path} {}: {} does not match the spec: {errors:#?}",
        a.status,
        a.body
    );
    let content_type = a.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
}

pub fn declared(path: &str) -> BTreeSet<u16> {
    operation(path)["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.parse().unwrap())
        .collect()
}

/// A request to this spec path (placeholders filled in, the list given a valid query).
pub fn request_to(sim: &Simulator, path: &str) -> reqwest::RequestBuilder {
    let url = format!(
        "{}{}",
        sim.api_url(),
        path.replace("{actor_token_id}", "act_x")
            .replace("{session_id}", "sess_x")
    );
    match method(path) {
        "get" => client().get(format!("{url}?user_id=u")),
        _ => client().post(url).body("{}"),
    }
}

pub const ALL_PATHS: [&str; 4] = [
    CREATE_PATH,
    REVOKE_PATH,
    LIST_SESSIONS_PATH,
    REVOKE_SESSION_PATH,
];

/// GetSessionList's query parameters, `$ref`s resolved: (name, JSON schema of its value).
pub fn list_parameters() -> Vec<(String, Value)> {
    operation(LIST_SESSIONS_PATH)["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| match p.get("$ref") {
            Some(Value::String(r)) => pointer(r),
            _ => p,
        })
        .map(|p| {
            assert_eq!(p["in"], "query");
            let name = p["name"].as_str().unwrap().to_owned();
            (name, to_json_schema(&p["schema"], &mut Vec::new()))
        })
        .collect()
}
