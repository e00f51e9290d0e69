//! PutMedia's acknowledgements: the events and Kinesis Video's error ids.

use serde::Serialize;

/// Why a fragment or a session was refused, with Kinesis Video's `ErrorId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckError {
    /// 4000: the body could not be read.
    StreamReadError,
    /// 4001: a fragment over the size limit.
    MaxFragmentSizeReached,
    /// 4002: a fragment over the duration limit.
    MaxFragmentDurationReached,
    /// 4004: a fragment's timecode lower than the previous one's.
    FragmentTimecodeLesserThanPrevious,
    /// 4006: bytes that are not valid MKV (garbage, a cut-off body, a cluster before Tracks).
    InvalidMkvData,
    /// 4007: a producer timestamp that is not one.
    InvalidProducerTimestamp,
    /// 4008: the stream is not active (deleted meanwhile).
    StreamNotActive,
    /// 4010: a block for a track not in Tracks, or a segment whose track numbers differ
    /// from the first segment's.
    TrackNumberMismatch,
    /// 4011: a fragment without frames for one of the tracks.
    FramesMissingForTrack,
    /// 4012: more than 3 tracks.
    MoreThanAllowedTracksFound,
    /// 5000: the server could not store the fragment.
    InternalError,
}

impl AckError {
    /// The `ErrorId`.
    pub fn id(self) -> u32 {
        match self {
            AckError::StreamReadError => 4000,
            AckError::MaxFragmentSizeReached => 4001,
            AckError::MaxFragmentDurationReached => 4002,
            AckError::FragmentTimecodeLesserThanPrevious => 4004,
            AckError::InvalidMkvData => 4006,
            AckError::InvalidProducerTimestamp => 4007,
            AckError::StreamNotActive => 4008,
            AckError::TrackNumberMismatch => 4010,
            AckError::FramesMissingForTrack => 4011,
            AckError::MoreThanAllowedTracksFound => 4012,
            AckError::InternalError => 5000,
        }
    }

    /// The name the SDKs give the id.
    pub fn code(self) -> &'static str {
        match self {
            AckError::StreamReadError => "STREAM_READ_ERROR",
            AckError::MaxFragmentSizeReached => "MAX_FRAGMENT_SIZE_REACHED",
            AckError::MaxFragmentDurationReached => "MAX_FRAGMENT_DURATION_REACHED",
            AckError::FragmentTimecodeLesserThanPrevious => {
                "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS"
            }
            AckError::InvalidMkvData => "INVALID_MKV_DATA",
            AckError::InvalidProducerTimestamp => "INVALID_PRODUCER_TIMESTAMP",
            AckError::StreamNotActive => "STREAM_NOT_ACTIVE",
            AckError::TrackNumberMismatch => "TRACK_NUMBER_MISMATCH",
            AckError::FramesMissingForTrack => "FRAMES_MISSING_FOR_TRACK",
            AckError::MoreThanAllowedTracksFound => "MORE_THAN_ALLOWED_TRACKS_FOUND",
            AckError::InternalError => "INTERNAL_ERROR",
        }
    }
}

/// The kind of an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AckEvent {
    /// A fragment's first bytes arrived.
    Buffering,
    /// A fragment arrived whole.
    Received,
    /// A fragment is durable.
    Persisted,
    /// A fragment or the session was refused.
    Error,
    /// Nothing arrived for a while; the session is still open.
    Idle,
}

/// One acknowledgement, as PutMedia streams them (one JSON object a line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ack {
    /// What happened.
    pub event_type: AckEvent,
    /// The fragment's timecode as the producer sent it, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragment_timecode: Option<u64>,
    /// The fragment's number (RECEIVED after it is stored, and PERSISTED).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragment_number: Option<String>,
    /// ERROR's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<u32>,
    /// ERROR's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
}

impl Ack {
    /// An acknowledgement without a fragment number or error.
    pub fn new(event_type: AckEvent, fragment_timecode: Option<u64>) -> Ack {
        Ack {
            event_type,
            fragment_timecode,
            fragment_number: None,
            error_id: None,
            error_code: None,
        }
    }

    /// An ERROR acknowledgement.
    pub fn error(error: AckError, fragment_timecode: Option<u64>) -> Ack {
        Ack {
            error_id: Some(error.id()),
            error_code: Some(error.code()),
            ..Ack::new(AckEvent::Error, fragment_timecode)
        }
    }

    /// The line PutMedia writes for it (JSON and a newline).
    pub fn line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("an ack serializes");
        line.push(b'\n');
        line
    }
}
