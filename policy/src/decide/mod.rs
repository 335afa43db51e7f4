//! `decide`: the decision table and the delegated-administration rules as one pure function.
//!
//! Each submodule holds the rows of one part of the table; this module resolves who is acting
//! and dispatches.

mod account;
mod admin;
mod create;
mod listing;
mod membership;
mod power;
mod workspace_admin;

pub use account::{RegistrationGrant, registration_grant, registration_refusal};
pub use power::max_power_level;

use crate::action::Action;
use crate::decision::{Decision, Refusal, Rule, Verdict};
use crate::directory::{AccountStatus, Directory, UserRecord};
use crate::facts::{Actor, RoomFacts};
use crate::ids::{UnitId, UserId};
use crate::tier::Tier;
use crate::time::format_utc;

/// Decides whether `actor` may perform `action`.
///
/// `room` describes the room the action concerns (join, invite, knock, power levels, class
/// change, publication, one room-directory entry); actions that need it are refused without it.
/// `now_ms` is the current time in milliseconds since the epoch.
///
/// Server admins and the policy bot pass every check. Everyone else must first have a usable
/// account (rule R2), except to register (R1).
pub fn decide(
    action: &Action,
    actor: &Actor,
    room: Option<&RoomFacts>,
    directory: &Directory,
    now_ms: u64,
) -> Decision {
    let ctx = Ctx::new(&actor.user_id, directory, now_ms);
    if ctx.is_trusted() {
        return Decision::Allow;
    }
    Decision::from(check(action, &ctx, room))
}

fn check(action: &Action, ctx: &Ctx<'_>, room: Option<&RoomFacts>) -> Verdict {
    if let Action::Register { email, invitation } = action {
        return account::register(ctx, email.as_deref(), invitation.as_ref());
    }
    account::usable(ctx)?;
    match action {
        Action::Register { .. } | Action::Login => Ok(()),
        Action::CreateWorkspace { unit, class, approved_by } => {
            create::workspace(ctx, unit, *class, approved_by.as_ref())
        }
        Action::CreateRoom { class, parent_workspace } => {
            create::room(ctx, *class, parent_workspace.as_ref())
        }
        Action::CreateDirect { with, shares_room } => create::direct(ctx, with, *shares_room),
        Action::Join { .. } => membership::join(ctx, need_room(room, Rule::M1)?),
        Action::Invite { target, .. } => {
            membership::invite(ctx, target, need_room(room, Rule::M2)?)
        }
        Action::Knock { .. } => membership::knock(ctx, need_room(room, Rule::M1)?),
        Action::SetPowerLevel { target, level, .. } => {
            power::set_level(ctx, target, *level, need_room(room, Rule::P1)?)
        }
        Action::ChangeAccessClass { from, to, .. } => {
            power::change_class(ctx, *from, *to, need_room(room, Rule::C1)?)
        }
        Action::PublishInDirectory { .. } => listing::publish(ctx, need_room(room, Rule::D1)?),
        Action::SeeRoomDirectory => listing::see_rooms(ctx, room),
        Action::SearchUserDirectory { target, shares_room } => {
            listing::search_users(ctx, target, *shares_room)
        }
        // Listed one by one so that a new action is a compile error here, not a silent refusal.
        Action::IssueInvitation { .. }
        | Action::SetTier { .. }
        | Action::Lock { .. }
        | Action::Unlock { .. }
        | Action::Deactivate { .. }
        | Action::RenewGuest { .. }
        | Action::EndGuest { .. }
        | Action::ApproveWorkspace { .. }
        | Action::TransferWorkspace { .. }
        | Action::CloseWorkspace { .. }
        | Action::LockWorkspace { .. }
        | Action::ArchiveWorkspace { .. }
        | Action::RecoverWorkspace { .. }
        | Action::ExportMembers { .. }
        | Action::ReadAuditLog { .. }
        | Action::AppointAdmin { .. }
        | Action::RemoveAdmin { .. } => admin::check(action, ctx, room),
    }
}

/// The room facts, or a fail-closed refusal when the homeserver did not send them.
fn need_room(room: Option<&RoomFacts>, rule: Rule) -> Result<&RoomFacts, Refusal> {
    room.ok_or_else(|| Refusal {
        rule,
        reason: "the server did not describe the room, so the policy refuses by default; \
                 this is a server bug, please report it"
            .to_owned(),
    })
}

