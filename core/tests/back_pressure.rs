//! Back-pressure from the cores: callers beyond a core's queue and task limits wait their
//! turn, and every one completes.

mod common;

use sluice_core::{Engine, PutRecord};
use std::future::IntoFuture;

#[test]
fn with_a_tiny_queue_and_task_limit_many_concurrent_callers_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.core_queue_depth = 1;
    config.core_tasks_max = 2;
    let engine = Engine::open(config).unwrap();
    common::create(&engine, "narrow", 2);
    let acknowledged: usize = std::thread::scope(|scope| {
        let callers: Vec<_> = (0..12)
            .map(|t| {
                let engine = &engine;
                scope.spawn(move || {
                    let key = format!("caller-{t}");
                    let records: Vec<PutRecord<'_>> =
                        (0..20).map(|_| PutRecord::new(&key, b"v")).collect();
                    (0..10)
                        .map(|_| {
                            let results = futures_lite::future::block_on(
                                engine
                                    .stream("narrow")
                                    .unwrap()
                                    .put_batch(&records)
                                    .into_future(),
                            )
                            .unwrap();
                            results.iter().filter(|r| r.is_ok()).count()
                        })
                        .sum::<usize>()
                })
            })
            .collect();
        callers.into_iter().map(|c| c.join().unwrap()).sum()
    });
    assert_eq!(acknowledged, 12 * 10 * 20);
    let stored: usize = engine
        .stream("narrow")
        .unwrap()
        .describe(None, None)
        .unwrap()
        .shards
        .iter()
        .map(|s| common::read_shard(&engine, "narrow", &s.shard_id).len())
        .sum();
    assert_eq!(stored, acknowledged);
}
