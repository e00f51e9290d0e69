"""The KMS API subset on `sluice serve` (signed for the `kms` service): boto3's `kms`
client and the AWS CLI create keys and aliases, wrap data keys and round-trip data, and
StartStreamEncryption takes a key made there. Usage: python3 kms_suite.py URL"""

import base64
import json
import os
import shutil
import subprocess
import sys

import boto3
from botocore.config import Config

import harness
from harness import expect_error, unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None


def client(endpoint, service="kms"):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
                        aws_secret_access_key="secret", config=Config(retries={"max_attempts": 1}))


def test_keys_aliases_and_data_keys_round_trip(endpoint):
    kms = client(endpoint)
    key = kms.create_key(Description="streams")["KeyMetadata"]
    assert key["KeyState"] == "Enabled" and key["Arn"].endswith(key["KeyId"]), key
    alias = "alias/" + unique("orders")
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    expect_error("AlreadyExistsException", kms.create_alias, AliasName=alias, TargetKeyId=key["KeyId"])
    assert {"AliasName": alias, "TargetKeyId": key["KeyId"]}.items() <= next(
        a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == alias).items()
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == key["KeyId"]
    data_key = kms.generate_data_key(KeyId=alias, KeySpec="AES_256", EncryptionContext={"stream": "orders"})
    assert len(data_key["Plaintext"]) == 32
    back = kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext={"stream": "orders"})
    assert back["Plaintext"] == data_key["Plaintext"] and back["KeyId"] == key["Arn"]
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=data_key["CiphertextBlob"])
    sealed = kms.encrypt(KeyId=key["Arn"], Plaintext=b"card 4111")["CiphertextBlob"]
    assert b"card 4111" not in sealed
    kms.enable_key_rotation(KeyId=key["KeyId"])
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    assert kms.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"card 4111", "old blobs decrypt after rotation"
    expect_error("NotFoundException", kms.describe_key, KeyId="alias/none-such")


def test_the_aws_cli_makes_a_key_that_stream_encryption_takes(endpoint):
    if shutil.which("aws") is None:
        raise AssertionError("the AWS CLI is not installed (scripts/setup-test installs it)")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret", AWS_DEFAULT_REGION="us-east-1")
    def aws(*args):
        out = subprocess.run(["aws", "--endpoint-url", endpoint, "--output", "json", *args], env=env,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout or "{}")
    key_id = aws("kms", "create-key", "--description", "cli")["KeyMetadata"]["KeyId"]
    alias = "alias/" + unique("cli")
    aws("kms", "create-alias", "--alias-name", alias, "--target-key-id", key_id)
    # Binary arguments from files (fileb://): the same for AWS CLI v1 and v2.
    import tempfile
    with tempfile.TemporaryDirectory() as scratch:
        plain_file, blob_file = os.path.join(scratch, "plain"), os.path.join(scratch, "blob")
        with open(plain_file, "wb") as f:
            f.write(b"hello")
        blob = aws("kms", "encrypt", "--key-id", alias, "--plaintext", f"fileb://{plain_file}")["CiphertextBlob"]
        with open(blob_file, "wb") as f:
            f.write(base64.b64decode(blob))
        plain = aws("kms", "decrypt", "--ciphertext-blob", f"fileb://{blob_file}")["Plaintext"]
    assert base64.b64decode(plain) == b"hello"
    kinesis = client(endpoint, "kinesis")
    name = unique("enc")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    aws("kinesis", "start-stream-encryption", "--stream-name", name, "--encryption-type", "KMS", "--key-id", alias)
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert (summary["EncryptionType"], summary["KeyId"]) == ("KMS", alias), summary
    expect_error("KMSNotFoundException", kinesis.start_stream_encryption, StreamName=name, EncryptionType="KMS",
                 KeyId="alias/none-such")


def test_a_kinesis_signature_does_not_reach_kms(endpoint):
    # Signed for kinesis, sent to KMS: the scope names the wrong service.
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import urllib.request
    request = AWSRequest(method="POST", url=endpoint + "/", data=b"{}", headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.ListKeys"})
    botocore.auth.SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), "kinesis", "us-east-1").add_auth(request)
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint + "/", data=b"{}", method="POST",
                                                      headers=dict(request.headers.items())))
        raise AssertionError("accepted")
    except urllib.error.HTTPError as error:
        reply = json.loads(error.read())
        assert reply["__type"] == "InvalidSignatureException" and "'kms'" in reply["message"], reply


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
