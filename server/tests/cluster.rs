//! Kinesis in cluster mode over HTTP: four nodes in one process (each a `Service` with its
//! own data directory and Kinesis port, a `ClusterNode` on its engine, the control plane in
//! memory), a client speaking the JSON wire to whichever node it likes. A stream created on
//! one node turns ACTIVE on all; puts through any node are read back through any other with
//! iterators made elsewhere, in order and at the numbers acknowledged, also through the node
//! holding no replica of the shard (three copies on four nodes); a LATEST iterator on one
//! node sees a put acknowledged by another; operations not served yet say so; a deleted
//! stream is gone from every node.

mod cluster_common;

use cluster_common::{
    Node, base64, call, controller_elected, eventually, ok, shard_index, start, start_signed,
    subscription,
};
use serde_json::{Value, json};
use sluice_cluster::{ClusterMeta, EmbeddedBackend};
use std::collections::BTreeMap;
use std::time::Duration;

/// Every record of `shard` from TRIM_HORIZON: the iterator made on `on`, the reads on `read`
/// (an iterator from one node works on another); sequence number to data.
async fn read_all(on: &Node, read: &Node, shard: &str) -> Vec<(u128, String)> {
    let iterator = ok(
        on,
        "GetShardIterator",
        json!({"StreamName": "orders", "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await;
    let mut iterator = iterator["ShardIterator"].as_str().unwrap().to_owned();
    let mut records = Vec::new();
    loop {
        let reply = ok(
            read,
            "GetRecords",
            json!({"ShardIterator": iterator, "Limit": 3}),
        )
        .await;
        let batch = reply["Records"].as_array().unwrap();
        if batch.is_empty() {
            return records;
        }
        for record in batch {
            records.push((
                record["SequenceNumber"].as_str().unwrap().parse().unwrap(),
                record["Data"].as_str().unwrap().to_owned(),
            ));
        }
        iterator = reply["NextShardIterator"].as_str().unwrap().to_owned();
    }
}

/// Puts through every node: PutRecords of 8 and a PutRecord each; the acknowledged
/// numbers and data by shard.
async fn put_through_every_node(nodes: &[Node]) -> BTreeMap<String, Vec<(u128, String)>> {
    let mut acknowledged: BTreeMap<String, Vec<(u128, String)>> = BTreeMap::new();
    for (n, node) in nodes.iter().enumerate() {
        let records: Vec<Value> = (0..8)
            .map(|i| json!({"Data": base64(format!("{n}-{i}").as_bytes()), "PartitionKey": format!("key-{i}")}))
            .collect();
        let reply = ok(
            node,
            "PutRecords",
            json!({"StreamName": "orders", "Records": records}),
        )
        .await;
        assert_eq!(reply["FailedRecordCount"], 0, "{reply}");
        for (i, result) in reply["Records"].as_array().unwrap().iter().enumerate() {
            acknowledged
                .entry(result["ShardId"].as_str().unwrap().to_owned())
                .or_default()
                .push((
                    result["SequenceNumber"].as_str().unwrap().parse().unwrap(),
                    base64(format!("{n}-{i}").as_bytes()),
                ));
        }
        let one = ok(
            node,
            "PutRecord",
            json!({"StreamName": "orders", "Data": base64(b"single"), "PartitionKey": "key-0"}),
        )
        .await;
        acknowledged
            .entry(one["ShardId"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                one["SequenceNumber"].as_str().unwrap().parse().unwrap(),
                base64(b"single"),
            ));
    }
    assert_eq!(
        acknowledged.values().map(Vec::len).sum::<usize>(),
        9 * nodes.len()
    );
    acknowledged
}

/// A LATEST iterator made on `c` sees a put acknowledged by `a` right after.
async fn latest_sees_a_put_made_elsewhere(a: &Node, c: &Node) {
    let latest = ok(
        c,
        "GetShardIterator",
        json!({"StreamName": "orders", "ShardId": "shardId-000000000000", "ShardIteratorType": "LATEST"}),
    )
    .await;
    let routed = ok(
        a,
        "PutRecord",
        json!({"StreamName": "orders", "Data": base64(b"late"), "PartitionKey": "x", "ExplicitHashKey": "0"}),
    )
    .await;
    let reply = ok(
        c,
        "GetRecords",
        json!({"ShardIterator": latest["ShardIterator"]}),
    )
    .await;
    assert_eq!(reply["Records"][0]["Data"], base64(b"late"));
    assert_eq!(
        reply["Records"][0]["SequenceNumber"],
        routed["SequenceNumber"]
    );
}

/// Iterators that are not one: a real token altered, and numbers the shard never reached.
async fn iterator_refusals(a: &Node, b: &Node) {
    // A real iterator with one character changed: well-formed, but its MAC fails.
    let real = ok(
        a,
        "GetShardIterator",
        json!({"StreamName": "orders", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await;
    let mut altered = real["ShardIterator"]
        .as_str()
        .unwrap()
        .to_owned()
        .into_bytes();
    altered[30] = if altered[30] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let (status, reply) = call(b, "GetRecords", json!({"ShardIterator": altered})).await;
    assert_eq!(
        (status, reply["__type"].as_str()),
        (400, Some("InvalidArgumentException")),
        "{reply}"
    );
    // A number of the shard that it has not reached is not a position of it.
    let put = ok(
        a,
        "PutRecord",
        json!({"StreamName": "orders", "Data": base64(b"x"), "PartitionKey": "k", "ExplicitHashKey": "0"}),
    )
    .await;
    let number: u128 = put["SequenceNumber"].as_str().unwrap().parse().unwrap();
    for (kind, number) in [
        ("AT_SEQUENCE_NUMBER", number + 1_000_000),
        ("AFTER_SEQUENCE_NUMBER", number + 5),
    ] {
        let (status, reply) = call(
            b,
            "GetShardIterator",
            json!({"StreamName": "orders", "ShardId": "shardId-000000000000", "ShardIteratorType": kind, "StartingSequenceNumber": number.to_string()}),
        )
        .await;
        assert_eq!(
            (status, reply["__type"].as_str()),
            (400, Some("InvalidArgumentException")),
            "{kind}: {reply}"
        );
    }
    // The next number to be issued is a position (a reader that caught up).
    let next = (number + 1).to_string();
    ok(
        b,
        "GetShardIterator",
        json!({"StreamName": "orders", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": next}),
    )
    .await;
}

/// What is not found, not shared by the cluster, forged or too large says so.
async fn refusals(a: &Node, b: &Node) {
    let (status, reply) = call(
        b,
        "StartStreamEncryption",
        json!({"StreamName": "orders", "EncryptionType": "KMS",
            "KeyId": "arn:aws:kms:us-east-1:000000000000:key/made-on-one-node"}),
    )
    .await;
    assert_eq!(
        (status, reply["__type"].as_str()),
        (400, Some("KMSNotFoundException")),
        "{reply}"
    );
    let (status, reply) = call(
        b,
        "PutRecord",
        json!({"StreamName": "nope", "Data": "", "PartitionKey": "k"}),
    )
    .await;
    assert_eq!(
        (status, reply["__type"].as_str()),
        (400, Some("ResourceNotFoundException"))
    );
    let (status, reply) = call(
        a,
        "GetRecords",
        json!({"ShardIterator": "forged-iterator-token"}),
    )
    .await;
    assert_eq!(
        (status, reply["__type"].as_str()),
        (400, Some("InvalidArgumentException"))
    );
    iterator_refusals(a, b).await;
    let huge = base64(&vec![0u8; 1024 * 1024]);
    let (status, reply) = call(
        a,
        "PutRecord",
        json!({"StreamName": "orders", "Data": huge, "PartitionKey": "k"}),
    )
    .await;
    assert_eq!(
        (status, reply["__type"].as_str()),
        (400, Some("InvalidArgumentException")),
        "{reply}"
    );
}

/// The ARN forms of tagging: a tag added and listed on one node, removed through another; a
/// consumer's ARN that names no registered consumer is not found.
async fn tags_by_arn(a: &Node, b: &Node, d: &Node, arn: &Value) {
    // The ARN forms: a tag added and listed on one node, removed through another.
    ok(
        b,
        "TagResource",
        json!({"ResourceARN": arn, "Tags": {"env": "lab"}}),
    )
    .await;
    let listed = ok(b, "ListTagsForResource", json!({"ResourceARN": arn})).await;
    assert_eq!(
        listed["Tags"],
        json!([{"Key": "env", "Value": "lab"}, {"Key": "team", "Value": "ingest"}])
    );
    ok(
        d,
        "UntagResource",
        json!({"ResourceARN": arn, "TagKeys": ["env"]}),
    )
    .await;
    let consumer = format!("{}/consumer/reader:1700000000", arn.as_str().unwrap());
    let (status, reply) = call(a, "ListTagsForResource", json!({"ResourceARN": consumer})).await;
    assert_eq!(
        (status, reply["__type"].as_str()),
        (400, Some("ResourceNotFoundException")),
        "{reply}"
    );
}

/// The account's quota through DescribeLimits and a CreateStream past it.
async fn quota_and_limits(a: &Node, c: &Node) {
    // The account's quota: 2 shards open, 5 more would pass 6; DescribeLimits says so.
    let limits = ok(c, "DescribeLimits", json!({})).await;
    assert_eq!(
        (
            &limits["ShardLimit"],
            &limits["OpenShardCount"],
            &limits["OnDemandStreamCount"]
        ),
        (&json!(6), &json!(2), &json!(1)),
        "{limits}"
    );
    let (status, reply) = call(
        a,
        "CreateStream",
        json!({"StreamName": "big", "ShardCount": 5}),
    )
    .await;
    assert_eq!(
        (status, reply["__type"].as_str()),
        (400, Some("LimitExceededException")),
        "{reply}"
    );
    assert!(
        reply["message"].as_str().unwrap().contains("Limit: 6"),
        "{reply}"
    );
}

/// Settings change through any node and show on every node: tags, retention (a change the
/// wrong way or out of range refused with Kinesis' wording), the capacity mode, and tags given
/// at creation.
async fn settings_through_any_node(nodes: &[Node]) {
    let (a, b, c, d) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    let tags = json!({"StreamName": "orders", "Tags": {"team": "ingest", "tier": "gold"}});
    ok(b, "AddTagsToStream", tags).await;
    let remove = json!({"StreamName": "orders", "TagKeys": ["tier"]});
    ok(c, "RemoveTagsFromStream", remove).await;
    let increase = json!({"StreamName": "orders", "RetentionPeriodHours": 48});
    ok(c, "IncreaseStreamRetentionPeriod", increase).await;
    let arn = ok(a, "DescribeStreamSummary", json!({"StreamName": "orders"})).await
        ["StreamDescriptionSummary"]["StreamARN"]
        .clone();
    let mode = json!({"StreamARN": arn, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}});
    ok(a, "UpdateStreamMode", mode).await;
    tags_by_arn(a, b, d, &arn).await;
    for node in nodes {
        eventually("every node shows the settings", async || {
            let summary = ok(
                node,
                "DescribeStreamSummary",
                json!({"StreamName": "orders"}),
            )
            .await;
            let summary = &summary["StreamDescriptionSummary"];
            summary["RetentionPeriodHours"] == 48
                && summary["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"
        })
        .await;
        let listed = ok(node, "ListTagsForStream", json!({"StreamName": "orders"})).await;
        assert_eq!(listed["Tags"], json!([{"Key": "team", "Value": "ingest"}]));
    }
    for (hours, operation, says) in [
        (72, "DecreaseStreamRetentionPeriod", "can not be longer"),
        (9000, "IncreaseStreamRetentionPeriod", "maximum is 8760"),
    ] {
        let body = json!({"StreamName": "orders", "RetentionPeriodHours": hours});
        let (status, reply) = call(d, operation, body).await;
        assert_eq!(
            (status, reply["__type"].as_str()),
            (400, Some("InvalidArgumentException")),
            "{reply}"
        );
        assert!(reply["message"].as_str().unwrap().contains(says), "{reply}");
    }
    quota_and_limits(a, c).await;
    let tagged = json!({"StreamName": "tagged", "ShardCount": 1, "Tags": {"from": "creation"}});
    ok(d, "CreateStream", tagged).await;
    // b's map shows the new stream a moment after d's.
    eventually("the stream's tags show on another node", async || {
        let (status, listed) = call(b, "ListTagsForStream", json!({"StreamName": "tagged"})).await;
        status == 200 && listed["Tags"] == json!([{"Key": "from", "Value": "creation"}])
    })
    .await;
}

/// Every shard read back through every node, with an iterator made on the next node, is
/// what was acknowledged, in number order; the node holding no replica of it included.
async fn reads_through_every_node_match(
    nodes: &[Node],
    shards: &[String],
    acknowledged: &BTreeMap<String, Vec<(u128, String)>>,
) {
    for shard in shards {
        let mut expected = acknowledged.get(shard).cloned().unwrap_or_default();
        expected.sort();
        let without: Vec<&Node> = nodes
            .iter()
            .filter(|n| {
                !n.cluster
                    .raft_host()
                    .groups()
                    .iter()
                    .any(|g| g.shard == shard_index(shard))
            })
            .collect();
        assert_eq!(without.len(), 1, "{shard}: one node holds no replica");
        for (on, read) in nodes.iter().zip(nodes.iter().cycle().skip(1)) {
            assert_eq!(read_all(on, read, shard).await, expected, "{shard}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_node_serves_kinesis_for_the_whole_cluster() {
    let meta = ClusterMeta::new(EmbeddedBackend::new(), "test").unwrap();
    let mut nodes = Vec::new();
    // Four nodes, three copies of each shard: each shard has a node without a replica,
    // which forwards its reads to one that has.
    for name in ["a", "b", "c", "d"] {
        nodes.push(start(&meta, name).await);
    }
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    controller_elected(&meta).await;

    ok(
        a,
        "CreateStream",
        json!({"StreamName": "orders", "ShardCount": 2}),
    )
    .await;
    let (status, again) = call(
        b,
        "CreateStream",
        json!({"StreamName": "orders", "ShardCount": 1}),
    )
    .await;
    assert_eq!(
        (status, again["__type"].as_str()),
        (400, Some("ResourceInUseException"))
    );
    for node in &nodes {
        eventually("the stream turns ACTIVE everywhere", async || {
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
    let shards = ok(c, "ListShards", json!({"StreamName": "orders"})).await;
    let shards: Vec<String> = shards["Shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ShardId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(shards, ["shardId-000000000000", "shardId-000000000001"]);

    let acknowledged = put_through_every_node(&nodes).await;
    reads_through_every_node_match(&nodes, &shards, &acknowledged).await;
    subscription_through_a_node_without_a_replica(&nodes, &acknowledged).await;

    latest_sees_a_put_made_elsewhere(a, c).await;
    refusals(a, b).await;
    settings_through_any_node(&nodes).await;

    // Deleted through b: gone from every node, and its name free again.
    ok(b, "DeleteStream", json!({"StreamName": "orders"})).await;
    for node in &nodes {
        eventually("the stream is gone everywhere", async || {
            let listed = ok(node, "ListStreams", json!({})).await;
            listed["StreamNames"] == json!(["tagged"])
        })
        .await;
    }
    ok(
        c,
        "CreateStream",
        json!({"StreamName": "orders", "ShardCount": 1}),
    )
    .await;
    for node in &nodes {
        node.cluster.stop().await.unwrap();
    }
}

/// SubscribeToShard through the node holding no replica of shard 0 (its feed asks a
/// replica's node): every record acknowledged before, then two put through other nodes while
/// it runs, in number order, once each; it ends when its time is up.
async fn subscription_through_a_node_without_a_replica(
    nodes: &[Node],
    acknowledged: &BTreeMap<String, Vec<(u128, String)>>,
) {
    let shard = "shardId-000000000000";
    let holds = |n: &Node| (n.cluster.raft_host().groups().iter()).any(|g| g.shard == 0);
    let without = nodes.iter().position(|n| !holds(n)).unwrap();
    let subscriber = &nodes[without];
    let summary = ok(
        subscriber,
        "DescribeStreamSummary",
        json!({"StreamName": "orders"}),
    )
    .await;
    let arn = summary["StreamDescriptionSummary"]["StreamARN"].clone();
    let registered = json!({"StreamARN": arn, "ConsumerName": "remote"});
    let registrar = &nodes[(without + 1) % nodes.len()];
    let consumer =
        ok(registrar, "RegisterStreamConsumer", registered).await["Consumer"]["ConsumerARN"]
            .clone();
    let named = json!({"ConsumerARN": consumer});
    eventually("the subscriber's node knows the consumer", async || {
        call(subscriber, "DescribeStreamConsumer", named.clone())
            .await
            .0
            == 200
    })
    .await;
    let request = json!({"ConsumerARN": consumer, "ShardId": shard,
        "StartingPosition": {"Type": "TRIM_HORIZON"}});
    let (events, late) = tokio::join!(subscription(subscriber, request), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut late = Vec::new();
        for i in 0..2 {
            let data = base64(format!("late-{i}").as_bytes());
            let put = json!({"StreamName": "orders", "Data": data, "PartitionKey": "k",
                "ExplicitHashKey": "0"});
            let put = ok(&nodes[(without + 2 + i) % nodes.len()], "PutRecord", put).await;
            assert_eq!(put["ShardId"], shard);
            late.push((
                put["SequenceNumber"].as_str().unwrap().parse().unwrap(),
                data,
            ));
        }
        late
    });
    let mut expected = acknowledged[shard].clone();
    expected.sort();
    expected.extend(late);
    assert_eq!(events[0].0, "initial-response", "{events:?}");
    let mut got: Vec<(u128, String)> = Vec::new();
    for (kind, event) in &events[1..] {
        assert_eq!(kind, "SubscribeToShardEvent", "{event}");
        for record in event["Records"].as_array().unwrap() {
            let number = record["SequenceNumber"].as_str().unwrap().parse().unwrap();
            got.push((number, record["Data"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(got, expected);
    ok(registrar, "DeregisterStreamConsumer", named).await;
}

/// A policy denying `action` on `resource` to everyone.
fn deny(action: &str, resource: &Value) -> String {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*",
        "Action": action, "Resource": resource}]})
    .to_string()
}

/// Three nodes that verify signatures: a resource policy put through one node binds calls
/// through the others (a stream's and a consumer's), until it is deleted; enhanced
/// monitoring set through one node is described by another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resource_policies_and_monitoring_hold_on_every_node() {
    let meta = ClusterMeta::new(EmbeddedBackend::new(), "test").unwrap();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        nodes.push(start_signed(&meta, name).await);
    }
    controller_elected(&meta).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    ok(
        a,
        "CreateStream",
        json!({"StreamName": "guarded", "ShardCount": 1}),
    )
    .await;
    let put = json!({"StreamName": "guarded", "Data": base64(b"x"), "PartitionKey": "k"});
    eventually("the stream takes a signed put", async || {
        call(c, "PutRecord", put.clone()).await.0 == 200
    })
    .await;
    let arn = ok(b, "DescribeStreamSummary", json!({"StreamName": "guarded"})).await
        ["StreamDescriptionSummary"]["StreamARN"]
        .clone();
    stream_policy_binds_every_node(&nodes, &arn, &put).await;
    let consumer = ok(
        b,
        "RegisterStreamConsumer",
        json!({"StreamARN": arn, "ConsumerName": "app"}),
    )
    .await["Consumer"]["ConsumerARN"]
        .clone();
    let named = json!({"ConsumerARN": consumer});
    let policy = deny("kinesis:DescribeStreamConsumer", &consumer);
    ok(
        c,
        "PutResourcePolicy",
        json!({"ResourceARN": consumer, "Policy": policy}),
    )
    .await;
    eventually("the consumer's policy binds another node", async || {
        call(a, "DescribeStreamConsumer", named.clone()).await.0 == 400
    })
    .await;
    let (_, refused) = call(a, "DescribeStreamConsumer", named.clone()).await;
    assert_eq!(refused["__type"], "AccessDeniedException", "{refused}");
    ok(a, "DeleteResourcePolicy", json!({"ResourceARN": consumer})).await;
    ok(b, "DeleteResourcePolicy", json!({"ResourceARN": arn})).await;
    let (status, reply) = call(c, "DeleteResourcePolicy", json!({"ResourceARN": arn})).await;
    assert_eq!(
        (status, reply["__type"].as_str()),
        (400, Some("ResourceNotFoundException")),
        "{reply}"
    );
    for node in &nodes {
        eventually("the policies are gone everywhere", async || {
            call(node, "PutRecord", put.clone()).await.0 == 200
                && call(node, "DescribeStreamConsumer", named.clone()).await.0 == 200
        })
        .await;
    }
    monitoring_through_any_node(a, b, c).await;
}

/// A policy denying PutRecord on the stream, put through the first node, refuses signed
/// puts through the others; it is read back there, and what it does not name is allowed.
async fn stream_policy_binds_every_node(nodes: &[Node], arn: &Value, put: &Value) {
    let policy = deny("kinesis:PutRecord", arn);
    ok(
        &nodes[0],
        "PutResourcePolicy",
        json!({"ResourceARN": arn, "Policy": policy}),
    )
    .await;
    for node in &nodes[1..] {
        eventually("the policy binds every node", async || {
            let (status, reply) = call(node, "PutRecord", put.clone()).await;
            assert!(
                status == 200 || reply["__type"] == "AccessDeniedException",
                "{reply}"
            );
            status != 200
        })
        .await;
        let got = ok(node, "GetResourcePolicy", json!({"ResourceARN": arn})).await;
        assert_eq!(got["Policy"], policy.as_str());
        ok(node, "ListShards", json!({"StreamName": "guarded"})).await;
    }
}

/// Enhanced monitoring enabled on one node, partly disabled on another, described by a third.
async fn monitoring_through_any_node(a: &Node, b: &Node, c: &Node) {
    let metrics =
        json!({"StreamName": "guarded", "ShardLevelMetrics": ["IncomingBytes", "OutgoingRecords"]});
    let enabled = ok(a, "EnableEnhancedMonitoring", metrics).await;
    assert_eq!(enabled["CurrentShardLevelMetrics"], json!([]));
    assert_eq!(
        enabled["DesiredShardLevelMetrics"],
        json!(["IncomingBytes", "OutgoingRecords"])
    );
    let off = json!({"StreamName": "guarded", "ShardLevelMetrics": ["IncomingBytes"]});
    let disabled = ok(b, "DisableEnhancedMonitoring", off).await;
    assert_eq!(
        disabled["DesiredShardLevelMetrics"],
        json!(["OutgoingRecords"])
    );
    eventually("monitoring is described everywhere", async || {
        let summary = ok(c, "DescribeStreamSummary", json!({"StreamName": "guarded"})).await;
        summary["StreamDescriptionSummary"]["EnhancedMonitoring"]
            == json!([{"ShardLevelMetrics": ["OutgoingRecords"]}])
    })
    .await;
}

/// Every file under `dir`, read whole, holds `needle` somewhere.
fn on_disk(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut found = false;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        found |= match path.is_dir() {
            true => on_disk(&path, needle),
            false => std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle),
        };
    }
    found
}

/// Every record read from TRIM_HORIZON through `node`: (data, EncryptionType).
async fn read_typed(node: &Node, stream: &str) -> Vec<(String, String)> {
    let it = json!({"StreamName": stream, "ShardId": "shardId-000000000000",
        "ShardIteratorType": "TRIM_HORIZON"});
    let mut it = ok(node, "GetShardIterator", it).await["ShardIterator"].clone();
    let mut read = Vec::new();
    // A replica serves what it applied, so a page may stop short of a put acknowledged
    // through another node; a page that finds nothing new passed the read barrier, so
    // everything acknowledged before it began was read by then.
    loop {
        let page = ok(node, "GetRecords", json!({"ShardIterator": it})).await;
        let records = page["Records"].as_array().unwrap();
        if records.is_empty() {
            return read;
        }
        read.extend(records.iter().map(|r| {
            let data = r["Data"].as_str().unwrap().to_owned();
            (data, r["EncryptionType"].as_str().unwrap().to_owned())
        }));
        it = page["NextShardIterator"].clone();
    }
}

/// StartStreamEncryption through one node: records put through the others are sealed on
/// every replica (their plaintext is in no node's files, as a record put before is), and
/// open through every node, the ones that sealed nothing included, by GetRecords and
/// SubscribeToShard, reported as KMS; a record must leave room for its envelope; after
/// StopStreamEncryption new records are stored as sent and the sealed ones still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn encrypted_records_are_sealed_on_every_replica_and_open_on_every_node() {
    let meta = ClusterMeta::new(EmbeddedBackend::new(), "test").unwrap();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        nodes.push(start(&meta, name).await);
    }
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    controller_elected(&meta).await;
    ok(
        a,
        "CreateStream",
        json!({"StreamName": "vault", "ShardCount": 1}),
    )
    .await;
    eventually("the stream turns ACTIVE", async || {
        let reply = ok(b, "DescribeStreamSummary", json!({"StreamName": "vault"})).await;
        reply["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
    })
    .await;
    let put = |data: &str| {
        json!({"StreamName": "vault", "Data": base64(data.as_bytes()),
        "PartitionKey": "k"})
    };
    let plain = ok(a, "PutRecord", put("plain-marker-5150")).await;
    assert_eq!(plain["EncryptionType"], "NONE");

    let start = json!({"StreamName": "vault", "EncryptionType": "KMS",
        "KeyId": "alias/aws/kinesis"});
    ok(b, "StartStreamEncryption", start).await;
    // As in Kinesis, other nodes seal once they know (their maps follow within moments;
    // each put's reply says whether it was sealed).
    encrypting_everywhere(&nodes, true).await;
    let summary = ok(a, "DescribeStreamSummary", json!({"StreamName": "vault"})).await;
    let summary = &summary["StreamDescriptionSummary"];
    assert_eq!(
        (
            summary["EncryptionType"].as_str(),
            summary["KeyId"].as_str()
        ),
        (Some("KMS"), Some("alias/aws/kinesis"))
    );
    sealed_puts(a, b, c).await;

    let expected: Vec<(String, String)> = [
        ("plain-marker-5150".as_bytes(), "NONE"),
        (b"card 4111 1111 1111 1111", "KMS"),
        (b"card 5500 0000 0000 0004", "KMS"),
        (b"card 3400 0000 0000 009", "KMS"),
    ]
    .iter()
    .map(|(data, kind)| (base64(data), (*kind).to_owned()))
    .collect();
    for node in &nodes {
        assert_eq!(read_typed(node, "vault").await, expected);
    }
    encrypted_subscription(b, &expected).await;

    let stop = json!({"StreamName": "vault", "EncryptionType": "KMS",
        "KeyId": "alias/aws/kinesis"});
    ok(c, "StopStreamEncryption", stop).await;
    encrypting_everywhere(&nodes, false).await;
    let after = ok(a, "PutRecord", put("after-marker-8086")).await;
    assert_eq!(after["EncryptionType"], "NONE");
    let read = read_typed(b, "vault").await;
    assert_eq!(read[..expected.len()], expected[..]);
    let after = (base64(b"after-marker-8086"), "NONE".to_owned());
    assert_eq!(read[expected.len()], after);

    // Every replica holds every record (the marker put in the clear after the sealed ones is
    // in each node's files, and so the ones before it) and none holds a sealed record's
    // plaintext.
    for node in &nodes {
        eventually("the replica holds the last record", async || {
            on_disk(node.dir(), b"after-marker-8086")
        })
        .await;
        assert!(on_disk(node.dir(), b"plain-marker-5150"));
        assert!(!on_disk(node.dir(), b"card 4111 1111 1111 1111"));
        assert!(!on_disk(node.dir(), b"card 5500 0000 0000 0004"));
    }
    for node in &nodes {
        node.cluster.stop().await.unwrap();
    }
}

/// Waits until every node's map shows stream `vault` encrypting (or not).
async fn encrypting_everywhere(nodes: &[Node], encrypting: bool) {
    eventually("every node's map shows the change", async || {
        nodes.iter().all(|node| {
            let map = node.cluster.map();
            let key = &map.streams["vault"].value.settings.encryption_key;
            key.is_some() == encrypting
        })
    })
    .await;
}

/// Three records put sealed through c and a (answered as KMS), and a record that would fit
/// the limit but not with its envelope refused through b.
async fn sealed_puts(a: &Node, b: &Node, c: &Node) {
    let put = json!({"StreamName": "vault", "Data": base64(b"card 4111 1111 1111 1111"),
        "PartitionKey": "k"});
    assert_eq!(ok(c, "PutRecord", put).await["EncryptionType"], "KMS");
    let batch = json!({"StreamName": "vault", "Records": [
        {"Data": base64(b"card 5500 0000 0000 0004"), "PartitionKey": "k"},
        {"Data": base64(b"card 3400 0000 0000 009"), "PartitionKey": "k"}]});
    assert_eq!(ok(a, "PutRecords", batch).await["EncryptionType"], "KMS");
    // The limit counts the envelope: 1 MiB less 33 bytes of key and data at most (these
    // nodes' 1 MiB segments take less than 1 MiB: the front refuses first).
    let full = json!({"StreamName": "vault", "Data": base64(&vec![7u8; 1024 * 1024 - 1]),
        "PartitionKey": "k"});
    let (status, reply) = call(b, "PutRecord", full).await;
    assert_eq!(
        (status, reply["__type"].as_str()),
        (400, Some("InvalidArgumentException")),
        "{reply}"
    );
    let message = reply["message"].as_str().unwrap();
    assert!(message.contains("accepts at most 1048543"), "{message}");
}

/// A subscription through `node` from TRIM_HORIZON hands out `expected`, opened.
async fn encrypted_subscription(node: &Node, expected: &[(String, String)]) {
    let summary = ok(
        node,
        "DescribeStreamSummary",
        json!({"StreamName": "vault"}),
    )
    .await;
    let arn = summary["StreamDescriptionSummary"]["StreamARN"].clone();
    let registered = json!({"StreamARN": arn, "ConsumerName": "auditor"});
    let consumer =
        ok(node, "RegisterStreamConsumer", registered).await["Consumer"]["ConsumerARN"].clone();
    let request = json!({"ConsumerARN": consumer, "ShardId": "shardId-000000000000",
        "StartingPosition": {"Type": "TRIM_HORIZON"}});
    let events = subscription(node, request).await;
    let got: Vec<(String, String)> = (events[1..].iter())
        .flat_map(|(_, event)| event["Records"].as_array().unwrap().clone())
        .map(|r| {
            let data = r["Data"].as_str().unwrap().to_owned();
            (data, r["EncryptionType"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(got, expected);
    ok(
        node,
        "DeregisterStreamConsumer",
        json!({"ConsumerARN": consumer}),
    )
    .await;
}
