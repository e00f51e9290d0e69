//! Concurrent writes to a group coalesced into one entry on the node that leads it.
//!
//! openraft 0.9 appends each client write as an entry of its own and waits for its flush
//! before it does anything else, so writes that arrive together would cost one fsync each on
//! the leader, one after the other. Here each group's writes go through one task that keeps
//! at most [`IN_FLIGHT`] entries on their way through Raft; writes that arrive meanwhile wait
//! and go together, as one entry, once one of those is answered (docs/design/cluster.md,
//! "One entry for writes that arrive together").
//!
//! Each caller gets its own records' numbers (an entry numbers its records in order, so a
//! caller's are a run of it). A coalesced entry refused by the log (a record one caller made
//! too large, say) is written again one caller at a time, so the refusal reaches only its
//! writer; a refusal that is the shard's (closed by a reshard) and Raft's own answers (not
//! the leader, failed) are the same for every caller.

use super::client::Answer;
use super::entry::CLOSED;
use super::{NewRecord, ShardRaft, ShardWrite, ShardWritten};
use openraft::Raft;
use openraft::error::{ClientWriteError, RaftError};
use sluice_storage::format::{BATCH_HEADER_MAX_LEN, RECORD_HEADER_LEN};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Why a write is refused while the group's queue is full (retryable).
pub(super) const BUSY: &str = "the shard's group has more writes waiting than it takes; retry";

/// Entries of coalesced writes a group has on their way through Raft at once: one being
/// flushed on the leader while the one before is being replicated. (1, 2, 4 and 8 measured
/// with the cluster bench on 2 cores: 1 and 2 within its noise of each other, 17 to 24
/// MB/s; 4 and 8 a little lower.)
const IN_FLIGHT: usize = 2;
/// One entry holds at most this many records (a PutRecords' most)...
const RECORDS_MAX: usize = sluice_core::limits::PUT_BATCH_RECORDS_MAX;
/// ...and this many bytes as the log encodes them (a write larger than this goes alone): well
/// under what a log of small segments takes in one batch (a shared entry the log refused as
/// too large would be written again one caller at a time).
const BYTES_MAX: usize = 256 << 10;
/// Bytes of records waiting in a group's queue at most: past it a write is refused at once
/// (retryable), rather than held while the leader cannot keep up.
const WAITING_BYTES_MAX: usize = 64 << 20;

/// A caller's write waiting for its entry.
struct Waiting {
    records: Vec<NewRecord>,
    reply: oneshot::Sender<Answer<ShardWritten>>,
    /// Its room in the queue, given back as it leaves the queue.
    _room: tokio::sync::OwnedSemaphorePermit,
}

/// The way into a group's writes (cheap to clone; the task ends when every clone is gone).
#[derive(Clone)]
pub struct WriteQueue {
    sender: mpsc::UnboundedSender<Waiting>,
    raft: Raft<ShardRaft>,
    /// Room left in the queue, in bytes (`WAITING_BYTES_MAX` in all).
    room: Arc<Semaphore>,
}

impl WriteQueue {
    /// Starts the task that writes through `raft` (on the current tokio runtime).
    pub(super) fn start(raft: Raft<ShardRaft>) -> WriteQueue {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(raft.clone(), receiver));
        let room = Arc::new(Semaphore::new(WAITING_BYTES_MAX));
        WriteQueue { sender, raft, room }
    }

    /// Writes `records` (with whatever other writes wait with them) and answers where they
    /// landed.
    pub(super) async fn write(&self, records: Vec<NewRecord>) -> Answer<ShardWritten> {
        let leads = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            metrics.current_leader == Some(metrics.id)
        };
        if records.is_empty() || !leads {
            // Refused as an empty write, which it would not be among others; not the leader
            // (as far as this node knows): told so at once, with the leader to ask.
            return write(&self.raft, records).await;
        }
        let bytes =
            u32::try_from(encoded_size(&records).min(WAITING_BYTES_MAX)).unwrap_or(u32::MAX);
        let Ok(room) = self.room.clone().try_acquire_many_owned(bytes) else {
            return Answer::Failed(BUSY.into());
        };
        let (reply, answer) = oneshot::channel();
        let waiting = Waiting {
            records,
            reply,
            _room: room,
        };
        if self.sender.send(waiting).is_err() {
            return Answer::Failed("the group is stopping".into());
        }
        answer
            .await
            .unwrap_or_else(|_| Answer::Failed("the group is stopping".into()))
    }
}

