//! The one way quantmix writes a file: [`AtomicFile`], a temporary file
//! beside the destination that is renamed over it only when complete, so
//! that no reader ever sees a half-written output, and an interrupted run
//! leaves nothing behind.
//!
//! - Temporary files get the permissions of an ordinary new file (0o666
//!   minus the umask on Unix, as `File::create` and llama-quantize give),
//!   not `tempfile`'s private 0o600.
//! - Every temporary file alive is registered, so that a signal handler can
//!   remove them all ([`remove_pending`]) before the process exits.
//! - [`commit_all`] renames several files (an output and its sidecar) so
//!   that either all of them are in place or none.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files not yet committed or removed.
static PENDING: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn pending() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Remove every temporary file still pending (from a signal handler, just
/// before the process exits).
pub fn remove_pending() {
    for p in pending().iter() {
        let _ = std::fs::remove_file(p);
    }
}

/// The directory a file is written in (`.` for a bare file name).
pub fn dir_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// A file being written atomically: [`AtomicFile::commit`] renames it over
/// the destination; dropped before that, it is removed.
pub struct AtomicFile {
    tmp: Option<tempfile::NamedTempFile>,
    dest: PathBuf,
}

impl AtomicFile {
    /// A new temporary file beside `dest`. Its name ends like `dest`'s
    /// (`.png` for a PNG: some encoders choose the format by extension).
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        let suffix = match dest.extension() {
            Some(e) => format!(".tmp.{}", e.to_string_lossy()),
            None => ".tmp".to_string(),
        };
        let mut b = tempfile::Builder::new();
        b.prefix(".quantmix-").suffix(&suffix);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            b.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = b.tempfile_in(dir_of(dest))?;
        pending().insert(tmp.path().to_path_buf());
        Ok(AtomicFile { tmp: Some(tmp), dest: dest.to_path_buf() })
    }

    /// Where the file will be once committed.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The temporary file's path (for writers that open files by name).
    pub fn temp_path(&self) -> &Path {
        self.tmp.as_ref().expect("present until committed").path()
    }

    /// The open temporary file.
    pub fn file(&self) -> &std::fs::File {
        self.tmp.as_ref().expect("present until committed").as_file()
    }

    /// Sync the data to disk and rename the file over the destination.
    pub fn commit(self) -> io::Result<()> {
        commit_all(vec![self])
    }

    fn sync(&mut self) -> io::Result<()> {
        let tmp = self.tmp.as_mut().expect("present until committed");
        tmp.flush()?;
        tmp.as_file().sync_all()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.as_mut().expect("present until committed").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.as_mut().expect("present until committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            pending().remove(tmp.path());
            // `NamedTempFile`'s own drop removes the file.
        }
    }
}

/// An error of [`commit_all`] or [`write_atomic`], naming the destination.
#[derive(Debug, thiserror::Error)]
#[error("writing {}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Commit `files` together: every one is synced first, then they are
/// renamed in order; if a rename fails, the files already renamed are
/// removed again, so that either all destinations are new or none is
/// (an earlier file at a destination is then gone: it was being replaced).
pub fn commit_all(mut files: Vec<AtomicFile>) -> io::Result<()> {
    for f in &mut files {
        f.sync()?;
    }
    let mut done: Vec<PathBuf> = Vec::new();
    for f in &mut files {
        let tmp = f.tmp.take().expect("present until committed");
        let tmp_path = tmp.path().to_path_buf();
        match tmp.persist(&f.dest) {
            Ok(_) => {
                pending().remove(&tmp_path);
                done.push(f.dest.clone());
            }
            Err(e) => {
                pending().remove(&tmp_path);
                drop(e.file);
                for d in &done {
                    let _ = std::fs::remove_file(d);
                }
                return Err(e.error);
            }
        }
    }
    Ok(())
}

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let err = |source| WriteError { path: path.to_path_buf(), source };
    let mut f = AtomicFile::create(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.commit().map_err(err)
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn atomic_file_has_the_permissions_of_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        let want = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
        let out = dir.path().join("out.json");
        write_atomic(&out, b"{}").unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, want);
    }

    #[test]
    fn uncommitted_files_leave_nothing_and_commit_all_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.gguf");
        {
            let mut f = AtomicFile::create(&a).unwrap();
            f.write_all(b"partial").unwrap();
            assert!(f.temp_path().exists());
            assert!(pending().contains(f.temp_path()));
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left behind");
        // The second destination is a directory: its rename fails, the first is undone.
        let b = dir.path().join("b");
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("x"), b"x").unwrap();
        let mut f1 = AtomicFile::create(&a).unwrap();
        f1.write_all(b"one").unwrap();
        let f2 = AtomicFile::create(&b).unwrap();
        assert!(commit_all(vec![f1, f2]).is_err());
        assert!(!a.exists());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["b"]);
    }
}
