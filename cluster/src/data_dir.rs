//! A node's data directory as the cluster knows it. The directory names itself (a random
//! name in a file made at its first start) and etcd records, per node id, the directory that
//! node first ran on. A node's Raft id is its id's hash, so a node back with its id but
//! without its logs (a disk replaced or wiped) would take part in its shards' elections as
//! its old self, without the entries it acknowledged and the votes it gave, and could help
//! elect a replica that lacks committed records. So a node id runs on its directory only: a
//! new directory needs a new node id, which is a new member to every group
//! (docs/design/cluster.md, "A node's data directory").

use crate::backend::Backend;
use crate::error::MetaError;
use crate::meta::ClusterMeta;
use crate::model::NodeId;
use crate::reconcile;
use sluice_core::Engine;
use std::io::Read;
use std::path::Path;

/// The file in the engine's data directory that names the directory.
pub const IDENTITY_FILE: &str = "cluster-node.identity";

/// Checks that `node` may run on `engine`'s data directory, recording the directory as the
/// node's when none is recorded yet.
pub(crate) async fn check<B: Backend>(
    meta: &ClusterMeta<B>,
    node: &NodeId,
    engine: &Engine,
) -> Result<(), MetaError> {
    let dir = engine.data_dir();
    let identity = identity(dir)?;
    let changed = || MetaError::DataDirectoryChanged {
        node: node.to_string(),
        dir: dir.display().to_string(),
    };
    if let Some(recorded) = meta.identity_of(node).await? {
        return if recorded == identity {
            Ok(())
        } else {
            Err(changed())
        };
    }
    // Nothing recorded: a node new to the cluster, or one that ran before directories were
    // recorded (an upgrade, etcd restored from before), which comes with its replicas.
    let map = meta.snapshot().await?;
    if !reconcile::desired(node, &map).is_empty() {
        let held = engine.replicas_on_disk().map_err(|e| {
            MetaError::Unavailable(format!("the replicas in {}: {e}", dir.display()))
        })?;
        if held.is_empty() {
            return Err(changed());
        }
    }
    // Two runs at once: one directory is recorded, the other run is refused.
    if meta.record_identity(node, &identity).await?
        || meta.identity_of(node).await?.as_deref() == Some(identity.as_str())
    {
        return Ok(());
    }
    Err(changed())
}

/// The name `dir` goes by: 128 random bits, written and synced at its first start.
fn identity(dir: &Path) -> Result<String, MetaError> {
    let file = dir.join(IDENTITY_FILE);
    let failed = |e: std::io::Error| {
        MetaError::Unavailable(format!(
            "the data directory's name in {}: {e}",
            file.display()
        ))
    };
    match std::fs::read_to_string(&file) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {
            let empty = std::io::Error::other("the file is empty (written by no Sluice)");
            return Err(failed(empty));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(e)),
        Err(_) => {}
    }
    let mut random = [0u8; 16];
    (std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut random)))
        .map_err(failed)?;
    let identity: String = random.iter().map(|b| format!("{b:02x}")).collect();
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
