//! `sluice`: the command-line entry point. Today it runs `sluice bench`, a load generator for
//! the storage engine; `serve` and `inspect` come with later layers.

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
    /// Write and read back a volume of records through one shard log; print throughput and
    /// latency.
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Bench(args) => bench::run(args),
    }
}
