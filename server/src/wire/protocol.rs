//! Which protocol a request speaks, and decoding and encoding bodies in it.

use crate::wire::ApiError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `application/x-amz-json-1.1` or `application/x-amz-cbor-1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// JSON 1.1: botocore, the AWS CLI, the JS, Go and Rust SDKs.
    Json,
    /// CBOR 1.1: the Java SDK v2 (and so KCL) by default.
    Cbor,
}

impl Protocol {
    /// The protocol of a `Content-Type` header value; JSON when absent or unknown (what
    /// AWS answers to `application/json` and to curl's defaults alike).
    pub fn from_content_type(content_type: Option<&str>) -> Protocol {
        match content_type {
            Some(value) if value.trim().starts_with("application/x-amz-cbor") => Protocol::Cbor,
            _ => Protocol::Json,
        }
    }

    /// The `Content-Type` of replies.
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::Json => "application/x-amz-json-1.1",
            Protocol::Cbor => "application/x-amz-cbor-1.1",
        }
    }

    /// The request's input. An empty body reads as `{}` (operations without input may send
    /// nothing). A body that does not parse, or a member of the wrong type, is a
    /// SerializationException.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, ApiError> {
        let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
            match self {
                Protocol::Json => b"{}",
                Protocol::Cbor => &[0xa0], // an empty map
            }
        } else {
            body
        };
        match self {
            Protocol::Json => serde_json::from_slice(body).map_err(ApiError::serialization),
            // Straight into the input type, with no value tree in between (a tree of a
            // 16 MiB array of one-byte items would take gigabytes). ciborium skips tags
            // before strings, numbers and bytes; timestamps read through the tag the Java
            // SDK puts on them (see `Timestamp`).
            Protocol::Cbor => ciborium::from_reader(body).map_err(ApiError::serialization),
        }
    }

    /// A reply body.
    pub fn encode<T: Serialize>(self, value: &T) -> Vec<u8> {
        match self {
            Protocol::Json => serde_json::to_vec(value).expect("replies serialize to JSON"),
            Protocol::Cbor => {
                let mut body = Vec::new();
                ciborium::into_writer(value, &mut body).expect("replies serialize to CBOR");
                body
            }
        }
    }
}
