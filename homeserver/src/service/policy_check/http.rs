//! The policy check protocol over HTTP: `POST {url}/{callback}` with the arguments as a JSON
//! object and `Authorization: Bearer {token}`; see [`super::answer`] for the answers.

use std::time::Duration;

use serde::Serialize;

use super::{
    Callback, CheckLoginForSpam, CheckRegistrationForSpam, CheckUsernameForSpam, Failure,
    FederatedUserMayInvite, PolicyCheck, PolicyCheckError, PolicyFuture, PolicyRefusal,
    UserMayCreateRoom, UserMayInvite, UserMayJoinRoom, UserMayPublishRoom, UserMaySend3pidInvite,
    UserMaySendStateEvent, answer,
};

/// A policy service reached over HTTP.
pub struct HttpPolicyCheck {
    http: reqwest::Client,
    /// The base URL, without a trailing `/`.
    base_url: String,
    /// The bearer token; `None` sends no `Authorization` header. Never logged.
    token: Option<String>,
}

// By hand, so that the token never reaches a log line.
impl std::fmt::Debug for HttpPolicyCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPolicyCheck")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl HttpPolicyCheck {
    /// A client of the service at `base_url`; each check gets `timeout` in all (connecting
    /// included) before it counts as unanswered.
    pub fn new(
        base_url: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, PolicyCheckError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect is not an answer; following it could also hand the token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("relais/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PolicyCheckError::HttpClient(e.to_string()))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
        })
    }

    fn ask<'a, T: Serialize + Sync>(&'a self, callback: Callback, args: &'a T) -> PolicyFuture<'a> {
        Box::pin(async move {
            let url = format!("{}/{callback}", self.base_url);
            let mut request = self.http.post(&url).json(args);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let unavailable = |failure: Failure| {
                tracing::warn!(%callback, %url, ?failure, "policy service gave no usable answer");
                PolicyRefusal::Unavailable { callback, failure }
            };
            let response = request.send().await.map_err(|e| unavailable(failure_of(&e)))?;
            let status = response.status().as_u16();
            let body = response.bytes().await.map_err(|e| unavailable(failure_of(&e)))?;
            answer::parse(callback, status, &body).map_err(|refusal| match refusal {
                PolicyRefusal::Unavailable { failure, .. } => unavailable(failure),
                refused => refused,
            })
        })
    }
}

/// Classifies a transport error (reqwest's text carries no secret: the token is a header).
fn failure_of(error: &reqwest::Error) -> Failure {
    if error.is_timeout() { Failure::Timeout } else { Failure::Unreachable(error.to_string()) }
}

impl PolicyCheck for HttpPolicyCheck {
    fn user_may_invite<'a>(&'a self, args: &'a UserMayInvite) -> PolicyFuture<'a> {
        self.ask(Callback::UserMayInvite, args)
    }
    fn user_may_send_3pid_invite<'a>(
        &'a self,
        args: &'a UserMaySend3pidInvite,
    ) -> PolicyFuture<'a> {
        self.ask(Callback::UserMaySend3pidInvite, args)
    }
    fn user_may_join_room<'a>(&'a self, args: &'a UserMayJoinRoom) -> PolicyFuture<'a> {
        self.ask(Callback::UserMayJoinRoom, args)
    }
    fn user_may_create_room<'a>(&'a self, args: &'a UserMayCreateRoom) -> PolicyFuture<'a> {
        self.ask(Callback::UserMayCreateRoom, args)
    }
    fn user_may_send_state_event<'a>(
        &'a self,
        args: &'a UserMaySendStateEvent,
    ) -> PolicyFuture<'a> {
        self.ask(Callback::UserMaySendStateEvent, args)
    }
    fn user_may_publish_room<'a>(&'a self, args: &'a UserMayPublishRoom) -> PolicyFuture<'a> {
        self.ask(Callback::UserMayPublishRoom, args)
    }
    fn check_registration_for_spam<'a>(
        &'a self,
        args: &'a CheckRegistrationForSpam,
    ) -> PolicyFuture<'a> {
        self.ask(Callback::CheckRegistrationForSpam, args)
    }
    fn check_login_for_spam<'a>(&'a self, args: &'a CheckLoginForSpam) -> PolicyFuture<'a> {
        self.ask(Callback::CheckLoginForSpam, args)
    }
    fn check_username_for_spam<'a>(&'a self, args: &'a CheckUsernameForSpam) -> PolicyFuture<'a> {
        self.ask(Callback::CheckUsernameForSpam, args)
    }
    fn federated_user_may_invite<'a>(
        &'a self,
        args: &'a FederatedUserMayInvite,
    ) -> PolicyFuture<'a> {
        self.ask(Callback::FederatedUserMayInvite, args)
    }
}
