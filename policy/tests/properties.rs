//! Property tests for the policy's invariants, over random sequences of actions.
//!
//! Server admins and the policy bot are left out of the actor pools on purpose: they pass every
//! check by design (POLICY.md), so the invariants are about everyone else.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{NOW, directory, u};
use proptest::prelude::*;
use relais_policy::{
    AccessClass, Action, Actor, Directory, RoomFacts, Tier, UnitId, UserId, WorkspaceFacts,
    WorkspaceRef, WorkspaceStatus, decide, max_power_level,
};

/// Everyone who may act or be acted on, of every tier, local and remote, usable or not.
const PEOPLE: &[&str] = &[
    "anne",
    "nadia",
    "alain",
    "helene",
    "hugo",
    "hidden",
    "lucie",
    "denis",
    "paul",
    "pauline",
    "arnaud",
    "gaston",
    "gisele",
    "ghost",
    "@bob:partner.gouv.fr",
    "@marc:mairie.fr",
    "@eve:unknown.example",
];

/// Every unit of the fixture, and one that does not exist.
const UNITS: &[&str] = &[
    "state",
    "interior",
    "prefecture-nouvelle-aquitaine",
    "prefecture-creuse",
    "health",
    "local-authorities",
    "creuse-council",
    "externals",
    "nowhere",
];

const CLASSES: [AccessClass; 4] =
    [AccessClass::Agents, AccessClass::Public, AccessClass::Open, AccessClass::Direct];

fn person() -> impl Strategy<Value = UserId> {
    proptest::sample::select(PEOPLE).prop_map(u)
}

/// Delegated admins of both tiers, weighted up, and a few who are not admins.
fn admin_actor() -> impl Strategy<Value = UserId> {
    prop_oneof![
        3 => proptest::sample::select(&["anne", "nadia", "hugo", "pauline"][..]).prop_map(u),
        1 => person(),
    ]
}

fn unit() -> impl Strategy<Value = UnitId> {
    proptest::sample::select(UNITS).prop_map(UnitId::from)
}

fn class() -> impl Strategy<Value = AccessClass> {
    proptest::sample::select(&CLASSES[..])
}

fn tier() -> impl Strategy<Value = Tier> {
    proptest::sample::select(&Tier::ALL[..])
}

/// One step in a room's life.
#[derive(Debug, Clone)]
enum Step {
    Join(UserId),
    Leave(UserId),
    Knock(UserId),
    Invite(UserId, UserId),
    SetPower(UserId, UserId, i64),
    ChangeClass(UserId, AccessClass),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        person().prop_map(Step::Join),
        person().prop_map(Step::Leave),
        person().prop_map(Step::Knock),
        (person(), person()).prop_map(|(a, t)| Step::Invite(a, t)),
        (
            person(),
            person(),
            prop_oneof![Just(-10i64), Just(0), Just(1), Just(50), Just(100), any::<i64>()]
        )
            .prop_map(|(a, t, l)| Step::SetPower(a, t, l)),
        (person(), class()).prop_map(|(a, c)| Step::ChangeClass(a, c)),
    ]
}

/// A room as the homeserver would track it, driven only through `decide`.
#[derive(Debug)]
struct Room {
    class: AccessClass,
    workspace: Option<WorkspaceFacts>,
    users_default: i64,
    invite_power: i64,
    joined: BTreeSet<UserId>,
    invited: BTreeSet<UserId>,
    power: BTreeMap<UserId, i64>,
}

impl Room {
    fn new(
        class: AccessClass,
        workspace: Option<AccessClass>,
        users_default: i64,
        invite_power: i64,
    ) -> Room {
        // Alain, a state agent of prefecture-creuse, created the room and is its admin.
        let creator = u("alain");
        Room {
            class,
            workspace: workspace.map(|class| WorkspaceFacts {
                class: Some(class),
                unit: "prefecture-creuse".into(),
                actor_power: 0,
                status: WorkspaceStatus::Active,
            }),
            users_default,
            invite_power,
            joined: [creator.clone()].into(),
            invited: BTreeSet::new(),
            power: [(creator, 100)].into(),
        }
    }

    fn power_of(&self, user: &UserId) -> i64 {
        self.power.get(user).copied().unwrap_or(self.users_default)
    }

    fn facts_for(&self, actor: &UserId) -> RoomFacts {
        RoomFacts {
            class: Some(self.class),
            is_direct: false,
            is_workspace: false,
            member_count: u32::try_from(self.joined.len() + self.invited.len()).unwrap_or(u32::MAX),
            actor_joined: self.joined.contains(actor),
            actor_invited: self.invited.contains(actor),
            actor_power: self.power_of(actor),
            invite_power: self.invite_power,
            users_default_power: self.users_default,
            workspace: self.workspace.clone(),
            unit: Some("prefecture-creuse".into()),
        }
    }

