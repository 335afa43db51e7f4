//! W1 (create a workspace), W2 (create a room), W3 (create a direct conversation).

use super::{Ctx, Unusable, other_usable};
use crate::access::AccessClass;
use crate::decision::{Rule, Verdict, refuse, require};
use crate::facts::{MODERATOR_POWER, WorkspaceFacts, WorkspaceStatus};
use crate::ids::{UnitId, UserId};
use crate::tier::Tier;

/// W1: state agents create workspaces in their own unit or a unit they administer, with an
/// admin's approval where the unit (or an ancestor) requires it.
pub(super) fn workspace(
    ctx: &Ctx<'_>,
    unit: &UnitId,
    class: Option<AccessClass>,
    approved_by: Option<&UserId>,
) -> Verdict {
    require(ctx.tier == Tier::Agent, Rule::W1, || {
        "only state agents create workspaces; ask a state agent of your organisation to create it and make you a moderator"
            .to_owned()
    })?;
    require(ctx.dir.units().contains(unit), Rule::W1, || {
        format!("there is no organisation unit `{unit}`")
    })?;
    let own_unit = ctx.unit() == Some(unit) && ctx.dir.is_local(ctx.user);
    let admin = ctx.dir.admin_covers(ctx.user, unit);
    require(own_unit || admin, Rule::A1, || {
        format!(
            "you create workspaces in your own unit or in units you administer, not in `{unit}`"
        )
    })?;
    require(class != Some(AccessClass::Direct), Rule::C1, || {
        "a workspace cannot be a direct conversation".to_owned()
    })?;
    if admin || !ctx.dir.units().requires_workspace_approval(unit) {
        return Ok(());
    }
    require(approved_by.is_some_and(|a| is_valid_approver(ctx, a, unit)), Rule::W1, || {
        format!(
            "your organisation requires an administrator's approval for new workspaces; ask an administrator of `{unit}`"
        )
    })
}

/// An approval counts if its author could approve now (an active state agent whose delegation
/// covers the unit, or a server admin): a stale approval from a removed admin does not.
fn is_valid_approver(ctx: &Ctx<'_>, approver: &UserId, unit: &UnitId) -> bool {
    let dir = ctx.dir;
    dir.is_server_admin(approver)
        || dir.is_policy_bot(approver)
        || (dir.tier_of(approver) == Tier::Agent
            && dir.admin_covers(approver, unit)
            && Unusable::of(dir, approver, ctx.now_ms).is_none())
}

/// W2: agents create rooms of any class; public agents `public` or `open` rooms, and inside a
/// workspace only where they are moderators; guests none. A room is never more open than its
/// workspace (C1), and no room is created in a locked or archived workspace, which is read-only.
pub(super) fn room(
    ctx: &Ctx<'_>,
    class: Option<AccessClass>,
    parent: Option<&WorkspaceFacts>,
) -> Verdict {
    let Some(default) = AccessClass::default_for_creator(ctx.tier) else {
        return refuse(
            Rule::W2,
            "guests cannot create rooms, only direct conversations with people they share a room with",
        );
    };
    let class = class.unwrap_or(default);
    require(class != AccessClass::Direct, Rule::W2, || {
        "start a direct conversation instead of a room of class `direct`".to_owned()
    })?;
    require(ctx.tier == Tier::Agent || class != AccessClass::Agents, Rule::W2, || {
        "public-sector agents create rooms of class `public` or `open`; rooms for state agents only are created by state agents"
            .to_owned()
    })?;
    match parent {
        Some(ws) => in_workspace(ctx, class, ws),
        None => Ok(()),
    }
}

fn in_workspace(ctx: &Ctx<'_>, class: AccessClass, ws: &WorkspaceFacts) -> Verdict {
    require(ws.status == WorkspaceStatus::Active, Rule::W2, || {
        "this workspace is locked or archived and takes no new rooms; ask its unit's administrator"
            .to_owned()
    })?;
    let ws_class = ws.effective_class();
    require(ws_class.admits(ctx.tier), Rule::W2, || {
        format!("this workspace is open to `{ws_class}` members only")
    })?;
    require(ctx.tier == Tier::Agent || ws.actor_power >= MODERATOR_POWER, Rule::W2, || {
        "public-sector agents create rooms only in workspaces where they are moderators; ask a workspace admin".to_owned()
    })?;
    require(!class.is_more_open_than(ws_class), Rule::C1, || {
        format!(
            "a room cannot be more open than its workspace (`{ws_class}`); choose `{ws_class}` or a more restrictive class"
        )
    })
}

/// W3: agents and public agents start a direct conversation with anyone visible to them (listed
/// in the user directory, or sharing a room); guests only with people they share a room with.
/// Nobody starts one with an account that cannot be used.
pub(super) fn direct(ctx: &Ctx<'_>, with: &UserId, shares_room: bool) -> Verdict {
    other_usable(ctx, with, Rule::W3)?;
    if ctx.tier == Tier::Guest {
        return require(shares_room, Rule::W3, || {
            format!(
                "guests start direct conversations only with people they already share a room with, and {with} is not one"
            )
        });
    }
    let hidden = ctx.dir.user(with).is_some_and(|r| r.hidden);
    require(shares_room || !hidden, Rule::W3, || {
        format!(
            "{with} is not listed in the user directory; ask someone who shares a room with them to introduce you"
        )
    })
}
