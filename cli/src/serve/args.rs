//! `sluice serve`'s options: each also read from a `SLUICE_*` environment variable (a flag
//! given on the command line wins), and the server configuration made from them.

use clap::builder::FalseyValueParser;
use clap::{Args, ValueEnum};
use sluice_core::{Durability, SyncScope};
use sluice_server::ServeConfig;
use sluice_server::config::Credential;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// When a put is acknowledged.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DurabilityArg {
    /// After the record's group commit reached disk (fdatasync): survives a power loss.
    Durable,
    /// Once readers can see it: survives a crash of the server, not of the machine.
    Visible,
}

/// What a durable put's sync covers.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SyncScopeArg {
    /// Each shard fdatasyncs its own segment files.
    File,
    /// One syncfs of the data directory's filesystem answers every shard at once (Linux 5.17
    /// or later; it also writes back other programs' dirty files on that filesystem, and a
    /// failed one makes every shard refuse puts until a restart).
    Filesystem,
}

impl From<DurabilityArg> for Durability {
    fn from(arg: DurabilityArg) -> Durability {
        match arg {
            DurabilityArg::Durable => Durability::Durable,
            DurabilityArg::Visible => Durability::Visible,
        }
    }
}

impl From<SyncScopeArg> for SyncScope {
    fn from(arg: SyncScopeArg) -> SyncScope {
        match arg {
            SyncScopeArg::File => SyncScope::PerFile,
            SyncScopeArg::Filesystem => SyncScope::Filesystem,
        }
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:4567")]
    pub listen: SocketAddr,
    /// Data directory (created if missing), relative to the working directory.
    #[arg(long, env = "SLUICE_DIR", default_value = "sluice-data")]
    pub dir: PathBuf,
    /// Keep the data in a new temporary directory (under $TMPDIR) and remove it when the
    /// server stops (Ctrl-C or SIGTERM), for tests. Also allows the reset of --allow-reset.
    #[arg(long, env = "SLUICE_EPHEMERAL", conflicts_with = "dir", value_parser = FalseyValueParser::new())]
    pub ephemeral: bool,
    /// Accept `POST /_sluice/reset`, which deletes every stream of every account and region
    /// and keeps serving (for test suites; not authenticated, so only on test servers).
    /// On with --ephemeral.
    #[arg(long, env = "SLUICE_ALLOW_RESET", value_parser = FalseyValueParser::new())]
    pub allow_reset: bool,
    /// When puts are acknowledged.
    #[arg(long, env = "SLUICE_DURABILITY", value_enum, default_value = "durable")]
    pub durability: DurabilityArg,
    /// What a durable put's sync covers: `file` (each shard's own segment files) or
    /// `filesystem` (one syncfs for every shard: much faster with many shards; give the data
    /// directory a filesystem of its own).
    #[arg(long, env = "SLUICE_SYNC_SCOPE", value_enum, default_value = "file")]
    pub sync_scope: SyncScopeArg,
    /// Region in ARNs.
    #[arg(long, env = "SLUICE_REGION", default_value = "us-east-1")]
    pub region: String,
    /// 12-digit account id in ARNs and messages.
    #[arg(long, env = "SLUICE_ACCOUNT", default_value = "000000000000")]
    pub account: String,
    /// Report CREATING/UPDATING for this long after a change (ms).
    #[arg(long, env = "SLUICE_STATUS_DELAY_MS", default_value_t = 0)]
    pub status_delay_ms: u64,
    /// Enforce Kinesis' per-shard throughput limits.
    #[arg(long, env = "SLUICE_ENFORCE_LIMITS", value_parser = FalseyValueParser::new())]
    pub enforce_limits: bool,
    /// Fail this fraction of data-plane calls (throttle or internal failure), for testing
    /// consumers' retries.
    #[arg(long, env = "SLUICE_FAULT_PROBABILITY", default_value_t = 0.0)]
    pub fault_probability: f64,
    /// Engine core threads (0: one per CPU).
    #[arg(long, env = "SLUICE_CORES", default_value_t = 0)]
    pub cores: usize,
    /// Low-latency mode: each engine core polls for this many µs before parking when idle
    /// (0: parks at once). Each core then keeps its CPU busy while it waits: for machines
    /// with CPUs to spare for the engine.
    #[arg(long, env = "SLUICE_SPIN_US", default_value_t = 0)]
    pub spin_us: u64,
    /// UpdateShardCount calls allowed per stream in any 24 hours (Kinesis: 10; 0: no limit).
    #[arg(
        long,
        env = "SLUICE_UPDATE_SHARD_COUNT_PER_DAY_MAX",
        default_value_t = 10
    )]
    pub update_shard_count_per_day_max: u32,
    /// Segment size of shard logs, MiB.
    #[arg(long, env = "SLUICE_SEGMENT_MIB", default_value_t = 64)]
    pub segment_mib: u64,
    /// Largest request body, MiB.
    #[arg(long, env = "SLUICE_BODY_MIB", default_value_t = 16)]
    pub body_mib: usize,
    /// Request body bytes held at once over all requests, MiB (at least --body-mib).
    #[arg(long, env = "SLUICE_BODY_BUDGET_MIB", default_value_t = 512)]
    pub body_budget_mib: usize,
    /// How long a SubscribeToShard stream lasts (ms; Kinesis: 5 minutes).
    #[arg(long, env = "SLUICE_SUBSCRIPTION_MS", default_value_t = 300_000)]
    pub subscription_ms: u64,
    /// Interval of the empty events an idle SubscribeToShard stream sends (ms).
    #[arg(long, env = "SLUICE_HEARTBEAT_MS", default_value_t = 5_000)]
    pub heartbeat_ms: u64,
    /// Encoded SubscribeToShard events held at once for clients over all subscriptions,
    /// MiB; when full, subscribers fall behind (heartbeats, MillisBehindLatest) until
    /// clients read.
    #[arg(long, env = "SLUICE_SUBSCRIPTION_BUDGET_MIB", default_value_t = 256)]
    pub subscription_budget_mib: usize,
    /// Verify SigV4 signatures against this credential, `ACCESS_KEY_ID:SECRET`,
    /// `ACCESS_KEY_ID:SECRET:ACCOUNT` (its requests act as that 12-digit account; the
    /// signature's region is the region) or, for temporary credentials,
    /// `ACCESS_KEY_ID:SECRET:[ACCOUNT]:SESSION_TOKEN` (every request must carry the token).
    /// Repeat for more (in the variable: separated by commas). Without any, requests are not
    /// authenticated, like other local endpoints, and act as --account in --region.
    #[arg(
        long = "credential",
        env = "SLUICE_CREDENTIALS",
        value_delimiter = ',',
        value_name = "ACCESS_KEY_ID:SECRET[:ACCOUNT[:SESSION_TOKEN]]"
    )]
    pub credentials: Vec<String>,
    /// Attach an identity policy (a JSON IAM policy document in FILE) to the credential
    /// ACCESS_KEY_ID: its requests may do what the policy allows. A credential without one
    /// may do anything in its account. Repeatable (in the variable: comma-separated).
    #[arg(
        long = "policy",
        env = "SLUICE_POLICIES",
        value_delimiter = ',',
        value_name = "ACCESS_KEY_ID=FILE"
    )]
    pub policies: Vec<String>,
    /// A region, besides --region and AWS' own, that signed requests may be scoped to
    /// (each region of each account is a tenant with its own engine). Repeatable.
    #[arg(
        long = "extra-region",
        env = "SLUICE_EXTRA_REGIONS",
        value_delimiter = ','
    )]
    pub extra_regions: Vec<String>,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, env = "SLUICE_CONNECTIONS_MAX", default_value_t = 4096)]
    pub connections_max: usize,
    /// Connections one client address may hold; more are closed at once. Behind a proxy or
    /// load balancer (one address for every client) set it to --connections-max.
    #[arg(
        long,
        env = "SLUICE_CONNECTIONS_PER_ADDRESS_MAX",
        default_value_t = 1024
    )]
    pub connections_per_address_max: usize,
    /// A new connection that has not begun a request within this is closed (ms; TLS
    /// handshake included).
    #[arg(
        long,
        env = "SLUICE_FIRST_REQUEST_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub first_request_timeout_ms: u64,
    /// A connection idle this long between requests is closed (ms).
    #[arg(long, env = "SLUICE_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// A connection whose requests make no progress this long (no request bytes arrive, no
    /// reply bytes are read: a subscriber that stopped reading) is closed (ms).
    #[arg(long, env = "SLUICE_STALL_TIMEOUT_MS", default_value_t = 60_000)]
    pub stall_timeout_ms: u64,
    /// Serve TLS (HTTP/2 and HTTP/1.1 by ALPN) with this PEM certificate chain; needs
    /// --tls-key. Read again on SIGHUP (new connections get the renewed certificate).
    #[arg(long, env = "SLUICE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "SLUICE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve `/metrics` only with `Authorization: Bearer <this token>` (Prometheus:
    /// `authorization: {credentials: ...}`). A server with --credential serves `/metrics`
    /// on its Kinesis listener only with a token.
    #[arg(long, env = "SLUICE_METRICS_TOKEN")]
    pub metrics_token: Option<String>,
    /// Hours of one-minute datapoints kept for the CloudWatch calls (GetMetricStatistics,
    /// GetMetricData, ListMetrics; PutMetricData's custom metrics included).
    #[arg(long, env = "SLUICE_METRICS_RETENTION_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=24 * 455))]
    pub metrics_retention_hours: u64,
    /// A URL (`http://host[:port][/path]`) under which CloudWatch alarm actions may POST
    /// their state changes (repeatable): the same host, the same port (any, when none is
    /// given), a path under the given one. None by default: an alarm then notifies Kinesis
    /// streams only, and cannot make the server call addresses only it can reach.
    #[arg(
        long = "alarm-action-url",
        env = "SLUICE_ALARM_ACTION_URLS",
        value_delimiter = ','
    )]
    pub alarm_action_urls: Vec<String>,
    /// Where Firehose delivers, and analytics applications read reference data: bucket `b`
    /// (`arn:aws:s3:::b`) is the directory `<DIR>/b/`, for every account. Default:
    /// `<data dir>/firehose-buckets`.
    #[arg(long, env = "SLUICE_FIREHOSE_BUCKET_DIR")]
    pub firehose_bucket_dir: Option<PathBuf>,
    /// Firehose delivers to S3 buckets at this endpoint instead (an S3-compatible server, or
    /// `https://s3.<region>.amazonaws.com`), with the credentials and region of the `AWS_*`
    /// environment. Needs a build with the `s3` feature.
    #[arg(
        long,
        env = "SLUICE_FIREHOSE_S3_ENDPOINT",
        conflicts_with = "firehose_bucket_dir"
    )]
    pub firehose_s3_endpoint: Option<String>,
    /// Firehose's Lambda processors invoke their functions at this endpoint
    /// (`http://HOST:PORT`, a server of Lambda's Invoke API such as `sam local
    /// start-lambda`), by the name in their `LambdaArn`.
    #[arg(long, env = "SLUICE_FIREHOSE_LAMBDA_ENDPOINT")]
    pub firehose_lambda_endpoint: Option<String>,
    /// Seconds an HTTP endpoint destination has to answer a delivery request before it is
    /// tried again (Firehose gives three minutes).
    #[arg(long, env = "SLUICE_FIREHOSE_HTTP_TIMEOUT", default_value_t = 180,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub firehose_http_timeout: u64,
    /// Where record format conversion (to Parquet) finds its schemas: Glue table `T` of
    /// database `D` is `<DIR>/D/T.json`, as `aws glue get-table` prints it. Default:
    /// `<data dir>/glue`. Conversion needs a build with the `parquet` feature.
    #[arg(long, env = "SLUICE_FIREHOSE_GLUE_DIR")]
    pub firehose_glue_dir: Option<PathBuf>,
    /// Serve `/metrics` and `/health` on this address instead (without authentication:
    /// bind it where only the monitoring reaches), and not on the Kinesis listener.
    #[arg(long, env = "SLUICE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Print the bound address as the first line on stdout and flush (for scripts and
    /// tests that listen on port 0).
    #[arg(long, env = "SLUICE_PRINT_ADDRESS", value_parser = FalseyValueParser::new())]
    pub print_address: bool,
    /// Cluster mode (the `cluster` feature).
    #[cfg(feature = "cluster")]
    #[command(flatten)]
    pub cluster: super::cluster::ClusterArgs,
}

