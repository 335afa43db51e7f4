//! One test per row of the decision table in POLICY.md, named by the row, plus the rules stated
//! beside it (C1, server admins and the policy bot).

mod common;

use common::{NOW, allowed, ask, denied, directory, room, u, with_power};
use relais_policy::{
    AccessClass, Action, Invitation, RoomFacts, Rule, Tier, UnitId, WorkspaceFacts,
    WorkspaceStatus, registration_grant,
};

fn register(email: Option<&str>, invitation: Option<Invitation>) -> Action {
    Action::Register { email: email.map(str::to_owned), invitation }
}

fn invitation(tier: Tier, unit: &str, issued_by: &str) -> Invitation {
    Invitation { tier, unit: unit.into(), issued_by: u(issued_by), expires_at_ms: NOW + 1 }
}

fn workspace(class: AccessClass, unit: &str, actor_power: i64) -> WorkspaceFacts {
    WorkspaceFacts {
        class: Some(class),
        unit: unit.into(),
        actor_power,
        status: WorkspaceStatus::Active,
    }
}

#[test]
fn r1_agents_and_public_agents_register_by_domain_rule_or_invitation() {
    allowed(ask("new", &register(Some("marie@interieur.gouv.fr"), None), None));
    allowed(ask("new", &register(Some("paul@ville.creuse.fr"), None), None));
    allowed(ask(
        "new",
        &register(None, Some(invitation(Tier::Agent, "prefecture-creuse", "anne"))),
        None,
    ));
    denied(
        ask("new", &register(None, Some(invitation(Tier::Agent, "health", "anne"))), None),
        Rule::R1,
    );
    denied(
        ask("new:partner.gouv.fr", &register(Some("a@interieur.gouv.fr"), None), None),
        Rule::R1,
    );
    denied(ask("denis", &register(Some("denis@interieur.gouv.fr"), None), None), Rule::R1);
}

#[test]
fn r1_guest_registers_only_with_an_invitation() {
    denied(ask("new", &register(Some("jean@example.com"), None), None), Rule::R1);
    denied(ask("new", &register(None, None), None), Rule::R1);
    let invite = invitation(Tier::Guest, "prefecture-creuse", "alain");
    allowed(ask("new", &register(Some("jean@example.com"), Some(invite.clone())), None));
    let grant = registration_grant(Some("jean@example.com"), Some(&invite), &directory(), NOW)
        .expect("granted");
    assert_eq!(
        (grant.tier, grant.unit, grant.sponsor),
        (Tier::Guest, Some(UnitId::from("prefecture-creuse")), Some(u("alain")))
    );

    let expired = Invitation { expires_at_ms: NOW, ..invite };
    denied(ask("new", &register(None, Some(expired)), None), Rule::R1);
    // A public-sector agent cannot sponsor a guest, so their invitation is worthless.
    denied(
        ask("new", &register(None, Some(invitation(Tier::Guest, "creuse-council", "paul"))), None),
        Rule::R1,
    );
    // A locked issuer's pending invitations stop working.
    denied(
        ask("new", &register(None, Some(invitation(Tier::Guest, "interior", "lucie"))), None),
        Rule::R1,
    );
}

#[test]
fn r2_guest_uses_the_account_only_before_expiry() {
    allowed(ask("gaston", &Action::Login, None));
    allowed(ask("alain", &Action::Login, None));
    allowed(ask("paul", &Action::Login, None));
    let refusal = ask("gisele", &Action::Login, None);
    assert!(
        refusal.message().is_some_and(|m| m.contains("@alain:relais.test") && m.contains("renew")),
        "{refusal:?}"
    );
    denied(refusal, Rule::R2);
    // Every action needs a usable account, not just logging in.
    denied(
        ask(
            "gisele",
            &Action::Join { room: "!r:relais.test".into() },
            Some(&room(AccessClass::Open)),
        ),
        Rule::R2,
    );
    denied(ask("lucie", &Action::Login, None), Rule::R2);
    denied(ask("denis", &Action::Login, None), Rule::R2);
    denied(ask("ghost", &Action::Login, None), Rule::R2);
    // Once the sponsor renews, the guest is back.
    allowed(ask(
        "alain",
        &Action::RenewGuest { target: u("gisele"), until_ms: NOW + 86_400_000 },
        None,
    ));
    let mut parts = common::parts();
    if let Some(record) = parts.users.get_mut(&u("gisele")) {
        record.expires_at_ms = Some(NOW + 86_400_000);
    }
    let renewed = relais_policy::Directory::from_parts(parts).expect("valid");
    let login = relais_policy::decide(
        &Action::Login,
        &relais_policy::Actor::new(u("gisele")),
        None,
        &renewed,
        NOW,
    );
    allowed(login);
}

