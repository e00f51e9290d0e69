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
        // Every input is a structure: serde would also take a list of the members in
        // order, which no AWS protocol allows.
        if !self.is_map(body) {
            return Err(ApiError::serialization(match self {
                Protocol::Json => "The request body is not a JSON object.",
                Protocol::Cbor => "The request body is not a CBOR map.",
            }));
        }
        match self {
            // serde_json refuses anything but whitespace after the value.
            Protocol::Json => serde_json::from_slice(body).map_err(ApiError::serialization),
            // Straight into the input type, with no value tree in between (a tree of a
            // 16 MiB array of one-byte items would take gigabytes). ciborium skips tags
            // before strings, numbers and bytes; timestamps read through the tag the Java
            // SDK puts on them (see `Timestamp`).
            Protocol::Cbor => {
                let mut rest = body;
                let input = ciborium::from_reader(&mut rest).map_err(ApiError::serialization)?;
                if !rest.is_empty() {
                    return Err(ApiError::serialization(format!(
                        "The request body has {} bytes after its CBOR map.",
                        rest.len()
                    )));
                }
                Ok(input)
            }
        }
    }

    /// Whether `body` starts a map: `{` in JSON, major type 5 in CBOR.
    fn is_map(self, body: &[u8]) -> bool {
        match self {
            Protocol::Json => body
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|&b| b == b'{'),
            Protocol::Cbor => body.first().is_some_and(|b| b >> 5 == 5),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        stream_name: Option<String>,
        limit: Option<i64>,
    }

    fn cbor(value: &impl Serialize) -> Vec<u8> {
        Protocol::Cbor.encode(value)
    }

    #[test]
    fn inputs_are_maps_and_nothing_follows_them() {
        let json = Protocol::Json;
        let expected = Input {
            stream_name: Some("s".into()),
            limit: Some(1),
        };
        assert_eq!(
            json.decode::<Input>(br#" {"StreamName":"s","Limit":1} "#)
                .unwrap(),
            expected
        );
        let error = json.decode::<Input>(br#"["s", 1]"#).unwrap_err();
        assert_eq!(error.name, "SerializationException");
        assert!(json.decode::<Input>(br#"{"StreamName":"s"} {}"#).is_err());
        let map = serde_json::json!({"StreamName": "s", "Limit": 1});
        assert_eq!(
            Protocol::Cbor.decode::<Input>(&cbor(&map)).unwrap(),
            expected
        );
        let error = Protocol::Cbor
            .decode::<Input>(&cbor(&serde_json::json!(["s", 1])))
            .unwrap_err();
        assert_eq!(error.name, "SerializationException");
        let mut trailing = cbor(&map);
        trailing.extend_from_slice(&[0x01, 0x02]);
        let error = Protocol::Cbor.decode::<Input>(&trailing).unwrap_err();
        assert!(error.message.contains("2 bytes after"), "{}", error.message);
        assert_eq!(
            json.decode::<Input>(b"").unwrap().stream_name,
            None,
            "empty reads as {{}}"
        );
    }
}
