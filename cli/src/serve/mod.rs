//! `sluice serve`: arguments, start-up and shutdown.

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use metrics_exporter_prometheus::PrometheusHandle;
use sluice_core::Durability;
use sluice_server::config::Credential;
use sluice_server::{ServeConfig, Service};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// When a put is acknowledged.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DurabilityArg {
    /// After the record's group commit reached disk (fdatasync): survives a power loss.
    Durable,
    /// Once readers can see it: survives a crash of the server, not of the machine.
    Visible,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4567")]
    listen: SocketAddr,
    /// Data directory (created if missing). Default: ./sluice-data.
    #[arg(long, default_value = "sluice-data")]
    dir: PathBuf,
    /// When puts are acknowledged.
    #[arg(long, value_enum, default_value = "durable")]
    durability: DurabilityArg,
    /// Region in ARNs.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// 12-digit account id in ARNs and messages.
    #[arg(long, default_value = "000000000000")]
    account: String,
    /// Report CREATING/UPDATING for this long after a change (ms).
    #[arg(long, default_value_t = 0)]
    status_delay_ms: u64,
    /// Enforce Kinesis' per-shard throughput limits.
    #[arg(long)]
    enforce_limits: bool,
    /// Fail this fraction of data-plane calls (throttle or internal failure), for testing
    /// consumers' retries.
    #[arg(long, default_value_t = 0.0)]
    fault_probability: f64,
    /// Engine core threads (0: one per CPU).
    #[arg(long, default_value_t = 0)]
    cores: usize,
    /// Segment size of shard logs, MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Largest request body, MiB.
    #[arg(long, default_value_t = 16)]
    body_mib: usize,
    /// Request body bytes held at once over all requests, MiB (at least --body-mib).
    #[arg(long, default_value_t = 512)]
    body_budget_mib: usize,
    /// How long a SubscribeToShard stream lasts (ms; Kinesis: 5 minutes).
    #[arg(long, default_value_t = 300_000)]
    subscription_ms: u64,
    /// Interval of the empty events an idle SubscribeToShard stream sends (ms).
    #[arg(long, default_value_t = 5_000)]
    heartbeat_ms: u64,
    /// Verify SigV4 signatures against this credential, `ACCESS_KEY_ID:SECRET` or
    /// `ACCESS_KEY_ID:SECRET:ACCOUNT` (its requests act as that 12-digit account; the
    /// signature's region is the region). Repeat for more. Without any, requests are not
    /// authenticated, like other local endpoints, and act as --account in --region.
    #[arg(long = "credential", value_name = "ACCESS_KEY_ID:SECRET[:ACCOUNT]")]
    credentials: Vec<String>,
    /// Serve TLS (HTTP/2 and HTTP/1.1 by ALPN) with this PEM certificate chain; needs
    /// --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Print the bound address as the first line on stdout and flush (for scripts and
    /// tests that listen on port 0).
    #[arg(long)]
    print_address: bool,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = serve_config(&args)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(sluice_server::tls::acceptor(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let metrics = install_metrics()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice-http")
        .build()?;
    let service =
        Arc::new(Service::open(config.clone()).with_context(|| {
            format!("opening the data directory {}", config.data_dir.display())
        })?);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let address = listener.local_addr()?;
        if args.print_address {
            use std::io::Write as _;
            println!("{address}");
            std::io::stdout().flush()?;
        }
        let auth = if config.credentials.is_empty() { "no authentication" } else { "SigV4 verified" };
        eprintln!(
            "sluice serve: {auth}; Kinesis endpoint on {scheme}://{address} (HTTP/1.1 and HTTP/2), data in {}, {:?} puts",
            config.data_dir.display(),
            config.durability
        );
        eprintln!("  try: aws kinesis list-streams --endpoint-url {scheme}://{address} --region {}", config.region);
        let upkeep = metrics.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
        sluice_server::http::serve(service, listener, tls, Some(metrics), shutdown_signal()).await?;
        eprintln!("sluice serve: stopped");
        anyhow::Ok(())
    })
}

/// The server's configuration from the command line, each value checked.
fn serve_config(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    anyhow::ensure!(
        args.account.len() == 12 && args.account.bytes().all(|b| b.is_ascii_digit()),
        "--account must be 12 digits"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.fault_probability),
        "--fault-probability must be between 0 and 1"
    );
    let mut config = ServeConfig::new(&args.dir);
    config.listen = args.listen;
    config.durability = match args.durability {
        DurabilityArg::Durable => Durability::Durable,
        DurabilityArg::Visible => Durability::Visible,
    };
    config.region = args.region.clone();
    config.account = args.account.clone();
    config.status_delay_ms = args.status_delay_ms;
    config.enforce_limits = args.enforce_limits;
    config.fault_probability = args.fault_probability;
    config.cores = args.cores;
    config.segment_size_bytes = args.segment_mib << 20;
    anyhow::ensure!(
        (1..=256).contains(&args.body_mib),
        "--body-mib must be between 1 and 256"
    );
    config.body_bytes_max = args.body_mib << 20;
    config.body_bytes_in_flight_max = args.body_budget_mib.max(args.body_mib) << 20;
    anyhow::ensure!(
        args.subscription_ms > 0 && args.heartbeat_ms > 0,
        "--subscription-ms and --heartbeat-ms must be positive"
    );
    config.subscription_ms = args.subscription_ms;
    config.heartbeat_ms = args.heartbeat_ms;
    for credential in &args.credentials {
        config.credentials.push(parse_credential(credential)?);
    }
    Ok(config)
}

/// Installs the Prometheus recorder that `/metrics` renders.
fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    // Request latency as a real histogram (buckets from 100 µs to 10 s), not a summary, so
    // Prometheus can aggregate it across servers.
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("sluice_request_seconds".into()),
            &[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 10.0,
            ],
        )
        .context("configuring the latency buckets")?
        .install_recorder()
        .context("installing the metrics recorder")
}

fn parse_credential(text: &str) -> anyhow::Result<Credential> {
    let parts: Vec<&str> = text.split(':').collect();
    let (key, secret, account) = match parts[..] {
        [key, secret] => (key, secret, None),
        [key, secret, account] => (key, secret, Some(account)),
        _ => anyhow::bail!("--credential takes ACCESS_KEY_ID:SECRET[:ACCOUNT]"),
    };
    anyhow::ensure!(
        !key.is_empty() && !secret.is_empty(),
        "--credential takes ACCESS_KEY_ID:SECRET[:ACCOUNT]"
    );
    if let Some(account) = account {
        anyhow::ensure!(
            account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()),
            "the account of --credential must be 12 digits"
        );
    }
    Ok(Credential {
        access_key_id: key.to_owned(),
        secret: secret.to_owned(),
        account: account.map(str::to_owned),
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
