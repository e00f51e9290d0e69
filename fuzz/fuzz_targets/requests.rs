//! Kinesis requests as the server decodes them: an operation and a JSON or CBOR body from
//! the input, run against a real tenant (decoding, validation, the operation). Every body
//! gets a reply or an AWS error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_server::config::ServeConfig;
use sluice_server::fuzzing::call;
use sluice_server::tenant::Tenant;
use sluice_server::wire::Protocol;
use std::sync::{Arc, OnceLock};

/// Every operation a body can be decoded for (SubscribeToShard answers with a stream).
const OPERATIONS: &[&str] = &[
    "CreateStream", "DeleteStream", "DescribeStream", "DescribeStreamSummary", "ListStreams",
    "IncreaseStreamRetentionPeriod", "DecreaseStreamRetentionPeriod", "UpdateMaxRecordSize",
    "UpdateStreamMode", "DescribeLimits", "PutRecord", "PutRecords", "GetShardIterator",
    "GetRecords", "ListShards", "SplitShard", "MergeShards", "UpdateShardCount",
    "AddTagsToStream", "RemoveTagsFromStream", "ListTagsForStream", "TagResource",
    "UntagResource", "ListTagsForResource", "RegisterStreamConsumer",
    "DeregisterStreamConsumer", "DescribeStreamConsumer", "ListStreamConsumers",
    "StartStreamEncryption", "StopStreamEncryption", "EnableEnhancedMonitoring",
    "DisableEnhancedMonitoring", "PutResourcePolicy", "GetResourcePolicy",
    "DeleteResourcePolicy", "DescribeAccountSettings", "UpdateAccountSettings",
    "UpdateStreamWarmThroughput",
];

fn setup() -> &'static (tempfile::TempDir, tokio::runtime::Runtime, Arc<Tenant>) {
    static SETUP: OnceLock<(tempfile::TempDir, tokio::runtime::Runtime, Arc<Tenant>)> =
        OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServeConfig::new(dir.path());
        config.cores = 1;
        // Small and few: bodies that create streams cannot fill the disk.
        config.segment_size_bytes = 1 << 20;
        config.shards_max = 32;
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let tenant =
            Tenant::open(Arc::new(config), "000000000000", "us-east-1", dir.path()).unwrap();
        (dir, runtime, tenant)
    })
}

fuzz_target!(|data: &[u8]| {
    let [operation, protocol, body @ ..] = data else { return };
    let (_, runtime, tenant) = setup();
    let name = OPERATIONS[*operation as usize % OPERATIONS.len()];
    let protocol = if protocol % 2 == 0 { Protocol::Json } else { Protocol::Cbor };
    let _ = runtime.block_on(call(tenant, name, protocol, body));
});
