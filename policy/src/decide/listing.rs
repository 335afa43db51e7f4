//! D1 (publish in the room directory), D2 (see it), D3 (search the user directory).

use super::Ctx;
use crate::access::AccessClass;
use crate::decision::{Rule, Verdict, refuse, require};
use crate::directory::AccountStatus;
use crate::facts::RoomFacts;
use crate::ids::UserId;
use crate::tier::Tier;

/// Whether a room may appear in the room directory at all (D1): `agents` and `public` rooms
/// only, never a direct conversation.
fn publishable(room: &RoomFacts) -> bool {
    !room.is_direct_conversation()
        && matches!(room.effective_class(), AccessClass::Agents | AccessClass::Public)
}

/// D1: agents and public agents publish `agents` and `public` rooms; guests publish nothing.
pub(super) fn publish(ctx: &Ctx<'_>, room: &RoomFacts) -> Verdict {
    if ctx.tier == Tier::Guest {
        return refuse(Rule::D1, "guests cannot publish rooms in the directory");
    }
    require(publishable(room), Rule::D1, || {
        format!(
            "only rooms of class `agents` or `public` are published, and this one is `{}`",
            if room.is_direct_conversation() {
                AccessClass::Direct
            } else {
                room.effective_class()
            }
        )
    })
}

/// D2: guests get an empty room directory. With `room`, the question is about one entry: it is
/// shown only if it is publishable and its class admits the viewer, so that a public-sector
/// agent does not learn the names of rooms reserved to state agents. The table is silent on
/// that filter; we apply it to protect the administration's data.
pub(super) fn see_rooms(ctx: &Ctx<'_>, room: Option<&RoomFacts>) -> Verdict {
    if ctx.tier == Tier::Guest {
        return refuse(
            Rule::D2,
            "the room directory is not available to guests; ask a state agent to invite you",
        );
    }
    match room {
        Some(entry) => require(
            publishable(entry) && entry.effective_class().admits(ctx.tier),
            Rule::D2,
            || "this room is not listed for your tier".to_owned(),
        ),
        None => Ok(()),
    }
}

/// D3: agents and public agents find everyone not hidden (and hidden people they already share
/// a room with, whom they can see anyway); guests only people they share a room with.
/// Deactivated accounts are found by nobody.
pub(super) fn search_users(ctx: &Ctx<'_>, target: &UserId, shares_room: bool) -> Verdict {
    if target == ctx.user {
        return Ok(());
    }
    let record = ctx.dir.user(target);
    if record.is_some_and(|r| r.status == AccountStatus::Deactivated) {
        return refuse(Rule::D3, format!("{target}'s account is deactivated"));
    }
    if ctx.tier == Tier::Guest {
        return require(shares_room, Rule::D3, || {
            "guests find only the people they share a room with".to_owned()
        });
    }
    require(shares_room || !record.is_some_and(|r| r.hidden), Rule::D3, || {
        format!("{target} chose not to be listed in the user directory")
    })
}
