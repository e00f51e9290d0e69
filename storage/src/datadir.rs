//! The data directory: every path Sluice touches is built here from validated names.

use crate::error::{Result, StorageError};
use std::path::{Path, PathBuf};

/// Longest name of one path component (stream names are at most 128 characters).
pub const NAME_BYTES_MAX: usize = 128;

/// The root under which all logs live.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// A data directory rooted at `root` (created if missing). A relative `root` is made
    /// absolute against the current directory first: glommio opens directories through
    /// io_uring, where a relative path fails with EBADF (found by the README's own
    /// `scripts/serve`, whose default directory is `sluice-data`).
    pub fn new(root: impl Into<PathBuf>) -> Result<DataDir> {
        let root = root.into();
        let root = std::path::absolute(&root)
            .map_err(|e| StorageError::io("resolve data dir", &root, e))?;
        std::fs::create_dir_all(&root)
            .map_err(|e| StorageError::io("create data dir", &root, e))?;
        Ok(DataDir { root })
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the directory's `LOCK` file: one process per data directory. Held while the
    /// returned file is open.
    pub fn lock(&self) -> Result<std::fs::File> {
        crate::log::lock_dir(&self.root)
    }

    /// The directory for a log named by `components` (e.g. `["streams", "orders", "shard-7"]`).
    /// Each component must match `[A-Za-z0-9_.-]{1,128}` and not be `.` or `..`, so the result
    /// is always inside the root.
    pub fn log_dir(&self, components: &[&str]) -> Result<PathBuf> {
        if components.is_empty() {
            return Err(StorageError::InvalidPath {
                path: String::new(),
                reason: "empty path",
            });
        }
        let mut path = self.root.clone();
        for component in components {
            validate_name(component)?;
            path.push(component);
        }
        Ok(path)
    }
}

/// Checks one path component.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() || name.len() > NAME_BYTES_MAX {
        Some("a name is 1 to 128 characters")
    } else if name == "." || name == ".." {
        Some("a name cannot be . or ..")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        Some("a name holds only A-Z a-z 0-9 _ . -")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StorageError::InvalidPath {
            path: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_leave_the_root_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let data = DataDir::new(root.path()).unwrap();
        for bad in [
            "..",
            ".",
            "",
            "a/b",
            "/etc",
            "a\\b",
            "ok\0",
            "é",
            &"x".repeat(129),
        ] {
            let err = data.log_dir(&["streams", bad]).unwrap_err();
            assert!(
                matches!(err, StorageError::InvalidPath { .. }),
                "{bad:?}: {err}"
            );
        }
        assert!(data.log_dir(&[]).is_err());
        assert_eq!(
            data.log_dir(&["streams", "orders.v2", "shardId-000000000001"])
                .unwrap(),
            root.path().join("streams/orders.v2/shardId-000000000001")
        );
        // Nothing was created for the refused names.
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
