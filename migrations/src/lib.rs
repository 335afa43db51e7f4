//! Versioned storage migrations of the Relais homeserver, run at start-up.
//!
//! The database carries a product identifier and a schema version in its `global` table. At
//! start-up [`migrate`] refuses a database written by another product or by a newer Relais, and
//! runs, in order, every migration newer than the stored version. Each migration is one file under
//! `migrations/`, idempotent (safe to run again after a crash half-way), and tested from a database
//! of the previous version.
//!
//! Migrations see the database through [`Store`], raw bytes by table name: they depend on the
//! storage schema, never on the homeserver's services.

mod migrations;

pub use migrations::MIGRATIONS;

/// Identifies a database written by Relais (forks sharing a version number have corrupted each
/// other's databases elsewhere; the product identifier prevents it).
pub const PRODUCT_ID: &str = "fr.relais.homeserver";

/// The table holding the product identifier and schema version.
pub const GLOBAL_TABLE: &str = "global";
/// Key of the product identifier in [`GLOBAL_TABLE`].
pub const PRODUCT_KEY: &[u8] = b"product";
/// Key of the schema version (u64, big-endian) in [`GLOBAL_TABLE`].
pub const VERSION_KEY: &[u8] = b"schema_version";

/// Raw access to the database for migrations.
pub trait Store {
    /// Reads a value.
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes a value durably.
    fn put(&mut self, table: &'static str, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Whether the database holds no data at all (a fresh database).
    fn is_empty(&self) -> Result<bool, StoreError>;
}

/// An error from the underlying store.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// One migration.
pub struct Migration {
    /// The schema version after this migration.
    pub version: u64,
    /// What it does, for the log.
    pub name: &'static str,
    /// Runs it; must be idempotent.
    pub run: fn(&mut dyn Store) -> Result<(), StoreError>,
}

/// Why the database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The database was written by another program.
    #[error(
        "this database belongs to another product ({found:?}), not Relais; refusing to open it"
    )]
    OtherProduct {
        /// The product identifier found.
        found: String,
    },
    /// The database was written by a newer Relais.
    #[error(
        "this database has schema version {found}, newer than this Relais supports ({supported}); \
         upgrade Relais or restore a backup"
    )]
    NewerSchema {
        /// The stored version.
        found: u64,
        /// The newest version this build knows.
        supported: u64,
    },
    /// The database holds data but no product identifier.
    #[error("this database holds data but no Relais product identifier; refusing to open it")]
    Unidentified,
    /// A stored version is not 8 bytes.
    #[error("the stored schema version is corrupt")]
    CorruptVersion,
    /// The store failed.
    #[error("migration {version} ({name}) failed: {source}")]
    Failed {
        /// Which migration.
        version: u64,
        /// Its name.
        name: &'static str,
        /// The cause.
        source: StoreError,
    },
    /// Reading the metadata failed.
    #[error("reading the schema version failed: {0}")]
    Store(#[from] StoreError),
}

/// The newest schema version this build knows.
pub fn current_version() -> u64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// What [`migrate`] did.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The version found (0 for a fresh database).
    pub from: u64,
    /// The version now.
    pub to: u64,
}

/// Checks the database's identity and brings its schema to [`current_version`].
pub fn migrate(store: &mut dyn Store) -> Result<Outcome, MigrationError> {
    let product = store.get(GLOBAL_TABLE, PRODUCT_KEY)?;
    let from = match product {
        None if store.is_empty()? => 0,
        None => return Err(MigrationError::Unidentified),
        Some(found) if found != PRODUCT_ID.as_bytes() => {
            return Err(MigrationError::OtherProduct {
                found: String::from_utf8_lossy(&found).into_owned(),
            });
        }
        Some(_) => read_version(store)?,
    };
    let supported = current_version();
    if from > supported {
        return Err(MigrationError::NewerSchema { found: from, supported });
    }
    if from == 0 {
        store.put(GLOBAL_TABLE, PRODUCT_KEY, PRODUCT_ID.as_bytes())?;
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > from) {
        (migration.run)(store).map_err(|source| MigrationError::Failed {
            version: migration.version,
            name: migration.name,
            source,
        })?;
        store.put(GLOBAL_TABLE, VERSION_KEY, &migration.version.to_be_bytes())?;
    }
    Ok(Outcome { from, to: supported })
}

fn read_version(store: &dyn Store) -> Result<u64, MigrationError> {
    match store.get(GLOBAL_TABLE, VERSION_KEY)? {
        None => Ok(0),
        Some(bytes) => {
            let bytes: [u8; 8] =
                bytes.as_slice().try_into().map_err(|_| MigrationError::CorruptVersion)?;
            Ok(u64::from_be_bytes(bytes))
        }
    }
}

#[cfg(test)]
pub(crate) mod test_store {
    use std::collections::BTreeMap;

    use super::{Store, StoreError};

    /// An in-memory store for migration tests.
    #[derive(Default)]
    pub struct MemStore(pub BTreeMap<(&'static str, Vec<u8>), Vec<u8>>);

    impl Store for MemStore {
        fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.0.get(&(table, key.to_vec())).cloned())
        }
        fn put(&mut self, table: &'static str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
            self.0.insert((table, key.to_vec()), value.to_vec());
            Ok(())
        }
        fn is_empty(&self) -> Result<bool, StoreError> {
            Ok(self.0.is_empty())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{test_store::MemStore, *};

    #[test]
    fn fresh_database_is_stamped() {
        let mut store = MemStore::default();
        let outcome = migrate(&mut store).expect("migrates");
        assert_eq!(outcome, Outcome { from: 0, to: current_version() });
        assert_eq!(store.get(GLOBAL_TABLE, PRODUCT_KEY).unwrap().unwrap(), PRODUCT_ID.as_bytes());
        // Running again is a no-op.
        let again = migrate(&mut store).expect("migrates again");
        assert_eq!(again.from, current_version());
    }

    #[test]
    fn other_product_is_refused() {
        let mut store = MemStore::default();
        store.put(GLOBAL_TABLE, PRODUCT_KEY, b"conduit").unwrap();
        let err = migrate(&mut store).unwrap_err();
        assert!(matches!(err, MigrationError::OtherProduct { .. }), "{err}");
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut store = MemStore::default();
        store.put(GLOBAL_TABLE, PRODUCT_KEY, PRODUCT_ID.as_bytes()).unwrap();
        store.put(GLOBAL_TABLE, VERSION_KEY, &(current_version() + 1).to_be_bytes()).unwrap();
        let err = migrate(&mut store).unwrap_err();
        assert!(matches!(err, MigrationError::NewerSchema { .. }), "{err}");
        assert!(err.to_string().contains("newer"));
    }

    #[test]
    fn data_without_identity_is_refused() {
        let mut store = MemStore::default();
        store.put("other", b"k", b"v").unwrap();
        assert!(matches!(migrate(&mut store), Err(MigrationError::Unidentified)));
    }

    #[test]
    fn versions_increase() {
        let versions: Vec<u64> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert_eq!(versions.first(), Some(&1));
    }
}
