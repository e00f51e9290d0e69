//! The agent at work (docs/design/agent.md, "Sending"): each flow's files tailed, their
//! records converted, buffered and put, and the offsets read checkpointed once every record
//! before them is acknowledged. Puts are retried with back-off until they succeed, as the
//! Java agent retries them; a stop leaves what was not acknowledged to be read again.

use crate::AgentError;
use crate::checkpoint::Checkpoints;
use crate::config::{AgentConfig, Destination, Flow, PartitionKeyOption};
use crate::process::process;
use crate::send::{Entry, Sender};
use crate::tail::{Record, TailOptions, Tailer};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A flow's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Records read from its files.
    pub read: u64,
    /// Records acknowledged by the destination.
    pub sent: u64,
    /// Records a processing option dropped.
    pub dropped: u64,
    /// Records cut to the destination's largest record.
    pub truncated: u64,
    /// Puts that failed as a whole, or refused some records, and were tried again.
    pub retries: u64,
}

/// The agent: its flows and their checkpoint.
pub struct Agent {
    checkpoints: Checkpoints,
    flows: Vec<FlowRun>,
    stop: Arc<AtomicBool>,
}

struct FlowRun {
    flow: Flow,
    tailer: Tailer,
    sender: Sender,
    buffer: Vec<Entry>,
    buffer_bytes: usize,
    /// When the buffer's first record came.
    oldest: Option<Instant>,
    /// Where each track's records read so far end, sent or dropped.
    read_to: HashMap<u64, u64>,
    /// The same, as last checkpointed.
    acknowledged: HashMap<u64, u64>,
    stats: FlowStats,
}

/// The largest record a stream takes (data and partition key), and a delivery stream.
const STREAM_RECORD_BYTES: usize = 1024 * 1024;
const DELIVERY_RECORD_BYTES: usize = 1_000 * 1024;

