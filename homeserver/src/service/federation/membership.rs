//! Joining, leaving and inviting across servers.
//!
//! As the resident server, this server answers `make_join`/`make_leave` with an event template
//! built on its view of the room, and accepts the signed event back (`send_join`, `send_leave`),
//! which then enters the room like any event and is passed on to the room's other servers. It
//! signs invites of its own users (`invite`).
//!
//! As the joining server, it asks a resident server for a template, signs it, sends it back, and
//! builds the room from the state and auth chain of the answer, all of which is verified first.

use std::collections::BTreeSet;

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId,
    OwnedServerName, RoomId, RoomVersionId, ServerName, UserId,
    api::federation::membership::{
        RawStrippedState, create_invite, create_join_event, create_leave_event, prepare_join_event,
        prepare_leave_event,
    },
    events::{StateEventType, room::member::MembershipState},
};
use serde_json::value::{RawValue as RawJsonValue, to_raw_value};

use super::{
    FederationError,
    pdu::{PduError, parse_pdu, room_of},
};
use crate::service::{
    Services,
    rooms::{
        PduTemplate, RoomError,
        remote::{Accepted, rules_of},
    },
};

/// Room versions this server can join over federation.
pub const SUPPORTED_VERSIONS: &[&str] =
    &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"];

impl From<crate::storage::StorageError> for MembershipError {
    fn from(error: crate::storage::StorageError) -> Self {
        Self::Room(error.into())
    }
}

/// Errors of membership over federation.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The request is not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The joining server does not support the room's version.
    #[error("room version {0} is not supported by the joining server")]
    IncompatibleVersion(RoomVersionId),
    /// The room is not known here.
    #[error("room {0} is not known to this server")]
    UnknownRoom(OwnedRoomId),
    /// The event sent back is not the one asked for.
    #[error("{0}")]
    Invalid(String),
    /// No server could be used to join.
    #[error("could not join {room}: {reason}")]
    NoServer {
        /// The room.
        room: OwnedRoomId,
        /// What the servers answered.
        reason: String,
    },
    /// An event failed its checks.
    #[error(transparent)]
    Pdu(#[from] PduError),
    /// The room refused.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// Another server could not be asked.
    #[error(transparent)]
    Federation(#[from] FederationError),
}

pub(super) fn membership_template(user: &UserId, membership: &str) -> PduTemplate {
    PduTemplate::state(
        StateEventType::RoomMember,
        user.as_str(),
        serde_json::json!({ "membership": membership }),
    )
}

pub(super) fn raw(object: &CanonicalJsonObject) -> Result<Box<RawJsonValue>, MembershipError> {
    to_raw_value(object).map_err(|e| MembershipError::Invalid(e.to_string()))
}

pub(super) fn string_field<'a>(object: &'a CanonicalJsonObject, field: &str) -> Option<&'a str> {
    match object.get(field) {
        Some(CanonicalJsonValue::String(s)) => Some(s),
        _ => None,
    }
}

pub(super) fn membership_of(object: &CanonicalJsonObject) -> Option<&str> {
    match object.get("content") {
        Some(CanonicalJsonValue::Object(content)) => string_field(content, "membership"),
        _ => None,
    }
}

impl Services {
    /// Refuses a server the room's ACL denies.
    pub(super) fn require_acl(
        &self,
        room_id: &RoomId,
        origin: &ServerName,
    ) -> Result<(), MembershipError> {
        self.check_server_acl(room_id, origin)
            .map_err(|e| MembershipError::Forbidden(e.to_string()))
    }

    pub(super) fn require_federating_user(
        &self,
        origin: &ServerName,
        user: &UserId,
    ) -> Result<(), MembershipError> {
        if user.server_name() != origin {
            return Err(MembershipError::Forbidden(format!(
                "{origin} cannot act for {user}, a user of another server"
            )));
        }
        Ok(())
    }

