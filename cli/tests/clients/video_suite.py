"""Kinesis Video Streams on `sluice serve`: boto3's `kinesisvideo` client manages streams,
ffmpeg is the producer (HTTP PutMedia, chunked, never reading its acknowledgements), a
Python producer reads them, and boto3's `kinesis-video-archived-media` and
`kinesis-video-media` clients read the fragments back; ffmpeg checks they hold the source's
packets. Usage: python3 video_suite.py URL SOURCE.mkv CLUSTERS"""

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import boto3
from botocore.config import Config

import harness
from harness import expect_error, unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
SOURCE = sys.argv[2] if __name__ == "__main__" else None
CLUSTERS = int(sys.argv[3]) if __name__ == "__main__" else None
START = 1_700_000_000


def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(retries={"max_attempts": 1}))


def packets(path_or_bytes):
    """(stream, pts, size, md5) of every packet, as ffmpeg's framemd5 lists them."""
    if isinstance(path_or_bytes, bytes):
        args, data = ["-i", "-"], path_or_bytes
    else:
        args, data = ["-i", path_or_bytes], None
    out = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-copyts", *args, "-map", "0", "-c", "copy",
                          "-f", "framemd5", "-"], input=data, capture_output=True, check=True).stdout.decode()
    rows = [line.split(",") for line in out.splitlines() if not line.startswith("#")]
    return [(r[0].strip(), int(r[2]), int(r[4]), r[5].strip()) for r in rows]


def by_stream(rows):
    streams = {}
    for stream, pts, size, md5 in rows:
        streams.setdefault(stream, []).append((pts, size, md5))
    return streams


def pictures(url_or_path, data=None, kind="v"):
    """The MD5 of every decoded video frame (or, with kind "a", audio frame), in order."""
    args = ["-i", "-"] if data is not None else ["-i", url_or_path]
    out = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", *args, "-map", f"0:{kind}", "-f", "framemd5",
                          "-"], input=data, capture_output=True, check=True).stdout.decode()
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if not line.startswith("#")]


def picture_times(url):
    """When each decoded video frame is shown, in ms from the first (framemd5's pts in its
    time base): the pictures' timing, whatever the container's clock."""
    out = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", url, "-map", "0:v", "-f", "framemd5",
                          "-"], capture_output=True, check=True).stdout.decode()
    tb = next(line.split(":")[1].strip() for line in out.splitlines() if line.startswith("#tb 0"))
    num, den = (int(x) for x in tb.split("/"))
    pts = [int(line.split(",")[2]) for line in out.splitlines() if not line.startswith("#")]
    return [round((p - pts[0]) * num * 1000 / den) for p in pts]


def segments(media):
    """GetMedia's output split into its segments (each begins with an EBML header)."""
    magic = b"\x1a\x45\xdf\xa3"
    starts = []
    at = media.find(magic)
    while at != -1:
        starts.append(at)
        at = media.find(magic, at + 1)
    return [media[s:e] for s, e in zip(starts, starts[1:] + [len(media)])]


def tag(segment, name):
    """The TagString after the TagName `name` in a segment."""
    at = segment.find(name.encode())
    assert at != -1, name
    value_at = segment.find(b"\x44\x87", at) + 2
    # The size: an EBML variable-length integer (its length marked by the leading zeros).
    first = segment[value_at]
    length = 8 - first.bit_length() + 1
    size = first & (0xFF >> length)
    for byte in segment[value_at + 1:value_at + length]:
        size = size << 8 | byte
    start = value_at + length
    return segment[start:start + size].decode()


def expect_not_found(urls):
    """Each URL answers 404."""
    for url in urls:
        try:
            urllib.request.urlopen(url)
            raise AssertionError(f"{url} was served")
        except urllib.error.HTTPError as refused:
            assert refused.code == 404, refused


def make_stream(video, retention=24):
    name = unique("camera")
    arn = video.create_stream(StreamName=name, MediaType="video/h264", DataRetentionInHours=retention,
                              Tags={"site": "lab"})["StreamARN"]
    return name, arn


def ffmpeg_put(endpoint, name, source):
    """ffmpeg as the producer: the file's packets, remuxed, POSTed chunked to PutMedia."""
    headers = (f"x-amzn-stream-name: {name}\r\nx-amzn-fragment-timecode-type: RELATIVE\r\n"
               f"x-amzn-producer-start-timestamp: {START}\r\n")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", source, "-map", "0", "-c", "copy",
                    "-cluster_time_limit", "2000", "-cluster_size_limit", "2000000", "-f", "matroska", "-method", "POST",
                    "-chunked_post", "1", "-headers", headers, f"{endpoint}/putMedia"], check=True, timeout=120)