/// Who is acting, resolved once against the directory.
pub(crate) struct Ctx<'a> {
    pub(crate) dir: &'a Directory,
    pub(crate) now_ms: u64,
    pub(crate) user: &'a UserId,
    pub(crate) tier: Tier,
    pub(crate) record: Option<&'a UserRecord>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(user: &'a UserId, dir: &'a Directory, now_ms: u64) -> Ctx<'a> {
        Ctx { dir, now_ms, user, tier: dir.tier_of(user), record: dir.user(user) }
    }

    /// Server admins and the policy bot.
    pub(crate) fn is_trusted(&self) -> bool {
        self.dir.is_server_admin(self.user) || self.dir.is_policy_bot(self.user)
    }

    /// The actor's unit, for local and replicated users.
    pub(crate) fn unit(&self) -> Option<&'a UnitId> {
        self.record.map(|r| &r.unit)
    }
}

/// Why an account cannot be used right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// A local user the directory does not know: no tier, unit, sponsor or expiry.
    NotInDirectory,
    Locked,
    Deactivated,
    Expired(u64),
    /// A guest record without an expiry or a sponsor: every guest has both, so the record is
    /// incomplete and we treat it as expired rather than as eternal.
    IncompleteGuest,
}

impl Unusable {
    /// The account state of `user` at `now_ms`; `None` if usable. Remote users without a
    /// replicated record are governed by their own server, so they are usable here.
    pub(crate) fn of(dir: &Directory, user: &UserId, now_ms: u64) -> Option<Unusable> {
        if dir.is_policy_bot(user) || dir.is_server_admin(user) {
            return None;
        }
        let Some(record) = dir.user(user) else {
            return dir.is_local(user).then_some(Unusable::NotInDirectory);
        };
        match record.status {
            AccountStatus::Locked => return Some(Unusable::Locked),
            AccountStatus::Deactivated => return Some(Unusable::Deactivated),
            AccountStatus::Active => {}
        }
        if record.tier == Tier::Guest
            && (record.expires_at_ms.is_none() || record.sponsor.is_none())
        {
            return Some(Unusable::IncompleteGuest);
        }
        match record.expires_at_ms {
            Some(at) if at <= now_ms => Some(Unusable::Expired(at)),
            _ => None,
        }
    }

    /// How to tell the account's owner, with what they can do.
    pub(crate) fn to_owner(&self, sponsor: Option<&UserId>) -> String {
        let renewer = match sponsor {
            Some(s) => format!("your sponsor {s} or an administrator of your organisation"),
            None => "an administrator of your organisation".to_owned(),
        };
        match self {
            Unusable::NotInDirectory => {
                "your account is not in the organisation directory; ask an administrator to add it"
                    .to_owned()
            }
            Unusable::Locked => {
                "your account is locked; ask an administrator of your organisation to unlock it"
                    .to_owned()
            }
            Unusable::Deactivated => "your account has been deactivated".to_owned(),
            Unusable::Expired(at) => {
                format!("your account expired on {}; ask {renewer} to renew it", format_utc(*at))
            }
            Unusable::IncompleteGuest => format!(
                "your guest account has no sponsor or expiry on record; ask {renewer} to renew it"
            ),
        }
    }

    /// How to describe someone else's account.
    pub(crate) fn about(&self, user: &UserId) -> String {
        match self {
            Unusable::NotInDirectory => format!("{user} is not in the organisation directory"),
            Unusable::Locked => format!("{user}'s account is locked"),
            Unusable::Deactivated => format!("{user}'s account is deactivated"),
            Unusable::Expired(_) | Unusable::IncompleteGuest => {
                format!("{user}'s guest account has expired")
            }
        }
    }
}

/// Refuses by `rule` if `user`'s account is unusable, describing it from the outside.
pub(crate) fn other_usable(ctx: &Ctx<'_>, user: &UserId, rule: Rule) -> Verdict {
    match Unusable::of(ctx.dir, user, ctx.now_ms) {
        None => Ok(()),
        Some(problem) => crate::decision::refuse(rule, problem.about(user)),
    }
}