    /// The checks of `make_join` and `make_knock` before the policy: the origin's own user, a
    /// room here whose ACL allows the origin, a room version the origin supports.
    pub(super) fn check_template_request(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        user: &UserId,
        versions: &[RoomVersionId],
    ) -> Result<(), MembershipError> {
        self.require_federating_user(origin, user)?;
        let version = self
            .rooms
            .room_version(room_id)?
            .ok_or_else(|| MembershipError::UnknownRoom(room_id.to_owned()))?;
        self.require_acl(room_id, origin)?;
        if !versions.contains(&version) {
            return Err(MembershipError::IncompatibleVersion(version));
        }
        Ok(())
    }

    /// Asks the policy whether another server's `user` may join (or knock on) the room, as
    /// local joins are asked: at the template and again when the signed event comes back.
    pub(super) async fn check_remote_entry(
        &self,
        user: &UserId,
        room_id: &RoomId,
        is_knock: bool,
    ) -> Result<(), MembershipError> {
        let invited = !is_knock
            && self
                .rooms
                .membership(room_id, user)?
                .is_some_and(|m| m.membership == MembershipState::Invite);
        self.policy_checks
            .user_may_join_room(user, room_id, invited, is_knock)
            .await
            .map_err(|refusal| MembershipError::Forbidden(refusal.to_string()))
    }

    /// This server's part of a template a resident server answered for `user`: checked to be
    /// their own `membership` event, completed and signed. Returns the event and its ID.
    pub(super) fn sign_template(
        &self,
        server: &ServerName,
        template: &RawJsonValue,
        version: &RoomVersionId,
        user: &UserId,
        membership: &str,
        reason: Option<&str>,
    ) -> Result<(CanonicalJsonObject, OwnedEventId), MembershipError> {
        let mut object = checked_template(server, template, user, membership)?;
        self.fill_own_event(&mut object, version, user, reason)?;
        let event_id = self.rooms.sign_event(&mut object, version)?;
        Ok((object, event_id))
    }

    /// `make_join`: the template of `user`'s join, for a server supporting `versions`.
    pub async fn make_join(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        user: &UserId,
        versions: &[RoomVersionId],
    ) -> Result<(RoomVersionId, Box<RawJsonValue>), MembershipError> {
        self.check_template_request(origin, room_id, user, versions)?;
        self.check_remote_entry(user, room_id, false).await?;
        let mut template = membership_template(user, "join");
        if let Some(authoriser) = self.restricted_join_authoriser(user, room_id)? {
            template.content["join_authorised_via_users_server"] = authoriser.as_str().into();
        }
        let (version, object) = self.rooms.event_template(room_id, user, &template)?;
        Ok((version, raw(&object)?))
    }

    /// `make_leave`: the template of `user`'s leave.
    pub fn make_leave(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        user: &UserId,
    ) -> Result<(RoomVersionId, Box<RawJsonValue>), MembershipError> {
        self.require_federating_user(origin, user)?;
        self.require_acl(room_id, origin)?;
        let (version, object) =
            self.rooms.event_template(room_id, user, &membership_template(user, "leave"))?;
        Ok((version, raw(&object)?))
    }

    /// Checks a membership event another server sends back (`send_join`, `send_leave`): it is
    /// the event named in the path, of the origin's user, with the expected membership.
    pub(super) async fn check_sent_membership(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        pdu: &RawJsonValue,
        membership: &str,
    ) -> Result<(RoomVersionId, CanonicalJsonObject), MembershipError> {
        let version = self
            .rooms
            .room_version(room_id)?
            .ok_or_else(|| MembershipError::UnknownRoom(room_id.to_owned()))?;
        self.require_acl(room_id, origin)?;
        let (id, object) = parse_pdu(pdu, &version)?;
        if id != *event_id {
            return Err(MembershipError::Invalid(format!(
                "the event's ID is {id}, not {event_id} as in the path"
            )));
        }
        if room_of(&object)? != room_id {
            return Err(MembershipError::Invalid("the event is for another room".into()));
        }
        let sender = string_field(&object, "sender")
            .and_then(|s| UserId::parse(s).ok())
            .ok_or_else(|| MembershipError::Invalid("the event has no valid sender".into()))?;
        self.require_federating_user(origin, &sender)?;
        if string_field(&object, "state_key") != Some(sender.as_str())
            || string_field(&object, "type") != Some("m.room.member")
            || membership_of(&object) != Some(membership)
        {
            return Err(MembershipError::Invalid(format!(
                "the event must be {sender}'s own m.room.member with membership {membership}"
            )));
        }
        // A restricted join this server authorises must carry its signature, which it adds
        // before the signatures are checked.
        let mut object = object;
        if authorised_by(&object, &self.config.server_name) {
            self.rooms.cosign_event(&mut object, &version)?;
        }
        let verified = self.verify_pdu(id, room_id.to_owned(), object, &version).await?;
        Ok((version, verified.object))
    }

