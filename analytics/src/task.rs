//! The application task: reads the source along its lineage, one shard at a time, decodes
//! each read into the input stream's rows, runs the pipeline, moves the watermark as the
//! shards are read, and puts the output streams' rows into Sluice streams.
//!
//! Each read is a numbered step, journaled before its rows are put; the whole state is
//! written now and then. A restart takes up the last snapshot, replays the journal's steps
//! over the same records (which makes the same rows), and puts only the rows the output
//! streams do not hold yet: their partition keys name the step and the row
//! (docs/design/analytics.md, "Checkpoints and exactly-once output").

use crate::ERROR_STREAM;
use crate::app::{ApplicationStats, Counter, OutputFormat, RunConfig};
use crate::checkpoint::{Recovered, SnapshotHeader, StateDir, Step};
use crate::decode::Decoder;
use crate::error::AnalyticsError;
use crate::error_stream::{self, ErrorRow};
use crate::output::keyed_lines;
use crate::pipeline::{Pipeline, Produced};
use crate::reference::LoadedReference;
use sluice_core::limits::{PUT_BATCH_BYTES_MAX, PUT_BATCH_RECORDS_MAX};
use sluice_core::{
    Durability, IteratorStart, PutRecord, ReadError, Records, SequenceNumber, ShardId, Stream,
    StreamReader,
};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Empty reads in a row before the task naps, and the nap.
const EMPTY_READS_BEFORE_NAP: u32 = 8;
const NAP: Duration = Duration::from_millis(20);
/// The pause after a failed read or put, before it is tried again.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Per output Sluice stream, per shard, the newest record when the snapshot was taken.
type OutputEnds = BTreeMap<String, BTreeMap<ShardId, SequenceNumber>>;

/// What a restart replays before reading on.
pub(crate) struct Replay {
    steps: Vec<Step>,
    /// `None`: no snapshot names them; the output streams are searched whole.
    output_ends: Option<OutputEnds>,
}

/// The task was told to stop in the middle of a step.
struct Stopped;

/// The application task's state.
pub(crate) struct Running {
    name: String,
    source: Stream,
    /// What the snapshot names the source by: its stream's name, or for a delivery stream
    /// `delivery stream <name>` (its backing stream, in another engine, may share a
    /// stream's name; positions in one are nothing in the other).
    source_key: String,
    decoder: Decoder,
    /// The in-application input streams: shard `i`'s rows go into the one at `i % len`.
    inputs: Vec<String>,
    pipeline: Pipeline,
    outputs: BTreeMap<String, (Stream, OutputFormat)>,
    config: RunConfig,
    stats: Arc<ApplicationStats>,
    stop: watch::Receiver<bool>,
    /// The checkpoint and journal, when the application keeps them.
    state: Option<StateDir>,
    spec_digest: u64,
    outputs_digest: u64,
    /// The last step taken; every row it made is put.
    step: u64,
    /// Per shard read, the last record taken.
    positions: BTreeMap<ShardId, SequenceNumber>,
    /// Per shard read, the time before which it holds no more records.
    held: BTreeMap<ShardId, i64>,
    /// The watermark the pipeline was last advanced to.
    watermark_ms: i64,
    last_snapshot: Instant,
    /// While steps are replayed: the keys of rows the output streams hold already.
    put_already: HashSet<String>,
    /// The reference tables the pipeline holds (a snapshot names their saved copies)...
    references: Vec<LoadedReference>,
    /// ...and, while the journal's steps are replayed over the copies they ran with, those
    /// loaded at this start, taken up once the replay is done.
    references_after_replay: Option<Vec<LoadedReference>>,
}

