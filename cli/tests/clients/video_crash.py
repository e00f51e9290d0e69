"""The kill -9 test's client (cli/tests/video.rs drives it and kills the server).
  python3 video_crash.py create URL NAME
  python3 video_crash.py produce URL NAME SOURCE.mkv   - PutMedia, slowly; prints each
                                                       PERSISTED fragment number as it comes
  python3 video_crash.py check URL NAME NUMBER...      - every named fragment read back and
                                                       played by ffprobe; prints "N playable"
"""

import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import boto3
from botocore.config import Config


def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(retries={"max_attempts": 1}))


def produce(endpoint, name, source):
    url = urllib.parse.urlparse(endpoint)
    connection = socket.create_connection((url.hostname, url.port))
    with open(source, "rb") as f:
        body = f.read()

    def send():
        head = (f"POST /putMedia HTTP/1.1\r\nHost: {url.netloc}\r\nx-amzn-stream-name: {name}\r\n"
                "x-amzn-fragment-timecode-type: RELATIVE\r\nx-amzn-producer-start-timestamp: 1700000000\r\n"
                "Transfer-Encoding: chunked\r\n\r\n")
        try:
            connection.sendall(head.encode())
            # 512 bytes every 15 ms: the body takes seconds, so the server dies mid-way.
            for at in range(0, len(body), 512):
                chunk = body[at:at + 512]
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                time.sleep(0.015)
            connection.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server was killed

    threading.Thread(target=send, daemon=True).start()
    reader = connection.makefile("rb")
    for line in reader:
        if b'"PERSISTED"' in line:
            number = line.split(b'"FragmentNumber":"')[1].split(b'"')[0].decode()
            print(number, flush=True)


def check(endpoint, name, numbers):
    archived = client("kinesis-video-archived-media", endpoint)
    media = archived.get_media_for_fragment_list(StreamName=name, Fragments=numbers)["Payload"].read()
    magic = b"\x1a\x45\xdf\xa3"
    starts = [i for i in range(len(media) - 3) if media[i:i + 4] == magic]
    assert len(starts) == len(numbers), (len(starts), numbers)
    for start, end in zip(starts, starts[1:] + [len(media)]):
        out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v", "-show_entries",
                              "stream=nb_read_frames", "-of", "csv=p=0", "-"], input=media[start:end],
                             capture_output=True, check=True).stdout.decode().strip()
        assert int(out) > 0, out
    listed = archived.list_fragments(StreamName=name, MaxResults=1000)["Fragments"]
    print(f"{len(numbers)} playable, {len(listed)} listed", flush=True)


if __name__ == "__main__":
    command, endpoint, name = sys.argv[1:4]
    if command == "create":
        client("kinesisvideo", endpoint).create_stream(StreamName=name, DataRetentionInHours=24)
    elif command == "produce":
        produce(endpoint, name, sys.argv[4])
    else:
        check(endpoint, name, sys.argv[4:])
