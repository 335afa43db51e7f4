//! Shape limits on JSON request bodies: nesting depth, string length and collection length,
//! checked once in the request extractor for every endpoint (`limits.max_json_*`).
//!
//! The body size limit bounds the bytes; these bound what a body of that size can make the server
//! do: deep nesting (recursive code downstream), huge strings (copied into events, logs, keys)
//! and huge collections (one database operation per item).

use serde_json::Value;

use super::error::ApiError;
use crate::config::LimitsConfig;

/// Checks `value` against the JSON limits of `limits`, walking it once without recursion.
pub fn check(value: &Value, limits: &LimitsConfig) -> Result<(), ApiError> {
    // (value, depth of its container nesting, counting the value itself when it is one)
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        match value {
            Value::String(s) => check_string(s, limits)?,
            Value::Array(items) => {
                check_nesting(depth + 1, limits)?;
                check_items(items.len(), limits)?;
                stack.extend(items.iter().map(|item| (item, depth + 1)));
            }
            Value::Object(members) => {
                check_nesting(depth + 1, limits)?;
                check_items(members.len(), limits)?;
                for (key, member) in members {
                    check_string(key, limits)?;
                    stack.push((member, depth + 1));
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    Ok(())
}

/// The error for a body that `serde_json` refused for its own recursion limit (128), deeper than
/// any `max_json_depth` the configuration allows.
pub fn too_deep(limits: &LimitsConfig) -> ApiError {
    ApiError::BadJson(format!(
        "JSON nesting is deeper than limits.max_json_depth ({})",
        limits.max_json_depth
    ))
}

fn check_nesting(depth: usize, limits: &LimitsConfig) -> Result<(), ApiError> {
    if depth > limits.max_json_depth { Err(too_deep(limits)) } else { Ok(()) }
}

fn check_string(s: &str, limits: &LimitsConfig) -> Result<(), ApiError> {
    if s.len() > limits.max_json_string_bytes {
        return Err(ApiError::TooLarge(format!(
            "a JSON string is longer than limits.max_json_string_bytes ({} bytes)",
            limits.max_json_string_bytes
        )));
    }
    Ok(())
}

fn check_items(len: usize, limits: &LimitsConfig) -> Result<(), ApiError> {
    if len > limits.max_json_items {
        return Err(ApiError::TooLarge(format!(
            "a JSON array or object has more than limits.max_json_items ({}) items",
            limits.max_json_items
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::Config;

    fn limits() -> LimitsConfig {
        let mut limits = Config::default().limits;
        limits.max_json_depth = 3;
        limits.max_json_string_bytes = 5;
        limits.max_json_items = 2;
        limits
    }

    fn nested(depth: usize) -> Value {
        (0..depth).fold(json!(1), |inner, _| json!([inner]))
    }

    #[test]
    fn accepts_a_body_within_every_limit() {
        check(&json!({"a": [1, {"b": "abcde"}]}), &limits()).unwrap();
        check(&nested(3), &limits()).unwrap();
    }

    #[test]
    fn refuses_nesting_deeper_than_the_limit() {
        let error = check(&nested(4), &limits()).unwrap_err();
        assert!(matches!(&error, ApiError::BadJson(m) if m.contains("max_json_depth")));
        let objects = json!({"a": {"b": {"c": {}}}});
        assert!(matches!(check(&objects, &limits()), Err(ApiError::BadJson(_))));
    }

    #[test]
    fn refuses_long_strings_and_long_keys() {
        let error = check(&json!({"a": ["abcdef"]}), &limits()).unwrap_err();
        assert!(matches!(&error, ApiError::TooLarge(m) if m.contains("max_json_string_bytes")));
        assert!(matches!(check(&json!({"abcdef": 1}), &limits()), Err(ApiError::TooLarge(_))));
    }

    #[test]
    fn refuses_long_arrays_and_large_objects() {
        let error = check(&json!([[1, 2, 3]]), &limits()).unwrap_err();
        assert!(matches!(&error, ApiError::TooLarge(m) if m.contains("max_json_items")));
        let object = json!({"a": 1, "b": 2, "c": 3});
        assert!(matches!(check(&object, &limits()), Err(ApiError::TooLarge(_))));
    }

    #[test]
    fn default_limits_accept_a_full_size_event_body() {
        let body = json!({"msgtype": "m.text", "body": "x".repeat(65_000)});
        check(&body, &Config::default().limits).unwrap();
    }
}
