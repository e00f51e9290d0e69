//! A stream's changeable settings in cluster mode (retention, capacity mode and warm
//! throughput, record size limit, encryption, tags, registered consumers, enhanced monitoring,
//! resource policies), kept in its map entry and changed by the controller only: a change is
//! checked against the entry
//! it replaces, in the same fenced write, so two concurrent changes cannot both pass checks
//! that only one of them would.

use serde::{Deserialize, Serialize};
use sluice_core::limits::{
    RECORD_SIZE_BYTES_DEFAULT, RECORD_SIZE_BYTES_LIMIT, RECORD_SIZE_BYTES_MIN_SETTING,
    RETENTION_HOURS_MAX, RETENTION_HOURS_MIN, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX, TAGS_MAX,
};
use std::collections::{BTreeMap, BTreeSet};

/// A stream's settings, as its map entry holds them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSettings {
    /// How long records stay readable, in hours (24 to 8760).
    pub retention_hours: u32,
    /// Kinesis' ON_DEMAND capacity mode (reported; shards are not added by themselves).
    pub on_demand: bool,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Its registered (enhanced fan-out) consumers, in registration order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<ConsumerEntry>,
    /// The shard-level metrics enhanced monitoring is enabled for (reported only).
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub shard_level_metrics: BTreeSet<String>,
    /// Its resource policy (a JSON document the server checked it can apply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The registration second of the newest consumer ever registered: the next one's is
    /// later, so a consumer ARN (name and second) never names two registrations, whichever
    /// nodes' clocks proposed them.
    #[serde(skip_serializing_if = "is_zero")]
    pub last_consumer_second: u64,
    /// The largest record the stream takes (partition key and data), KiB: 1024 (Kinesis'
    /// 1 MiB) to 10240 (UpdateMaxRecordSize).
    #[serde(skip_serializing_if = "is_default_record_kib")]
    pub max_record_kib: u32,
    /// The warm throughput asked for, MiB/s (reported: Sluice has no warm-up to do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_mibps: Option<u64>,
    /// The KMS key of StartStreamEncryption, while in effect: records put are sealed with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<String>,
}

/// Kinesis' default record size limit, KiB.
pub const RECORD_KIB_DEFAULT: u32 = (RECORD_SIZE_BYTES_DEFAULT / 1024) as u32;
/// The smallest and largest record size limits a stream can be given, KiB.
pub const RECORD_KIB_RANGE: std::ops::RangeInclusive<u32> =
    (RECORD_SIZE_BYTES_MIN_SETTING / 1024) as u32..=(RECORD_SIZE_BYTES_LIMIT / 1024) as u32;

