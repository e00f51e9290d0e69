//! What the kill -9 and power-cut tests share: running a writer child until a chosen moment,
//! killing it with SIGKILL, and the checks after the reopen.

use crate::{assert_acknowledged_records, assert_open_shards_partition, crash_log_config};
use crate::{read_crash_stream, record_data, record_key};
use sluice_storage::runtime::block_on;
use sluice_storage::{GlommioIo, ReadLimits, ShardLog, SystemClock};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long a writer may take to acknowledge anything before the test gives up on it.
const WRITER_SILENCE_MAX: Duration = Duration::from_secs(60);

/// A writer child, killed with SIGKILL when dropped (also while a failed test unwinds, so it
/// never outlives the test or keeps a filesystem busy).
#[derive(Debug)]
struct Writer(Child);

impl Writer {
    fn start(command: &mut Command) -> Writer {
        Writer(command.spawn().expect("start the writer"))
    }

    /// Kills it and checks it was still running: anything else (a panic, a failed reshard,
    /// an error) is a failure of the child.
    fn kill(mut self) {
        self.0.kill().expect("SIGKILL"); // std's kill sends SIGKILL on Unix
        let status = self.0.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "the writer ended on its own: {status}"
        );
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of the storage crash writer (`sluice-crash-writer`), as its parent reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// `ready <next_seq>`: it opened the log and found records `0..next_seq`, durable from
    /// then on (opening a log syncs what it recovered).
    Ready(u64),
    /// `durable <end_seq>`: records below it are durable.
    Durable(u64),
    /// `visible <end_seq>`: records below it are written, and visible, but not yet synced.
    Visible(u64),
}

impl Line {
    fn parse(line: &str) -> Option<Line> {
        let (word, number) = line.split_once(' ')?;
        let number = number.parse().expect("a sequence number");
        match word {
            "ready" => Some(Line::Ready(number)),
            "durable" => Some(Line::Durable(number)),
            "visible" => Some(Line::Visible(number)),
            _ => None,
        }
    }
}

/// When to kill the storage crash writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// `after` past its first durable acknowledgement, whatever it is doing.
    At(Duration),
    /// At its first visible acknowledgement from `after` past its first durable one, while it
    /// waits for the parent before its next append: records are visible that no sync has
    /// covered, and none is running.
    WhileUnsynced(Duration),
}

impl Kill {
    fn after(self) -> Duration {
        match self {
            Kill::At(after) | Kill::WhileUnsynced(after) => after,
        }
    }
}

/// What a storage crash writer acknowledged before its kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Acknowledged {
    /// Records the log held when the writer opened it.
    pub start: u64,
    /// Records below this are durable.
    pub durable: u64,
    /// Records below this were written (visible), synced or not.
    pub written: u64,
}

/// Runs the storage crash writer (`program`, the test's `sluice-crash-writer`) on the log in
/// `dir` with `seed`, kills it as `kill` says, and returns what it acknowledged.
pub fn run_crash_writer(program: &Path, dir: &Path, seed: u64, kill: Kill) -> Acknowledged {
    let mut writer = Writer::start(
        Command::new(program)
            .arg(dir)
            .arg(seed.to_string())
            .arg("hold")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut go = writer.0.stdin.take().expect("piped");
    let lines = read_lines(writer.0.stdout.take().expect("piped"), |line| {
        Line::parse(line)
    });
    let mut acked = Acknowledged::default();
    // Set at the first durable acknowledgement.
    let mut deadline: Option<Instant> = None;
    loop {
        let kill_at = match (kill, deadline) {
            (Kill::At(_), Some(d)) => Some(d),
            _ => None,
        };
        let wait = kill_at.map_or(WRITER_SILENCE_MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        let line = match lines.recv_timeout(wait) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) if kill_at.is_some() => break,
            Err(e) => panic!("the writer went silent ({e:?}); it acknowledged {acked:?}"),
        };
        acked.note(line);
        let now = Instant::now();
        if deadline.is_none() && matches!(line, Line::Durable(_)) {
            deadline = Some(now + kill.after());
        }
        let past = deadline.is_some_and(|d| now >= d);
        if let Line::Visible(_) = line {
            if past && matches!(kill, Kill::WhileUnsynced(_)) {
                break; // it waits for `go`: kill it there
            }
            if answer(&mut go).is_err() {
                break; // it died; `kill` reports how
            }
        }
        if past && matches!(kill, Kill::At(_)) {
            break;
        }
    }
    writer.kill();
    // Acknowledgements printed before the kill but read after it still count.
    lines.iter().for_each(|line| acked.note(line));
    acked
}

impl Acknowledged {
    fn note(&mut self, line: Line) {
        let (Line::Ready(end) | Line::Durable(end) | Line::Visible(end)) = line;
        self.written = self.written.max(end);
        match line {
            Line::Ready(start) => {
                self.start = start;
                self.durable = self.durable.max(start);
            }
            Line::Durable(end) => self.durable = self.durable.max(end),
            Line::Visible(_) => {}
        }
    }
}

/// Lets a holding writer go on to its next append.
fn answer(go: &mut ChildStdin) -> std::io::Result<()> {
    go.write_all(b"go\n")?;
    go.flush()
}

/// Reads `stdout` on a thread, sending every line `parse` understands; the channel ends with
/// the output.
fn read_lines<T: Send + 'static>(
    stdout: std::process::ChildStdout,
    parse: impl Fn(&str) -> Option<T> + Send + 'static,
) -> Receiver<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(parsed) = parse(&line)
                && tx.send(parsed).is_err()
            {
                break;
            }
        }
    });
    rx
}

