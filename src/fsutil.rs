//! File-system helpers shared by the writers.

use std::io;
use std::path::Path;

/// A temporary file in `dir` for writing a file of `dir` atomically (write
/// it, then `persist` it over the destination). `tempfile` creates private
/// files (mode 0o600); this one gets the permissions of an ordinary new
/// file instead (0o666 minus the umask on Unix, as `File::create` and
/// llama-quantize give), so the result is readable by whoever could read
/// a file written directly.
pub fn atomic_temp_in(dir: &Path, prefix: &str, suffix: &str) -> io::Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix).suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    b.tempfile_in(dir)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_temp_has_the_permissions_of_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        let want = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
        let tmp = super::atomic_temp_in(dir.path(), ".x-", ".tmp").unwrap();
        let out = dir.path().join("out");
        tmp.persist(&out).unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, want);
    }
}
