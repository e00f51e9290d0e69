//! `sluice cluster`: what a cluster of `sluice serve --cluster` nodes is doing, asked of any
//! node (the `cluster` feature).

use anyhow::Context as _;
use clap::{Args, Subcommand};
use sluice_cluster::status::ClusterStatus;

/// Options of `sluice cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// The nodes, the controller, and every shard's replicas: which leads, each replica's
    /// term, log end and applied entry (its lag).
    Status(StatusArgs),
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// Any node's Kinesis endpoint.
    #[arg(long, default_value = "http://127.0.0.1:4567")]
    endpoint: String,
    /// The node's --metrics-token (needed when it verifies signatures).
    #[arg(long, env = "SLUICE_METRICS_TOKEN")]
    token: Option<String>,
    /// Print the node's JSON report as it is.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let ClusterCommand::Status(args) = args.command;
    let url = format!(
        "{}{}",
        args.endpoint.trim_end_matches('/'),
        sluice_server::cluster::STATUS_PATH
    );
    let body = crate::usage::get(&url, args.token.as_deref())?;
    let status: ClusterStatus =
        serde_json::from_slice(&body).context("the node's status report is not one")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", status.render());
    }
    Ok(())
}