    /// `send_join`: accepts a join signed by the joining server, adds it to the room, and answers
    /// the room's state before it with the auth chain.
    pub async fn send_join(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        pdu: &RawJsonValue,
    ) -> Result<create_join_event::v2::RoomState, MembershipError> {
        let (_, object) =
            self.check_sent_membership(origin, room_id, event_id, pdu, "join").await?;
        let sender = string_field(&object, "sender").and_then(|s| UserId::parse(s).ok());
        if let Some(sender) = &sender {
            self.check_remote_entry(sender, room_id, false).await?;
        }
        // A restricted join this server authorises carries its signature too.
        let authorised_here = authorised_by(&object, &self.config.server_name);
        let accepted =
            super::off_the_executor(|| self.rooms.append_remote(room_id, event_id, &object, true))?;
        let pdu = match accepted {
            Accepted::Stored(pdu) => pdu,
            Accepted::AlreadyKnown => self
                .rooms
                .pdu(event_id)?
                .ok_or_else(|| MembershipError::Invalid("the join was lost".into()))?,
            Accepted::SoftFailed => {
                return Err(MembershipError::Forbidden(
                    "the join is not allowed by the room's current state".into(),
                ));
            }
        };
        let state = self.rooms.state_events(pdu.stored.state_before)?;
        let state_ids: Vec<OwnedEventId> = state.iter().map(|p| p.event_id().clone()).collect();
        let chain = self.rooms.auth_chain(state_ids.iter().cloned().chain([event_id.clone()]))?;
        let mut room_state = create_join_event::v2::RoomState::new();
        room_state.state = state.iter().map(|p| p.stored.json.clone()).collect();
        for id in chain {
            if let Some(event) = self.rooms.pdu(&id)? {
                room_state.auth_chain.push(event.stored.json.clone());
            }
        }
        if authorised_here {
            room_state.event = Some(raw(&object)?);
        }
        let servers: BTreeSet<String> = self
            .rooms
            .joined_members(room_id)?
            .iter()
            .map(|u| u.server_name().to_string())
            .collect();
        room_state.servers_in_room = Some(servers.into_iter().collect());
        Ok(room_state)
    }

    /// `send_leave`: accepts a leave signed by the leaving server.
    pub async fn send_leave(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        pdu: &RawJsonValue,
    ) -> Result<(), MembershipError> {
        let (_, object) =
            self.check_sent_membership(origin, room_id, event_id, pdu, "leave").await?;
        match super::off_the_executor(|| {
            self.rooms.append_remote(room_id, event_id, &object, true)
        })? {
            Accepted::SoftFailed => Err(MembershipError::Forbidden(
                "the leave is not allowed by the room's current state".into(),
            )),
            Accepted::Stored(_) | Accepted::AlreadyKnown => Ok(()),
        }
    }

