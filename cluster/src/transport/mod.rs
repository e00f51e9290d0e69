//! Node-to-node calls: every shard group's messages between two nodes share one HTTP/2
//! connection (h2c on the peer port, or over mutual TLS: tls.rs), and heartbeats to a peer are gathered into one request
//! for all the groups that ask within a short window. The payloads are opaque here: the Raft
//! layer encodes its messages; this layer names the group and carries bytes.
//!
//! Routes on the peer port: `POST /sluice/peer/v1/call/<method>` with the group in
//! `x-sluice-group` (`<stream uid>.<shard index>`), and `POST /sluice/peer/v1/heartbeats`
//! with a body of frames (`frame.rs`).

mod client;
mod frame;
mod server;
mod tls;

use std::fmt;
use std::str::FromStr;

pub use client::{Peers, TransportConfig};
pub use server::{PeerHandler, PeerServer, PeerStats};
pub use tls::{PeerTls, PeerTlsError};

/// A connection's byte stream, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// One shard's Raft group: the stream's uid (never reused) and the shard's index.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct GroupId {
    /// The stream's uid.
    pub stream_uid: u64,
    /// The shard's index in the stream.
    pub shard: u32,
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.stream_uid, self.shard)
    }
}

impl FromStr for GroupId {
    type Err = String;
    fn from_str(text: &str) -> Result<GroupId, String> {
        let bad = || format!("not a group id (<stream uid>.<shard>): {text:?}");
        let (uid, shard) = text.split_once('.').ok_or_else(bad)?;
        Ok(GroupId {
            stream_uid: uid.parse().map_err(|_| bad())?,
            shard: shard.parse().map_err(|_| bad())?,
        })
    }
}

/// Why a call to a peer failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// No connection to the peer could be made or kept (refused, reset, closed).
    #[error("peer {peer} unreachable: {reason}")]
    Unreachable {
        /// The peer's address.
        peer: String,
        /// What failed.
        reason: String,
        /// Whether the request may have reached the peer (a connection that broke while it
        /// was on its way); `false`: no connection could be made, nothing was sent.
        sent: bool,
    },
    /// The peer did not answer within the call's timeout.
    #[error("peer {peer} did not answer within {timeout_ms} ms")]
    Timeout {
        /// The peer's address.
        peer: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The peer answered with a failure (its handler's message, or a malformed request).
    #[error("peer {peer} answered {status}: {message}")]
    Remote {
        /// The peer's address.
        peer: String,
        /// The HTTP status.
        status: u16,
        /// The peer's message.
        message: String,
    },
}
