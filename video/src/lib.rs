//! # sluice-video
//!
//! Kinesis Video Streams over Sluice: each video stream is one engine log whose records are
//! fragments (one MKV cluster with the headers it needs to be played alone), numbered by
//! their sequence numbers. [`PutMediaSession`] turns a PutMedia body into fragments and
//! acknowledgements without doing I/O; [`VideoStreams`] keeps the streams' catalogue, stores
//! fragments durably, indexes them by time and reads them back for GetMedia,
//! GetMediaForFragmentList and ListFragments. The design is in docs/design/video.md.

mod ack;
mod error;
mod fragment;
mod getmedia;
mod log;
pub mod mkv;
pub mod remux;
mod session;
mod streams;
mod summary;

pub use ack::{Ack, AckError, AckEvent};
pub use error::VideoError;
pub use fragment::{FragmentMeta, NotAFragment};
pub use getmedia::{GetMediaStart, media_of};
pub use log::{
    FragmentEntry, FragmentLog, LIST_LIMIT_MAX, TimeKind, fragment_number, fragment_offset,
};
pub use session::{
    Event, FRAGMENT_DURATION_MAX_MS, PutMediaSession, ReceivedFragment, SessionOptions, TRACKS_MAX,
    TimecodeType,
};
pub use streams::{
    CreateVideoStream, FRAGMENT_BYTES_MAX, RETENTION_HOURS_MAX, STREAMS_MAX, StreamInfo, TAGS_MAX,
    VideoStreams, check_name, check_retention,
};
