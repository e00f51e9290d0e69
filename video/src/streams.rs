//! The video streams of one account: their catalogue (`streams.json`, written whole) and
//! their logs (docs/design/video.md, "Model").

use crate::error::VideoError;
use crate::log::FragmentLog;
use serde::{Deserialize, Serialize};
use sluice_core::{CreateStream, Engine};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The most video streams an account may have here.
pub const STREAMS_MAX: usize = 10_000;
/// The most tags a stream may have.
pub const TAGS_MAX: usize = 50;
/// The longest retention Kinesis Video allows, in hours (ten years).
pub const RETENTION_HOURS_MAX: u64 = 87_600;
/// Largest fragment record: the engine's largest record.
pub const FRAGMENT_BYTES_MAX: u64 = 10 << 20;

/// One video stream, as the catalogue keeps it and DescribeStream shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamInfo {
    /// Its name.
    pub stream_name: String,
    /// Its ARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    /// Changes with every update.
    pub version: String,
    /// The producer's device, if named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// The media type (e.g. `video/h264`), if named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The KMS key named at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Hours fragments are kept (0: "no persistence"; the log keeps 24).
    pub data_retention_in_hours: u64,
    /// Creation time, ms since the epoch.
    pub creation_ms: i64,
    /// `ACTIVE` (streams are usable once created).
    pub status: String,
    /// Its tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The engine log holding its fragments.
    pub log: String,
}

