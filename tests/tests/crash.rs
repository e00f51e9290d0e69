//! Kill -9 while a real process appends: every record acknowledged as durable survives, in
//! order and intact, and nothing corrupt is ever returned. Cycles: SLUICE_CRASH_CYCLES (default
//! 25); seed: SLUICE_CRASH_SEED (printed on failure).

use sluice_storage::testing::Rng;
use sluice_tests::crash::{Kill, check_crash_log, run_crash_writer};
use sluice_tests::{crash_seed, env_u64};
use std::path::Path;
use std::time::Duration;

#[test]
fn kill_9_during_appends_never_loses_a_durable_record() {
    let cycles = env_u64("SLUICE_CRASH_CYCLES").unwrap_or(25);
    let seed = crash_seed();
    println!("crash test: {cycles} cycles, SLUICE_CRASH_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(seed);
    let mut durable_floor = 0u64;
    for cycle in 0..cycles {
        let after = Duration::from_millis(2 + rng.below(60));
        let acked = run_crash_writer(writer(), dir.path(), rng.next_u64(), Kill::At(after));
        durable_floor = durable_floor.max(acked.durable);
        let recovered = check_crash_log(dir.path());
        assert!(
            recovered >= durable_floor,
            "cycle {cycle} (SLUICE_CRASH_SEED={seed}): {recovered} records back, {durable_floor} acknowledged durable"
        );
        // Visible-only records may be lost; the next child continues from what recovered.
        durable_floor = durable_floor.min(recovered);
    }
}

/// The child: `sluice-crash-writer`.
fn writer() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sluice-crash-writer"))
}
