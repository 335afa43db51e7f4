//! Ruma request types as axum handlers: parsing, authentication chosen by the request type's
//! auth scheme, and route registration from the request metadata (nobody types a path).

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request, State},
    response::{IntoResponse, Response},
    routing::{MethodFilter, on},
};
use bytes::{Bytes, BytesMut};
use http::request::Parts;
use ruma::api::{
    IncomingRequest, OutgoingResponse,
    auth_scheme::{
        AccessToken, AccessTokenOptional, AppserviceToken, AppserviceTokenOptional, NoAccessToken,
        NoAuthentication,
    },
    error::{DeserializationError, FromHttpRequestError},
    path_builder::PathBuilder,
};

use super::{error::ApiError, json_limits, route_table};
use crate::{
    config::LimitsConfig,
    service::{
        Services,
        accounts::{APPSERVICE_DEVICE, AppserviceCaller, Session, TokenCheck},
        appservice::Appservice,
    },
};

/// How a request type authenticates its caller.
pub trait Authenticate {
    /// What the handler gets: a session, an optional session, or nothing.
    type Identity: Send + 'static;
    /// The scheme's name in the route table (`relais routes`).
    const SCHEME: &'static str;
    /// Authenticates the request from its head, before the body is read.
    fn authenticate(services: &Services, parts: &Parts) -> Result<Self::Identity, ApiError>;
    /// A second step once the body is read, for schemes whose proof covers the body (the
    /// `X-Matrix` signatures of federation, whose keys may have to be fetched). Nothing by
    /// default.
    fn verify_body(
        services: &Arc<Services>,
        parts: &Parts,
        body: &Bytes,
        identity: &Self::Identity,
    ) -> impl Future<Output = Result<(), ApiError>> + Send {
        let _ = (services, parts, body, identity);
        std::future::ready(Ok(()))
    }
}

impl Authenticate for AccessToken {
    type Identity = Session;
    const SCHEME: &'static str = "access_token";
    fn authenticate(services: &Services, parts: &Parts) -> Result<Session, ApiError> {
        let token = access_token(parts).ok_or(ApiError::MissingToken)?;
        session(services, parts, &token)
    }
}

impl Authenticate for AccessTokenOptional {
    type Identity = Option<Session>;
    const SCHEME: &'static str = "access_token_optional";
    fn authenticate(services: &Services, parts: &Parts) -> Result<Option<Session>, ApiError> {
        match access_token(parts) {
            Some(token) => session(services, parts, &token).map(Some),
            None => Ok(None),
        }
    }
}

/// The session of a user's access token, or of an application service's `as_token` acting as the
/// user named by `user_id` (and the device named by `device_id`).
fn session(services: &Services, parts: &Parts, token: &str) -> Result<Session, ApiError> {
    match services.accounts.check_token(token)? {
        TokenCheck::Valid(session) => {
            services.check_account_usable(&session.user_id)?;
            return Ok(session);
        }
        TokenCheck::Expired => return Err(ApiError::SoftLogout),
        TokenCheck::Unknown => {}
    }
    let service = services.appservices.by_as_token(token).ok_or(ApiError::UnknownToken)?;
    let params: Vec<(String, String)> =
        parts.uri.query().map(|q| form_urlencoded_pairs(q).collect()).unwrap_or_default();
    let param = |names: &[&str]| {
        params.iter().find(|(k, _)| names.contains(&k.as_str())).map(|(_, v)| v.as_str())
    };
    let user_id = services.appservices.masquerade(&service, param(&["user_id"]))?;
    if !services.accounts.exists(&user_id)? {
        return Err(ApiError::Forbidden(format!(
            "application service {} has not registered {user_id}",
            service.id()
        )));
    }
    let device = param(&["device_id", "org.matrix.msc3202.device_id"]);
    if let Some(device) = device
        && services.accounts.device(&user_id, device.into())?.is_none()
    {
        return Err(ApiError::Forbidden(format!("{user_id} has no device {device}")));
    }
    Ok(Session {
        user_id,
        device_id: device.unwrap_or(APPSERVICE_DEVICE).into(),
        appservice: Some(AppserviceCaller {
            id: service.id().to_owned(),
            rate_limited: service.rate_limited(),
            device: device.is_some(),
        }),
    })
}

