//! `sluice serve`: start-up (the io_uring check, the data directory, the listener) and
//! shutdown.

mod args;
#[cfg(feature = "cluster")]
mod cluster;
mod hint;
mod reload;

use anyhow::Context as _;
use metrics_exporter_prometheus::PrometheusHandle;
use sluice_server::{ServeConfig, Service};
use std::path::PathBuf;
use std::sync::Arc;

pub use args::ServeArgs;

/// The data directory: --dir, or with --ephemeral a new temporary one, removed when this is
/// dropped (after the engine closed).
enum DataDir {
    Kept(PathBuf),
    Ephemeral(tempfile::TempDir),
}

impl DataDir {
    fn new(args: &ServeArgs) -> anyhow::Result<DataDir> {
        if !args.ephemeral {
            return Ok(DataDir::Kept(args.dir.clone()));
        }
        let dir = tempfile::Builder::new()
            .prefix("sluice-ephemeral-")
            .tempdir()
            .context("creating the --ephemeral data directory")?;
        Ok(DataDir::Ephemeral(dir))
    }

    fn path(&self) -> &std::path::Path {
        match self {
            DataDir::Kept(path) => path,
            DataDir::Ephemeral(dir) => dir.path(),
        }
    }

    fn describe(&self) -> String {
        match self {
            DataDir::Kept(path) => format!("data in {}", path.display()),
            DataDir::Ephemeral(dir) => format!(
                "ephemeral data in {} (removed when stopped; reset on)",
                dir.path().display()
            ),
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    crate::uring::check()?;
    raise_open_file_limit();
    // Declared before the runtime and the service, so dropped after them: the engine is
    // closed before its temporary directory is removed, on every path out of here.
    let data_dir = DataDir::new(&args)?;
    let config = args::serve_config(&args, data_dir.path())?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(sluice_server::tls::ServerTls::open(cert, key)?),
        _ => None,
    };
    let metrics = install_metrics()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice-http")
        .build()?;
    // Inside the runtime: a tenant with Firehose delivery streams starts their deliveries
    // as it opens.
    let entered = runtime.enter();
    let hangup = reload::take_hangup(&args)?;
    let service =
        Arc::new(Service::open(config.clone()).with_context(|| {
            format!("opening the data directory {}", config.data_dir.display())
        })?);
    drop(entered);
    let banner = Banner {
        scheme: if tls.is_some() { "https" } else { "http" },
        data: data_dir.describe(),
        print_address: args.print_address,
    };
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        // A cluster node joins before it says it is up (--print-address): by then it is
        // registered and other nodes may place replicas on it.
        #[cfg_attr(not(feature = "cluster"), allow(unused_mut))]
        let mut certificates = reload::Certificates::new(tls.clone());
        #[cfg(feature = "cluster")]
        let node = match args.cluster.cluster {
            true => {
                let endpoint = format!("{}://{}", banner.scheme, listener.local_addr()?);
                let (node, peer_tls) = cluster::join(&args.cluster, &service, endpoint).await?;
                certificates.peers = peer_tls;
                Some(node)
            }
            false => None,
        };
        certificates.reload_on(hangup);
        banner.print(&config, listener.local_addr()?)?;
        let on_kinesis_listener = serve_metrics(metrics, args.metrics_listen).await?;
        sluice_server::http::serve(
            service,
            listener,
            tls,
            on_kinesis_listener,
            shutdown_signal(),
        )
        .await?;
        // Leaves the cluster at once (its groups stop, its registration ends) rather than
        // when its lease runs out.
        #[cfg(feature = "cluster")]
        if let Some(node) = node {
            node.stop().await.context("leaving the cluster")?;
        }
        anyhow::Ok(())
    })?;
    // Stops the connections' and the upkeep's tasks, which hold the service (and so the
    // engine); then the data directory of --ephemeral goes.
    drop(runtime);
    drop(data_dir);
    eprintln!("sluice serve: stopped");
    Ok(())
}

/// Every shard holds a few descriptors (its lock, its segments) and every connection one:
/// the soft limit (often 1024) is raised to the hard one. Requests that would need more
/// than the limit allows are refused by the server (LimitExceededException).
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < 8_192 => eprintln!(
            "sluice serve: the open-file limit is {limit}; each shard needs about 3 (raise the hard limit: ulimit -Hn)"
        ),
        Ok(_) => {}
        Err(error) => eprintln!("sluice serve: could not raise the open-file limit: {error}"),
    }
}

/// The start-up lines.
struct Banner {
    scheme: &'static str,
    data: String,
    print_address: bool,
}

impl Banner {
    fn print(&self, config: &ServeConfig, address: std::net::SocketAddr) -> anyhow::Result<()> {
        if self.print_address {
            use std::io::Write as _;
            println!("{address}");
            std::io::stdout().flush()?;
        }
        let signed = !config.credentials.is_empty();
        let auth = if signed {
            "SigV4 verified"
        } else {
            "no authentication"
        };
        eprintln!(
            "sluice serve: {auth}; Kinesis endpoint on {}://{address} (HTTP/1.1 and HTTP/2), {}, {:?} puts",
            self.scheme, self.data, config.durability
        );
        eprintln!(
            "  try: {}",
            hint::try_command(self.scheme, address, &config.region, signed)
        );
        Ok(())
    }
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

/// Keeps the metrics' histograms rolling, and serves `/metrics` on `listen` when given; the
/// handle for the Kinesis listener to serve `/metrics` on when not.
async fn serve_metrics(
    metrics: PrometheusHandle,
    listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<Option<PrometheusHandle>> {
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let Some(address) = listen else {
        return Ok(Some(metrics));
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening for metrics on {address}"))?;
    eprintln!(
        "  metrics: http://{}/metrics (not authenticated)",
        listener.local_addr()?
    );
    let shutdown = std::future::pending::<()>();
    tokio::spawn(sluice_server::http::serve_metrics(
        listener, metrics, shutdown,
    ));
    Ok(None)
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
