//! Child of the engine crash test: opens the engine in `$1`, creates the stream if needed,
//! and runs writer threads that put batches durably forever. After each acknowledgement a
//! writer prints `ack <writer> <n_end>`: its records `0..n_end` of run `$2` are durable.
//! With `$3` > 0, another thread makes that many reshards meanwhile (splits and merges at
//! random moments), so kills also land inside them.

use sluice_core::{CreateStream, Engine};
use sluice_tests::{CRASH_STREAM, crash_engine_config, reshard_at_random, run_durable_writers};

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
        scope.spawn(|| reshard_at_random(&engine, CRASH_STREAM, run, reshards));
        run_durable_writers(&engine, CRASH_STREAM, run, 3);
    });
}
