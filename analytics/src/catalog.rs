//! [`Analytics`]: a set of applications as Kinesis Data Analytics keeps them (KDA API
//! 2015-08-14): created, described, updated by version, started and stopped, deleted; stored
//! in one JSON file replaced whole, each running application with its state directory.

use crate::app::{
    Application, ApplicationSnapshot, ApplicationSpec, Input, Output, RunConfig, StartAt,
};
use crate::error::AnalyticsError;
use crate::reference::{REFERENCE_ID, Reference, ReferenceObjects};
use crate::streams::DeliveryStreams;
use serde::{Deserialize, Serialize};
use sluice_core::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

const CATALOGUE_FILE: &str = "applications.json";
/// KDA's limits: outputs per application, tags per application, applications per account.
const OUTPUTS_MAX: usize = 3;
/// KDA's limit on reference data sources per application.
const REFERENCES_MAX: usize = 1;
const TAGS_MAX: usize = 50;
const APPLICATIONS_MAX: usize = 50;
/// KDA's limit on application code.
const CODE_BYTES_MAX: usize = 102_400;

/// An application as it is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredApplication {
    /// Its name (`[a-zA-Z0-9_.-]{1,128}`).
    pub name: String,
    /// What its owner says it is.
    pub description: Option<String>,
    /// Its SQL (empty until set).
    pub code: String,
    /// Its input (at most one), with its id (`1.1`).
    pub input: Option<(String, Input)>,
    /// Its outputs, with their ids (`1.1`, `1.2`, ...).
    pub outputs: Vec<(String, Output)>,
    /// Its reference tables, with their ids (`1.1`).
    #[serde(default)]
    pub references: Vec<(String, Reference)>,
    /// Moves on with each change; an update names the version it was made against.
    pub version: u64,
    /// When it was created and last changed, ms since the epoch.
    pub created_ms: u64,
    /// When it was last changed.
    pub updated_ms: u64,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Running (started and not stopped): it is started again when the set is opened.
    pub running: bool,
    /// What a layer above keeps with it (the server: the roles its callers named).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A new application.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct NewApplication {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its SQL.
    pub code: String,
    /// Its input.
    pub input: Option<Input>,
    /// Its outputs.
    pub outputs: Vec<Output>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// See [`StoredApplication::metadata`].
    pub metadata: BTreeMap<String, String>,
}

impl NewApplication {
    /// An application of `name` with nothing else yet.
    pub fn named(name: impl Into<String>) -> NewApplication {
        NewApplication {
            name: name.into(),
            ..NewApplication::default()
        }
    }
}

/// Changes to an application (`UpdateApplication`, `Add*`, `Delete*`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Change {
    /// New code.
    Code(String),
    /// The input replaced (its id kept), or added when there is none.
    Input(Input),
    /// An output added.
    AddOutput(Output),
    /// The output of this id replaced.
    UpdateOutput(String, Output),
    /// The output of this id removed.
    DeleteOutput(String),
    /// A reference table added.
    AddReference(Reference),
    /// The reference table of this id replaced.
    UpdateReference(String, Reference),
    /// The reference table of this id removed.
    DeleteReference(String),
    /// A metadata entry set, or removed (`None`).
    Metadata(String, Option<String>),
}

/// An application and how it is doing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApplicationDetail {
    /// What is kept.
    pub stored: StoredApplication,
    /// `RUNNING` or `READY`.
    pub status: &'static str,
    /// The running task's counters.
    pub stats: Option<ApplicationSnapshot>,
}

/// Where a start reads from (KDA's `InputStartingPosition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    /// Records put from now on; the state is started afresh.
    Now,
    /// The oldest records kept; the state is started afresh.
    TrimHorizon,
    /// Where the application stopped, with its windows (its checkpoint).
    LastStoppedPoint,
}

/// How [`Analytics`] runs applications.
#[derive(Debug, Clone)]
pub struct AnalyticsConfig {
    /// See [`RunConfig::lateness_ms`].
    pub lateness_ms: u64,
    /// See [`RunConfig::checkpoint_interval`].
    pub checkpoint_interval: Duration,
    /// See [`RunConfig::metric_labels`].
    pub metric_labels: Vec<(String, String)>,
    /// See [`RunConfig::objects`].
    pub objects: Option<Arc<dyn ReferenceObjects>>,
    /// See [`RunConfig::delivery_streams`].
    pub delivery_streams: Option<Arc<dyn DeliveryStreams>>,
}

