//! Membership actions that combine rooms and accounts: join, leave, kick, ban, profile updates.

use ruma::{
    OwnedRoomId, RoomId, UserId,
    events::{StateEventType, room::member::MembershipState},
};
use serde_json::{Value, json};

use super::{
    Services,
    rooms::{PduTemplate, RoomError},
};

impl Services {
    /// The member-event content for `user` with their profile.
    fn member_content(
        &self,
        user: &UserId,
        membership: &str,
        reason: Option<&str>,
    ) -> Result<Value, RoomError> {
        let mut content = json!({ "membership": membership });
        if (membership == "join" || membership == "invite" || membership == "knock")
            && let Some(account) = self.accounts.account(user)?
        {
            if let Some(name) = account.displayname {
                content["displayname"] = name.into();
            }
            if let Some(url) = account.avatar_url {
                content["avatar_url"] = url.into();
            }
        }
        if let Some(reason) = reason {
            content["reason"] = reason.into();
        }
        Ok(content)
    }

    /// Sends `target`'s member event with `content` on behalf of `sender`.
    fn send_member_event(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        target: &UserId,
        content: Value,
    ) -> Result<(), RoomError> {
        self.rooms.append(
            room_id,
            sender,
            PduTemplate::state(StateEventType::RoomMember, target.as_str(), content),
            None,
        )?;
        Ok(())
    }

    /// Joins a local room.
    pub fn join(
        &self,
        room_id: &RoomId,
        user: &UserId,
        reason: Option<&str>,
    ) -> Result<OwnedRoomId, RoomError> {
        if !self.rooms.exists(room_id)? {
            return Err(RoomError::UnknownRoom(room_id.to_owned()));
        }
        let mut content = self.member_content(user, "join", reason)?;
        if let Some(authoriser) = self.restricted_join_authoriser(user, room_id)? {
            content["join_authorised_via_users_server"] = authoriser.as_str().into();
        }
        self.send_member_event(room_id, user, user, content)?;
        Ok(room_id.to_owned())
    }

    /// Asks to join a room whose join rule allows knocking.
    pub fn knock(
        &self,
        room_id: &RoomId,
        user: &UserId,
        reason: Option<&str>,
    ) -> Result<(), RoomError> {
        if !self.rooms.exists(room_id)? {
            return Err(RoomError::UnknownRoom(room_id.to_owned()));
        }
        let content = self.member_content(user, "knock", reason)?;
        self.send_member_event(room_id, user, user, content)
    }

    /// Leaves a room, or rejects an invite, or withdraws a knock.
    pub fn leave(
        &self,
        room_id: &RoomId,
        user: &UserId,
        reason: Option<&str>,
    ) -> Result<(), RoomError> {
        let content = self.member_content(user, "leave", reason)?;
        self.send_member_event(room_id, user, user, content)
    }

    /// Sets another user's membership (kick = leave, ban, unban = leave).
    pub fn set_membership(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        target: &UserId,
        membership: MembershipState,
        reason: Option<&str>,
    ) -> Result<(), RoomError> {
        let content = self.member_content(target, membership.as_str(), reason)?;
        self.send_member_event(room_id, sender, target, content)
    }

    /// Leaves every room (joined, invited or knocked), for deactivation.
    pub fn leave_all_rooms(&self, user: &UserId) -> Result<(), RoomError> {
        for (room_id, entry) in self.rooms.rooms_of(user)? {
            if matches!(
                entry.membership,
                MembershipState::Join | MembershipState::Invite | MembershipState::Knock
            ) && let Err(e) = self.leave(&room_id, user, None)
            {
                tracing::warn!(%room_id, %user, error = %e, "could not leave room");
            }
        }
        Ok(())
    }

    /// Updates the profile and sends a new member event into every joined room.
    pub fn update_profile(
        &self,
        user: &UserId,
        displayname: Option<Option<String>>,
        avatar_url: Option<Option<String>>,
    ) -> Result<(), RoomError> {
        self.accounts.set_profile(user, displayname, avatar_url).map_err(|e| match e {
            super::accounts::AccountError::Storage(s) => RoomError::Storage(s),
            other => RoomError::BadRequest(other.to_string()),
        })?;
        for (room_id, entry) in self.rooms.rooms_of(user)? {
            if entry.membership != MembershipState::Join {
                continue;
            }
            let content = self.member_content(user, "join", None)?;
            if let Err(e) = self.send_member_event(&room_id, user, user, content) {
                tracing::warn!(%room_id, %user, error = %e, "could not update member event");
            }
        }
        Ok(())
    }
}
