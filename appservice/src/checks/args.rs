//! The arguments of each policy check, as the policy service receives them: one JSON object per
//! call, with the field names of Synapse's spam-checker callbacks (as the `synapse-http-antispam`
//! module sends them), so a service written for that module reads them unchanged.

use ruma::{OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `user_may_invite`: a local user invites a Matrix user into a room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMayInvite {
    /// Who sends the invite.
    pub inviter: OwnedUserId,
    /// Who is invited.
    pub invitee: OwnedUserId,
    /// The room.
    pub room_id: OwnedRoomId,
}

/// `user_may_send_3pid_invite`: a local user invites a third-party identifier (an e-mail address).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMaySend3pidInvite {
    /// Who sends the invite.
    pub inviter: OwnedUserId,
    /// The kind of identifier: `email` or `msisdn`.
    pub medium: String,
    /// The identifier itself.
    pub address: String,
    /// The room.
    pub room_id: OwnedRoomId,
}

/// `user_may_join_room`: a local user joins a room, or knocks on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMayJoinRoom {
    /// Who joins.
    pub user: OwnedUserId,
    /// The room.
    pub room: OwnedRoomId,
    /// Whether the user holds a pending invite to the room.
    pub is_invited: bool,
    /// Whether this is a knock (a request to join) rather than a join. Synapse has no knock
    /// callback; services that do not know this field treat a knock as a join, which errs on
    /// the safe side.
    #[serde(default)]
    pub is_knock: bool,
}

/// `user_may_create_room`: a local user creates a room (or upgrades one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMayCreateRoom {
    /// The creator.
    pub user_id: OwnedUserId,
    /// The body of the `createRoom` request as the client sent it; for an upgrade, the parts of
    /// an equivalent request (`room_version`, `creation_content` with the predecessor).
    /// `synapse-http-antispam` sends none: the room is then judged as a plain room.
    #[serde(default)]
    pub room_config: Value,
}

/// `user_may_send_state_event`: a local user sends a state event (power levels, join rules,
/// `fr.relais.access`, anything but memberships, which have their own callbacks).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMaySendStateEvent {
    /// The sender.
    pub user_id: OwnedUserId,
    /// The room.
    pub room_id: OwnedRoomId,
    /// The event type.
    pub event_type: String,
    /// The state key.
    pub state_key: String,
    /// The content the client asked for.
    pub content: Value,
}

/// `user_may_publish_room`: a local user lists a room in the public room directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMayPublishRoom {
    /// Who publishes.
    pub user_id: OwnedUserId,
    /// The room.
    pub room_id: OwnedRoomId,
}

/// One client connection behind a registration or a login: `[user_agent, ip]` in JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestInfo(
    /// The `User-Agent` header, if any.
    pub Option<String>,
    /// The client's IP address (empty when unknown).
    pub String,
);

/// `check_registration_for_spam`: someone registers an account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckRegistrationForSpam {
    /// The e-mail address used to register, if any (always `null` here: Relais does not verify
    /// e-mail addresses yet).
    pub email_threepid: Option<Value>,
    /// The requested user name (localpart); `null` when the server picks one.
    pub username: Option<String>,
    /// The connections the registration came from.
    pub request_info: Vec<RequestInfo>,
    /// The single-sign-on provider, if any (always `null` here).
    pub auth_provider_id: Option<String>,
    /// The SHA-256 (base64url, unpadded) of the registration token the user presented, if any:
    /// the ID of the registration invitation it names, which the policy service looks up in its
    /// directory. The token itself, a secret, never leaves the homeserver.
    #[serde(
        rename = "fr.relais.registration_token_sha256",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub registration_token_hash: Option<String>,
}

/// `check_login_for_spam`: a user logs in (after the password was checked).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckLoginForSpam {
    /// The user.
    pub user_id: OwnedUserId,
    /// The device ID the client asked to reuse, if any.
    pub device_id: Option<String>,
    /// The display name asked for the new device, if any.
    pub initial_display_name: Option<String>,
    /// The connections the login came from.
    pub request_info: Vec<RequestInfo>,
    /// The single-sign-on provider, if any (always `null` here).
    pub auth_provider_id: Option<String>,
}

/// A user as a user-directory search shows them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    /// The user.
    pub user_id: OwnedUserId,
    /// Their display name, if any.
    pub display_name: Option<String>,
    /// Their avatar's `mxc://` URI, if any.
    pub avatar_url: Option<String>,
}

/// `check_username_for_spam`: whether a user may appear in someone's user-directory results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckUsernameForSpam {
    /// The user who would be shown.
    pub user_profile: UserProfile,
    /// The user who searches.
    pub requester_id: OwnedUserId,
}

/// `federated_user_may_invite`: an invite arrives over federation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FederatedUserMayInvite {
    /// The invite event in the client format, with its `event_id` and the stripped state in
    /// `unsigned`.
    pub event: Value,
}