impl Default for AnalyticsConfig {
    fn default() -> AnalyticsConfig {
        let run = RunConfig::default();
        AnalyticsConfig {
            lateness_ms: run.lateness_ms,
            checkpoint_interval: run.checkpoint_interval,
            metric_labels: run.metric_labels,
            objects: None,
            delivery_streams: None,
        }
    }
}

struct Entry {
    stored: StoredApplication,
    running: Option<Application>,
}

/// A set of applications over one engine, kept in a directory.
pub struct Analytics {
    engine: Engine,
    dir: PathBuf,
    config: AnalyticsConfig,
    runtime: tokio::runtime::Handle,
    apps: Mutex<BTreeMap<String, Entry>>,
}

impl Analytics {
    /// Opens the set kept in `dir` (created if missing) and starts again the applications
    /// that were running, from where they stopped. One that fails to start is left stopped,
    /// and the failure returned beside the set.
    pub async fn open(
        engine: Engine,
        dir: &Path,
        config: AnalyticsConfig,
        runtime: tokio::runtime::Handle,
    ) -> Result<(Analytics, Vec<AnalyticsError>), AnalyticsError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| AnalyticsError::execution(&format!("create {}", dir.display()), e))?;
        let stored: Vec<StoredApplication> = match std::fs::read(dir.join(CATALOGUE_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                AnalyticsError::execution(
                    &format!("read {}", dir.join(CATALOGUE_FILE).display()),
                    e,
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(AnalyticsError::execution(
                    &format!("read {}", dir.display()),
                    e,
                ));
            }
        };
        let analytics = Analytics {
            engine,
            dir: dir.to_owned(),
            config,
            runtime,
            apps: Mutex::new(BTreeMap::new()),
        };
        let mut failures = Vec::new();
        {
            let mut apps = analytics.apps.lock().await;
            for app in stored {
                let running = match app.running {
                    true => match analytics
                        .run(&app, StartingPosition::LastStoppedPoint)
                        .await
                    {
                        Ok(running) => Some(running),
                        Err(e) => {
                            failures.push(e);
                            None
                        }
                    },
                    false => None,
                };
                apps.insert(
                    app.name.clone(),
                    Entry {
                        stored: app,
                        running,
                    },
                );
            }
        }
        Ok((analytics, failures))
    }

    /// Creates an application (stopped). Its code, when given, is checked against its input.
    pub async fn create(&self, new: NewApplication) -> Result<ApplicationDetail, AnalyticsError> {
        check_name(&new.name)?;
        check_tags(&new.tags)?;
        if new
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 1024)
        {
            return Err(AnalyticsError::invalid(
                "An application's description is at most 1024 characters.",
            ));
        }
        let mut apps = self.apps.lock().await;
        if apps.contains_key(&new.name) {
            return Err(AnalyticsError::InUse(format!(
                "Application {} already exists.",
                new.name
            )));
        }
        if apps.len() >= APPLICATIONS_MAX {
            return Err(AnalyticsError::LimitExceeded(format!(
                "At most {APPLICATIONS_MAX} applications."
            )));
        }
        let now = now_ms();
        let mut stored = StoredApplication {
            name: new.name.clone(),
            description: new.description,
            code: String::new(),
            input: None,
            outputs: Vec::new(),
            references: Vec::new(),
            version: 1,
            created_ms: now,
            updated_ms: now,
            tags: new.tags,
            running: false,
            metadata: new.metadata,
        };
        let mut changes = vec![Change::Code(new.code)];
        changes.extend(new.input.map(Change::Input));
        changes.extend(new.outputs.into_iter().map(Change::AddOutput));
        for change in changes {
            apply(&mut stored, change)?;
        }
        self.check(&stored).await?;
        let detail = describe(&stored, None);
        let name = stored.name.clone();
        apps.insert(
            name.clone(),
            Entry {
                stored,
                running: None,
            },
        );
        if let Err(e) = self.save(&apps) {
            apps.remove(&name);
            return Err(e);
        }
        Ok(detail)
    }

    /// An application and its counters.
    pub async fn describe(&self, name: &str) -> Result<ApplicationDetail, AnalyticsError> {
        let apps = self.apps.lock().await;
        let entry = found(&apps, name)?;
        Ok(describe(&entry.stored, entry.running.as_ref()))
    }

    /// Every application, by name.
    pub async fn list(&self) -> Vec<ApplicationDetail> {
        let apps = self.apps.lock().await;
        apps.values()
            .map(|entry| describe(&entry.stored, entry.running.as_ref()))
            .collect()
    }

    /// Changes an application made at `version`, as one new version. A running
    /// application takes them up at once: it restarts from where it was (with new code,
    /// its windows start afresh).
    pub async fn update(
        &self,
        name: &str,
        version: u64,
        changes: Vec<Change>,
    ) -> Result<ApplicationDetail, AnalyticsError> {
        let mut apps = self.apps.lock().await;
        let entry = found(&apps, name)?;
        if entry.stored.version != version {
            return Err(AnalyticsError::VersionMismatch {
                name: name.to_owned(),
                current: entry.stored.version,
            });
        }
        let mut stored = entry.stored.clone();
        for change in changes {
            apply(&mut stored, change)?;
        }
        self.check(&stored).await?;
        stored.version += 1;
        stored.updated_ms = now_ms();
        let entry = apps.get_mut(name).expect("found above");
        let mut restart_failed = None;
        if let Some(running) = entry.running.take() {
            running.stop().await;
            match self.run(&stored, StartingPosition::LastStoppedPoint).await {
                Ok(running) => entry.running = Some(running),
                Err(e) => {
                    // The change is kept; the application is stopped, and says so.
                    stored.running = false;
                    restart_failed = Some(e);
                }
            }
        }
        entry.stored = stored;
        if let Some(e) = restart_failed {
            self.save(&apps)?;
            return Err(AnalyticsError::InUse(format!(
                "Application {name} was updated, and is stopped: it did not start again ({e})."
            )));
        }
        let detail = describe(&entry.stored, entry.running.as_ref());
        self.save(&apps)?;
        Ok(detail)
    }

    /// Starts a stopped application, reading from `position`.
    pub async fn start(
        &self,
        name: &str,
        position: StartingPosition,
    ) -> Result<(), AnalyticsError> {
        let mut apps = self.apps.lock().await;
        let entry = found(&apps, name)?;
        if entry.running.is_some() {
            return Err(AnalyticsError::InUse(format!(
                "Application {name} is RUNNING: stop it before starting it."
            )));
        }
        let running = self.run(&entry.stored, position).await?;
        let entry = apps.get_mut(name).expect("found above");
        entry.running = Some(running);
        entry.stored.running = true;
        self.save(&apps)
    }

    /// Stops an application (a stopped one stays so); its checkpoint keeps where it was.
    pub async fn stop(&self, name: &str) -> Result<(), AnalyticsError> {
        let mut apps = self.apps.lock().await;
        found(&apps, name)?;
        let entry = apps.get_mut(name).expect("found above");
        if let Some(running) = entry.running.take() {
            running.stop().await;
        }
        entry.stored.running = false;
        self.save(&apps)
    }

    /// Deletes an application, stopping it and removing its state; `created_ms` must be its
    /// creation time (KDA's guard against deleting a newer application of the same name).
    pub async fn delete(&self, name: &str, created_ms: u64) -> Result<(), AnalyticsError> {
        let mut apps = self.apps.lock().await;
        let entry = found(&apps, name)?;
        if entry.stored.created_ms != created_ms {
            return Err(AnalyticsError::invalid(format!(
                "Application {name} was not created at {created_ms}: describe it for its CreateTimestamp."
            )));
        }
        let entry = apps.remove(name).expect("found above");
        if let Some(running) = entry.running {
            running.stop().await;
        }
        self.save(&apps)?;
        remove_dir(&self.state_dir(name))
    }

    /// Adds or replaces tags.
    pub async fn tag(
        &self,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), AnalyticsError> {
        let mut apps = self.apps.lock().await;
        found(&apps, name)?;
        let entry = apps.get_mut(name).expect("found above");
        let mut merged = entry.stored.tags.clone();
        merged.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        check_tags(&merged)?;
        entry.stored.tags = merged;
        self.save(&apps)
    }

    /// Removes tags by key.
    pub async fn untag(&self, name: &str, keys: &[String]) -> Result<(), AnalyticsError> {
        let mut apps = self.apps.lock().await;
        found(&apps, name)?;
        let entry = apps.get_mut(name).expect("found above");
        entry.stored.tags.retain(|key, _| !keys.contains(key));
        self.save(&apps)
    }

    /// Stops every running application (each writes its checkpoint); they start again when
    /// the set is next opened.
    pub async fn shut_down(&self) {
        let mut apps = self.apps.lock().await;
        for entry in apps.values_mut() {
            if let Some(running) = entry.running.take() {
                running.stop().await;
            }
        }
    }

    /// The engine the applications read and write.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn state_dir(&self, name: &str) -> PathBuf {
        self.dir.join("state").join(name)
    }

    /// Checks what can be checked of a stored application without running it: its code
    /// against its input, its outputs' in-application streams against its code.
    async fn check(&self, stored: &StoredApplication) -> Result<(), AnalyticsError> {
        let Some((_, input)) = &stored.input else {
            return Ok(());
        };
        crate::streams::input_stream(
            &self.engine,
            &self.run_config(None, StartAt::TrimHorizon),
            input,
        )
        .await?;
        if stored.code.trim().is_empty() {
            return Ok(());
        }
        let decoder = crate::decode::Decoder::new(&input.schema)?;
        let code = crate::sql::parse(&stored.code)?;
        crate::app::plan(&code, &spec_of(stored, input.clone()), decoder.schema()).await?;
        crate::app::output_sources(&code, stored.outputs.iter().map(|(_, o)| o))?;
        Ok(())
    }

    /// Starts `stored`'s task from `position`.
    async fn run(
        &self,
        stored: &StoredApplication,
        position: StartingPosition,
    ) -> Result<Application, AnalyticsError> {
        let Some((_, input)) = stored.input.clone() else {
            return Err(AnalyticsError::invalid(format!(
                "Application {} has no input to read.",
                stored.name
            )));
        };
        let state_dir = self.state_dir(&stored.name);
        if position != StartingPosition::LastStoppedPoint {
            crate::checkpoint::StateDir::reset(&state_dir)?;
        }
        let spec = spec_of(stored, input);
        let start_at = match position {
            StartingPosition::Now => StartAt::Now,
            _ => StartAt::TrimHorizon,
        };
        let config = self.run_config(Some(state_dir), start_at);
        Application::start(&self.engine, spec, config, &self.runtime).await
    }

    /// How an application of the set runs.
    fn run_config(&self, state_dir: Option<PathBuf>, start_at: StartAt) -> RunConfig {
        RunConfig {
            lateness_ms: self.config.lateness_ms,
            state_dir,
            checkpoint_interval: self.config.checkpoint_interval,
            metric_labels: self.config.metric_labels.clone(),
            objects: self.config.objects.clone(),
            delivery_streams: self.config.delivery_streams.clone(),
            start_at,
            ..RunConfig::default()
        }
    }

    fn save(&self, apps: &BTreeMap<String, Entry>) -> Result<(), AnalyticsError> {
        let stored: Vec<&StoredApplication> = apps.values().map(|e| &e.stored).collect();
        let bytes = serde_json::to_vec_pretty(&stored)
            .map_err(|e| AnalyticsError::execution("encode the applications", e))?;
        crate::checkpoint::replace_file(&self.dir.join(CATALOGUE_FILE), &bytes)
    }
}

