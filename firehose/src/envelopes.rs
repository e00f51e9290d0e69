//! Records held encrypted in Sluice logs: DirectPut records of a delivery stream with
//! server-side encryption on (Firehose's StartDeliveryStreamEncryption), and records of a
//! source stream its writer sealed (Kinesis' StartStreamEncryption). The embedder owns the
//! keys (in `sluice serve`, its KMS keyring and data keys); the library seals through it
//! before a put and opens through it as it reads, so no envelope ever reaches a destination.

use crate::error::FirehoseError;
use std::future::Future;
use std::pin::Pin;

/// What sealing returns: each record's envelope, in order, or why none was sealed.
pub type SealFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Vec<u8>>, FirehoseError>> + Send + 'a>>;

/// Seals and opens records' data.
///
/// A stream's records are named by `stream`: for a delivery stream's own (DirectPut)
/// records, [`backing_scope`] of its name, with the time it was created; for a source
/// stream's, the stream's own name, as its writer sealed them.
pub trait Envelopes: Send + Sync + 'static {
    /// The envelopes of `records` of `stream` (`(name, created_ms)`) under the KMS key
    /// `key`. An error refuses the whole put (nothing is stored).
    fn seal<'a>(
        &'a self,
        stream: (&'a str, u64),
        key: &'a str,
        records: &'a [&'a [u8]],
    ) -> SealFuture<'a>;

    /// The data sealed in `envelope`, a record of `stream`. An error (a damaged envelope,
    /// a key that cannot be used) stops the delivery there: it is tried again, and never
    /// delivers the envelope itself.
    fn open(&self, stream: &str, envelope: &[u8]) -> Result<Vec<u8>, FirehoseError>;
}

/// How a delivery stream's DirectPut records are named to [`Envelopes`]: `firehose/<name>`
/// (no stream name holds a `/`, so they are never taken for a stream's).
pub fn backing_scope(delivery_stream: &str) -> String {
    format!("firehose/{delivery_stream}")
}
