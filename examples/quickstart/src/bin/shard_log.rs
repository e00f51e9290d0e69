//! The README's storage example: one shard log used directly, without the engine, in
//! ./sluice-example-log.

use sluice_storage::runtime::block_on;
use sluice_storage::{
    Durability, GlommioIo, LogConfig, ReadLimits, RecordIn, ShardLog, SystemClock,
};
use std::sync::Arc;

fn main() -> Result<(), sluice_storage::StorageError> {
    // The log lives on the thread that opened it (a glommio executor on io_uring).
    block_on(async {
        let dir = std::path::Path::new("sluice-example-log"); // created if missing
        let log =
            ShardLog::open(GlommioIo, dir, LogConfig::default(), Arc::new(SystemClock)).await?;
        let record = RecordIn {
            key: b"user-1",
            data: b"hello",
        };
        let appended = log.append(&[record], Durability::Durable).await?;
        let reader = log.reader(); // Send + Sync: hand it to any thread
        for record in reader
            .read(appended.base_seq, ReadLimits::default())?
            .records()
        {
            println!("{} {:?}", record.seq, record.data); // borrowed from the mapping
        }
        log.maintain().await?; // the owning core's periodic housekeeping (every ~100 ms)
        Ok(())
    })
}
