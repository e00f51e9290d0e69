//! `sluice agent`: the Kinesis Agent for Sluice. Reads an agent.json, tails its flows' files
//! into their streams and delivery streams, and checkpoints what was acknowledged, until
//! SIGINT or SIGTERM.

use anyhow::Context;
use sluice_agent::config::AgentConfig;
use sluice_agent::run::Agent;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// The agent's configuration, in the Kinesis Agent's agent.json format.
    #[arg(
        long,
        env = "SLUICE_AGENT_CONFIG",
        default_value = "/etc/aws-kinesis/agent.json"
    )]
    config: PathBuf,
    /// How often to print each flow's counters, in seconds (0: never).
    #[arg(long, default_value_t = 30)]
    report_seconds: u64,
}

pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    let config = AgentConfig::read(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    for key in &config.ignored {
        eprintln!("sluice agent: {key} is not used");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the agent's runtime")?;
    runtime.block_on(async {
        let mut agent = Agent::new(&config)?;
        for flow in &config.flows {
            eprintln!("sluice agent: flow {}", flow.id);
        }
        eprintln!(
            "sluice agent: checkpoints in {}",
            config.checkpoint_file.display()
        );
        let stop = agent.stopper();
        tokio::spawn(async move {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            stop.store(true, Ordering::Relaxed);
        });
        let every = match args.report_seconds {
            0 => Duration::MAX,
            n => Duration::from_secs(n),
        };
        agent
            .run(every, |stats| {
                for (flow, s) in stats {
                    eprintln!(
                        "sluice agent: {flow}: {} read, {} sent, {} dropped by processing, {} truncated, {} retries",
                        s.read, s.sent, s.dropped, s.truncated, s.retries
                    );
                }
            })
            .await?;
        Ok(())
    })
}