/// A stream to create.
#[derive(Debug, Clone, Default)]
pub struct CreateVideoStream {
    /// `[a-zA-Z0-9_.-]{1,256}`.
    pub name: String,
    /// The producer's device.
    pub device_name: Option<String>,
    /// The media type.
    pub media_type: Option<String>,
    /// A KMS key.
    pub kms_key_id: Option<String>,
    /// Retention, 0..=87,600 hours.
    pub retention_hours: u64,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// The video streams of one account.
#[derive(Debug)]
pub struct VideoStreams {
    dir: PathBuf,
    engine: Engine,
    arn_prefix: String,
    catalogue: Mutex<Catalogue>,
    logs: Mutex<HashMap<String, Arc<FragmentLog>>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Catalogue {
    streams: BTreeMap<String, StreamInfo>,
    /// Versions and log names are made from this counter.
    next_serial: u64,
}

impl VideoStreams {
    /// Opens the catalogue in `dir` (made if missing); the streams' logs live in `engine`;
    /// ARNs are `arn:aws:kinesisvideo:<region>:<account>:stream/<name>/<creation ms>`.
    pub fn open(
        dir: PathBuf,
        engine: Engine,
        region: &str,
        account: &str,
    ) -> Result<VideoStreams, VideoError> {
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("streams.json");
        let catalogue = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                VideoError::Internal(format!("{} is not a video catalogue: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Catalogue::default(),
            Err(e) => return Err(e.into()),
        };
        Ok(VideoStreams {
            dir,
            engine,
            arn_prefix: format!("arn:aws:kinesisvideo:{region}:{account}:stream/"),
            catalogue: Mutex::new(catalogue),
            logs: Mutex::new(HashMap::new()),
        })
    }

    /// Creates a stream and its log.
    pub async fn create(
        &self,
        request: CreateVideoStream,
        now_ms: i64,
    ) -> Result<StreamInfo, VideoError> {
        check_name(&request.name)?;
        check_retention(request.retention_hours)?;
        if request.tags.len() > TAGS_MAX {
            return Err(VideoError::TooManyTags(format!(
                "A stream may have {TAGS_MAX} tags at most."
            )));
        }
        let (info, log_name) = {
            let mut catalogue = self.catalogue.lock().expect("catalogue lock");
            if catalogue.streams.contains_key(&request.name) {
                return Err(VideoError::InUse(format!(
                    "The stream {} already exists.",
                    request.name
                )));
            }
            if catalogue.streams.len() >= STREAMS_MAX {
                return Err(VideoError::LimitExceeded(format!(
                    "This account has {STREAMS_MAX} video streams, the most it may have."
                )));
            }
            catalogue.next_serial += 1;
            let log_name = format!("kvs.{now_ms}.{}", catalogue.next_serial);
            let info = StreamInfo {
                stream_arn: format!("{}{}/{now_ms}", self.arn_prefix, request.name),
                stream_name: request.name,
                version: version(catalogue.next_serial),
                device_name: request.device_name,
                media_type: request.media_type,
                kms_key_id: request.kms_key_id,
                data_retention_in_hours: request.retention_hours,
                creation_ms: now_ms,
                status: "ACTIVE".into(),
                tags: request.tags,
                log: log_name.clone(),
            };
            (info, log_name)
        };
        // The log first: a catalogue entry never names a log that does not exist.
        let max = FRAGMENT_BYTES_MAX.min(self.engine.record_size_bytes_supported());
        let mut create = CreateStream::provisioned(log_name.clone(), 1);
        create.max_record_size_bytes = Some(max);
        let stream = self.engine.create_stream(create).await?;
        let hours = engine_retention(info.data_retention_in_hours);
        if hours > 24 {
            stream.increase_retention(hours).await?;
        }
        let inserted = {
            let mut catalogue = self.catalogue.lock().expect("catalogue lock");
            let free = !catalogue.streams.contains_key(&info.stream_name);
            if free {
                catalogue
                    .streams
                    .insert(info.stream_name.clone(), info.clone());
                self.save(&catalogue)?;
            }
            free
        };
        if !inserted {
            // Another caller made the name meanwhile: this one's log goes.
            let _ = stream.delete().await;
            return Err(VideoError::InUse(format!(
                "The stream {} already exists.",
                info.stream_name
            )));
        }
        Ok(info)
    }

    /// The stream named by `name` or `arn` (one of them).
    pub fn describe(
        &self,
        name: Option<&str>,
        arn: Option<&str>,
    ) -> Result<StreamInfo, VideoError> {
        let catalogue = self.catalogue.lock().expect("catalogue lock");
        find(&catalogue, name, arn).cloned()
    }

    /// Streams in name order, after `after`, whose names start with `prefix`, at most
    /// `limit`; the last name when more follow.
    pub fn list(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<StreamInfo>, Option<String>) {
        let catalogue = self.catalogue.lock().expect("catalogue lock");
        let mut matching = catalogue
            .streams
            .values()
            .filter(|s| after.is_none_or(|after| s.stream_name.as_str() > after))
            .filter(|s| prefix.is_none_or(|p| s.stream_name.starts_with(p)));
        let page: Vec<StreamInfo> = matching.by_ref().take(limit).cloned().collect();
        let more = matching.next().is_some();
        let next = more
            .then(|| page.last().map(|s| s.stream_name.clone()))
            .flatten();
        (page, next)
    }

    /// Deletes the stream (its version must be `current_version` when given) and its log.
    pub async fn delete(&self, arn: &str, current_version: Option<&str>) -> Result<(), VideoError> {
        let info = {
            let mut catalogue = self.catalogue.lock().expect("catalogue lock");
            let info = find(&catalogue, None, Some(arn))?.clone();
            check_version(&info, current_version)?;
            catalogue.streams.remove(&info.stream_name);
            self.save(&catalogue)?;
            info
        };
        self.logs
            .lock()
            .expect("logs lock")
            .remove(&info.stream_name);
        match self.engine.stream(&info.log) {
            Ok(stream) => stream.delete().await.map_err(VideoError::from),
            Err(_) => Ok(()),
        }
    }

    /// Changes a stream's catalogue entry with `change` (the version checked first, a new
    /// one given after); answers the entry as it was.
    pub fn update(
        &self,
        (name, arn): (Option<&str>, Option<&str>),
        current_version: Option<&str>,
        change: impl FnOnce(&mut StreamInfo) -> Result<(), VideoError>,
    ) -> Result<StreamInfo, VideoError> {
        let mut catalogue = self.catalogue.lock().expect("catalogue lock");
        let before = find(&catalogue, name, arn)?.clone();
        check_version(&before, current_version)?;
        let mut after = before.clone();
        change(&mut after)?;
        if after.tags.len() > TAGS_MAX {
            return Err(VideoError::TooManyTags(format!(
                "A stream may have {TAGS_MAX} tags at most."
            )));
        }
        catalogue.next_serial += 1;
        after.version = version(catalogue.next_serial);
        catalogue.streams.insert(after.stream_name.clone(), after);
        self.save(&catalogue)?;
        Ok(before)
    }

    /// Sets the retention of a stream's log to what its catalogue entry says.
    pub async fn apply_retention(&self, info: &StreamInfo) -> Result<(), VideoError> {
        let stream = self.engine.stream(&info.log)?;
        let hours = engine_retention(info.data_retention_in_hours);
        let current = stream.summary()?.retention_hours;
        if hours > current {
            stream.increase_retention(hours).await?;
        } else if hours < current {
            stream.decrease_retention(hours).await?;
        }
        Ok(())
    }

    /// The fragment log of a stream (opened, its index built, on first use).
    pub async fn log(
        &self,
        name: Option<&str>,
        arn: Option<&str>,
    ) -> Result<(StreamInfo, Arc<FragmentLog>), VideoError> {
        let info = self.describe(name, arn)?;
        if let Some(log) = self.logs.lock().expect("logs lock").get(&info.stream_name)
            && log.name() == info.log
        {
            return Ok((info, log.clone()));
        }
        // A log deleted meanwhile is not made again (Engine::log would create it).
        if self.engine.stream(&info.log).is_err() {
            return Err(VideoError::NotFound(format!(
                "The stream {} does not exist.",
                info.stream_name
            )));
        }
        let opened = Arc::new(FragmentLog::open(self.engine.log(&info.log).await?)?);
        // Two first uses may race: the first one in the map is the one every caller gets,
        // so appends and reads share one index.
        let mut logs = self.logs.lock().expect("logs lock");
        let log = match logs.get(&info.stream_name) {
            Some(existing) if existing.name() == info.log => existing.clone(),
            _ => {
                logs.insert(info.stream_name.clone(), opened.clone());
                opened
            }
        };
        Ok((info, log))
    }

    /// Whether `log` is still the log of the stream `name` (not deleted, not made again).
    pub fn is_current(&self, name: &str, log: &FragmentLog) -> bool {
        self.describe(Some(name), None)
            .is_ok_and(|info| info.log == log.name())
    }

    fn save(&self, catalogue: &Catalogue) -> Result<(), VideoError> {
        let path = self.dir.join("streams.json");
        let writing = self.dir.join("streams.json.tmp");
        let bytes = serde_json::to_vec_pretty(catalogue).expect("the catalogue serializes");
        let mut file = std::fs::File::create(&writing)?;
        std::io::Write::write_all(&mut file, &bytes)?;
        file.sync_data()?;
        std::fs::rename(&writing, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

fn find<'a>(
    catalogue: &'a Catalogue,
    name: Option<&str>,
    arn: Option<&str>,
) -> Result<&'a StreamInfo, VideoError> {
    let found = match (name, arn) {
        (Some(name), _) => catalogue.streams.get(name),
        (None, Some(arn)) => catalogue.streams.values().find(|s| s.stream_arn == arn),
        (None, None) => {
            return Err(VideoError::InvalidArgument(
                "Either StreamName or StreamARN must be given.".into(),
            ));
        }
    };
    let found = found.filter(|s| arn.is_none_or(|arn| s.stream_arn == arn));
    found.ok_or_else(|| {
        VideoError::NotFound(format!(
            "The stream {} does not exist.",
            name.or(arn).unwrap_or_default()
        ))
    })
}

fn check_version(info: &StreamInfo, current: Option<&str>) -> Result<(), VideoError> {
    match current {
        Some(version) if version != info.version => Err(VideoError::VersionMismatch(format!(
            "The stream {} is at version {}, not {version}.",
            info.stream_name, info.version
        ))),
        _ => Ok(()),
    }
}

fn version(serial: u64) -> String {
    format!("v{serial:09}")
}

/// The log's retention for a stream's: 0 and anything under a day keep the engine's day;
/// over a year keeps a year, the engine's longest.
fn engine_retention(hours: u64) -> u32 {
    u32::try_from(hours.clamp(24, 8760)).expect("clamped")
}

/// Stream names: 1 to 256 of `[a-zA-Z0-9_.-]`.
pub fn check_name(name: &str) -> Result<(), VideoError> {
    let valid = (1..=256).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(VideoError::InvalidArgument(format!(
            "The stream name {name:?} is not 1 to 256 of a-z, A-Z, 0-9, '_', '.' and '-'."
        )))
    }
}

/// Retention: 0..=87,600 hours.
pub fn check_retention(hours: u64) -> Result<(), VideoError> {
    if hours > RETENTION_HOURS_MAX {
        return Err(VideoError::InvalidArgument(format!(
            "DataRetentionInHours {hours} is over {RETENTION_HOURS_MAX}."
        )));
    }
    Ok(())
}
