//! Delegated administration of workspaces, the audit log and delegations.

use super::admin::{ceiling, delegations, scope};
use super::{Ctx, Unusable};
use crate::access::AccessClass;
use crate::action::{Action, WorkspaceRef};
use crate::decision::{Rule, Verdict, refuse, require};
use crate::facts::RoomFacts;
use crate::ids::{UnitId, UserId};
use crate::tier::Tier;

/// Dispatches the workspace, audit and delegation actions.
pub(super) fn check(action: &Action, ctx: &Ctx<'_>, room: Option<&RoomFacts>) -> Verdict {
    match action {
        // Approving lets an agent create a workspace, which only agents may do (W1): a
        // public-sector admin granting it would grant above their own tier.
        Action::ApproveWorkspace { unit } => {
            scope(ctx, unit)?;
            agent_admin(ctx, "approve workspaces")
        }
        Action::TransferWorkspace { workspace, to } => {
            scope(ctx, &workspace.unit)?;
            scope(ctx, to)
        }
        Action::CloseWorkspace { workspace, to } => close(ctx, workspace, *to, room),
        Action::LockWorkspace { workspace }
        | Action::ArchiveWorkspace { workspace }
        | Action::ExportMembers { workspace } => scope(ctx, &workspace.unit),
        // Recovering makes the admin a workspace admin, which P1 reserves to state agents.
        Action::RecoverWorkspace { workspace } => {
            scope(ctx, &workspace.unit)?;
            agent_admin(ctx, "recover a workspace (it makes you its admin)")
        }
        Action::ReadAuditLog { unit } => scope(ctx, unit),
        Action::AppointAdmin { user, unit } => appoint(ctx, user, unit),
        Action::RemoveAdmin { unit, .. } => sub_unit(ctx, unit),
        _ => refuse(Rule::A1, format!("`{}` is not an administrative action", action.name())),
    }
}

/// A2: actions that only a state agent's delegation covers.
fn agent_admin(ctx: &Ctx<'_>, what: &str) -> Verdict {
    require(ctx.tier == Tier::Agent, Rule::A2, || {
        format!("only state agents may {what}; your tier is `{}`", ctx.tier)
    })
}

/// P3 at the workspace level: a state agent whose delegation covers the workspace, to a class
/// on the scale that is not more open than the current one (when the caller says what it is).
fn close(
    ctx: &Ctx<'_>,
    workspace: &WorkspaceRef,
    to: AccessClass,
    room: Option<&RoomFacts>,
) -> Verdict {
    require(to != AccessClass::Direct, Rule::C1, || {
        "a workspace cannot become a direct conversation".to_owned()
    })?;
    require(ctx.tier == Tier::Agent, Rule::P3, || {
        "only a state agent with a delegation over the workspace, or a server admin, closes it"
            .to_owned()
    })?;
    scope(ctx, &workspace.unit)?;
    let current = room.map(RoomFacts::own_class);
    require(!current.is_some_and(|c| to.is_more_open_than(c)), Rule::P2, || {
        format!(
            "closing cannot make the workspace more open than `{}`",
            current.unwrap_or(AccessClass::Agents)
        )
    })
}

/// Delegations are handed down: an admin appoints admins of their units' sub-units only, never
/// a peer or a superior; the appointee must be an active local agent or public agent of the
/// admin's subtree and of a tier at most the admin's own, or the delegation would carry powers
/// the appointing admin does not have.
fn appoint(ctx: &Ctx<'_>, user: &UserId, unit: &UnitId) -> Verdict {
    sub_unit(ctx, unit)?;
    let record = ctx.dir.user(user).filter(|r| r.tier != Tier::Guest && ctx.dir.is_local(user));
    let Some(record) = record else {
        return refuse(
            Rule::A3,
            format!(
                "{user} cannot be an administrator: only local state and public-sector agents can"
            ),
        );
    };
    if let Some(problem) = Unusable::of(ctx.dir, user, ctx.now_ms) {
        return refuse(
            Rule::A3,
            format!("{}; an administrator needs a working account", problem.about(user)),
        );
    }
    require(ctx.dir.admin_covers(ctx.user, &record.unit), Rule::A1, || {
        format!(
            "{user} belongs to {}, outside the units you administer ({})",
            record.unit,
            delegations(ctx)
        )
    })?;
    ceiling(ctx, record.tier, "appoint an administrator of tier")
}

/// A1: `unit` lies strictly below one of the actor's delegated units.
fn sub_unit(ctx: &Ctx<'_>, unit: &UnitId) -> Verdict {
    scope(ctx, unit)?;
    require(ctx.dir.admin_covers_strictly(ctx.user, unit), Rule::A1, || {
        format!(
            "you appoint and remove administrators of sub-units of your units ({}) only",
            delegations(ctx)
        )
    })
}
