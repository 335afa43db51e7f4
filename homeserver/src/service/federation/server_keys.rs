//! This server's signing keys as other servers fetch them (`GET /_matrix/key/v2/server`), signed
//! with the key itself and valid for `federation.key_validity_hours`.

use ruma::{
    CanonicalJsonObject, MilliSecondsSinceUnixEpoch, UInt,
    api::federation::discovery::{ServerSigningKeys, VerifyKey},
    serde::{Base64, Raw},
    signatures::Ed25519KeyPair,
};

use crate::service::Services;

/// Errors building the signed keys.
#[derive(Debug, thiserror::Error)]
pub enum ServerKeysError {
    /// The key ID or the JSON could not be built or signed.
    #[error("could not sign the server keys: {0}")]
    Signing(String),
}

/// The signed key object of `server_name` with `keypair`, valid until `valid_until_ms`.
pub fn signed_keys(
    server_name: &ruma::ServerName,
    keypair: &Ed25519KeyPair,
    valid_until_ms: u64,
) -> Result<Raw<ServerSigningKeys>, ServerKeysError> {
    let signing = |e: &dyn std::fmt::Display| ServerKeysError::Signing(e.to_string());
    let valid_until = MilliSecondsSinceUnixEpoch(UInt::new_saturating(valid_until_ms));
    let mut keys = ServerSigningKeys::new(server_name.to_owned(), valid_until);
    let key_id = ruma::OwnedServerSigningKeyId::try_from(format!("ed25519:{}", keypair.version()))
        .map_err(|e| signing(&e))?;
    keys.verify_keys.insert(key_id, VerifyKey::new(Base64::new(keypair.public_key().to_vec())));
    let mut object: CanonicalJsonObject =
        serde_json::to_value(&keys).and_then(serde_json::from_value).map_err(|e| signing(&e))?;
    // The struct's empty signatures would be signed over: start without them.
    object.remove("signatures");
    ruma::signatures::sign_json(server_name.as_str(), keypair, &mut object)
        .map_err(|e| signing(&e))?;
    let json = serde_json::value::to_raw_value(&object).map_err(|e| signing(&e))?;
    Ok(Raw::from_json(json))
}

impl Services {
    /// This server's signed keys, valid for the configured time from now.
    pub fn server_keys(&self) -> Result<Raw<ServerSigningKeys>, ServerKeysError> {
        let validity = self.config.federation.key_validity_hours.saturating_mul(3_600_000);
        let now: u64 = MilliSecondsSinceUnixEpoch::now().0.into();
        signed_keys(&self.config.server_name, self.globals.keypair(), now + validity)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ruma::{serde::Base64, server_name, signatures::PublicKeyMap};

    use super::*;

    #[test]
    fn the_keys_verify_with_the_key_they_carry() {
        let der = Ed25519KeyPair::generate();
        let keypair = Ed25519KeyPair::from_der(&der, "a1".into()).expect("key");
        let raw = signed_keys(server_name!("relais.test"), &keypair, 1_000).expect("signed");
        let object: CanonicalJsonObject = serde_json::from_str(raw.json().get()).expect("json");
        let mut keys = BTreeMap::new();
        keys.insert("ed25519:a1".to_owned(), Base64::new(keypair.public_key().to_vec()));
        let mut map = PublicKeyMap::new();
        map.insert("relais.test".to_owned(), keys);
        ruma::signatures::verify_json(&map, &object).expect("the signature verifies");
        // Tampering breaks it.
        let mut tampered = object.clone();
        tampered
            .insert("valid_until_ts".into(), ruma::CanonicalJsonValue::Integer(2_000_u32.into()));
        assert!(ruma::signatures::verify_json(&map, &tampered).is_err());
        let parsed = raw.deserialize().expect("a ServerSigningKeys");
        assert_eq!(parsed.server_name, "relais.test");
        assert_eq!(u64::from(parsed.valid_until_ts.0), 1_000);
    }
}
