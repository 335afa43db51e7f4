//! Reading a policy service's answer: a 2xx with a JSON body allows; any other status with a JSON
//! object refuses with that object's `errcode` (default `M_FORBIDDEN`) and `error`; anything else
//! is not an answer, and the action is refused (fail closed) unless the callback fails open.

use serde_json::{Map, Value};

use super::{Callback, Failure, PolicyRefusal};

/// The errcode of a refusal whose answer names none.
pub const DEFAULT_ERRCODE: &str = "M_FORBIDDEN";

/// Reads the answer to a `callback` check: its HTTP status and body.
pub fn parse(callback: Callback, status: u16, body: &[u8]) -> Result<(), PolicyRefusal> {
    if (200..300).contains(&status) {
        // The content of an allow is ignored, but it must be JSON: a proxy's HTML page or an
        // empty body is not the policy service speaking.
        return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => Ok(()),
            Err(e) => Err(PolicyRefusal::Unavailable {
                callback,
                failure: Failure::Malformed(format!(
                    "HTTP {status} with a body that is not JSON: {e}"
                )),
            }),
        };
    }
    let Ok(mut fields) = serde_json::from_slice::<Map<String, Value>>(body) else {
        return Err(PolicyRefusal::Unavailable {
            callback,
            failure: Failure::Malformed(format!(
                "HTTP {status} with a body that is not a JSON object"
            )),
        });
    };
    let errcode = match fields.remove("errcode") {
        Some(Value::String(code)) if !code.is_empty() => code,
        _ => DEFAULT_ERRCODE.to_owned(),
    };
    let message = match fields.remove("error") {
        Some(Value::String(message)) if !message.is_empty() => message,
        _ => format!("refused by the policy service (policy check {callback})"),
    };
    Err(PolicyRefusal::Refused { callback, errcode, message, fields })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CB: Callback = Callback::UserMayInvite;

    fn refused(result: Result<(), PolicyRefusal>) -> (String, String, Map<String, Value>) {
        match result {
            Err(PolicyRefusal::Refused { errcode, message, fields, callback }) => {
                assert_eq!(callback, CB);
                (errcode, message, fields)
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn malformed(result: Result<(), PolicyRefusal>) -> String {
        match result {
            Err(PolicyRefusal::Unavailable { failure: Failure::Malformed(detail), .. }) => detail,
            other => panic!("expected a malformed answer, got {other:?}"),
        }
    }

    #[test]
    fn any_2xx_with_json_allows() {
        assert!(parse(CB, 200, b"{}").is_ok());
        assert!(parse(CB, 204, b"null").is_ok());
        assert!(parse(CB, 200, br#"{"anything": [1, 2]}"#).is_ok());
    }

    #[test]
    fn a_2xx_without_json_is_not_an_answer() {
        assert!(malformed(parse(CB, 200, b"")).contains("not JSON"));
        assert!(malformed(parse(CB, 200, b"<html>ok</html>")).contains("HTTP 200"));
    }

    #[test]
    fn an_error_passes_errcode_message_and_other_fields() {
        let body = json!({ "errcode": "M_LIMIT_EXCEEDED", "error": "slow down", "rule": "r1" });
        let (errcode, message, fields) = refused(parse(CB, 429, body.to_string().as_bytes()));
        assert_eq!(errcode, "M_LIMIT_EXCEEDED");
        assert_eq!(message, "slow down");
        assert_eq!(Value::Object(fields), json!({ "rule": "r1" }));
    }

    #[test]
    fn an_error_without_errcode_is_forbidden_with_a_default_message() {
        let (errcode, message, fields) = refused(parse(CB, 403, b"{}"));
        assert_eq!(errcode, "M_FORBIDDEN");
        assert_eq!(message, "refused by the policy service (policy check user_may_invite)");
        assert!(fields.is_empty());
        let (errcode, _, _) = refused(parse(CB, 400, br#"{"errcode": 12, "error": ""}"#));
        assert_eq!(errcode, "M_FORBIDDEN", "a non-string errcode is replaced");
    }

    #[test]
    fn an_error_without_a_json_object_is_not_an_answer() {
        assert!(malformed(parse(CB, 500, b"Internal Server Error")).contains("HTTP 500"));
        assert!(malformed(parse(CB, 403, b"[1]")).contains("not a JSON object"));
        assert!(malformed(parse(CB, 302, b"")).contains("HTTP 302"));
    }
}