    /// `invite` (v2): another server invites one of this server's users. The policy is asked,
    /// the event is checked and signed, and the invite is kept for the user's `/sync`.
    pub async fn receive_invite(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        version: &RoomVersionId,
        event: &RawJsonValue,
        invite_room_state: &[RawStrippedState],
    ) -> Result<Box<RawJsonValue>, MembershipError> {
        if rules_of(version).is_err() {
            return Err(MembershipError::IncompatibleVersion(version.clone()));
        }
        let (id, object) = parse_pdu(event, version)?;
        if id != *event_id || room_of(&object)? != room_id {
            return Err(MembershipError::Invalid("the invite is not the event in the path".into()));
        }
        let sender = string_field(&object, "sender")
            .and_then(|s| UserId::parse(s).ok())
            .ok_or_else(|| MembershipError::Invalid("the invite has no valid sender".into()))?;
        self.require_federating_user(origin, &sender)?;
        let invitee = string_field(&object, "state_key")
            .and_then(|s| UserId::parse(s).ok())
            .ok_or_else(|| MembershipError::Invalid("the invite has no valid state_key".into()))?;
        if invitee.server_name() != self.config.server_name
            || membership_of(&object) != Some("invite")
        {
            return Err(MembershipError::Invalid(
                "the event must invite a user of this server".into(),
            ));
        }
        if !self.accounts.exists(&invitee)? {
            return Err(MembershipError::Invalid(format!("{invitee} does not exist")));
        }
        let stripped = stripped_state_values(invite_room_state);
        // The policy sees the invite as Synapse's `federated_user_may_invite` gives it: the event
        // with its ID and the room's stripped state.
        let mut for_policy =
            serde_json::to_value(&object).map_err(|e| MembershipError::Invalid(e.to_string()))?;
        for_policy["event_id"] = event_id.as_str().into();
        for_policy["unsigned"] = serde_json::json!({ "invite_room_state": stripped });
        self.policy_checks
            .federated_user_may_invite(for_policy)
            .await
            .map_err(|refusal| MembershipError::Forbidden(refusal.to_string()))?;
        let verified = self.verify_pdu(id, room_id.to_owned(), object, version).await?;
        let mut signed = verified.object;
        self.rooms.cosign_event(&mut signed, version)?;
        self.rooms.store_remote_invite(room_id, event_id, &signed, stripped, &invitee)?;
        raw(&signed)
    }

    /// Joins `user` to a room of other servers: `make_join` and `send_join` with the first of
    /// `servers` that answers.
    pub async fn join_remote(
        &self,
        user: &UserId,
        room_id: &RoomId,
        servers: &[OwnedServerName],
        reason: Option<&str>,
    ) -> Result<OwnedRoomId, MembershipError> {
        self.through_servers(user, room_id, servers, RemoteMembership::Join, reason).await?;
        Ok(room_id.to_owned())
    }

    /// Asks the first of `servers` (other than this one) that answers for `membership`: a
    /// refusal (403) is the answer; other failures move on to the next server.
    pub(super) async fn through_servers(
        &self,
        user: &UserId,
        room_id: &RoomId,
        servers: &[OwnedServerName],
        membership: RemoteMembership,
        reason: Option<&str>,
    ) -> Result<(), MembershipError> {
        let mut failures = Vec::new();
        for server in servers.iter().filter(|s| **s != self.config.server_name) {
            let attempt = match membership {
                RemoteMembership::Join => self.join_through(user, room_id, server, reason).await,
                RemoteMembership::Leave => self.leave_through(user, room_id, server, reason).await,
                RemoteMembership::Knock => self.knock_through(user, room_id, server, reason).await,
            };
            match attempt {
                Ok(()) => return Ok(()),
                Err(MembershipError::Federation(FederationError::Remote {
                    status: 403,
                    error,
                    ..
                })) => return Err(MembershipError::Forbidden(error)),
                Err(e) => {
                    tracing::info!(%room_id, %server, error = %e, ?membership, "asking this server failed");
                    failures.push(format!("{server}: {e}"));
                }
            }
        }
        Err(MembershipError::NoServer {
            room: room_id.to_owned(),
            reason: if failures.is_empty() {
                "no server of the room is known (give one with `via`)".into()
            } else {
                failures.join("; ")
            },
        })
    }

