//! M1 (who may be in a room), M2 (invite), M3 (invite a guest), M4 (direct conversations hold
//! two people), and P1 for newcomers' default power.

use super::power::max_power_level;
use super::{Ctx, other_usable};
use crate::access::AccessClass;
use crate::decision::{Rule, Verdict, refuse, require};
use crate::facts::RoomFacts;
use crate::ids::UserId;
use crate::tier::Tier;

/// M1: the actor joins. The class must admit their tier; a guest needs an invitation (never a
/// link, the directory, space membership or a knock alone), and so does anyone joining a direct
/// conversation, which is private by nature.
pub(super) fn join(ctx: &Ctx<'_>, room: &RoomFacts) -> Verdict {
    admits(room, ctx.tier, "your account", OPEN_IT_FOR_ME)?;
    let invited = room.actor_invited || room.actor_joined;
    if room.is_direct_conversation() {
        require(invited, Rule::M1, || {
            "a direct conversation is joined only by invitation".to_owned()
        })?;
        let after = room.member_count.saturating_add(u32::from(!invited));
        at_most_two(after)?;
    }
    if ctx.tier == Tier::Guest {
        require(invited, Rule::M1, || {
            "guests join a room only when invited; ask a state agent in the room to invite you"
                .to_owned()
        })?;
    }
    default_power_fits(room, ctx.tier, "you")
}

/// M2, M3, M1 and M4 for an invitation of `target`.
pub(super) fn invite(ctx: &Ctx<'_>, target: &UserId, room: &RoomFacts) -> Verdict {
    if ctx.tier == Tier::Guest {
        return refuse(Rule::M2, "guests cannot invite anyone; ask a state agent in the room");
    }
    let target_tier = ctx.dir.tier_of(target);
    require(target_tier != Tier::Guest || ctx.tier == Tier::Agent, Rule::M3, || {
        format!(
            "{target} is a guest, and only state agents invite guests (they become the guest's sponsor); ask a state agent in the room"
        )
    })?;
    require(room.actor_power >= room.invite_power, Rule::M2, || {
        format!(
            "inviting in this room needs power level {}, and yours is {}; ask a moderator of the room to invite them",
            room.invite_power, room.actor_power
        )
    })?;
    other_usable(ctx, target, Rule::M1)?;
    let advice = format!(
        "to include them, a room admin can open the room (access class `{}`), or you can meet them in a room that admits them",
        AccessClass::narrowest_admitting(target_tier)
    );
    admits(room, target_tier, &target.to_string(), &advice)?;
    if room.is_direct_conversation() {
        at_most_two(room.member_count.saturating_add(1))?;
    }
    default_power_fits(room, target_tier, &target.to_string())
}

/// M1 for a knock. The class must admit the tier; a guest may knock on an open room, because a
/// knock gives no seat: only the invitation that answers it does, and M3 decides who sends it.
/// Direct conversations take no knocks (M4).
pub(super) fn knock(ctx: &Ctx<'_>, room: &RoomFacts) -> Verdict {
    if room.is_direct_conversation() {
        return refuse(
            Rule::M4,
            "a direct conversation is between its two people and takes no knocks",
        );
    }
    admits(room, ctx.tier, "your account", OPEN_IT_FOR_ME)
}

/// What someone whose tier a room does not admit can do.
const OPEN_IT_FOR_ME: &str =
    "ask the room's admins to open it to your tier, or to meet you in a room that admits it";

/// M1: the room's effective class admits `tier`; the refusal ends with `advice`.
fn admits(room: &RoomFacts, tier: Tier, who: &str, advice: &str) -> Verdict {
    let class = room.effective_class();
    require(class.admits(tier), Rule::M1, || {
        format!(
            "this room is for {} only, and {who} is of tier `{tier}`; {advice}",
            audience(class)
        )
    })
}

/// Who a class is for, in words.
fn audience(class: AccessClass) -> &'static str {
    match class {
        AccessClass::Agents => "state agents",
        AccessClass::Public => "state and public-sector agents",
        AccessClass::Open | AccessClass::Direct => "everyone",
    }
}

/// M4: a direct conversation never holds more than two members (joined or invited).
fn at_most_two(members_after: u32) -> Verdict {
    require(members_after <= 2, Rule::M4, || {
        "a direct conversation holds two people; create a room to talk with more".to_owned()
    })
}

/// P1: a newcomer would get the room's default power; refuse if that is above what their tier
/// may hold, since a guest with power through `users_default` has power all the same.
fn default_power_fits(room: &RoomFacts, tier: Tier, who: &str) -> Verdict {
    let max = max_power_level(tier);
    require(room.users_default_power <= max, Rule::P1, || {
        format!(
            "new members of this room get power level {}, above the {max} that {who} (tier `{tier}`) may hold; lower the room's default first",
            room.users_default_power
        )
    })
}
