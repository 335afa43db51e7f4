//! End-to-end encryption keys: `keys/upload`, `keys/query`, `keys/claim`, `keys/changes`,
//! `keys/device_signing/upload` and `keys/signatures/upload`.
//!
//! Spec: <https://spec.matrix.org/latest/client-server-api/#end-to-end-encryption>. The server
//! checks what it can (device self-signatures, cross-signing chains) and refuses keys that claim
//! another user or device; it never sees a private key.

use std::{collections::BTreeMap, sync::Arc};

use ruma::api::client::keys::{
    claim_keys, get_key_changes, get_keys, upload_keys,
    upload_signatures::{self, v3::Failure},
    upload_signing_keys,
};
use serde_json::json;

use super::{
    membership::blocking,
    uiaa::{self, Stage},
};
use crate::{
    api::{
        error::{ApiError, ApiResult},
        limits,
        ruma::Ruma,
    },
    service::{Services, keys::KeyError},
};

/// `POST /_matrix/client/v3/keys/upload`: device keys, one-time keys and fallback keys of the
/// caller's device; answers the one-time key counts.
pub async fn upload(
    services: Arc<Services>,
    req: Ruma<upload_keys::v3::Request>,
) -> ApiResult<upload_keys::v3::Response> {
    blocking(move || {
        let (user, device, body) = (&req.auth.user_id, &req.auth.device_id, &req.body);
        let audience = match body.device_keys {
            Some(_) => services.key_audience(user)?,
            None => Vec::new(),
        };
        services.keys.upload_keys(
            user,
            device,
            body.device_keys.as_ref(),
            &body.one_time_keys,
            &body.fallback_keys,
            &audience,
        )?;
        // A bridge's device learns its new key counts from the next transaction.
        services.appservice_device_event(user, device);
        if body.device_keys.is_some() {
            services.federate_device_change(user, device, false);
        }
        Ok(upload_keys::v3::Response::new(services.keys.one_time_key_counts(user, device)?))
    })
    .await
}

/// `POST /_matrix/client/v3/keys/query`
pub async fn query(
    services: Arc<Services>,
    req: Ruma<get_keys::v3::Request>,
) -> ApiResult<get_keys::v3::Response> {
    let users = req.body.device_keys.len();
    let limit = services.config.limits.max_keys_query_users;
    limits::at_most(users, limit, "users in device_keys", "max_keys_query_users")?;
    if !services.federation_enabled() {
        return blocking(
            move || Ok(services.query_keys(&req.auth.user_id, &req.body.device_keys)?),
        )
        .await;
    }
    // Remote users are asked of their servers, all at once, after the local answer.
    let own = services.globals.server_name.clone();
    let local: BTreeMap<_, _> = req
        .body
        .device_keys
        .iter()
        .filter(|(user, _)| user.server_name() == own)
        .map(|(user, devices)| (user.clone(), devices.clone()))
        .collect();
    let s = services.clone();
    let requester = req.auth.user_id.clone();
    let mut response = blocking(move || Ok(s.query_keys(&requester, &local)?)).await?;
    services
        .query_remote_keys(
            &req.auth.user_id,
            &req.body.device_keys,
            req.body.timeout,
            &mut response,
        )
        .await;
    Ok(response)
}

/// `POST /_matrix/client/v3/keys/claim`: one key per device, never the same one-time key twice.
pub async fn claim(
    services: Arc<Services>,
    req: Ruma<claim_keys::v3::Request>,
) -> ApiResult<claim_keys::v3::Response> {
    let devices = req.body.one_time_keys.values().map(|devices| devices.len()).sum();
    let limit = services.config.limits.max_keys_claim_devices;
    limits::at_most(devices, limit, "devices in one_time_keys", "max_keys_claim_devices")?;
    let federates = services.federation_enabled();
    let own = services.globals.server_name.clone();
    let wanted: BTreeMap<_, _> = req
        .body
        .one_time_keys
        .iter()
        .filter(|(user, _)| !federates || user.server_name() == own)
        .map(|(user, devices)| (user.clone(), devices.clone()))
        .collect();
    let s = services.clone();
    let mut claimed = blocking(move || {
        let claimed = s.claim_keys(&wanted)?;
        // A claimed key lowers a count that a bridge's device must hear of, to upload more.
        for (user, devices) in &wanted {
            for device in devices.keys() {
                s.appservice_device_event(user, device);
            }
        }
        Ok(claimed)
    })
    .await?;
    if federates {
        services.claim_remote_keys(&req.body.one_time_keys, req.body.timeout, &mut claimed).await;
    }
    Ok(claimed)
}

