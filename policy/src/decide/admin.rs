//! Delegated administration of accounts and invitations, and the scope checks every
//! administrative action shares: within the admin's subtree (A1), never above their tier (A2).

use super::{Ctx, workspace_admin};
use crate::action::Action;
use crate::decision::{Refusal, Rule, Verdict, refusal, refuse, require};
use crate::directory::{AccountStatus, UserRecord};
use crate::facts::RoomFacts;
use crate::ids::{UnitId, UserId};
use crate::tier::Tier;

/// Dispatches the administrative actions.
pub(super) fn check(action: &Action, ctx: &Ctx<'_>, room: Option<&RoomFacts>) -> Verdict {
    match action {
        Action::IssueInvitation { tier, unit } => may_issue_invitation(ctx, *tier, unit),
        Action::SetTier { target, tier } => {
            on_user(ctx, target)?;
            ceiling(ctx, *tier, "grant tier")
        }
        Action::Lock { target } => on_user(ctx, target).map(drop),
        Action::Unlock { target } | Action::Deactivate { target } => {
            not_deactivated(on_user(ctx, target)?, target)
        }
        Action::RenewGuest { target, until_ms } => renew_guest(ctx, target, *until_ms),
        Action::EndGuest { target } => sponsor_or_admin(ctx, target).map(drop),
        _ => workspace_admin::check(action, ctx, room),
    }
}

/// A1: the actor holds a delegation whose subtree contains `unit`.
pub(super) fn scope(ctx: &Ctx<'_>, unit: &UnitId) -> Verdict {
    if !ctx.dir.is_delegated_admin(ctx.user) {
        return refuse(
            Rule::A1,
            "you are not a delegated administrator; ask an administrator of your organisation",
        );
    }
    require(ctx.dir.admin_covers(ctx.user, unit), Rule::A1, || {
        format!(
            "{unit} is outside the units you administer ({}); ask an administrator above it",
            delegations(ctx)
        )
    })
}

/// A2: `tier` is at most the actor's own.
pub(super) fn ceiling(ctx: &Ctx<'_>, tier: Tier, what: &str) -> Verdict {
    require(tier <= ctx.tier, Rule::A2, || {
        format!("you cannot {what} `{tier}`, which is above your own tier `{}`", ctx.tier)
    })
}

/// The actor's delegated units, for messages.
pub(super) fn delegations(ctx: &Ctx<'_>) -> String {
    ctx.dir.admin_units(ctx.user).map(UnitId::as_str).collect::<Vec<_>>().join(", ")
}

/// Issuing a registration invitation: a guest invitation comes from an agent, who becomes the
/// sponsor (M3); otherwise the unit must be in scope and the tier at most the issuer's own.
///
/// An agent may invite guests into their own unit without a delegation, as the table's M3 row
/// lets any agent sponsor a guest. A public-sector admin cannot issue guest invitations: a
/// guest's sponsor is always a state agent.
pub(super) fn may_issue_invitation(ctx: &Ctx<'_>, tier: Tier, unit: &UnitId) -> Verdict {
    if tier == Tier::Guest {
        require(ctx.tier == Tier::Agent, Rule::M3, || {
            "only state agents invite guests, because they become the guest's sponsor".to_owned()
        })?;
        if ctx.unit() == Some(unit) && ctx.dir.is_local(ctx.user) {
            return Ok(());
        }
    }
    scope(ctx, unit)?;
    ceiling(ctx, tier, "issue an invitation for tier")
}

/// A1/A2 for an action on an account: a local user of the actor's subtree, of a tier at most
/// the actor's, who administers nothing outside the actor's scope.
pub(super) fn on_user<'a>(ctx: &Ctx<'a>, target: &UserId) -> Result<&'a UserRecord, Refusal> {
    let Some(record) = ctx.dir.user(target).filter(|_| ctx.dir.is_local(target)) else {
        return Err(refusal(
            Rule::A1,
            format!("{target} is not an account of this server's directory"),
        ));
    };
    scope(ctx, &record.unit)?;
    ceiling(ctx, record.tier, "administer an account of tier")?;
    // An admin lower in the tree must not lock or demote someone who administers units above
    // or beside them: that would be acting on the wider organisation through one of its members.
    if let Some(outside) = ctx.dir.admin_units(target).find(|u| !ctx.dir.admin_covers(ctx.user, u))
    {
        return Err(refusal(
            Rule::A1,
            format!(
                "{target} administers {outside}, which is outside your scope; ask an administrator above it"
            ),
        ));
    }
    Ok(record)
}

/// Deactivation is final: a deactivated account is neither unlocked nor deactivated again.
fn not_deactivated(record: &UserRecord, target: &UserId) -> Verdict {
    require(record.status != AccountStatus::Deactivated, Rule::R2, || {
        format!("{target}'s account is deactivated for good; create a new account instead")
    })
}

/// R2: a guest is renewed by their sponsor or an admin, never into the past nor beyond the
/// longest guest term, so that a renewal is always a decision with an end.
fn renew_guest(ctx: &Ctx<'_>, target: &UserId, until_ms: u64) -> Verdict {
    let record = sponsor_or_admin(ctx, target)?;
    not_deactivated(record, target)?;
    let max = ctx.now_ms.saturating_add(ctx.dir.guest_max_term_ms());
    require(until_ms > ctx.now_ms && until_ms <= max, Rule::R2, || {
        format!(
            "a guest account is renewed until a date between now and {} days from now",
            ctx.dir.guest_max_term_ms() / 86_400_000
        )
    })
}

/// The guest's sponsor (still an agent), or an admin in scope.
fn sponsor_or_admin<'a>(ctx: &Ctx<'a>, target: &UserId) -> Result<&'a UserRecord, Refusal> {
    let record = ctx.dir.user(target).filter(|r| r.tier == Tier::Guest && ctx.dir.is_local(target));
    let Some(record) = record else {
        return Err(refusal(Rule::R2, format!("{target} is not a guest of this server")));
    };
    if record.sponsor.as_ref() == Some(ctx.user) && ctx.tier == Tier::Agent {
        return Ok(record);
    }
    on_user(ctx, target)
}