fn is_default_record_kib(kib: &u32) -> bool {
    *kib == RECORD_KIB_DEFAULT
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// A registered consumer: its name and registration time are its identity (the ARN carries
/// the time in seconds), so one registered again under the same name is another consumer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerEntry {
    /// Its name, unique within the stream (1 to 128 of `A-Z a-z 0-9 . _ -`).
    pub name: String,
    /// Registration time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Its tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Its resource policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// Consumers a stream may have registered at once (Kinesis' quota).
pub const CONSUMERS_PER_STREAM_MAX: usize = 20;

impl Default for StreamSettings {
    fn default() -> StreamSettings {
        StreamSettings {
            retention_hours: RETENTION_HOURS_MIN,
            on_demand: false,
            tags: BTreeMap::new(),
            consumers: Vec::new(),
            shard_level_metrics: BTreeSet::new(),
            policy: None,
            last_consumer_second: 0,
            max_record_kib: RECORD_KIB_DEFAULT,
            warm_mibps: None,
            encryption_key: None,
        }
    }
}

impl StreamSettings {
    /// How long records stay readable, in ms.
    pub fn retention_ms(&self) -> u64 {
        u64::from(self.retention_hours) * 3_600_000
    }

    /// The largest record the stream takes (partition key and data), bytes.
    pub fn max_record_bytes(&self) -> u64 {
        u64::from(self.max_record_kib) * 1024
    }

    /// Consumer `name`, registered at `created_s` (in seconds, as an ARN gives it) when
    /// given.
    pub fn consumer(&self, name: &str, created_s: Option<u64>) -> Option<&ConsumerEntry> {
        self.consumers
            .iter()
            .find(|c| c.name == name && created_s.is_none_or(|s| c.created_ms / 1000 == s))
    }
}

/// A change to a stream's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettingsChange {
    /// IncreaseStreamRetentionPeriod: to at least the current retention.
    IncreaseRetention(u32),
    /// DecreaseStreamRetentionPeriod: to at most the current retention.
    DecreaseRetention(u32),
    /// UpdateStreamMode, with the warm throughput it may give.
    Mode {
        /// ON_DEMAND rather than PROVISIONED.
        on_demand: bool,
        /// WarmThroughputMiBps, when given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        warm_mibps: Option<u64>,
    },
    /// UpdateStreamWarmThroughput: an ON_DEMAND stream's only.
    WarmThroughput(u64),
    /// UpdateMaxRecordSize, in KiB (within [`RECORD_KIB_RANGE`]).
    MaxRecordSize(u32),
    /// StartStreamEncryption with this KMS key (`Some`), or StopStreamEncryption.
    Encryption(Option<String>),
    /// AddTagsToStream: keys already there get the new value.
    AddTags(Vec<(String, String)>),
    /// RemoveTagsFromStream: keys not there are ignored.
    RemoveTags(Vec<String>),
    /// RegisterStreamConsumer: a consumer of a name not registered yet.
    RegisterConsumer(ConsumerEntry),
    /// DeregisterStreamConsumer: the consumer of this name and registration time.
    DeregisterConsumer {
        /// Its name.
        name: String,
        /// Its registration time, ms.
        created_ms: u64,
    },
    /// TagResource or UntagResource on a consumer (of this name and registration time):
    /// `add` first (keys there get the new value), then `remove`.
    TagConsumer {
        /// Its name.
        name: String,
        /// Its registration time, ms.
        created_ms: u64,
        /// Tags to add.
        add: Vec<(String, String)>,
        /// Keys to remove.
        remove: Vec<String>,
    },
    /// EnableEnhancedMonitoring (`enable`) or DisableEnhancedMonitoring of these metrics.
    Monitoring {
        /// Enabled rather than disabled.
        enable: bool,
        /// The metrics' names.
        metrics: Vec<String>,
    },
    /// PutResourcePolicy (`Some`) or DeleteResourcePolicy (`None`, refused when there is
    /// none) on the stream, or on the consumer of this name and registration time.
    Policy {
        /// The consumer's name and registration time, for a consumer's policy.
        consumer: Option<(String, u64)>,
        /// The new policy.
        policy: Option<String>,
    },
}

/// Why a change was refused (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SettingsRefused {
    /// A retention outside 24 to 8760 hours.
    #[error("retention of {0} hours is outside {RETENTION_HOURS_MIN}..={RETENTION_HOURS_MAX}")]
    RetentionOutOfRange(u32),
    /// An increase to less than the current retention.
    #[error("retention cannot be increased to {requested} hours: it is {current}")]
    RetentionBelowCurrent {
        /// Asked for.
        requested: u32,
        /// The stream's.
        current: u32,
    },
    /// A decrease to more than the current retention.
    #[error("retention cannot be decreased to {requested} hours: it is {current}")]
    RetentionAboveCurrent {
        /// Asked for.
        requested: u32,
        /// The stream's.
        current: u32,
    },
    /// A key of 0 or more than 128 characters, or a value of more than 256.
    #[error(
        "tag {0:?}: keys have 1 to {TAG_KEY_CHARS_MAX} characters, values at most {TAG_VALUE_CHARS_MAX}"
    )]
    InvalidTag(String),
    /// More than 50 tags once added.
    #[error("a stream can have at most {TAGS_MAX} tags")]
    TooManyTags,
    /// A consumer of that name is registered already.
    #[error("consumer {0} is registered already")]
    ConsumerExists(String),
    /// The stream has [`CONSUMERS_PER_STREAM_MAX`] consumers already.
    #[error("a stream can have at most {CONSUMERS_PER_STREAM_MAX} consumers")]
    TooManyConsumers,
    /// No consumer of that name and registration time is registered (any more).
    #[error("consumer {0} is not registered")]
    ConsumerNotFound(String),
    /// More than 50 tags on a consumer once added.
    #[error("a consumer can have at most {TAGS_MAX} tags")]
    TooManyConsumerTags,
    /// DeleteResourcePolicy where there is none.
    #[error("no resource policy to delete")]
    NoPolicy,
    /// DeleteStream of a stream with registered consumers, without deleting them too.
    #[error("the stream has registered consumers")]
    HasConsumers,
    /// A record size limit outside [`RECORD_KIB_RANGE`], KiB.
    #[error("a record size limit of {0} KiB is outside 1024..=10240")]
    RecordSizeOutOfRange(u32),
    /// UpdateStreamWarmThroughput on a PROVISIONED stream.
    #[error("warm throughput can only be set on an ON_DEMAND stream")]
    NotOnDemand,
}

