//! The one way quantmix writes a file: [`AtomicFile`], a temporary file
//! beside the destination that is renamed over it only when complete, so
//! that no reader ever sees a half-written output, and an interrupted run
//! leaves nothing behind.
//!
//! - Temporary files get the permissions of an ordinary new file (0o666
//!   minus the umask on Unix, as `File::create` and llama-quantize give),
//!   not `tempfile`'s private 0o600.
//! - Every temporary file (and temporary directory, [`TempDir`]) alive is
//!   registered, so that a signal handler can remove them all
//!   ([`remove_pending_and_exit`]) before the process exits. Creating,
//!   dropping and committing them hold the registry's lock, so that the
//!   handler never misses one that is being created or renamed.
//! - [`commit_all`] renames several files (an output and its sidecar) so
//!   that either all of them are in place or none, and an earlier file at a
//!   destination survives a failed commit.
//! - [`check_outputs`] refuses an output that is one of the inputs (the same
//!   file, also through a symbolic or hard link).

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files and directories not yet committed or removed.
static PENDING: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn pending() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

fn remove_path(p: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(p);
        }
        Err(_) => {}
    }
}

/// Remove every temporary file and directory still pending.
pub fn remove_pending() {
    for p in pending().iter() {
        remove_path(p);
    }
}

/// Remove every pending temporary file and directory, then exit the
/// process with `code` (a signal handler's last resort). The registry stays
/// locked until the exit, so that no new temporary file appears meanwhile.
pub fn remove_pending_and_exit(code: i32) -> ! {
    let set = pending();
    for p in set.iter() {
        remove_path(p);
    }
    std::process::exit(code)
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
        let mut set = pending();
        let tmp = b.tempfile_in(dir_of(dest))?;
        set.insert(tmp.path().to_path_buf());
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
            let mut set = pending();
            set.remove(tmp.path());
            // `NamedTempFile`'s own drop removes the file (under the lock).
            drop(tmp);
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

/// Commit `files` together: every one is synced first, then each
/// destination that exists is moved aside, the files are renamed into
/// place, and the old destinations removed. If anything fails, the files
/// already renamed are removed and the old destinations moved back: either
/// all destinations are new, or all are as they were. A destination that
/// is a directory fails the commit before anything is renamed.
pub fn commit_all(mut files: Vec<AtomicFile>) -> io::Result<()> {
    for f in &mut files {
        f.sync()?;
    }
    for f in &files {
        if std::fs::symlink_metadata(&f.dest).is_ok_and(|m| m.is_dir()) {
            return Err(io::Error::other(format!("{} is a directory", f.dest.display())));
        }
    }
    // The registry stays locked: a signal's exit waits until the commit is
    // complete or undone.
    let mut set = pending();
    // Old destinations, moved aside: (destination, where it is now).
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut done: Vec<PathBuf> = Vec::new();
    let undo = |done: &[PathBuf], moved: &[(PathBuf, PathBuf)]| {
        for d in done {
            let _ = std::fs::remove_file(d);
        }
        for (dest, aside) in moved {
            let _ = std::fs::rename(aside, dest);
        }
    };
    for f in &files {
        if std::fs::symlink_metadata(&f.dest).is_ok() {
            let mut aside = f.tmp.as_ref().expect("present until committed").path().as_os_str().to_owned();
            aside.push(".old");
            let aside = PathBuf::from(aside);
            if let Err(e) = std::fs::rename(&f.dest, &aside) {
                undo(&[], &moved);
                return Err(e);
            }
            moved.push((f.dest.clone(), aside));
        }
    }
    for f in &mut files {
        let tmp = f.tmp.take().expect("present until committed");
        let tmp_path = tmp.path().to_path_buf();
        match tmp.persist(&f.dest) {
            Ok(_) => {
                set.remove(&tmp_path);
                done.push(f.dest.clone());
            }
            Err(e) => {
                set.remove(&tmp_path);
                drop(e.file);
                undo(&done, &moved);
                return Err(e.error);
            }
        }
    }
    for (_, aside) in &moved {
        let _ = std::fs::remove_file(aside);
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

/// A temporary directory (removed on drop, or by
/// [`remove_pending_and_exit`] on a signal).
pub struct TempDir {
    dir: Option<tempfile::TempDir>,
}

impl TempDir {
    /// A new directory `PREFIX…` inside `parent`.
    pub fn new_in(parent: &Path, prefix: &str) -> io::Result<TempDir> {
        let mut set = pending();
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?;
        set.insert(dir.path().to_path_buf());
        Ok(TempDir { dir: Some(dir) })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("present until dropped").path()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            let mut set = pending();
            set.remove(d.path());
            drop(d);
        }
    }
}

/// An output path a job must not write: one of its inputs, or a file in a
/// directory that does not exist (found before any work is done).
#[derive(Debug, thiserror::Error)]
pub enum OutputPathError {
    #[error("refusing to write {}: it is the input {}{}", output.display(), input.display(),
        if output == input { "" } else { " (the same file)" })]
    IsInput { output: PathBuf, input: PathBuf },
    #[error("cannot write {}: the directory {} does not exist", output.display(), dir.display())]
    NoDirectory { output: PathBuf, dir: PathBuf },
}

