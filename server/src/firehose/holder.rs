//! A tenant's Firehose, opened on first use, or when the tenant opens if it has delivery
//! streams (their deliveries resume without waiting for a call). DirectPut records live in
//! an engine of its own under `<tenant dir>/firehose/engine` (one core), so the Kinesis API
//! never sees a backing stream; stream sources are the tenant's own streams.

use super::lambda::LambdaEndpoint;
use crate::config::ServeConfig;
use crate::wire::ApiError;
use sluice_core::{Engine, EngineConfig};
use sluice_firehose::{Buckets, Envelopes, Firehose, FirehoseConfig, LocalBuckets, Transforms};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// What a tenant's delivery streams buffer at most, together, before they flush early.
const BUFFER_BYTES_MAX: u64 = 1 << 30;

/// Segments of the backing engine: a Firehose record (1,000 KiB) fits whatever the
/// server's own segment size is.
const BACKING_SEGMENT_BYTES: u64 = 16 << 20;

/// Where the tenant's Firehose is, and the Firehose once open.
pub(crate) struct FirehoseHolder {
    dir: PathBuf,
    /// The tenant's account and region, as metric labels.
    labels: Vec<(String, String)>,
    /// The tenant's data keys, for encrypted records.
    envelopes: Arc<dyn Envelopes>,
    firehose: OnceCell<Arc<Firehose>>,
}

impl FirehoseHolder {
    /// For the tenant in `data_dir`; opens at once if delivery streams are stored there and
    /// a runtime is at hand.
    pub(crate) fn new(
        data_dir: &Path,
        engine: &Engine,
        config: &ServeConfig,
        labels: Vec<(String, String)>,
        envelopes: Arc<dyn Envelopes>,
    ) -> FirehoseHolder {
        let holder = FirehoseHolder {
            dir: data_dir.join("firehose"),
            labels,
            envelopes,
            firehose: OnceCell::new(),
        };
        let stored = holder.dir.join("delivery-streams.json").exists();
        if let (true, Ok(runtime)) = (stored, tokio::runtime::Handle::try_current()) {
            let envelopes = holder.envelopes.clone();
            match open(
                &holder.dir,
                engine.clone(),
                config,
                runtime,
                &holder.labels,
                envelopes,
            ) {
                Ok(firehose) => {
                    let _ = holder.firehose.set(Arc::new(firehose));
                }
                // Said, and tried again by the first Firehose call.
                Err(e) => eprintln!("sluice serve: Firehose in {}: {e}", holder.dir.display()),
            }
        }
        holder
    }

    /// The Firehose, when it has been opened.
    pub(crate) fn opened(&self) -> Option<&Arc<Firehose>> {
        self.firehose.get()
    }

    /// The Firehose, opened if it is not yet.
    pub(crate) async fn get(
        &self,
        engine: &Engine,
        config: &Arc<ServeConfig>,
    ) -> Result<&Arc<Firehose>, ApiError> {
        self.firehose
            .get_or_try_init(|| async {
                let (dir, engine, config) = (self.dir.clone(), engine.clone(), config.clone());
                let (runtime, labels) = (tokio::runtime::Handle::current(), self.labels.clone());
                let envelopes = self.envelopes.clone();
                let open = move || open(&dir, engine, &config, runtime, &labels, envelopes);
                tokio::task::spawn_blocking(open)
                    .await
                    .map_err(|e| ApiError::internal(format!("opening Firehose: {e}")))?
                    .map(Arc::new)
                    .map_err(|e| ApiError::internal(format!("opening Firehose: {e:#}")))
            })
            .await
    }
}

fn open(
    dir: &Path,
    source_engine: Engine,
    config: &ServeConfig,
    runtime: tokio::runtime::Handle,
    labels: &[(String, String)],
    envelopes: Arc<dyn Envelopes>,
) -> anyhow::Result<Firehose> {
    let mut engine_config = EngineConfig::new(dir.join("engine"));
    engine_config.cores = 1;
    engine_config.segment_size_bytes = BACKING_SEGMENT_BYTES;
    let backing_engine = Engine::open(engine_config)?;
    Ok(Firehose::open(FirehoseConfig {
        dir: dir.to_path_buf(),
        backing_engine,
        backing_prefix: String::new(),
        source_engine,
        buckets: buckets(config, labels)?,
        runtime,
        metric_labels: labels.to_vec(),
        buffer_bytes_max: BUFFER_BYTES_MAX,
        transforms: transforms(config, labels)?,
        envelopes: Some(envelopes),
    })?)
}

/// The Lambda endpoint, as this tenant's transforms.
fn transforms(
    config: &ServeConfig,
    labels: &[(String, String)],
) -> anyhow::Result<Option<Arc<dyn Transforms>>> {
    let Some(url) = &config.firehose_lambda_endpoint else {
        return Ok(None);
    };
    let label = |name: &str| {
        labels
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, v)| v.as_str())
    };
    let account = label("account").unwrap_or(&config.account);
    let region = label("region").unwrap_or("us-east-1");
    Ok(Some(Arc::new(LambdaEndpoint::new(url, account, region)?)))
}

/// Bucket directories, or an S3-compatible store.
pub(crate) fn buckets(
    config: &ServeConfig,
    labels: &[(String, String)],
) -> anyhow::Result<Arc<dyn Buckets>> {
    if let Some(endpoint) = &config.firehose_s3_endpoint {
        #[cfg(feature = "firehose-s3")]
        return Ok(Arc::new(sluice_firehose::S3Buckets::new(Some(
            endpoint.clone(),
        ))));
        #[cfg(not(feature = "firehose-s3"))]
        anyhow::bail!(
            "--firehose-s3-endpoint {endpoint}: this build has no S3 client (build with the `s3` feature)"
        );
    }
    let dir = config
        .firehose_bucket_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("firehose-buckets"));
    // Other accounts' buckets are their own: under `accounts/<account>/`.
    let dir = match labels_account(labels) {
        Some(account) if account != config.account => dir.join("accounts").join(account),
        _ => dir,
    };
    Ok(Arc::new(LocalBuckets::new(dir)))
}

/// The tenant's account, from its metric labels.
fn labels_account(labels: &[(String, String)]) -> Option<&str> {
    labels
        .iter()
        .find(|(key, _)| key == "account")
        .map(|(_, account)| account.as_str())
}
