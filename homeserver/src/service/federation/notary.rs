//! This server as a notary (`/_matrix/key/v2/query`): other servers' key objects as they signed
//! them, with this server's signature added, and this server's own keys.

use ruma::{
    CanonicalJsonObject, MilliSecondsSinceUnixEpoch, ServerName,
    api::federation::discovery::ServerSigningKeys, serde::Raw, signatures::Ed25519KeyPair,
};

use super::{Federation, FederationError};

impl Federation {
    /// The key objects of `server` valid at least until `minimum_valid_until_ms` when they can
    /// be had (else the latest known), countersigned by this server. This server's own keys are
    /// `own`, already signed. Empty when nothing is known of `server` nor can be fetched.
    pub async fn notary_keys(
        &self,
        server: &ServerName,
        minimum_valid_until_ms: u64,
        own: Raw<ServerSigningKeys>,
    ) -> Result<Vec<Raw<ServerSigningKeys>>, FederationError> {
        if server == self.globals.server_name {
            return Ok(vec![own]);
        }
        let Some(object) = self.keys.signed_keys(server, minimum_valid_until_ms).await? else {
            return Ok(Vec::new());
        };
        Ok(vec![countersign(object, &self.globals.server_name, self.globals.keypair())?])
    }
}

/// `object` with this server's signature added to the ones it carries.
pub fn countersign(
    mut object: CanonicalJsonObject,
    server_name: &ServerName,
    keypair: &Ed25519KeyPair,
) -> Result<Raw<ServerSigningKeys>, FederationError> {
    ruma::signatures::sign_json(server_name.as_str(), keypair, &mut object)
        .map_err(|e| FederationError::Signature(e.to_string()))?;
    let json = serde_json::value::to_raw_value(&object)
        .map_err(|e| FederationError::Signature(e.to_string()))?;
    Ok(Raw::from_json(json))
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    MilliSecondsSinceUnixEpoch::now().0.into()
}

#[cfg(test)]
mod tests {
    use ruma::server_name;

    use super::*;
    use crate::service::federation::{keys::check_key_object, server_keys::signed_keys};

    #[test]
    fn a_countersigned_object_verifies_for_both_servers() {
        let b = Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "b1".into()).expect("b");
        let notary = Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "n1".into()).expect("n");
        let raw = signed_keys(server_name!("b.test"), &b, now_ms() + 1000).expect("signed");
        let object: CanonicalJsonObject = serde_json::from_str(raw.json().get()).expect("json");
        let countersigned = countersign(object, server_name!("n.test"), &notary).expect("signed");
        let mut notary_keys = ruma::signatures::PublicKeySet::new();
        notary_keys
            .insert("ed25519:n1".into(), ruma::serde::Base64::new(notary.public_key().to_vec()));
        check_key_object(
            server_name!("b.test"),
            countersigned.json().get(),
            Some((server_name!("n.test"), &notary_keys)),
        )
        .expect("both signatures verify");
    }
}