impl Running {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        source: Stream,
        decoder: Decoder,
        inputs: Vec<String>,
        pipeline: Pipeline,
        outputs: BTreeMap<String, (Stream, OutputFormat)>,
        config: RunConfig,
        stats: Arc<ApplicationStats>,
        stop: watch::Receiver<bool>,
    ) -> Running {
        Running {
            name,
            source_key: source.name().to_owned(),
            source,
            decoder,
            inputs,
            pipeline,
            outputs,
            config,
            stats,
            stop,
            state: None,
            spec_digest: 0,
            outputs_digest: 0,
            step: 0,
            positions: BTreeMap::new(),
            held: BTreeMap::new(),
            watermark_ms: i64::MIN,
            last_snapshot: Instant::now(),
            put_already: HashSet::new(),
            references: Vec::new(),
            references_after_replay: None,
        }
    }

    /// Gives the pipeline these reference tables' rows.
    pub(crate) fn use_references(
        &mut self,
        references: Vec<LoadedReference>,
    ) -> Result<(), AnalyticsError> {
        for reference in &references {
            self.pipeline
                .set_reference_rows(&reference.table, reference.rows.clone())?;
        }
        self.references = references;
        Ok(())
    }

    fn reference_names(&self) -> Vec<String> {
        self.references
            .iter()
            .map(LoadedReference::file_name)
            .collect()
    }

    /// Names the source in snapshots by `key` rather than its stream's name.
    pub(crate) fn name_source(&mut self, key: String) {
        self.source_key = key;
    }

    /// Reads the source from its newest records on (a checkpoint, if one is taken up, has
    /// the last word).
    pub(crate) fn start_now(&mut self) -> Result<(), AnalyticsError> {
        self.positions = self
            .source
            .ends()
            .map_err(|e| AnalyticsError::execution(&format!("read {}", self.source.name()), e))?;
        Ok(())
    }

    /// Takes up what the state directory holds: the snapshot's pipeline state and positions;
    /// returns the steps to replay. A snapshot taken for other code or another input keeps
    /// only its positions (the journal's steps folded in): the windows start afresh, as
    /// KDA's do when code changes. A fresh directory gets its first snapshot now, so a
    /// restart knows where the output streams stood before this application put anything.
    pub(crate) fn take_up(
        &mut self,
        state: StateDir,
        recovered: Recovered,
        (spec_digest, outputs_digest): (u64, u64),
    ) -> Result<Replay, AnalyticsError> {
        self.state = Some(state);
        self.spec_digest = spec_digest;
        self.outputs_digest = outputs_digest;
        let Some(snapshot) = recovered.snapshot else {
            if recovered.steps.is_empty() {
                self.snapshot()?;
            }
            return Ok(Replay {
                steps: recovered.steps,
                output_ends: None,
            });
        };
        let header = snapshot.header;
        // 0: written before the digest was kept; nothing to compare.
        let outputs_changed = header.outputs_digest != 0 && header.outputs_digest != outputs_digest;
        if outputs_changed && !recovered.steps.is_empty() {
            return Err(AnalyticsError::invalid(format!(
                "Application {}: its name or outputs changed since it stopped without a checkpoint; start it as it was to settle its journal first.",
                self.name
            )));
        }
        if header.spec_digest != spec_digest {
            // Positions are a stream's: another source starts from its own beginning.
            if header.source == self.source_key {
                self.positions = parse_positions(&header.positions)?;
            }
            let same_source = header.source == self.source_key;
            for step in recovered
                .steps
                .iter()
                .filter(|s| s.count > 0 && same_source)
            {
                self.positions.insert(
                    ShardId::new(step.shard),
                    SequenceNumber::new(step.shard, step.last),
                );
            }
            self.snapshot()?;
            return Ok(Replay {
                steps: Vec::new(),
                output_ends: None,
            });
        }
        self.pipeline.restore(snapshot.pipeline)?;
        self.step = header.step;
        self.watermark_ms = header.watermark_ms;
        self.positions = parse_positions(&header.positions)?;
        self.held = header
            .held_ms
            .iter()
            .map(|(&shard, &held)| (ShardId::new(shard), held))
            .collect();
        let mut output_ends = OutputEnds::new();
        for (stream, ends) in &header.output_ends {
            output_ends.insert(stream.clone(), parse_positions(ends)?);
        }
        if header.references != self.reference_names() {
            if recovered.steps.is_empty() {
                // Nothing ran with the old tables: the new ones are saved before a step is.
                self.snapshot()?;
            } else {
                self.replay_with_saved_references(&header.references)?;
            }
        }
        Ok(Replay {
            steps: recovered.steps,
            output_ends: Some(output_ends),
        })
    }

    /// Replays over the reference tables the journal's steps ran with (saved beside the
    /// snapshot), keeping those loaded now for after the replay.
    fn replay_with_saved_references(&mut self, saved: &[String]) -> Result<(), AnalyticsError> {
        let state = self.state.as_ref().expect("taken up");
        let copies = saved
            .iter()
            .map(|name| state.read_reference(name))
            .collect::<Result<Vec<_>, _>>()?;
        let loaded = std::mem::take(&mut self.references);
        self.use_references(copies)?;
        self.references_after_replay = Some(loaded);
        Ok(())
    }

    pub(crate) async fn run(mut self, replay: Option<Replay>) {
        if let Some(replay) = replay
            && self.replay(replay).await.is_err()
        {
            return;
        }
        self.stats.set(Counter::ResumedAtStep, self.step);
        let mut reader = None;
        let mut empty_reads = 0;
        let mut complete = true;
        while !self.stopped() {
            let reading = match &mut reader {
                Some(reader) => reader,
                None => match self.source.reader_after(&self.positions) {
                    Ok(made) => reader.insert(made),
                    Err(e) => {
                        self.pause_after(&format!("read {}: {e}", self.source.name()))
                            .await;
                        continue;
                    }
                },
            };
            let read_at = now_ms();
            match reading.read(Some(self.config.read_records)) {
                Ok(Some(read)) => {
                    let got = !read.records.is_empty();
                    let active = reading.active_shards();
                    complete = self.live_step(read, &active, read_at).await.is_ok();
                    if !complete {
                        break;
                    }
                    empty_reads = if got { 0 } else { empty_reads + 1 };
                }
                Ok(None) | Err(ReadError::Throttled { .. }) => {
                    empty_reads = EMPTY_READS_BEFORE_NAP;
                }
                Err(e) => {
                    // The reader keeps its place; the read is tried again after a pause.
                    self.pause_after(&format!("read {}: {e}", self.source.name()))
                        .await;
                    continue;
                }
            }
            if self.last_snapshot.elapsed() >= self.config.checkpoint_interval
                && let Err(e) = self.snapshot()
            {
                self.stats.failed(&e.to_string());
            }
            if empty_reads >= EMPTY_READS_BEFORE_NAP {
                empty_reads = 0;
                self.nap(NAP).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
        // A step cut short is left to the journal: the next start replays it.
        if complete && let Err(e) = self.snapshot() {
            self.stats.failed(&e.to_string());
        }
    }

    /// Replays the journal's steps over the records they read, putting only the rows the
    /// output streams do not hold.
    async fn replay(&mut self, replay: Replay) -> Result<(), Stopped> {
        if replay.steps.is_empty() {
            return Ok(());
        }
        loop {
            match self.keys_put_since(replay.output_ends.as_ref()) {
                Ok(keys) => {
                    self.put_already = keys;
                    break;
                }
                Err(e) => self.pause_after(&e.to_string()).await,
            }
            if self.stopped() {
                return Err(Stopped);
            }
        }
        for step in &replay.steps {
            let reads = loop {
                match self.read_step(step) {
                    Ok(reads) => break reads,
                    Err(ReadError::Throttled { .. }) => self.nap(NAP).await,
                    Err(
                        e @ (ReadError::StreamNotFound { .. }
                        | ReadError::ShardNotFound { .. }
                        | ReadError::PositionPastEnd { .. }
                        | ReadError::RecordNotRetained { .. }
                        | ReadError::InvalidStartingSequenceNumber { .. }),
                    ) => {
                        // The records are gone (retention, or the stream deleted): the step
                        // is taken without them.
                        self.stats.failed(&format!(
                            "replay step {} of {}: {e}",
                            step.number,
                            self.source.name()
                        ));
                        break Vec::new();
                    }
                    // Anything else may pass (a failed disk read): tried again.
                    Err(e) => {
                        self.pause_after(&format!("replay step {}: {e}", step.number))
                            .await;
                    }
                }
                if self.stopped() {
                    return Err(Stopped);
                }
            };
            self.apply(step, &reads).await?;
            self.stats.add(Counter::ReplayedSteps, 1);
        }
        self.put_already = HashSet::new();
        let Some(loaded) = self.references_after_replay.take() else {
            // What the replay put is settled: a second crash need not replay it again.
            if let Err(e) = self.snapshot() {
                self.stats.failed(&e.to_string());
            }
            return Ok(());
        };
        // The tables loaded at this start, saved before any step runs with them: a step
        // journaled before would be replayed over the old ones.
        if let Err(e) = self.use_references(loaded) {
            self.stats.failed(&e.to_string());
            return Err(Stopped);
        }
        while let Err(e) = self.snapshot() {
            self.pause_after(&e.to_string()).await;
            if self.stopped() {
                return Err(Stopped);
            }
        }
        Ok(())
    }

    /// The keys of the records put into the output streams after `ends` (from their trim
    /// horizon without them).
    fn keys_put_since(&self, ends: Option<&OutputEnds>) -> Result<HashSet<String>, AnalyticsError> {
        let mut keys = HashSet::new();
        let streams: BTreeMap<&str, &Stream> = self
            .outputs
            .values()
            .map(|(stream, _)| (stream.name(), stream))
            .collect();
        let none = BTreeMap::new();
        for (name, stream) in streams {
            let after = ends.and_then(|ends| ends.get(name)).unwrap_or(&none);
            keys.extend(
                keys_after(stream, after)
                    .map_err(|e| AnalyticsError::execution(&format!("read {name}"), e))?,
            );
        }
        Ok(keys)
    }

    /// The records a journaled step read.
    fn read_step(&self, step: &Step) -> Result<Vec<Records>, ReadError> {
        let mut reads = Vec::new();
        if step.count == 0 {
            return Ok(reads);
        }
        let start = IteratorStart::AtSequenceNumber(SequenceNumber::new(step.shard, step.first));
        let shard = ShardId::new(step.shard).to_string();
        let mut iterator = self.source.shard_iterator(&shard, start)?;
        let mut taken = 0;
        while taken < step.count {
            let wanted = (step.count - taken).min(10_000) as usize;
            let records = self
                .source
                .engine()
                .get_records(&mut iterator, Some(wanted))?;
            if records.is_empty() {
                break;
            }
            taken += records.len() as u64;
            reads.push(records);
        }
        Ok(reads)
    }

    /// A live read as a step: journaled when it changes anything, then taken.
    async fn live_step(
        &mut self,
        read: sluice_core::ShardRecords,
        active: &[ShardId],
        read_at: u64,
    ) -> Result<(), Stopped> {
        let records = &read.records;
        self.stats
            .set(Counter::MillisBehindLatest, records.millis_behind_latest);
        let mut numbers = records.records().map(|r| r.sequence_number);
        let first = numbers.next();
        let last = numbers.last().or(first);
        let newest = records.records().map(|r| r.arrival_timestamp_ms).max();
        let caught_up = records.is_empty() || records.millis_behind_latest == 0;
        let held = match (caught_up, newest) {
            (true, _) => Some(read_at.saturating_sub(self.config.lateness_ms) as i64),
            (false, Some(newest)) => Some(newest as i64),
            (false, None) => None,
        };
        let before = self.held.get(&read.shard_id).copied().unwrap_or(i64::MIN);
        let held_ms = before.max(held.unwrap_or(i64::MIN));
        // Every shard being read must have been read once: a shard not read yet may hold
        // records of any time since its last position.
        let watermark = active
            .iter()
            .map(|shard| match *shard == read.shard_id {
                true => Some(held_ms),
                false => self.held.get(shard).copied(),
            })
            .collect::<Option<Vec<i64>>>()
            .and_then(|held| held.into_iter().min())
            .filter(|&w| w > self.watermark_ms && w != i64::MIN);
        let log_seq = |n: Option<SequenceNumber>| n.and_then(SequenceNumber::record_log_seq);
        let step = Step {
            number: self.step + 1,
            shard: read.shard_id.index(),
            first: log_seq(first).unwrap_or(0),
            last: log_seq(last).unwrap_or(0),
            count: records.len() as u64,
            end_of_shard: records.end_of_shard,
            held_ms,
            watermark_ms: watermark.unwrap_or(i64::MIN),
        };
        if step.count == 0 && watermark.is_none() && !step.end_of_shard {
            // Nothing the state holds changes but the shard's time, which only the next
            // watermark shows.
            self.held.insert(read.shard_id, held_ms);
            return Ok(());
        }
        if let Some(state) = &mut self.state
            && let Err(e) = state.append(&step)
        {
            // Without the step in the journal its rows could be put twice after a crash.
            self.stats.failed(&e.to_string());
            return Err(Stopped);
        }
        self.apply(&step, std::slice::from_ref(records)).await
    }

    /// Takes a step: its records through the pipeline, the watermark moved, the rows put,
    /// the shard's position and time moved on.
    async fn apply(&mut self, step: &Step, reads: &[Records]) -> Result<(), Stopped> {
        let mut produced = Produced::new();
        // A read the pipeline fails on is not read again (it would fail again, and stop
        // the application): its records are counted, and the step goes on.
        // The rows made before a failure are put with the step's others.
        match self.take(step, reads, &mut produced).await {
            Ok(()) => {}
            Err(e) => {
                self.stats.failed(&e.to_string());
                produced.extend(self.pipeline.take_undelivered());
            }
        }
        if step.watermark_ms != i64::MIN {
            // A window that fails to close stays open and is tried at the next watermark.
            match self.pipeline.advance(step.watermark_ms).await {
                Ok(made) => produced.extend(made),
                Err(e) => {
                    self.stats.failed(&e.to_string());
                    produced.extend(self.pipeline.take_undelivered());
                }
            }
            self.watermark_ms = self.watermark_ms.max(step.watermark_ms);
            self.stats.set(Counter::LateRows, self.pipeline.late_rows());
        }
        self.write(step.number, produced).await?;
        let shard = ShardId::new(step.shard);
        if step.count > 0 {
            self.positions
                .insert(shard, SequenceNumber::new(step.shard, step.last));
        }
        if step.end_of_shard {
            self.held.remove(&shard);
        } else {
            self.held.insert(shard, step.held_ms);
        }
        self.step = step.number;
        Ok(())
    }

    /// A step's records decoded and pushed through the pipeline.
    /// Only the step's own records are taken: a replay's read may start past records
    /// retention removed, and run on past the step's last.
    /// Records that cannot be taken in are rows of the error stream, first.
    async fn take(
        &mut self,
        step: &Step,
        reads: &[Records],
        produced: &mut Produced,
    ) -> Result<(), AnalyticsError> {
        let (mut sealed, mut rows, mut count) = (Vec::new(), Vec::new(), 0);
        let first = SequenceNumber::new(step.shard, step.first);
        let last = SequenceNumber::new(step.shard, step.last);
        for records in reads {
            for record in records
                .records()
                .filter(|r| (first..=last).contains(&r.sequence_number))
            {
                count += 1;
                // A sealed record (KMS) is not opened here yet: it counts as rejected.
                if record.encrypted {
                    sealed.push(record.arrival_timestamp_ms);
                } else {
                    rows.push((record.data, record.arrival_timestamp_ms));
                }
            }
        }
        self.stats.add(Counter::InputRecords, count);
        if count < step.count {
            self.stats.failed(&format!(
                "step {}: {} of its {} records of {} are gone (retention)",
                step.number,
                step.count - count,
                step.count,
                self.source.name()
            ));
        }
        let (batch, rejected) = match self.decoder.decode(rows) {
            Ok(decoded) => decoded,
            Err(e) => {
                self.stats.add(Counter::RejectedRecords, count);
                return Err(e);
            }
        };
        self.stats.add(
            Counter::RejectedRecords,
            (rejected.len() + sealed.len()) as u64,
        );
        let mut errors: Vec<ErrorRow<'_>> = rejected.iter().map(ErrorRow::from).collect();
        errors.extend(sealed.iter().map(|&arrival_ms| ErrorRow {
            arrival_ms,
            name: error_stream::SEALED,
            message: "The record is sealed (KMS): analytics does not open sealed records yet.",
            data: None,
        }));
        if !errors.is_empty() {
            produced.push((ERROR_STREAM.to_owned(), error_stream::rows(&errors)?));
        }
        let rows = batch.num_rows() as u64;
        let input = &self.inputs[step.shard as usize % self.inputs.len()];
        let made = self
            .pipeline
            .push_into(input, batch)
            .await
            .inspect_err(|_| {
                self.stats.add(Counter::RejectedRecords, rows);
            })?;
        produced.extend(made);
        Ok(())
    }

    /// Puts a step's rows of output streams, durably, once the step is in the journal; a
    /// failed put is tried again until it goes in or the task is stopped.
    async fn write(&mut self, step: u64, produced: Produced) -> Result<(), Stopped> {
        let outputs = &self.outputs;
        let keyed = match keyed_lines(&self.name, step, &produced, |stream| {
            outputs.get(stream).map(|(_, format)| *format)
        }) {
            Ok(keyed) => keyed,
            Err(e) => {
                self.stats.failed(&e.to_string());
                return Ok(());
            }
        };
        let mut synced = false;
        for (stream, rows) in keyed {
            let target = self.outputs[&stream].0.clone();
            let rows: Vec<&(String, Vec<u8>)> = rows
                .iter()
                .filter(|(key, _)| !self.put_already.contains(key))
                .collect();
            if rows.is_empty() {
                continue;
            }
            while !synced {
                match self.state.as_mut().map_or(Ok(()), StateDir::sync) {
                    Ok(()) => synced = true,
                    Err(e) => self.pause_after(&e.to_string()).await,
                }
                if self.stopped() && !synced {
                    return Err(Stopped);
                }
            }
            for chunk in put_batches(&rows) {
                self.put(&target, chunk).await?;
            }
        }
        Ok(())
    }

    /// Puts rows until each went in. A failed put may have written some of its records
    /// (one whose sync failed is visible, its outcome unknown): before it is tried again,
    /// the rows the target holds since the first try are left out.
    async fn put(&self, target: &Stream, rows: &[&(String, Vec<u8>)]) -> Result<(), Stopped> {
        let before = target.ends().ok();
        let mut left: Vec<usize> = (0..rows.len()).collect();
        loop {
            let puts: Vec<PutRecord<'_>> = left
                .iter()
                .map(|&i| PutRecord::new(&rows[i].0, &rows[i].1))
                .collect();
            let failure = match target
                .put_batch(&puts)
                .durability(Durability::Durable)
                .await
            {
                Ok(results) => {
                    let put = left.len();
                    left = left
                        .iter()
                        .zip(&results)
                        .filter(|(_, result)| result.is_err())
                        .map(|(&i, _)| i)
                        .collect();
                    let error = results.into_iter().find_map(Result::err);
                    self.stats
                        .add(Counter::OutputRecords, (put - left.len()) as u64);
                    error.map(|e| e.to_string())
                }
                Err(e) => Some(e.to_string()),
            };
            let Some(failure) = failure else {
                return Ok(());
            };
            self.pause_after(&format!("put into {}: {failure}", target.name()))
                .await;
            if self.stopped() {
                return Err(Stopped);
            }
            if let Some(before) = &before
                && let Ok(present) = keys_after(target, before)
            {
                left.retain(|&i| !present.contains(&rows[i].0));
                if left.is_empty() {
                    return Ok(());
                }
            }
        }
    }

    /// Writes the whole state (if the application keeps one): the pipeline's, the source
    /// positions, and where the output streams stand.
    fn snapshot(&mut self) -> Result<(), AnalyticsError> {
        self.last_snapshot = Instant::now();
        let kept = self.reference_names();
        let Some(state) = &mut self.state else {
            return Ok(());
        };
        let mut output_ends = BTreeMap::new();
        for (stream, _) in self.outputs.values() {
            let ends = stream
                .ends()
                .map_err(|e| AnalyticsError::execution(&format!("read {}", stream.name()), e))?;
            output_ends.insert(stream.name().to_owned(), format_positions(&ends));
        }
        let pipeline = self.pipeline.state()?;
        let header = SnapshotHeader {
            source: self.source_key.clone(),
            spec_digest: self.spec_digest,
            outputs_digest: self.outputs_digest,
            step: self.step,
            positions: format_positions(&self.positions),
            held_ms: self
                .held
                .iter()
                .map(|(shard, &held)| (shard.index(), held))
                .collect(),
            output_ends,
            watermark_ms: pipeline.watermark_ms,
            late_rows: pipeline.late_rows,
            unfit_values: pipeline.unfit_values,
            windows: Vec::new(),
            forests: Vec::new(),
            references: kept.clone(),
        };
        for reference in &self.references {
            state.save_reference(reference)?;
        }
        state.save(header, &pipeline.windows, &pipeline.forests)?;
        // Copies no snapshot names any more; left for the next snapshot if they stay.
        let state = self.state.as_ref().expect("saved above");
        if let Err(e) = state.keep_references(&kept) {
            self.stats.failed(&e.to_string());
        }
        Ok(())
    }

    /// Told to stop, or its [`Application`](crate::Application) is gone.
    fn stopped(&self) -> bool {
        *self.stop.borrow() || self.stop.has_changed().is_err()
    }

    /// Counts a failure and pauses before the thing is tried again.
    async fn pause_after(&self, error: &str) {
        self.stats.failed(error);
        self.nap(RETRY_PAUSE).await;
    }

    async fn nap(&self, time: Duration) {
        let mut stop = self.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(time) => {}
            _ = stop.changed() => {}
        }
    }
}

