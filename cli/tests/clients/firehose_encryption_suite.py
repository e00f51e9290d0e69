"""Firehose server-side encryption on `sluice serve` with boto3's `firehose`, `kms` and
`kinesis` clients: StartDeliveryStreamEncryption and Stop, encryption at creation with
Firehose's own key and a customer key, records held sealed on disk and delivered in the clear,
and a delivery stream reading a KMS-encrypted Kinesis stream.
Usage: python3 firehose_encryption_suite.py URL BUCKET_DIR DATA_DIR"""

import os
import sys
import time

import harness
from firehose_suite import client, s3_destination
from harness import expect_error, unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
BUCKETS = sys.argv[2] if __name__ == "__main__" else None
DATA = sys.argv[3] if __name__ == "__main__" else None
ACCOUNT = "000000000000"


def destination(bucket):
    return s3_destination(bucket, "", compression="UNCOMPRESSED")


def delivered(bucket):
    """Every line of every object in the bucket, sorted."""
    lines = []
    for directory, _, files in os.walk(os.path.join(BUCKETS, bucket)):
        for name in files:
            if "#" not in name:
                with open(os.path.join(directory, name), "rb") as f:
                    lines += f.read().decode().splitlines()
    return sorted(lines)


def wait_for(bucket, count, timeout=20):
    deadline = time.time() + timeout
    while len(delivered(bucket)) < count and time.time() < deadline:
        time.sleep(0.1)
    return delivered(bucket)


def stored_anywhere(marker):
    """Whether `marker` is in any file of the server's Firehose engine (its backing logs)."""
    root = os.path.join(DATA, "firehose", "engine")
    for directory, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(directory, name), "rb") as f:
                if marker in f.read():
                    return True
    return False


def encryption(firehose, name):
    description = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    return description["DeliveryStreamEncryptionConfiguration"]


def test_records_are_sealed_on_disk_while_encryption_is_on_and_delivered_in_the_clear(endpoint):
    firehose = client(endpoint)
    name, bucket = unique("sealed"), unique("lake")
    firehose.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=destination(bucket))
    assert encryption(firehose, name) == {"Status": "DISABLED"}
    firehose.start_delivery_stream_encryption(
        DeliveryStreamName=name, DeliveryStreamEncryptionConfigurationInput={"KeyType": "AWS_OWNED_CMK"})
    assert encryption(firehose, name) == {"KeyType": "AWS_OWNED_CMK", "Status": "ENABLED"}
    marker = unique("secret-while-on").encode()
    reply = firehose.put_record_batch(DeliveryStreamName=name,
                                      Records=[{"Data": marker + b"-%03d\n" % i} for i in range(50)])
    assert reply["FailedPutCount"] == 0 and reply["Encrypted"] is True, reply
    assert wait_for(bucket, 50) == sorted(f"{marker.decode()}-{i:03}" for i in range(50))
    assert not stored_anywhere(marker), "a sealed record's data is on disk in the clear"
    firehose.stop_delivery_stream_encryption(DeliveryStreamName=name)
    assert encryption(firehose, name) == {"Status": "DISABLED"}
    clear = unique("clear-after-stop").encode()
    reply = firehose.put_record(DeliveryStreamName=name, Record={"Data": clear + b"\n"})
    assert reply["Encrypted"] is False, reply
    assert clear.decode() in wait_for(bucket, 51)
    assert stored_anywhere(clear), "the check above would not find data in the clear"


def test_a_customer_key_at_creation_and_its_refusals(endpoint):
    firehose, kms = client(endpoint), client(endpoint, "kms")
    key = kms.create_key(Description="firehose records")["KeyMetadata"]["Arn"]
    name, bucket = unique("customer"), unique("lake")
    firehose.create_delivery_stream(
        DeliveryStreamName=name, ExtendedS3DestinationConfiguration=destination(bucket),
        DeliveryStreamEncryptionConfigurationInput={"KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": key})
    assert encryption(firehose, name) == {"KeyARN": key, "KeyType": "CUSTOMER_MANAGED_CMK", "Status": "ENABLED"}
    # A disabled key refuses puts with Firehose's KMS error, and keeps nothing (the first
    # put makes the data key, which the key must be enabled for).
    kms.disable_key(KeyId=key)
    refused = unique("refused").encode()
    expect_error("InvalidKMSResourceException", firehose.put_record, DeliveryStreamName=name,
                 Record={"Data": refused + b"\n"})
    kms.enable_key(KeyId=key)
    marker = unique("customer-secret").encode()
    firehose.put_record(DeliveryStreamName=name, Record={"Data": marker + b"\n"})
    assert wait_for(bucket, 1) == [marker.decode()]
    assert not stored_anywhere(marker)
    # Disabled once its data key is made: puts are refused at once all the same.
    kms.disable_key(KeyId=key)
    expect_error("InvalidKMSResourceException", firehose.put_record, DeliveryStreamName=name,
                 Record={"Data": refused + b"\n"})
    kms.enable_key(KeyId=key)
    missing = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
    expect_error("InvalidKMSResourceException", firehose.start_delivery_stream_encryption, DeliveryStreamName=name,
                 DeliveryStreamEncryptionConfigurationInput={"KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": missing})
    expect_error("InvalidArgumentException", firehose.start_delivery_stream_encryption, DeliveryStreamName=name,
                 DeliveryStreamEncryptionConfigurationInput={"KeyType": "CUSTOMER_MANAGED_CMK"})
    expect_error("ResourceNotFoundException", firehose.stop_delivery_stream_encryption,
                 DeliveryStreamName=unique("absent"))
    time.sleep(1.5)
    assert delivered(bucket) == [marker.decode()]


def test_an_encrypted_kinesis_stream_is_delivered_in_the_clear(endpoint):
    firehose, kinesis = client(endpoint), client(endpoint, "kinesis")
    stream, name, bucket = unique("sealed-orders"), unique("orders"), unique("lake")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2})
    kinesis.start_stream_encryption(StreamName=stream, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    stream_arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    source = {"KinesisStreamARN": stream_arn, "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/reader"}
    firehose.create_delivery_stream(DeliveryStreamName=name, DeliveryStreamType="KinesisStreamAsSource",
                                    KinesisStreamSourceConfiguration=source,
                                    ExtendedS3DestinationConfiguration=destination(bucket))
    for i in range(20):
        reply = kinesis.put_record(StreamName=stream, PartitionKey="k", Data=f"order-{i:02}\n".encode())
        assert reply["EncryptionType"] == "KMS", reply
    assert wait_for(bucket, 20) == [f"order-{i:02}" for i in range(20)]
    # A stream source's records are encrypted as its stream says, not by the delivery stream.
    expect_error("InvalidArgumentException", firehose.start_delivery_stream_encryption, DeliveryStreamName=name,
                 DeliveryStreamEncryptionConfigurationInput={"KeyType": "AWS_OWNED_CMK"})


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
