//! Files on disk, named by the SHA-256 of their content: `<root>/ab/cd/abcd…`.
//!
//! A file is first written and fsynced under `<root>/tmp/`, then renamed into place, so a crash
//! never leaves a partial file under a content name. Files still in `tmp/` at start-up are
//! leftovers of interrupted uploads and are removed. Identical content is stored once: placing
//! a file whose name exists already only drops the temporary copy.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use rand::{Rng, distributions::Alphanumeric};
use sha2::{Digest, Sha256};

use super::MediaError;

/// The content-addressed file store.
#[derive(Debug)]
pub(super) struct FileStore {
    root: PathBuf,
}

/// A fully written temporary file, removed on drop unless placed.
#[derive(Debug)]
pub(super) struct Staged {
    path: PathBuf,
    /// The hex SHA-256 of the content.
    pub sha256: String,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a temporary media file");
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> MediaError + '_ {
    move |source| MediaError::Io { path: path.display().to_string(), source }
}

/// The hex SHA-256 of `bytes`.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn is_hash(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl FileStore {
    /// Opens the store at `root`, creating it, and empties its `tmp/` directory.
    pub(super) fn open(root: PathBuf) -> Result<Self, MediaError> {
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_error(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
        Ok(Self { root })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        let (a, b) = (sha256.get(0..2).unwrap_or("00"), sha256.get(2..4).unwrap_or("00"));
        self.root.join(a).join(b).join(sha256)
    }

    /// Writes `bytes` to a temporary file and fsyncs it.
    pub(super) fn stage(&self, bytes: &[u8]) -> Result<Staged, MediaError> {
        let name: String =
            rand::thread_rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect();
        let staged = Staged { path: self.root.join("tmp").join(name), sha256: sha256_hex(bytes) };
        let mut file = fs::File::create_new(&staged.path).map_err(io_error(&staged.path))?;
        file.write_all(bytes).map_err(io_error(&staged.path))?;
        file.sync_all().map_err(io_error(&staged.path))?;
        Ok(staged)
    }

    /// Moves a staged file to its content name. Returns whether the file is new (false: the same
    /// content was stored already, and the staged copy is dropped).
    pub(super) fn place(&self, staged: Staged) -> Result<bool, MediaError> {
        let target = self.path(&staged.sha256);
        if target.exists() {
            return Ok(false);
        }
        let dir = target.parent().unwrap_or(&self.root).to_owned();
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        fs::rename(&staged.path, &target).map_err(io_error(&target))?;
        // The rename is durable once the directory is synced.
        fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(io_error(&dir))?;
        Ok(true)
    }

    /// Reads a whole file.
    pub(super) fn read(&self, sha256: &str) -> Result<Vec<u8>, MediaError> {
        let path = self.path(sha256);
        fs::read(&path).map_err(io_error(&path))
    }

    /// Removes a file; a missing file is not an error.
    pub(super) fn remove(&self, sha256: &str) -> Result<(), MediaError> {
        let path = self.path(sha256);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(&path)(e)),
            _ => Ok(()),
        }
    }

    /// The hashes of every stored file.
    pub(super) fn list(&self) -> Result<Vec<String>, MediaError> {
        let mut out = Vec::new();
        for level1 in read_dir(&self.root)? {
            if level1.file_name().is_some_and(|n| n == "tmp") {
                continue;
            }
            for level2 in read_dir(&level1)? {
                for file in read_dir(&level2)? {
                    if let Some(name) =
                        file.file_name().and_then(|n| n.to_str()).filter(|n| is_hash(n))
                    {
                        out.push(name.to_owned());
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The entries of a directory; a plain file gives none.
fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, MediaError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        out.push(entry.map_err(io_error(dir))?.path());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_files_are_deduplicated_and_cleaned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path().join("media")).expect("open");
        let first = store.stage(b"hello").expect("stage");
        let sha = first.sha256.clone();
        assert!(store.place(first).expect("place"));
        assert!(!store.place(store.stage(b"hello").expect("stage")).expect("place again"));
        assert_eq!(store.read(&sha).expect("read"), b"hello");
        assert_eq!(store.list().expect("list"), vec![sha.clone()]);
        // Nothing is left in tmp/: the placed file moved, the duplicate was dropped.
        assert_eq!(fs::read_dir(dir.path().join("media/tmp")).expect("tmp").count(), 0);
        drop(store.stage(b"abandoned").expect("stage"));
        assert_eq!(fs::read_dir(dir.path().join("media/tmp")).expect("tmp").count(), 0);
        store.remove(&sha).expect("remove");
        store.remove(&sha).expect("removing twice is fine");
        assert!(store.list().expect("list").is_empty());
    }
}
