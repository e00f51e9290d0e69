//! Records of a stream under StartStreamEncryption are encrypted at rest: the data
//! directory never holds their bytes, reads decrypt them (EncryptionType KMS per record),
//! a kill -9 and restart loses no key, and records written before or after stay plaintext.

mod common;

use base64::Engine as _;
use common::TestServer;
use serde_json::{Value, json};
use sluice_loadgen::client::KinesisClient;
use std::path::Path;

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

async fn put(client: &mut KinesisClient, data: &[u8]) -> Value {
    client
        .call(
            "PutRecord",
            &json!({"StreamName": "enc", "PartitionKey": "k", "Data": b64(data)}),
        )
        .await
        .unwrap()
}

/// Every record of the shard: (data, EncryptionType).
async fn set_encryption(client: &mut KinesisClient, operation: &str) {
    let _: Value = client
        .call(
            operation,
            &json!({"StreamName": "enc", "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
        )
        .await
        .unwrap();
}

async fn read_all(client: &mut KinesisClient) -> Vec<(Vec<u8>, String)> {
    let iterator: Value = client
        .call(
            "GetShardIterator",
            &json!({"StreamName": "enc", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
        )
        .await
        .unwrap();
    let records: Value = client
        .call(
            "GetRecords",
            &json!({"ShardIterator": iterator["ShardIterator"]}),
        )
        .await
        .unwrap();
    records["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(r["Data"].as_str().unwrap())
                .unwrap();
            (data, r["EncryptionType"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// Whether any file under `dir` holds `needle`.
fn on_disk(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            return on_disk(&path, needle);
        }
        std::fs::read(&path)
            .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            .unwrap_or(false)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_records_never_reach_the_disk_in_the_clear_and_survive_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = TestServer::start(&data_dir, &[]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    let _: Value = client
        .call(
            "CreateStream",
            &json!({"StreamName": "enc", "ShardCount": 1}),
        )
        .await
        .unwrap();
    assert_eq!(
        put(&mut client, b"before-PLAINMARK").await["EncryptionType"],
        "NONE"
    );
    set_encryption(&mut client, "StartStreamEncryption").await;
    assert_eq!(
        put(&mut client, b"one-SECRETMARK").await["EncryptionType"],
        "KMS"
    );
    let batch: Value = client
        .call(
            "PutRecords",
            &json!({"StreamName": "enc", "Records": [
                {"PartitionKey": "k", "Data": b64(b"two-SECRETMARK")},
                {"PartitionKey": "k", "Data": b64(b"three-SECRETMARK")},
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(batch["EncryptionType"], "KMS");
    // A record and its 33-byte envelope fit the 1 MiB limit: the largest plaintext is 33
    // bytes short of it (with its 1-byte key), and one byte more is refused.
    let largest = vec![b'x'; (1 << 20) - 1 - 33];
    assert_eq!(put(&mut client, &largest).await["EncryptionType"], "KMS");
    let over = client
        .call::<_, Value>(
            "PutRecord",
            &json!({"StreamName": "enc", "PartitionKey": "k", "Data": b64(&vec![b'x'; (1 << 20) - 33])}),
        )
        .await
        .unwrap_err();
    assert_eq!(over.name, "InvalidArgumentException", "{over}");

    let expected = |tail: &[(&[u8], &str)]| -> Vec<(Vec<u8>, String)> {
        let mut all: Vec<(Vec<u8>, String)> = vec![
            (b"before-PLAINMARK".to_vec(), "NONE".into()),
            (b"one-SECRETMARK".to_vec(), "KMS".into()),
            (b"two-SECRETMARK".to_vec(), "KMS".into()),
            (b"three-SECRETMARK".to_vec(), "KMS".into()),
            (largest.clone(), "KMS".into()),
        ];
        all.extend(tail.iter().map(|(d, t)| (d.to_vec(), (*t).to_owned())));
        all
    };
    assert_eq!(read_all(&mut client).await, expected(&[]));
    // The plaintext record is found where it lies, so the scan works; the others are not.
    assert!(on_disk(&data_dir, b"before-PLAINMARK"));
    assert!(
        !on_disk(&data_dir, b"SECRETMARK"),
        "an encrypted record in the clear"
    );

    server.kill();
    let server = TestServer::start(&data_dir, &[]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    assert_eq!(
        read_all(&mut client).await,
        expected(&[]),
        "after a kill -9"
    );
    set_encryption(&mut client, "StopStreamEncryption").await;
    assert_eq!(
        put(&mut client, b"after-PLAINMARK").await["EncryptionType"],
        "NONE"
    );
    assert_eq!(
        read_all(&mut client).await,
        expected(&[(b"after-PLAINMARK", "NONE")])
    );
}

/// GetRecords from the start of `enc`: the records, or the error.
async fn try_read(client: &mut KinesisClient) -> Result<Value, String> {
    let iterator: Value = client
        .call(
            "GetShardIterator",
            &json!({"StreamName": "enc", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
        )
        .await
        .map_err(|e| format!("{}: {}", e.name, e.message))?;
    client
        .call(
            "GetRecords",
            &json!({"ShardIterator": iterator["ShardIterator"]}),
        )
        .await
        .map_err(|e| format!("{}: {}", e.name, e.message))
}

/// Every file under `dir` whose bytes hold `needle`, with the needle's offset.
fn find_on_disk(dir: &Path, needle: &[u8]) -> Vec<(std::path::PathBuf, usize)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(find_on_disk(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && let Some(at) = bytes.windows(needle.len()).position(|w| w == needle)
        {
            found.push((path, at));
        }
    }
    found
}

/// A missing key is a clear error (KMSAccessDeniedException naming the data key), never
/// data; with the key back the record reads again; a byte flipped in the record's
/// ciphertext on disk is detected and never returned as data (the batch fails its checksum,
/// and recovery cuts the log there, as it cuts damage at a log's end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_and_a_flipped_byte_are_errors_never_data() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = TestServer::start(&data_dir, &[]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    let _: Value = client
        .call(
            "CreateStream",
            &json!({"StreamName": "enc", "ShardCount": 1}),
        )
        .await
        .unwrap();
    set_encryption(&mut client, "StartStreamEncryption").await;
    let _: Value = client
        .call(
            "PutRecord",
            &json!({"StreamName": "enc", "PartitionKey": "FLIPKEY", "Data": b64(b"secret-payload-0123456789")}),
        )
        .await
        .unwrap();
    server.kill();

    // The keyring gone: the record cannot be opened, and the call says why.
    let keys = data_dir.join("kms-keys.json");
    let aside = dir.path().join("kms-keys.json.aside");
    std::fs::rename(&keys, &aside).unwrap();
    let server = TestServer::start(&data_dir, &[]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    let missing = try_read(&mut client).await.unwrap_err();
    println!("without the keyring: {missing}");
    assert!(
        missing.contains("key") && !missing.contains("secret-payload"),
        "{missing}"
    );
    server.kill();

    // The keyring back: the record reads.
    std::fs::rename(&aside, &keys).unwrap();
    let server = TestServer::start(&data_dir, &[]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    let records = try_read(&mut client).await.unwrap();
    let data = records["Records"][0]["Data"].as_str().unwrap();
    assert_eq!(data, b64(b"secret-payload-0123456789"));
    server.kill();

    // One byte of the ciphertext flipped on disk (the record's data follows its key).
    let found = find_on_disk(&data_dir.join("streams"), b"FLIPKEY");
    assert_eq!(found.len(), 1, "{found:?}");
    let (segment, at) = &found[0];
    let mut bytes = std::fs::read(segment).unwrap();
    bytes[at + b"FLIPKEY".len() + 10] ^= 0x40;
    std::fs::write(segment, &bytes).unwrap();
    let server = TestServer::start(&data_dir, &[]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    let flipped = try_read(&mut client).await;
    println!("with a flipped byte: {flipped:?}");
    match flipped {
        Err(error) => assert!(!error.contains("secret-payload"), "{error}"),
        Ok(records) => assert_eq!(
            records["Records"].as_array().unwrap().len(),
            0,
            "a damaged record was returned: {records}"
        ),
    }
}