/// The server's configuration from the command line, each value checked, on `data_dir`
/// (--dir, or the temporary directory of --ephemeral).
pub fn serve_config(args: &ServeArgs, data_dir: &Path) -> anyhow::Result<ServeConfig> {
    anyhow::ensure!(
        args.account.len() == 12 && args.account.bytes().all(|b| b.is_ascii_digit()),
        "--account must be 12 digits"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.fault_probability),
        "--fault-probability must be between 0 and 1"
    );
    let mut config = ServeConfig::new(data_dir);
    config.listen = args.listen;
    config.durability = args.durability.into();
    config.sync_scope = args.sync_scope.into();
    config.region = args.region.clone();
    config.account = args.account.clone();
    config.status_delay_ms = args.status_delay_ms;
    config.enforce_limits = args.enforce_limits;
    config.fault_probability = args.fault_probability;
    config.cores = args.cores;
    anyhow::ensure!(
        args.spin_us <= 1_000_000,
        "--spin-us is at most 1000000 (one second)"
    );
    config.core_spin_us = args.spin_us;
    config.update_shard_count_per_day_max = args.update_shard_count_per_day_max;
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
    anyhow::ensure!(
        args.subscription_budget_mib > 0,
        "--subscription-budget-mib must be positive"
    );
    config.subscription_bytes_in_flight_max = args.subscription_budget_mib << 20;
    config.heartbeat_ms = args.heartbeat_ms;
    for credential in &args.credentials {
        config.credentials.push(parse_credential(credential)?);
    }
    for policy in &args.policies {
        attach_policy(&mut config.credentials, policy)?;
    }
    for region in std::iter::once(&args.region).chain(&args.extra_regions) {
        anyhow::ensure!(
            sluice_server::regions::is_region_name(region),
            "{region:?} is not a region name (like us-east-1)"
        );
    }
    config.extra_regions = args.extra_regions.clone();
    anyhow::ensure!(
        args.connections_max > 0 && args.connections_per_address_max > 0,
        "--connections-max and --connections-per-address-max must be positive"
    );
    config.connections_max = args.connections_max;
    config.connections_per_address_max = args.connections_per_address_max.min(args.connections_max);
    anyhow::ensure!(
        args.first_request_timeout_ms > 0 && args.idle_timeout_ms > 0 && args.stall_timeout_ms > 0,
        "--first-request-timeout-ms, --idle-timeout-ms and --stall-timeout-ms must be positive"
    );
    config.stall_timeout_ms = args.stall_timeout_ms;
    config.first_request_timeout_ms = args.first_request_timeout_ms;
    config.idle_timeout_ms = args.idle_timeout_ms;
    config.allow_reset = args.allow_reset || args.ephemeral;
    anyhow::ensure!(
        args.metrics_token.as_ref().is_none_or(|t| t.len() >= 16),
        "--metrics-token must be at least 16 characters"
    );
    config.metrics_token = args.metrics_token.clone();
    cloudwatch_config(args, &mut config)?;
    firehose_config(args, &mut config)?;
    Ok(config)
}