    async fn join_through(
        &self,
        user: &UserId,
        room_id: &RoomId,
        server: &ServerName,
        reason: Option<&str>,
    ) -> Result<(), MembershipError> {
        let mut request = prepare_join_event::v1::Request::new(room_id.to_owned(), user.to_owned());
        request.ver =
            SUPPORTED_VERSIONS.iter().filter_map(|v| RoomVersionId::try_from(*v).ok()).collect();
        let response = self.federation.client.send(server, request).await?;
        let version = response.room_version.unwrap_or(RoomVersionId::V1);
        let (mut object, event_id) =
            self.sign_template(server, &response.event, &version, user, "join", reason)?;
        let request = create_join_event::v2::Request::new(
            room_id.to_owned(),
            event_id.clone(),
            raw(&object)?,
        );
        let answer = self
            .federation
            .client
            .send_with_timeout(server, request, std::time::Duration::from_secs(120))
            .await?
            .room_state;
        // The resident server's copy carries its signature for a restricted join.
        if let Some(signed) = &answer.event
            && let Ok((id, signed)) = parse_pdu(signed, &version)
            && id == event_id
        {
            object = signed;
        }
        let state = self.verify_pdus(server, room_id, &version, &answer.state).await?;
        let auth_chain = self.verify_pdus(server, room_id, &version, &answer.auth_chain).await?;
        if !state.iter().any(|(_, o)| string_field(o, "type") == Some("m.room.create")) {
            return Err(MembershipError::Invalid(format!(
                "{server} sent a state without m.room.create"
            )));
        }
        super::off_the_executor(|| {
            self.rooms.join_remote_room(
                room_id,
                &version,
                &state,
                &auth_chain,
                (&event_id, &object),
            )
        })?;
        Ok(())
    }

    /// Rejects an invite to a room this server is not in: `make_leave` and `send_leave` through
    /// the inviting server, then the user's membership is `leave`.
    pub async fn leave_remote(
        &self,
        user: &UserId,
        room_id: &RoomId,
        reason: Option<&str>,
    ) -> Result<(), MembershipError> {
        let servers = self.join_candidates(room_id, user, &[])?;
        self.through_servers(user, room_id, &servers, RemoteMembership::Leave, reason).await
    }

    async fn leave_through(
        &self,
        user: &UserId,
        room_id: &RoomId,
        server: &ServerName,
        reason: Option<&str>,
    ) -> Result<(), MembershipError> {
        let request = prepare_leave_event::v1::Request::new(room_id.to_owned(), user.to_owned());
        let response = self.federation.client.send(server, request).await?;
        let version = response.room_version.unwrap_or(RoomVersionId::V1);
        let (object, event_id) =
            self.sign_template(server, &response.event, &version, user, "leave", reason)?;
        let request = create_leave_event::v2::Request::new(
            room_id.to_owned(),
            event_id.clone(),
            raw(&object)?,
        );
        self.federation.client.send(server, request).await?;
        self.rooms.store_remote_membership(room_id, &event_id, &object, user)?;
        Ok(())
    }

    /// Fills in this server's part of a template another server made for one of its users.
    fn fill_own_event(
        &self,
        object: &mut CanonicalJsonObject,
        version: &RoomVersionId,
        user: &UserId,
        reason: Option<&str>,
    ) -> Result<(), MembershipError> {
        let rules = rules_of(version)?;
        let now: u64 = MilliSecondsSinceUnixEpoch::now().0.into();
        object.insert(
            "origin_server_ts".into(),
            CanonicalJsonValue::Integer(ruma::Int::new_saturating(now as i64)),
        );
        if version_has_origin(version) {
            object.insert(
                "origin".into(),
                CanonicalJsonValue::String(self.config.server_name.to_string()),
            );
        }
        let joining = membership_of(object) == Some("join");
        if let Some(CanonicalJsonValue::Object(content)) = object.get_mut("content") {
            if joining && let Some(account) = self.accounts.account(user)? {
                if let Some(name) = account.displayname {
                    content.insert("displayname".into(), CanonicalJsonValue::String(name));
                }
                if let Some(url) = account.avatar_url {
                    content
                        .insert("avatar_url".into(), CanonicalJsonValue::String(url.to_string()));
                }
            }
            if let Some(reason) = reason {
                content.insert("reason".into(), CanonicalJsonValue::String(reason.to_owned()));
            }
        }
        if matches!(rules.event_id_format, ruma::room_version_rules::EventIdFormatVersion::V1) {
            let id = format!("${}:{}", ruma::TransactionId::new(), self.config.server_name);
            object.insert("event_id".into(), CanonicalJsonValue::String(id));
        }
        Ok(())
    }

