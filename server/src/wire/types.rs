//! Blobs and timestamps: the two member types whose encoding differs between the protocols.
//! serde's `is_human_readable` tells them apart (true for JSON, false for CBOR).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// A blob member: base64 text in JSON, a byte string in CBOR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

/// A blob borrowed for a reply (records read from the log are encoded without a copy).
#[derive(Debug, Clone, Copy)]
pub struct BlobRef<'a>(pub &'a [u8]);

impl Serialize for BlobRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&BASE64.encode(self.0))
        } else {
            serializer.serialize_bytes(self.0)
        }
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        BlobRef(&self.0).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Blob, D::Error> {
        struct BlobVisitor;
        impl<'de> Visitor<'de> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a blob (base64 text in JSON, a byte string in CBOR)")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Blob, E> {
                BASE64
                    .decode(text)
                    .map(Blob)
                    .map_err(|_| E::custom("Base64 encoded blob is not valid base64"))
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Blob, E> {
                Ok(Blob(bytes.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(bytes))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(BlobVisitor)
        } else {
            // `byte_buf`, not `bytes`: ciborium serves `bytes` only for strings that fit its
            // 4 KiB scratch buffer (and never for indefinite-length ones).
            deserializer.deserialize_byte_buf(BlobVisitor)
        }
    }
}

/// A timestamp member, kept as milliseconds since the epoch. JSON carries epoch seconds (a
/// number with a fraction; ISO 8601 text is accepted too), CBOR epoch milliseconds (tag 1,
/// which the Java SDK adds, is read through; integers and floats both accepted;
/// replies carry untagged integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// Milliseconds since the Unix epoch.
    pub ms: u64,
}

impl Timestamp {
    /// From milliseconds since the epoch.
    pub fn from_ms(ms: u64) -> Timestamp {
        Timestamp { ms }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_f64(self.ms as f64 / 1000.0)
        } else {
            // Untagged integer milliseconds. The Java SDK reads the number and ignores any
            // tag; generic CBOR decoders read tag 1 as *seconds*, so tagging milliseconds
            // would hand them dates 1000 times too far away.
            serializer.serialize_u64(self.ms)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        #[derive(Clone, Copy)]
        struct TimestampVisitor {
            unit_ms: f64,
        }
        impl<'de> de::DeserializeSeed<'de> for TimestampVisitor {
            type Value = Timestamp;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Timestamp, D::Error> {
                d.deserialize_any(self)
            }
        }
        impl TimestampVisitor {
            fn timestamp<E: de::Error>(&self, value: f64) -> Result<Timestamp, E> {
                let ms = (value * self.unit_ms).round();
                if !ms.is_finite() || ms < 0.0 || ms > u64::MAX as f64 {
                    return Err(E::custom(format!("timestamp {value} is out of range")));
                }
                Ok(Timestamp { ms: ms as u64 })
            }
        }
        impl<'de> Visitor<'de> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a timestamp")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Timestamp, E> {
                self.timestamp(value as f64)
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Timestamp, E> {
                self.timestamp(value as f64)
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Timestamp, E> {
                self.timestamp(value)
            }
            /// ciborium hands a tagged value (the Java SDK's tag 1) over as an enum whose
            /// variant is the tag and whose content is the number.
            fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Timestamp, A::Error> {
                use de::VariantAccess as _;
                let (_tag, content) = data.variant::<de::IgnoredAny>()?;
                content.newtype_variant_seed(self)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
                if let Ok(seconds) = text.parse::<f64>() {
                    return self.timestamp(seconds * 1000.0 / self.unit_ms);
                }
                let time = humantime::parse_rfc3339_weak(text)
                    .map_err(|_| E::custom(format!("'{text}' is not a timestamp")))?;
                let ms = time
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|_| E::custom(format!("'{text}' is before 1970")))?
                    .as_millis();
                Ok(Timestamp { ms: ms as u64 })
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(TimestampVisitor { unit_ms: 1000.0 })
        } else {
            deserializer.deserialize_any(TimestampVisitor { unit_ms: 1.0 })
        }
    }
}
