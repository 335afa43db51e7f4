//! Version 1: the initial schema.
//!
//! Column families are created by the homeserver when it opens the database, so a fresh database
//! needs nothing but its stamp, which [`crate::migrate`] writes. The server's signing key is made
//! by the homeserver at first start, not here, because key generation is not a schema change.

use crate::{Store, StoreError};

pub(crate) fn run(_store: &mut dyn Store) -> Result<(), StoreError> {
    Ok(())
}
