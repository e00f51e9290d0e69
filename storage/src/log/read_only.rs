//! A log whose writer has let go: what a closed shard keeps for as long as its records are
//! readable. Readers still see every segment through their mappings; the log holds no file
//! descriptor, no directory lock and no task, so closed shards cost memory mappings only.

use super::ShardLog;
use crate::config::LogConfig;
use crate::error::Result;
use crate::io::SegmentIo;
use crate::reader::LogReader;
use crate::shared::Shared;
use crate::sync::Arc;

/// The read side and the retention setting of a log that takes no more appends; made by
/// [`ShardLog::into_read_only`]. `Send + Sync`.
#[derive(Debug)]
pub struct ReadOnlyLog {
    shared: Arc<Shared>,
    config: LogConfig,
    /// Why the final sync failed, if it did: records acknowledged only as visible may not
    /// be on disk.
    sync_error: Option<String>,
}

impl ReadOnlyLog {
    /// A read handle for any thread.
    pub fn reader(&self) -> LogReader {
        LogReader::new(self.shared.clone())
    }

    /// The sequence number after the last record: the log's end, for good.
    pub fn next_seq(&self) -> u64 {
        self.shared.next_seq()
    }

    /// Why the log latched (its last sync failed, or an earlier write did), if it did.
    pub fn latch_cause(&self) -> Option<String> {
        self.shared.latch_cause()
    }

    /// Why the sync that made the log read-only failed, if it did: then records acknowledged
    /// only as visible may not be on the device (durable ones are). A closing engine reports
    /// it, as it reports a failed sync of a log with a writer.
    pub fn sync_error(&self) -> Option<&str> {
        self.sync_error.as_deref()
    }

    /// Changes the retention period, as [`ShardLog::set_retention_ms`] does.
    pub fn set_retention_ms(&self, retention_ms: u64) -> Result<()> {
        set_retention_ms(&self.shared, &self.config, retention_ms)
    }
}

impl<I: SegmentIo> ShardLog<I> {
    /// Ends the writer's life: makes every visible record durable, then closes every file
    /// and the directory lock. Readers, old and new, keep reading what is there; expired
    /// records are hidden by time as before, but no segment is retired or reused any more
    /// (the files stay as they are until their owner removes the directory).
    ///
    /// A sync that fails latches the log as any failed sync does, and
    /// [`ReadOnlyLog::sync_error`] says so; records acknowledged durable are durable either
    /// way.
    pub async fn into_read_only(self) -> ReadOnlyLog {
        let sync_error = self.sync().await.err().map(|e| e.to_string());
        ReadOnlyLog {
            shared: self.shared.clone(),
            config: self.config.clone(),
            sync_error,
        }
        // `self` drops here: its files close, and readers waiting for more records wake.
    }
}

/// Validates and applies a new retention period (shared by both kinds of log).
pub(super) fn set_retention_ms(
    shared: &Shared,
    config: &LogConfig,
    retention_ms: u64,
) -> Result<()> {
    LogConfig {
        retention_ms,
        ..config.clone()
    }
    .validate()?;
    shared.set_retention_ms(retention_ms);
    Ok(())
}
