//! Group commit: durable appends meet at the sync gate, and one fdatasync covers every batch
//! visible when it started while appends continue. Through a filesystem sync a waiter holds
//! the gate only to read its sync point and ask, and waits outside it. Nothing is marked clean
//! until the syncs succeed, so a cancelled or failed sync loses nothing.

use super::ShardLog;
use crate::error::{Result, StorageError};
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
    /// A single-node log refuses numbers past those reserved (`SequenceBeyondEnd`); in a
    /// replicated log they may have been removed by a truncation, and the wait ends once
    /// what is left is durable.
    pub async fn make_durable(&self, end_seq: u64) -> Result<()> {
        self.wait_durable(end_seq).await
    }

    /// Waits until a sync has covered every record below `end_seq`, running one if needed.
    /// Records still being written are waited for first (a sync covers completed writes
    /// only). Past the numbers reserved so far a single-node log refuses; in a replicated log
    /// they may be numbers a truncation removed (an append running across one may return
    /// `Ok` for an entry it removed: `truncate_from`), so the wait ends once what is left is
    /// durable.
    pub(super) async fn wait_durable(&self, end_seq: u64) -> Result<()> {
        if self.durable_seq.get() >= end_seq {
            return Ok(());
        }
        let writing = {
            let w = self.writer.borrow();
            if end_seq > w.next_seq && !self.config.replicated {
                return Err(StorageError::SequenceBeyondEnd {
                    seq: end_seq,
                    next_seq: w.next_seq,
                });
            }
            // The last batch in flight holding a record below `end_seq`: batches are written
            // in order.
            let mut newest_first = w.in_flight.iter().rev();
            let holding = newest_first.find(|e| e.loc.header.base_seq < end_seq);
            holding.map(|e| e.ordinal)
        };
        if let Some(ordinal) = writing {
            self.wait_written(ordinal).await?;
        }
        self.sync_until(|| {
            let durable = self.durable_seq.get();
            durable >= end_seq
                || (end_seq > self.writer.borrow().next_seq && durable >= self.written_seq.get())
        })
        .await
    }

    /// Waits until a sync has covered the batches up to `ordinal`, running one if needed.
    pub(super) async fn wait_batches_durable(&self, ordinal: u64) -> Result<()> {
        self.sync_until(|| self.durable_batches.get() >= ordinal)
            .await
    }

    async fn sync_until(&self, covered: impl Fn() -> bool) -> Result<()> {
        if let Some(filesystem) = &self.config.filesystem_sync {
            return self.filesystem_sync_until(filesystem, covered).await;
        }
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
            let (point, files) = self.sync_point();
            for file in &files {
                if let Err(e) = file.sync_data().await {
                    return Err(self.sync_failed(&self.shared.dir, e));
                }
            }
            // A failure reported to another caller (say, sealing) latched the log: this sync's
            // success proves nothing about data the device already lost.
            self.check_writable()?;
            self.synced(&point, true);
        }
    }

    /// `sync_until` through the engine's filesystem sync. The gate is held only while asking
    /// (so no rewrite of the log's end runs between reading what is written and asking),
    /// not across the sync: each durable append asks as soon as its write completed and
    /// shares the next sync with every log of the engine, instead of queueing behind this
    /// log's earlier waiter and missing that sync.
    async fn filesystem_sync_until(
        &self,
        filesystem: &FilesystemSync,
        covered: impl Fn() -> bool,
    ) -> Result<()> {
        loop {
            if covered() {
                return Ok(());
            }
            self.check_writable()?;
            let (point, files, ticket) = {
                let _gate = self.sync_gate.lock().await;
                if covered() {
                    return Ok(());
                }
                self.check_writable()?;
                let (point, files) = self.sync_point();
                let ticket = filesystem
                    .request()
                    .map_err(|e| self.sync_failed(&self.shared.dir, e))?;
                (point, files, ticket)
            };
            let files = files.iter().map(|file| &**file);
            self.filesystem_wait(filesystem, ticket, files, &self.shared.dir)
                .await?;
            self.check_writable()?;
            // A rewrite of the log's end since the point was read may have removed numbers it
            // counted: its batches (ordinals are never reused), files and epoch still count.
            let rewritten = self.writer.borrow().rewrites != point.rewrites;
            self.synced(&point, !rewritten);
        }
    }

    /// What a sync starting now covers: every written batch's write has completed into one
    /// of the returned files. Nothing is marked clean until the sync succeeds
    /// ([`ShardLog::synced`]), so a cancelled or failed sync loses nothing.
    fn sync_point(&self) -> (SyncPoint, Vec<Rc<I::File>>) {
        let w = self.writer.borrow();
        let mut files: Vec<Rc<I::File>> = w.unsynced.clone();
        if w.dirty_epoch > w.clean_epoch {
            files.extend(w.active.as_ref().map(|a| a.file.clone()));
        }
        let point = SyncPoint {
            seq: self.written_seq.get(),
            batches: self.written_batches.get(),
            unsynced_upto: w.unsynced_drained + w.unsynced.len() as u64,
            dirty_epoch: w.dirty_epoch,
            rewrites: w.rewrites,
        };
        (point, files)
    }

    /// Marks what `point` covered durable once its sync succeeded (its sequence numbers only
    /// with `seq`). Syncs may finish out of order (filesystem syncs are waited for
    /// concurrently): everything only moves forward.
    fn synced(&self, point: &SyncPoint, seq: bool) {
        {
            let mut w = self.writer.borrow_mut();
            let covered = point.unsynced_upto.saturating_sub(w.unsynced_drained);
            let covered = covered.min(w.unsynced.len() as u64);
            w.unsynced.drain(..covered as usize);
            w.unsynced_drained += covered;
            w.clean_epoch = w.clean_epoch.max(point.dirty_epoch);
        }
        if seq {
            self.durable_seq.set(self.durable_seq.get().max(point.seq));
        }
        self.durable_batches
            .set(self.durable_batches.get().max(point.batches));
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
        let ticket = filesystem
            .request()
            .map_err(|e| self.sync_failed(path, e))?;
        self.filesystem_wait(filesystem, ticket, files, path).await
    }

    /// Waits for filesystem sync `ticket`, asked for after every write into `files` completed;
    /// a failure latches the log (see [`ShardLog::filesystem_sync`]).
    async fn filesystem_wait<'f>(
        &self,
        filesystem: &FilesystemSync,
        ticket: u64,
        files: impl IntoIterator<Item = &'f I::File>,
        path: &Path,
    ) -> Result<()>
    where
        I::File: 'f,
    {
        match filesystem.wait(ticket).await {
            Ok(()) => match files.into_iter().find_map(|file| file.writeback_error()) {
                Some(e) => Err(self.sync_failed(path, e)),
                None => Ok(()),
            },
            Err(e) => Err(self.sync_failed(path, e)),
        }
    }
}

/// What a sync covers, read just before it is asked for.
struct SyncPoint {
    /// `written_seq` and `written_batches`.
    seq: u64,
    batches: u64,
    /// Sealed or retired files pushed to `unsynced` so far (drained ones included).
    unsynced_upto: u64,
    dirty_epoch: u64,
    /// Rewrites of the log's end started so far.
    rewrites: u64,
}
