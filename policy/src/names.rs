//! Every `fr.relais.*` name, defined once.
//!
//! Event types and state keys travel between the homeserver, the policy appservice and partner
//! servers; a typo in one of them would silently turn a room into one "without the event", so
//! every crate takes the names from here.

/// The namespace every Relais-specific event type and field starts with.
pub const NAMESPACE: &str = "fr.relais.";

/// State event (empty state key) carrying a room's or a space's access class: `{"class": "public"}`.
pub const ACCESS: &str = "fr.relais.access";

/// The field of the [`ACCESS`] event content that holds the class.
pub const ACCESS_CLASS_FIELD: &str = "class";

/// State event in a unit's room describing an organisation unit (state key: the unit ID).
pub const ORG_UNIT: &str = "fr.relais.org_unit";

/// State event in a unit's room describing a user: tier, unit, sponsor, expiry, status
/// (state key: the user ID).
pub const MEMBER: &str = "fr.relais.member";

/// State event in a unit's room recording a delegated admin of that unit (state key: the user ID).
pub const DELEGATION: &str = "fr.relais.delegation";

/// State event in a unit's room recording a registration invitation (state key: the SHA-256 of the
/// token, in hex, so that reading the room does not reveal usable tokens).
pub const INVITATION: &str = "fr.relais.invitation";

/// State event in a workspace's space describing it: owning unit and lifecycle (active, locked,
/// archived).
pub const WORKSPACE: &str = "fr.relais.workspace";

/// Timeline event written for each administrative action: who, under which delegation, what,
/// on whom, why, when.
pub const AUDIT: &str = "fr.relais.audit";

/// Every name above, so that a test can check that none is misspelt or used twice.
pub const ALL: &[&str] = &[ACCESS, ORG_UNIT, MEMBER, DELEGATION, INVITATION, WORKSPACE, AUDIT];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_is_namespaced_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for name in ALL {
            assert!(name.starts_with(NAMESPACE), "{name}");
            assert!(seen.insert(*name), "{name} is defined twice");
        }
    }
}