#[test]
fn w1_only_agents_create_workspaces_with_approval_where_required() {
    let create = |unit: &str, approved_by: Option<&str>| Action::CreateWorkspace {
        unit: unit.into(),
        class: None,
        approved_by: approved_by.map(u),
    };
    allowed(ask("alain", &create("prefecture-creuse", None), None));
    denied(ask("paul", &create("creuse-council", None), None), Rule::W1);
    denied(ask("gaston", &create("prefecture-creuse", None), None), Rule::W1);
    denied(ask("alain", &create("interior", None), None), Rule::A1);
    // Health requires an admin's approval.
    denied(ask("helene", &create("health", None), None), Rule::W1);
    denied(ask("helene", &create("health", Some("anne")), None), Rule::W1);
    allowed(ask("helene", &create("health", Some("hugo")), None));
    allowed(ask("hugo", &create("health", None), None));
}

#[test]
fn w2_public_agents_create_public_or_open_rooms_guests_none() {
    let create = |class: Option<AccessClass>, ws: Option<WorkspaceFacts>| Action::CreateRoom {
        class,
        parent_workspace: ws,
    };
    allowed(ask("alain", &create(None, None), None));
    allowed(ask(
        "alain",
        &create(
            Some(AccessClass::Agents),
            Some(workspace(AccessClass::Agents, "prefecture-creuse", 0)),
        ),
        None,
    ));
    allowed(ask("paul", &create(None, None), None));
    allowed(ask("paul", &create(Some(AccessClass::Open), None), None));
    denied(ask("paul", &create(Some(AccessClass::Agents), None), None), Rule::W2);
    denied(
        ask("paul", &create(None, Some(workspace(AccessClass::Open, "creuse-council", 0))), None),
        Rule::W2,
    );
    allowed(ask(
        "paul",
        &create(None, Some(workspace(AccessClass::Open, "creuse-council", 50))),
        None,
    ));
    denied(ask("gaston", &create(Some(AccessClass::Open), None), None), Rule::W2);
    denied(ask("alain", &create(Some(AccessClass::Direct), None), None), Rule::W2);
    let locked = WorkspaceFacts {
        status: WorkspaceStatus::Locked,
        ..workspace(AccessClass::Agents, "prefecture-creuse", 100)
    };
    denied(ask("alain", &create(None, Some(locked)), None), Rule::W2);
}

#[test]
fn w3_direct_conversations_with_visible_users_guests_only_with_room_mates() {
    let dm = |with: &str, shares_room: bool| Action::CreateDirect { with: u(with), shares_room };
    allowed(ask("alain", &dm("paul", false), None));
    allowed(ask("paul", &dm("gaston", false), None));
    denied(ask("alain", &dm("hidden", false), None), Rule::W3);
    allowed(ask("alain", &dm("hidden", true), None));
    denied(ask("gaston", &dm("alain", false), None), Rule::W3);
    allowed(ask("gaston", &dm("alain", true), None));
    denied(ask("alain", &dm("denis", true), None), Rule::W3);
    denied(ask("alain", &dm("gisele", true), None), Rule::W3);
}

