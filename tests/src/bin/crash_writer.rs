//! Child of the crash test: opens the shard log in `$1`, appends batches forever with a mix of
//! durable and visible acknowledgements, and prints `durable <end_seq>` after each durable
//! acknowledgement. The parent kills it with SIGKILL at a random moment.

use sluice_storage::runtime::block_on;
use sluice_storage::testing::Rng;
use sluice_storage::{Durability, GlommioIo, RecordIn, ShardLog, SystemClock};
use sluice_tests::{crash_log_config, record_data, record_key};
use std::io::Write;
use std::sync::Arc;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: sluice-crash-writer DIR SEED");
    let seed: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .expect("usage: sluice-crash-writer DIR SEED");
    let config = crash_log_config();
    block_on(async move {
        let log = ShardLog::open(GlommioIo, dir.as_ref(), config, Arc::new(SystemClock))
            .await
            .expect("open");
        let mut rng = Rng::new(seed);
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready {}", log.next_seq()).unwrap();
        out.flush().unwrap();
        loop {
            let base = log.next_seq();
            let count = 1 + rng.below(40);
            let owned: Vec<(Vec<u8>, Vec<u8>)> = (base..base + count)
                .map(|s| (record_key(s), record_data(s)))
                .collect();
            let records: Vec<RecordIn<'_>> = owned
                .iter()
                .map(|(k, d)| RecordIn { key: k, data: d })
                .collect();
            let durability = if rng.below(4) == 0 {
                Durability::Visible
            } else {
                Durability::Durable
            };
            let appended = log.append(&records, durability).await.expect("append");
            assert_eq!(appended.base_seq, base);
            if rng.below(8) == 0 {
                // The owning core's housekeeping: seal full segments, prepare a spare.
                log.maintain().await.expect("maintain");
            }
            if durability == Durability::Durable {
                writeln!(out, "durable {}", appended.end_seq()).unwrap();
                out.flush().unwrap();
            }
        }
    });
}
