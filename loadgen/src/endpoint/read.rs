//! The catch-up read: every shard read back with GetRecords from TRIM_HORIZON, all shards at
//! once, each record checked against what the put phase acknowledged.

use super::{Acked, Sequence, shard_index};
use crate::client::KinesisClient;
use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetRecordsReply<'a> {
    #[serde(borrow)]
    records: Vec<RecordReply<'a>>,
    next_shard_iterator: Option<String>,
    #[serde(default)]
    millis_behind_latest: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordReply<'a> {
    sequence_number: &'a str,
    data: &'a str,
}

/// Reads every shard back at once, one reader and connection per shard (as KCL's workers
/// do), and checks that each shard holds each of its acknowledged records once, with its data.
/// Returns the records read.
pub(super) async fn read_back(
    address: SocketAddr,
    shards: &[String],
    stream: &str,
    acknowledged: Arc<Vec<Acked>>,
    record_size: usize,
) -> anyhow::Result<u64> {
    let mut readers = tokio::task::JoinSet::new();
    for shard_id in shards {
        let (shard_id, stream, acknowledged) = (
            shard_id.clone(),
            stream.to_owned(),
            Arc::clone(&acknowledged),
        );
        readers.spawn(async move {
            let found = read_shard(address, &stream, &shard_id, &acknowledged, record_size).await;
            (shard_id, found)
        });
    }
    let mut read = 0u64;
    // The first failure ends the read (the other readers are dropped with the set).
    while let Some(done) = readers.join_next().await {
        let (shard_id, result) = done?;
        let (shard_read, found) = result?;
        let index = shard_index(&shard_id).context("shard id")?;
        let acked = acknowledged.iter().filter(|a| a.shard == index).count() as u64;
        if found != acked {
            bail!("{shard_id}: read back {found} of its {acked} acknowledged records");
        }
        read += shard_read;
    }
    Ok(read)
}

/// One shard from TRIM_HORIZON to its tip: (records read, acknowledged records found).
async fn read_shard(
    address: SocketAddr,
    stream: &str,
    shard_id: &str,
    acknowledged: &[Acked],
    record_size: usize,
) -> anyhow::Result<(u64, u64)> {
    let mut client = KinesisClient::connect(address).await?;
    let index = shard_index(shard_id).context("shard id")?;
    let it: Value = client
        .call("GetShardIterator", &json!({"StreamName": stream, "ShardId": shard_id, "ShardIteratorType": "TRIM_HORIZON"}))
        .await?;
    let mut iterator = it["ShardIterator"]
        .as_str()
        .context("ShardIterator")?
        .to_owned();
    let (mut read, mut found) = (0u64, 0u64);
    let mut last: Option<Sequence> = None;
    let mut data = Vec::with_capacity(record_size.max(8));
    loop {
        let request = serde_json::to_vec(&json!({"ShardIterator": iterator, "Limit": 10000}))?;
        let (status, body) = client.send("GetRecords", Bytes::from(request)).await?;
        if status != 200 {
            bail!(
                "GetRecords answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let page: GetRecordsReply = serde_json::from_slice(&body)?;
        for record in &page.records {
            let sequence = Sequence::parse(record.sequence_number);
            // In order, each once: a record read twice cannot stand in for a missing one.
            if last.as_ref().is_some_and(|last| *last >= sequence) {
                bail!("{shard_id}: {} read after {last:?}", record.sequence_number);
            }
            last = Some(sequence.clone());
            let key = (index, &sequence);
            let at = acknowledged.partition_point(|a| (a.shard, &a.sequence) < key);
            let Some(expected) = acknowledged
                .get(at)
                .filter(|a| (a.shard, &a.sequence) == key)
            else {
                continue; // a record whose acknowledgement was lost is allowed to exist
            };
            data.clear();
            BASE64.decode_vec(record.data, &mut data)?;
            let ok = data.len() == record_size.max(8)
                && data[..4] == expected.conn.to_le_bytes()
                && data[4..8] == expected.index.to_le_bytes();
            if !ok {
                bail!(
                    "{shard_id} {}: the data is not what was put",
                    record.sequence_number
                );
            }
            found += 1;
        }
        read += page.records.len() as u64;
        // An empty page mid-shard is allowed (Kinesis returns them, and so does a skipped
        // gap); the read is done at the tip or at the end of a closed shard.
        let at_tip = page.records.is_empty() && page.millis_behind_latest == 0;
        match page.next_shard_iterator {
            Some(next) if !at_tip => iterator = next,
            _ => return Ok((read, found)),
        }
    }
}