#[test]
fn m1_class_must_admit_the_tier_and_guests_need_an_invitation() {
    let join = Action::Join { room: "!r:relais.test".into() };
    let invited = |class| RoomFacts { actor_invited: true, actor_joined: false, ..room(class) };
    let uninvited = |class| RoomFacts { actor_joined: false, ..room(class) };
    allowed(ask("alain", &join, Some(&uninvited(AccessClass::Agents))));
    denied(ask("paul", &join, Some(&invited(AccessClass::Agents))), Rule::M1);
    allowed(ask("paul", &join, Some(&uninvited(AccessClass::Public))));
    denied(ask("gaston", &join, Some(&invited(AccessClass::Public))), Rule::M1);
    denied(ask("gaston", &join, Some(&uninvited(AccessClass::Open))), Rule::M1);
    allowed(ask("gaston", &join, Some(&invited(AccessClass::Open))));
    // Remote users: tier from the partner table, unknown servers are guests.
    allowed(ask("@bob:partner.gouv.fr", &join, Some(&uninvited(AccessClass::Agents))));
    allowed(ask("@marc:mairie.fr", &join, Some(&uninvited(AccessClass::Public))));
    denied(ask("@eve:unknown.example", &join, Some(&uninvited(AccessClass::Public))), Rule::M1);
    // Knocking needs the class to admit the tier too.
    let knock = Action::Knock { room: "!r:relais.test".into() };
    denied(ask("gaston", &knock, Some(&uninvited(AccessClass::Agents))), Rule::M1);
    allowed(ask("gaston", &knock, Some(&uninvited(AccessClass::Open))));
}

#[test]
fn m2_inviting_needs_the_invite_power_level_and_guests_never_invite() {
    let invite = |target: &str| Action::Invite { target: u(target), room: "!r:relais.test".into() };
    let strict = RoomFacts { invite_power: 50, ..room(AccessClass::Public) };
    denied(ask("alain", &invite("paul"), Some(&strict)), Rule::M2);
    allowed(ask("alain", &invite("paul"), Some(&with_power(strict.clone(), 50))));
    allowed(ask("paul", &invite("alain"), Some(&with_power(strict, 50))));
    denied(ask("gaston", &invite("alain"), Some(&room(AccessClass::Open))), Rule::M2);
    denied(ask("alain", &invite("paul"), Some(&room(AccessClass::Agents))), Rule::M1);
    denied(ask("alain", &invite("lucie"), Some(&room(AccessClass::Agents))), Rule::M1);
}

#[test]
fn m3_public_agent_cannot_invite_guest() {
    let invite = |target: &str| Action::Invite { target: u(target), room: "!r:relais.test".into() };
    denied(ask("paul", &invite("gaston"), Some(&room(AccessClass::Open))), Rule::M3);
    denied(ask("paul", &invite("@eve:unknown.example"), Some(&room(AccessClass::Open))), Rule::M3);
    denied(
        ask(
            "paul",
            &Action::IssueInvitation { tier: Tier::Guest, unit: "creuse-council".into() },
            None,
        ),
        Rule::M3,
    );
}

#[test]
fn m3_agent_invites_guest_and_becomes_sponsor() {
    let invite = |target: &str| Action::Invite { target: u(target), room: "!r:relais.test".into() };
    allowed(ask("alain", &invite("gaston"), Some(&room(AccessClass::Open))));
    allowed(ask("alain", &invite("@eve:unknown.example"), Some(&room(AccessClass::Open))));
    allowed(ask(
        "alain",
        &Action::IssueInvitation { tier: Tier::Guest, unit: "prefecture-creuse".into() },
        None,
    ));
    // ...but never into a room whose class does not admit guests.
    denied(ask("alain", &invite("gaston"), Some(&room(AccessClass::Public))), Rule::M1);
}

#[test]
fn m4_a_direct_conversation_never_has_more_than_two_members() {
    let direct =
        |members| RoomFacts { is_direct: true, member_count: members, ..room(AccessClass::Direct) };
    let invite = Action::Invite { target: u("paul"), room: "!dm:relais.test".into() };
    allowed(ask("alain", &invite, Some(&direct(1))));
    for tier_user in ["alain", "paul"] {
        denied(
            ask(
                tier_user,
                &Action::Invite { target: u("helene"), room: "!dm:relais.test".into() },
                Some(&direct(2)),
            ),
            Rule::M4,
        );
    }
    let join = Action::Join { room: "!dm:relais.test".into() };
    let invited =
        |members| RoomFacts { actor_joined: false, actor_invited: true, ..direct(members) };
    allowed(ask("gaston", &join, Some(&invited(2))));
    denied(ask("gaston", &join, Some(&invited(3))), Rule::M4);
    denied(
        ask("alain", &Action::Knock { room: "!dm:relais.test".into() }, Some(&direct(1))),
        Rule::M4,
    );
}