def put_media(endpoint, name, body, start=START):
    """A producer that reads its acknowledgements: the body in 4 KiB chunks, every ack back."""
    url = urllib.parse.urlparse(endpoint)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"x-amzn-stream-name": name, "x-amzn-fragment-timecode-type": "RELATIVE",
               "x-amzn-producer-start-timestamp": str(start), "Transfer-Encoding": "chunked"}
    chunks = (body[i:i + 4096] for i in range(0, len(body), 4096))
    connection.request("POST", "/putMedia", body=chunks, headers=headers, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 200, response.read()
    acks = [json.loads(line) for line in response.read().decode().splitlines() if line]
    connection.close()
    return acks


def stream_of_source(endpoint):
    """A new stream holding the source, put by a producer reading its acknowledgements: its
    name, the archived-media client and its fragments."""
    name, _ = make_stream(client("kinesisvideo", endpoint))
    with open(SOURCE, "rb") as f:
        acks = put_media(endpoint, name, f.read())
    assert len([a for a in acks if a["EventType"] == "PERSISTED"]) == CLUSTERS, acks
    archived = client("kinesis-video-archived-media", endpoint)
    return name, archived, wait_for_fragments(archived, name, CLUSTERS)


def wait_for_fragments(archived, name, count):
    deadline = time.time() + 30
    while True:
        fragments = archived.list_fragments(StreamName=name, MaxResults=1000)["Fragments"]
        if len(fragments) >= count or time.time() > deadline:
            return sorted(fragments, key=lambda f: int(f["FragmentNumber"]))
        time.sleep(0.2)


def test_the_control_plane_through_boto3(endpoint):
    video = client("kinesisvideo", endpoint)
    name, arn = make_stream(video)
    info = video.describe_stream(StreamName=name)["StreamInfo"]
    assert info["StreamARN"] == arn and info["Status"] == "ACTIVE" and info["DataRetentionInHours"] == 24, info
    assert info["MediaType"] == "video/h264"
    expect_error("ResourceInUseException", video.create_stream, StreamName=name)
    expect_error("ResourceNotFoundException", video.describe_stream, StreamName=unique("missing"))
    expect_error("InvalidArgumentException", video.create_stream, StreamName="bad name!")
    listed = video.list_streams(StreamNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": name})
    assert [s["StreamName"] for s in listed["StreamInfoList"]] == [name], listed
    version = info["Version"]
    video.update_stream(StreamName=name, CurrentVersion=version, DeviceName="door")
    expect_error("VersionMismatchException", video.update_stream, StreamName=name, CurrentVersion=version,
                 DeviceName="x")
    info = video.describe_stream(StreamARN=arn)["StreamInfo"]
    assert info["DeviceName"] == "door" and info["Version"] != version, info
    video.update_data_retention(StreamName=name, CurrentVersion=info["Version"],
                                Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=48)
    assert video.describe_stream(StreamName=name)["StreamInfo"]["DataRetentionInHours"] == 72
    video.tag_stream(StreamName=name, Tags={"floor": "2"})
    assert video.list_tags_for_stream(StreamName=name)["Tags"] == {"site": "lab", "floor": "2"}
    video.untag_stream(StreamName=name, TagKeyList=["site"])
    assert video.list_tags_for_stream(StreamName=name)["Tags"] == {"floor": "2"}
    for api in ["PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST"]:
        assert video.get_data_endpoint(StreamName=name, APIName=api)["DataEndpoint"] == endpoint
    video.delete_stream(StreamARN=arn)
    expect_error("ResourceNotFoundException", video.describe_stream, StreamName=name)


def test_ffmpeg_puts_media_and_every_fragment_reads_back_with_the_sources_packets(endpoint):
    video = client("kinesisvideo", endpoint)
    name, _ = make_stream(video)
    ffmpeg_put(endpoint, name, SOURCE)
    archived = client("kinesis-video-archived-media", endpoint)
    fragments = wait_for_fragments(archived, name, CLUSTERS)
    assert len(fragments) == CLUSTERS, fragments
    for f in fragments:
        assert f["FragmentSizeInBytes"] > 0 and f["FragmentLengthInMilliseconds"] > 0, f
        assert f["ProducerTimestamp"].timestamp() >= START, f
    numbers = [f["FragmentNumber"] for f in fragments]
    media = archived.get_media_for_fragment_list(StreamName=name, Fragments=numbers)["Payload"].read()
    parts = segments(media)
    assert [tag(p, "AWS_KINESISVIDEO_FRAGMENT_NUMBER") for p in parts] == numbers
    played = []
    for part in parts:
        played.extend(packets(part))
    # ffmpeg's remux as producer keeps every packet's bytes and time.
    assert [(s, size, md5) for s, _, size, md5 in played] == [(s, size, md5) for s, _, size, md5 in packets(SOURCE)]
    # GetMedia from the start reads the same fragments, tagged with a continuation token.
    media = client("kinesis-video-media", endpoint)
    body = media.get_media(StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})["Payload"].read()
    parts = segments(body)
    assert [tag(p, "AWS_KINESISVIDEO_FRAGMENT_NUMBER") for p in parts] == numbers
    assert tag(parts[-1], "AWS_KINESISVIDEO_CONTINUATION_TOKEN") == numbers[-1]


def test_list_fragments_and_get_media_selectors_at_the_edges(endpoint):
    video = client("kinesisvideo", endpoint)
    name, _ = make_stream(video)
    with open(SOURCE, "rb") as f:
        acks = put_media(endpoint, name, f.read())
    persisted = [a for a in acks if a["EventType"] == "PERSISTED"]
    assert len(persisted) == CLUSTERS, acks
    assert [a["EventType"] for a in acks].count("ERROR") == 0, acks
    archived = client("kinesis-video-archived-media", endpoint)
    fragments = wait_for_fragments(archived, name, CLUSTERS)
    assert [f["FragmentNumber"] for f in fragments] == [a["FragmentNumber"] for a in persisted]
    times = [f["ProducerTimestamp"] for f in fragments]
    # A range from the second fragment's second to the third's (botocore sends whole
    # seconds) holds exactly the fragments whose time is in it, both ends included.
    low, high = int(times[1].timestamp()), int(times[2].timestamp())
    chosen = archived.list_fragments(StreamName=name, FragmentSelector={
        "FragmentSelectorType": "PRODUCER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": low, "EndTimestamp": high}})["Fragments"]
    expected = [f["FragmentNumber"] for f in fragments if low <= f["ProducerTimestamp"].timestamp() <= high]
    assert 0 < len(expected) < len(fragments), (low, high, times)
    assert sorted((f["FragmentNumber"] for f in chosen), key=int) == expected, chosen
    # Pages of one, with tokens, list every fragment once.
    seen, token = [], None
    while True:
        kwargs = {"NextToken": token} if token else {}
        page = archived.list_fragments(StreamName=name, MaxResults=1, **kwargs)
        seen.extend(f["FragmentNumber"] for f in page["Fragments"])
        token = page.get("NextToken")
        if not token:
            break
    assert seen == [f["FragmentNumber"] for f in fragments]
    media = client("kinesis-video-media", endpoint)

    def read(selector):
        body = media.get_media(StreamName=name, StartSelector=selector)["Payload"].read()
        return [tag(p, "AWS_KINESISVIDEO_FRAGMENT_NUMBER") for p in segments(body)]

    numbers = [f["FragmentNumber"] for f in fragments]
    got = read({"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": numbers[2]})
    assert got == numbers[2:], (got, numbers)
    # From a time: the fragment holding it (or the first after it) onwards.
    holding = next(i for i, f in enumerate(fragments)
                   if f["ProducerTimestamp"].timestamp() >= high
                   or high < f["ProducerTimestamp"].timestamp() + f["FragmentLengthInMilliseconds"] / 1000)
    assert read({"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": high}) == numbers[holding:]
    assert read({"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": numbers[1]}) == numbers[2:]
    assert read({"StartSelectorType": "NOW"}) == []
    expect_error("ResourceNotFoundException", media.get_media, StreamName=name,
                 StartSelector={"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": "99999999"})


