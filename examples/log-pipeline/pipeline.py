"""Real-time log processing end to end, on one machine, with real software: nginx serves a
site under a load generator that also sends bursts of server errors; `sluice agent` tails
nginx's access log into a Kinesis stream; a Kinesis Data Analytics SQL application counts
status codes per minute and scores 10-second windows with RANDOM_CUT_FOREST; Firehose
delivers the scored windows as Parquet to an S3-compatible server (moto's); a publisher puts
the per-minute server errors to CloudWatch, where an alarm watches them; at the end a
summary: records in, windows out, anomalies found, objects written, the alarm's changes,
usage.

Run it with `examples/log-pipeline/run` (see the README next to this file). With --check it
also verifies every number against an independent recount and exits non-zero on a mismatch
(cli/tests/log_pipeline.rs runs it so)."""

import argparse
import collections
import datetime
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
UTC = datetime.timezone.utc
ACCOUNT = "000000000000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/pipeline"
BUCKET = "weblogs-lake"
NORMAL_PER_SECOND = 20
BURST_PER_SECOND = 15
BURST_SECONDS = 20
ERROR_THRESHOLD = 50  # server errors a minute that raise the alarm


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, what, timeout=30):
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline:
                raise SystemExit(f"{what} did not start on port {port}")
            time.sleep(0.1)


def log(message):
    print(f"[{datetime.datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


class Processes:
    """The child processes, stopped in reverse order at exit."""

    def __init__(self, work):
        self.work = work
        self.children = []

    def start(self, name, args, env=None, stdout=None):
        out = open(os.path.join(self.work, f"{name}.log"), "w")
        child = subprocess.Popen(args, env=env, stdout=stdout or out, stderr=out, start_new_session=True)
        self.children.append((name, child))
        return child

    def check_running(self):
        """Stops the run when a child has exited, showing the end of its log."""
        for name, child in self.children:
            if child.poll() is not None:
                with open(os.path.join(self.work, f"{name}.log")) as f:
                    tail = f.read()[-2000:]
                raise SystemExit(f"{name} exited with {child.returncode}:\n{tail}")

    def stop(self):
        for name, child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


def start_moto(procs):
    port = free_port()
    procs.start("moto", [sys.executable, "-c", "from moto.server import main; main()", "-H", "127.0.0.1", "-p", str(port)])
    wait_for_port(port, "moto's S3 server")
    return f"http://127.0.0.1:{port}"


def start_sluice(procs, sluice, work, s3):
    glue = os.path.join(work, "glue", "weblogs")
    os.makedirs(glue)
    # As `aws glue get-table --database-name weblogs --name scored_windows` prints it.
    with open(os.path.join(glue, "scored_windows.json"), "w") as f:
        json.dump({"Table": {"Name": "scored_windows", "DatabaseName": "weblogs", "StorageDescriptor": {"Columns": [
            {"Name": "window_start", "Type": "timestamp"}, {"Name": "requests", "Type": "bigint"},
            {"Name": "errors", "Type": "bigint"}, {"Name": "anomaly_score", "Type": "double"}]}}}, f)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    child = procs.start("sluice-serve", [sluice, "serve", "--dir", os.path.join(work, "data"), "--listen", "127.0.0.1:0",
                                         "--print-address", "--firehose-s3-endpoint", s3,
                                         "--firehose-glue-dir", os.path.join(work, "glue")],
                        env=env, stdout=subprocess.PIPE)
    address = child.stdout.readline().decode().strip()
    if not address:
        raise SystemExit(f"sluice serve did not start; see {work}/sluice-serve.log")
    return f"http://{address}"


NGINX_CONF = """daemon off;
worker_processes 1;
user root;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    access_log {work}/logs/access.log combined;
    client_body_temp_path {work}/nginx-tmp/body;
    proxy_temp_path {work}/nginx-tmp/proxy;
    fastcgi_temp_path {work}/nginx-tmp/fastcgi;
    uwsgi_temp_path {work}/nginx-tmp/uwsgi;
    scgi_temp_path {work}/nginx-tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {work}/site;
        location = /api/checkout {{ return 500; }}
        location / {{ try_files $uri =404; }}
    }}
}}
"""


def start_nginx(procs, work):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise SystemExit("nginx is not installed (Debian: apt-get install nginx-light; scripts/setup does it)")
    port = free_port()
    for d in ["logs", "site", "nginx-tmp"]:
        os.makedirs(os.path.join(work, d))
    for page in ["index.html", "about.html", "products.html"]:
        with open(os.path.join(work, "site", page), "w") as f:
            f.write(f"<h1>{page}</h1>\n" * 20)
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(work=work, port=port))
    procs.start("nginx", [nginx, "-e", os.path.join(work, "nginx-error.log"), "-c", conf, "-p", work])
    wait_for_port(port, "nginx")
    return f"http://127.0.0.1:{port}"


