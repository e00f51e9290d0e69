//! The README's consumer: reads every record of the stream `orders` in
//! ./sluice-example-data from the start, every shard, and prints them.

use sluice_core::{AdminError, CreateStream, Engine, EngineConfig};

fn main() -> Result<(), sluice_core::Error> {
    let engine = Engine::open(EngineConfig::new("sluice-example-data"))?;
    let orders = match engine.stream("orders") {
        Ok(orders) => orders,
        Err(AdminError::StreamNotFound { .. }) => engine
            .create_stream(CreateStream::provisioned("orders", 2))
            .wait()?,
        Err(other) => return Err(other.into()),
    };
    let open_shards = orders.summary()?.open_shard_count;
    // Every shard from its oldest record (TRIM_HORIZON), in turn; parents before children.
    let mut reader = orders.reader()?;
    let (mut records, mut empty_reads_in_a_row) = (0, 0);
    // Up to the end of what is there: each open shard answered once with nothing new.
    while empty_reads_in_a_row < open_shards {
        let Some(batch) = reader.read(Some(1000))? else {
            break; // every shard ended (merged or split away) and was read to its end
        };
        let before = records;
        for record in batch.records.records() {
            let data = String::from_utf8_lossy(record.data); // borrowed from the log, not copied
            let (shard, seq, key) = (
                &batch.shard_id,
                record.sequence_number,
                record.partition_key,
            );
            println!("{shard} {seq} {key}: {data}");
            records += 1;
        }
        empty_reads_in_a_row = if records == before {
            empty_reads_in_a_row + 1
        } else {
            0
        };
    }
    println!("{records} records");
    Ok(())
}