impl Authenticate for NoAuthentication {
    type Identity = ();
    const SCHEME: &'static str = "none";
    fn authenticate(_: &Services, _: &Parts) -> Result<(), ApiError> {
        Ok(())
    }
}

impl Authenticate for NoAccessToken {
    type Identity = ();
    const SCHEME: &'static str = "no_access_token";
    fn authenticate(_: &Services, _: &Parts) -> Result<(), ApiError> {
        Ok(())
    }
}

impl Authenticate for AppserviceToken {
    type Identity = Arc<Appservice>;
    const SCHEME: &'static str = "appservice_token";
    fn authenticate(services: &Services, parts: &Parts) -> Result<Arc<Appservice>, ApiError> {
        let token = access_token(parts).ok_or(ApiError::MissingToken)?;
        services.appservices.by_as_token(&token).ok_or(ApiError::UnknownToken)
    }
}

impl Authenticate for AppserviceTokenOptional {
    type Identity = Option<Arc<Appservice>>;
    const SCHEME: &'static str = "appservice_token_optional";
    /// Login and registration: the application service whose token this is; a user's token (or
    /// none) makes an ordinary request.
    fn authenticate(
        services: &Services,
        parts: &Parts,
    ) -> Result<Option<Arc<Appservice>>, ApiError> {
        Ok(access_token(parts).and_then(|token| services.appservices.by_as_token(&token)))
    }
}

/// The access token from the `Authorization` header or the deprecated `access_token` query
/// parameter.
fn access_token(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        return value.strip_prefix("Bearer ").map(|t| t.trim().to_owned());
    }
    let query = parts.uri.query()?;
    form_urlencoded_pairs(query).find(|(k, _)| k == "access_token").map(|(_, v)| v)
}

fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        let decode = |s: &str| percent_decode(&s.replace('+', " "));
        Some((decode(k), decode(v)))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed, authenticated request of ruma type `T`.
pub struct Ruma<T: IncomingRequest>
where
    T::Authentication: Authenticate,
{
    /// The request.
    pub body: T,
    /// The caller, as the auth scheme defines it.
    pub auth: <T::Authentication as Authenticate>::Identity,
    /// The client's address, for device records.
    pub client_ip: Option<String>,
    /// The client's `User-Agent` header, for the policy checks of registration and login.
    pub user_agent: Option<String>,
    /// The raw JSON body, for endpoints that keep unknown fields.
    pub json_body: Option<serde_json::Value>,
}

/// How the extractor reads a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyKind {
    /// JSON (or nothing), at most `limits.max_request_bytes`.
    Json,
    /// A file upload: raw bytes of any type, at most `media.max_upload_bytes`, refused from its
    /// `Content-Length` before it is read when it is too large.
    Upload,
}

impl<T> FromRequest<Arc<Services>> for Ruma<T>
where
    T: IncomingRequest + Send,
    T::Authentication: Authenticate,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, services: &Arc<Services>) -> Result<Self, ApiError> {
        Self::extract(request, services, BodyKind::Json).await
    }
}

impl<T> Ruma<T>
where
    T: IncomingRequest + Send,
    T::Authentication: Authenticate,
{
    async fn extract(
        request: Request,
        services: &Arc<Services>,
        kind: BodyKind,
    ) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let path_args: Vec<String> =
            match RawPathParams::from_request_parts(&mut parts, services).await {
                Ok(params) => params.iter().map(|(_, v)| v.to_owned()).collect(),
                Err(_) => Vec::new(),
            };
        // A trailing empty parameter (the state key of `/state/{type}/`) may be left out.
        let expected = T::PATH_BUILDER.all_paths().next().map_or(0, |p| p.matches('{').count());
        let mut path_args = path_args;
        while path_args.len() < expected {
            path_args.push(String::new());
        }
        let client_ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let user_agent = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let auth = <T::Authentication as Authenticate>::authenticate(services, &parts)?;
        let limit = match kind {
            BodyKind::Json => services.config.limits.max_request_bytes,
            BodyKind::Upload => {
                usize::try_from(services.config.media.max_upload_bytes).unwrap_or(usize::MAX)
            }
        };
        let too_large = || ApiError::TooLarge(format!("request body is larger than {limit} bytes"));
        let declared_length = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared_length.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
        // Signatures cover the body as it was sent, before an empty one becomes `{}`.
        let received = bytes.clone();
        let mut json_body = None;
        if T::METHOD != http::Method::GET && kind == BodyKind::Json {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                bytes = Bytes::from_static(b"{}");
            }
            let is_json = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|v| v.starts_with("application/json") || v.is_empty());
            json_body = parse_json_body(&bytes, is_json, &services.config.limits)?;
        }
        <T::Authentication as Authenticate>::verify_body(services, &parts, &received, &auth)
            .await?;
        let request = http::Request::from_parts(parts, bytes);
        let body = parse_request::<T>(request, &path_args)?;
        Ok(Self { body, auth, client_ip, user_agent, json_body })
    }
}

