//! Child of the engine crash test: opens the engine in `$1`, creates the stream if needed,
//! and runs writer threads that put batches durably forever. After each acknowledgement a
//! writer prints `ack <writer> <n_end>`: its records `0..n_end` of run `$2` are durable.
//! With `$3` > 0, another thread makes that many reshards meanwhile (splits and merges at
//! random moments), so kills also land inside them.

use sluice_core::{CreateStream, Engine};
use sluice_storage::testing::Rng;
use sluice_tests::{CRASH_STREAM, all_shards, crash_engine_config, run_durable_writers};
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: sluice-engine-crash-writer DIR RUN [RESHARDS]";
    let dir = args.next().expect(usage);
    let run: u64 = args.next().and_then(|s| s.parse().ok()).expect(usage);
    let reshards: u64 = args.next().map_or(0, |s| s.parse().expect(usage));
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
        scope.spawn(|| reshard(&engine, run, reshards));
        run_durable_writers(&engine, CRASH_STREAM, run, 3);
    });
}

/// Splits (while fewer than 6 shards are open) or merges (otherwise) `count` times, at random
/// moments.
fn reshard(engine: &Engine, run: u64, count: u64) {
    let mut rng = Rng::new(run ^ 0x5EED);
    for _ in 0..count {
        std::thread::sleep(Duration::from_millis(5 + rng.below(40)));
        let mut open: Vec<_> = all_shards(engine, CRASH_STREAM)
            .into_iter()
            .filter(|s| s.ending_sequence_number.is_none())
            .collect();
        open.sort_by_key(|s| s.hash_key_range.start);
        let result = if open.len() < 6 && rng.below(2) == 0 || open.len() < 2 {
            let shard = &open[rng.below(open.len() as u64) as usize];
            let range = shard.hash_key_range;
            let key = range.start + (range.end - range.start) / 2;
            engine
                .stream(CRASH_STREAM)
                .unwrap()
                .split_shard(&shard.shard_id, &key.to_string())
                .wait()
                .map(drop)
        } else {
            let i = rng.below(open.len() as u64 - 1) as usize;
            engine
                .stream(CRASH_STREAM)
                .unwrap()
                .merge_shards(&open[i].shard_id, &open[i + 1].shard_id)
                .wait()
                .map(drop)
        };
        result.expect("reshard");
    }
}
