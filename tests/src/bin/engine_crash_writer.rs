//! Child of the engine crash test: opens the engine in `$1`, creates the stream if needed,
//! and runs writer threads that put batches durably forever. After each acknowledgement a
//! writer prints `ack <writer> <n_end>`: its records `0..n_end` of run `$2` are durable.

use sluice_core::{CreateStream, Durability, Engine, PutRecord};
use sluice_tests::{CRASH_STREAM, Rng, crash_engine_config, engine_record_data, engine_record_key};
use std::io::Write;
use std::sync::Mutex;

const WRITERS: u64 = 3;

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: sluice-engine-crash-writer DIR RUN";
    let dir = args.next().expect(usage);
    let run: u64 = args.next().and_then(|s| s.parse().ok()).expect(usage);
    let engine = Engine::open(crash_engine_config(dir.as_ref())).expect("open");
    if engine.describe_stream_summary(CRASH_STREAM).is_err() {
        engine
            .create_stream_blocking(CreateStream::provisioned(CRASH_STREAM, 4))
            .expect("create");
    }
    let out = Mutex::new(std::io::stdout());
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let (engine, out) = (&engine, &out);
            scope.spawn(move || {
                let key = engine_record_key(run, writer);
                let mut rng = Rng::new(run ^ writer);
                let mut n = 0;
                loop {
                    let count = 1 + rng.below(30);
                    let data: Vec<Vec<u8>> = (n..n + count)
                        .map(|i| engine_record_data(run, writer, i))
                        .collect();
                    let records: Vec<PutRecord<'_>> =
                        data.iter().map(|d| PutRecord::new(&key, d)).collect();
                    let results = engine
                        .put_batch_with_blocking(CRASH_STREAM, &records, Durability::Durable)
                        .expect("put");
                    assert!(results.iter().all(|r| r.is_ok()), "no record fails");
                    n += count;
                    let mut out = out.lock().unwrap();
                    writeln!(out, "ack {writer} {n}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}
