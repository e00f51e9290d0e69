//! The delivery streams that exist, in one JSON file replaced whole on every change.

use crate::error::FirehoseError;
use crate::spec::DeliveryStreamSpec;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The catalogue's file name in the Firehose directory.
pub(crate) const FILE: &str = "delivery-streams.json";

/// A delivery stream as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) spec: DeliveryStreamSpec,
    pub(crate) created_ms: u64,
    /// 1 at creation; one more per destination update.
    pub(crate) version: u64,
    /// A random id of this life of the delivery stream (a name may be used again).
    #[serde(default)]
    pub(crate) incarnation: String,
    /// Its tags (Firehose's TagDeliveryStream).
    #[serde(default)]
    pub(crate) tags: std::collections::BTreeMap<String, String>,
    /// The KMS key DirectPut records are sealed under, while encryption is on.
    #[serde(default)]
    pub(crate) encryption_key: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Catalogue {
    format: u32,
    streams: Vec<Stored>,
}

/// The stored delivery streams; none when the file does not exist. A file that cannot be
/// read is an error, never an empty catalogue (that would forget every stream).
pub(crate) fn load(dir: &Path) -> Result<Vec<Stored>, FirehoseError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(FirehoseError::internal(
                &format!("read {}", path.display()),
                e,
            ));
        }
    };
    let catalogue: Catalogue = serde_json::from_slice(&bytes)
        .map_err(|e| FirehoseError::internal(&format!("parse {}", path.display()), e))?;
    if catalogue.format != 1 {
        return Err(FirehoseError::Internal(format!(
            "{} has format {}; this build reads format 1",
            path.display(),
            catalogue.format
        )));
    }
    Ok(catalogue.streams)
}

/// Replaces the catalogue with `streams`.
pub(crate) fn save(dir: &Path, streams: Vec<Stored>) -> Result<(), FirehoseError> {
    let catalogue = Catalogue { format: 1, streams };
    let bytes = serde_json::to_vec_pretty(&catalogue)
        .map_err(|e| FirehoseError::internal("encode the catalogue", e))?;
    crate::files::write_atomically(&dir.join(FILE), &bytes)
        .map_err(|e| FirehoseError::internal("write the catalogue", e))
}