/// Checks `change` against `settings` and applies it; on a refusal `settings` is unchanged.
pub fn apply(
    settings: &mut StreamSettings,
    change: &SettingsChange,
) -> Result<(), SettingsRefused> {
    match change {
        SettingsChange::IncreaseRetention(hours) => retain(settings, *hours, true)?,
        SettingsChange::DecreaseRetention(hours) => retain(settings, *hours, false)?,
        SettingsChange::Mode {
            on_demand,
            warm_mibps,
        } => {
            settings.on_demand = *on_demand;
            settings.warm_mibps = warm_mibps.or(settings.warm_mibps);
        }
        SettingsChange::WarmThroughput(mibps) => warm(settings, *mibps)?,
        SettingsChange::MaxRecordSize(kib) => record_size(settings, *kib)?,
        SettingsChange::Encryption(key) => settings.encryption_key.clone_from(key),
        SettingsChange::AddTags(tags) => {
            settings.tags = tagged(&settings.tags, tags, &[])
                .map_err(|e| e.unwrap_or(SettingsRefused::TooManyTags))?;
        }
        SettingsChange::RemoveTags(keys) => {
            for key in keys {
                settings.tags.remove(key);
            }
        }
        SettingsChange::RegisterConsumer(consumer) => register(settings, consumer)?,
        SettingsChange::DeregisterConsumer { name, created_ms } => {
            let before = settings.consumers.len();
            settings
                .consumers
                .retain(|c| (c.name.as_str(), c.created_ms) != (name.as_str(), *created_ms));
            if settings.consumers.len() == before {
                return Err(SettingsRefused::ConsumerNotFound(name.clone()));
            }
        }
        SettingsChange::TagConsumer {
            name,
            created_ms,
            add,
            remove,
        } => {
            let consumer = consumer_mut(settings, name, *created_ms)?;
            consumer.tags = tagged(&consumer.tags, add, remove)
                .map_err(|e| e.unwrap_or(SettingsRefused::TooManyConsumerTags))?;
        }
        SettingsChange::Monitoring { enable, metrics } => {
            for metric in metrics {
                if *enable {
                    settings.shard_level_metrics.insert(metric.clone());
                } else {
                    settings.shard_level_metrics.remove(metric);
                }
            }
        }
        SettingsChange::Policy { consumer, policy } => {
            let slot = match consumer {
                Some((name, created_ms)) => &mut consumer_mut(settings, name, *created_ms)?.policy,
                None => &mut settings.policy,
            };
            if policy.is_none() && slot.is_none() {
                return Err(SettingsRefused::NoPolicy);
            }
            slot.clone_from(policy);
        }
    }
    Ok(())
}

/// Retention changed to `hours` (an `increase`, or a decrease).
fn retain(
    settings: &mut StreamSettings,
    hours: u32,
    increase: bool,
) -> Result<(), SettingsRefused> {
    let current = settings.retention_hours;
    if !(RETENTION_HOURS_MIN..=RETENTION_HOURS_MAX).contains(&hours) {
        return Err(SettingsRefused::RetentionOutOfRange(hours));
    }
    if increase && hours < current {
        return Err(SettingsRefused::RetentionBelowCurrent {
            requested: hours,
            current,
        });
    }
    if !increase && hours > current {
        return Err(SettingsRefused::RetentionAboveCurrent {
            requested: hours,
            current,
        });
    }
    settings.retention_hours = hours;
    Ok(())
}

/// UpdateStreamWarmThroughput: an ON_DEMAND stream's only.
fn warm(settings: &mut StreamSettings, mibps: u64) -> Result<(), SettingsRefused> {
    if !settings.on_demand {
        return Err(SettingsRefused::NotOnDemand);
    }
    settings.warm_mibps = Some(mibps);
    Ok(())
}

/// UpdateMaxRecordSize: within [`RECORD_KIB_RANGE`].
fn record_size(settings: &mut StreamSettings, kib: u32) -> Result<(), SettingsRefused> {
    if !RECORD_KIB_RANGE.contains(&kib) {
        return Err(SettingsRefused::RecordSizeOutOfRange(kib));
    }
    settings.max_record_kib = kib;
    Ok(())
}