APPLICATION = """
CREATE OR REPLACE STREAM "MINUTE_COUNTS" ("minute_start" TIMESTAMP, "status" VARCHAR(3), "requests" BIGINT);
CREATE OR REPLACE PUMP "MINUTE_PUMP" AS INSERT INTO "MINUTE_COUNTS"
    SELECT STREAM FLOOR("SOURCE_SQL_STREAM_001".ROWTIME TO MINUTE), "response", COUNT(*)
    FROM "SOURCE_SQL_STREAM_001"
    GROUP BY "response", FLOOR("SOURCE_SQL_STREAM_001".ROWTIME TO MINUTE);
CREATE OR REPLACE STREAM "WINDOWS" ("window_start" TIMESTAMP, "requests" BIGINT, "errors" BIGINT);
CREATE OR REPLACE PUMP "WINDOW_PUMP" AS INSERT INTO "WINDOWS"
    SELECT STREAM STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '10' SECOND), COUNT(*),
           SUM(CASE WHEN "response" >= '500' THEN 1 ELSE 0 END)
    FROM "SOURCE_SQL_STREAM_001"
    GROUP BY STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '10' SECOND);
CREATE OR REPLACE STREAM "SCORED" ("window_start" TIMESTAMP, "requests" BIGINT, "errors" BIGINT, "anomaly_score" DOUBLE);
CREATE OR REPLACE PUMP "SCORE_PUMP" AS INSERT INTO "SCORED"
    SELECT STREAM "window_start", "requests", "errors", ANOMALY_SCORE
    FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM "window_start", "requests", "errors" FROM "WINDOWS"), 100, 10, 100000, 1));
"""


