//! Matroska: element framing (`ebml`), a segment's header (`header`) and a cluster's blocks
//! (`cluster`).

pub(crate) mod cluster;
pub(crate) mod ebml;
pub(crate) mod header;

pub use cluster::{BlockInfo, ClusterInfo};
pub use header::{SegmentHeader, Track};
