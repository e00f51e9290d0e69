//! A tenant: one account in one region, with its own engine and server state. The helpers
//! every operation uses live here (resolving StreamName/StreamARN, stream status, fault
//! injection). Without authentication every request is the configured account and region.

use crate::arn::StreamArn;
use crate::clock::now_ms;
use crate::config::ServeConfig;
use crate::leases::Leases;
use crate::state::ServerState;
use crate::wire::ApiError;
use sluice_core::{Engine, EngineConfig, StreamStatus, ThroughputLimits};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One account and region: its streams (an engine of its own) and its server state.
pub struct Tenant {
    /// The engine.
    pub engine: Engine,
    /// Consumers and the other settings the engine does not hold.
    pub(crate) state: ServerState,
    /// Settings shared by every tenant.
    pub config: Arc<ServeConfig>,
    /// 12-digit account id.
    pub account: String,
    /// Region.
    pub region: String,
    /// SubscribeToShard leases.
    pub(crate) leases: Leases,
    /// The KMS stand-in's keys of this account and region.
    pub(crate) keyring: crate::kms::keyring::Keyring,
    /// Data keys of encrypted streams.
    pub(crate) data_keys: crate::encryption::DataKeys,
    /// A resource policy has been stored in this tenant (since it opened, or before).
    has_policies: std::sync::atomic::AtomicBool,
    /// Kinesis' limits on resharding calls.
    pub(crate) reshards: crate::reshard_limits::ReshardLimits,
    /// Held across the checks and the act of calls that add shards (CreateStream and the
    /// reshards), so that concurrent calls cannot all pass a limit only one of them fits.
    pub(crate) shard_changes: tokio::sync::Mutex<()>,
    /// The second in the ARN last given to a consumer, by stream and consumer name, for
    /// the last two seconds (see `consumer_arn_second`).
    consumer_arn_seconds: Mutex<HashMap<(String, String), u64>>,
    /// Streams in a transitional status until a time (only with `status_delay_ms > 0`).
    transitions: Mutex<HashMap<String, (StreamStatus, u64)>>,
    /// xorshift state for fault injection.
    fault_rng: AtomicU64,
    /// CloudWatch-compatible metrics of this account and region.
    pub cloudwatch: crate::cloudwatch::CloudWatch,
    /// Usage in billing units.
    pub usage: crate::usage::Meter,
    /// Firehose delivery streams.
    #[cfg(feature = "firehose")]
    firehose: crate::firehose::FirehoseHolder,
    /// Kinesis Data Analytics applications.
    #[cfg(feature = "analytics")]
    analytics: crate::analytics::AnalyticsHolder,
    /// The tenant's video streams.
    #[cfg(feature = "video")]
    video: crate::video::VideoHolder,
}

/// The engine settings of a tenant of `config` whose data is in `data_dir`.
fn engine_config(
    config: &ServeConfig,
    account: &str,
    region: &str,
    data_dir: &Path,
) -> EngineConfig {
    let mut engine_config = EngineConfig::new(data_dir);
    engine_config.cores = config.cores;
    engine_config.spin_before_park_us = config.core_spin_us;
    engine_config.sync_scope = config.sync_scope;
    engine_config.shared_filesystem_sync = config.filesystem_sync.clone();
    engine_config.segment_size_bytes = config.segment_size_bytes;
    engine_config.durability = config.durability;
    engine_config.shards_max = config.shards_max;
    engine_config.clock = config.engine_clock.0.clone();
    engine_config.metric_labels = engine_labels(account, region);
    if config.enforce_limits {
        engine_config.throughput_limits = Some(ThroughputLimits::default());
    }
    engine_config
}

