//! The one mapping from domain errors to Matrix errors (`errcode`, HTTP status, message).

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use crate::{
    service::{
        StartError,
        accounts::AccountError,
        keys::KeyError,
        media::{MediaError, thumbnail::ThumbnailError},
        push::PushError,
        rooms::RoomError,
    },
    storage::StorageError,
};

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No access token was given.
    #[error("missing access token")]
    MissingToken,
    /// The access token is unknown or revoked.
    #[error("unknown or expired access token")]
    UnknownToken,
    /// The access token has expired: the client should use its refresh token (`soft_logout`).
    #[error("the access token has expired")]
    SoftLogout,
    /// The action is not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The body is not JSON.
    #[error("{0}")]
    NotJson(String),
    /// The body is JSON but does not fit the endpoint.
    #[error("{0}")]
    BadJson(String),
    /// A required parameter is missing.
    #[error("{0}")]
    MissingParam(String),
    /// A parameter has a wrong value.
    #[error("{0}")]
    InvalidParam(String),
    /// The request or event is too large.
    #[error("{0}")]
    TooLarge(String),
    /// Unknown endpoint.
    #[error("unrecognized request")]
    Unrecognized,
    /// Known endpoint, wrong method.
    #[error("method not allowed for this endpoint")]
    MethodNotAllowed,
    /// The user ID is taken.
    #[error("the user ID is already taken")]
    UserInUse,
    /// The user name is invalid.
    #[error("{0}")]
    InvalidUsername(String),
    /// The room alias is taken.
    #[error("{0}")]
    RoomInUse(String),
    /// The room version is not supported.
    #[error("{0}")]
    UnsupportedRoomVersion(String),
    /// User-interactive authentication is needed: the body is the UIA state.
    #[error("user-interactive authentication required")]
    Uiaa(Value),
    /// Too many requests.
    #[error("too many requests")]
    LimitExceeded {
        /// When to retry.
        retry_after_ms: u64,
    },
    /// The user is deactivated.
    #[error("{0}")]
    UserDeactivated(String),
    /// A signature on uploaded keys does not verify.
    #[error("{0}")]
    InvalidSignature(String),
    /// Keys were sent to a backup version that is not the current one.
    #[error("wrong backup version")]
    WrongRoomKeysVersion {
        /// The current backup version, if any.
        current_version: Option<String>,
    },
    /// A quota or resource limit of the server is reached.
    #[error("{0}")]
    ResourceLimitExceeded(String),
    /// The media ID already has content.
    #[error("media already uploaded")]
    CannotOverwriteMedia,
    /// The media's content has not been uploaded yet.
    #[error("the content has not been uploaded yet")]
    NotYetUploaded,
    /// The server cannot make a thumbnail of this content.
    #[error("{0}")]
    CannotThumbnail(String),
    /// A sliding sync `pos` the server does not know (any more): the client starts over.
    #[error("{0}")]
    UnknownPos(String),
    /// The policy service refused the action, or gave no usable answer (fail closed): its
    /// errcode, message and other answer fields go to the client as they are.
    #[error("{error}")]
    PolicyRefused {
        /// The Matrix error code (`M_FORBIDDEN` unless the service chose another).
        errcode: String,
        /// The message.
        error: String,
        /// Other fields of the service's answer.
        fields: serde_json::Map<String, Value>,
    },
    /// The ID is in an application service's exclusive namespace.
    #[error("{0}")]
    Exclusive(String),
    /// The application service has no URL to reach it at.
    #[error("the application service has no URL configured")]
    UrlNotSet,
    /// The application service did not answer in time.
    #[error("the application service did not answer in time")]
    ConnectionTimeout,
    /// The application service could not be reached.
    #[error("{0}")]
    ConnectionFailed(String),
    /// The application service answered with an error status.
    #[error("the application service answered HTTP {status}")]
    BadStatus {
        /// The HTTP status it answered.
        status: u16,
        /// The body it answered.
        body: String,
    },
    /// The joining server does not support the room's version.
    #[error("{0}")]
    IncompatibleRoomVersion(String),
    /// A federation request without a valid `X-Matrix` signature.
    #[error("{0}")]
    Unauthorized(String),
    /// The e-mail address belongs to an account already.
    #[error("{0}")]
    ThreepidInUse(String),
    /// The e-mail address belongs to no account.
    #[error("{0}")]
    ThreepidNotFound(String),
    /// This server does not verify e-mail addresses.
    #[error("{0}")]
    ThreepidMediumNotSupported(String),
    /// The server's policy does not accept this e-mail address.
    #[error("{0}")]
    ThreepidDenied(String),
    /// No verified address matches the session given.
    #[error("{0}")]
    ThreepidAuthFailed(String),
    /// The verification e-mail could not be sent (the reason is logged).
    #[error("the verification e-mail could not be sent; try again later")]
    EmailNotSent,
    /// Something broke on the server; the details are logged, not sent.
    #[error("internal server error")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::MissingToken => (StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN"),
            Self::UnknownToken | Self::SoftLogout => (StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "M_FORBIDDEN"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "M_NOT_FOUND"),
            Self::NotJson(_) => (StatusCode::BAD_REQUEST, "M_NOT_JSON"),
            Self::BadJson(_) => (StatusCode::BAD_REQUEST, "M_BAD_JSON"),
            Self::MissingParam(_) => (StatusCode::BAD_REQUEST, "M_MISSING_PARAM"),
            Self::InvalidParam(_) => (StatusCode::BAD_REQUEST, "M_INVALID_PARAM"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE"),
            Self::Unrecognized => (StatusCode::NOT_FOUND, "M_UNRECOGNIZED"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED"),
            Self::UserInUse => (StatusCode::BAD_REQUEST, "M_USER_IN_USE"),
            Self::InvalidUsername(_) => (StatusCode::BAD_REQUEST, "M_INVALID_USERNAME"),
            Self::RoomInUse(_) => (StatusCode::BAD_REQUEST, "M_ROOM_IN_USE"),
            Self::UnsupportedRoomVersion(_) => {
                (StatusCode::BAD_REQUEST, "M_UNSUPPORTED_ROOM_VERSION")
            }
            Self::Uiaa(_) => (StatusCode::UNAUTHORIZED, "M_FORBIDDEN"),
            Self::LimitExceeded { .. } => (StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED"),
            Self::UserDeactivated(_) => (StatusCode::FORBIDDEN, "M_USER_DEACTIVATED"),
            Self::InvalidSignature(_) => (StatusCode::BAD_REQUEST, "M_INVALID_SIGNATURE"),
            Self::WrongRoomKeysVersion { .. } => {
                (StatusCode::FORBIDDEN, "M_WRONG_ROOM_KEYS_VERSION")
            }
            Self::ResourceLimitExceeded(_) => (StatusCode::FORBIDDEN, "M_RESOURCE_LIMIT_EXCEEDED"),
            Self::CannotOverwriteMedia => (StatusCode::CONFLICT, "M_CANNOT_OVERWRITE_MEDIA"),
            Self::NotYetUploaded => (StatusCode::GATEWAY_TIMEOUT, "M_NOT_YET_UPLOADED"),
            Self::CannotThumbnail(_) => (StatusCode::BAD_REQUEST, "M_UNKNOWN"),
            Self::UnknownPos(_) => (StatusCode::BAD_REQUEST, "M_UNKNOWN_POS"),
            // The errcode is the service's: `into_response` writes it.
            Self::PolicyRefused { .. } => (StatusCode::FORBIDDEN, "M_FORBIDDEN"),
            Self::Exclusive(_) => (StatusCode::BAD_REQUEST, "M_EXCLUSIVE"),
            Self::UrlNotSet => (StatusCode::BAD_REQUEST, "M_URL_NOT_SET"),
            Self::ConnectionTimeout => (StatusCode::GATEWAY_TIMEOUT, "M_CONNECTION_TIMEOUT"),
            Self::ConnectionFailed(_) => (StatusCode::BAD_GATEWAY, "M_CONNECTION_FAILED"),
            Self::BadStatus { .. } => (StatusCode::BAD_GATEWAY, "M_BAD_STATUS"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED"),
            Self::IncompatibleRoomVersion(_) => {
                (StatusCode::BAD_REQUEST, "M_INCOMPATIBLE_ROOM_VERSION")
            }
            Self::ThreepidInUse(_) => (StatusCode::BAD_REQUEST, "M_THREEPID_IN_USE"),
            Self::ThreepidNotFound(_) => (StatusCode::BAD_REQUEST, "M_THREEPID_NOT_FOUND"),
            Self::ThreepidMediumNotSupported(_) => {
                (StatusCode::BAD_REQUEST, "M_THREEPID_MEDIUM_NOT_SUPPORTED")
            }
            Self::ThreepidDenied(_) => (StatusCode::FORBIDDEN, "M_THREEPID_DENIED"),
            Self::ThreepidAuthFailed(_) => (StatusCode::BAD_REQUEST, "M_THREEPID_AUTH_FAILED"),
            Self::EmailNotSent => (StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, errcode) = self.parts();
        let body = match &self {
            Self::Uiaa(info) => info.clone(),
            Self::SoftLogout => {
                json!({ "errcode": errcode, "error": self.to_string(), "soft_logout": true })
            }
            Self::LimitExceeded { retry_after_ms } => json!({
                "errcode": errcode,
                "error": self.to_string(),
                "retry_after_ms": retry_after_ms,
            }),
            Self::BadStatus { status, body } => json!({
                "errcode": errcode,
                "error": self.to_string(),
                "status": status,
                "body": body,
            }),
            Self::WrongRoomKeysVersion { current_version } => json!({
                "errcode": errcode,
                "error": self.to_string(),
                "current_version": current_version,
            }),
            Self::PolicyRefused { errcode, error, fields } => {
                let mut body = fields.clone();
                body.insert("errcode".into(), errcode.clone().into());
                body.insert("error".into(), error.clone().into());
                Value::Object(body)
            }
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                json!({ "errcode": errcode, "error": self.to_string() })
            }
            _ => json!({ "errcode": errcode, "error": self.to_string() }),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::LimitExceeded { retry_after_ms } = self
            && let Ok(value) =
                http::HeaderValue::from_str(&(retry_after_ms.div_ceil(1000)).to_string())
        {
            response.headers_mut().insert(http::header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<StartError> for ApiError {
    fn from(error: StartError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<RoomError> for ApiError {
    fn from(error: RoomError) -> Self {
        match error {
            RoomError::Storage(e) => e.into(),
            RoomError::UnknownRoom(room) => {
                Self::NotFound(format!("room {room} is not known to this server"))
            }
            RoomError::UnknownEvent => Self::NotFound("event not found".into()),
            RoomError::Forbidden(reason) => Self::Forbidden(reason),
            RoomError::TooLarge(_) => Self::TooLarge(error.to_string()),
            RoomError::BadRequest(reason) => Self::BadJson(reason),
            RoomError::UnsupportedVersion(_) => Self::UnsupportedRoomVersion(error.to_string()),
            RoomError::AliasInUse(_) => Self::RoomInUse(error.to_string()),
            RoomError::Signing(e) => Self::Internal(e),
            RoomError::Malformed(e) => Self::Internal(e.to_string()),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Storage(e) => e.into(),
            AccountError::UserInUse => Self::UserInUse,
            AccountError::InvalidUsername(reason) => Self::InvalidUsername(reason),
            AccountError::Hash => Self::Internal("password hashing failed".into()),
            AccountError::NotFound => Self::NotFound("not found".into()),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::Storage(e) => e.into(),
            KeyError::InvalidParam(reason) => Self::InvalidParam(reason),
            KeyError::InvalidSignature(reason) => Self::InvalidSignature(reason),
            KeyError::MissingParam(reason) => Self::MissingParam(reason),
            KeyError::NotFound(reason) => Self::NotFound(reason),
            KeyError::WrongBackupVersion { current } => {
                Self::WrongRoomKeysVersion { current_version: current }
            }
        }
    }
}

impl From<MediaError> for ApiError {
    fn from(error: MediaError) -> Self {
        match error {
            MediaError::Storage(e) => e.into(),
            MediaError::NotFound => Self::NotFound("media not found".into()),
            MediaError::NotYetUploaded => Self::NotYetUploaded,
            MediaError::TooLarge(_) => Self::TooLarge(error.to_string()),
            MediaError::QuotaExceeded(_) => Self::ResourceLimitExceeded(error.to_string()),
            MediaError::Forbidden(reason) => Self::Forbidden(reason),
            MediaError::CannotOverwrite => Self::CannotOverwriteMedia,
            MediaError::TooManyPending { retry_after_ms } => Self::LimitExceeded { retry_after_ms },
            MediaError::Thumbnail(e @ ThumbnailError::TooLarge) => Self::TooLarge(e.to_string()),
            MediaError::Thumbnail(e) => {
                Self::CannotThumbnail(format!("cannot generate a thumbnail: {e}"))
            }
            MediaError::Io { .. } | MediaError::Task(_) => Self::Internal(error.to_string()),
        }
    }
}

impl From<PushError> for ApiError {
    fn from(error: PushError) -> Self {
        match error {
            PushError::Storage(e) => e.into(),
            PushError::NotFound(reason) => Self::NotFound(reason),
            PushError::InvalidParam(reason) => Self::InvalidParam(reason),
            PushError::MissingParam(reason) => Self::MissingParam(reason),
            PushError::HttpClient(reason) => Self::Internal(reason),
        }
    }
}

impl From<crate::service::threepids::ThreepidError> for ApiError {
    fn from(e: crate::service::threepids::ThreepidError) -> Self {
        use crate::service::threepids::ThreepidError as E;
        let message = e.to_string();
        match e {
            E::NotConfigured => Self::ThreepidMediumNotSupported(message),
            E::InvalidEmail(_) | E::InvalidClientSecret => Self::InvalidParam(message),
            E::InUse(_) => Self::ThreepidInUse(message),
            E::NotBound(_) => Self::ThreepidNotFound(message),
            E::NoSession | E::BadToken | E::NotValidated => Self::ThreepidAuthFailed(message),
            E::Send(_) => Self::EmailNotSent,
            E::Storage(e) => e.into(),
        }
    }
}

impl From<crate::service::policy_check::PolicyRefusal> for ApiError {
    fn from(refusal: crate::service::policy_check::PolicyRefusal) -> Self {
        let errcode = refusal.errcode().to_owned();
        let error = refusal.to_string();
        Self::PolicyRefused { errcode, error, fields: refusal.into_fields() }
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::service::appservice::AppserviceError> for ApiError {
    fn from(error: crate::service::appservice::AppserviceError) -> Self {
        use crate::service::appservice::AppserviceError;
        match error {
            AppserviceError::Storage(e) => e.into(),
            AppserviceError::Room(e) => e.into(),
            AppserviceError::Exclusive(reason) => Self::Exclusive(reason),
            AppserviceError::Forbidden(reason) => Self::Forbidden(reason),
            AppserviceError::UrlNotSet => Self::UrlNotSet,
            AppserviceError::Timeout => Self::ConnectionTimeout,
            AppserviceError::ConnectionFailed(reason) => Self::ConnectionFailed(reason),
            AppserviceError::BadStatus { status, body } => Self::BadStatus { status, body },
            AppserviceError::Registration(e) => Self::Internal(e.to_string()),
        }
    }
}

impl From<crate::service::sliding_sync::SlidingSyncError> for ApiError {
    fn from(error: crate::service::sliding_sync::SlidingSyncError) -> Self {
        use crate::service::sliding_sync::SlidingSyncError;
        match error {
            SlidingSyncError::UnknownPos(_) => Self::UnknownPos(error.to_string()),
            SlidingSyncError::Room(e) => e.into(),
            SlidingSyncError::Storage(e) => e.into(),
        }
    }
}

impl From<crate::service::federation::pdu::PduError> for ApiError {
    fn from(error: crate::service::federation::pdu::PduError) -> Self {
        use crate::service::federation::pdu::PduError as E;
        match error {
            E::Invalid(reason) => Self::BadJson(reason),
            E::UnknownRoom(_) => Self::NotFound(error.to_string()),
            E::Federation(e) => e.into(),
            E::Room(e) => e.into(),
            E::Missing(reason) | E::Denied(reason) => Self::Forbidden(reason),
        }
    }
}

impl From<crate::service::federation::membership::MembershipError> for ApiError {
    fn from(error: crate::service::federation::membership::MembershipError) -> Self {
        use crate::service::federation::membership::MembershipError as E;
        match error {
            E::Forbidden(reason) => Self::Forbidden(reason),
            E::IncompatibleVersion(_) => Self::IncompatibleRoomVersion(error.to_string()),
            E::UnknownRoom(_) => Self::NotFound(error.to_string()),
            E::Invalid(reason) => Self::BadJson(reason),
            E::NoServer { .. } => Self::NotFound(error.to_string()),
            E::Pdu(e) => e.into(),
            E::Room(e) => e.into(),
            E::Federation(e) => e.into(),
        }
    }
}