/// What `stored` runs as, reading `input`.
fn spec_of(stored: &StoredApplication, input: Input) -> ApplicationSpec {
    ApplicationSpec {
        name: stored.name.clone(),
        code: stored.code.clone(),
        input,
        outputs: stored.outputs.iter().map(|(_, o)| o.clone()).collect(),
        references: stored.references.iter().map(|(_, r)| r.clone()).collect(),
    }
}

fn found<'a>(apps: &'a BTreeMap<String, Entry>, name: &str) -> Result<&'a Entry, AnalyticsError> {
    apps.get(name).ok_or_else(|| AnalyticsError::NotFound {
        name: name.to_owned(),
    })
}

fn describe(stored: &StoredApplication, running: Option<&Application>) -> ApplicationDetail {
    ApplicationDetail {
        stored: stored.clone(),
        status: if running.is_some() {
            "RUNNING"
        } else {
            "READY"
        },
        stats: running.map(Application::stats),
    }
}

/// One change to a stored application.
fn apply(stored: &mut StoredApplication, change: Change) -> Result<(), AnalyticsError> {
    match change {
        Change::Code(code) => {
            if code.len() > CODE_BYTES_MAX {
                return Err(AnalyticsError::invalid(format!(
                    "Application code is at most {CODE_BYTES_MAX} bytes."
                )));
            }
            stored.code = code;
        }
        Change::Input(input) => {
            let id = stored
                .input
                .take()
                .map_or_else(|| "1.1".to_owned(), |(id, _)| id);
            input.schema.arrow_schema()?;
            input.check()?;
            stored.input = Some((id, input));
        }
        Change::AddOutput(output) => {
            if stored.outputs.len() >= OUTPUTS_MAX {
                return Err(AnalyticsError::LimitExceeded(format!(
                    "An application has at most {OUTPUTS_MAX} outputs."
                )));
            }
            let next = stored
                .outputs
                .iter()
                .filter_map(|(id, _)| id.strip_prefix("1.")?.parse::<u32>().ok())
                .max()
                .unwrap_or(0)
                + 1;
            stored.outputs.push((format!("1.{next}"), output));
        }
        Change::UpdateOutput(id, output) => {
            let slot = stored
                .outputs
                .iter_mut()
                .find(|(at, _)| *at == id)
                .ok_or_else(|| AnalyticsError::invalid(format!("No output has id {id}.")))?;
            slot.1 = output;
        }
        Change::Metadata(key, value) => {
            match value {
                Some(value) => stored.metadata.insert(key, value),
                None => stored.metadata.remove(&key),
            };
        }
        Change::AddReference(reference) => add_reference(stored, reference)?,
        Change::UpdateReference(id, reference) => update_reference(stored, &id, reference)?,
        Change::DeleteReference(id) => delete_reference(stored, &id)?,
        Change::DeleteOutput(id) => {
            let before = stored.outputs.len();
            stored.outputs.retain(|(at, _)| *at != id);
            if stored.outputs.len() == before {
                return Err(AnalyticsError::NotFound {
                    name: format!("{} output {id}", stored.name),
                });
            }
        }
    }
    Ok(())
}