/// The Firehose layer's options.
/// The CloudWatch layer's settings: metric retention, the URLs alarm actions may call.
fn cloudwatch_config(args: &ServeArgs, config: &mut ServeConfig) -> anyhow::Result<()> {
    config.metrics_retention_hours = args.metrics_retention_hours;
    for url in &args.alarm_action_urls {
        anyhow::ensure!(
            sluice_server::cloudwatch::alarms::url_allowed(url, std::slice::from_ref(url)),
            "--alarm-action-url {url}: give an http://host[:port][/path] URL (no user part)"
        );
    }
    config.alarm_action_urls = args.alarm_action_urls.clone();
    Ok(())
}

fn firehose_config(args: &ServeArgs, config: &mut ServeConfig) -> anyhow::Result<()> {
    config.firehose_bucket_dir = args.firehose_bucket_dir.clone();
    anyhow::ensure!(
        args.firehose_s3_endpoint.is_none() || cfg!(feature = "s3"),
        "--firehose-s3-endpoint needs a build with the `s3` feature (cargo build --release --features s3)"
    );
    config.firehose_s3_endpoint = args.firehose_s3_endpoint.clone();
    config.firehose_lambda_endpoint = args.firehose_lambda_endpoint.clone();
    config.firehose_http_timeout_ms = args.firehose_http_timeout * 1000;
    config.firehose_glue_dir = args.firehose_glue_dir.clone();
    Ok(())
}

