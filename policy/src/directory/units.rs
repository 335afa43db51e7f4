//! The organisation-unit tree and subtree checks, which bound every delegated admin's scope.

use std::collections::BTreeMap;

use super::DirectoryError;
use super::parts::Unit;
use crate::ids::UnitId;

/// A checked unit tree: every parent exists and there is no cycle, so walking up always ends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitTree {
    units: BTreeMap<UnitId, Unit>,
}

impl UnitTree {
    /// Checks the units and builds the tree.
    pub fn new(units: &[Unit]) -> Result<UnitTree, DirectoryError> {
        let mut map = BTreeMap::new();
        for unit in units {
            if map.insert(unit.id.clone(), unit.clone()).is_some() {
                return Err(DirectoryError::DuplicateUnit { unit: unit.id.clone() });
            }
        }
        let tree = UnitTree { units: map };
        for unit in units {
            tree.check_path_to_root(unit)?;
        }
        Ok(tree)
    }

    /// Walks up from `unit`, refusing unknown parents and cycles.
    fn check_path_to_root(&self, unit: &Unit) -> Result<(), DirectoryError> {
        let mut current = unit;
        for _ in 0..=self.units.len() {
            let Some(parent) = &current.parent else {
                return Ok(());
            };
            current = self.units.get(parent).ok_or_else(|| DirectoryError::UnknownParent {
                unit: current.id.clone(),
                parent: parent.clone(),
            })?;
        }
        Err(DirectoryError::Cycle { unit: unit.id.clone() })
    }

    /// Whether the unit exists.
    pub fn contains(&self, unit: &UnitId) -> bool {
        self.units.contains_key(unit)
    }

    /// The unit, if it exists.
    pub fn get(&self, unit: &UnitId) -> Option<&Unit> {
        self.units.get(unit)
    }

    /// The unit itself, then its parent, up to the root. Empty for an unknown unit.
    pub fn ancestors<'a>(&'a self, unit: &UnitId) -> impl Iterator<Item = &'a Unit> + 'a {
        let mut next = self.units.get(unit);
        // The tree is acyclic (checked in `new`), so this ends; the bound is belt and braces.
        let mut budget = self.units.len();
        std::iter::from_fn(move || {
            let current = next.take().filter(|_| budget > 0)?;
            budget -= 1;
            next = current.parent.as_ref().and_then(|p| self.units.get(p));
            Some(current)
        })
    }

    /// Whether `unit` is `root` or lies below it. An unknown unit is in nobody's subtree, so
    /// an admin can never reach a unit the directory does not know.
    pub fn is_in_subtree(&self, unit: &UnitId, root: &UnitId) -> bool {
        self.ancestors(unit).any(|u| &u.id == root)
    }

    /// Whether `unit` lies strictly below `root`.
    pub fn is_strictly_below(&self, unit: &UnitId, root: &UnitId) -> bool {
        unit != root && self.is_in_subtree(unit, root)
    }

    /// Whether creating a workspace in `unit` needs an admin's approval: it does if the unit or
    /// any ancestor says so, because an organisation's rule binds all of its services. An
    /// unknown unit needs approval.
    pub fn requires_workspace_approval(&self, unit: &UnitId) -> bool {
        !self.contains(unit) || self.ancestors(unit).any(|u| u.requires_workspace_approval)
    }

    /// Every unit, by ID.
    pub fn iter(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(id: &str, parent: Option<&str>) -> Unit {
        Unit { id: id.into(), parent: parent.map(UnitId::from), requires_workspace_approval: false }
    }

    fn tree() -> UnitTree {
        UnitTree::new(&[
            unit("prefecture-creuse", Some("prefecture-nouvelle-aquitaine")),
            unit("state", None),
            unit("interior", Some("state")),
            unit("prefecture-nouvelle-aquitaine", Some("interior")),
            unit("health", Some("state")),
        ])
        .expect("valid tree")
    }

    #[test]
    fn a_unit_is_in_its_own_subtree_and_its_ancestors() {
        let t = tree();
        let creuse = UnitId::from("prefecture-creuse");
        for root in ["prefecture-creuse", "prefecture-nouvelle-aquitaine", "interior", "state"] {
            assert!(t.is_in_subtree(&creuse, &root.into()), "{root}");
        }
    }

    #[test]
    fn siblings_and_descendants_are_outside_the_subtree() {
        let t = tree();
        assert!(!t.is_in_subtree(&"prefecture-creuse".into(), &"health".into()));
        assert!(!t.is_in_subtree(&"interior".into(), &"prefecture-creuse".into()));
    }

    #[test]
    fn unknown_units_are_in_no_subtree() {
        let t = tree();
        assert!(!t.is_in_subtree(&"nowhere".into(), &"state".into()));
        assert!(!t.is_in_subtree(&"nowhere".into(), &"nowhere".into()));
    }

    #[test]
    fn strictly_below_excludes_the_root() {
        let t = tree();
        assert!(t.is_strictly_below(&"interior".into(), &"state".into()));
        assert!(!t.is_strictly_below(&"state".into(), &"state".into()));
    }

    #[test]
    fn approval_requirements_are_inherited() {
        let mut units = vec![
            unit("state", None),
            unit("interior", Some("state")),
            unit("health", Some("state")),
        ];
        units[1].requires_workspace_approval = true;
        let t = UnitTree::new(&units).expect("valid");
        assert!(t.requires_workspace_approval(&"interior".into()));
        assert!(!t.requires_workspace_approval(&"health".into()));
        assert!(t.requires_workspace_approval(&"nowhere".into()));
    }

    #[test]
    fn unknown_parents_cycles_and_duplicates_are_refused() {
        assert_eq!(
            UnitTree::new(&[unit("a", Some("ghost"))]),
            Err(DirectoryError::UnknownParent { unit: "a".into(), parent: "ghost".into() })
        );
        assert!(matches!(
            UnitTree::new(&[unit("a", Some("b")), unit("b", Some("a"))]),
            Err(DirectoryError::Cycle { .. })
        ));
        assert!(matches!(
            UnitTree::new(&[unit("a", Some("a"))]),
            Err(DirectoryError::Cycle { .. })
        ));
        assert_eq!(
            UnitTree::new(&[unit("a", None), unit("a", None)]),
            Err(DirectoryError::DuplicateUnit { unit: "a".into() })
        );
    }
}
