//! The service behind the HTTP layer: the settings, the SigV4 verifier, the request-body
//! budget, and the tenants. The configured account and region is the default tenant, in the
//! data directory itself; a signed request whose credential names another account, or whose
//! scope names another region, is served by that tenant, opened on first use in
//! `<data-dir>/tenants/<account>-<region>/` with an engine of its own.

use crate::auth::{Scope, Verifier};
use crate::config::ServeConfig;
use crate::tenant::Tenant;
use crate::wire::ApiError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A tenant being opened, or open: concurrent requests for it wait on the same cell.
type TenantCell = Arc<tokio::sync::OnceCell<Arc<Tenant>>>;

/// Shared by every connection.
pub struct Service {
    /// Settings.
    pub config: Arc<ServeConfig>,
    /// Request body bytes held at once over all requests (see `http::body`).
    pub(crate) body_budget: crate::http::Budget,
    /// Encoded SubscribeToShard events held at once over all subscriptions (see
    /// `subscribe`): subscribers that do not read cannot make the server grow past it.
    pub(crate) subscription_budget: crate::http::Budget,
    /// SigV4 verification, when credentials are configured.
    pub(crate) verifier: Option<Verifier>,
    /// The configured account and region.
    default: Arc<Tenant>,
    /// Other (account, region) tenants, opened on first use. The lock is held only to look
    /// a cell up or add one, never while a tenant opens.
    others: Mutex<HashMap<Scope, TenantCell>>,
    /// Other tenants' directories existed when the server started.
    others_on_disk: bool,
    /// Cluster mode's Kinesis front, once attached: Kinesis calls go to it instead of the
    /// tenant's engine.
    #[cfg(feature = "cluster")]
    cluster: std::sync::OnceLock<Arc<dyn crate::cluster::KinesisCluster>>,
}