async fn run(raft: Raft<ShardRaft>, mut receiver: mpsc::UnboundedReceiver<Waiting>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut held_over = None;
    loop {
        // A slot first: what arrives while every slot is taken waits, to go together.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match held_over.take() {
            Some(first) => first,
            None => match receiver.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        // A caller that stopped waiting (its time ran out) is not written.
        if first.reply.is_closed() {
            drop(slot);
            continue;
        }
        let mut batch = vec![first];
        // The entry's bytes: its header once, then each write's records.
        let first_bytes = BATCH_HEADER_MAX_LEN + encoded_size(&batch[0].records);
        let (mut records, mut bytes) = (batch[0].records.len(), first_bytes);
        while let Ok(next) = receiver.try_recv() {
            if next.reply.is_closed() {
                continue;
            }
            let (more, more_bytes) = (next.records.len(), encoded_size(&next.records));
            if records + more > RECORDS_MAX || bytes + more_bytes > BYTES_MAX {
                held_over = Some(next);
                break;
            }
            (records, bytes) = (records + more, bytes + more_bytes);
            batch.push(next);
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            write_batch(&raft, batch).await;
            drop(slot);
        });
    }
}

/// Bytes `records` take in an entry as the log encodes them (each record's header and
/// padding too; the entry's own header apart).
fn encoded_size(records: &[NewRecord]) -> usize {
    let each = RECORD_HEADER_LEN + 7;
    (records.iter())
        .map(|r| r.partition_key.len() + r.data.len() + each)
        .sum()
}

/// Writes one entry of `batch`'s records and answers each caller its part; a refusal that is
/// not the shard's is written again one caller at a time.
async fn write_batch(raft: &Raft<ShardRaft>, batch: Vec<Waiting>) {
    if let [_] = &batch[..] {
        let one = batch.into_iter().next().expect("one");
        let answer = write(raft, one.records).await;
        let _ = one.reply.send(answer);
        return;
    }
    let counts: Vec<u32> = batch.iter().map(|w| w.records.len() as u32).collect();
    let (records, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|w| (w.records, w.reply)).unzip();
    let merged = records.iter().flatten().cloned().collect();
    match write(raft, merged).await {
        Answer::Done(written) if written.refused.as_deref().is_some_and(|r| r != CLOSED) => {
            // One caller's records made the log refuse the entry: each alone, so the refusal
            // is that caller's only (a refused entry wrote nothing). All at once: callers
            // sharing an entry need no order among themselves.
            let alone = records.into_iter().zip(replies).map(|(records, reply)| {
                let raft = raft.clone();
                tokio::spawn(async move {
                    let _ = reply.send(write(&raft, records).await);
                })
            });
            for written in alone.collect::<Vec<_>>() {
                let _ = written.await;
            }
        }
        Answer::Done(written) if written.refused.is_none() => {
            // Each caller's records are a run of the entry's, in the batch's order.
            let mut base_seq = written.base_seq;
            for (record_count, reply) in counts.into_iter().zip(replies) {
                let part = ShardWritten {
                    base_seq,
                    record_count,
                    ..written.clone()
                };
                base_seq += u64::from(record_count);
                let _ = reply.send(Answer::Done(part));
            }
        }
        other => {
            for reply in replies {
                let _ = reply.send(other.clone());
            }
        }
    }
}

/// One entry of `records` through `raft`, if it leads.
async fn write(raft: &Raft<ShardRaft>, records: Vec<NewRecord>) -> Answer<ShardWritten> {
    match raft.client_write(ShardWrite::New(records)).await {
        Ok(response) => Answer::Done(response.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
            super::client::not_leader(forward)
        }
        Err(e) => Answer::Failed(e.to_string()),
    }
}