/// Whether `a` and `b` are the same existing file (through symbolic or
/// hard links, or different spellings of the path).
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) else { return false };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        x.dev() == y.dev() && x.ino() == y.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (x, y);
        matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(p), Ok(q)) if p == q)
    }
}

/// Refuse outputs that are inputs (a job must never replace what it reads;
/// an output that does not exist yet cannot be an input) and outputs whose
/// directory does not exist, before the job does any work.
pub fn check_outputs<O: AsRef<Path>, I: AsRef<Path>>(outputs: &[O], inputs: &[I]) -> Result<(), OutputPathError> {
    for o in outputs {
        let o = o.as_ref();
        let dir = dir_of(o);
        if !dir.is_dir() {
            return Err(OutputPathError::NoDirectory { output: o.to_path_buf(), dir: dir.to_path_buf() });
        }
        for i in inputs {
            if same_file(o, i.as_ref()) {
                return Err(OutputPathError::IsInput { output: o.to_path_buf(), input: i.as_ref().to_path_buf() });
            }
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn outputs_in_a_missing_directory_are_refused_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("missing").join("out.gguf");
        let e = check_outputs(&[&out], &[dir.path().join("in.gguf")]).unwrap_err().to_string();
        assert!(e.contains("missing") && e.contains("does not exist"), "{e}");
        assert!(check_outputs(&[dir.path().join("out.gguf")], &[dir.path().join("in.gguf")]).is_ok());
    }

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

    #[test]
    fn a_failed_commit_keeps_the_old_destinations() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.gguf");
        std::fs::write(&a, b"old").unwrap();
        let side = dir.path().join("a.quantmap.json");
        std::fs::create_dir(&side).unwrap();
        std::fs::write(side.join("x"), b"x").unwrap();
        let mut f1 = AtomicFile::create(&a).unwrap();
        f1.write_all(b"new").unwrap();
        let f2 = AtomicFile::create(&side).unwrap();
        assert!(commit_all(vec![f1, f2]).is_err());
        assert_eq!(std::fs::read(&a).unwrap(), b"old");
        let mut names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["a.gguf", "a.quantmap.json"]);
        // A successful commit replaces both.
        std::fs::remove_dir_all(&side).unwrap();
        std::fs::write(&side, b"{}").unwrap();
        let mut f1 = AtomicFile::create(&a).unwrap();
        f1.write_all(b"new").unwrap();
        let mut f2 = AtomicFile::create(&side).unwrap();
        f2.write_all(b"[]").unwrap();
        commit_all(vec![f1, f2]).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"new");
        assert_eq!(std::fs::read(&side).unwrap(), b"[]");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn outputs_that_are_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"a").unwrap();
        let hard = dir.path().join("hard");
        std::fs::hard_link(&a, &hard).unwrap();
        let soft = dir.path().join("soft");
        std::os::unix::fs::symlink(&a, &soft).unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, b"a").unwrap();
        for o in [&a, &hard, &soft] {
            assert!(check_outputs(&[o], &[&a]).is_err(), "{}", o.display());
        }
        assert!(check_outputs(&[&other], &[&a]).is_ok());
        assert!(check_outputs(&[dir.path().join("new")], &[&a]).is_ok());
    }
}
