//! User-interactive authentication for the endpoints that need it.

use ruma::api::client::uiaa::{AuthData, UserIdentifier};
use serde_json::{Value, json};

use crate::{
    api::error::ApiError,
    service::{Services, threepids::Purpose},
};

/// One accepted stage and how to check it.
pub enum Stage<'a> {
    /// `m.login.dummy`: always passes.
    Dummy,
    /// `m.login.registration_token`: one of the configured tokens.
    RegistrationToken(&'a [String]),
    /// `m.login.password`: the password of this user.
    Password(&'a ruma::UserId),
    /// `m.login.registration_token` with the token of a usable registration invitation of the
    /// policy layer.
    Invitation,
    /// `m.login.email.identity`: an e-mail address verified for this purpose.
    EmailIdentity(Purpose),
}

impl Stage<'_> {
    fn name(&self) -> &'static str {
        match self {
            Stage::Dummy => "m.login.dummy",
            Stage::RegistrationToken(_) | Stage::Invitation => "m.login.registration_token",
            Stage::Password(_) => "m.login.password",
            Stage::EmailIdentity(_) => "m.login.email.identity",
        }
    }
}

/// Requires that `auth` completes one of `flows` (each a single stage here). Answers the UIA
/// 401 with a session otherwise.
pub fn require(
    services: &Services,
    purpose: &str,
    auth: Option<&AuthData>,
    flows: &[Stage<'_>],
) -> Result<(), ApiError> {
    let flow_names: Vec<Value> = flows.iter().map(|s| json!({ "stages": [s.name()] })).collect();
    let info = |session: &str, error: Option<(&str, String)>| {
        let mut body = json!({
            "flows": flow_names,
            "params": {},
            "session": session,
            "completed": services.uiaa.completed(session),
        });
        if let Some((code, message)) = error {
            body["errcode"] = code.into();
            body["error"] = message.into();
        }
        ApiError::Uiaa(body)
    };
    let Some(auth) = auth else {
        return Err(info(&services.uiaa.open(purpose), None));
    };
    let session = match auth.session() {
        Some(session) => session.to_owned(),
        // Clients may skip the first round trip and send credentials straight away.
        None => services.uiaa.open(purpose),
    };
    let stage_name = auth.auth_type().map(|t| t.as_str().to_owned()).unwrap_or_default();
    let Some(stage) = flows.iter().find(|s| s.name() == stage_name) else {
        return Err(info(
            &session,
            Some(("M_UNRECOGNIZED", format!("unsupported stage {stage_name}"))),
        ));
    };
    if let (Stage::EmailIdentity(purpose), AuthData::EmailIdentity(given)) = (stage, auth) {
        let creds = &given.thirdparty_id_creds;
        if let Err(error) = services.threepids.validated_email(
            creds.sid.as_str(),
            creds.client_secret.as_str(),
            *purpose,
        ) {
            // Clients poll with the same credentials until the link is opened.
            return Err(info(&session, Some(("M_UNAUTHORIZED", error.to_string()))));
        }
    }
    let passed = match (stage, auth) {
        (Stage::EmailIdentity(_), AuthData::EmailIdentity(_)) => true,
        (Stage::Dummy, AuthData::Dummy(_)) => true,
        (Stage::RegistrationToken(tokens), AuthData::RegistrationToken(given)) => {
            tokens.iter().any(|t| constant_time_eq(t.as_bytes(), given.token.as_bytes()))
        }
        (Stage::Invitation, AuthData::RegistrationToken(given)) => {
            services.policy_invitation(&given.token).is_some()
        }
        (Stage::Password(user), AuthData::Password(given)) => {
            let named = match &given.identifier {
                UserIdentifier::Matrix(id) => {
                    id.user == user.as_str() || id.user == user.localpart()
                }
                _ => false,
            };
            named && services.accounts.check_password(user, &given.password)?
        }
        _ => false,
    };
    if !passed {
        return Err(info(
            &session,
            Some(("M_FORBIDDEN", "invalid credentials for this stage".into())),
        ));
    }
    if !services.uiaa.complete(&session, purpose, stage.name()) {
        return Err(info(
            &services.uiaa.open(purpose),
            Some(("M_FORBIDDEN", "unknown or expired authentication session".into())),
        ));
    }
    services.uiaa.close(&session);
    Ok(())
}

/// Compares secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