/// `GET /_matrix/client/v3/keys/changes?from=&to=`: users whose device lists changed between
/// two sync tokens.
pub async fn changes(
    services: Arc<Services>,
    req: Ruma<get_key_changes::v3::Request>,
) -> ApiResult<get_key_changes::v3::Response> {
    let parse = |token: &str| {
        token
            .parse::<u64>()
            .map_err(|_| ApiError::InvalidParam(format!("invalid sync token {token:?}")))
    };
    let (from, to) = (parse(&req.body.from)?, parse(&req.body.to)?);
    blocking(move || {
        let changes = services.device_list_changes(&req.auth.user_id, from, to)?;
        Ok(get_key_changes::v3::Response::new(
            changes.changed.into_iter().collect(),
            changes.left.into_iter().collect(),
        ))
    })
    .await
}

/// `POST /_matrix/client/v3/keys/device_signing/upload`: the first upload needs no
/// user-interactive auth (MSC3967); replacing existing keys needs the password.
pub async fn upload_signing_keys(
    services: Arc<Services>,
    req: Ruma<upload_signing_keys::v3::Request>,
) -> ApiResult<upload_signing_keys::v3::Response> {
    blocking(move || {
        let user = &req.auth.user_id;
        let body = &req.body;
        let checked = services.keys.check_signing_keys(
            user,
            body.master_key.as_ref(),
            body.self_signing_key.as_ref(),
            body.user_signing_key.as_ref(),
        )?;
        if checked.replaces_existing {
            let purpose = format!("device_signing:{user}");
            uiaa::require(&services, &purpose, body.auth.as_ref(), &[Stage::Password(user)])?;
        }
        let audience = services.key_audience(user)?;
        services.keys.store_signing_keys(user, checked, &audience)?;
        services.federate_signing_keys(user);
        Ok(upload_signing_keys::v3::Response::new())
    })
    .await
}

/// `POST /_matrix/client/v3/keys/signatures/upload`: each signature is checked on its own;
/// those that fail are reported per key and the others are stored.
pub async fn upload_signatures(
    services: Arc<Services>,
    req: Ruma<upload_signatures::v3::Request>,
) -> ApiResult<upload_signatures::v3::Response> {
    // Another server's user's master key is asked of their server, to check the signature on it.
    let own = services.globals.server_name.clone();
    let remote: Vec<_> =
        req.body.signed_keys.keys().filter(|u| u.server_name() != own).cloned().collect();
    let remote_masters = if remote.is_empty() || !services.federation_enabled() {
        BTreeMap::new()
    } else {
        services.remote_master_keys(remote).await
    };
    blocking(move || {
        let caller = &req.auth.user_id;
        let audience = services.key_audience(caller)?;
        let mut response = upload_signatures::v3::Response::new();
        for (target, signed_keys) in &req.body.signed_keys {
            for (key_id, signed) in signed_keys.iter() {
                let result = if target.server_name() != services.globals.server_name {
                    match remote_masters.get(target) {
                        Some(master) => {
                            services.keys.sign_remote_master(caller, target, key_id, signed, master)
                        }
                        None => Err(KeyError::NotFound(format!(
                            "the master key of {target} could not be had from its server"
                        ))),
                    }
                } else {
                    services.keys.add_signatures(caller, target, key_id, signed, &audience)
                };
                let error = match result {
                    Ok(()) if target == caller => {
                        // Signatures on one's own keys are public: other servers hear of them.
                        match services.accounts.device(caller, key_id.into())? {
                            Some(_) => {
                                services.federate_device_change(caller, key_id.into(), false)
                            }
                            None => services.federate_signing_keys(caller),
                        }
                        continue;
                    }
                    Ok(()) => continue,
                    Err(KeyError::Storage(e)) => return Err(e.into()),
                    Err(e) => e,
                };
                response
                    .failures
                    .entry(target.clone())
                    .or_default()
                    .insert(key_id.to_owned(), failure(&error)?);
            }
        }
        Ok(response)
    })
    .await
}

/// The per-key failure of a signature upload.
fn failure(error: &KeyError) -> ApiResult<Failure> {
    let errcode = match error {
        KeyError::InvalidSignature(_) => "M_INVALID_SIGNATURE",
        KeyError::NotFound(_) => "M_NOT_FOUND",
        _ => "M_INVALID_PARAM",
    };
    serde_json::from_value(json!({ "errcode": errcode, "error": error.to_string() }))
        .map_err(|e| ApiError::Internal(e.to_string()))
}
