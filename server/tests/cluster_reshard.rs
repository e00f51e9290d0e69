//! Resharding in cluster mode over HTTP: three nodes in one process, SplitShard, MergeShards
//! and UpdateShardCount asked of different nodes while a writer puts through every node. The
//! stream turns ACTIVE again on every node; the parents report their ending numbers and the
//! children their parents; a reader following the lineage (a parent to its end, where
//! GetRecords names its children, then the children) finds every acknowledged record once,
//! at its number, and no record twice; refusals carry Kinesis' codes. A closed shard expires
//! once retention passed since it closed (the controller's clock moved on).

mod cluster_common;

use cluster_common::{
    Node, base64, call, controller_elected, eventually, ok, shard_index, start, start_clocked,
};
use serde_json::{Value, json};
use sluice_cluster::transport::GroupId;
use sluice_cluster::{ClusterMeta, EmbeddedBackend};
use sluice_core::{Clock as _, ManualClock, ReplicaId};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// An acknowledged put: its shard, number and data.
type Acked = (u32, u128, String);

/// Puts through every node in turn until `stop`, PutRecord twice then a PutRecords of three;
/// what was acknowledged. A put that fails is only counted (it may or may not be stored).
async fn write_until(nodes: &[Node], stop: &Cell<bool>, round: &str) -> (Vec<Acked>, usize) {
    let (mut acked, mut failed) = (Vec::new(), 0);
    let mut i = 0usize;
    let data = |i: usize, r: usize| base64(format!("{round} record {i}.{r}").as_bytes());
    let key = |i: usize, r: usize| format!("key-{}", (i + r) % 7);
    while !stop.get() {
        let node = &nodes[i % nodes.len()];
        let (status, results, datas) = if i % 3 == 2 {
            let records: Vec<Value> = (0..3)
                .map(|r| json!({"Data": data(i, r), "PartitionKey": key(i, r)}))
                .collect();
            let body = json!({"StreamName": "orders", "Records": records});
            let (status, reply) = call(node, "PutRecords", body).await;
            (
                status,
                reply["Records"].clone(),
                (0..3).map(|r| data(i, r)).collect(),
            )
        } else {
            let body =
                json!({"StreamName": "orders", "Data": data(i, 0), "PartitionKey": key(i, 0)});
            let (status, reply) = call(node, "PutRecord", body).await;
            (status, json!([reply]), vec![data(i, 0)])
        };
        for (result, data) in results.as_array().into_iter().flatten().zip(datas) {
            match (status, result["SequenceNumber"].as_str()) {
                (200, Some(number)) => {
                    let shard = shard_index(result["ShardId"].as_str().unwrap());
                    acked.push((shard, number.parse().unwrap(), data));
                }
                _ => {
                    eprintln!("a put failed: {status} {result}");
                    failed += 1;
                }
            }
        }
        i += 1;
    }
    (acked, failed)
}

