//! Between the two halves of a delivery task: a buffer's records processed (unpacked, sent
//! through the transform, partitioned), then named and compressed as objects, or made into
//! the request that carries them, ready for the writing half.

use super::buffer::{Flush, Records};
use super::convert::{self, Converter};
use super::http::{self, Endpoint, Request};
use super::postgres::Database;
use super::process::envelope;
use super::process::{Lambda, Processed};
use super::retry::Failure;
use super::unpack::{Partitioning, Unpacking};
use super::{Interrupted, blocking, now_ms};
use crate::compress::compress;
use crate::naming::{Keys, NO_KEYS, Prefix, PrefixKind, object_key};
use crate::spec::Compression;
use sluice_core::SequenceNumber;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How a delivery stream's objects are made: processed, named and compressed.
#[derive(Clone)]
pub(super) struct Naming {
    pub(super) name: String,
    pub(super) version: u64,
    pub(super) prefix: Prefix,
    /// The error output's prefix (`processing-failed/` by default).
    pub(super) error_prefix: Prefix,
    /// The error output's prefix for records an HTTP endpoint did not take
    /// (`http-endpoint-failed/` by default).
    pub(super) http_error_prefix: Prefix,
    /// The error output's prefix for records conversion failed (`format-conversion-failed/`
    /// by default).
    pub(super) conversion_error_prefix: Prefix,
    /// Record format conversion, if any.
    pub(super) converter: Option<Arc<Converter>>,
    /// The HTTP endpoint records are sent to, if that is the target.
    pub(super) endpoint: Option<Arc<Endpoint>>,
    /// The database staged objects are loaded into, if that is the target.
    pub(super) database: Option<Arc<Database>>,
    pub(super) compression: Compression,
    /// What is done to each record before the transform (none: nothing).
    pub(super) unpacking: Option<Arc<Unpacking>>,
    /// The transform, if any.
    pub(super) lambda: Option<Lambda>,
    /// The partition keys' query (dynamic partitioning), if any.
    pub(super) partitioning: Option<Arc<Partitioning>>,
    /// Appended to each record once processed (with no processors and no backup, the
    /// reading half appends it as records come in, and this is empty).
    pub(super) delimiter: Vec<u8>,
    /// Source record backup: its objects' prefix and compression (the bucket is the
    /// writing half's).
    pub(super) backup: Option<(Prefix, Compression)>,
}

/// One flush, ready to write: its objects (or request) and its error output's (any may be
/// absent), and the positions it delivers.
pub(super) struct Object {
    /// The objects: one, or one per partition.
    pub(super) mains: Vec<Named>,
    /// The request, when the target is an HTTP endpoint.
    pub(super) request: Option<Request>,
    pub(super) errors: Option<Named>,
    /// The error output of the records conversion failed.
    pub(super) conversion_errors: Option<Named>,
    /// The flush's records as read, for the backup bucket.
    pub(super) backup: Option<Named>,
    /// When the oldest record arrived (the error output's prefix is evaluated at it).
    pub(super) oldest_ms: u64,
    /// For a database target, the object's records uncompressed, to load.
    pub(super) staged: Option<Vec<u8>>,
    /// Records in the objects, dropped, and written to the error output.
    pub(super) records: u64,
    pub(super) dropped: u64,
    pub(super) failed: u64,
    /// The objects' records' bytes before compression.
    pub(super) raw_bytes: u64,
    /// Per shard id, the last record of the flush.
    pub(super) positions: BTreeMap<String, SequenceNumber>,
}

/// An object's key and compressed bytes.
pub(super) struct Named {
    pub(super) key: String,
    pub(super) body: Vec<u8>,
}

