//! The policy bot's commands: `!relais ...` typed in an organisation unit's room runs the same
//! delegated-admin actions as the admin API, as the person who typed it (their delegation decides),
//! and the bot answers in the room with an `m.notice`. Delegated admins are invited to the rooms
//! of the units they administer.

use std::sync::{Arc, Weak};

use relais_appservice::records::names;
use relais_policy::{AccountStatus, Tier};
use ruma::{OwnedRoomId, OwnedUserId, UserId, events::TimelineEventType};
use serde_json::{Value, json};

use super::{PolicyError, admin::UserChange, invitations::NewInvitation};
use crate::service::{
    Services,
    rooms::{PduTemplate, Rooms, hook::EventHook, pdu::PduEvent},
};

/// What starts a command.
const PREFIX: &str = "!relais";

const HELP: &str = "Commands (your delegation decides what you may do):
!relais help
!relais whois @user:server
!relais invite <agent|public|guest> [uses] [unit] — a registration invitation token
!relais tier @user:server <agent|public|guest> [reason]
!relais lock @user:server [reason] / !relais unlock @user:server [reason]
!relais renew @user:server <days> [reason] — extend a guest's account
!relais admin add|remove @user:server [unit] [reason]
!relais audit [count] — the latest entries of this unit's audit log";

/// The hook that hands `!relais` messages in unit rooms to a task.
pub struct PolicyBot {
    services: Weak<Services>,
}

impl PolicyBot {
    /// The bot of `services`.
    pub fn new(services: &Arc<Services>) -> Self {
        Self { services: Arc::downgrade(services) }
    }
}

impl EventHook for PolicyBot {
    fn event_written(&self, _: &Rooms, pdu: &PduEvent) {
        // Every event written passes here: only the bot's state events and messages go on.
        let is_message = *pdu.kind() == TimelineEventType::RoomMessage;
        if pdu.state_key().is_none() && !is_message {
            return;
        }
        let Some(services) = self.services.upgrade() else { return };
        if let Some(key) = pdu.state_key() {
            services.follow_directory_event(pdu, key);
            return;
        }
        let Ok(content) = serde_json::from_str::<Value>(pdu.fields.content.get()) else { return };
        let Some(body) = content.get("body").and_then(Value::as_str) else { return };
        if !body.trim_start().starts_with(PREFIX)
            || pdu.sender().as_str() == services.policy.service.bot().as_str()
        {
            return;
        }
        let Some(unit) = services.unit_of_room(pdu.room_id()) else { return };
        // The hook runs with the room locked: the answer is written later, by a task.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (room, sender, text) =
            (pdu.room_id().to_owned(), pdu.sender().to_owned(), body.to_owned());
        runtime.spawn_blocking(move || {
            let answer = match services.run_command(&sender, &unit, &text) {
                Ok(answer) => answer,
                Err(e) => format!("Refused: {e}"),
            };
            if let Err(e) = services.bot_notice(&room, &answer) {
                tracing::warn!(error = %e, "the policy bot could not answer");
            }
        });
    }
}

impl Services {
    /// Applies a directory record the bot wrote in a unit room by any path (the admin API, or a
    /// standalone `relais-policy-service` writing through the client API): the index follows
    /// the rooms, whoever wrote them. Applying a record twice changes nothing.
    fn follow_directory_event(&self, pdu: &PduEvent, state_key: &str) {
        if pdu.sender().as_str() != self.policy.service.bot().as_str() {
            return;
        }
        let kind = pdu.kind().to_string();
        if ![names::MEMBER, names::DELEGATION, names::INVITATION].contains(&kind.as_str()) {
            return;
        }
        let Some(unit) = self.unit_of_room(pdu.room_id()) else { return };
        let Ok(content) = serde_json::from_str::<Value>(pdu.fields.content.get()) else { return };
        if let Err(error) =
            self.policy.service.apply_directory_event(&kind, state_key, content, Some(&unit))
        {
            tracing::warn!(event_id = %pdu.event_id(), %error, "directory record skipped");
        }
    }
}

fn user_arg(arg: Option<&str>) -> Result<OwnedUserId, PolicyError> {
    let arg = arg.ok_or_else(|| PolicyError::BadRequest("a user ID is missing".into()))?;
    OwnedUserId::try_from(arg)
        .map_err(|e| PolicyError::BadRequest(format!("{arg:?} is not a user ID: {e}")))
}

fn tier_arg(arg: Option<&str>) -> Result<Tier, PolicyError> {
    let arg = arg.ok_or_else(|| PolicyError::BadRequest("a tier is missing".into()))?;
    arg.parse().map_err(|_| {
        PolicyError::BadRequest(format!("{arg:?} is not a tier (agent, public, guest)"))
    })
}

fn rest(words: &[&str]) -> String {
    words.join(" ")
}

