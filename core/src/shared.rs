//! What every thread of the engine shares: the configuration, the catalog, the queues to the
//! cores and the token key. The engine, the control thread and the cores hold it; none of
//! them is reachable from it.

use crate::catalog::Catalog;
use crate::config::EngineConfig;
use crate::runtime::CoreMessage;
use crate::runtime::queue::QueueSender;
use crate::token::TokenKey;
use sluice_storage::{DataDir, FilesystemSync};

/// What every thread of the engine shares.
pub(crate) struct EngineShared {
    pub(crate) config: EngineConfig,
    pub(crate) data_dir: DataDir,
    pub(crate) catalog: Catalog,
    pub(crate) cores: Vec<QueueSender<CoreMessage>>,
    pub(crate) token_key: TokenKey,
    /// Largest record (key + data) a segment of the configured size holds, capped at 10 MiB.
    pub(crate) record_size_bytes_supported: u64,
    /// Largest encoded batch a shard log takes (it depends on the segment size only); puts
    /// encode their batches on the caller's thread to this size.
    pub(crate) batch_bytes_max: u64,
    /// The filesystem syncer every shard log's durable waits go through, with
    /// `SyncScope::Filesystem`.
    pub(crate) filesystem_sync: Option<FilesystemSync>,
}
