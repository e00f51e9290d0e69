// The AWS SDK for JavaScript v3 against `sluice serve`: an SDK written independently of
// botocore, with its own JSON parsing and its own HTTP/2 event-stream client.
// Usage: node suite.mjs http://127.0.0.1:PORT
import assert from "node:assert/strict";
import {
  KinesisClient, CreateStreamCommand, PutRecordCommand, PutRecordsCommand,
  GetShardIteratorCommand, GetRecordsCommand, ListShardsCommand, DescribeStreamSummaryCommand,
  RegisterStreamConsumerCommand, SubscribeToShardCommand, DescribeStreamCommand,
} from "@aws-sdk/client-kinesis";

const endpoint = process.argv[2];
const client = new KinesisClient({
  endpoint, region: "us-east-1", maxAttempts: 1,
  credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
});
const name = `js-${Date.now()}`;
const tests = [];
const test = (title, fn) => tests.push([title, fn]);

test("create, put and read back", async () => {
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: 2 }));
  const summary = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
  assert.equal(summary.StreamDescriptionSummary.StreamStatus, "ACTIVE");
  assert.ok(summary.StreamDescriptionSummary.StreamCreationTimestamp instanceof Date);
  const put = await client.send(new PutRecordCommand({
    StreamName: name, PartitionKey: "k", Data: new TextEncoder().encode("from js"), ExplicitHashKey: "0",
  }));
  assert.equal(put.ShardId, "shardId-000000000000");
  const batch = await client.send(new PutRecordsCommand({
    StreamName: name,
    Records: [1, 2, 3].map((i) => ({ PartitionKey: `p${i}`, Data: Uint8Array.of(i), ExplicitHashKey: "1" })),
  }));
  assert.equal(batch.FailedRecordCount, 0);
  assert.equal(batch.Records.length, 3);
  const { ShardIterator } = await client.send(new GetShardIteratorCommand({
    StreamName: name, ShardId: "shardId-000000000000", ShardIteratorType: "AT_SEQUENCE_NUMBER",
    StartingSequenceNumber: put.SequenceNumber,
  }));
  const got = await client.send(new GetRecordsCommand({ ShardIterator }));
  assert.deepEqual(got.Records.map((r) => Buffer.from(r.Data).toString("latin1")),
    ["from js", "\x01", "\x02", "\x03"]);
  assert.equal(got.Records[0].SequenceNumber, put.SequenceNumber);
  assert.ok(got.Records[0].ApproximateArrivalTimestamp instanceof Date);
  assert.equal(got.MillisBehindLatest, 0);
  assert.ok(got.NextShardIterator);
});

test("list shards", async () => {
  const shards = await client.send(new ListShardsCommand({ StreamName: name }));
  assert.deepEqual(shards.Shards.map((s) => s.ShardId), ["shardId-000000000000", "shardId-000000000001"]);
  assert.equal(shards.Shards[1].HashKeyRange.EndingHashKey, (2n ** 128n - 1n).toString());
});

test("errors carry Kinesis names", async () => {
  await assert.rejects(client.send(new DescribeStreamCommand({ StreamName: "missing-js" })),
    (e) => e.name === "ResourceNotFoundException" && e.$metadata.httpStatusCode === 400);
});

test("subscribe to shard over HTTP/2", async () => {
  const arn = (await client.send(new DescribeStreamSummaryCommand({ StreamName: name })))
    .StreamDescriptionSummary.StreamARN;
  const { Consumer } = await client.send(new RegisterStreamConsumerCommand({ StreamARN: arn, ConsumerName: "js" }));
  const out = await client.send(new SubscribeToShardCommand({
    ConsumerARN: Consumer.ConsumerARN, ShardId: "shardId-000000000000",
    StartingPosition: { Type: "TRIM_HORIZON" },
  }));
  const seen = [];
  for await (const event of out.EventStream) {
    const records = event.SubscribeToShardEvent?.Records ?? [];
    seen.push(...records.map((r) => Buffer.from(r.Data).toString("latin1")));
    if (seen.length >= 4) break;
  }
  assert.deepEqual(seen, ["from js", "\x01", "\x02", "\x03"]);
});

let failed = 0;
for (const [title, fn] of tests) {
  try {
    await fn();
    console.log(`ok   ${title}`);
  } catch (error) {
    failed += 1;
    console.log(`FAIL ${title}`);
    console.log(error);
  }
}
console.log(`${tests.length - failed} passed, ${failed} failed`);
client.destroy();
process.exit(failed ? 1 : 0);
