//! Group commit: durable appends meet at the sync gate, and one fdatasync covers every batch
//! visible when it started while appends continue. Nothing is marked clean until the syncs
//! succeed, so a cancelled or failed sync loses nothing.

use super::ShardLog;
use crate::error::Result;
use crate::fs_sync::FilesystemSync;
use crate::io::{SegmentFile, SegmentIo};
use std::path::Path;
use std::rc::Rc;

impl<I: SegmentIo> ShardLog<I> {
    /// Makes everything written so far (visible, in a single-node log) durable.
    pub async fn sync(&self) -> Result<()> {
        self.wait_batches_durable(self.written_batches.get()).await
    }

    /// Closes the log: makes everything visible so far durable and says whether that worked.
    /// Dropping a log does not sync: what was acknowledged as visible only is then on disk
    /// only once the kernel writes it back (a crash of the process loses nothing, a power
    /// loss may). Readers keep working on the records they can see; the files stay mapped
    /// while any batch read from them is alive.
    pub async fn close(self) -> Result<()> {
        self.sync().await
    }

    /// Returns once every record below `end_seq` is durable (sharing syncs with concurrent
    /// callers, as durable appends do). `append(.., Visible)` followed by this is
    /// `append(.., Durable)` split in two, for callers that act between the two points.
    pub async fn make_durable(&self, end_seq: u64) -> Result<()> {
        self.wait_durable(end_seq).await
    }

    /// Waits until a sync has covered every record below `end_seq`, running one if needed.
    pub(super) async fn wait_durable(&self, end_seq: u64) -> Result<()> {
        self.sync_until(|| self.durable_seq.get() >= end_seq).await
    }

    /// Waits until a sync has covered the batches up to `ordinal`, running one if needed.
    pub(super) async fn wait_batches_durable(&self, ordinal: u64) -> Result<()> {
        self.sync_until(|| self.durable_batches.get() >= ordinal)
            .await
    }

    async fn sync_until(&self, covered: impl Fn() -> bool) -> Result<()> {
        loop {
            if covered() {
                return Ok(());
            }
            self.check_writable()?;
            let _gate = self.sync_gate.lock().await;
            if covered() {
                return Ok(());
            }
            self.check_writable()?;
            // Every written batch's write has completed into one of these files. Nothing is
            // marked clean until the syncs succeed, so a cancelled or failed sync loses nothing.
            let (target, files, sealed_files, epoch) = {
                let w = self.writer.borrow();
                let mut files: Vec<Rc<I::File>> = w.unsynced.clone();
                let sealed_files = files.len();
                if w.dirty_epoch > w.clean_epoch {
                    files.extend(w.active.as_ref().map(|a| a.file.clone()));
                }
                let target = (self.written_seq.get(), self.written_batches.get());
                (target, files, sealed_files, w.dirty_epoch)
            };
            self.sync_files(&files).await?;
            // A failure reported to another caller (say, sealing) latched the log: this sync's
            // success proves nothing about data the device already lost.
            self.check_writable()?;
            {
                // Only this gate's holder removes from `unsynced`; others only append.
                let mut w = self.writer.borrow_mut();
                w.unsynced.drain(..sealed_files);
                w.clean_epoch = w.clean_epoch.max(epoch);
            }
            self.durable_seq.set(self.durable_seq.get().max(target.0));
            self.durable_batches
                .set(self.durable_batches.get().max(target.1));
        }
    }

    /// Makes the writes completed into `files` durable: through the engine's filesystem sync
    /// when it has one, otherwise by an fdatasync of each file.
    async fn sync_files(&self, files: &[Rc<I::File>]) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        if let Some(filesystem) = &self.config.filesystem_sync {
            let files = files.iter().map(|file| &**file);
            return self
                .filesystem_sync(filesystem, files, &self.shared.dir)
                .await;
        }
        for file in files {
            if let Err(e) = file.sync_data().await {
                return Err(self.sync_failed(&self.shared.dir, e));
            }
        }
        Ok(())
    }

    /// An ordering sync of one file (a header, a seal, a cut, the Raft state): through the
    /// filesystem sync too when the log has one, so a failed syncfs, which no file hears of,
    /// is never outrun by this file's own fdatasync succeeding over a page it lost.
    pub(super) async fn sync_file(&self, file: &I::File, path: &Path) -> Result<()> {
        match &self.config.filesystem_sync {
            Some(filesystem) => self.filesystem_sync(filesystem, [file], path).await,
            None => file
                .sync_data()
                .await
                .map_err(|e| self.sync_failed(path, e)),
        }
    }

    /// Waits for a filesystem sync covering the completed writes into `files`. Every write
    /// into them has completed, so a sync that starts after this request covers them. A
    /// failed one may have lost any page it wrote, and an error of the filesystem's own
    /// commit (journal, device cache) reaches no file's descriptor: an fdatasync afterwards
    /// could succeed over lost data. So this log, as every log asking after the failure,
    /// latches; its marker makes the next open write its data again.
    async fn filesystem_sync<'f>(
        &self,
        filesystem: &FilesystemSync,
        files: impl IntoIterator<Item = &'f I::File>,
        path: &Path,
    ) -> Result<()>
    where
        I::File: 'f,
    {
        match filesystem.sync().await {
            Ok(()) => match files.into_iter().find_map(|file| file.writeback_error()) {
                Some(e) => Err(self.sync_failed(path, e)),
                None => Ok(()),
            },
            Err(e) => Err(self.sync_failed(path, e)),
        }
    }
}
