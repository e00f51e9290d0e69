//! Validation of user-supplied names and keys. Pure.

use crate::limits::{PARTITION_KEY_CHARS_MAX, STREAM_NAME_BYTES_MAX};

/// Checks a stream name: `[a-zA-Z0-9_.-]{1,128}`.
pub fn validate_stream_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= STREAM_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "1 validation error detected: Value '{name}' at 'streamName' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and \
             have length between 1 and {STREAM_NAME_BYTES_MAX}"
        ))
    }
}

/// Checks a partition key: 1 to 256 Unicode characters.
pub fn validate_partition_key(key: &str) -> Result<(), String> {
    // A key has no more characters than bytes: most keys pass without counting.
    if !key.is_empty() && key.len() <= PARTITION_KEY_CHARS_MAX {
        return Ok(());
    }
    let chars = key.chars().count();
    if (1..=PARTITION_KEY_CHARS_MAX).contains(&chars) {
        Ok(())
    } else {
        Err(format!(
            "1 validation error detected: Value at 'partitionKey' failed to satisfy constraint: \
             Member must have length between 1 and {PARTITION_KEY_CHARS_MAX} (it has {chars})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_follow_the_kinesis_pattern() {
        assert!(validate_stream_name("orders.v2_eu-west").is_ok());
        assert!(validate_stream_name(&"a".repeat(128)).is_ok());
        for bad in ["", "a/b", "..x/", "a b", "é", &"a".repeat(129)] {
            assert!(validate_stream_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn partition_keys_count_characters_not_bytes() {
        assert!(validate_partition_key(&"é".repeat(256)).is_ok());
        assert!(validate_partition_key(&"é".repeat(257)).is_err());
        assert!(validate_partition_key(&"a".repeat(256)).is_ok());
        assert!(validate_partition_key(&"a".repeat(257)).is_err());
        assert!(validate_partition_key("").is_err());
    }
}
