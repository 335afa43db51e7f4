//! Knocking across servers: `make_knock`/`send_knock` as the resident server, and a local user
//! knocking on another server's room. A knock is answered by an invite (or refused by a leave)
//! from the room's moderators, which arrives like any invite.

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedEventId, RoomId, RoomVersionId, ServerName,
    UserId,
    api::federation::membership::{RawStrippedState, create_knock_event, prepare_knock_event},
};
use serde_json::value::RawValue as RawJsonValue;

use super::membership::{
    MembershipError, RemoteMembership, SUPPORTED_VERSIONS, membership_template, raw, string_field,
    stripped_state_values,
};
use crate::service::{Services, rooms::remote::Accepted};

impl Services {
    /// `make_knock`: the template of `user`'s knock, for a server supporting `versions`.
    pub async fn make_knock(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        user: &UserId,
        versions: &[RoomVersionId],
    ) -> Result<(RoomVersionId, Box<RawJsonValue>), MembershipError> {
        self.check_template_request(origin, room_id, user, versions)?;
        self.check_remote_entry(user, room_id, true).await?;
        let (version, object) =
            self.rooms.event_template(room_id, user, &membership_template(user, "knock"))?;
        Ok((version, raw(&object)?))
    }

    /// `send_knock`: accepts a knock signed by the knocking server and answers the room's
    /// stripped state.
    pub async fn send_knock(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        pdu: &RawJsonValue,
    ) -> Result<Vec<RawStrippedState>, MembershipError> {
        let (_, object) =
            self.check_sent_membership(origin, room_id, event_id, pdu, "knock").await?;
        if let Some(sender) = string_field(&object, "sender").and_then(|s| UserId::parse(s).ok()) {
            self.check_remote_entry(&sender, room_id, true).await?;
        }
        match super::off_the_executor(|| {
            self.rooms.append_remote(room_id, event_id, &object, true)
        })? {
            Accepted::SoftFailed => Err(MembershipError::Forbidden(
                "the knock is not allowed by the room's current state".into(),
            )),
            Accepted::Stored(_) | Accepted::AlreadyKnown => self.invite_state_pdus(room_id),
        }
    }

    /// Knocks on a room of other servers: `make_knock` and `send_knock` with the first of
    /// `servers` that answers; the knock is then kept for the user's `/sync`.
    pub async fn knock_remote(
        &self,
        user: &UserId,
        room_id: &RoomId,
        servers: &[ruma::OwnedServerName],
        reason: Option<&str>,
    ) -> Result<(), MembershipError> {
        self.through_servers(user, room_id, servers, RemoteMembership::Knock, reason).await
    }

    pub(super) async fn knock_through(
        &self,
        user: &UserId,
        room_id: &RoomId,
        server: &ServerName,
        reason: Option<&str>,
    ) -> Result<(), MembershipError> {
        let mut request =
            prepare_knock_event::v1::Request::new(room_id.to_owned(), user.to_owned());
        request.ver =
            SUPPORTED_VERSIONS.iter().filter_map(|v| RoomVersionId::try_from(*v).ok()).collect();
        let response = self.federation.client.send(server, request).await?;
        let version = response.room_version;
        let (object, event_id) =
            self.sign_template(server, &response.event, &version, user, "knock", reason)?;
        let request = create_knock_event::v1::Request::new(
            room_id.to_owned(),
            event_id.clone(),
            raw(&object)?,
        );
        let answer = self.federation.client.send(server, request).await?;
        let state = stripped_state_values(&answer.knock_room_state);
        let state = CanonicalJsonValue::try_from(serde_json::Value::Array(state))
            .map_err(|e| MembershipError::Invalid(format!("invalid knock_room_state: {e}")))?;
        let mut kept = object.clone();
        let mut unsigned = CanonicalJsonObject::new();
        unsigned.insert("knock_room_state".into(), state);
        kept.insert("unsigned".into(), CanonicalJsonValue::Object(unsigned));
        self.rooms.store_remote_membership(room_id, &event_id, &kept, user)?;
        Ok(())
    }
}
