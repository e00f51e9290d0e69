//! `sluice serve`'s settings.

use sluice_core::{Clock, Durability, SyncScope, SystemClock};
use sluice_storage::FilesystemSync;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// How the server runs. `ServeConfig::new` gives the defaults `sluice serve` uses.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The engine's data directory.
    pub data_dir: PathBuf,
    /// Where to listen (127.0.0.1:4567 by default; port 0 picks a free port).
    pub listen: SocketAddr,
    /// Region reported in ARNs.
    pub region: String,
    /// 12-digit account id reported in ARNs and messages.
    pub account: String,
    /// When a put is acknowledged: `Durable` (after fdatasync, the default) or `Visible`.
    pub durability: Durability,
    /// How long streams report CREATING/UPDATING/DELETING after a change (0: never).
    pub status_delay_ms: u64,
    /// Largest request body accepted; larger ones get HTTP 413.
    pub body_bytes_max: usize,
    /// Enforce Kinesis' per-shard throughput limits (1 MiB/s and 1000 records/s write,
    /// 2 MiB/s and 5 calls/s read).
    pub enforce_limits: bool,
    /// Probability per data-plane call of an injected ProvisionedThroughputExceeded or
    /// InternalFailure (0 by default), for testing consumers' resilience.
    pub fault_probability: f64,
    /// Engine core threads (0: one per CPU).
    pub cores: usize,
    /// µs an idle engine core polls for work before parking (0: parks at once). Lower
    /// latency for the first put after a pause, at the cost of a busy CPU per core.
    pub core_spin_us: u64,
    /// What a durable put's sync covers (each shard's files, or the data directory's
    /// filesystem at once).
    pub sync_scope: SyncScope,
    /// With `SyncScope::Filesystem`: the one filesystem syncer every tenant's engine shares
    /// (made by `Service::open` on the data directory when `None`).
    pub filesystem_sync: Option<FilesystemSync>,
    /// Shard log segment size.
    pub segment_size_bytes: u64,
    /// Open shards allowed over all streams (DescribeLimits' ShardLimit).
    pub shards_max: u32,
    /// UpdateShardCount calls per stream in any 24 hours (Kinesis: 10; 0: no limit).
    pub update_shard_count_per_day_max: u32,
    /// How long a SubscribeToShard stream lasts before the client must re-subscribe.
    pub subscription_ms: u64,
    /// Interval of the empty events a SubscribeToShard stream sends while idle.
    pub heartbeat_ms: u64,
    /// Bytes of encoded SubscribeToShard events held at once over all subscriptions (in
    /// the server, waiting for clients to read them). When full, subscriptions send
    /// heartbeats and fall behind until there is room.
    pub subscription_bytes_in_flight_max: usize,
    /// (account, region) pairs served, the configured one included; each has an engine.
    pub tenants_max: usize,
    /// Regions, besides `region` and AWS' own, that signed requests may be scoped to.
    pub extra_regions: Vec<String>,
    /// Tenants one account may open besides the configured one, so that no account can
    /// take the whole of `tenants_max` from the others.
    pub tenants_per_account_max: usize,
    /// Connections served at once; more wait in the listen backlog.
    pub connections_max: usize,
    /// Connections one client address may hold open; more are closed at once. Behind a
    /// proxy every client shares its address: raise this to `connections_max` there.
    pub connections_per_address_max: usize,
    /// How long a new connection may take to start its first request (TLS handshake and
    /// protocol detection included) before it is closed.
    pub first_request_timeout_ms: u64,
    /// How long a connection may stay idle between requests before it is closed.
    pub idle_timeout_ms: u64,
    /// How long a connection with requests in flight may go without any progress (request
    /// bytes arriving, reply bytes taken by the client) before it is closed: a client that
    /// stops reading its subscription's events.
    pub stall_timeout_ms: u64,
    /// Bytes of request bodies held at once over all requests; past it, reading waits.
    pub body_bytes_in_flight_max: usize,
    /// When any is set, every request must carry a valid SigV4 signature by one of them,
    /// scoped to the `kinesis` service; the credential's account and the scope's region pick
    /// the tenant.
    pub credentials: Vec<Credential>,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>`. Without it, a server
    /// that verifies signatures does not serve `/metrics` on its Kinesis listener (it names
    /// every tenant's streams): use a token, or a listener of its own for metrics.
    pub metrics_token: Option<String>,
    /// Accept `POST /_sluice/reset` (delete every stream of every tenant), for test suites.
    /// Off by default: it is not authenticated.
    pub allow_reset: bool,
    /// Hours of one-minute metric datapoints kept for the CloudWatch calls.
    pub metrics_retention_hours: u64,
    /// URL prefixes (`http://host:port/path`) alarm actions may POST to; none by default.
    pub alarm_action_urls: Vec<String>,
    /// Where Firehose's local buckets are (bucket `b` is `<dir>/b/`); `None`:
    /// `<data_dir>/firehose-buckets`.
    pub firehose_bucket_dir: Option<PathBuf>,
    /// Firehose's buckets are in this S3-compatible store instead (credentials and region
    /// from the `AWS_*` environment); needs the `firehose-s3` feature.
    pub firehose_s3_endpoint: Option<String>,
    /// Firehose's Lambda processors invoke their functions here (`http://HOST:PORT`, a
    /// server of Lambda's Invoke API); `None` refuses Lambda processors.
    pub firehose_lambda_endpoint: Option<String>,
    /// How long an HTTP endpoint destination has to answer a request (Firehose gives
    /// three minutes); a request not answered in time is tried again.
    pub firehose_http_timeout_ms: u64,
    /// Where record format conversion finds Glue tables (`<dir>/<database>/<table>.json`,
    /// as `aws glue get-table` prints them); `None`: `<data_dir>/glue`.
    pub firehose_glue_dir: Option<PathBuf>,
    /// The engines' wall clock: records' arrival times and retention (the system's; tests
    /// that need a day to pass set a manual one).
    pub engine_clock: EngineClock,
}

