//! Signature checks on uploaded key objects, with ruma's canonical JSON and ed25519 verifier.

use ruma::{
    UserId,
    canonical_json::try_from_json_map,
    serde::Base64,
    signatures::{
        SigningKeyAlgorithm, to_canonical_json_string_for_signing, verify_canonical_json_bytes,
    },
};
use serde_json::{Map, Value};

use super::KeyError;

/// Checks that `object` carries a valid signature by `signer` with key `key_id`
/// (`ed25519:<name>`) whose public key is `public_key` (unpadded base64). `signatures` and
/// `unsigned` are not part of the signed content, as the spec's signing rules say.
pub(super) fn check_signature(
    object: &Value,
    signer: &UserId,
    key_id: &str,
    public_key: &str,
) -> Result<(), KeyError> {
    let signature = object
        .get("signatures")
        .and_then(|s| s.get(signer.as_str()))
        .and_then(|s| s.get(key_id))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            KeyError::InvalidSignature(format!("no signature by {signer} with {key_id}"))
        })?;
    let map = object
        .as_object()
        .cloned()
        .ok_or_else(|| KeyError::InvalidParam("a signed key must be a JSON object".into()))?;
    let canonical = try_from_json_map(map)
        .map_err(|e| KeyError::InvalidParam(format!("key object is not canonical JSON: {e}")))?;
    let signed = to_canonical_json_string_for_signing(&canonical)
        .map_err(|e| KeyError::InvalidParam(format!("key object cannot be signed: {e}")))?;
    let public_key: Base64 = Base64::parse(public_key)
        .map_err(|_| KeyError::InvalidParam(format!("public key {key_id} is not base64")))?;
    let signature: Base64 = Base64::parse(signature)
        .map_err(|_| KeyError::InvalidSignature(format!("signature by {key_id} is not base64")))?;
    verify_canonical_json_bytes(
        &SigningKeyAlgorithm::Ed25519,
        public_key.as_bytes(),
        signature.as_bytes(),
        signed.as_bytes(),
    )
    .map_err(|e| KeyError::InvalidSignature(format!("signature by {key_id} does not verify: {e}")))
}

/// The signed part of a key object: everything but `signatures` and `unsigned`.
fn signed_content(object: &Value) -> Option<Map<String, Value>> {
    let mut map = object.as_object()?.clone();
    map.remove("signatures");
    map.remove("unsigned");
    Some(map)
}

/// Whether two key objects have the same signed content (they may differ in signatures).
pub(super) fn same_content(a: &Value, b: &Value) -> bool {
    match (signed_content(a), signed_content(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Adds the signatures of `from` to `into` (both key objects), keeping those `into` has.
pub(super) fn merge_signatures(into: &mut Value, from: &Value) {
    let Some(from) = from.get("signatures").and_then(Value::as_object) else { return };
    let Some(object) = into.as_object_mut() else { return };
    let target = object.entry("signatures").or_insert_with(|| Value::Object(Map::new()));
    let Some(target) = target.as_object_mut() else { return };
    for (signer, keys) in from {
        let Some(keys) = keys.as_object() else { continue };
        let entry = target.entry(signer.clone()).or_insert_with(|| Value::Object(Map::new()));
        if let Some(entry) = entry.as_object_mut() {
            for (key_id, signature) in keys {
                entry.entry(key_id.clone()).or_insert_with(|| signature.clone());
            }
        }
    }
}

/// The single ed25519 public key of a cross-signing key object, with its key ID.
pub(super) fn cross_signing_public_key(object: &Value) -> Option<(String, String)> {
    let keys = object.get("keys")?.as_object()?;
    let mut ed25519 = keys.iter().filter(|(id, _)| id.starts_with("ed25519:"));
    let (id, key) = ed25519.next()?;
    if ed25519.next().is_some() {
        return None;
    }
    Some((id.clone(), key.as_str()?.to_owned()))
}

#[cfg(test)]
mod tests {
    use ruma::{
        CanonicalJsonValue,
        signatures::{Ed25519KeyPair, sign_json},
        user_id,
    };
    use serde_json::json;

    use super::*;

    fn keypair() -> Ed25519KeyPair {
        Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "DEV".into()).expect("keypair")
    }

    fn signed(pair: &Ed25519KeyPair, value: Value) -> Value {
        let Ok(CanonicalJsonValue::Object(mut object)) = CanonicalJsonValue::try_from(value) else {
            panic!("object")
        };
        sign_json("@a:x", pair, &mut object).expect("sign");
        serde_json::to_value(object).expect("json")
    }

    #[test]
    fn valid_signature_verifies_and_tampering_fails() {
        let pair = keypair();
        let public: String =
            Base64::<ruma::serde::base64::Standard>::new(pair.public_key().to_vec()).encode();
        let object = signed(&pair, json!({ "user_id": "@a:x", "keys": { "ed25519:DEV": public } }));
        let user = user_id!("@a:x");
        check_signature(&object, user, "ed25519:DEV", &public).expect("valid");
        let mut tampered = object.clone();
        tampered["user_id"] = json!("@b:x");
        assert!(matches!(
            check_signature(&tampered, user, "ed25519:DEV", &public),
            Err(KeyError::InvalidSignature(_))
        ));
        // Unsigned data is not covered by the signature.
        let mut annotated = object.clone();
        annotated["unsigned"] = json!({ "device_display_name": "phone" });
        check_signature(&annotated, user, "ed25519:DEV", &public).expect("unsigned is ignored");
        assert!(matches!(
            check_signature(&object, user, "ed25519:OTHER", &public),
            Err(KeyError::InvalidSignature(_))
        ));
    }

    #[test]
    fn merging_keeps_existing_signatures() {
        let mut into = json!({ "signatures": { "@a:x": { "ed25519:A": "1" } } });
        let from = json!({ "signatures": { "@a:x": { "ed25519:A": "2", "ed25519:B": "3" } } });
        merge_signatures(&mut into, &from);
        assert_eq!(into["signatures"]["@a:x"], json!({ "ed25519:A": "1", "ed25519:B": "3" }));
        assert!(same_content(&into, &from));
    }
}