#[test]
fn p1_guest_power_is_always_zero_and_public_at_most_moderator() {
    let set = |target: &str, level| Action::SetPowerLevel {
        room: "!r:relais.test".into(),
        target: u(target),
        level,
    };
    let open = with_power(room(AccessClass::Open), 100);
    denied(ask("alain", &set("gaston", 1), Some(&open)), Rule::P1);
    allowed(ask("alain", &set("gaston", 0), Some(&open)));
    allowed(ask("alain", &set("paul", 50), Some(&open)));
    denied(ask("alain", &set("paul", 51), Some(&open)), Rule::P1);
    let ws = RoomFacts { is_workspace: true, ..open.clone() };
    let refusal = ask("alain", &set("paul", 100), Some(&ws));
    assert!(refusal.message().is_some_and(|m| m.contains("workspace")));
    denied(refusal, Rule::P1);
    allowed(ask("alain", &set("anne", 100), Some(&open)));
    // A room whose default power is above 0 takes no guest.
    let generous = RoomFacts {
        users_default_power: 10,
        actor_invited: true,
        actor_joined: false,
        ..room(AccessClass::Open)
    };
    denied(
        ask("gaston", &Action::Join { room: "!r:relais.test".into() }, Some(&generous)),
        Rule::P1,
    );
}

#[test]
fn p2_only_agent_room_admins_open_a_room() {
    let open = |from, to| Action::ChangeAccessClass { room: "!r:relais.test".into(), from, to };
    allowed(ask(
        "alain",
        &open(AccessClass::Agents, AccessClass::Public),
        Some(&with_power(room(AccessClass::Agents), 100)),
    ));
    denied(
        ask(
            "alain",
            &open(AccessClass::Agents, AccessClass::Public),
            Some(&with_power(room(AccessClass::Agents), 50)),
        ),
        Rule::P2,
    );
    denied(
        ask(
            "paul",
            &open(AccessClass::Public, AccessClass::Open),
            Some(&with_power(room(AccessClass::Public), 100)),
        ),
        Rule::P2,
    );
    denied(
        ask(
            "gaston",
            &open(AccessClass::Public, AccessClass::Open),
            Some(&with_power(room(AccessClass::Public), 100)),
        ),
        Rule::P2,
    );
    // The caller's idea of the current class must be right.
    denied(
        ask(
            "alain",
            &open(AccessClass::Public, AccessClass::Open),
            Some(&with_power(room(AccessClass::Agents), 100)),
        ),
        Rule::C1,
    );
}

#[test]
fn p3_only_a_covering_delegated_admin_closes_a_room() {
    let close = |from, to| Action::ChangeAccessClass { room: "!r:relais.test".into(), from, to };
    let in_creuse = RoomFacts {
        workspace: Some(workspace(AccessClass::Open, "prefecture-creuse", 100)),
        ..room(AccessClass::Open)
    };
    let action = close(AccessClass::Open, AccessClass::Public);
    allowed(ask("nadia", &action, Some(&in_creuse)));
    allowed(ask("anne", &action, Some(&in_creuse)));
    denied(ask("alain", &action, Some(&with_power(in_creuse.clone(), 100))), Rule::P3);
    denied(ask("hugo", &action, Some(&in_creuse)), Rule::P3);
    let in_council = RoomFacts {
        workspace: Some(workspace(AccessClass::Open, "creuse-council", 100)),
        ..room(AccessClass::Open)
    };
    denied(ask("pauline", &action, Some(&in_council)), Rule::P3);
    let nowhere = room(AccessClass::Open);
    denied(ask("anne", &action, Some(&nowhere)), Rule::P3);
    allowed(ask("root", &action, Some(&nowhere)));
}

#[test]
fn d1_only_agents_and_public_rooms_are_published() {
    let publish = Action::PublishInDirectory { room: "!r:relais.test".into() };
    allowed(ask("alain", &publish, Some(&room(AccessClass::Agents))));
    allowed(ask("alain", &publish, Some(&room(AccessClass::Public))));
    allowed(ask("paul", &publish, Some(&room(AccessClass::Public))));
    denied(ask("alain", &publish, Some(&room(AccessClass::Open))), Rule::D1);
    denied(ask("alain", &publish, Some(&room(AccessClass::Direct))), Rule::D1);
    denied(ask("gaston", &publish, Some(&room(AccessClass::Public))), Rule::D1);
    // An `open` child of a `public` workspace is effectively `public`.
    let child = RoomFacts {
        workspace: Some(workspace(AccessClass::Public, "interior", 0)),
        ..room(AccessClass::Open)
    };
    allowed(ask("alain", &publish, Some(&child)));
}