/// A clock handed to the engines (`ServeConfig::engine_clock`).
#[derive(Clone)]
pub struct EngineClock(pub Arc<dyn Clock>);

impl Default for EngineClock {
    fn default() -> EngineClock {
        EngineClock(Arc::new(SystemClock))
    }
}

impl std::fmt::Debug for EngineClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EngineClock(now {} ms)", self.0.now_ms())
    }
}

/// A credential SigV4 signatures are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret: String,
    /// The account requests signed with it act as; the configured account when `None`.
    pub account: Option<String>,
    /// Temporary credentials: every request must carry this `X-Amz-Security-Token`.
    pub session_token: Option<String>,
    /// Its identity policy (a JSON policy document): what its requests may do. Without
    /// one, anything in its own account.
    pub policy: Option<String>,
}

/// The account id when none is configured (also what kinesis-mock and LocalStack use).
pub const ACCOUNT_DEFAULT: &str = "000000000000";

impl ServeConfig {
    /// Defaults for everything but the data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServeConfig {
        ServeConfig {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 4567)),
            region: "us-east-1".to_owned(),
            account: ACCOUNT_DEFAULT.to_owned(),
            durability: Durability::Durable,
            status_delay_ms: 0,
            body_bytes_max: 16 << 20,
            enforce_limits: false,
            fault_probability: 0.0,
            cores: 0,
            core_spin_us: 0,
            sync_scope: SyncScope::PerFile,
            filesystem_sync: None,
            segment_size_bytes: 64 << 20,
            shards_max: 10_000,
            update_shard_count_per_day_max: 10,
            subscription_ms: 300_000,
            heartbeat_ms: 5_000,
            subscription_bytes_in_flight_max: 256 << 20,
            credentials: Vec::new(),
            connections_max: 4096,
            connections_per_address_max: 1024,
            first_request_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            stall_timeout_ms: 60_000,
            tenants_max: 16,
            extra_regions: Vec::new(),
            tenants_per_account_max: 4,
            body_bytes_in_flight_max: 512 << 20,
            allow_reset: false,
            metrics_retention_hours: 24,
            alarm_action_urls: Vec::new(),
            firehose_bucket_dir: None,
            firehose_s3_endpoint: None,
            firehose_lambda_endpoint: None,
            firehose_http_timeout_ms: 180_000,
            firehose_glue_dir: None,
            metrics_token: None,
            engine_clock: EngineClock::default(),
        }
    }
}

impl ServeConfig {
    /// The regions signed requests may be scoped to.
    pub fn regions(&self) -> crate::regions::Regions {
        crate::regions::Regions::new(
            std::iter::once(self.region.clone()).chain(self.extra_regions.iter().cloned()),
        )
    }
}