def test_bad_media_gets_error_acks_and_the_server_keeps_going(endpoint):
    video = client("kinesisvideo", endpoint)
    name, _ = make_stream(video)
    acks = put_media(endpoint, name, b"this is not matroska" * 100)
    assert [a.get("ErrorId") for a in acks if a["EventType"] == "ERROR"] == [4006], acks
    with open(SOURCE, "rb") as f:
        source = f.read()
    # Cut in the middle: the whole fragments before the cut are kept, the cut one is not.
    acks = put_media(endpoint, name, source[:len(source) // 2])
    persisted = [a for a in acks if a["EventType"] == "PERSISTED"]
    assert [a.get("ErrorId") for a in acks if a["EventType"] == "ERROR"] == [4006], acks
    archived = client("kinesis-video-archived-media", endpoint)
    assert len(archived.list_fragments(StreamName=name)["Fragments"]) == len(persisted) > 0
    # The same stream still takes a whole file; its timecodes restart, so it is refused
    # up to where the first put reached, and the rest is kept.
    acks = put_media(endpoint, name, source)
    errors = [a.get("ErrorId") for a in acks if a["EventType"] == "ERROR"]
    assert set(errors) <= {4004}, acks
    assert len([a for a in acks if a["EventType"] == "PERSISTED"]) + len(errors) == CLUSTERS
    expect_error("ResourceNotFoundException", archived.list_fragments, StreamName=unique("missing"))


def test_hls_on_demand_and_get_clip_play_the_source_frame_for_frame(endpoint):
    name, archived, fragments = stream_of_source(endpoint)
    start = fragments[0]["ProducerTimestamp"].timestamp() - 1
    end = fragments[-1]["ProducerTimestamp"].timestamp() + 10
    selector = {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}}
    url = archived.get_hls_streaming_session_url(StreamName=name, PlaybackMode="ON_DEMAND",
                                                 HLSFragmentSelector=selector,
                                                 ContainerFormat="FRAGMENTED_MP4",
                                                 DisplayFragmentTimestamp="ALWAYS")["HLSStreamingSessionURL"]
    assert url.startswith(endpoint + "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken="), url
    media_url = url.replace("getHLSMasterPlaylist", "getHLSMediaPlaylist")
    playlist = urllib.request.urlopen(media_url).read().decode()
    assert playlist.count("#EXTINF") == CLUSTERS and "#EXT-X-ENDLIST" in playlist, playlist
    assert playlist.count("#EXT-X-PROGRAM-DATE-TIME") == CLUSTERS and "#EXT-X-MAP" in playlist, playlist
    # ffmpeg plays the master playlist: the source's packets, and its decoded pictures.
    source = by_stream(packets(SOURCE))
    assert by_stream(packets(url)) == source
    assert pictures(url) == pictures(SOURCE)
    # GetClip: one MP4 of the range, the same packets and pictures.
    clip = archived.get_clip(StreamName=name, ClipFragmentSelector=selector)["Payload"].read()
    assert by_stream(packets(clip)) == source
    assert pictures(None, clip) == pictures(SOURCE)
    # GetImages is refused, saying why (no decoder is built).
    error = expect_error("NotImplementedException", archived.get_images, StreamName=name, ImageSelectorType="PRODUCER_TIMESTAMP",
                         StartTimestamp=start, EndTimestamp=end, Format="JPEG")
    assert "decoder" in error.response["Error"]["Message"]
    # A token changed by a byte is refused.
    forged = url[:-3] + ("A" if url[-3] != "A" else "B") + url[-2:]
    try:
        urllib.request.urlopen(forged)
        raise AssertionError("a forged session token was accepted")
    except urllib.error.HTTPError as refused:
        assert refused.code == 400


def test_hls_over_mpeg_ts_and_dash_play_the_source_frame_for_frame(endpoint):
    name, archived, fragments = stream_of_source(endpoint)
    selector = {"FragmentSelectorType": "SERVER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": fragments[0]["ServerTimestamp"].timestamp() - 1,
                                   "EndTimestamp": fragments[-1]["ServerTimestamp"].timestamp() + 10}}
    # LIVE (first: a LIVE session needs a fragment from the last 30 s): a dynamic manifest
    # of the latest fragments, which players fetch again.
    url = archived.get_dash_streaming_session_url(StreamName=name, PlaybackMode="LIVE",
                                                  MaxManifestFragmentResults=2)["DASHStreamingSessionURL"]
    manifest = urllib.request.urlopen(url).read().decode()
    assert 'type="dynamic"' in manifest and manifest.count("<S ") == 2 * 2, manifest
    source = (pictures(SOURCE), pictures(SOURCE, kind="a"))
    assert len(source[0]) == 150 and len(source[1]) > 0
    shown = picture_times(SOURCE)
    # HLS with MPEG-TS segments: H.264 in Annex B and AAC in ADTS, the same pictures and sound.
    url = archived.get_hls_streaming_session_url(StreamName=name, PlaybackMode="ON_DEMAND",
                                                 HLSFragmentSelector=selector,
                                                 ContainerFormat="MPEG_TS")["HLSStreamingSessionURL"]
    playlist = urllib.request.urlopen(url.replace("getHLSMasterPlaylist", "getHLSMediaPlaylist")).read().decode()
    assert playlist.count("getTSFragment.ts") == CLUSTERS and "#EXT-X-MAP" not in playlist, playlist
    assert (pictures(url), pictures(url, kind="a")) == source
    assert picture_times(url) == shown
    ts_url = url
    # DASH: a static manifest (ON_DEMAND), an adaptation set per track, the same pictures and sound.
    url = archived.get_dash_streaming_session_url(StreamName=name, PlaybackMode="ON_DEMAND",
                                                  DASHFragmentSelector=selector, DisplayFragmentNumber="ALWAYS",
                                                  DisplayFragmentTimestamp="ALWAYS")["DASHStreamingSessionURL"]
    assert url.startswith(endpoint + "/dash/v1/getDASHManifest.mpd?SessionToken="), url
    manifest = urllib.request.urlopen(url).read().decode()
    assert 'type="static"' in manifest and manifest.count("<AdaptationSet") == 2, manifest
    assert manifest.count("<S ") == 2 * CLUSTERS, manifest
    for f in fragments:
        assert f'kvs:fn="{f["FragmentNumber"]}"' in manifest, manifest
    assert (pictures(url), pictures(url, kind="a")) == source
    assert picture_times(url) == shown
    # A track the stream does not have, and a fragment outside the session, are not served.
    segment = url.replace("getDASHManifest.mpd", "getMP4MediaFragment.mp4") + "&TrackNumber=9&FragmentIndex=0"
    expect_not_found([segment, segment.replace("TrackNumber=9", "TrackNumber=1").replace("FragmentIndex=0",
                                                                                        "FragmentIndex=99999")])
    # A token serves its own protocol and container only.
    expect_not_found([ts_url.replace("/hls/v1/getHLSMasterPlaylist.m3u8", "/dash/v1/getDASHManifest.mpd"),
                      ts_url.replace("getHLSMasterPlaylist.m3u8", "getMP4InitFragment.mp4"),
                      url.replace("/dash/v1/getDASHManifest.mpd", "/hls/v1/getHLSMasterPlaylist.m3u8")])


