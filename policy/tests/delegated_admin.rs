//! Delegated administration: scope is the subtree (A1), never above one's own tier (A2), only
//! local agents and public agents administer (A3).

mod common;

use common::{NOW, allowed, ask, denied, parts, u};
use relais_policy::{
    AccessClass, Action, Actor, Directory, RoomFacts, Rule, Tier, WorkspaceRef, decide,
};

fn ws(unit: &str) -> WorkspaceRef {
    WorkspaceRef { room: "!ws:relais.test".into(), unit: unit.into() }
}

fn issue(tier: Tier, unit: &str) -> Action {
    Action::IssueInvitation { tier, unit: unit.into() }
}

#[test]
fn a1_a2_invitations_within_the_subtree_and_up_to_the_issuers_tier() {
    allowed(ask("anne", &issue(Tier::Agent, "prefecture-creuse"), None));
    allowed(ask("anne", &issue(Tier::Public, "interior"), None));
    denied(ask("anne", &issue(Tier::Agent, "health"), None), Rule::A1);
    denied(ask("anne", &issue(Tier::Agent, "nowhere"), None), Rule::A1);
    allowed(ask("pauline", &issue(Tier::Public, "creuse-council"), None));
    denied(ask("pauline", &issue(Tier::Agent, "creuse-council"), None), Rule::A2);
    // Any agent sponsors guests into their own unit; elsewhere they need a delegation.
    allowed(ask("alain", &issue(Tier::Guest, "prefecture-creuse"), None));
    denied(ask("alain", &issue(Tier::Guest, "interior"), None), Rule::A1);
    denied(ask("alain", &issue(Tier::Agent, "prefecture-creuse"), None), Rule::A1);
    // A guest's sponsor is always a state agent.
    denied(ask("pauline", &issue(Tier::Guest, "creuse-council"), None), Rule::M3);
}

#[test]
fn a1_a2_tiers_are_set_within_the_subtree_never_above_ones_own() {
    let set = |target: &str, tier| Action::SetTier { target: u(target), tier };
    allowed(ask("anne", &set("alain", Tier::Public), None));
    allowed(ask("anne", &set("gaston", Tier::Agent), None));
    allowed(ask("pauline", &set("paul", Tier::Guest), None));
    denied(ask("pauline", &set("paul", Tier::Agent), None), Rule::A2);
    denied(ask("pauline", &set("alain", Tier::Public), None), Rule::A1);
    denied(ask("nadia", &set("anne", Tier::Public), None), Rule::A1);
    denied(ask("alain", &set("gaston", Tier::Public), None), Rule::A1);
}

#[test]
fn a1_accounts_are_locked_unlocked_and_deactivated_within_the_subtree() {
    allowed(ask("nadia", &Action::Lock { target: u("alain") }, None));
    denied(ask("nadia", &Action::Lock { target: u("anne") }, None), Rule::A1);
    allowed(ask("anne", &Action::Unlock { target: u("lucie") }, None));
    denied(ask("anne", &Action::Unlock { target: u("denis") }, None), Rule::R2);
    denied(ask("hugo", &Action::Deactivate { target: u("alain") }, None), Rule::A1);
    denied(ask("anne", &Action::Lock { target: u("@bob:partner.gouv.fr") }, None), Rule::A1);
}

#[test]
fn a1_an_admin_cannot_act_on_someone_who_administers_outside_their_scope() {
    let mut p = parts();
    p.delegations.insert(u("alain"), ["health".into()].into());
    let dir = Directory::from_parts(p).expect("valid");
    let lock = Action::Lock { target: u("alain") };
    let decision = decide(&lock, &Actor::new(u("nadia")), None, &dir, NOW);
    denied(decision, Rule::A1);
    allowed(decide(&lock, &Actor::new(u("root")), None, &dir, NOW));
}

#[test]
fn a2_public_sector_admins_do_not_administer_state_agents() {
    // Arnaud is a state agent seconded to the Creuse council, inside Pauline's subtree.
    denied(ask("pauline", &Action::Lock { target: u("arnaud") }, None), Rule::A2);
    denied(
        ask(
            "pauline",
            &Action::AppointAdmin { user: u("arnaud"), unit: "creuse-council".into() },
            None,
        ),
        Rule::A2,
    );
    allowed(ask(
        "pauline",
        &Action::AppointAdmin { user: u("paul"), unit: "creuse-council".into() },
        None,
    ));
    allowed(ask("anne", &Action::Lock { target: u("alain") }, None));
}

#[test]
fn r2_guests_are_renewed_or_ended_by_their_sponsor_or_an_admin() {
    let renew = |target: &str, until_ms| Action::RenewGuest { target: u(target), until_ms };
    let month = 30 * 86_400_000;
    allowed(ask("alain", &renew("gisele", NOW + month), None));
    allowed(ask("nadia", &renew("gisele", NOW + month), None));
    denied(ask("paul", &renew("gisele", NOW + month), None), Rule::A1);
    denied(ask("hugo", &renew("gisele", NOW + month), None), Rule::A1);
    denied(ask("alain", &renew("gisele", NOW - 1), None), Rule::R2);
    denied(ask("alain", &renew("gisele", NOW + 400 * 86_400_000), None), Rule::R2);
    denied(ask("anne", &renew("alain", NOW + month), None), Rule::R2);
    allowed(ask("alain", &Action::EndGuest { target: u("gaston") }, None));
    denied(ask("hugo", &Action::EndGuest { target: u("gaston") }, None), Rule::A1);
}

