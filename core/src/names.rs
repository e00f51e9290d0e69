//! Validation of user-supplied names and keys. Pure.

use crate::limits::{PARTITION_KEY_CHARS_MAX, STREAM_NAME_BYTES_MAX};

/// Whether a stream name matches `[a-zA-Z0-9_.-]{1,128}`.
pub(crate) fn stream_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= STREAM_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Checks a partition key: 1 to 256 Unicode characters. The error is the key's length in
/// characters.
pub(crate) fn check_partition_key(key: &str) -> Result<(), usize> {
    // A key has no more characters than bytes: most keys pass without counting.
    if !key.is_empty() && key.len() <= PARTITION_KEY_CHARS_MAX {
        return Ok(());
    }
    let chars = key.chars().count();
    if (1..=PARTITION_KEY_CHARS_MAX).contains(&chars) {
        Ok(())
    } else {
        Err(chars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_follow_the_kinesis_pattern() {
        assert!(stream_name_is_valid("orders.v2_eu-west"));
        assert!(stream_name_is_valid(&"a".repeat(128)));
        for bad in ["", "a/b", "..x/", "a b", "é", &"a".repeat(129)] {
            assert!(!stream_name_is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn partition_keys_count_characters_not_bytes() {
        assert!(check_partition_key(&"é".repeat(256)).is_ok());
        assert_eq!(check_partition_key(&"é".repeat(257)), Err(257));
        assert!(check_partition_key(&"a".repeat(256)).is_ok());
        assert!(check_partition_key(&"a".repeat(257)).is_err());
        assert_eq!(check_partition_key(""), Err(0));
    }
}