/// Reopens the storage crash test's log in `dir` and checks every record it holds: in order
/// from 0, no gap, each intact (its key and data are those of its sequence number), nothing
/// corrupt. Returns how many there are.
pub fn check_crash_log(dir: &Path) -> u64 {
    let config = crash_log_config();
    block_on(async move {
        let log = ShardLog::open(GlommioIo, dir, config, std::sync::Arc::new(SystemClock))
            .await
            .expect("reopen");
        let reader = log.reader();
        println!(
            "recovered {} records: {:?}",
            reader.next_seq(),
            log.recovery_report()
        );
        assert_eq!(reader.trim_horizon(), 0);
        let mut seq = 0;
        while seq < reader.next_seq() {
            let batch = reader
                .read(seq, ReadLimits::default())
                .expect("every recovered record reads back");
            for record in batch.records() {
                assert_eq!(record.seq, seq, "in order, no gaps");
                assert_eq!(record.key, record_key(seq).as_slice());
                assert!(
                    record.data == record_data(seq).as_slice(),
                    "record {seq} intact"
                );
                seq += 1;
            }
        }
        let recovered = reader.next_seq();
        // glommio closes files asynchronously: let the executor run the closes before it
        // stops, or the files stay open (and their filesystem busy) for good.
        drop((reader, log));
        sluice_storage::runtime::sleep(Duration::from_millis(1)).await;
        recovered
    })
}

/// Runs the engine crash writer (`program`, the test's `sluice-engine-crash-writer`) on the
/// engine in `dir` as run `run`, making `reshards` reshards meanwhile, until `after` past its
/// first acknowledgement; kills it with SIGKILL and returns, per writer thread, how many
/// records it acknowledged.
pub fn run_engine_crash_writer(
    program: &Path,
    dir: &Path,
    run: u64,
    reshards: u64,
    after: Duration,
) -> BTreeMap<u64, u64> {
    let mut writer = Writer::start(
        Command::new(program)
            .arg(dir)
            .arg(run.to_string())
            .arg(reshards.to_string())
            .stdout(Stdio::piped()),
    );
    let acks = read_lines(writer.0.stdout.take().expect("piped"), |line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some("ack")).then(|| {
            let writer: u64 = parts.next().unwrap().parse().unwrap();
            let n: u64 = parts.next().unwrap().parse().unwrap();
            (writer, n)
        })
    });
    let mut acked = BTreeMap::new();
    let first = acks
        .recv_timeout(WRITER_SILENCE_MAX)
        .expect("the writer acknowledged nothing");
    acked.insert(first.0, first.1);
    let deadline = Instant::now() + after;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match acks.recv_timeout(left) {
            Ok((thread, n)) => {
                acked.insert(thread, n);
            }
            Err(_) => break,
        }
    }
    writer.kill();
    acked.extend(acks.iter());
    acked
}

/// Reopens the engine in `dir` (the engine crash test's configuration) and checks, per key,
/// that its records are `0..m` in order with `m` at least what was acknowledged, each intact,
/// and that the open shards partition the hash space (a reshard is all or nothing).
pub fn check_engine_crash(dir: &Path, acknowledged: &BTreeMap<(u64, u64), u64>, context: &str) {
    let engine = sluice_core::Engine::open(crate::crash_engine_config(dir)).expect("reopen");
    assert_open_shards_partition(&engine, crate::CRASH_STREAM, context);
    let found = read_crash_stream(&engine);
    assert_acknowledged_records(&found, acknowledged, context);
}

/// A line of the consumer crash reader (`sluice-consumer-crash-reader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerLine {
    /// It is about to commit this sequence number (the commit may land or not).
    Commit(u128),
    /// The commit of this sequence number was acknowledged durable.
    Acked(u128),
}

/// Runs the consumer crash reader (`program`) on the engine in `dir` as run `run`, making
/// `reshards` reshards meanwhile, until `after` past its first acknowledged commit; kills it
/// with SIGKILL and returns its commit lines in order.
pub fn run_consumer_crash_reader(
    program: &Path,
    dir: &Path,
    run: u64,
    reshards: u64,
    after: Duration,
) -> Vec<ConsumerLine> {
    let mut reader = Writer::start(
        Command::new(program)
            .arg(dir)
            .arg(run.to_string())
            .arg(reshards.to_string())
            .stdout(Stdio::piped()),
    );
    let lines = read_lines(reader.0.stdout.take().expect("piped"), |line| {
        let (word, number) = line.split_once(' ')?;
        let number = || number.parse().expect("a sequence number");
        match word {
            "commit" => Some(ConsumerLine::Commit(number())),
            "acked" => Some(ConsumerLine::Acked(number())),
            _ => None,
        }
    });
    let mut seen = Vec::new();
    let mut deadline: Option<Instant> = None;
    loop {
        let wait = deadline.map_or(WRITER_SILENCE_MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        match lines.recv_timeout(wait) {
            Ok(line) => {
                if deadline.is_none() && matches!(line, ConsumerLine::Acked(_)) {
                    deadline = Some(Instant::now() + after);
                }
                seen.push(line);
            }
            Err(RecvTimeoutError::Timeout) if deadline.is_some() => break,
            Err(e) => panic!("the reader went silent ({e:?}) after {} lines", seen.len()),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    reader.kill();
    seen.extend(lines.iter());
    seen
}
