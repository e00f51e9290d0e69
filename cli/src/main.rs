//! `sluice`: the command-line entry point. `sluice serve` runs a Kinesis-compatible endpoint;
//! `sluice bench` is a load generator for the engine; `sluice inspect` shows what a data
//! directory holds and the disk it takes; `sluice repair-metadata` checks and repairs a data
//! directory's metadata log; `sluice agent` tails log files into streams, as the Kinesis
//! Agent does; `sluice usage` prints what a server metered, in billing units.

mod agent;
#[cfg(feature = "cluster")]
mod cluster;
mod inspect;
mod repair;
mod serve;
mod uring;
mod usage;

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
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once at start; the server's options are simply many"
)]
enum Command {
    /// Serve the Kinesis Data Streams API (JSON and CBOR, HTTP/1.1 and h2c) on a data
    /// directory, for the AWS CLI, boto3 and the AWS SDKs.
    Serve(serve::ServeArgs),
    /// Put a volume of records into a stream through the engine, read every shard back and
    /// reopen; print throughput and latency.
    Bench(sluice_loadgen::BenchArgs),
    /// Show the streams and shards of a data directory and the disk each takes: segment
    /// files, live and reusable segments (the server on it must be stopped).
    Inspect(inspect::InspectArgs),
    /// Check a data directory's metadata log and, with --apply, repair one damaged before its
    /// end (the engine refuses to open it): the damaged file is copied aside and the log is
    /// rewritten with every valid entry.
    RepairMetadata(repair::RepairMetadataArgs),
    /// Tail log files into streams and delivery streams, as the Kinesis Agent does, from its
    /// agent.json: through rotation, with its processing options, checkpointing what was
    /// acknowledged.
    Agent(agent::AgentArgs),
    /// Print what a running `sluice serve` metered, in Kinesis' and Firehose's billing units
    /// (shard-hours, PUT payload units, GB...), per account, region and stream, and with
    /// --prices a cost estimate.
    Usage(usage::UsageArgs),
    /// Show a cluster of `sluice serve --cluster` nodes, asked of any node: nodes,
    /// controller, shards, leaders and each replica's lag.
    #[cfg(feature = "cluster")]
    Cluster(cluster::ClusterArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve::run(args),
        Command::Bench(args) => sluice_loadgen::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::RepairMetadata(args) => repair::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Usage(args) => usage::run(args),
        #[cfg(feature = "cluster")]
        Command::Cluster(args) => cluster::run(args),
    }
}
