//! Child of the crash tests: opens the shard log in `$1`, prints `ready <next_seq>`, appends
//! batches forever with a mix of durable and visible acknowledgements, and prints
//! `durable <end_seq>` after each durable acknowledgement and `visible <end_seq>` after each
//! visible one. The parent kills it with SIGKILL at a random moment. With `hold` as `$3`, after
//! each visible acknowledgement it waits for a line on stdin before going on, so the parent can
//! also kill it while records are visible that no sync has covered (and no sync is running).

use sluice_storage::runtime::block_on;
use sluice_storage::testing::Rng;
use sluice_storage::{Durability, GlommioIo, RecordIn, ShardLog, SystemClock};
use sluice_tests::{crash_log_config, record_data, record_key};
use std::io::Write;
use std::sync::Arc;

fn main() {
    let usage = "usage: sluice-crash-writer DIR SEED [hold]";
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect(usage);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).expect(usage);
    let hold = match args.next().as_deref() {
        None => false,
        Some("hold") => true,
        Some(_) => panic!("{usage}"),
    };
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
            let word = match durability {
                Durability::Durable => "durable",
                Durability::Visible => "visible",
            };
            writeln!(out, "{word} {}", appended.end_seq()).unwrap();
            out.flush().unwrap();
            if hold && durability == Durability::Visible {
                let mut go = String::new();
                std::io::stdin().read_line(&mut go).expect("stdin");
                assert_eq!(go, "go\n", "the parent lets the writer go on");
            }
        }
    });
}