/// `ACCESS_KEY_ID=FILE`: the policy in FILE, checked, on that credential.
fn attach_policy(credentials: &mut [Credential], text: &str) -> anyhow::Result<()> {
    let (key, file) = text
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("--policy takes ACCESS_KEY_ID=FILE, not {text:?}"))?;
    let credential = credentials
        .iter_mut()
        .find(|c| c.access_key_id == key)
        .ok_or_else(|| anyhow::anyhow!("--policy names {key}, which no --credential has"))?;
    anyhow::ensure!(
        credential.policy.is_none(),
        "--policy is given twice for {key}: put every statement in one document"
    );
    let document = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("reading the policy of {key} from {file}: {e}"))?;
    sluice_server::iam::Policy::parse(&document)
        .map_err(|e| anyhow::anyhow!("the policy of {key} in {file}: {e}"))?;
    credential.policy = Some(document);
    Ok(())
}

fn parse_credential(text: &str) -> anyhow::Result<Credential> {
    const FORM: &str = "--credential takes ACCESS_KEY_ID:SECRET[:ACCOUNT[:SESSION_TOKEN]]";
    let parts: Vec<&str> = text.split(':').collect();
    let (key, secret, account, token) = match parts[..] {
        [key, secret] => (key, secret, None, None),
        [key, secret, account] => (key, secret, Some(account), None),
        [key, secret, account, token] => (key, secret, Some(account), Some(token)),
        _ => anyhow::bail!(FORM),
    };
    let account = account.filter(|a| !a.is_empty());
    anyhow::ensure!(!key.is_empty() && !secret.is_empty(), FORM);
    anyhow::ensure!(token.is_none_or(|t| !t.is_empty()), FORM);
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
        session_token: token.map(str::to_owned),
        policy: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn config(args: &[&str]) -> anyhow::Result<ServeConfig> {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .expect("the arguments parse");
        serve_config(&cli.serve, Path::new("/nonexistent"))
    }

    #[test]
    fn sync_scope_reaches_the_engine() {
        assert_eq!(config(&[]).unwrap().sync_scope, SyncScope::PerFile);
        assert_eq!(
            config(&["--sync-scope", "filesystem"]).unwrap().sync_scope,
            SyncScope::Filesystem
        );
    }

    #[test]
    fn spin_us_reaches_the_engine_and_is_bounded() {
        assert_eq!(config(&["--spin-us", "50"]).unwrap().core_spin_us, 50);
        assert_eq!(
            config(&[]).unwrap().core_spin_us,
            0,
            "parks at once by default"
        );
        let refused = config(&["--spin-us", "2000000"]).unwrap_err().to_string();
        assert!(refused.contains("--spin-us is at most"), "{refused}");
    }
}
