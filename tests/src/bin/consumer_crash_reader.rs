//! Child of the consumer checkpoint crash test: opens the engine in `$1` (creating the stream
//! if needed), runs two durable writers, makes `$3` reshards at random moments (run `$2`), and
//! reads the stream as consumer `CRASH_CONSUMER`, from its committed positions along the
//! lineage, committing the last record of every read durably. Before each commit it prints
//! `commit <sequence number>`, after its acknowledgement `acked <sequence number>`.

use sluice_core::{CreateStream, Durability, Engine};
use sluice_tests::{
    CRASH_CONSUMER, CRASH_STREAM, crash_engine_config, reshard_at_random, run_durable_writers,
};
use std::io::Write;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: sluice-consumer-crash-reader DIR RUN RESHARDS";
    let dir = args.next().expect(usage);
    let run: u64 = args.next().and_then(|s| s.parse().ok()).expect(usage);
    let reshards: u64 = args.next().and_then(|s| s.parse().ok()).expect(usage);
    // A panic on any thread ends the process, so the parent sees a child it did not kill.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
    let engine = Engine::open(crash_engine_config(dir.as_ref())).expect("open");
    if engine.stream(CRASH_STREAM).is_err() {
        engine
            .create_stream(CreateStream::provisioned(CRASH_STREAM, 4))
            .wait()
            .expect("create");
    }
    std::thread::scope(|scope| {
        scope.spawn(|| reshard_at_random(&engine, CRASH_STREAM, run, reshards));
        scope.spawn(|| consume(&engine));
        run_durable_writers(&engine, CRASH_STREAM, run, 2);
    });
}

/// Reads after the committed positions for ever, committing each read's last record.
fn consume(engine: &Engine) {
    let stream = engine.stream(CRASH_STREAM).expect("the stream");
    let consumer = stream.consumer(CRASH_CONSUMER).expect("a valid name");
    let mut reader = consumer.reader().expect("a reader");
    loop {
        let read = reader
            .read(None)
            .expect("read")
            .expect("open shards never end");
        let Some(last) = read.records.records().last().map(|r| r.sequence_number) else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        say(&format!("commit {}", last.0));
        consumer
            .commit(&read.shard_id, last)
            .durability(Durability::Durable)
            .wait()
            .expect("commit");
        say(&format!("acked {}", last.0));
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
}