/// Until `name` is ACTIVE on every node.
async fn active_everywhere(nodes: &[Node]) {
    for node in nodes {
        eventually("the stream is ACTIVE everywhere", async || {
            let reply = ok(
                node,
                "DescribeStreamSummary",
                json!({"StreamName": "orders"}),
            )
            .await;
            reply["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
        })
        .await;
    }
}

/// Every shard as ListShards gives it on `node`, by index.
async fn shards(node: &Node) -> BTreeMap<u32, Value> {
    let listed = ok(node, "ListShards", json!({"StreamName": "orders"})).await;
    listed["Shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (shard_index(s["ShardId"].as_str().unwrap()), s.clone()))
        .collect()
}

/// Every record of shard `shard` read on `node` to the shard's end (closed) or to what is
/// there (open): its records (number, data) and, for a closed shard, the children GetRecords
/// named at its end.
async fn read_shard(node: &Node, shard: u32) -> (Vec<(u128, String)>, Option<Vec<u32>>) {
    let shard_id = format!("shardId-{shard:012}");
    let body =
        json!({"StreamName": "orders", "ShardId": shard_id, "ShardIteratorType": "TRIM_HORIZON"});
    let iterator = ok(node, "GetShardIterator", body).await;
    let mut iterator = iterator["ShardIterator"].as_str().unwrap().to_owned();
    let mut records = Vec::new();
    loop {
        let reply = ok(node, "GetRecords", json!({"ShardIterator": iterator})).await;
        for record in reply["Records"].as_array().unwrap() {
            let number = record["SequenceNumber"].as_str().unwrap().parse().unwrap();
            records.push((number, record["Data"].as_str().unwrap().to_owned()));
        }
        match reply["NextShardIterator"].as_str() {
            Some(next) if !reply["Records"].as_array().unwrap().is_empty() => {
                iterator = next.to_owned();
            }
            Some(_) => return (records, None),
            None => {
                let children = reply["ChildShards"].as_array().unwrap();
                let children = children
                    .iter()
                    .map(|c| shard_index(c["ShardId"].as_str().unwrap()));
                return (records, Some(children.collect()));
            }
        }
    }
}

/// Reads every shard on every node and checks them against the acknowledged puts: each at
/// its shard and number, no data twice, a closed shard's records below its ending number and
/// its end naming exactly the shards listed as its children.
async fn check_lineage(nodes: &[Node], acked: &[Acked]) {
    for node in nodes {
        let listed = shards(node).await;
        let (mut held, mut seen) = (BTreeMap::new(), BTreeSet::new());
        for (&index, shard) in &listed {
            let (records, children) = read_shard(node, index).await;
            let ending = shard["SequenceNumberRange"]["EndingSequenceNumber"].as_str();
            let listed_children: Vec<u32> = listed
                .iter()
                .filter(|(_, c)| {
                    let me = Some(format!("shardId-{index:012}"));
                    [&c["ParentShardId"], &c["AdjacentParentShardId"]]
                        .iter()
                        .any(|p| p.as_str().map(str::to_owned) == me)
                })
                .map(|(&i, _)| i)
                .collect();
            match ending {
                Some(ending) => {
                    let ending: u128 = ending.parse().unwrap();
                    assert!(records.iter().all(|(n, _)| *n <= ending), "shard {index}");
                    assert_eq!(children, Some(listed_children), "shard {index}'s children");
                }
                None => assert_eq!(children, None, "open shard {index} has no end"),
            }
            for (number, data) in records {
                assert!(seen.insert(data.clone()), "{data} read twice");
                held.insert((index, number), data);
            }
        }
        for (shard, number, data) in acked {
            assert_eq!(
                held.get(&(*shard, *number)),
                Some(data),
                "acknowledged {data}"
            );
        }
    }
}

/// The shard ids ListShards gives on `node` for `body`, following NextToken.
async fn listed(node: &Node, mut body: Value) -> Vec<u32> {
    let mut ids = Vec::new();
    loop {
        let page = ok(node, "ListShards", body).await;
        let shards = page["Shards"].as_array().unwrap();
        ids.extend(
            shards
                .iter()
                .map(|s| shard_index(s["ShardId"].as_str().unwrap())),
        );
        match page["NextToken"].as_str() {
            Some(token) => body = json!({"NextToken": token, "MaxResults": 1}),
            None => return ids,
        }
    }
}

/// ListShards' filters once shard 0 was split into 1 and 2 (pages of one shard, the filter
/// kept from page to page).
async fn filters_after_a_split(node: &Node) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let cases = [
        (json!({"Type": "AT_LATEST"}), vec![1, 2]),
        (json!({"Type": "AT_TRIM_HORIZON"}), vec![0]),
        (json!({"Type": "FROM_TRIM_HORIZON"}), vec![0, 1, 2]),
        (
            json!({"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000000"}),
            vec![1, 2],
        ),
        (json!({"Type": "AT_TIMESTAMP", "Timestamp": 1.0}), vec![0]),
        (
            json!({"Type": "FROM_TIMESTAMP", "Timestamp": now + 60.0}),
            vec![1, 2],
        ),
    ];
    for (filter, expected) in cases {
        let body = json!({"StreamName": "orders", "ShardFilter": filter, "MaxResults": 1});
        assert_eq!(listed(node, body).await, expected, "{filter}");
    }
}

/// Refusals as the single-node server words them: the code of each.
async fn refusals(node: &Node) {
    let cases = [
        (
            "SplitShard",
            json!({"StreamName": "orders", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "5"}),
            "InvalidArgumentException",
        ),
        (
            "SplitShard",
            json!({"StreamName": "orders", "ShardToSplit": "shardId-000000000099", "NewStartingHashKey": "5"}),
            "ResourceNotFoundException",
        ),
        (
            "MergeShards",
            json!({"StreamName": "orders", "ShardToMerge": "shardId-000000000000", "AdjacentShardToMerge": "shardId-000000000001"}),
            "InvalidArgumentException",
        ),
        (
            "UpdateShardCount",
            json!({"StreamName": "orders", "TargetShardCount": 9, "ScalingType": "UNIFORM_SCALING"}),
            "InvalidArgumentException",
        ),
        (
            "SplitShard",
            json!({"StreamName": "nope", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "5"}),
            "ResourceNotFoundException",
        ),
    ];
    for (operation, body, code) in cases {
        let (status, reply) = call(node, operation, body.clone()).await;
        assert_eq!(
            (status, reply["__type"].as_str()),
            (400, Some(code)),
            "{operation} {body}: {reply}"
        );
    }
}

/// Runs `reshard` on `node` while a writer puts through every node, then waits until the
/// stream is ACTIVE everywhere; the writer's acknowledgements.
async fn reshard_under_writes(
    nodes: &[Node],
    node: usize,
    operation: &str,
    body: Value,
) -> Vec<Acked> {
    let stop = Cell::new(false);
    let resharding = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ok(&nodes[node], operation, body).await;
        active_everywhere(nodes).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.set(true);
    };
    let ((acked, failed), ()) = tokio::join!(write_until(nodes, &stop, operation), resharding);
    eprintln!(
        "{operation}: {} puts acknowledged, {failed} failed",
        acked.len()
    );
    assert!(acked.len() > 10, "puts went on during the reshard");
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shards_split_merge_and_scale_under_writes_through_any_node() {
    let meta = ClusterMeta::new(EmbeddedBackend::new(), "test").unwrap();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        nodes.push(start(&meta, name).await);
    }
    controller_elected(&meta).await;
    ok(
        &nodes[0],
        "CreateStream",
        json!({"StreamName": "orders", "ShardCount": 1}),
    )
    .await;
    active_everywhere(&nodes).await;

    let split = json!({"StreamName": "orders", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": (1u128 << 127).to_string()});
    let mut acked = reshard_under_writes(&nodes, 1, "SplitShard", split).await;
    let listed = shards(&nodes[2]).await;
    assert_eq!(listed.len(), 3);
    assert!(listed[&0]["SequenceNumberRange"]["EndingSequenceNumber"].is_string());
    assert_eq!(listed[&1]["ParentShardId"], "shardId-000000000000");
    assert_eq!(
        listed[&2]["HashKeyRange"]["StartingHashKey"],
        (1u128 << 127).to_string()
    );
    check_lineage(&nodes, &acked).await;
    filters_after_a_split(&nodes[0]).await;

    let merge = json!({"StreamName": "orders", "ShardToMerge": "shardId-000000000001", "AdjacentShardToMerge": "shardId-000000000002"});
    acked.extend(reshard_under_writes(&nodes, 2, "MergeShards", merge).await);
    let listed = shards(&nodes[0]).await;
    assert_eq!(listed[&3]["AdjacentParentShardId"], "shardId-000000000002");
    check_lineage(&nodes, &acked).await;

    let scale =
        json!({"StreamName": "orders", "TargetShardCount": 2, "ScalingType": "UNIFORM_SCALING"});
    acked.extend(reshard_under_writes(&nodes, 0, "UpdateShardCount", scale).await);
    let open = shards(&nodes[1]).await.into_values();
    let open = open.filter(|s| s["SequenceNumberRange"]["EndingSequenceNumber"].is_null());
    assert_eq!(open.count(), 2);
    check_lineage(&nodes, &acked).await;
    refusals(&nodes[1]).await;
    for node in &nodes {
        node.cluster.stop().await.unwrap();
    }
}

/// Whether `node` holds shard `shard` of `uid`: its group runs or its files are on disk.
fn holds(node: &Node, uid: u64, shard: u32) -> bool {
    let group = GroupId {
        stream_uid: uid,
        shard,
    };
    let id = ReplicaId {
        stream_uid: uid,
        shard,
    };
    let on_disk = node.cluster.engine().replicas_on_disk().unwrap();
    node.cluster.replica(group).is_some() || on_disk.contains(&id)
}

/// Three nodes whose controllers and engines read the clocks given, a controller elected,
/// and stream `orders` of one shard ACTIVE on every node.
async fn one_shard_on_three(
    meta: &ClusterMeta<EmbeddedBackend>,
    (controllers, engines): (Arc<dyn sluice_core::Clock>, Arc<dyn sluice_core::Clock>),
) -> Vec<Node> {
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let clocks = (controllers.clone(), engines.clone());
        nodes.push(start_clocked(meta, name, clocks).await);
    }
    controller_elected(meta).await;
    let create = json!({"StreamName": "orders", "ShardCount": 1});
    ok(&nodes[0], "CreateStream", create).await;
    active_everywhere(&nodes).await;
    nodes
}

/// How `node` answers for shard 0 once it expired (split into 1 and 2): listed and described
/// no more (its children still naming it), no new iterator on it (`parent` asks for one),
/// and `taken_before` answering its end and its children.
async fn expired_parent_answers(node: &Node, parent: &Value, taken_before: &Value) {
    assert_eq!(
        shards(node).await.keys().copied().collect::<Vec<_>>(),
        [1, 2]
    );
    let described = ok(node, "DescribeStream", json!({"StreamName": "orders"})).await;
    let described = described["StreamDescription"]["Shards"].as_array().unwrap();
    let ids: Vec<u32> = described
        .iter()
        .map(|s| shard_index(s["ShardId"].as_str().unwrap()))
        .collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(described[0]["ParentShardId"], "shardId-000000000000");
    let (status, refused) = call(node, "GetShardIterator", parent.clone()).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["__type"], "ResourceNotFoundException", "{refused}");
    let read = ok(node, "GetRecords", json!({"ShardIterator": taken_before})).await;
    assert_eq!(read["Records"], json!([]), "{read}");
    assert!(read["NextShardIterator"].is_null(), "{read}");
    let children: Vec<u32> = read["ChildShards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| shard_index(c["ShardId"].as_str().unwrap()))
        .collect();
    assert_eq!(children, [1, 2]);
}

/// A closed shard expires once retention passed since it closed by the controller's clock
/// and its replicas hold no readable record by theirs (a controller's clock a day ahead of
/// the engines' expires nothing): every node stops its group and removes its files, nothing
/// lists or describes it, no new iterator is given on it, and an iterator taken before
/// answers its end and its children. The children go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_closed_shard_expires_once_retention_passed() {
    let meta = ClusterMeta::new(EmbeddedBackend::new(), "test").unwrap();
    let now = sluice_core::SystemClock.now_ms();
    let controllers = Arc::new(ManualClock::new(now));
    let engines = Arc::new(ManualClock::new(now));
    let nodes = one_shard_on_three(&meta, (controllers.clone(), engines.clone())).await;
    let put = json!({"StreamName": "orders", "PartitionKey": "k", "Data": base64(b"before")});
    ok(&nodes[1], "PutRecord", put).await;
    let parent = json!({"StreamName": "orders", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"});
    let taken_before = ok(&nodes[2], "GetShardIterator", parent.clone()).await;
    let split = json!({"StreamName": "orders", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": (1u128 << 127).to_string()});
    ok(&nodes[0], "SplitShard", split).await;
    active_everywhere(&nodes).await;
    assert_eq!(shards(&nodes[0]).await.len(), 3);
    let uid = nodes[0].cluster.map().streams["orders"].value.uid;
    assert!(nodes.iter().all(|n| holds(n, uid, 0)));

    // The controllers a day (the retention) and a second on, the engines not: the parent's
    // record is still readable on its replicas, so nothing goes.
    let day_and_a_second = 24 * 3_600_000 + 1_000;
    controllers.advance_ms(day_and_a_second);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(nodes.iter().all(|n| holds(n, uid, 0)), "expired early");
    let kept = ok(&nodes[0], "GetShardIterator", parent.clone()).await;
    let kept = ok(
        &nodes[0],
        "GetRecords",
        json!({"ShardIterator": kept["ShardIterator"]}),
    )
    .await;
    assert_eq!(kept["Records"].as_array().unwrap().len(), 1, "{kept}");
    engines.advance_ms(day_and_a_second);
    for node in &nodes {
        eventually("the parent is marked expired", async || {
            node.cluster.map().streams["orders"].value.shards[0].expired
        })
        .await;
        eventually("the parent's replica is gone", async || {
            !holds(node, uid, 0)
        })
        .await;
        expired_parent_answers(node, &parent, &taken_before["ShardIterator"]).await;
    }
    assert!(nodes.iter().all(|n| holds(n, uid, 1) && holds(n, uid, 2)));
    for key in ["a", "b", "c", "d"] {
        let put = json!({"StreamName": "orders", "PartitionKey": key, "Data": base64(b"after")});
        ok(&nodes[2], "PutRecord", put).await;
    }
    let mut after = 0;
    for shard in [1, 2] {
        after += read_shard(&nodes[0], shard).await.0.len();
    }
    assert_eq!(after, 4);
    for node in &nodes {
        node.cluster.stop().await.unwrap();
    }
}

/// Kinesis' limits on resharding calls, kept by the controller on its clock: five a second
/// for the account, ten UpdateShardCount calls a stream in any 24 hours (LimitExceeded, with
/// single-node mode's wording); calls through different nodes count together.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resharding_calls_are_limited_per_second_and_per_day() {
    let meta = ClusterMeta::new(EmbeddedBackend::new(), "test").unwrap();
    let system: Arc<dyn sluice_core::Clock> = Arc::new(sluice_core::SystemClock);
    let controllers = Arc::new(ManualClock::new(system.now_ms()));
    let nodes = one_shard_on_three(&meta, (controllers.clone(), system)).await;
    // UpdateShardCount to the count the stream has: a call that changes nothing, and counts.
    let same =
        json!({"StreamName": "orders", "TargetShardCount": 1, "ScalingType": "UNIFORM_SCALING"});
    let limited = async |i: usize| {
        let (status, reply) = call(&nodes[i % 3], "UpdateShardCount", same.clone()).await;
        assert_eq!(status, 400, "{reply}");
        assert_eq!(reply["__type"], "LimitExceededException", "{reply}");
        reply["message"].as_str().unwrap().to_owned()
    };
    for second in 0..2 {
        for i in 0..5 {
            ok(&nodes[i % 3], "UpdateShardCount", same.clone()).await;
        }
        let refused = limited(second).await;
        assert!(refused.contains("at most 5 per second"), "{refused}");
        controllers.advance_ms(1_000);
    }
    let refused = limited(2).await;
    assert!(
        refused.contains("has had 10 UpdateShardCount calls in the last 24 hours"),
        "{refused}"
    );
    // Other resharding calls are not held by the day's count.
    let split = json!({"StreamName": "orders", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": (1u128 << 127).to_string()});
    ok(&nodes[1], "SplitShard", split).await;
    for node in &nodes {
        node.cluster.stop().await.unwrap();
    }
}
