//! Child of the resharding crash test. `$1` data dir, `$2` run, `$3` the step to stop at
//! (children-opened, committed, parents-closed, applied, endings-recorded), `$4` split or
//! merge. Writers put
//! durably (printing `ack <writer> <n>`); after their first acknowledgements the main thread
//! starts the reshard, whose observer prints `at <step>` at the chosen step and then holds
//! the control thread until the parent kills the process.

use sluice_core::{CreateStream, Engine, ReshardStep};
use sluice_tests::{CRASH_STREAM, crash_engine_config, run_durable_writers};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

fn step_named(name: &str) -> ReshardStep {
    match name {
        "children-opened" => ReshardStep::ChildrenOpened,
        "parents-closed" => ReshardStep::ParentsClosed,
        "committed" => ReshardStep::Committed,
        "applied" => ReshardStep::Applied,
        "endings-recorded" => ReshardStep::EndingsRecorded,
        other => panic!("unknown step {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: sluice-reshard-crash-writer DIR RUN STEP split|merge";
    let [dir, run, step, op] = args.as_slice() else {
        panic!("{usage}")
    };
    let run: u64 = run.parse().expect(usage);
    let stop_at = step_named(step);
    let mut config = crash_engine_config(dir.as_ref());
    config.testing.reshard_observer = Some(Arc::new(move |step| {
        if step == stop_at {
            println!("at {step:?}");
            std::io::stdout().flush().expect("stdout");
            // Hold the control thread here until SIGKILL.
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
    }));
    let engine = Engine::open(config).expect("open");
    if engine.stream(CRASH_STREAM).is_err() {
        engine
            .create_stream(CreateStream::provisioned(CRASH_STREAM, 4))
            .wait()
            .expect("create");
    }
    std::thread::scope(|scope| {
        scope.spawn(|| run_durable_writers(&engine, CRASH_STREAM, run, 3));
        std::thread::sleep(Duration::from_millis(100));
        let mut open: Vec<_> = engine
            .stream(CRASH_STREAM)
            .unwrap()
            .describe(Some(100), None)
            .expect("describe")
            .shards
            .into_iter()
            .filter(|s| s.ending_sequence_number.is_none())
            .collect();
        open.sort_by_key(|s| s.hash_key_range.start);
        if op == "split" {
            let widest = open
                .iter()
                .max_by_key(|s| s.hash_key_range.end - s.hash_key_range.start)
                .expect("an open shard");
            let range = widest.hash_key_range;
            let middle = range.start + (range.end - range.start) / 2;
            engine
                .stream(CRASH_STREAM)
                .unwrap()
                .split_shard(&widest.shard_id, &middle.to_string())
                .wait()
                .expect("split");
        } else {
            engine
                .stream(CRASH_STREAM)
                .unwrap()
                .merge_shards(&open[0].shard_id, &open[1].shard_id)
                .wait()
                .expect("merge");
        }
        println!("done");
        std::io::stdout().flush().expect("stdout");
    });
}