impl Services {
    /// Runs one command typed by `sender` in `unit`'s room; the answer to post.
    fn run_command(&self, sender: &UserId, unit: &str, text: &str) -> Result<String, PolicyError> {
        let words: Vec<&str> = text.split_whitespace().skip(1).collect();
        let (command, args) = words.split_first().map_or(("help", &[][..]), |(c, a)| (*c, a));
        match command {
            "help" => Ok(HELP.to_owned()),
            "whois" => {
                let user = user_arg(args.first().copied())?;
                let record = self.policy_record(&user).ok_or_else(|| {
                    PolicyError::NotFound(format!("{user} is not in the directory"))
                })?;
                let admin_of = self.policy.service.delegations_of(user.as_str());
                Ok(format!(
                    "{user}: {} in {}, {:?}{}{}{}",
                    record.tier,
                    record.unit,
                    record.status,
                    record.sponsor.map(|s| format!(", sponsored by {s}")).unwrap_or_default(),
                    record
                        .expires_at_ms
                        .map(|e| format!(", expires at {e} (ms)"))
                        .unwrap_or_default(),
                    if admin_of.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", administers {}",
                            admin_of.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", ")
                        )
                    },
                ))
            }
            "invite" => {
                let tier = tier_arg(args.first().copied())?;
                let uses = args.get(1).and_then(|u| u.parse().ok()).unwrap_or(1);
                let unit = args.get(2).map_or(unit, |u| *u).to_owned();
                let new = NewInvitation {
                    tier,
                    unit: Some(unit.clone()),
                    uses,
                    valid_days: 7,
                    guest_term_days: None,
                    reason: "issued with !relais invite".into(),
                    token: None,
                    expires_at_ms: None,
                };
                let (token, _, record) = self.policy_issue_invitation(sender, new)?;
                Ok(format!(
                    "Invitation for {uses} {tier} account(s) in {unit}, valid 7 days: {token}\nThe new user enters it as the registration token.",
                    tier = record.tier
                ))
            }
            "tier" => {
                let user = user_arg(args.first().copied())?;
                let tier = tier_arg(args.get(1).copied())?;
                let change = UserChange {
                    tier: Some(tier),
                    reason: rest(args.get(2..).unwrap_or_default()),
                    ..UserChange::default()
                };
                let record = self.policy_change_user(sender, &user, change)?;
                Ok(format!("{user} is now {}.", record.tier))
            }
            "lock" | "unlock" => {
                let user = user_arg(args.first().copied())?;
                let status =
                    if command == "lock" { AccountStatus::Locked } else { AccountStatus::Active };
                let change = UserChange {
                    status: Some(status),
                    reason: rest(args.get(1..).unwrap_or_default()),
                    ..UserChange::default()
                };
                self.policy_change_user(sender, &user, change)?;
                Ok(format!("{user} is {command}ed."))
            }
            "renew" => {
                let user = user_arg(args.first().copied())?;
                let days: u64 = args
                    .get(1)
                    .and_then(|d| d.parse().ok())
                    .ok_or_else(|| PolicyError::BadRequest("a number of days is missing".into()))?;
                let until = crate::service::ephemeral::now_ms() + days * 24 * 60 * 60 * 1000;
                let change = UserChange {
                    expires_at_ms: Some(until),
                    reason: rest(args.get(2..).unwrap_or_default()),
                    ..UserChange::default()
                };
                self.policy_change_user(sender, &user, change)?;
                Ok(format!("{user}'s account now ends in {days} days."))
            }
            "admin" => {
                let add = match args.first().copied() {
                    Some("add") => true,
                    Some("remove") => false,
                    _ => {
                        return Err(PolicyError::BadRequest(
                            "use `admin add` or `admin remove`".into(),
                        ));
                    }
                };
                let user = user_arg(args.get(1).copied())?;
                let target_unit = args.get(2).map_or(unit, |u| *u);
                let reason = rest(args.get(3..).unwrap_or_default());
                self.policy_delegate(sender, &user, target_unit, add, &reason)?;
                Ok(if add {
                    format!("{user} now administers {target_unit}.")
                } else {
                    format!("{user} no longer administers {target_unit}.")
                })
            }
            "audit" => {
                let count: usize = args.first().and_then(|n| n.parse().ok()).unwrap_or(10);
                let rows = self.policy_audit_log(sender, unit)?;
                let lines: Vec<String> = rows
                    .iter()
                    .rev()
                    .take(count)
                    .rev()
                    .map(|r| {
                        format!(
                            "{} {} by {} ({}) on {}{}",
                            r.ts,
                            r.entry.action,
                            r.entry.actor,
                            r.entry.authority,
                            r.entry.target,
                            if r.entry.reason.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", r.entry.reason)
                            }
                        )
                    })
                    .collect();
                Ok(if lines.is_empty() {
                    "The audit log is empty.".into()
                } else {
                    lines.join("\n")
                })
            }
            other => Err(PolicyError::BadRequest(format!(
                "unknown command {other:?}; try `!relais help`"
            ))),
        }
    }

    /// Posts a notice as the policy bot.
    pub(super) fn bot_notice(&self, room: &OwnedRoomId, text: &str) -> Result<(), PolicyError> {
        let bot = self.policy_bot()?;
        self.rooms.append(
            room,
            &bot,
            PduTemplate::message(
                TimelineEventType::RoomMessage,
                json!({ "msgtype": "m.notice", "body": text }),
            ),
            None,
        )?;
        Ok(())
    }

    /// Invites a new delegated admin to the room of the unit they administer, so they can use the
    /// bot there and read the unit's audit trail.
    pub(super) fn invite_to_unit_room(&self, user: &UserId, unit: &str) -> Result<(), PolicyError> {
        let Some(room) = self.policy.unit_room(unit) else { return Ok(()) };
        if self.rooms.membership(&room, user)?.is_some_and(|m| {
            matches!(
                m.membership,
                ruma::events::room::member::MembershipState::Join
                    | ruma::events::room::member::MembershipState::Invite
            )
        }) {
            return Ok(());
        }
        let bot = self.policy_bot()?;
        self.set_membership(
            &room,
            &bot,
            user,
            ruma::events::room::member::MembershipState::Invite,
            Some("delegated admin of this unit"),
        )?;
        Ok(())
    }
}
