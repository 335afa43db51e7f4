//! Other servers' signing keys: fetched from the server itself (`/_matrix/key/v2/server`), else
//! from the configured notaries (`/_matrix/key/v2/query`), checked (self-signature, and the
//! notary's signature), kept in RocksDB with an in-memory cache in front, and fetched again once
//! the server's `valid_until_ts` has passed.
//!
//! Every key ever seen is kept with the time it is valid until (`valid_until_ts` for current keys,
//! `expired_ts` for old ones), so that an event is checked with the keys valid when it was sent.
//! This server's own key comes from `Globals`, never over HTTP.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, MilliSecondsSinceUnixEpoch, OwnedServerName,
    RoomVersionId, ServerName,
    api::federation::discovery::{
        ServerSigningKeys, get_remote_server_keys, get_remote_server_keys_batch::v2::QueryCriteria,
        get_server_keys,
    },
    serde::Base64,
    signatures::{PublicKeyMap, PublicKeySet, Verified},
};
use serde::{Deserialize, Serialize};

use super::{FederationClient, FederationError, Partners};
use crate::{
    config::Config,
    service::globals::Globals,
    storage::{Db, Json, Table},
};

/// Column families owned by the key store.
pub const COLUMN_FAMILIES: &[&str] = &["servername_serverkeys"];

/// The longest a fetched key is trusted for, whatever `valid_until_ts` it claims (the spec's
/// rule for room versions 5 and later).
const MAX_KEY_VALIDITY_MS: u64 = 7 * 24 * 3600 * 1000;
/// How long a failed fetch is remembered before the server is asked again.
const FAILURE_BACKOFF: Duration = Duration::from_secs(30);
/// The shortest time between two fetches of keys that are still valid (for a key ID the server
/// did not publish: someone could name random ones to make this server ask again and again).
const MIN_REFETCH: Duration = Duration::from_secs(60);

/// One public key and the time it is valid until, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// The unpadded base64 public key.
    pub key: String,
    /// Valid for what was signed up to this time (ms since the epoch).
    pub valid_until_ms: u64,
}

/// What is known of a server's keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerKeys {
    /// Every key ever seen, by key ID.
    pub keys: BTreeMap<String, StoredKey>,
    /// When the latest answer stops being valid: fetched again after it.
    pub valid_until_ms: u64,
    /// The latest key object as the server signed it (JSON), for notary answers.
    pub signed: String,
}

impl ServerKeys {
    /// The keys valid at `ts_ms`.
    pub fn valid_at(&self, ts_ms: u64) -> PublicKeySet {
        self.keys
            .iter()
            .filter(|(_, k)| k.valid_until_ms >= ts_ms)
            .map(|(id, k)| (id.clone(), Base64::parse(&k.key)))
            .filter_map(|(id, key)| key.ok().map(|key| (id, key)))
            .collect()
    }

    /// Adds a checked key object fetched at `fetched_ms`: its current keys valid until its
    /// `valid_until_ts` (at most [`MAX_KEY_VALIDITY_MS`] after the fetch), its old keys until
    /// their `expired_ts`.
    fn merge(&mut self, keys: &ServerSigningKeys, signed: String, fetched_ms: u64) {
        let claimed: u64 = keys.valid_until_ts.0.into();
        let valid_until = claimed.min(fetched_ms.saturating_add(MAX_KEY_VALIDITY_MS));
        for (id, key) in &keys.verify_keys {
            let entry = self
                .keys
                .entry(id.to_string())
                .or_insert_with(|| StoredKey { key: key.key.encode(), valid_until_ms: 0 });
            entry.key = key.key.encode();
            entry.valid_until_ms = entry.valid_until_ms.max(valid_until);
        }
        for (id, old) in &keys.old_verify_keys {
            let expired: u64 = old.expired_ts.0.into();
            self.keys.insert(
                id.to_string(),
                StoredKey { key: old.key.encode(), valid_until_ms: expired },
            );
        }
        if valid_until >= self.valid_until_ms {
            self.valid_until_ms = valid_until;
            self.signed = signed;
        }
    }
}

/// Other servers' signing keys.
pub struct ServerKeyStore {
    table: Table<String, Json<ServerKeys>>,
    cache: Mutex<HashMap<OwnedServerName, Arc<ServerKeys>>>,
    /// The last fetch of each server: when, and whether it succeeded.
    attempts: Mutex<HashMap<OwnedServerName, (Instant, bool)>>,
    fetching: Mutex<HashMap<OwnedServerName, Arc<tokio::sync::Mutex<()>>>>,
    client: FederationClient,
    partners: Partners,
    globals: Arc<Globals>,
    notaries: Vec<OwnedServerName>,
}

