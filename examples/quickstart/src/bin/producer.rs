//! The README's producer: puts ten orders into the stream `orders` of an engine in
//! ./sluice-example-data, creating the stream on the first run.

use sluice_core::{AdminError, CreateStream, Engine, EngineConfig, PutRecord};

fn main() -> Result<(), sluice_core::Error> {
    // Creates the data directory the first time; one core thread per CPU.
    let engine = Engine::open(EngineConfig::new("sluice-example-data"))?;
    // Streams survive restarts: open it, or create it on the first run.
    let orders = match engine.stream("orders") {
        Ok(orders) => orders,
        Err(AdminError::StreamNotFound { .. }) => engine
            .create_stream(CreateStream::provisioned("orders", 2))
            .wait()?,
        Err(other) => return Err(other.into()),
    };
    for n in 0..10 {
        let customer = format!("customer-{}", n % 3); // the partition key picks the shard
        let order = format!("order {n}");
        // Durable by default: acknowledged once fdatasync'd.
        let put = orders
            .put(PutRecord::new(&customer, order.as_bytes()))
            .wait()?;
        println!(
            "{customer}: {order} -> {} {}",
            put.shard_id, put.sequence_number
        );
    }
    Ok(())
}