def test_a_live_hls_playlist_grows_as_fragments_arrive(endpoint):
    video = client("kinesisvideo", endpoint)
    name, _ = make_stream(video)
    with open(SOURCE, "rb") as f:
        source = f.read()
    archived = client("kinesis-video-archived-media", endpoint)
    # Nothing to play yet: no session.
    expect_error("ResourceNotFoundException", archived.get_hls_streaming_session_url, StreamName=name,
                 PlaybackMode="LIVE")
    put_media(endpoint, name, source[:len(source) // 2])
    url = archived.get_hls_streaming_session_url(StreamName=name, PlaybackMode="LIVE",
                                                 MaxMediaPlaylistFragmentResults=3)["HLSStreamingSessionURL"]
    media_url = url.replace("getHLSMasterPlaylist", "getHLSMediaPlaylist")
    first = urllib.request.urlopen(media_url).read().decode()
    assert "#EXT-X-ENDLIST" not in first, first
    before = first.count("#EXTINF")
    assert 0 < before <= 3, first
    def media_sequence(playlist):  # 0 when the tag is left out, as HLS allows
        return int(playlist.split("#EXT-X-MEDIA-SEQUENCE:")[1].split()[0]) if "SEQUENCE:" in playlist else 0

    sequence = media_sequence(first)
    # The second half restarts its timecodes: the first part of it is refused (4004), the
    # rest arrives and the playlist moves on.
    put_media(endpoint, name, source, start=START + 3600)
    later = urllib.request.urlopen(media_url).read().decode()
    assert later.count("#EXTINF") == 3, later
    assert media_sequence(later) > sequence, later


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