/// The consumer of `name` registered at `created_ms`.
fn consumer_mut<'a>(
    settings: &'a mut StreamSettings,
    name: &str,
    created_ms: u64,
) -> Result<&'a mut ConsumerEntry, SettingsRefused> {
    (settings.consumers.iter_mut())
        .find(|c| (c.name.as_str(), c.created_ms) == (name, created_ms))
        .ok_or_else(|| SettingsRefused::ConsumerNotFound(name.to_owned()))
}

/// Registers `consumer`: its name free, the quota not reached, its tags valid; its
/// registration time moved to a second after every earlier registration's.
fn register(
    settings: &mut StreamSettings,
    consumer: &ConsumerEntry,
) -> Result<(), SettingsRefused> {
    if settings.consumer(&consumer.name, None).is_some() {
        return Err(SettingsRefused::ConsumerExists(consumer.name.clone()));
    }
    if settings.consumers.len() >= CONSUMERS_PER_STREAM_MAX {
        return Err(SettingsRefused::TooManyConsumers);
    }
    check_tags(&consumer.tags, SettingsRefused::TooManyConsumerTags)?;
    let mut consumer = consumer.clone();
    let second = consumer.created_ms / 1000;
    if second <= settings.last_consumer_second {
        consumer.created_ms = (settings.last_consumer_second + 1) * 1000;
    }
    settings.last_consumer_second = consumer.created_ms / 1000;
    settings.consumers.push(consumer);
    Ok(())
}

/// `tags` with `add` added and then `remove` removed, every added one checked first: `Err(Some)`
/// names an invalid one, `Err(None)` means more than 50 would be left.
fn tagged(
    tags: &BTreeMap<String, String>,
    add: &[(String, String)],
    remove: &[String],
) -> Result<BTreeMap<String, String>, Option<SettingsRefused>> {
    if let Some((key, _)) = add.iter().find(|(k, v)| !tag_is_valid(k, v)) {
        return Err(Some(SettingsRefused::InvalidTag(key.clone())));
    }
    let mut after = tags.clone();
    after.extend(add.iter().cloned());
    for key in remove {
        after.remove(key);
    }
    if after.len() > TAGS_MAX {
        return Err(None);
    }
    Ok(after)
}

/// Checks settings given whole (a new stream's): retention and the record size limit in
/// range, at most 50 tags, each valid.
pub fn check(settings: &StreamSettings) -> Result<(), SettingsRefused> {
    let hours = settings.retention_hours;
    if !(RETENTION_HOURS_MIN..=RETENTION_HOURS_MAX).contains(&hours) {
        return Err(SettingsRefused::RetentionOutOfRange(hours));
    }
    if !RECORD_KIB_RANGE.contains(&settings.max_record_kib) {
        return Err(SettingsRefused::RecordSizeOutOfRange(
            settings.max_record_kib,
        ));
    }
    check_tags(&settings.tags, SettingsRefused::TooManyTags)
}

/// Tags given whole: each valid, at most 50 (else `too_many`).
fn check_tags(
    tags: &BTreeMap<String, String>,
    too_many: SettingsRefused,
) -> Result<(), SettingsRefused> {
    if let Some((key, _)) = tags.iter().find(|(k, v)| !tag_is_valid(k, v)) {
        return Err(SettingsRefused::InvalidTag(key.clone()));
    }
    if tags.len() > TAGS_MAX {
        return Err(too_many);
    }
    Ok(())
}