impl Agent {
    /// An agent for `config`'s flows, from its checkpoint file.
    pub fn new(config: &AgentConfig) -> Result<Agent, AgentError> {
        let checkpoints = Checkpoints::open(&config.checkpoint_file)?;
        let mut flows = Vec::new();
        for flow in &config.flows {
            let endpoint = match flow.destination {
                Destination::Stream(_) => config.kinesis_endpoint.as_deref(),
                Destination::DeliveryStream(_) => config.firehose_endpoint.as_deref(),
            };
            let options = TailOptions {
                pattern: flow.file_pattern.clone(),
                multi_line_start: flow.multi_line_start.clone(),
                skip_header_lines: flow.skip_header_lines,
                start_at_end: flow.start_at_end,
            };
            let tailer = Tailer::new(
                options,
                checkpoints.flow(&flow.id),
                !checkpoints.knows(&flow.id),
            );
            flows.push(FlowRun {
                sender: Sender::new(
                    flow.destination.clone(),
                    endpoint,
                    config.credentials.as_ref(),
                    Duration::from_millis(config.put_timeout_ms),
                )?,
                flow: flow.clone(),
                tailer,
                buffer: Vec::new(),
                buffer_bytes: 0,
                oldest: None,
                read_to: HashMap::new(),
                acknowledged: HashMap::new(),
                stats: FlowStats::default(),
            });
        }
        Ok(Agent {
            checkpoints,
            flows,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Set to stop [`Agent::run`] (at its next step, or its next retry).
    pub fn stopper(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Each flow's id and counters.
    pub fn stats(&self) -> Vec<(String, FlowStats)> {
        self.flows
            .iter()
            .map(|f| (f.flow.id.clone(), f.stats))
            .collect()
    }

    /// Runs until stopped, `report` called with the counters every `report_every`.
    pub async fn run(
        &mut self,
        report_every: Duration,
        mut report: impl FnMut(&[(String, FlowStats)]),
    ) -> Result<(), AgentError> {
        let mut reported = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let read = self.step().await?;
            if reported.elapsed() >= report_every {
                report(&self.stats());
                reported = Instant::now();
            }
            if !read {
                let idle = self
                    .flows
                    .iter()
                    .map(|f| f.flow.min_poll_interval_ms)
                    .min()
                    .unwrap_or(100);
                tokio::time::sleep(Duration::from_millis(idle)).await;
            }
        }
        Ok(())
    }

    /// One round: every flow's files read, full or old buffers put, progress checkpointed.
    /// Whether anything was read. A stop ends it at once, checkpointing nothing more.
    pub async fn step(&mut self) -> Result<bool, AgentError> {
        let mut read_any = false;
        for i in 0..self.flows.len() {
            let records = self.flows[i].tailer.poll()?;
            read_any |= !records.is_empty();
            for Record {
                data, track, end, ..
            } in records
            {
                // Converted first: the buffer's size is what is put.
                let entry = self.flows[i].convert(data);
                if entry
                    .as_ref()
                    .is_some_and(|(entry, _)| self.flows[i].full_with(entry))
                    && !self.put(i).await?
                {
                    return Ok(read_any);
                }
                self.flows[i].take(track, end, entry);
            }
            let flow = &self.flows[i];
            let aged = flow
                .oldest
                .is_some_and(|t| t.elapsed() >= Duration::from_millis(flow.flow.max_buffer_age_ms));
            if aged || flow.buffer.len() >= flow.flow.max_buffer_records {
                if !self.put(i).await? {
                    return Ok(read_any);
                }
            } else if flow.buffer.is_empty() && flow.read_to != flow.acknowledged {
                // Only dropped records since the last put: nothing waits before them.
                self.checkpoint(i)?;
            }
        }
        Ok(read_any)
    }

    /// Puts flow `i`'s buffer until every record is acknowledged, then checkpoints; false
    /// when the agent was stopped first (the buffer is kept, nothing checkpointed).
    async fn put(&mut self, i: usize) -> Result<bool, AgentError> {
        let flow = &mut self.flows[i];
        let mut pending = std::mem::take(&mut flow.buffer);
        let total = pending.len() as u64;
        let (initial, max) = flow.flow.retry_backoff_ms;
        let mut attempt = 0u32;
        while !pending.is_empty() {
            if self.stop.load(Ordering::Relaxed) {
                flow.buffer = pending;
                return Ok(false);
            }
            let refused = match flow.sender.put(&pending).await {
                Ok(refused) => refused,
                Err(e) => {
                    eprintln!(
                        "sluice agent: {}: put failed, will retry: {e}{}",
                        flow.flow.id,
                        lasting(&e.name)
                    );
                    (0..pending.len()).collect()
                }
            };
            let mut index = 0;
            pending.retain(|_| {
                index += 1;
                refused.contains(&(index - 1))
            });
            if !pending.is_empty() {
                flow.stats.retries += 1;
                attempt += 1;
                sleep_unless_stopped(backoff(initial, max, attempt), &self.stop).await;
            }
        }
        flow.buffer_bytes = 0;
        flow.oldest = None;
        flow.stats.sent += total;
        self.checkpoint(i)?;
        Ok(true)
    }

    /// Keeps flow `i`'s offsets read as acknowledged.
    fn checkpoint(&mut self, i: usize) -> Result<(), AgentError> {
        let flow = &mut self.flows[i];
        // Tracks of files no longer read are forgotten.
        let tracks: Vec<u64> = flow.tailer.tracks().collect();
        flow.read_to.retain(|track, _| tracks.contains(track));
        flow.acknowledged = flow.read_to.clone();
        let acknowledged = &flow.acknowledged;
        let positions = flow
            .tailer
            .positions(|track| acknowledged.get(&track).copied());
        self.checkpoints.set_flow(&flow.flow.id, positions);
        self.checkpoints.save()
    }
}

impl FlowRun {
    /// Whether `entry` would not fit in the buffer beside what it holds (by count or by
    /// bytes).
    fn full_with(&self, entry: &Entry) -> bool {
        !self.buffer.is_empty()
            && (self.buffer.len() >= self.flow.max_buffer_records
                || self.buffer_bytes + entry.size() > self.flow.max_buffer_bytes)
    }

    /// A record's data converted by the flow's processing options, with its partition key
    /// (a stream's), cut to the destination's largest record (and whether it was); `None`
    /// when an option drops it.
    fn convert(&self, data: Vec<u8>) -> Option<(Entry, bool)> {
        let mut data = process(&self.flow.processors, data)?;
        let (partition_key, limit) = match (&self.flow.destination, self.flow.partition_key) {
            (Destination::Stream(_), PartitionKeyOption::Random) => {
                let key = random_key();
                let limit = STREAM_RECORD_BYTES - key.len();
                (key, limit)
            }
            (Destination::Stream(_), PartitionKeyOption::Deterministic) => {
                let key = md5_hex(&data);
                let limit = STREAM_RECORD_BYTES - key.len();
                (key, limit)
            }
            (Destination::DeliveryStream(_), _) => (String::new(), DELIVERY_RECORD_BYTES),
        };
        let cut = data.len() > limit;
        if cut {
            truncate(
                &mut data,
                limit,
                self.flow.truncated_record_terminator.as_bytes(),
            );
        }
        Some((
            Entry {
                data,
                partition_key,
            },
            cut,
        ))
    }

    /// Notes where a record read from `track` ends (`end`), and buffers its entry (or counts
    /// it dropped).
    fn take(&mut self, track: u64, end: u64, entry: Option<(Entry, bool)>) {
        self.stats.read += 1;
        self.read_to.insert(track, end);
        let Some((entry, cut)) = entry else {
            self.stats.dropped += 1;
            return;
        };
        self.stats.truncated += u64::from(cut);
        self.buffer_bytes += entry.size();
        self.oldest.get_or_insert_with(Instant::now);
        self.buffer.push(entry);
    }
}

/// A note after an error a retry will not mend by itself.
fn lasting(name: &str) -> &'static str {
    match name {
        "ResourceNotFoundException" => " (the stream does not exist: create it)",
        "AccessDeniedException"
        | "InvalidSignatureException"
        | "UnrecognizedClientException"
        | "ExpiredTokenException" => " (the credentials are refused: fix them and restart)",
        "ValidationException" | "InvalidArgumentException" => {
            " (the request is refused as invalid: check the flow's configuration)"
        }
        _ => "",
    }
}

/// Sleeps `wait`, waking early when `stop` is set.
async fn sleep_unless_stopped(wait: Duration, stop: &AtomicBool) {
    let until = Instant::now() + wait;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
    }
}

/// A record cut to `limit` bytes, its end replaced by `terminator`, as the agent cuts it.
fn truncate(data: &mut Vec<u8>, limit: usize, terminator: &[u8]) {
    data.truncate(limit);
    let at = limit.saturating_sub(terminator.len());
    data.truncate(at);
    data.extend_from_slice(&terminator[..terminator.len().min(limit)]);
}

/// The wait before the `attempt`th retry: doubling from `initial` up to `max`, within 30%
/// either way so that agents do not retry together.
fn backoff(initial: u64, max: u64, attempt: u32) -> Duration {
    let base = initial
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(30))
        .min(max) as f64;
    let jitter = (std::collections::hash_map::RandomState::new().hash_one(attempt) % 600) as f64
        / 1000.0
        - 0.3;
    Duration::from_millis((base * (1.0 + jitter)).max(1.0) as u64)
}

/// A partition key spreading records over the shards, as the agent's `RANDOM` makes them (a
/// number below a million, with a fraction).
fn random_key() -> String {
    let n = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    format!("{}.{}", n % 1_000_000, (n >> 20) % 10_000_000_000)
}

/// The lowercase hex MD5 of `data` (the agent's `DETERMINISTIC` key).
fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_too_long_are_cut_and_end_in_the_terminator() {
        let mut data = b"0123456789".to_vec();
        truncate(&mut data, 6, b"\n");
        assert_eq!(data, b"01234\n");
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        for attempt in 1..20 {
            let wait = backoff(100, 10_000, attempt).as_millis();
            let base = (100u128 << (attempt - 1)).min(10_000);
            assert!(
                wait * 10 >= base * 7 && wait * 10 <= base * 13,
                "{attempt}: {wait}"
            );
        }
    }
}