def set_up_aws(endpoint):
    config = Config(retries={"max_attempts": 3})
    creds = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
                 aws_secret_access_key="secret", config=config)
    clients = {name: boto3.client(name, **creds) for name in ["kinesis", "firehose", "kinesisanalytics", "cloudwatch"]}
    kinesis = clients["kinesis"]
    for name, shards in [("weblogs", 2), ("minute-counts", 1), ("alarm-events", 1)]:
        kinesis.create_stream(StreamName=name, ShardCount=shards)
    arn = lambda name: f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{name}"
    clients["firehose"].create_delivery_stream(
        DeliveryStreamName="scored-windows", DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE, "BucketARN": f"arn:aws:s3:::{BUCKET}", "Prefix": "scored-windows/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 5}, "CompressionFormat": "UNCOMPRESSED",
            "DataFormatConversionConfiguration": {
                "Enabled": True,
                "SchemaConfiguration": {"RoleARN": ROLE, "DatabaseName": "weblogs", "TableName": "scored_windows",
                                        "Region": "us-east-1", "VersionId": "LATEST"},
                "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
                "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}}}})
    schema = {"RecordFormat": {"RecordFormatType": "JSON", "MappingParameters": {"JSONMappingParameters": {"RecordRowPath": "$"}}},
              "RecordColumns": [{"Name": "response", "SqlType": "VARCHAR(3)", "Mapping": "$.response"},
                                {"Name": "request", "SqlType": "VARCHAR(256)", "Mapping": "$.request"}]}
    analytics = clients["kinesisanalytics"]
    analytics.create_application(
        ApplicationName="weblogs", ApplicationCode=APPLICATION,
        Inputs=[{"NamePrefix": "SOURCE_SQL_STREAM", "KinesisStreamsInput": {"ResourceARN": arn("weblogs"), "RoleARN": ROLE},
                 "InputSchema": schema}],
        Outputs=[{"Name": "MINUTE_COUNTS", "KinesisStreamsOutput": {"ResourceARN": arn("minute-counts"), "RoleARN": ROLE},
                  "DestinationSchema": {"RecordFormatType": "JSON"}},
                 {"Name": "SCORED", "KinesisFirehoseOutput": {
                     "ResourceARN": f"arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/scored-windows", "RoleARN": ROLE},
                  "DestinationSchema": {"RecordFormatType": "JSON"}}])
    analytics.start_application(ApplicationName="weblogs", InputConfigurations=[
        {"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "TRIM_HORIZON"}}])
    clients["cloudwatch"].put_metric_alarm(
        AlarmName="weblogs-server-errors", AlarmDescription="More than 50 server errors a minute",
        Namespace="WebLogs", MetricName="ServerErrors", Statistic="Sum", Period=60, EvaluationPeriods=1,
        Threshold=ERROR_THRESHOLD, ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching",
        AlarmActions=[arn("alarm-events")], OKActions=[arn("alarm-events")])
    return clients


def start_agent(procs, sluice, work, endpoint):
    config = {
        "kinesis.endpoint": endpoint,
        "checkpointFile": os.path.join(work, "agent-checkpoints"),
        "awsAccessKeyId": "AKIDEXAMPLE", "awsSecretAccessKey": "secret",
        "flows": [{"filePattern": os.path.join(work, "logs", "access.log*"), "kinesisStream": "weblogs",
                   "initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 1000,
                   "dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "COMBINEDAPACHELOG"}]}],
    }
    path = os.path.join(work, "agent.json")
    with open(path, "w") as f:
        json.dump(config, f)
    procs.start("sluice-agent", [sluice, "agent", "--report-seconds", "10", "--config", path])
    time.sleep(1)
    procs.check_running()


class LoadGenerator(threading.Thread):
    """Steady traffic (pages, and some 404s), plus bursts of server errors on request."""

    def __init__(self, site):
        super().__init__(daemon=True)
        self.site = site
        self.stopping = threading.Event()
        self.burst_until = 0.0
        self.sent = collections.Counter()
        self.bursts = []

    def get(self, path):
        try:
            with urllib.request.urlopen(self.site + path, timeout=5) as r:
                r.read()
                self.sent[r.status] += 1
        except urllib.error.HTTPError as e:
            self.sent[e.code] += 1
        except OSError as e:  # a timeout or a refused connection: counted, and the run goes on
            self.sent[f"failed ({type(e).__name__})"] += 1

    def burst(self):
        now = time.time()
        self.burst_until = now + BURST_SECONDS
        self.bursts.append((now, self.burst_until))

    def run(self):
        pages = ["/", "/index.html", "/about.html", "/products.html", "/missing.html"]
        i = 0
        while not self.stopping.is_set():
            second = time.time()
            for _ in range(NORMAL_PER_SECOND):
                self.get(pages[i % len(pages)])
                i += 1
            if time.time() < self.burst_until:
                for _ in range(BURST_PER_SECOND):
                    self.get("/api/checkout")
            time.sleep(max(0.0, 1.0 - (time.time() - second)))


def read_stream(kinesis, stream):
    records = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            got = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            records.extend(got["Records"])
            if not got["Records"] and got.get("MillisBehindLatest", 0) == 0:
                break
            iterator = got.get("NextShardIterator")
    return records


class Publisher(threading.Thread):
    """Puts each minute's server errors (the application's counts) to CloudWatch, as a Lambda
    on the application's output would."""

    def __init__(self, clients):
        super().__init__(daemon=True)
        self.kinesis, self.cloudwatch = clients["kinesis"], clients["cloudwatch"]
        self.stopping = threading.Event()
        self.published = collections.Counter()

    def run(self):
        shard = self.kinesis.list_shards(StreamName="minute-counts")["Shards"][0]["ShardId"]
        iterator = self.kinesis.get_shard_iterator(StreamName="minute-counts", ShardId=shard,
                                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while not self.stopping.is_set():
            got = self.kinesis.get_records(ShardIterator=iterator)
            iterator = got["NextShardIterator"]
            for record in got["Records"]:
                row = json.loads(record["Data"])
                if row["status"] >= "500":
                    at = parse_time(row["minute_start"])
                    self.cloudwatch.put_metric_data(Namespace="WebLogs", MetricData=[
                        {"MetricName": "ServerErrors", "Timestamp": at, "Value": row["requests"], "Unit": "Count"}])
                    self.published[at] += row["requests"]
            time.sleep(0.5)


def parse_time(text):
    text = text.replace(" ", "T").rstrip("Z")
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def wait(seconds, why):
    log(f"{why} ({seconds:.0f} s)")
    time.sleep(max(0.0, seconds))


def wait_for_alarm(cloudwatch, state, when):
    """Waits (at most three minutes) for the alarm to be in `state`."""
    log(f"waiting for the alarm to go to {state} {when}")
    deadline = time.time() + 180
    while time.time() < deadline:
        alarm = cloudwatch.describe_alarms(AlarmNames=["weblogs-server-errors"])["MetricAlarms"][0]
        if alarm["StateValue"] == state:
            log(f"the alarm is {state}: {alarm['StateReason']}")
            return
        time.sleep(1)
    raise SystemExit(f"the alarm did not go to {state} {when}")


def until_burst(at_least):
    """Seconds to wait so that at least `at_least` pass and then a minute is between its 5th
    and 35th second (a burst of BURST_SECONDS started then ends within the minute)."""
    now = time.time()
    target = now + at_least
    second = target % 60
    if second < 5:
        target += 5 - second
    elif second > 35:
        target += 65 - second
    return target - now


def run(args):
    work = tempfile.mkdtemp(prefix="sluice-log-pipeline-")
    procs = Processes(work)
    try:
        log(f"working in {work}")
        s3 = start_moto(procs)
        boto3.client("s3", endpoint_url=s3, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
        endpoint = start_sluice(procs, args.sluice, work, s3)
        site = start_nginx(procs, work)
        log(f"sluice serve on {endpoint}, nginx on {site}, S3 (moto) on {s3}")
        clients = set_up_aws(endpoint)
        start_agent(procs, args.sluice, work, endpoint)
        load, publisher = LoadGenerator(site), Publisher(clients)
        load.start()
        publisher.start()
        # Steady traffic first (the forest learns what normal looks like), then a burst of
        # server errors that starts between 5 and 35 seconds into a minute, so that it stays
        # within that minute.
        wait(until_burst(args.warm_up), "steady traffic")
        load.burst()
        log(f"burst: {BURST_PER_SECOND} server errors a second for {BURST_SECONDS} s")
        # The burst's minute closes, the alarm fires; the next minute is clean, it clears.
        wait_for_alarm(clients["cloudwatch"], "ALARM", "after the burst's minute")
        wait_for_alarm(clients["cloudwatch"], "OK", "after a clean minute")
        load.stopping.set()
        load.join()
        wait(8, "the agent sends the last lines, the application closes its last windows")
        procs.check_running()
        publisher.stopping.set()
        publisher.join()
        report = summarize(clients, work, s3, args, load, publisher)
        print(report["text"], flush=True)
        if args.check:
            check(report)
            log("every check passed")
    finally:
        procs.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def s3_objects(s3):
    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return [(key, client.get_object(Bucket=BUCKET, Key=key)["Body"].read()) for key in sorted(keys)]


def summarize(clients, work, s3, args, load, publisher):
    import pyarrow.parquet as pq
    kinesis = clients["kinesis"]
    with open(os.path.join(work, "logs", "access.log")) as f:
        lines = [line for line in f.read().splitlines() if line]
    records = read_stream(kinesis, "weblogs")
    minute_rows = [json.loads(r["Data"]) for r in read_stream(kinesis, "minute-counts")]
    objects = s3_objects(s3)
    parquet_rows = []
    for key, body in objects:
        if key.startswith("scored-windows/"):
            parquet_rows.extend(pq.read_table(io.BytesIO(body)).to_pylist())
    alarm_events = [json.loads(r["Data"]) for r in read_stream(kinesis, "alarm-events")]
    usage = subprocess.run([args.sluice, "usage", "--json", "--endpoint", clients["kinesis"].meta.endpoint_url],
                           capture_output=True, text=True, timeout=60)
    usage_lines = json.loads(usage.stdout)["lines"] if usage.returncode == 0 else []
    ranked = sorted(parquet_rows, key=lambda r: r["anomaly_score"], reverse=True)
    out = io.StringIO()
    p = lambda *a: print(*a, file=out)
    p("")
    p("log pipeline summary")
    p(f"  requests sent        {sum(load.sent.values())} ({', '.join(f'{k}: {v}' for k, v in sorted(load.sent.items()))})")
    p(f"  access-log lines     {len(lines)}")
    p(f"  records in           {len(records)} in stream weblogs")
    p(f"  windows out          {len(minute_rows)} (minute, status) counts; {len(parquet_rows)} scored 10-second windows")
    p(f"  anomalies found      top windows by score:")
    for row in ranked[:4]:
        p(f"                         {row['window_start']}  requests {row['requests']:4}  errors {row['errors']:4}  score {row['anomaly_score']:.3f}")
    p(f"  objects written      {len(objects)} Parquet objects, {len(parquet_rows)} rows, in s3://{BUCKET}/scored-windows/")
    p(f"  server errors put    {dict((k.strftime('%H:%M'), v) for k, v in sorted(publisher.published.items()))} (namespace WebLogs)")
    p(f"  alarm changes        " + ", ".join(f"{e['OldStateValue']} -> {e['NewStateValue']} at {e['StateChangeTime']}" for e in alarm_events))
    p("  usage")
    for u in usage_lines:
        p(f"                         {u['resource']:32} {u['usage_type']:40} {u['quantity']:.6f} {u['unit']}")
    return {"text": out.getvalue(), "lines": lines, "records": records, "minute_rows": minute_rows,
            "parquet_rows": parquet_rows, "ranked": ranked,
            "alarm_events": alarm_events, "load": load, "usage": usage_lines, "objects": objects}


def check(report):
    """Every number against an independent recount."""
    lines, records = report["lines"], report["records"]
    # File to stream: every access-log line is a record, none twice (nothing was killed).
    requests_in_log = collections.Counter()
    for line in lines:
        request = line.split('"')[1]
        status = line.split('"')[2].split()[0]
        requests_in_log[(request, status)] += 1
    in_stream = collections.Counter()
    for r in records:
        row = json.loads(r["Data"])
        in_stream[(row["request"], row["response"])] += 1
    assert sum(report["load"].sent.values()) == len(lines), (report["load"].sent, len(lines))
    assert in_stream == requests_in_log, "the stream holds other lines than the access log"
    # Windows: the application's per-minute counts equal a batch recount of the records by
    # their arrival minute, for every minute it closed; no closed minute is missing.
    recount = collections.Counter()
    for r in records:
        at = r["ApproximateArrivalTimestamp"].astimezone(UTC).replace(second=0, microsecond=0)
        recount[(at, json.loads(r["Data"])["response"])] += 1
    emitted = {(parse_time(row["minute_start"]), row["status"]): row["requests"] for row in report["minute_rows"]}
    assert len(emitted) == len(report["minute_rows"]), "a (minute, status) count came twice"
    starts = [row["window_start"] for row in report["parquet_rows"]]
    assert len(set(starts)) == len(starts), "a window's row was written twice"
    assert "failed" not in " ".join(map(str, report["load"].sent)), report["load"].sent
    assert emitted, "no minute was counted"
    for key, count in emitted.items():
        assert recount[key] == count, (key, count, recount[key])
    last = max(minute for minute, _ in emitted)
    for key, count in recount.items():
        if key[0] < last:
            assert emitted.get(key) == count, (key, count, emitted.get(key))
    # Anomalies: the burst's windows (8 seconds of it or more; a 20-second burst always
    # fills one) score above every window of steady traffic, and the highest score is a
    # window with some of the burst. A window at the burst's edge, with a few seconds of it,
    # may score anywhere; so may the run's first and last windows, which hold a few seconds
    # of traffic and are as unusual to the forest as a burst (a last window of 160 requests
    # once outscored the burst's second window, scored after the forest had seen its first).
    rows = report["parquet_rows"]
    burst = [r for r in rows if r["errors"] >= 8 * BURST_PER_SECOND]
    steady = 10 * NORMAL_PER_SECOND
    calm = [r for r in rows if r["errors"] == 0 and abs(r["requests"] - steady) <= NORMAL_PER_SECOND]
    assert burst and calm, rows
    assert min(r["anomaly_score"] for r in burst) > max(r["anomaly_score"] for r in calm), report["ranked"][:6]
    assert report["ranked"][0]["errors"] > 0, report["ranked"][:6]
    # Parquet: one row per closed 10-second window, with the recount's numbers.
    by_window = collections.Counter()
    errors_by_window = collections.Counter()
    for r in records:
        t = r["ApproximateArrivalTimestamp"].timestamp()
        start = datetime.datetime.fromtimestamp(t - t % 10, UTC)
        by_window[start] += 1
        errors_by_window[start] += json.loads(r["Data"])["response"] >= "500"
    for row in report["parquet_rows"]:
        start = row["window_start"].replace(tzinfo=UTC)
        assert (row["requests"], row["errors"]) == (by_window[start], errors_by_window[start]), (row, by_window[start])
    assert len(report["parquet_rows"]) >= len(by_window) - 2, (len(report["parquet_rows"]), len(by_window))
    # The alarm: ALARM during the burst, OK after, each change delivered to the stream.
    states = [(e["OldStateValue"], e["NewStateValue"]) for e in report["alarm_events"]]
    assert states[-2:] == [("INSUFFICIENT_DATA", "ALARM"), ("ALARM", "OK")] or states[-2:] == [("OK", "ALARM"), ("ALARM", "OK")], states
    # Usage: the records put were metered.
    units = sum(u["quantity"] for u in report["usage"] if u["usage_type"] == "Kinesis:PutRequestPayloadUnits" and u["resource"] == "stream/weblogs")
    assert units == len(records), (units, len(records))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sluice", default=os.environ.get("SLUICE_BIN"), help="the sluice binary (built with --features s3,parquet,analytics)")
    parser.add_argument("--warm-up", type=float, default=50, help="seconds of steady traffic before the burst (at least)")
    parser.add_argument("--check", action="store_true", help="verify every number; exit 1 on a mismatch")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    if not args.sluice:
        parser.error("give --sluice or SLUICE_BIN")
    run(args)


if __name__ == "__main__":
    main()