#[test]
fn d2_guests_see_an_empty_room_directory() {
    allowed(ask("alain", &Action::SeeRoomDirectory, None));
    allowed(ask("paul", &Action::SeeRoomDirectory, None));
    denied(ask("gaston", &Action::SeeRoomDirectory, None), Rule::D2);
    // Per entry: a public-sector agent does not see rooms reserved to state agents.
    allowed(ask("paul", &Action::SeeRoomDirectory, Some(&room(AccessClass::Public))));
    denied(ask("paul", &Action::SeeRoomDirectory, Some(&room(AccessClass::Agents))), Rule::D2);
    allowed(ask("alain", &Action::SeeRoomDirectory, Some(&room(AccessClass::Agents))));
}

#[test]
fn d3_user_directory_lists_everyone_not_hidden_and_guests_only_room_mates() {
    let search =
        |target: &str, shares_room| Action::SearchUserDirectory { target: u(target), shares_room };
    allowed(ask("alain", &search("paul", false), None));
    allowed(ask("paul", &search("gaston", false), None));
    denied(ask("alain", &search("hidden", false), None), Rule::D3);
    allowed(ask("alain", &search("hidden", true), None));
    denied(ask("gaston", &search("paul", false), None), Rule::D3);
    allowed(ask("gaston", &search("paul", true), None));
    denied(ask("alain", &search("denis", true), None), Rule::D3);
}

#[test]
fn c1_a_child_room_is_never_more_open_than_its_workspace() {
    let in_public = |class| RoomFacts {
        workspace: Some(workspace(AccessClass::Public, "interior", 100)),
        ..room(class)
    };
    assert_eq!(in_public(AccessClass::Open).effective_class(), AccessClass::Public);
    // Its class cannot be opened past the workspace...
    let open = Action::ChangeAccessClass {
        room: "!r:relais.test".into(),
        from: AccessClass::Public,
        to: AccessClass::Open,
    };
    denied(ask("alain", &open, Some(&with_power(in_public(AccessClass::Public), 100))), Rule::C1);
    // ...nor created more open than it.
    let create = Action::CreateRoom {
        class: Some(AccessClass::Open),
        parent_workspace: Some(workspace(AccessClass::Public, "interior", 100)),
    };
    denied(ask("alain", &create, None), Rule::C1);
    // A guest invited into an `open` child of a `public` workspace is refused.
    let invite = Action::Invite { target: u("gaston"), room: "!r:relais.test".into() };
    denied(ask("alain", &invite, Some(&in_public(AccessClass::Open))), Rule::M1);
}

#[test]
fn c1_a_room_without_the_access_event_is_agents_only() {
    let unclassified = RoomFacts { class: None, member_count: 2, ..RoomFacts::default() };
    assert_eq!(unclassified.effective_class(), AccessClass::Agents);
    denied(
        ask("paul", &Action::Join { room: "!r:relais.test".into() }, Some(&unclassified)),
        Rule::M1,
    );
    allowed(ask("alain", &Action::Join { room: "!r:relais.test".into() }, Some(&unclassified)));
}

#[test]
fn server_admins_and_the_policy_bot_pass_every_check() {
    let actions = [
        Action::CreateWorkspace { unit: "health".into(), class: None, approved_by: None },
        Action::SetPowerLevel { room: "!r:relais.test".into(), target: u("gaston"), level: 100 },
        Action::ReadAuditLog { unit: "state".into() },
        Action::AppointAdmin { user: u("alain"), unit: "state".into() },
    ];
    for actor in ["root", "policy"] {
        for action in &actions {
            allowed(ask(actor, action, Some(&room(AccessClass::Agents))));
        }
    }
}

#[test]
fn missing_room_facts_fail_closed() {
    denied(ask("alain", &Action::Join { room: "!r:relais.test".into() }, None), Rule::M1);
    denied(
        ask("alain", &Action::Invite { target: u("paul"), room: "!r:relais.test".into() }, None),
        Rule::M2,
    );
    denied(
        ask("alain", &Action::PublishInDirectory { room: "!r:relais.test".into() }, None),
        Rule::D1,
    );
}
