//! The list of migrations, oldest first.

mod m0001_initial;

use crate::Migration;

/// Every migration, in order of version.
pub static MIGRATIONS: &[Migration] =
    &[Migration { version: 1, name: "initial schema", run: m0001_initial::run }];