/// Parses a ruma request type from an HTTP request. ruma panics on some malformed input (a
/// `/login` body without `type` indexes a missing key, found by the `request` fuzz target):
/// such a body is the client's error, answered 400 `M_BAD_JSON`, not a server fault.
pub fn parse_request<T: IncomingRequest>(
    request: http::Request<Bytes>,
    path_args: &[String],
) -> Result<T, ApiError> {
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        T::try_from_http_request(request, path_args)
    }));
    match parsed {
        Ok(parsed) => parsed.map_err(map_parse_error),
        Err(_) => Err(ApiError::BadJson("invalid request body".into())),
    }
}

/// Parses a JSON body and checks it against the `limits.max_json_*` limits. Bodies sent with
/// another content type are checked too (ruma parses them as JSON all the same) but are not
/// returned, and one that is not JSON is left for ruma to refuse.
fn parse_json_body(
    bytes: &[u8],
    is_json: bool,
    limits: &LimitsConfig,
) -> Result<Option<serde_json::Value>, ApiError> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => {
            json_limits::check(&value, limits)?;
            Ok(is_json.then_some(value))
        }
        // serde_json's own depth limit (128) is above any allowed `max_json_depth`.
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => {
            Err(json_limits::too_deep(limits))
        }
        Err(e) if is_json => Err(ApiError::NotJson(format!("request body is not valid JSON: {e}"))),
        Err(_) => Ok(None),
    }
}

fn map_parse_error(error: FromHttpRequestError) -> ApiError {
    match error {
        FromHttpRequestError::Deserialization(DeserializationError::Json(e)) => {
            ApiError::BadJson(format!("invalid request body: {e}"))
        }
        FromHttpRequestError::Deserialization(DeserializationError::Query(e)) => {
            ApiError::InvalidParam(format!("invalid query parameter: {e}"))
        }
        FromHttpRequestError::Deserialization(DeserializationError::Ident(e)) => {
            ApiError::InvalidParam(format!("invalid identifier: {e}"))
        }
        other => ApiError::BadJson(other.to_string()),
    }
}

/// A ruma response as an axum response.
pub struct RumaResponse<T>(pub T);

impl<T: OutgoingResponse> IntoResponse for RumaResponse<T> {
    fn into_response(self) -> Response {
        match self.0.try_into_http_response::<BytesMut>() {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                Response::from_parts(parts, Body::from(body.freeze()))
            }
            Err(e) => {
                ApiError::Internal(format!("could not serialise response: {e}")).into_response()
            }
        }
    }
}

