//! Child of the engine crash test: opens the engine in `$1`, creates the stream if needed,
//! and runs writer threads that put batches durably forever. After each acknowledgement a
//! writer prints `ack <writer> <n_end>`: its records `0..n_end` of run `$2` are durable.

use sluice_core::{CreateStream, Engine};
use sluice_tests::{CRASH_STREAM, crash_engine_config, run_durable_writers};

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
    run_durable_writers(&engine, CRASH_STREAM, run, 3);
}