fn add_reference(
    stored: &mut StoredApplication,
    reference: Reference,
) -> Result<(), AnalyticsError> {
    if stored.references.len() >= REFERENCES_MAX {
        return Err(AnalyticsError::LimitExceeded(format!(
            "An application has at most {REFERENCES_MAX} reference data source."
        )));
    }
    insert_reference(stored, REFERENCE_ID.to_owned(), reference)
}

fn update_reference(
    stored: &mut StoredApplication,
    id: &str,
    reference: Reference,
) -> Result<(), AnalyticsError> {
    let at = stored
        .references
        .iter()
        .position(|(at, _)| at == id)
        .ok_or_else(|| AnalyticsError::NotFound {
            name: format!("{} reference data source {id}", stored.name),
        })?;
    let (id, _) = stored.references.remove(at);
    insert_reference(stored, id, reference)
}

fn delete_reference(stored: &mut StoredApplication, id: &str) -> Result<(), AnalyticsError> {
    let before = stored.references.len();
    stored.references.retain(|(at, _)| at != id);
    if stored.references.len() == before {
        return Err(AnalyticsError::NotFound {
            name: format!("{} reference data source {id}", stored.name),
        });
    }
    Ok(())
}

/// Adds a checked reference table under `id`; table names are unique.
fn insert_reference(
    stored: &mut StoredApplication,
    id: String,
    reference: Reference,
) -> Result<(), AnalyticsError> {
    crate::reference::check(&reference)?;
    if stored
        .references
        .iter()
        .any(|(_, r)| r.table == reference.table)
    {
        return Err(AnalyticsError::invalid(format!(
            "Application {} has a reference table {} already.",
            stored.name, reference.table
        )));
    }
    stored.references.push((id, reference));
    Ok(())
}

fn check_name(name: &str) -> Result<(), AnalyticsError> {
    // A name of dots only would name a directory above the application's own.
    let valid = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        && !name.bytes().all(|b| b == b'.');
    if valid {
        Ok(())
    } else {
        Err(AnalyticsError::invalid(format!(
            "Application name {name:?} is not 1 to 128 of [a-zA-Z0-9_.-] (not dots only)."
        )))
    }
}

fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), AnalyticsError> {
    if tags.len() > TAGS_MAX {
        return Err(AnalyticsError::TooManyTags(format!(
            "An application has at most {TAGS_MAX} tags."
        )));
    }
    match tags
        .iter()
        .find(|(k, v)| k.is_empty() || k.len() > 128 || v.len() > 256)
    {
        Some((key, _)) => Err(AnalyticsError::invalid(format!(
            "Tag {key:?}: keys are 1 to 128 characters, values at most 256."
        ))),
        None => Ok(()),
    }
}

fn remove_dir(dir: &Path) -> Result<(), AnalyticsError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AnalyticsError::execution(
            &format!("remove {}", dir.display()),
            e,
        )),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