    /// Invites a user of another server: the invite is built here, signed by the invitee's server
    /// (`invite` v2), and then added to the room.
    pub async fn invite_remote(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        invitee: &UserId,
        reason: Option<&str>,
        is_direct: bool,
    ) -> Result<(), MembershipError> {
        let mut template = membership_template(invitee, "invite");
        if let Some(reason) = reason {
            template.content["reason"] = reason.into();
        }
        if is_direct {
            template.content["is_direct"] = true.into();
        }
        let (version, mut object) = self.rooms.event_template(room_id, sender, &template)?;
        if version_has_origin(&version) {
            object.insert(
                "origin".into(),
                CanonicalJsonValue::String(self.config.server_name.to_string()),
            );
        }
        let event_id = self.rooms.sign_event(&mut object, &version)?;
        let stripped = self.invite_state_pdus(room_id)?;
        let request = create_invite::v2::Request::new(
            room_id.to_owned(),
            event_id.clone(),
            version.clone(),
            raw(&object)?,
            stripped,
        );
        let answer = self.federation.client.send(invitee.server_name(), request).await?;
        let (id, signed) = parse_pdu(&answer.event, &version)?;
        if id != event_id {
            return Err(MembershipError::Invalid(format!(
                "{} changed the invite it signed",
                invitee.server_name()
            )));
        }
        let verified = self.verify_pdu(id, room_id.to_owned(), signed, &version).await?;
        let accepted = super::off_the_executor(|| {
            self.rooms.append_remote(room_id, &event_id, &verified.object, false)
        })?;
        match accepted {
            Accepted::SoftFailed => Err(MembershipError::Forbidden(
                "the room changed while the invite was signed; try again".into(),
            )),
            Accepted::Stored(_) | Accepted::AlreadyKnown => Ok(()),
        }
    }

    /// The room's state an invited server shows its user (as full PDUs, as the spec now asks).
    pub(super) fn invite_state_pdus(
        &self,
        room_id: &RoomId,
    ) -> Result<Vec<RawStrippedState>, MembershipError> {
        let (_, meta) = self.rooms.require_meta(room_id)?;
        let mut out = Vec::new();
        for kind in [
            StateEventType::RoomCreate,
            StateEventType::RoomName,
            StateEventType::RoomAvatar,
            StateEventType::RoomTopic,
            StateEventType::RoomJoinRules,
            StateEventType::RoomCanonicalAlias,
            StateEventType::RoomEncryption,
            // The access class, for a partner's policy deciding on the invite.
            StateEventType::from(relais_policy::names::ACCESS),
        ] {
            if let Some(event) = self.rooms.state_event(meta.state, &kind, "")? {
                out.push(RawStrippedState::Pdu(event.stored.json.clone()));
            }
        }
        Ok(out)
    }

    /// The servers to try to join a room through: those named by the client, the alias's or
    /// room ID's server, and the server of whoever invited the user.
    pub fn join_candidates(
        &self,
        room_id: &RoomId,
        user: &UserId,
        via: &[OwnedServerName],
    ) -> Result<Vec<OwnedServerName>, MembershipError> {
        let mut servers: Vec<OwnedServerName> = via.to_vec();
        if let Some(invite) = self.rooms.membership(room_id, user)?
            && invite.membership == MembershipState::Invite
            && let Some(event) = self.rooms.pdu(&invite.event_id)?
        {
            servers.push(event.sender().server_name().to_owned());
        }
        if let Some(server) = room_id.server_name() {
            servers.push(server.to_owned());
        }
        let mut seen = BTreeSet::new();
        servers.retain(|s| seen.insert(s.clone()));
        Ok(servers)
    }
}

