//! A node's data directory as the cluster knows it. The directory names itself (a file made
//! at its first start) and etcd records, per node id, the directory that node last ran on.
//! A node's Raft id is its id's hash, so a node that comes back with its id but without its
//! logs (a disk replaced or wiped) would vote as its old self without the entries it
//! acknowledged, and could help elect a replica that lacks them. It starts only where that
//! cannot happen: on the directory recorded, or on a new one while the map places none of its
//! replicas (docs/design/cluster.md, "A node's data directory").

use crate::backend::Backend;
use crate::error::MetaError;
use crate::meta::ClusterMeta;
use crate::model::NodeId;
use crate::reconcile;
use std::path::Path;

/// The file in the engine's data directory that names the directory.
pub const IDENTITY_FILE: &str = "cluster-node.identity";

/// Checks that `node` may run on `dir` (see the module's note), recording `dir` as the node's
/// when it is new to it.
pub(crate) async fn check<B: Backend>(
    meta: &ClusterMeta<B>,
    node: &NodeId,
    dir: &Path,
) -> Result<(), MetaError> {
    let identity = identity(dir)?;
    // Another run of the node recording its own in between makes this one look again.
    for _ in 0..3 {
        let replaces = match meta.identity_of(node).await? {
            None => None,
            Some((recorded, _)) if recorded == identity => return Ok(()),
            Some((_, revision)) => {
                if !reconcile::desired(node, &meta.snapshot().await?).is_empty() {
                    return Err(MetaError::DataDirectoryChanged(node.to_string()));
                }
                eprintln!(
                    "sluice cluster: node {node} starts on a new data directory; the map places \
                     none of its replicas, so it joins as a new member"
                );
                Some(revision)
            }
        };
        if meta.record_identity(node, &identity, replaces).await? {
            return Ok(());
        }
    }
    Err(MetaError::Unavailable(format!(
        "recording node {node}'s data directory: another run of it kept recording its own"
    )))
}

/// The name `dir` goes by, made and synced at its first start. It needs to be unique, not
/// secret: a hash of the time in nanoseconds, the process and the path.
fn identity(dir: &Path) -> Result<String, MetaError> {
    let file = dir.join(IDENTITY_FILE);
    let failed = |e: std::io::Error| {
        MetaError::Unavailable(format!(
            "the data directory's name in {}: {e}",
            file.display()
        ))
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => return Ok(text.trim().to_owned()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(e)),
        Err(_) => {}
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{nanos} {} {}", std::process::id(), dir.display());
    let identity = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(seed.as_bytes()));
    write_synced(&file, identity.as_bytes()).map_err(failed)?;
    Ok(identity)
}

/// Writes `file` whole or not at all: written beside, synced, renamed over, the directory
/// synced, so a power cut leaves the old content or the new, never a part, and never takes
/// the new one back once this returns.
pub(crate) fn write_synced(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut beside = file.as_os_str().to_owned();
    beside.push(".new");
    let beside = std::path::PathBuf::from(beside);
    let mut new = std::fs::File::create(&beside)?;
    std::io::Write::write_all(&mut new, bytes)?;
    new.sync_all()?;
    std::fs::rename(&beside, file)?;
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    std::fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
}
