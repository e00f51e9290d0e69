//! Sequence numbers on the wire carry the stream's incarnation.
//!
//! The engine numbers a shard's records from its log position, so a stream deleted and
//! created again under the same name numbers its records as the old one did. A consumer
//! that checkpointed the old stream would resume the new one at the wrong place, silently.
//! Kinesis' numbers never repeat across streams: the server sets the top 32 bits of every
//! number it hands out (always zero in the engine's numbers: shard index and position fill
//! the low 96) to a tag of the stream's creation time, and refuses a number that carries
//! another stream's tag ("did not come from this stream"). Numbers with no tag (issued
//! before tags, by an older server) are taken as they are.

use crate::tenant::Tenant;
use crate::wire::{ApiError, messages};
use sluice_core::SequenceNumber;
use std::fmt;

/// The tag of one stream incarnation: never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incarnation(u32);

/// Where a tag sits in a number.
const TAG_SHIFT: u32 = 96;

impl Incarnation {
    /// The tag of the stream created at `created_ms` (a mix of it, so streams created a
    /// millisecond apart differ in many bits).
    pub fn of(created_ms: u64) -> Incarnation {
        // splitmix64's finalizer.
        let mut z = created_ms.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Incarnation((z as u32).max(1))
    }

    /// The tag of stream `name` of `tenant` as it exists now.
    pub fn of_stream(tenant: &Tenant, name: &str) -> Result<Incarnation, ApiError> {
        Ok(Incarnation::of(
            tenant.engine.stream(name)?.summary()?.created_ms,
        ))
    }

    /// `seq` as this incarnation hands it out.
    pub fn tag(self, seq: SequenceNumber) -> Tagged {
        Tagged(u128::from(self.0) << TAG_SHIFT | seq.0)
    }

    /// A client's number for this incarnation (of stream `stream`), as the engine knows it.
    /// `member` names it in errors (StartingSequenceNumber...).
    pub fn parse(self, text: &str, member: &str, stream: &str) -> Result<SequenceNumber, ApiError> {
        let number = SequenceNumber::parse(text)
            .map_err(|e| ApiError::invalid_argument(messages::sequence_number(&e)))?;
        let tag = (number.0 >> TAG_SHIFT) as u32;
        if tag != 0 && tag != self.0 {
            return Err(ApiError::invalid_argument(format!(
                "{member} {text} is invalid because it did not come from stream {stream}."
            )));
        }
        Ok(SequenceNumber(number.0 & ((1u128 << TAG_SHIFT) - 1)))
    }
}

/// A number as handed out; displays as the decimal clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tagged(u128);

impl fmt::Display for Tagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_in_their_incarnation_and_only_there() {
        let old = Incarnation::of(1_796_000_000_000);
        let new = Incarnation::of(1_796_000_000_001);
        assert_ne!(old, new);
        let seq = SequenceNumber::new(3, 41);
        let text = old.tag(seq).to_string();
        assert_eq!(
            old.parse(&text, "StartingSequenceNumber", "s").unwrap(),
            seq
        );
        let error = new.parse(&text, "StartingSequenceNumber", "s").unwrap_err();
        assert_eq!(error.name, "InvalidArgumentException");
        assert!(
            error.message.contains("did not come from stream s"),
            "{}",
            error.message
        );
        // A number without a tag (an older server's) is taken as it is.
        assert_eq!(new.parse(&seq.to_string(), "x", "s").unwrap(), seq);
        assert!(new.parse("007", "x", "s").is_err(), "still a decimal");
    }

    #[test]
    fn tags_are_never_zero_and_numbers_keep_their_order() {
        for ms in [0, 1, u64::MAX, 1_796_000_000_000] {
            assert_ne!(Incarnation::of(ms).0, 0);
        }
        let tag = Incarnation::of(7);
        let (a, b) = (SequenceNumber::new(0, 5), SequenceNumber::new(1, 0));
        assert!(tag.tag(a).0 < tag.tag(b).0);
    }
}
