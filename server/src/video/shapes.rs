//! The `kinesisvideo`, `kinesis-video-media` and `kinesis-video-archived-media` inputs.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The data-plane APIs GetDataEndpoint names.
pub const API_NAMES: &[&str] = &[
    "PUT_MEDIA",
    "GET_MEDIA",
    "LIST_FRAGMENTS",
    "GET_MEDIA_FOR_FRAGMENT_LIST",
    "GET_HLS_STREAMING_SESSION_URL",
    "GET_DASH_STREAMING_SESSION_URL",
    "GET_CLIP",
    "GET_IMAGES",
];

/// A stream named by name or ARN.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamRef {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
}

impl StreamRef {
    pub fn name(&self) -> Option<&str> {
        self.stream_name.as_deref()
    }
    pub fn arn(&self) -> Option<&str> {
        self.stream_arn.as_deref()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Create {
    pub stream_name: String,
    pub device_name: Option<String>,
    pub media_type: Option<String>,
    pub kms_key_id: Option<String>,
    pub data_retention_in_hours: Option<u64>,
    pub tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NameCondition {
    pub comparison_value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct List {
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub stream_name_condition: Option<NameCondition>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Delete {
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    pub current_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Update {
    #[serde(flatten)]
    pub at: StreamRef,
    pub current_version: Option<String>,
    pub device_name: Option<String>,
    pub media_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Retention {
    #[serde(flatten)]
    pub at: StreamRef,
    pub current_version: String,
    pub operation: String,
    pub data_retention_change_in_hours: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tags {
    #[serde(flatten)]
    pub at: StreamRef,
    pub tags: Option<BTreeMap<String, String>>,
    pub tag_key_list: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataEndpoint {
    #[serde(flatten)]
    pub at: StreamRef,
    #[serde(rename = "APIName")]
    pub api_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimestampRange {
    pub start_timestamp: f64,
    pub end_timestamp: f64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FragmentSelector {
    pub fragment_selector_type: String,
    pub timestamp_range: TimestampRange,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFragments {
    #[serde(flatten)]
    pub at: StreamRef,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub fragment_selector: Option<FragmentSelector>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartSelector {
    pub start_selector_type: String,
    pub after_fragment_number: Option<String>,
    pub start_timestamp: Option<f64>,
    pub continuation_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMedia {
    #[serde(flatten)]
    pub at: StreamRef,
    pub start_selector: StartSelector,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMediaForFragmentList {
    #[serde(flatten)]
    pub at: StreamRef,
    pub fragments: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HlsRange {
    pub start_timestamp: Option<f64>,
    pub end_timestamp: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HlsSelector {
    pub fragment_selector_type: Option<String>,
    pub timestamp_range: Option<HlsRange>,
}

/// GetHLSStreamingSessionURL's and GetDASHStreamingSessionURL's input (each names its
/// selector and its limit its own way; DASH has no container or discontinuity mode).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionRequest {
    #[serde(flatten)]
    pub at: StreamRef,
    pub playback_mode: Option<String>,
    #[serde(rename = "HLSFragmentSelector", alias = "DASHFragmentSelector")]
    pub fragment_selector: Option<HlsSelector>,
    pub container_format: Option<String>,
    pub discontinuity_mode: Option<String>,
    pub display_fragment_timestamp: Option<String>,
    pub display_fragment_number: Option<String>,
    pub expires: Option<u32>,
    #[serde(alias = "MaxManifestFragmentResults")]
    pub max_media_playlist_fragment_results: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClipSelector {
    pub fragment_selector_type: String,
    pub timestamp_range: TimestampRange,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetClip {
    #[serde(flatten)]
    pub at: StreamRef,
    pub clip_fragment_selector: ClipSelector,
}