impl Service {
    /// Opens the default tenant in `config.data_dir` (and the others that exist, lazily).
    pub fn open(mut config: ServeConfig) -> anyhow::Result<Service> {
        if config.sync_scope == sluice_core::SyncScope::Filesystem
            && config.filesystem_sync.is_none()
        {
            // One syncer for every tenant: a failure one tenant's sync meets may have lost any
            // tenant's pages. Its marker lands in the data directory, where the default
            // tenant's engine, opened first, prepares every engine below it.
            std::fs::create_dir_all(&config.data_dir)?;
            let syncer = sluice_storage::FilesystemSync::open(&config.data_dir).map_err(|e| {
                anyhow::anyhow!(
                    "--sync-scope filesystem on {}: {e}",
                    config.data_dir.display()
                )
            })?;
            config.filesystem_sync = Some(syncer);
        }
        let config = Arc::new(config);
        let default = Tenant::open(
            config.clone(),
            &config.account,
            &config.region,
            &config.data_dir,
        )?;
        let others = tenants_with_deliveries(&config)?;
        Ok(Service {
            body_budget: crate::http::Budget::new(
                config
                    .body_bytes_in_flight_max
                    .max(config.body_bytes_max + 1024),
            ),
            subscription_budget: crate::http::Budget::new(config.subscription_bytes_in_flight_max),
            verifier: (!config.credentials.is_empty())
                .then(|| Verifier::new(&config.credentials, &config.account, config.regions()))
                .transpose()?,
            default,
            others: Mutex::new(others),
            others_on_disk: std::fs::read_dir(config.data_dir.join("tenants"))
                .is_ok_and(|mut entries| entries.next().is_some()),
            config,
            #[cfg(feature = "cluster")]
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// The configured account and region.
    pub fn default_tenant(&self) -> &Arc<Tenant> {
        &self.default
    }

    /// Serves the Kinesis API through `front` from now on (cluster mode): the default
    /// tenant's account and region only. Attached once; a second front is refused.
    #[cfg(feature = "cluster")]
    pub fn attach_cluster(
        &self,
        front: Arc<dyn crate::cluster::KinesisCluster>,
    ) -> anyhow::Result<()> {
        self.cluster
            .set(front)
            .map_err(|_| anyhow::anyhow!("a cluster front is attached already"))
    }

    /// Cluster mode's Kinesis front, if attached.
    #[cfg(feature = "cluster")]
    pub(crate) fn cluster(&self) -> Option<&Arc<dyn crate::cluster::KinesisCluster>> {
        self.cluster.get()
    }

    /// The tenants open now, the default one first.
    pub fn open_tenants(&self) -> Vec<Arc<Tenant>> {
        let mut open = vec![self.default.clone()];
        let others = self.others.lock().expect("tenants lock");
        open.extend(others.values().filter_map(|cell| cell.get().cloned()));
        open
    }

    /// Usage in billing units of every tenant over `[from_s, to_s)` (whole hours): see
    /// [`crate::usage`].
    pub fn usage(&self, from_s: u64, to_s: u64) -> Vec<crate::usage::UsageLine> {
        crate::usage::service_usage(self, from_s, to_s)
    }

    /// The tenant of a verified request's scope (the default one without a scope).
    pub async fn tenant(&self, scope: Option<Scope>) -> Result<Arc<Tenant>, ApiError> {
        let Some(scope) = scope else {
            return Ok(self.default.clone());
        };
        if scope.account == self.config.account && scope.region == self.config.region {
            return Ok(self.default.clone());
        }
        let cell = {
            let mut others = self.others.lock().expect("tenants lock");
            if !others.contains_key(&scope) {
                self.admit(&others, &scope)?;
            }
            others.entry(scope.clone()).or_default().clone()
        };
        if let Some(tenant) = cell.get() {
            return Ok(tenant.clone());
        }
        // Opened by a task of its own: a caller that goes away does not abandon an open
        // half-way (holding the tenant's directory lock while nobody keeps the result).
        let config = self.config.clone();
        let opening = tokio::spawn(async move {
            cell.get_or_try_init(|| open_tenant(config, scope))
                .await
                .cloned()
        });
        opening
            .await
            .map_err(|e| ApiError::internal(format!("opening a tenant: {e}")))?
    }
}

impl Service {
    /// Whether the cluster's map holds a resource policy (cluster mode's live in it).
    fn cluster_holds_policies(&self) -> bool {
        #[cfg(feature = "cluster")]
        if let Some(cluster) = self.cluster() {
            return cluster.holds_policies();
        }
        false
    }

    /// Whether any request may meet a resource policy, or name another account's stream:
    /// when not (one tenant, no policy stored), requests without an identity policy skip
    /// authorization altogether.
    pub(crate) fn may_hold_policies(&self) -> bool {
        self.others_on_disk
            || self.default.holds_policies()
            || self.cluster_holds_policies()
            || !self.others.lock().expect("tenants lock").is_empty()
    }

    /// Whether this server holds the streams of `scope` (open, or on disk).
    pub(crate) fn holds_tenant(&self, scope: &Scope) -> bool {
        (scope.account == self.config.account && scope.region == self.config.region)
            || self
                .others
                .lock()
                .expect("tenants lock")
                .contains_key(scope)
            || tenant_dir(&self.config, scope).is_dir()
    }

    /// Whether a new tenant may open: under the endpoint's cap, and under the account's
    /// own share of it (one account signing with many regions cannot take every slot).
    fn admit(&self, others: &HashMap<Scope, TenantCell>, scope: &Scope) -> Result<(), ApiError> {
        if others.len() + 1 >= self.config.tenants_max {
            return Err(ApiError::limit_exceeded(format!(
                "This endpoint serves at most {} account and region pairs.",
                self.config.tenants_max
            )));
        }
        let of_account = others
            .keys()
            .filter(|open| open.account == scope.account)
            .count();
        if of_account >= self.config.tenants_per_account_max {
            return Err(ApiError::limit_exceeded(format!(
                "Account {} may use at most {} regions on this endpoint besides {}.",
                scope.account, self.config.tenants_per_account_max, self.config.region
            )));
        }
        Ok(())
    }
}

/// The other tenants with Firehose delivery streams or analytics applications, opened now:
/// their deliveries and running applications resume at start rather than at the tenant's
/// first call (records left in their buffers would otherwise wait, and could expire).
fn tenants_with_deliveries(
    config: &Arc<ServeConfig>,
) -> anyhow::Result<HashMap<Scope, TenantCell>> {
    let mut opened = HashMap::new();
    let Ok(entries) = std::fs::read_dir(config.data_dir.join("tenants")) else {
        return Ok(opened);
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((account, region)) = name.split_once('-') else {
            continue;
        };
        let deliveries = entry.path().join("firehose").join("delivery-streams.json");
        let applications = entry.path().join("analytics").join("applications.json");
        let resumes = (cfg!(feature = "firehose") && deliveries.exists())
            || (cfg!(feature = "analytics") && applications.exists());
        if !resumes {
            continue;
        }
        let tenant = Tenant::open(config.clone(), account, region, &entry.path())?;
        let scope = Scope {
            account: account.to_owned(),
            region: region.to_owned(),
        };
        let cell = tokio::sync::OnceCell::new_with(Some(tenant));
        opened.insert(scope, Arc::new(cell));
    }
    Ok(opened)
}

fn tenant_dir(config: &ServeConfig, scope: &Scope) -> std::path::PathBuf {
    config
        .data_dir
        .join("tenants")
        .join(format!("{}-{}", scope.account, scope.region))
}

async fn open_tenant(config: Arc<ServeConfig>, scope: Scope) -> Result<Arc<Tenant>, ApiError> {
    let dir = tenant_dir(&config, &scope);
    tokio::task::spawn_blocking(move || Tenant::open(config, &scope.account, &scope.region, &dir))
        .await
        .map_err(|e| ApiError::internal(format!("opening a tenant: {e}")))?
        .map_err(|e| ApiError::internal(format!("opening the tenant's data: {e:#}")))
}