fn tag_is_valid(key: &str, value: &str) -> bool {
    let key_chars = key.chars().count();
    (1..=TAG_KEY_CHARS_MAX).contains(&key_chars) && value.chars().count() <= TAG_VALUE_CHARS_MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect()
    }

    #[test]
    fn retention_moves_only_the_way_asked_and_within_range() {
        let mut settings = StreamSettings::default();
        assert_eq!(settings.retention_hours, 24);
        apply(&mut settings, &SettingsChange::IncreaseRetention(48)).unwrap();
        assert_eq!(settings.retention_ms(), 48 * 3_600_000);
        let refused = apply(&mut settings, &SettingsChange::IncreaseRetention(30));
        assert_eq!(
            refused,
            Err(SettingsRefused::RetentionBelowCurrent {
                requested: 30,
                current: 48
            })
        );
        let refused = apply(&mut settings, &SettingsChange::DecreaseRetention(72));
        assert!(matches!(
            refused,
            Err(SettingsRefused::RetentionAboveCurrent { .. })
        ));
        for hours in [23, 8761] {
            let refused = apply(&mut settings, &SettingsChange::DecreaseRetention(hours));
            assert_eq!(refused, Err(SettingsRefused::RetentionOutOfRange(hours)));
        }
        apply(&mut settings, &SettingsChange::DecreaseRetention(24)).unwrap();
        // The same value either way is allowed, as Kinesis allows it.
        apply(&mut settings, &SettingsChange::IncreaseRetention(24)).unwrap();
        assert_eq!(settings.retention_hours, 24);
    }

    #[test]
    fn record_size_warm_throughput_and_encryption() {
        let mut settings = StreamSettings::default();
        assert_eq!(settings.max_record_bytes(), 1024 * 1024);
        for kib in [1023, 10241] {
            let refused = apply(&mut settings, &SettingsChange::MaxRecordSize(kib));
            assert_eq!(refused, Err(SettingsRefused::RecordSizeOutOfRange(kib)));
        }
        apply(&mut settings, &SettingsChange::MaxRecordSize(10240)).unwrap();
        assert_eq!(settings.max_record_bytes(), 10 * 1024 * 1024);
        // Warm throughput is an ON_DEMAND stream's; UpdateStreamMode may set it too.
        let warm = SettingsChange::WarmThroughput(40);
        assert_eq!(
            apply(&mut settings, &warm),
            Err(SettingsRefused::NotOnDemand)
        );
        let mode = SettingsChange::Mode {
            on_demand: true,
            warm_mibps: Some(20),
        };
        apply(&mut settings, &mode).unwrap();
        assert_eq!(settings.warm_mibps, Some(20));
        apply(&mut settings, &warm).unwrap();
        assert_eq!(settings.warm_mibps, Some(40));
        let key = SettingsChange::Encryption(Some("alias/aws/kinesis".into()));
        apply(&mut settings, &key).unwrap();
        assert_eq!(
            settings.encryption_key.as_deref(),
            Some("alias/aws/kinesis")
        );
        apply(&mut settings, &SettingsChange::Encryption(None)).unwrap();
        assert_eq!(settings.encryption_key, None);
        let created = StreamSettings {
            max_record_kib: 512,
            ..StreamSettings::default()
        };
        assert_eq!(
            check(&created),
            Err(SettingsRefused::RecordSizeOutOfRange(512))
        );
    }

    #[test]
    fn an_entry_written_before_the_newer_settings_reads_with_their_defaults() {
        let old = r#"{"retention_hours":48,"on_demand":false,"tags":{}}"#;
        let settings: StreamSettings = serde_json::from_str(old).unwrap();
        assert_eq!(settings.retention_hours, 48);
        assert_eq!(settings.max_record_kib, RECORD_KIB_DEFAULT);
        assert_eq!((settings.warm_mibps, settings.encryption_key), (None, None));
        // The defaults are not written, so an older node reads a newer entry alike.
        let written = serde_json::to_string(&StreamSettings::default()).unwrap();
        assert!(!written.contains("max_record_kib"), "{written}");
    }

    #[test]
    fn tags_are_checked_whole_before_any_is_added() {
        let mut settings = StreamSettings::default();
        apply(&mut settings, &SettingsChange::AddTags(tags(49))).unwrap();
        let before = settings.clone();
        // Two new keys would make 51: refused, nothing added.
        let mut more = tags(49);
        more.push(("x".into(), "1".into()));
        more.push(("y".into(), "2".into()));
        let refused = apply(&mut settings, &SettingsChange::AddTags(more));
        assert_eq!(refused, Err(SettingsRefused::TooManyTags));
        assert_eq!(settings, before);
        // An existing key takes the new value without counting twice.
        let update = vec![("k0".into(), "new".into()), ("z".into(), String::new())];
        apply(&mut settings, &SettingsChange::AddTags(update)).unwrap();
        assert_eq!(settings.tags.len(), 50);
        assert_eq!(settings.tags["k0"], "new");
        for bad in [String::new(), "k".repeat(129)] {
            let refused = apply(
                &mut settings,
                &SettingsChange::AddTags(vec![(bad, "v".into())]),
            );
            assert!(matches!(refused, Err(SettingsRefused::InvalidTag(_))));
        }
        let long_value = vec![("k1".into(), "v".repeat(257))];
        assert!(apply(&mut settings, &SettingsChange::AddTags(long_value)).is_err());
        let remove = SettingsChange::RemoveTags(vec!["k0".into(), "absent".into()]);
        apply(&mut settings, &remove).unwrap();
        assert_eq!(settings.tags.len(), 49);
    }

    #[test]
    fn settings_given_whole_are_checked_whole() {
        assert_eq!(check(&StreamSettings::default()), Ok(()));
        let zero = StreamSettings {
            retention_hours: 0,
            ..StreamSettings::default()
        };
        assert_eq!(check(&zero), Err(SettingsRefused::RetentionOutOfRange(0)));
        let mut many = StreamSettings {
            tags: tags(51).into_iter().collect(),
            ..StreamSettings::default()
        };
        assert_eq!(check(&many), Err(SettingsRefused::TooManyTags));
        many.tags = [(String::new(), String::new())].into_iter().collect();
        assert!(matches!(check(&many), Err(SettingsRefused::InvalidTag(_))));
    }

    #[test]
    fn entries_written_before_settings_existed_read_as_the_defaults() {
        let settings: StreamSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(settings, StreamSettings::default());
    }

    fn consumer(name: &str, created_ms: u64) -> ConsumerEntry {
        ConsumerEntry {
            name: name.to_owned(),
            created_ms,
            tags: BTreeMap::new(),
            policy: None,
        }
    }

    #[test]
    fn consumers_are_registered_once_by_name_up_to_the_quota_and_deregistered_by_identity() {
        let mut settings = StreamSettings::default();
        let register = |s: &mut StreamSettings, c: ConsumerEntry| {
            apply(s, &SettingsChange::RegisterConsumer(c))
        };
        for i in 0..CONSUMERS_PER_STREAM_MAX {
            let created_ms = 1_003 + 1_000 * i as u64;
            register(&mut settings, consumer(&format!("c{i}"), created_ms)).unwrap();
        }
        assert_eq!(
            register(&mut settings, consumer("c3", 9_000)),
            Err(SettingsRefused::ConsumerExists("c3".into()))
        );
        assert_eq!(
            register(&mut settings, consumer("one-more", 9_000)),
            Err(SettingsRefused::TooManyConsumers)
        );
        assert_eq!(
            settings.consumer("c3", Some(4)).map(|c| c.created_ms),
            Some(4_003)
        );
        assert_eq!(
            settings.consumer("c3", Some(5)),
            None,
            "another registration's ARN"
        );
        // The same name registered at another time is another consumer: not removed.
        let stale = SettingsChange::DeregisterConsumer {
            name: "c3".into(),
            created_ms: 7_000,
        };
        assert_eq!(
            apply(&mut settings, &stale),
            Err(SettingsRefused::ConsumerNotFound("c3".into()))
        );
        let current = SettingsChange::DeregisterConsumer {
            name: "c3".into(),
            created_ms: 4_003,
        };
        apply(&mut settings, &current).unwrap();
        assert_eq!(settings.consumers.len(), CONSUMERS_PER_STREAM_MAX - 1);
        assert!(settings.consumer("c3", None).is_none());
        register(&mut settings, consumer("c3", 9_000)).unwrap();
        // Registration order is kept (ListStreamConsumers pages by it).
        assert_eq!(
            settings.consumers.last().map(|c| c.name.as_str()),
            Some("c3")
        );
    }

    #[test]
    fn a_consumers_tags_are_checked_whole_and_kept_apart_from_the_streams() {
        let mut settings = StreamSettings::default();
        let mut tagged = consumer("app", 5_000);
        tagged.tags = tags(51).into_iter().collect();
        let refused = apply(
            &mut settings,
            &SettingsChange::RegisterConsumer(tagged.clone()),
        );
        assert_eq!(refused, Err(SettingsRefused::TooManyConsumerTags));
        assert!(settings.consumers.is_empty());
        tagged.tags = tags(2).into_iter().collect();
        apply(&mut settings, &SettingsChange::RegisterConsumer(tagged)).unwrap();
        let change =
            |add: Vec<(String, String)>, remove: Vec<String>| SettingsChange::TagConsumer {
                name: "app".into(),
                created_ms: 5_000,
                add,
                remove,
            };
        assert_eq!(
            apply(&mut settings, &change(tags(51), vec![])),
            Err(SettingsRefused::TooManyConsumerTags),
            "k0 and k1 again, 49 new: 51"
        );
        apply(&mut settings, &change(tags(50), vec![])).unwrap();
        apply(
            &mut settings,
            &change(vec![], tags(50).into_iter().map(|(k, _)| k).collect()),
        )
        .unwrap();
        apply(
            &mut settings,
            &change(vec![("k9".into(), "x".into())], vec![]),
        )
        .unwrap();
        apply(
            &mut settings,
            &change(vec![], vec!["k0".into(), "absent".into()]),
        )
        .unwrap();
        let kept: Vec<_> = settings.consumers[0].tags.keys().cloned().collect();
        assert_eq!(kept, ["k9"]);
        assert!(settings.tags.is_empty());
        let bad = change(vec![(String::new(), "v".into())], vec![]);
        assert!(matches!(
            apply(&mut settings, &bad),
            Err(SettingsRefused::InvalidTag(_))
        ));
        let gone = SettingsChange::TagConsumer {
            name: "app".into(),
            created_ms: 4_000,
            add: vec![],
            remove: vec![],
        };
        assert_eq!(
            apply(&mut settings, &gone),
            Err(SettingsRefused::ConsumerNotFound("app".into()))
        );
    }

    #[test]
    fn monitoring_and_policies_change_what_they_name_only() {
        let mut settings = StreamSettings::default();
        apply(
            &mut settings,
            &SettingsChange::RegisterConsumer(consumer("app", 5_000)),
        )
        .unwrap();
        let monitor = |enable, metrics: &[&str]| SettingsChange::Monitoring {
            enable,
            metrics: metrics.iter().map(|m| (*m).to_owned()).collect(),
        };
        apply(
            &mut settings,
            &monitor(true, &["IncomingBytes", "OutgoingBytes"]),
        )
        .unwrap();
        apply(
            &mut settings,
            &monitor(false, &["IncomingBytes", "IteratorAgeMilliseconds"]),
        )
        .unwrap();
        assert_eq!(
            settings.shard_level_metrics.iter().collect::<Vec<_>>(),
            ["OutgoingBytes"]
        );
        let policy = |consumer: Option<(&str, u64)>, policy: Option<&str>| SettingsChange::Policy {
            consumer: consumer.map(|(n, t)| (n.to_owned(), t)),
            policy: policy.map(str::to_owned),
        };
        assert_eq!(
            apply(&mut settings, &policy(None, None)),
            Err(SettingsRefused::NoPolicy)
        );
        apply(
            &mut settings,
            &policy(Some(("app", 5_000)), Some("{\"c\":1}")),
        )
        .unwrap();
        assert_eq!(settings.policy, None, "the stream's slot is its own");
        assert_eq!(settings.consumers[0].policy.as_deref(), Some("{\"c\":1}"));
        apply(&mut settings, &policy(None, Some("{\"s\":1}"))).unwrap();
        apply(&mut settings, &policy(Some(("app", 5_000)), None)).unwrap();
        assert_eq!(settings.consumers[0].policy, None);
        assert_eq!(settings.policy.as_deref(), Some("{\"s\":1}"));
        assert_eq!(
            apply(&mut settings, &policy(Some(("app", 4_000)), Some("{}"))),
            Err(SettingsRefused::ConsumerNotFound("app".into()))
        );
    }

    #[test]
    fn a_name_registered_again_in_the_same_second_gets_a_later_one() {
        let mut settings = StreamSettings::default();
        let register = |s: &mut StreamSettings, c: ConsumerEntry| {
            apply(s, &SettingsChange::RegisterConsumer(c))
        };
        register(&mut settings, consumer("app", 7_400)).unwrap();
        let gone = SettingsChange::DeregisterConsumer {
            name: "app".into(),
            created_ms: 7_400,
        };
        apply(&mut settings, &gone).unwrap();
        // Another node's clock, a little behind: the same second, or an earlier one.
        register(&mut settings, consumer("app", 6_900)).unwrap();
        assert_eq!(settings.consumers[0].created_ms, 8_000);
        assert_eq!(
            settings.consumer("app", Some(7)),
            None,
            "the old ARN names nothing"
        );
        register(&mut settings, consumer("other", 12_345)).unwrap();
        assert_eq!(
            settings.consumers[1].created_ms, 12_345,
            "a later second is kept"
        );
        assert_eq!(settings.last_consumer_second, 12);
    }
}