impl Tenant {
    /// Opens the tenant's engine and server state in `data_dir`.
    pub fn open(
        config: Arc<ServeConfig>,
        account: &str,
        region: &str,
        data_dir: &Path,
    ) -> anyhow::Result<Arc<Tenant>> {
        std::fs::create_dir_all(data_dir)?;
        // Records, policies and consumers are the tenant's alone: nobody else on the machine
        // may list or read the directory (whatever modes the files under it have).
        // A directory the server does not own (a mount point) keeps its modes, said once.
        use std::os::unix::fs::PermissionsExt as _;
        if let Err(e) = std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)) {
            eprintln!(
                "sluice serve: could not make {} private (mode 700): {e}",
                data_dir.display()
            );
        }
        let engine = Engine::open(engine_config(&config, account, region, data_dir))?;
        let state = ServerState::open(data_dir)?;
        let has_policies = state.read(|s| {
            s.streams.values().any(|extras| {
                extras.policy.is_some() || extras.consumers.iter().any(|c| c.policy.is_some())
            })
        });
        let keyring = crate::kms::keyring::Keyring::open(data_dir)?;
        let cloudwatch =
            crate::cloudwatch::CloudWatch::open(data_dir, config.metrics_retention_hours)?;
        let usage = crate::usage::Meter::open(data_dir, account, region)?;
        // Cyclic: the Firehose seals and opens records through the tenant's keys.
        let tenant = Arc::new_cyclic(
            |#[cfg_attr(
                not(any(feature = "firehose", feature = "analytics")),
                allow(unused_variables)
            )]
             tenant| Tenant {
                #[cfg(feature = "firehose")]
                firehose: crate::firehose::FirehoseHolder::new(
                    data_dir,
                    &engine,
                    &config,
                    engine_labels(account, region),
                    Arc::new(crate::firehose::TenantEnvelopes::new(tenant.clone())),
                ),
                #[cfg(feature = "analytics")]
                analytics: crate::analytics::AnalyticsHolder::new(
                    data_dir,
                    sluice_analytics::AnalyticsConfig {
                        metric_labels: engine_labels(account, region),
                        objects: crate::analytics::reference_objects(
                            &config,
                            &engine_labels(account, region),
                        ),
                        delivery_streams: crate::analytics::delivery_streams(tenant),
                        ..sluice_analytics::AnalyticsConfig::default()
                    },
                ),
                #[cfg(feature = "video")]
                video: crate::video::VideoHolder::new(data_dir, account, region),
                engine,
                state,
                cloudwatch,
                usage,
                account: account.to_owned(),
                region: region.to_owned(),
                leases: Leases::default(),
                keyring,
                data_keys: crate::encryption::DataKeys::default(),
                reshards: crate::reshard_limits::ReshardLimits::default(),
                shard_changes: tokio::sync::Mutex::new(()),
                has_policies: std::sync::atomic::AtomicBool::new(has_policies),
                consumer_arn_seconds: Mutex::new(HashMap::new()),
                transitions: Mutex::new(HashMap::new()),
                fault_rng: AtomicU64::new(now_ms() | 1),
                config,
            },
        );
        #[cfg(feature = "analytics")]
        tenant.analytics.open_if_kept(&tenant.engine);
        spawn_upkeep(Arc::downgrade(&tenant));
        Ok(tenant)
    }

    /// The tenant's Firehose delivery streams (opened on first use).
    #[cfg(feature = "firehose")]
    pub(crate) async fn firehose(
        &self,
    ) -> Result<&std::sync::Arc<sluice_firehose::Firehose>, ApiError> {
        self.firehose.get(&self.engine, &self.config).await
    }

    /// The tenant's Firehose delivery streams, if they have been opened.
    #[cfg(feature = "firehose")]
    pub(crate) fn firehose_opened(&self) -> Option<&std::sync::Arc<sluice_firehose::Firehose>> {
        self.firehose.opened()
    }

    /// The tenant's video streams (opened on first use).
    #[cfg(feature = "video")]
    pub(crate) async fn video(
        &self,
    ) -> Result<&std::sync::Arc<sluice_video::VideoStreams>, ApiError> {
        self.video.get().await
    }

    /// The tenant's analytics applications, if they have been opened.
    #[cfg(feature = "analytics")]
    pub(crate) fn analytics_opened(&self) -> Option<&std::sync::Arc<sluice_analytics::Analytics>> {
        self.analytics.opened()
    }

    /// The tenant's analytics applications (opened on first use).
    #[cfg(feature = "analytics")]
    pub(crate) async fn analytics(
        &self,
    ) -> Result<&std::sync::Arc<sluice_analytics::Analytics>, ApiError> {
        self.analytics.get(&self.engine).await
    }

    /// The creation time (ms) of a consumer `consumer` of stream `stream` registered at
    /// `now_ms`. A consumer ARN ends in its creation second: when a consumer of the same
    /// names got an ARN in this second already (a deleted stream's, or a deregistered one),
    /// the new one takes the next second, so no old ARN ever names the new consumer (its
    /// creation time is then up to a second ahead).
    pub(crate) fn consumer_arn_second(&self, stream: &str, consumer: &str, now_ms: u64) -> u64 {
        let mut seconds = self.consumer_arn_seconds.lock().expect("consumer ARN lock");
        let now_s = now_ms / 1000;
        seconds.retain(|_, second| *second + 1 >= now_s);
        let key = (stream.to_owned(), consumer.to_owned());
        let created_ms = match seconds.get(&key) {
            Some(&last) if last >= now_s => (last + 1) * 1000,
            _ => now_ms,
        };
        seconds.insert(key, created_ms / 1000);
        created_ms
    }

    /// Whether a resource policy may be stored in this tenant.
    pub(crate) fn holds_policies(&self) -> bool {
        self.has_policies.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A resource policy was stored.
    pub(crate) fn note_policy(&self) {
        self.has_policies
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// The ARN of a stream.
    pub fn stream_arn(&self, stream: &str) -> String {
        StreamArn::format(&self.region, &self.account, stream)
    }

    /// The stream a request names by StreamName or StreamARN (one is required; both must
    /// agree).
    pub fn resolve(&self, name: &Option<String>, arn: &Option<String>) -> Result<String, ApiError> {
        let from_arn = match arn {
            Some(arn) => {
                let parsed = StreamArn::parse(arn).ok_or_else(|| {
                    ApiError::invalid_argument(format!("Invalid StreamARN {arn}"))
                })?;
                self.check_arn_scope(&parsed)?;
                Some(parsed.stream)
            }
            None => None,
        };
        match (name.as_deref(), from_arn) {
            (Some(name), Some(other)) if name != other => Err(ApiError::invalid_argument(format!(
                "StreamName {name} and StreamARN {} name different streams.",
                arn.as_deref().unwrap_or_default()
            ))),
            (Some(name), _) => Ok(name.to_owned()),
            (None, Some(from_arn)) => Ok(from_arn.to_owned()),
            (None, None) => Err(ApiError::validation(
                "Either StreamName or StreamARN must be provided.",
            )),
        }
    }

    /// An ARN must name this server's region and account: its streams exist nowhere else.
    pub fn check_arn_scope(&self, arn: &StreamArn<'_>) -> Result<(), ApiError> {
        if arn.region == self.region && arn.account == self.account {
            return Ok(());
        }
        Err(ApiError::not_found(format!(
            "Stream {} under account {} not found (this endpoint serves account {} in {}).",
            arn.stream, arn.account, self.account, self.region
        )))
    }

    /// The status to report for an existing stream.
    pub fn status(&self, stream: &str) -> StreamStatus {
        let mut transitions = self.transitions.lock().expect("transitions lock");
        match transitions.get(stream) {
            Some(&(status, until_ms)) if now_ms() < until_ms => status,
            Some(_) => {
                transitions.remove(stream);
                StreamStatus::Active
            }
            None => StreamStatus::Active,
        }
    }

    /// Reports `status` for the configured delay after a change to `stream`.
    pub fn begin_transition(&self, stream: &str, status: StreamStatus) {
        let mut transitions = self.transitions.lock().expect("transitions lock");
        if self.config.status_delay_ms == 0 {
            transitions.remove(stream);
            return;
        }
        let until_ms = now_ms() + self.config.status_delay_ms;
        transitions.insert(stream.to_owned(), (status, until_ms));
    }

    /// Forgets every stream's transitional status (a reset deleted them all).
    pub(crate) fn forget_transitions(&self) {
        self.transitions.lock().expect("transitions lock").clear();
    }

    /// Control operations need an ACTIVE stream.
    pub fn require_active(&self, stream: &str) -> Result<(), ApiError> {
        match self.status(stream) {
            StreamStatus::Active => Ok(()),
            status => Err(ApiError::in_use(format!(
                "Stream {stream} under account {} not ACTIVE, instead in state {}",
                self.account,
                crate::shapes::status_name(status)
            ))),
        }
    }

    /// With `fault_probability > 0`: fails a data-plane call now and then, half the time
    /// as a throttle and half as an internal failure.
    pub fn inject_fault(&self, stream: &str) -> Result<(), ApiError> {
        let p = self.config.fault_probability;
        if p <= 0.0 {
            return Ok(());
        }
        let draw = self.next_random();
        let unit = (draw >> 11) as f64 / (1u64 << 53) as f64;
        if unit >= p {
            return Ok(());
        }
        if draw & 1 == 0 {
            Err(ApiError::new(
                "ProvisionedThroughputExceededException",
                format!(
                    "Rate exceeded for stream {stream} under account {} (injected fault).",
                    self.account
                ),
            ))
        } else {
            Err(ApiError::internal(
                "Internal service failure (injected fault).",
            ))
        }
    }

    fn next_random(&self) -> u64 {
        let mut x = self.fault_rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.fault_rng.store(x, Ordering::Relaxed);
        x
    }
}

/// The labels of a tenant's metrics.
fn engine_labels(account: &str, region: &str) -> Vec<(String, String)> {
    vec![
        ("account".to_owned(), account.to_owned()),
        ("region".to_owned(), region.to_owned()),
    ]
}

/// How often the upkeep thread samples usage and writes the metric and usage logs.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts the tenant's upkeep thread: every 10 seconds it accrues time-based usage and writes
/// what changed in the metric and usage stores. It ends when the tenant is dropped (whose
/// stores then write their last changes themselves).
fn spawn_upkeep(tenant: std::sync::Weak<Tenant>) {
    let spawned = std::thread::Builder::new()
        .name("sluice-upkeep".into())
        .spawn(move || {
            // Alarm actions (puts, HTTP POSTs) run on a runtime of the thread's own.
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("sluice serve: the upkeep thread could not start its runtime: {e}");
                    return;
                }
            };
            #[cfg(feature = "analytics")]
            let mut recorded = crate::analytics::Recorded::new();
            #[cfg(feature = "firehose")]
            let mut delivered = crate::firehose::Delivered::new();
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                let Some(tenant) = tenant.upgrade() else {
                    return;
                };
                let changes = tenant.upkeep();
                #[cfg(feature = "firehose")]
                crate::firehose::record_delivery_metrics(&tenant, &mut delivered);
                // The applications' lock may be held across a start or an update: a sample
                // that cannot have it soon is skipped (its counts go into the next one).
                #[cfg(feature = "analytics")]
                runtime.block_on(async {
                    let sampled = crate::analytics::record_metrics(&tenant, &mut recorded);
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), sampled).await;
                });
                if !changes.is_empty() {
                    runtime.block_on(crate::cloudwatch::actions::deliver(tenant.clone(), changes));
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!(
            "sluice serve: could not start the upkeep thread (metering, alarms, metric logs): {e}"
        );
    }
}

impl Tenant {
    /// Accrues usage up to now, evaluates the alarms and writes the metric and usage logs;
    /// returns the alarm state changes, for their actions.
    pub fn upkeep(&self) -> Vec<crate::cloudwatch::alarms::Change> {
        let (samples, complete) = crate::usage::stream_samples(self);
        self.usage.sample(now_ms(), (&samples, complete));
        for (what, written) in [
            ("metrics", self.cloudwatch.store.flush()),
            ("usage", self.usage.flush()),
        ] {
            if let Err(e) = written {
                eprintln!(
                    "sluice serve: writing the {what} log of {}/{}: {e}",
                    self.account, self.region
                );
            }
        }
        crate::cloudwatch::evaluate::evaluate_all(
            &self.cloudwatch.alarms,
            &self.cloudwatch.store,
            now_ms() as f64 / 1000.0,
        )
    }
}
