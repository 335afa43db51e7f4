//! P1 (highest power level), P2 (open a room), P3 (close a room), and C1 for class changes.

use super::Ctx;
use super::admin::scope;
use crate::access::AccessClass;
use crate::decision::{Rule, Verdict, refuse, require};
use crate::facts::{MODERATOR_POWER, RoomFacts};
use crate::ids::UserId;
use crate::tier::Tier;

/// P1: the highest power level a user of `tier` may hold in any room: unbounded for agents,
/// moderator (50) for public agents, so never a workspace admin, and 0 for guests.
///
/// The homeserver also applies it when it builds a room's initial power levels: a guest who
/// starts a direct conversation must not become its admin (in room version 12, make the policy
/// bot the creator and give the guest 0).
pub fn max_power_level(tier: Tier) -> i64 {
    match tier {
        Tier::Agent => i64::MAX,
        Tier::Public => MODERATOR_POWER,
        Tier::Guest => 0,
    }
}

/// P1: `target` may not get more than their tier allows.
pub(super) fn set_level(ctx: &Ctx<'_>, target: &UserId, level: i64, room: &RoomFacts) -> Verdict {
    let tier = ctx.dir.tier_of(target);
    let max = max_power_level(tier);
    let place = if room.is_workspace { "in a workspace, " } else { "" };
    require(level <= max, Rule::P1, || {
        format!(
            "{place}{target} is of tier `{tier}` and may hold at most power level {max}, not {level}"
        )
    })
}

/// P2/P3/C1: a class change. Opening is for agents who are room admins; closing is for a state
/// agent whose delegation covers the room's unit; a direct conversation's class never changes;
/// a workspace's child never opens beyond the workspace.
pub(super) fn change_class(
    ctx: &Ctx<'_>,
    from: AccessClass,
    to: AccessClass,
    room: &RoomFacts,
) -> Verdict {
    let current = room.own_class();
    require(from == current, Rule::C1, || {
        format!("the room's class is `{current}`, not `{from}`; reload and try again")
    })?;
    if from == to {
        return Ok(());
    }
    if from == AccessClass::Direct || to == AccessClass::Direct || room.is_direct_conversation() {
        return refuse(
            Rule::C1,
            "a direct conversation's class is set when it is created and never changes",
        );
    }
    if to.is_more_open_than(from) { open(ctx, to, room) } else { close(ctx, room) }
}

/// P2: state agents who are room admins open a room, never beyond its workspace (C1).
fn open(ctx: &Ctx<'_>, to: AccessClass, room: &RoomFacts) -> Verdict {
    require(ctx.tier == Tier::Agent && room.actor_is_room_admin(), Rule::P2, || {
        "only state agents who are admins of the room can open it".to_owned()
    })?;
    if let Some(ws) = &room.workspace {
        let ceiling = ws.effective_class();
        require(!to.is_more_open_than(ceiling), Rule::C1, || {
            format!(
                "a room cannot be more open than its workspace (`{ceiling}`); open the workspace first"
            )
        })?;
    }
    Ok(())
}

/// P3: only a state agent whose delegation covers the workspace (or, outside workspaces, the
/// room's unit) closes a room. Members whose tier no longer fits (`!class.admits(tier)`) are
/// then removed by the homeserver, with this rule as the reason.
fn close(ctx: &Ctx<'_>, room: &RoomFacts) -> Verdict {
    require(ctx.tier == Tier::Agent, Rule::P3, || {
        "closing a room is for a state agent with a delegation over its workspace, or a server admin".to_owned()
    })?;
    let Some(unit) = room.administering_unit() else {
        return refuse(
            Rule::P3,
            "this room belongs to no organisation unit, so only a server admin can close it",
        );
    };
    scope(ctx, unit).map_err(|refusal| crate::decision::refusal(Rule::P3, refusal.reason))
}
