//! Push subscriptions (the enhanced fan-out shape): records are delivered as they become
//! visible, to any number of subscribers, each with its own position.

use crate::engine::Engine;
use crate::error::ReadError;
use crate::iterator::{IteratorStart, ShardIterator};
use crate::limits::{GET_RECORDS_BYTES_MAX, GET_RECORDS_MAX};
use crate::read::Records;
use crate::seqnum::SequenceNumber;
use crate::stream::Stream;
use event_listener::Listener;
use std::time::{Duration, Instant};

/// A subscription to one shard. Each event carries at least one record, or the end of the
/// shard. It holds a clone of the [`Engine`], so the engine stays open while it exists.
#[derive(Debug)]
pub struct Subscription {
    engine: Engine,
    iterator: ShardIterator,
    finished: bool,
    spin_before_park: Duration,
    event_bytes_max: u64,
}

/// One delivery.
#[derive(Debug)]
pub struct SubscriptionEvent {
    /// The records (zero-copy), with lag and end-of-shard information.
    pub records: Records,
    /// Where the next event starts: subscribe `AtSequenceNumber` of it to resume without a
    /// gap or a duplicate (also after a caught-up event, when nothing has that number yet).
    pub continuation_sequence_number: SequenceNumber,
}

impl Stream {
    /// Subscribes to shard `shard_id` of this stream from `start`.
    pub fn subscribe(
        &self,
        shard_id: &str,
        start: IteratorStart,
    ) -> Result<Subscription, ReadError> {
        Ok(Subscription {
            engine: self.engine.clone(),
            iterator: self.shard_iterator(shard_id, start)?,
            finished: false,
            spin_before_park: Duration::ZERO,
            event_bytes_max: GET_RECORDS_BYTES_MAX,
        })
    }
}

impl Subscription {
    /// Waits for the next records (on any runtime). `None` after the end of a closed shard
    /// was delivered.
    pub async fn next(&mut self) -> Option<Result<SubscriptionEvent, ReadError>> {
        loop {
            // Records already there need no listener (registering one costs an allocation).
            match self.poll_once() {
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) if self.finished => return None,
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            let shard = match self.iterator.shard() {
                Ok(shard) => shard,
                Err(e) => return Some(Err(e)),
            };
            // Listen, then look again, so that no record published in between is missed.
            let changed = shard.reader.listen();
            match self.poll_once() {
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) if self.finished => return None,
                Ok(None) => changed.await,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Caps the record bytes of one event (10 MiB, GetRecords' bound, by default; at least
    /// one record is always delivered). Smaller events hold less memory while a slow
    /// subscriber catches up, at the cost of more of them.
    pub fn set_event_bytes_max(&mut self, bytes: u64) {
        self.event_bytes_max = bytes.clamp(1, GET_RECORDS_BYTES_MAX);
    }

    /// Makes [`Subscription::next_blocking`] poll for up to `spin` before parking the thread:
    /// a parked thread needs tens of µs to run again once woken (more on a VM); a polling one
    /// sees a record as soon as it is visible, at the cost of a busy CPU while it waits.
    pub fn set_spin_before_park(&mut self, spin: Duration) {
        self.spin_before_park = spin;
    }

    /// Blocking form of [`Subscription::next`]: waits at most `timeout`; `Ok(None)` when
    /// nothing arrived in time.
    pub fn next_blocking(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<SubscriptionEvent>, ReadError> {
        // Timeouts beyond a century mean "wait for ever"; `Instant` cannot hold more.
        let timeout = timeout.min(Duration::from_secs(100 * 365 * 24 * 3600));
        let started = Instant::now();
        let deadline = started + timeout;
        let spin_until = started + self.spin_before_park.min(timeout);
        while Instant::now() < spin_until {
            if let Some(event) = self.poll_once()? {
                return Ok(Some(event));
            }
            if self.finished {
                return Ok(None);
            }
            std::hint::spin_loop();
        }
        loop {
            if let Some(event) = self.poll_once()? {
                return Ok(Some(event));
            }
            if self.finished {
                return Ok(None);
            }
            // Listen, then look again, so that no record published in between is missed.
            let changed = self.iterator.shard()?.reader.listen();
            if let Some(event) = self.poll_once()? {
                return Ok(Some(event));
            }
            if self.finished || changed.wait_deadline(deadline).is_none() {
                return Ok(None);
            }
        }
    }

    /// The position the next event starts at.
    pub fn position(&self) -> SequenceNumber {
        self.iterator.position()
    }

    fn poll_once(&mut self) -> Result<Option<SubscriptionEvent>, ReadError> {
        if self.finished {
            return Ok(None);
        }
        let shard = self.iterator.shard()?;
        let now_ms = self.engine.shared().config.clock.now_ms();
        let records = loop {
            let records = self.engine.read_shard(
                &self.iterator,
                &shard,
                GET_RECORDS_MAX,
                self.event_bytes_max,
                now_ms,
            )?;
            let next = records.next_position().log_seq();
            let moved = next != self.iterator.position;
            self.iterator.position = next;
            // An empty read that moved the position skipped a gap recovery left: records
            // after it may be readable already, and no write will come to wake us for them.
            if !(records.is_empty() && moved) || records.end_of_shard {
                break records;
            }
        };
        self.finished = records.end_of_shard;
        if records.is_empty() && !records.end_of_shard {
            return Ok(None);
        }
        shard
            .metrics
            .outgoing_records
            .increment(records.len() as u64);
        shard.metrics.outgoing_bytes.increment(records.bytes());
        shard
            .metrics
            .iterator_age_ms
            .set(records.millis_behind_latest as f64);
        Ok(Some(SubscriptionEvent {
            continuation_sequence_number: records.next_position(),
            records,
        }))
    }
}
