//! Reminders before a guest account ends: the guest and their sponsor each get a notice from the
//! policy bot, once per expiry date, in a "Relais notices" room the bot keeps with each of them.
//! Renewing the account (a new expiry) arms a new reminder.
//!
//! The bot's bookkeeping (each user's notice room, the expiry last reminded) is its own account
//! data, `fr.relais.notices:<user ID>`, so it survives restarts without a table of its own.

use std::{sync::Arc, time::Duration};

use relais_appservice::records::names;
use relais_policy::{AccessClass, AccountStatus, Tier};
use ruma::{
    OwnedRoomId, OwnedUserId, UserId,
    api::client::room::{Visibility, create_room},
};
use serde_json::{Value, json};

use super::PolicyError;
use crate::service::{Services, ephemeral::now_ms};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// A reminder sent as a notice, to be sent by e-mail too.
pub struct Reminder {
    /// Its recipient.
    pub to: OwnedUserId,
    /// Its text.
    pub text: String,
}

impl Services {
    /// Starts the task that sends reminders every `policy.reminder_interval_secs`.
    pub fn start_policy_reminders(self: &Arc<Self>) {
        if !self.policy.enabled() {
            return;
        }
        let services = Arc::downgrade(self);
        let every = Duration::from_secs(self.config.policy.reminder_interval_secs.max(1));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            loop {
                interval.tick().await;
                let Some(services) = services.upgrade() else { return };
                let s = services.clone();
                let sent =
                    tokio::task::spawn_blocking(move || s.send_due_reminders(now_ms())).await;
                match sent {
                    Ok(Ok(emails)) if emails.is_empty() => {}
                    Ok(Ok(emails)) => {
                        tracing::info!(reminders = emails.len(), "guest expiry reminders sent");
                        services.email_reminders(emails).await;
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "guest expiry reminders failed"),
                    Err(e) => tracing::warn!(error = %e, "guest expiry reminder task failed"),
                }
            }
        });
    }

    /// Also sends each reminder by e-mail to the addresses of its recipient, if this server
    /// sends e-mail: a guest who seldom opens their Matrix app still learns their account ends.
    async fn email_reminders(&self, reminders: Vec<Reminder>) {
        for reminder in reminders {
            let addresses = self.threepids.of_user(&reminder.to).unwrap_or_default();
            for address in addresses {
                let subject = "Your guest account ends soon";
                let body = format!("{}\n\n({})\n", reminder.text, self.config.server_name);
                if let Err(error) = self.threepids.send_email(&address.address, subject, body).await
                {
                    tracing::warn!(user = %reminder.to, %error, "reminder e-mail not sent");
                }
            }
        }
    }

    /// Reminds every active guest whose account ends within `policy.guest_reminder_days` and who
    /// was not yet reminded of this expiry, and their sponsor, by a notice. Returns the reminders
    /// sent, for the e-mails.
    pub fn send_due_reminders(&self, now: u64) -> Result<Vec<Reminder>, PolicyError> {
        let window = self.config.policy.guest_reminder_days.saturating_mul(DAY_MS);
        let directory = self.policy.service.directory();
        let due: Vec<(OwnedUserId, u64, Option<String>)> = directory
            .parts()
            .users
            .iter()
            .filter(|(_, r)| r.tier == Tier::Guest && r.status == AccountStatus::Active)
            .filter_map(|(user, r)| {
                let expires = r.expires_at_ms?;
                let user = OwnedUserId::try_from(user.as_str()).ok()?;
                (expires > now && expires - now <= window && self.is_local_user(&user))
                    .then(|| (user, expires, r.sponsor.as_ref().map(|s| s.as_str().to_owned())))
            })
            .collect();
        let mut sent = Vec::new();
        for (guest, expires, sponsor) in due {
            let mut record = self.notice_record(&guest)?;
            if record.get("reminded_for").and_then(Value::as_u64) == Some(expires) {
                continue;
            }
            let days = (expires - now).div_ceil(DAY_MS);
            let text = format!(
                "Your guest account ends in {days} day(s). Ask your sponsor{} to renew it if you \
                 still need it.",
                sponsor.as_deref().map(|s| format!(" ({s})")).unwrap_or_default()
            );
            self.send_notice(&guest, &text)?;
            sent.push(Reminder { to: guest.clone(), text });
            if let Some(sponsor) = sponsor.and_then(|s| OwnedUserId::try_from(s).ok()) {
                let text = format!(
                    "The guest account of {guest}, whom you sponsor, ends in {days} day(s). \
                     Renew it with `!relais renew {guest} <days>` in your unit's room or the \
                     admin API, or let it end."
                );
                self.send_notice(&sponsor, &text)?;
                sent.push(Reminder { to: sponsor, text });
            }
            record = self.notice_record(&guest)?;
            record["reminded_for"] = expires.into();
            self.set_notice_record(&guest, record)?;
        }
        Ok(sent)
    }

    fn is_local_user(&self, user: &UserId) -> bool {
        user.server_name() == self.config.server_name
    }

    fn notice_kind(user: &UserId) -> String {
        format!("fr.relais.notices:{user}")
    }

    fn notice_record(&self, user: &UserId) -> Result<Value, PolicyError> {
        let bot = self.policy_bot()?;
        Ok(self
            .account_data
            .get(&bot, None, &Self::notice_kind(user))?
            .unwrap_or_else(|| json!({})))
    }

    fn set_notice_record(&self, user: &UserId, record: Value) -> Result<(), PolicyError> {
        let bot = self.policy_bot()?;
        self.account_data.set(&bot, None, &Self::notice_kind(user), record)?;
        Ok(())
    }

    /// Posts a notice to `user` in their notices room, created (and the user invited) the first
    /// time.
    pub(super) fn send_notice(&self, user: &UserId, text: &str) -> Result<(), PolicyError> {
        let mut record = self.notice_record(user)?;
        let room = match record
            .get("room_id")
            .and_then(Value::as_str)
            .and_then(|r| OwnedRoomId::try_from(r).ok())
            .filter(|r| self.rooms.exists(r).unwrap_or(false))
        {
            Some(room) => room,
            None => {
                let room = self.create_notice_room(user)?;
                record["room_id"] = room.as_str().into();
                self.set_notice_record(user, record)?;
                room
            }
        };
        self.bot_notice(&room, text)
    }

    fn create_notice_room(&self, user: &UserId) -> Result<OwnedRoomId, PolicyError> {
        let bot = self.policy_bot()?;
        let mut request = create_room::v3::Request::new();
        request.name = Some("Relais notices".to_owned());
        request.topic =
            Some("Notices about your account from the Relais policy service".to_owned());
        request.visibility = Visibility::Private;
        request.preset = Some(create_room::v3::RoomPreset::PrivateChat);
        request.invite = vec![user.to_owned()];
        request.is_direct = true;
        // A direct conversation, whatever the user's tier: a guest must be able to join it.
        let access = json!({
            "type": names::ACCESS,
            "state_key": "",
            "content": AccessClass::Direct.to_event_content(),
        });
        self.bot_create_room(&bot, request, &access)
    }
}
