//! Files only the server's user may read, replaced atomically: what the server keeps beside
//! the engine's data (its state snapshot and journal, the KMS stand-in's keys).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Replaces `path` with `bytes` so that a crash leaves the old file or the new one, never a
/// mix: a temporary file (mode 600) written and fdatasync'd, renamed over `path`, then the
/// directory fsync'd.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().expect("a file name").to_string_lossy();
    let tmp = path.with_file_name(format!("{name}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(path.parent().expect("a directory"))?.sync_all()
}