#[test]
fn a1_workspaces_are_administered_within_the_subtree() {
    allowed(ask("anne", &Action::ApproveWorkspace { unit: "prefecture-creuse".into() }, None));
    denied(ask("anne", &Action::ApproveWorkspace { unit: "health".into() }, None), Rule::A1);
    denied(
        ask("pauline", &Action::ApproveWorkspace { unit: "creuse-council".into() }, None),
        Rule::A2,
    );

    allowed(ask(
        "anne",
        &Action::TransferWorkspace { workspace: ws("prefecture-creuse"), to: "interior".into() },
        None,
    ));
    denied(
        ask(
            "anne",
            &Action::TransferWorkspace { workspace: ws("prefecture-creuse"), to: "health".into() },
            None,
        ),
        Rule::A1,
    );
    denied(
        ask(
            "nadia",
            &Action::TransferWorkspace {
                workspace: ws("prefecture-creuse"),
                to: "interior".into(),
            },
            None,
        ),
        Rule::A1,
    );

    for action in [
        Action::LockWorkspace { workspace: ws("prefecture-creuse") },
        Action::ArchiveWorkspace { workspace: ws("prefecture-creuse") },
        Action::ExportMembers { workspace: ws("prefecture-creuse") },
        Action::RecoverWorkspace { workspace: ws("prefecture-creuse") },
    ] {
        allowed(ask("nadia", &action, None));
        denied(ask("hugo", &action, None), Rule::A1);
        denied(ask("alain", &action, None), Rule::A1);
    }
    denied(
        ask("pauline", &Action::RecoverWorkspace { workspace: ws("creuse-council") }, None),
        Rule::A2,
    );
}

#[test]
fn p3_closing_a_workspace_is_for_a_covering_state_agent_admin() {
    let close = |unit: &str, to| Action::CloseWorkspace { workspace: ws(unit), to };
    allowed(ask("anne", &close("prefecture-creuse", AccessClass::Public), None));
    denied(ask("anne", &close("health", AccessClass::Public), None), Rule::A1);
    denied(ask("pauline", &close("creuse-council", AccessClass::Public), None), Rule::P3);
    denied(ask("anne", &close("interior", AccessClass::Direct), None), Rule::C1);
    let current = RoomFacts { class: Some(AccessClass::Public), ..RoomFacts::default() };
    denied(ask("anne", &close("interior", AccessClass::Open), Some(&current)), Rule::P2);
}

#[test]
fn a1_the_audit_log_is_read_within_the_subtree() {
    allowed(ask("anne", &Action::ReadAuditLog { unit: "prefecture-creuse".into() }, None));
    allowed(ask("anne", &Action::ReadAuditLog { unit: "interior".into() }, None));
    denied(ask("anne", &Action::ReadAuditLog { unit: "state".into() }, None), Rule::A1);
    denied(
        ask("alain", &Action::ReadAuditLog { unit: "prefecture-creuse".into() }, None),
        Rule::A1,
    );
}

#[test]
fn a1_a3_admins_appoint_and_remove_admins_of_their_sub_units_only() {
    let appoint =
        |user: &str, unit: &str| Action::AppointAdmin { user: u(user), unit: unit.into() };
    allowed(ask("anne", &appoint("alain", "prefecture-creuse"), None));
    denied(ask("anne", &appoint("alain", "interior"), None), Rule::A1);
    denied(ask("anne", &appoint("alain", "state"), None), Rule::A1);
    denied(ask("anne", &appoint("gaston", "prefecture-creuse"), None), Rule::A3);
    denied(ask("anne", &appoint("lucie", "prefecture-creuse"), None), Rule::A3);
    denied(ask("anne", &appoint("@bob:partner.gouv.fr", "prefecture-creuse"), None), Rule::A3);
    denied(ask("anne", &appoint("helene", "prefecture-creuse"), None), Rule::A1);
    allowed(ask(
        "anne",
        &Action::RemoveAdmin { user: u("nadia"), unit: "prefecture-nouvelle-aquitaine".into() },
        None,
    ));
    denied(
        ask("anne", &Action::RemoveAdmin { user: u("anne"), unit: "interior".into() }, None),
        Rule::A1,
    );
    denied(
        ask("nadia", &Action::RemoveAdmin { user: u("anne"), unit: "interior".into() }, None),
        Rule::A1,
    );
}

#[test]
fn a1_remote_users_and_non_admins_administer_nothing() {
    for actor in ["alain", "paul", "gaston", "@bob:partner.gouv.fr"] {
        denied(ask(actor, &Action::Lock { target: u("gaston") }, None), Rule::A1);
        denied(
            ask(actor, &Action::ReadAuditLog { unit: "prefecture-creuse".into() }, None),
            Rule::A1,
        );
    }
}
