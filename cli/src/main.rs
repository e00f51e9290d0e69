//! `sluice`: the command-line entry point. `sluice serve` runs a Kinesis-compatible endpoint;
//! `sluice bench` is a load generator for the engine.

mod serve;
mod uring;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "Sluice: an embeddable Kinesis-compatible shard engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the Kinesis Data Streams API (JSON and CBOR, HTTP/1.1 and h2c) on a data
    /// directory, for the AWS CLI, boto3 and the AWS SDKs.
    Serve(serve::ServeArgs),
    /// Put a volume of records into a stream through the engine, read every shard back and
    /// reopen; print throughput and latency.
    Bench(sluice_loadgen::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve::run(args),
        Command::Bench(args) => sluice_loadgen::run(args),
    }
}