/// `rows` in runs a put takes: at most 500 records and 10 MiB of keys and data.
fn put_batches<'r>(rows: &'r [&'r (String, Vec<u8>)]) -> Vec<&'r [&'r (String, Vec<u8>)]> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (key, data)) in rows.iter().map(|r| (&r.0, &r.1)).enumerate() {
        let size = key.len() + data.len();
        if i > start && (i - start == PUT_BATCH_RECORDS_MAX || bytes + size > PUT_BATCH_BYTES_MAX) {
            batches.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < rows.len() {
        batches.push(&rows[start..]);
    }
    batches
}

/// The partition keys of the records put into `stream` after `ends`.
fn keys_after(
    stream: &Stream,
    ends: &BTreeMap<ShardId, SequenceNumber>,
) -> Result<HashSet<String>, ReadError> {
    let mut keys = HashSet::new();
    let mut reader = stream.reader_after(ends)?;
    read_to_tip(&mut reader, |records| {
        keys.extend(records.records().map(|r| r.partition_key.to_owned()));
    })?;
    Ok(keys)
}

/// Reads every shard `reader` reads up to its newest record, handing each read to `take`.
fn read_to_tip(reader: &mut StreamReader, mut take: impl FnMut(&Records)) -> Result<(), ReadError> {
    let mut at_tip = BTreeSet::new();
    loop {
        if reader
            .active_shards()
            .iter()
            .all(|shard| at_tip.contains(shard))
        {
            return Ok(());
        }
        match reader.read(None) {
            Ok(Some(read)) => {
                take(&read.records);
                if read.records.is_empty() || read.records.millis_behind_latest == 0 {
                    at_tip.insert(read.shard_id);
                }
            }
            Ok(None) => return Ok(()),
            Err(ReadError::Throttled { .. }) => std::thread::sleep(NAP),
            Err(e) => return Err(e),
        }
    }
}

fn format_positions(positions: &BTreeMap<ShardId, SequenceNumber>) -> BTreeMap<u32, String> {
    positions
        .iter()
        .map(|(shard, number)| (shard.index(), number.0.to_string()))
        .collect()
}

fn parse_positions(
    positions: &BTreeMap<u32, String>,
) -> Result<BTreeMap<ShardId, SequenceNumber>, AnalyticsError> {
    positions
        .iter()
        .map(|(&shard, number)| {
            let number = SequenceNumber::parse(number)
                .map_err(|e| AnalyticsError::execution("read the checkpoint's positions", e))?;
            Ok((ShardId::new(shard), number))
        })
        .collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
