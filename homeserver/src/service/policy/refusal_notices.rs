//! Refused invitations explained in the notices room. Some clients replace the error text of a
//! refused invite with their own sentence (Element Web says "You do not have permission to invite
//! people to this room"), so the policy's reason (the rule, and what the inviter can do) would
//! never reach the person. The policy bot therefore also posts it to the inviter's "Relais
//! notices" room, the one guest reminders use.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::Value;

use crate::service::{Services, policy_check::PolicyRefusal};

/// The same refusal is explained once in this window, however often the inviter retries.
const REPEAT_AFTER: Duration = Duration::from_secs(60);

/// The refusals explained recently, to post each once per [`REPEAT_AFTER`].
#[derive(Default)]
pub struct RecentRefusals(parking_lot::Mutex<Vec<(OwnedUserId, String, Instant)>>);

impl RecentRefusals {
    /// Whether `text` to `user` is new in the window; records it if so.
    fn first_time(&self, user: &UserId, text: &str) -> bool {
        let mut recent = self.0.lock();
        recent.retain(|(_, _, at)| at.elapsed() < REPEAT_AFTER);
        if recent.iter().any(|(u, t, _)| u == user && t == text) {
            return false;
        }
        recent.push((user.to_owned(), text.to_owned(), Instant::now()));
        true
    }
}

impl Services {
    /// Asks `user_may_invite`; when the policy refuses, the reason also goes to the inviter as a
    /// notice from the policy bot (posted in the background: the refusal is answered at once).
    pub async fn policy_may_invite(
        self: &Arc<Self>,
        inviter: &UserId,
        invitee: &UserId,
        room: &RoomId,
    ) -> Result<(), PolicyRefusal> {
        let result = self.policy_checks.user_may_invite(inviter, invitee, room).await;
        if let Err(PolicyRefusal::Refused { message, fields, .. }) = &result
            && self.policy.enabled()
            && fields.contains_key("fr.relais.rule")
            && inviter.server_name() == self.config.server_name
        {
            let services = self.clone();
            let (inviter, invitee, room) =
                (inviter.to_owned(), invitee.to_owned(), room.to_owned());
            let message = message.clone();
            tokio::task::spawn_blocking(move || {
                services.explain_invite_refusal(&inviter, &invitee, &room, &message);
            });
        }
        result
    }

    fn explain_invite_refusal(
        &self,
        inviter: &UserId,
        invitee: &UserId,
        room: &OwnedRoomId,
        message: &str,
    ) {
        let name = self
            .state_content(room, "m.room.name", "")
            .ok()
            .flatten()
            .and_then(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
            .filter(|n| !n.is_empty())
            .map_or_else(|| room.to_string(), |n| format!("\"{n}\""));
        let text = format!("Your invitation of {invitee} to {name} was refused. {message}");
        if !self.policy.recent_refusals.first_time(inviter, &text) {
            return;
        }
        if let Err(error) = self.send_notice(inviter, &text) {
            tracing::warn!(%inviter, %error, "the refusal could not be explained in a notice");
        }
    }
}