/// Registers ruma endpoints on a router.
pub trait RumaRouter {
    /// Registers `handler` for every path and the method of request type `T`.
    fn ruma_route<T, F, Fut>(self, handler: F) -> Self
    where
        T: IncomingRequest + Send + 'static,
        T::Authentication: Authenticate,
        F: Fn(Arc<Services>, Ruma<T>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<T::OutgoingResponse, ApiError>> + Send + 'static;

    /// Like [`RumaRouter::ruma_route`] for an endpoint whose body is a file: any content type,
    /// never parsed as JSON, limited by `media.max_upload_bytes` instead of
    /// `limits.max_request_bytes`. The handler answers any response (ruma's response type of the
    /// asynchronous upload cannot be constructed outside ruma).
    fn ruma_upload_route<T, F, Fut, R>(self, handler: F) -> Self
    where
        T: IncomingRequest + Send + 'static,
        T::Authentication: Authenticate,
        F: Fn(Arc<Services>, Ruma<T>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ApiError>> + Send + 'static,
        R: IntoResponse + 'static;

    /// Registers `handler` for request type `T` on extra `paths` (aliases the spec allows but
    /// ruma's metadata does not list, such as an omitted empty state key).
    fn ruma_route_at<T, F, Fut>(self, paths: &[&'static str], handler: F) -> Self
    where
        T: IncomingRequest + Send + 'static,
        T::Authentication: Authenticate,
        F: Fn(Arc<Services>, Ruma<T>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<T::OutgoingResponse, ApiError>> + Send + 'static;

    /// Like [`RumaRouter::ruma_route`] for a handler that builds its own response, where ruma's
    /// response type cannot express what the spec requires.
    fn ruma_route_custom<T, F, Fut, R>(self, handler: F) -> Self
    where
        T: IncomingRequest + Send + 'static,
        T::Authentication: Authenticate,
        F: Fn(Arc<Services>, Ruma<T>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ApiError>> + Send + 'static,
        R: IntoResponse + 'static;
}

impl RumaRouter for Router<Arc<Services>> {
    fn ruma_route<T, F, Fut>(self, handler: F) -> Self
    where
        T: IncomingRequest + Send + 'static,
        T::Authentication: Authenticate,
        F: Fn(Arc<Services>, Ruma<T>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<T::OutgoingResponse, ApiError>> + Send + 'static,
    {
        let paths: Vec<&'static str> = T::PATH_BUILDER.all_paths().collect();
        self.ruma_route_at(&paths, handler)
    }

    fn ruma_route_at<T, F, Fut>(self, paths: &[&'static str], handler: F) -> Self
    where
        T: IncomingRequest + Send + 'static,
        T::Authentication: Authenticate,
        F: Fn(Arc<Services>, Ruma<T>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<T::OutgoingResponse, ApiError>> + Send + 'static,
    {
        route(self, paths, BodyKind::Json, move |services, request| {
            let response = handler(services, request);
            async move { response.await.map(RumaResponse) }
        })
    }

    fn ruma_upload_route<T, F, Fut, R>(self, handler: F) -> Self
    where
        T: IncomingRequest + Send + 'static,
        T::Authentication: Authenticate,
        F: Fn(Arc<Services>, Ruma<T>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ApiError>> + Send + 'static,
        R: IntoResponse + 'static,
    {
        let paths: Vec<&'static str> = T::PATH_BUILDER.all_paths().collect();
        route(self, &paths, BodyKind::Upload, handler)
    }

    fn ruma_route_custom<T, F, Fut, R>(self, handler: F) -> Self
    where
        T: IncomingRequest + Send + 'static,
        T::Authentication: Authenticate,
        F: Fn(Arc<Services>, Ruma<T>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ApiError>> + Send + 'static,
        R: IntoResponse + 'static,
    {
        let paths: Vec<&'static str> = T::PATH_BUILDER.all_paths().collect();
        route(self, &paths, BodyKind::Json, handler)
    }
}

/// Registers `handler` for `T`'s method on `paths`, extracting the request with `body`.
fn route<T, F, Fut, R>(
    router: Router<Arc<Services>>,
    paths: &[&'static str],
    body: BodyKind,
    handler: F,
) -> Router<Arc<Services>>
where
    T: IncomingRequest + Send + 'static,
    T::Authentication: Authenticate,
    F: Fn(Arc<Services>, Ruma<T>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ApiError>> + Send + 'static,
    R: IntoResponse + 'static,
{
    let Ok(method) = MethodFilter::try_from(T::METHOD) else { return router };
    let mut router = router;
    for path in paths.iter().copied() {
        route_table::record(T::METHOD.as_str(), path, <T::Authentication as Authenticate>::SCHEME);
        let handler = handler.clone();
        router = router.route(
            path,
            on(method, move |State(services): State<Arc<Services>>, request: Request| async move {
                let request = Ruma::<T>::extract(request, &services, body).await?;
                handler(services, request).await
            }),
        );
    }
    router
}