impl std::fmt::Debug for ServerKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKeyStore").finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    MilliSecondsSinceUnixEpoch::now().0.into()
}

impl ServerKeyStore {
    /// Opens the store.
    pub fn new(
        db: &Arc<Db>,
        config: &Config,
        partners: Partners,
        client: FederationClient,
        globals: Arc<Globals>,
    ) -> Result<Self, FederationError> {
        Ok(Self {
            table: db.table(COLUMN_FAMILIES[0])?,
            cache: Mutex::default(),
            attempts: Mutex::default(),
            fetching: Mutex::default(),
            client,
            partners,
            globals,
            notaries: config.federation.trusted_key_servers.clone(),
        })
    }

    /// The keys of each server valid now, fetched when what is known has expired.
    pub async fn verify_keys_for(
        &self,
        servers: impl IntoIterator<Item = &ServerName>,
    ) -> Result<PublicKeyMap, FederationError> {
        let now = now_ms();
        let mut map = PublicKeyMap::new();
        for server in servers {
            map.insert(server.to_string(), self.keys_valid_at(server, now, &[]).await?);
        }
        Ok(map)
    }

    /// The keys of `server` valid at `ts_ms`. Fetched again when what is known has expired
    /// (for a time still to come), or has none of the `wanted` key IDs (when some are named) valid
    /// at `ts_ms`.
    pub async fn keys_valid_at(
        &self,
        server: &ServerName,
        ts_ms: u64,
        wanted: &[String],
    ) -> Result<PublicKeySet, FederationError> {
        if server == self.globals.server_name {
            return Ok(self.own_keys());
        }
        self.partners.check(server)?;
        let known = self.known(server)?;
        if let Some(keys) = &known
            && satisfies(keys, ts_ms, wanted)
        {
            return Ok(keys.valid_at(ts_ms));
        }
        let fetched = self.fetch(server, ts_ms, wanted).await;
        match (fetched, known) {
            (Ok(keys), _) => {
                let valid = keys.valid_at(ts_ms);
                if valid.is_empty() {
                    return Err(FederationError::Keys {
                        server: server.to_owned(),
                        reason: "none is valid at the time asked".into(),
                    });
                }
                Ok(valid)
            }
            // Keys still valid for that time serve when the server cannot be asked now.
            (Err(e), Some(keys)) => {
                let valid = keys.valid_at(ts_ms);
                if valid.is_empty() { Err(e) } else { Ok(valid) }
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Checks an event's signatures (the servers the room version requires) and content hash,
    /// with the keys valid at its `origin_server_ts`. `Verified::Signatures`: the content hash
    /// does not match and the event must be redacted; an error: the event must be rejected.
    pub async fn verify_event(
        &self,
        object: &CanonicalJsonObject,
        room_version: &RoomVersionId,
    ) -> Result<Verified, FederationError> {
        let rules = room_version.rules().ok_or_else(|| {
            FederationError::Signature(format!("unsupported room version {room_version}"))
        })?;
        let servers =
            ruma::signatures::required_server_signatures_to_verify_event(object, &rules.signatures)
                .map_err(|e| FederationError::Signature(e.to_string()))?;
        let ts = match object.get("origin_server_ts") {
            Some(CanonicalJsonValue::Integer(ts)) => u64::try_from(i64::from(*ts)).unwrap_or(0),
            _ => return Err(FederationError::Signature("no origin_server_ts".into())),
        };
        let mut map = PublicKeyMap::new();
        for server in &servers {
            let wanted = signing_key_ids(object, server);
            map.insert(server.to_string(), self.keys_valid_at(server, ts, &wanted).await?);
        }
        ruma::signatures::verify_event(&map, object, &rules)
            .map_err(|e| FederationError::Signature(e.to_string()))
    }

    /// The key object of `server` as it signed it, valid at least until `minimum_valid_until_ms`
    /// when that can be had (a notary's answer). `None` when nothing is known nor can be fetched.
    pub async fn signed_keys(
        &self,
        server: &ServerName,
        minimum_valid_until_ms: u64,
    ) -> Result<Option<CanonicalJsonObject>, FederationError> {
        self.partners.check(server)?;
        let mut known = self.known(server)?;
        if known.as_ref().is_none_or(|k| k.valid_until_ms < minimum_valid_until_ms.max(now_ms())) {
            match self.fetch(server, now_ms(), &[]).await {
                Ok(keys) => known = Some(keys),
                Err(e) => tracing::debug!(error = %e, %server, "notary fetch failed"),
            }
        }
        let Some(keys) = known.filter(|k| !k.signed.is_empty()) else { return Ok(None) };
        serde_json::from_str(&keys.signed)
            .map(Some)
            .map_err(|e| FederationError::Keys { server: server.to_owned(), reason: e.to_string() })
    }

    /// This server's own key, valid for any time.
    fn own_keys(&self) -> PublicKeySet {
        let keypair = self.globals.keypair();
        let mut set = PublicKeySet::new();
        set.insert(
            format!("ed25519:{}", keypair.version()),
            Base64::new(keypair.public_key().to_vec()),
        );
        set
    }

    /// What is known of `server`: memory, else storage.
    fn known(&self, server: &ServerName) -> Result<Option<Arc<ServerKeys>>, FederationError> {
        if let Some(keys) = self.cache.lock().get(server) {
            return Ok(Some(keys.clone()));
        }
        let Some(Json(keys)) = self.table.get(&server.to_string())? else { return Ok(None) };
        let keys = Arc::new(keys);
        self.cache.lock().insert(server.to_owned(), keys.clone());
        Ok(Some(keys))
    }

    /// Fetches `server`'s keys (itself, then the notaries), merges and stores them. One fetch
    /// per server at a time; a failure is remembered for [`FAILURE_BACKOFF`], and keys still
    /// valid are not fetched again within [`MIN_REFETCH`].
    async fn fetch(
        &self,
        server: &ServerName,
        ts_ms: u64,
        wanted: &[String],
    ) -> Result<Arc<ServerKeys>, FederationError> {
        let lock = self.fetching.lock().entry(server.to_owned()).or_default().clone();
        let _guard = lock.lock().await;
        let known = self.known(server)?;
        // Another task may have fetched them while this one waited.
        if let Some(keys) = &known
            && satisfies(keys, ts_ms, wanted)
        {
            return Ok(keys.clone());
        }
        let last = self.attempts.lock().get(server).copied();
        match (last, known) {
            (Some((at, false)), _) if at.elapsed() < FAILURE_BACKOFF => {
                return Err(FederationError::Keys {
                    server: server.to_owned(),
                    reason: "the last attempt failed moments ago".into(),
                });
            }
            (Some((at, true)), Some(keys))
                if at.elapsed() < MIN_REFETCH && keys.valid_until_ms >= now_ms() =>
            {
                return Ok(keys);
            }
            _ => {}
        }
        let mut errors = Vec::new();
        let mut objects = Vec::new();
        match self.fetch_direct(server).await {
            Ok(object) => objects.push(object),
            Err(e) => errors.push(e.to_string()),
        }
        if objects.is_empty() {
            for notary in self.notaries.iter().filter(|n| *n != server) {
                match self.fetch_from_notary(server, notary).await {
                    Ok(found) if !found.is_empty() => {
                        objects = found;
                        break;
                    }
                    Ok(_) => errors.push(format!("{notary} has no keys of {server}")),
                    Err(e) => errors.push(format!("notary {notary}: {e}")),
                }
            }
        }
        let succeeded = !objects.is_empty();
        self.attempts.lock().insert(server.to_owned(), (Instant::now(), succeeded));
        if !succeeded {
            return Err(FederationError::Keys {
                server: server.to_owned(),
                reason: errors.join("; "),
            });
        }
        let mut keys = self.known(server)?.map(|k| (*k).clone()).unwrap_or_default();
        for (parsed, signed) in &objects {
            keys.merge(parsed, signed.clone(), now_ms());
        }
        self.table.put(&server.to_string(), &Json(keys.clone()))?;
        let keys = Arc::new(keys);
        self.cache.lock().insert(server.to_owned(), keys.clone());
        Ok(keys)
    }

    async fn fetch_direct(
        &self,
        server: &ServerName,
    ) -> Result<(ServerSigningKeys, String), FederationError> {
        let response = self.client.send(server, get_server_keys::v2::Request::new()).await?;
        check_key_object(server, response.server_key.json().get(), None)
    }

    async fn fetch_from_notary(
        &self,
        server: &ServerName,
        notary: &ServerName,
    ) -> Result<Vec<(ServerSigningKeys, String)>, FederationError> {
        // The notary's own keys come straight from it, never from another notary.
        let notary_keys = match self.known(notary)? {
            Some(keys) if keys.valid_until_ms >= now_ms() => keys.valid_at(now_ms()),
            _ => {
                let (parsed, signed) = self.fetch_direct(notary).await?;
                let mut keys = self.known(notary)?.map(|k| (*k).clone()).unwrap_or_default();
                keys.merge(&parsed, signed, now_ms());
                self.table.put(&notary.to_string(), &Json(keys.clone()))?;
                let valid = keys.valid_at(now_ms());
                self.cache.lock().insert(notary.to_owned(), Arc::new(keys));
                valid
            }
        };
        let request = get_remote_server_keys::v2::Request::new(
            server.to_owned(),
            MilliSecondsSinceUnixEpoch::now(),
        );
        let response = self.client.send(notary, request).await?;
        response
            .server_keys
            .iter()
            .map(|raw| check_key_object(server, raw.json().get(), Some((notary, &notary_keys))))
            .collect()
    }
}

/// Checks a key object of `server`: it names `server`, is signed by `server` with one of its
/// own keys and, when it comes from a notary, by the notary. Returns it parsed and as the JSON
/// the server signed (without the notary's signature).
pub fn check_key_object(
    server: &ServerName,
    json: &str,
    notary: Option<(&ServerName, &PublicKeySet)>,
) -> Result<(ServerSigningKeys, String), FederationError> {
    let invalid = |reason: String| FederationError::Keys { server: server.to_owned(), reason };
    let object: CanonicalJsonObject =
        serde_json::from_str(json).map_err(|e| invalid(format!("not a key object: {e}")))?;
    let parsed: ServerSigningKeys =
        serde_json::from_str(json).map_err(|e| invalid(format!("not a key object: {e}")))?;
    if parsed.server_name != server {
        return Err(invalid(format!("the key object is for {}", parsed.server_name)));
    }
    let own: PublicKeySet =
        parsed.verify_keys.iter().map(|(id, k)| (id.to_string(), k.key.clone())).collect();
    let self_signed = only_signatures_of(&object, server.as_str());
    verify_signed_by(&self_signed, server.as_str(), own)
        .map_err(|e| invalid(format!("the server's own signature does not verify: {e}")))?;
    if let Some((notary, keys)) = notary {
        let notarised = only_signatures_of(&object, notary.as_str());
        verify_signed_by(&notarised, notary.as_str(), keys.clone()).map_err(|e| {
            invalid(format!("the signature of notary {notary} does not verify: {e}"))
        })?;
    }
    let signed = serde_json::to_string(&self_signed).map_err(|e| invalid(e.to_string()))?;
    Ok((parsed, signed))
}

/// Whether `keys` answer for `ts_ms` without a fetch: the latest answer still holds (for a time
/// already past, keys valid then suffice) and one of the `wanted` key IDs (if any) is among the
/// keys valid then.
fn satisfies(keys: &ServerKeys, ts_ms: u64, wanted: &[String]) -> bool {
    let valid = keys.valid_at(ts_ms);
    let fresh = keys.valid_until_ms >= ts_ms.min(now_ms());
    fresh
        && !valid.is_empty()
        && (wanted.is_empty() || wanted.iter().any(|id| valid.contains_key(id)))
}

/// `object` with only `entity`'s signatures.
fn only_signatures_of(object: &CanonicalJsonObject, entity: &str) -> CanonicalJsonObject {
    let mut object = object.clone();
    if let Some(CanonicalJsonValue::Object(signatures)) = object.get_mut("signatures") {
        signatures.retain(|name, _| name == entity);
    }
    object
}

/// Verifies `entity`'s signature on `object` with `keys`.
fn verify_signed_by(
    object: &CanonicalJsonObject,
    entity: &str,
    keys: PublicKeySet,
) -> Result<(), ruma::signatures::VerificationError> {
    let mut map = PublicKeyMap::new();
    map.insert(entity.to_owned(), keys);
    ruma::signatures::verify_json(&map, object)
}

/// The key IDs `server` signed `object` with.
fn signing_key_ids(object: &CanonicalJsonObject, server: &ServerName) -> Vec<String> {
    match object.get("signatures") {
        Some(CanonicalJsonValue::Object(signatures)) => match signatures.get(server.as_str()) {
            Some(CanonicalJsonValue::Object(keys)) => keys.keys().cloned().collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The criteria of a notary query for `key_ids` (any key when empty).
pub fn minimum_valid_until(
    criteria: &BTreeMap<ruma::OwnedServerSigningKeyId, QueryCriteria>,
) -> u64 {
    criteria
        .values()
        .filter_map(|c| c.minimum_valid_until_ts)
        .map(|ts| u64::from(ts.0))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use ruma::{server_name, signatures::Ed25519KeyPair};

    use super::*;
    use crate::service::federation::server_keys::signed_keys;

    fn new_keypair(version: &str) -> Ed25519KeyPair {
        let der = Ed25519KeyPair::generate();
        Ed25519KeyPair::from_der(&der, version.into()).expect("key")
    }

    #[test]
    fn a_self_signed_key_object_is_accepted_and_a_forged_one_refused() {
        let keypair = new_keypair("k1");
        let raw = signed_keys(server_name!("b.test"), &keypair, 5_000).expect("signed");
        let (parsed, _) =
            check_key_object(server_name!("b.test"), raw.json().get(), None).expect("valid");
        assert_eq!(u64::from(parsed.valid_until_ts.0), 5_000);
        // Claimed for another server.
        assert!(check_key_object(server_name!("c.test"), raw.json().get(), None).is_err());
        // Signed by another key than the one it carries.
        let mut object: CanonicalJsonObject = serde_json::from_str(raw.json().get()).expect("json");
        let other = new_keypair("k1");
        object.insert(
            "verify_keys".into(),
            serde_json::from_value(serde_json::json!({
                "ed25519:k1": { "key": Base64::<ruma::serde::base64::Standard>::new(other.public_key().to_vec()).encode() }
            }))
            .expect("keys"),
        );
        let forged = serde_json::to_string(&object).expect("json");
        assert!(check_key_object(server_name!("b.test"), &forged, None).is_err());
    }

    #[test]
    fn old_keys_stay_valid_until_they_expired() {
        let mut keys = ServerKeys::default();
        let keypair = new_keypair("k1");
        let raw = signed_keys(server_name!("b.test"), &keypair, 5_000).expect("signed");
        let (parsed, signed) =
            check_key_object(server_name!("b.test"), raw.json().get(), None).expect("valid");
        keys.merge(&parsed, signed, 0);
        assert_eq!(keys.valid_at(4_000).len(), 1);
        assert!(keys.valid_at(6_000).is_empty());
        assert_eq!(keys.valid_until_ms, 5_000);
        // For a time already past, keys valid then answer without a fetch.
        assert!(satisfies(&keys, 4_000, &["ed25519:k1".to_owned()]));
        assert!(!satisfies(&keys, 4_000, &["ed25519:other".to_owned()]));
        assert!(!satisfies(&keys, 6_000, &[]));
        // A key claimed valid for a year is trusted for a week after the fetch.
        let year = 365 * 24 * 3600 * 1000;
        let raw = signed_keys(server_name!("b.test"), &keypair, year).expect("signed");
        let (parsed, signed) =
            check_key_object(server_name!("b.test"), raw.json().get(), None).expect("valid");
        keys.merge(&parsed, signed, 1_000);
        assert_eq!(keys.valid_until_ms, 1_000 + MAX_KEY_VALIDITY_MS);
        assert!(keys.valid_at(year).is_empty());
    }

    #[tokio::test]
    async fn events_of_this_server_verify_without_a_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.database.path = dir.path().join("db");
        config.database.cache_capacity_mb = 8;
        let services = crate::service::Services::open(Arc::new(config)).expect("services");
        let keys = &services.federation.keys;
        let version = RoomVersionId::V11;
        let rules = version.rules().expect("rules");
        let mut event: CanonicalJsonObject = serde_json::from_value(serde_json::json!({
            "room_id": "!room:localhost",
            "sender": "@alice:localhost",
            "origin_server_ts": 1_000,
            "type": "m.room.message",
            "content": { "body": "hello" },
            "depth": 3,
            "prev_events": [],
            "auth_events": [],
        }))
        .expect("event");
        ruma::signatures::hash_and_sign_event(
            "localhost",
            services.globals.keypair(),
            &mut event,
            &rules.redaction,
        )
        .expect("signed");
        assert_eq!(keys.verify_event(&event, &version).await.expect("verifies"), Verified::All);
        // Content changed after signing: the signatures (over the redacted form) still verify,
        // the hash does not: the caller stores the event redacted.
        let mut edited = event.clone();
        edited.insert(
            "content".into(),
            serde_json::from_value(serde_json::json!({ "body": "edited" })).expect("content"),
        );
        assert_eq!(
            keys.verify_event(&edited, &version).await.expect("signed"),
            Verified::Signatures
        );
        // A changed redacted field breaks the signature: rejected.
        let mut forged = event.clone();
        forged.insert("depth".into(), CanonicalJsonValue::Integer(4_u32.into()));
        assert!(keys.verify_event(&forged, &version).await.is_err());
        // Federation is disabled: another server's event cannot be checked.
        let mut foreign = event;
        foreign.insert("sender".into(), CanonicalJsonValue::String("@bob:other.test".into()));
        assert!(matches!(
            keys.verify_event(&foreign, &version).await,
            Err(FederationError::Disabled)
        ));
    }
}
