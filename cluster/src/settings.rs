//! A stream's changeable settings in cluster mode (retention, capacity mode, tags), kept in
//! its map entry and changed by the controller only: a change is checked against the entry
//! it replaces, in the same fenced write, so two concurrent changes cannot both pass checks
//! that only one of them would.

use serde::{Deserialize, Serialize};
use sluice_core::limits::{
    RETENTION_HOURS_MAX, RETENTION_HOURS_MIN, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX, TAGS_MAX,
};
use std::collections::BTreeMap;

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
}

impl Default for StreamSettings {
    fn default() -> StreamSettings {
        StreamSettings {
            retention_hours: RETENTION_HOURS_MIN,
            on_demand: false,
            tags: BTreeMap::new(),
        }
    }
}

impl StreamSettings {
    /// How long records stay readable, in ms.
    pub fn retention_ms(&self) -> u64 {
        u64::from(self.retention_hours) * 3_600_000
    }
}

/// A change to a stream's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettingsChange {
    /// IncreaseStreamRetentionPeriod: to at least the current retention.
    IncreaseRetention(u32),
    /// DecreaseStreamRetentionPeriod: to at most the current retention.
    DecreaseRetention(u32),
    /// UpdateStreamMode.
    Mode {
        /// ON_DEMAND rather than PROVISIONED.
        on_demand: bool,
    },
    /// AddTagsToStream: keys already there get the new value.
    AddTags(Vec<(String, String)>),
    /// RemoveTagsFromStream: keys not there are ignored.
    RemoveTags(Vec<String>),
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
}

/// Checks `change` against `settings` and applies it; on a refusal `settings` is unchanged.
pub fn apply(
    settings: &mut StreamSettings,
    change: &SettingsChange,
) -> Result<(), SettingsRefused> {
    let current = settings.retention_hours;
    match change {
        SettingsChange::IncreaseRetention(hours) | SettingsChange::DecreaseRetention(hours) => {
            let hours = *hours;
            if !(RETENTION_HOURS_MIN..=RETENTION_HOURS_MAX).contains(&hours) {
                return Err(SettingsRefused::RetentionOutOfRange(hours));
            }
            let increase = matches!(change, SettingsChange::IncreaseRetention(_));
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
        }
        SettingsChange::Mode { on_demand } => settings.on_demand = *on_demand,
        SettingsChange::AddTags(tags) => {
            if let Some((key, _)) = tags.iter().find(|(k, v)| !tag_is_valid(k, v)) {
                return Err(SettingsRefused::InvalidTag(key.clone()));
            }
            let mut after = settings.tags.clone();
            after.extend(tags.iter().cloned());
            if after.len() > TAGS_MAX {
                return Err(SettingsRefused::TooManyTags);
            }
            settings.tags = after;
        }
        SettingsChange::RemoveTags(keys) => {
            for key in keys {
                settings.tags.remove(key);
            }
        }
    }
    Ok(())
}

/// Checks settings given whole (a new stream's): retention in range, at most 50 tags, each
/// valid.
pub fn check(settings: &StreamSettings) -> Result<(), SettingsRefused> {
    let hours = settings.retention_hours;
    if !(RETENTION_HOURS_MIN..=RETENTION_HOURS_MAX).contains(&hours) {
        return Err(SettingsRefused::RetentionOutOfRange(hours));
    }
    if let Some((key, _)) = settings.tags.iter().find(|(k, v)| !tag_is_valid(k, v)) {
        return Err(SettingsRefused::InvalidTag(key.clone()));
    }
    if settings.tags.len() > TAGS_MAX {
        return Err(SettingsRefused::TooManyTags);
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
}