/// The stripped state another server sends with an invite or a knock answer, as JSON: full PDUs
/// (as the spec now asks) or stripped events (older servers).
pub(super) fn stripped_state_values(state: &[RawStrippedState]) -> Vec<serde_json::Value> {
    state
        .iter()
        .filter_map(|s| match s {
            #[allow(deprecated)]
            RawStrippedState::Stripped(raw) => serde_json::from_str(raw.json().get()).ok(),
            RawStrippedState::Pdu(pdu) => serde_json::from_str(pdu.get()).ok(),
            _ => None,
        })
        .collect()
}

/// The memberships a user of this server asks another server's room for.
#[derive(Clone, Copy, Debug)]
pub(super) enum RemoteMembership {
    Join,
    Leave,
    Knock,
}

/// The event template a resident server answered, checked to be `user`'s own membership event
/// with `membership`.
fn checked_template(
    server: &ServerName,
    event: &RawJsonValue,
    user: &UserId,
    membership: &str,
) -> Result<CanonicalJsonObject, MembershipError> {
    let object: CanonicalJsonObject = serde_json::from_str(event.get())
        .map_err(|e| MembershipError::Invalid(format!("{server} sent no valid template: {e}")))?;
    if string_field(&object, "sender") != Some(user.as_str())
        || string_field(&object, "state_key") != Some(user.as_str())
        || membership_of(&object) != Some(membership)
    {
        return Err(MembershipError::Invalid(format!(
            "{server} sent a template for another {membership}"
        )));
    }
    Ok(object)
}

/// Room versions 1 and 2 events carry an `origin` key the redaction algorithm keeps.
fn version_has_origin(version: &RoomVersionId) -> bool {
    matches!(version, RoomVersionId::V1 | RoomVersionId::V2)
}

/// Whether a join names a user of `server` in `join_authorised_via_users_server`.
fn authorised_by(object: &CanonicalJsonObject, server: &ServerName) -> bool {
    match object.get("content") {
        Some(CanonicalJsonValue::Object(content)) => {
            string_field(content, "join_authorised_via_users_server")
                .and_then(|u| UserId::parse(u).ok())
                .is_some_and(|u| u.server_name() == server)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use ruma::{server_name, user_id};
    use serde_json::{json, value::to_raw_value};

    use super::*;

    #[test]
    fn a_template_must_be_the_users_own_membership() {
        let server = server_name!("resident.test");
        let user = user_id!("@ana:joining.test");
        let good = to_raw_value(&json!({
            "sender": user, "state_key": user, "type": "m.room.member",
            "content": { "membership": "join" },
        }))
        .expect("json");
        assert!(checked_template(server, &good, user, "join").is_ok());
        assert!(checked_template(server, &good, user, "knock").is_err());
        let someone_else = to_raw_value(&json!({
            "sender": "@eve:resident.test", "state_key": user, "type": "m.room.member",
            "content": { "membership": "join" },
        }))
        .expect("json");
        assert!(checked_template(server, &someone_else, user, "join").is_err());
        let not_json = to_raw_value(&json!(["not", "an", "event"])).expect("json");
        assert!(checked_template(server, &not_json, user, "join").is_err());
    }

    #[test]
    fn only_a_join_naming_a_local_user_is_authorised_here() {
        let here = server_name!("resident.test");
        let join = |via: &str| -> CanonicalJsonObject {
            serde_json::from_value(json!({
                "content": { "membership": "join", "join_authorised_via_users_server": via },
            }))
            .expect("object")
        };
        assert!(authorised_by(&join("@mod:resident.test"), here));
        assert!(!authorised_by(&join("@mod:elsewhere.test"), here));
        assert!(!authorised_by(&join("not a user"), here));
    }

    #[test]
    fn stripped_state_is_read_in_both_forms() {
        let pdu = to_raw_value(&json!({ "type": "m.room.name", "state_key": "", "content": {} }))
            .expect("json");
        let values = stripped_state_values(&[RawStrippedState::Pdu(pdu)]);
        assert_eq!(values.len(), 1);
        assert_eq!(values[0]["type"], "m.room.name");
    }
}