impl Naming {
    /// Processes, names and compresses a buffer's records (or makes the request that
    /// carries them), off the async threads.
    pub(super) async fn prepare(&self, flush: Flush) -> Result<Object, Interrupted> {
        let Flush {
            data,
            ends,
            arrivals,
            oldest_ms,
            positions,
        } = flush;
        let backup = match &self.backup {
            Some(_) => Some(self.backup(data.clone(), oldest_ms).await?),
            None => None,
        };
        let processed = self
            .process(Records {
                data,
                ends,
                arrivals,
            })
            .await?;
        let records = processed.records;
        let (mut delivered, raw_bytes) = (records.len(), records.data.len() as u64);
        let now = now_ms();
        let mut staged = None;
        let mut unconverted = Unconverted::default();
        let (mains, request) = match &self.endpoint {
            _ if delivered == 0 => (Vec::new(), None),
            None => {
                if self.database.is_some() {
                    staged = Some(records.data.clone());
                }
                let parts = match self.partitioning {
                    Some(_) => partitions(records, processed.keys),
                    None => vec![(NO_KEYS.clone(), records)],
                };
                let made = self.objects(parts, oldest_ms, now, &mut unconverted);
                (made.await?, None)
            }
            Some(endpoint) => {
                let gzip = endpoint.gzip();
                let made = move || Ok::<_, std::convert::Infallible>(http::request(records, gzip));
                (Vec::new(), Some(blocking(made, "make a request").await?))
            }
        };
        let errors = if processed.failed_records > 0 {
            let (prefix, failed) = (&self.error_prefix, processed.failed);
            let named = self.named(prefix, "processing-failed", &NO_KEYS, failed, oldest_ms);
            Some(named.await?)
        } else {
            None
        };
        let conversion_errors = if unconverted.records > 0 {
            delivered -= unconverted.records;
            let (prefix, failed) = (&self.conversion_error_prefix, unconverted.envelopes);
            let named = self.named(
                prefix,
                "format-conversion-failed",
                &NO_KEYS,
                failed,
                oldest_ms,
            );
            Some(named.await?)
        } else {
            None
        };
        Ok(Object {
            mains,
            request,
            errors,
            conversion_errors,
            backup,
            oldest_ms,
            staged,
            records: delivered,
            dropped: processed.dropped,
            failed: processed.failed_records + unconverted.records,
            raw_bytes,
            positions,
        })
    }

    /// The backup object of a flush's records as read.
    async fn backup(&self, data: Vec<u8>, oldest_ms: u64) -> Result<Named, Interrupted> {
        let (prefix, compression) = self.backup.as_ref().expect("a backup is configured");
        let name = (self.name.as_str(), self.version);
        let key = object_key(
            prefix,
            "",
            &NO_KEYS,
            name,
            oldest_ms,
            now_ms(),
            *compression,
        );
        compressed(key, *compression, data).await
    }

    /// The flush's records through the processors: unpacked, transformed, delimited and
    /// given their partition keys, each step's failures to the error output.
    async fn process(&self, records: Records) -> Result<Processed, Interrupted> {
        let mut processed = match &self.unpacking {
            Some(unpacking) => {
                let unpacking = unpacking.clone();
                blocking(move || Ok::<_, String>(unpacking.unpack(records)), "unpack").await?
            }
            None => Processed {
                records,
                ..Processed::default()
            },
        };
        if let Some(lambda) = &self.lambda {
            let transformed = lambda.process(&processed.records).await?;
            processed = processed.then(transformed);
        }
        if !self.delimiter.is_empty() {
            processed.records = processed.records.delimited(&self.delimiter);
        }
        if let Some(partitioning) = &self.partitioning {
            let partitioning = partitioning.clone();
            let keyed = move || Ok::<_, String>(partitioning.partition(processed));
            processed = blocking(keyed, "extract partition keys").await?;
        }
        Ok(processed)
    }

    /// The objects of `parts` (one, or one per partition: its prefix evaluated with the
    /// partition's keys), converted to Parquet when the destination asks; the records the
    /// conversion could not read go to `unconverted`. (The hour directories, when the
    /// prefix has no timestamp, are the flush's oldest record's, so a flush's objects share
    /// them.)
    async fn objects(
        &self,
        parts: Vec<(Keys, Records)>,
        oldest_ms: u64,
        now: u64,
        unconverted: &mut Unconverted,
    ) -> Result<Vec<Named>, Interrupted> {
        let mut named = Vec::with_capacity(parts.len());
        for (keys, records) in parts {
            let data = match &self.converter {
                None => records.data,
                Some(converter) => {
                    let converter = converter.clone();
                    let convert = move || converter.convert(&records).map(|c| (c, records));
                    let (converted, records) = blocking(convert, "convert records").await?;
                    unconverted.add(&records, &converted.failed);
                    match converted.parquet {
                        Some(parquet) => parquet,
                        None => continue,
                    }
                }
            };
            let mut object = self
                .named_at(&self.prefix, "", &keys, data, oldest_ms, now)
                .await?;
            if self.converter.is_some() {
                object.key.push_str(".parquet");
            }
            named.push(object);
        }
        Ok(named)
    }

