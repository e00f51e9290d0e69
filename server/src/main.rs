//! `sluice`: the command-line entry point. Today it runs `sluice bench`, a load generator for
//! the engine; `serve` and `inspect` come with later layers.

mod bench;

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
    /// Put a volume of records into a stream through the engine, read every shard back and
    /// reopen; print throughput and latency.
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Bench(args) => bench::run(args),
    }
}