    fn effective_class(&self) -> AccessClass {
        self.facts_for(&u("nobody")).effective_class()
    }

    /// Asks the policy, and applies the step only if allowed, as the homeserver does; after a
    /// class change it removes members whose tier no longer fits (P3).
    fn apply(&mut self, step: &Step, dir: &Directory) {
        let (actor, action) = match step {
            Step::Join(a) => (a, Action::Join { room: "!r:relais.test".into() }),
            Step::Knock(a) => (a, Action::Knock { room: "!r:relais.test".into() }),
            Step::Invite(a, t) => {
                (a, Action::Invite { target: t.clone(), room: "!r:relais.test".into() })
            }
            Step::SetPower(a, t, level) => (
                a,
                Action::SetPowerLevel {
                    room: "!r:relais.test".into(),
                    target: t.clone(),
                    level: *level,
                },
            ),
            Step::ChangeClass(a, to) => (
                a,
                Action::ChangeAccessClass {
                    room: "!r:relais.test".into(),
                    from: self.class,
                    to: *to,
                },
            ),
            Step::Leave(a) => {
                self.joined.remove(a);
                self.invited.remove(a);
                return;
            }
        };
        if !decide(&action, &Actor::new(actor.clone()), Some(&self.facts_for(actor)), dir, NOW)
            .is_allowed()
        {
            return;
        }
        match step {
            Step::Join(a) => {
                self.invited.remove(a);
                self.joined.insert(a.clone());
            }
            Step::Invite(_, t) if !self.joined.contains(t) => {
                self.invited.insert(t.clone());
            }
            Step::SetPower(_, t, level) => {
                self.power.insert(t.clone(), *level);
            }
            Step::ChangeClass(_, to) => {
                self.class = *to;
                let class = self.effective_class();
                self.joined.retain(|m| class.admits(dir.tier_of(m)));
                self.invited.retain(|m| class.admits(dir.tier_of(m)));
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// No sequence of actions gives a guest power above 0 or a seat in an agents-only room,
    /// nor any member more power or a seat than their tier allows.
    #[test]
    fn no_sequence_gives_a_guest_power_or_an_agents_only_seat(
        start in proptest::sample::select(&AccessClass::SCALE[..]),
        workspace in proptest::option::of(proptest::sample::select(&AccessClass::SCALE[..])),
        users_default in prop_oneof![Just(0i64), Just(10), Just(50)],
        invite_power in prop_oneof![Just(0i64), Just(50)],
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let dir = directory();
        let mut room = Room::new(start, workspace, users_default, invite_power);
        for step in &steps {
            room.apply(step, &dir);
            let class = room.effective_class();
            for member in room.joined.iter().chain(&room.invited) {
                let tier = dir.tier_of(member);
                prop_assert!(class.admits(tier), "{member} ({tier}) sits in a `{class}` room after {step:?}");
                prop_assert!(tier != Tier::Guest || class != AccessClass::Agents);
                prop_assert!(room.power_of(member) <= max_power_level(tier),
                    "{member} ({tier}) has power {} after {step:?}", room.power_of(member));
            }
            for (user, level) in &room.power {
                let tier = dir.tier_of(user);
                prop_assert!(*level <= max_power_level(tier), "{user} ({tier}) has power {level} after {step:?}");
                prop_assert!(tier != Tier::Guest || *level <= 0);
            }
        }
    }

    /// A child room is never more open than its workspace, and a room without the event is
    /// agents-only.
    #[test]
    fn a_child_is_never_more_open_than_its_workspace(own in proptest::option::of(class()), ws in proptest::option::of(class())) {
        let facts = RoomFacts {
            class: own,
            workspace: ws.map(|c| WorkspaceFacts { class: Some(c), unit: "state".into(), actor_power: 0, status: WorkspaceStatus::Active }),
            ..RoomFacts::default()
        };
        let effective = facts.effective_class();
        if let Some(ws) = ws {
            prop_assert!(!effective.is_more_open_than(ws));
            for tier in Tier::ALL {
                prop_assert!(!effective.admits(tier) || ws.admits(tier), "{effective:?} admits {tier} but {ws:?} does not");
            }
        }
        if own.is_none() && ws.is_none() {
            prop_assert_eq!(effective, AccessClass::Agents);
        }
    }

    /// An admin never acts outside their subtree: whatever an allowed administrative action
    /// touches (its unit, its target's unit, a workspace's units) lies in the actor's scope,
    /// except where a sponsoring agent acts on their own guest or unit.
    #[test]
    fn an_admin_never_acts_outside_their_subtree(actor in admin_actor(), action in admin_action()) {
        let dir = directory();
        let decision = decide(&action, &Actor::new(actor.clone()), None, &dir, NOW);
        if decision.is_allowed() {
            for unit in touched_units(&action, &actor, &dir) {
                prop_assert!(dir.admin_covers(&actor, &unit), "{actor} acted on {unit} with {action:?}");
            }
        }
    }

    /// A delegated admin never grants a tier above their own, nor acts on an account, or
    /// appoints an admin, of a higher tier.
    #[test]
    fn a_delegated_admin_never_grants_a_tier_above_their_own(actor in admin_actor(), action in admin_action()) {
        let dir = directory();
        let own = dir.tier_of(&actor);
        if decide(&action, &Actor::new(actor.clone()), None, &dir, NOW).is_allowed() {
            let granted = match &action {
                Action::IssueInvitation { tier, .. } | Action::SetTier { tier, .. } => Some(*tier),
                Action::AppointAdmin { user, .. } => Some(dir.tier_of(user)),
                _ => None,
            };
            prop_assert!(granted.is_none_or(|t| t <= own), "{actor} ({own}) granted {granted:?} with {action:?}");
            if let Some(target) = target_of(&action) {
                prop_assert!(dir.tier_of(target) <= own, "{actor} ({own}) acted on {target} with {action:?}");
            }
        }
    }
}

fn workspace_ref() -> impl Strategy<Value = WorkspaceRef> {
    unit().prop_map(|unit| WorkspaceRef { room: "!ws:relais.test".into(), unit })
}

fn admin_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (tier(), unit()).prop_map(|(tier, unit)| Action::IssueInvitation { tier, unit }),
        (person(), tier()).prop_map(|(target, tier)| Action::SetTier { target, tier }),
        person().prop_map(|target| Action::Lock { target }),
        person().prop_map(|target| Action::Unlock { target }),
        person().prop_map(|target| Action::Deactivate { target }),
        (person(), 0u64..2 * NOW)
            .prop_map(|(target, until_ms)| Action::RenewGuest { target, until_ms }),
        person().prop_map(|target| Action::EndGuest { target }),
        unit().prop_map(|unit| Action::ApproveWorkspace { unit }),
        (workspace_ref(), unit())
            .prop_map(|(workspace, to)| Action::TransferWorkspace { workspace, to }),
        (workspace_ref(), class())
            .prop_map(|(workspace, to)| Action::CloseWorkspace { workspace, to }),
        workspace_ref().prop_map(|workspace| Action::LockWorkspace { workspace }),
        workspace_ref().prop_map(|workspace| Action::ArchiveWorkspace { workspace }),
        workspace_ref().prop_map(|workspace| Action::RecoverWorkspace { workspace }),
        workspace_ref().prop_map(|workspace| Action::ExportMembers { workspace }),
        unit().prop_map(|unit| Action::ReadAuditLog { unit }),
        (person(), unit()).prop_map(|(user, unit)| Action::AppointAdmin { user, unit }),
        (person(), unit()).prop_map(|(user, unit)| Action::RemoveAdmin { user, unit }),
    ]
}

/// The account an administrative action acts on, if any.
fn target_of(action: &Action) -> Option<&UserId> {
    match action {
        Action::SetTier { target, .. }
        | Action::Lock { target }
        | Action::Unlock { target }
        | Action::Deactivate { target }
        | Action::RenewGuest { target, .. }
        | Action::EndGuest { target } => Some(target),
        _ => None,
    }
}

/// The units an allowed action reaches into, leaving out the sponsor's own acts: inviting a
/// guest into their own unit, and renewing or ending a guest they sponsor.
fn touched_units(action: &Action, actor: &UserId, dir: &Directory) -> Vec<UnitId> {
    let unit_of =
        |user: &UserId| dir.user(user).map(|r| r.unit.clone()).unwrap_or_else(|| "nowhere".into());
    match action {
        Action::IssueInvitation { tier: Tier::Guest, unit }
            if dir.user(actor).is_some_and(|r| &r.unit == unit) =>
        {
            vec![]
        }
        Action::IssueInvitation { unit, .. }
        | Action::ApproveWorkspace { unit }
        | Action::ReadAuditLog { unit } => {
            vec![unit.clone()]
        }
        Action::RenewGuest { target, .. } | Action::EndGuest { target }
            if dir.user(target).and_then(|r| r.sponsor.as_ref()) == Some(actor) =>
        {
            vec![]
        }
        Action::TransferWorkspace { workspace, to } => vec![workspace.unit.clone(), to.clone()],
        Action::CloseWorkspace { workspace, .. }
        | Action::LockWorkspace { workspace }
        | Action::ArchiveWorkspace { workspace }
        | Action::RecoverWorkspace { workspace }
        | Action::ExportMembers { workspace } => vec![workspace.unit.clone()],
        Action::AppointAdmin { user, unit } => vec![unit.clone(), unit_of(user)],
        Action::RemoveAdmin { unit, .. } => vec![unit.clone()],
        other => target_of(other).map(unit_of).into_iter().collect(),
    }
}