    /// A COPY manifest naming the staged object `key` the database did not take in time,
    /// under `errors/manifests/` as Firehose writes them for Redshift.
    pub(super) fn manifest(&self, bucket: &str, key: &str) -> Named {
        let prefix = Prefix::parse("errors/manifests/", PrefixKind::Objects).expect("plain");
        let now = now_ms();
        let name = (self.name.as_str(), self.version);
        let compression = Compression::Uncompressed;
        let manifest_key = object_key(&prefix, "", &NO_KEYS, name, now, now, compression);
        let entries = serde_json::json!({
            "entries": [{ "url": format!("s3://{bucket}/{key}"), "mandatory": true }]
        });
        Named {
            key: manifest_key,
            body: entries.to_string().into_bytes(),
        }
    }

    /// The error output of the records of `request`, which the endpoint did not take.
    pub(super) async fn http_failed(
        &self,
        request: &Request,
        failure: &Failure,
        oldest_ms: u64,
    ) -> Result<Named, Interrupted> {
        let mut envelopes = Vec::new();
        for (data, arrival) in request.records.iter() {
            envelope(&mut envelopes, failure, data, arrival, None);
        }
        let prefix = &self.http_error_prefix;
        let error_type = "http-endpoint-failed";
        self.named_at(prefix, error_type, &NO_KEYS, envelopes, oldest_ms, now_ms())
            .await
    }

    /// An object of `data` under `prefix`, evaluated at the flush's oldest record.
    async fn named(
        &self,
        prefix: &Prefix,
        error_type: &str,
        keys: &Keys,
        data: Vec<u8>,
        oldest_ms: u64,
    ) -> Result<Named, Interrupted> {
        self.named_at(prefix, error_type, keys, data, oldest_ms, now_ms())
            .await
    }

    async fn named_at(
        &self,
        prefix: &Prefix,
        error_type: &str,
        keys: &Keys,
        data: Vec<u8>,
        oldest_ms: u64,
        now_ms: u64,
    ) -> Result<Named, Interrupted> {
        let name = (self.name.as_str(), self.version);
        let compression = self.compression;
        let key = object_key(
            prefix,
            error_type,
            keys,
            name,
            oldest_ms,
            now_ms,
            compression,
        );
        compressed(key, compression, data).await
    }
}

/// The object `key` of `data`, compressed.
async fn compressed(
    key: String,
    compression: Compression,
    data: Vec<u8>,
) -> Result<Named, Interrupted> {
    // A ZIP object's one entry is named as the object, without `.zip`.
    let entry = key.rsplit('/').next().unwrap_or_default();
    let entry = entry.strip_suffix(".zip").unwrap_or(entry).to_owned();
    let body = blocking(move || compress(compression, data, &entry), "compress").await?;
    Ok(Named { key, body })
}

/// The records of each partition, in order.
fn partitions(records: Records, keys: Vec<Keys>) -> Vec<(Keys, Records)> {
    let mut partitions: BTreeMap<Keys, Records> = BTreeMap::new();
    for ((data, arrival), keys) in records.iter().zip(keys) {
        partitions.entry(keys).or_default().push(data, arrival);
    }
    partitions.into_iter().collect()
}

/// The records conversion could not read, as the error output's envelopes.
#[derive(Default)]
struct Unconverted {
    envelopes: Vec<u8>,
    records: u64,
}

impl Unconverted {
    fn add(&mut self, records: &Records, failed: &[(usize, String)]) {
        if failed.is_empty() {
            return;
        }
        let all: Vec<(&[u8], u64)> = records.iter().collect();
        for (i, why) in failed {
            let failure = Failure {
                code: convert::MALFORMED,
                message: why.clone(),
                attempts: 1,
            };
            let (data, arrival) = all[*i];
            envelope(&mut self.envelopes, &failure, data, arrival, None);
            self.records += 1;
        }
    }
}
