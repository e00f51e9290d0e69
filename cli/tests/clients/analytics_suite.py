"""Kinesis Data Analytics SQL applications on `sluice serve` (the `analytics` feature) with
boto3's `kinesisanalytics` and `kinesis` clients, unchanged: the AWS documentation's stock
ticker examples (a filter, a tumbling-window aggregate, here over 2-second windows so the
test does not wait minutes, a sliding-window average, and orders joined with the trades of
the minute before them, a windowed join of two streams) and its RANDOM_CUT_FOREST anomaly
example over heart rates with injected spikes, run over records put to a stream, their output read back and
compared with the answer computed here from the records' arrival times; its reference data example (trades
joined with a company table read from an object in a bucket, the server's bucket directory here); schema
discovery; updates by version while running; KDA's errors for bad input.
Usage: python3 analytics_suite.py URL METRICS_TOKEN BUCKET_DIR"""

import http.client
import json
import os
import sys
import time
import urllib.parse

import boto3
from botocore.config import Config

import harness
from harness import expect_error, unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
METRICS_TOKEN = sys.argv[2] if __name__ == "__main__" else None
BUCKET_DIR = sys.argv[3] if __name__ == "__main__" else None
ACCOUNT = "000000000000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/kinesis-analytics"
TICKERS = [("AMZN", "RETAIL"), ("NVDA", "TECHNOLOGY"), ("MSFT", "TECHNOLOGY"), ("XOM", "ENERGY")]


def client(endpoint, service, key="AKIDEXAMPLE"):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key="secret", config=Config(retries={"max_attempts": 1}))


def stream_arn(name):
    return f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{name}"


def create_stream(kinesis, prefix):
    name = unique(prefix)
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    return name


def put_trades(kinesis, stream, count):
    """The demo stream's records: ticker, sector, change, price."""
    for start in range(0, count, 100):
        records = []
        for i in range(start, min(start + 100, count)):
            ticker, sector = TICKERS[i % len(TICKERS)]
            trade = {"TICKER_SYMBOL": ticker, "SECTOR": sector, "CHANGE": (i % 7) - 3.5, "PRICE": 10 + (i * 37) % 90}
            records.append({"Data": json.dumps(trade).encode(), "PartitionKey": ticker})
        kinesis.put_records(StreamName=stream, Records=records)
        time.sleep(0.3)


def read_all(kinesis, stream):
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = []
    while True:
        got = kinesis.get_records(ShardIterator=iterator, Limit=10000)
        records.extend(got["Records"])
        iterator = got["NextShardIterator"]
        if not got["Records"]:
            return records


def wait_for_rows(kinesis, stream, count, timeout=30):
    deadline = time.time() + timeout
    while True:
        rows = [json.loads(r["Data"]) for r in read_all(kinesis, stream)]
        if len(rows) >= count or time.time() > deadline:
            time.sleep(1)  # none more may come
            return [json.loads(r["Data"]) for r in read_all(kinesis, stream)]
        time.sleep(0.2)


def scrape(endpoint, path):
    url = urllib.parse.urlparse(endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("GET", path, headers={"Authorization": f"Bearer {METRICS_TOKEN}"} if METRICS_TOKEN else {})
    response = conn.getresponse()
    text = response.read().decode()
    assert response.status == 200, (response.status, text)
    return text


def input_config(source, schema):
    return {"NamePrefix": "SOURCE_SQL_STREAM",
            "KinesisStreamsInput": {"ResourceARN": stream_arn(source), "RoleARN": ROLE},
            "InputSchema": schema}


def output_config(destination, name="DESTINATION_SQL_STREAM", fmt="JSON"):
    return {"Name": name, "KinesisStreamsOutput": {"ResourceARN": stream_arn(destination), "RoleARN": ROLE},
            "DestinationSchema": {"RecordFormatType": fmt}}


TUMBLING = """CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (TICKER VARCHAR(4), MIN_PRICE REAL, MAX_PRICE REAL);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM TICKER_SYMBOL, MIN(PRICE), MAX(PRICE)
    FROM "SOURCE_SQL_STREAM_001"
    GROUP BY TICKER_SYMBOL, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '2' SECOND);"""

FILTER = """CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ticker_symbol VARCHAR(4), change DOUBLE, price DOUBLE);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM ticker_symbol, change, price
    FROM "SOURCE_SQL_STREAM_001"
    WHERE sector SIMILAR TO '%TECH%';"""


def test_the_tumbling_window_example_gives_each_windows_min_and_max(endpoint):
    kinesis, analytics = client(endpoint, "kinesis"), client(endpoint, "kinesisanalytics")
    source, destination = create_stream(kinesis, "trades"), create_stream(kinesis, "prices")
    put_trades(kinesis, source, 400)
    schema = analytics.discover_input_schema(
        ResourceARN=stream_arn(source), RoleARN=ROLE,
        InputStartingPositionConfiguration={"InputStartingPosition": "TRIM_HORIZON"})
    columns = {c["Name"]: c["SqlType"] for c in schema["InputSchema"]["RecordColumns"]}
    assert columns == {"CHANGE": "DOUBLE", "PRICE": "INTEGER", "SECTOR": "VARCHAR(16)", "TICKER_SYMBOL": "VARCHAR(4)"}, columns
    assert len(schema["RawInputRecords"]) == 100 and len(schema["ParsedInputRecords"][0]) == 4, schema
    name = unique("tumbling")
    created = analytics.create_application(
        ApplicationName=name, ApplicationCode=TUMBLING, Inputs=[input_config(source, schema["InputSchema"])],
        Outputs=[output_config(destination)])
    assert created["ApplicationSummary"]["ApplicationStatus"] == "READY", created
    analytics.start_application(ApplicationName=name, InputConfigurations=[
        {"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "TRIM_HORIZON"}}])
    assert analytics.describe_application(ApplicationName=name)["ApplicationDetail"]["ApplicationStatus"] == "RUNNING"

    # The answer, from the records as the stream holds them (ROWTIME is the arrival time).
    expected = {}
    for record in read_all(kinesis, source):
        trade = json.loads(record["Data"])
        window = round(record["ApproximateArrivalTimestamp"].timestamp() * 1000) // 2000
        low, high = expected.get((window, trade["TICKER_SYMBOL"]), (1e9, -1e9))
        expected[(window, trade["TICKER_SYMBOL"])] = (min(low, trade["PRICE"]), max(high, trade["PRICE"]))
    rows = wait_for_rows(kinesis, destination, len(expected))
    got = sorted((r["TICKER"], r["MIN_PRICE"], r["MAX_PRICE"]) for r in rows)
    assert got == sorted((t, float(lo), float(hi)) for (_, t), (lo, hi) in expected.items()), (got, expected)
    # The application's counters on /metrics, by its name.
    metrics = {}
    for line in scrape(endpoint, "/metrics").splitlines():
        if line.startswith("sluice_analytics_") and f'application="{name}"' in line:
            metrics[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
    assert metrics.get("sluice_analytics_input_records") == 400, metrics
    assert metrics.get("sluice_analytics_output_records") == len(expected), metrics
    assert metrics.get("sluice_analytics_input_processing_errors", 0) == 0, metrics
    assert "sluice_analytics_millis_behind_latest" in metrics, metrics
    # And under AWS/KinesisAnalytics, as KDA publishes them (sampled every 10 s).
    cloudwatch = client(endpoint, "cloudwatch")

    def records(flow):
        now = time.time()
        got = cloudwatch.get_metric_statistics(
            Namespace="AWS/KinesisAnalytics", MetricName="Records", Statistics=["Sum"], Period=3600,
            Dimensions=[{"Name": "Application", "Value": name}, {"Name": "Flow", "Value": flow}, {"Name": "Id", "Value": "1.1"}],
            StartTime=now - 900, EndTime=now + 60)
        return sum(p["Sum"] for p in got["Datapoints"])
    deadline = time.time() + 25
    while (records("Input"), records("Output")) != (400, len(expected)) and time.time() < deadline:
        time.sleep(1)
    assert (records("Input"), records("Output")) == (400, len(expected)), (records("Input"), records("Output"))
    analytics.stop_application(ApplicationName=name)
    assert analytics.describe_application(ApplicationName=name)["ApplicationDetail"]["ApplicationStatus"] == "READY"


SLIDING = """CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ticker_symbol VARCHAR(4), price DOUBLE, avg_price DOUBLE);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM ticker_symbol, price, AVG(price) OVER W1 AS avg_price
    FROM "SOURCE_SQL_STREAM_001"
    WINDOW W1 AS (PARTITION BY ticker_symbol RANGE INTERVAL '1' MINUTE PRECEDING);"""


def test_the_sliding_window_example_gives_each_records_minute_average(endpoint):
    kinesis, analytics = client(endpoint, "kinesis"), client(endpoint, "kinesisanalytics")
    source, destination = create_stream(kinesis, "trades"), create_stream(kinesis, "averages")
    put_trades(kinesis, source, 200)
    schema = analytics.discover_input_schema(
        ResourceARN=stream_arn(source), RoleARN=ROLE,
        InputStartingPositionConfiguration={"InputStartingPosition": "TRIM_HORIZON"})["InputSchema"]
    name = unique("sliding")
    analytics.create_application(ApplicationName=name, ApplicationCode=SLIDING,
                                 Inputs=[input_config(source, schema)], Outputs=[output_config(destination)])
    analytics.start_application(ApplicationName=name, InputConfigurations=[
        {"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "TRIM_HORIZON"}}])
    # The answer: per record, the mean price of its ticker's records of the minute up to it
    # (ROWTIME is the arrival time).
    trades = [(round(r["ApproximateArrivalTimestamp"].timestamp() * 1000), json.loads(r["Data"]))
              for r in read_all(kinesis, source)]
    expected = []
    for at, trade in trades:
        window = [t["PRICE"] for when, t in trades
                  if t["TICKER_SYMBOL"] == trade["TICKER_SYMBOL"] and at - 60_000 <= when <= at]
        expected.append((trade["TICKER_SYMBOL"], float(trade["PRICE"]), round(sum(window) / len(window), 9)))
    rows = wait_for_rows(kinesis, destination, len(expected))
    got = [(r["TICKER_SYMBOL"], r["PRICE"], round(r["AVG_PRICE"], 9)) for r in rows]
    assert sorted(got) == sorted(expected), (sorted(got)[:5], sorted(expected)[:5])
    analytics.stop_application(ApplicationName=name)


JOIN = """CREATE OR REPLACE STREAM "ORDERS" (ORDER_ID INTEGER, TICKER VARCHAR(4), AMOUNT INTEGER);
CREATE OR REPLACE STREAM "TRADES" (ORDER_ID INTEGER, TICKER VARCHAR(4), AMOUNT INTEGER);
CREATE OR REPLACE PUMP "ORDERS_PUMP" AS INSERT INTO "ORDERS"
    SELECT STREAM ORDER_ID, TICKER, AMOUNT FROM "SOURCE_SQL_STREAM_001" WHERE KIND = 'ORDER';
CREATE OR REPLACE PUMP "TRADES_PUMP" AS INSERT INTO "TRADES"
    SELECT STREAM ORDER_ID, TICKER, AMOUNT FROM "SOURCE_SQL_STREAM_001" WHERE KIND = 'TRADE';
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ORDER_TIME TIMESTAMP, ORDER_ID INTEGER,
    TICKER VARCHAR(4), ORDER_AMOUNT INTEGER, TRADE_AMOUNT INTEGER);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM ROWTIME AS ORDER_TIME, o.ORDER_ID, o.TICKER, o.AMOUNT AS ORDER_AMOUNT, t.AMOUNT AS TRADE_AMOUNT
    FROM "ORDERS" AS o
    JOIN "TRADES" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS t
    ON o.ORDER_ID = t.ORDER_ID;"""


def test_the_join_example_pairs_each_order_with_its_trades_of_the_minute_before(endpoint):
    kinesis, analytics = client(endpoint, "kinesis"), client(endpoint, "kinesisanalytics")
    source, destination = create_stream(kinesis, "orders"), create_stream(kinesis, "paired")
    # Orders and trades of ten order ids in one stream, put in four batches: a trade pairs
    # with the orders of its id put in its batch or a later one (within the minute), not
    # with those before it.
    for batch in range(4):
        records = []
        for i in range(batch * 30, batch * 30 + 30):
            kind = "ORDER" if i % 3 == 0 else "TRADE"
            event = {"KIND": kind, "ORDER_ID": i % 10, "TICKER": TICKERS[i % 4][0], "AMOUNT": i}
            records.append({"Data": json.dumps(event).encode(), "PartitionKey": str(i)})
        kinesis.put_records(StreamName=source, Records=records)
        time.sleep(0.3)
    schema = analytics.discover_input_schema(
        ResourceARN=stream_arn(source), RoleARN=ROLE,
        InputStartingPositionConfiguration={"InputStartingPosition": "TRIM_HORIZON"})["InputSchema"]
    name = unique("join")
    analytics.create_application(ApplicationName=name, ApplicationCode=JOIN,
                                 Inputs=[input_config(source, schema)], Outputs=[output_config(destination)])
    analytics.start_application(ApplicationName=name, InputConfigurations=[
        {"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "TRIM_HORIZON"}}])
    # The answer, from the records' arrival times (ROWTIME): each order with each trade of
    # its id that arrived in the minute up to it.
    events = [(round(r["ApproximateArrivalTimestamp"].timestamp() * 1000), json.loads(r["Data"]))
              for r in read_all(kinesis, source)]
    orders = [(at, e) for at, e in events if e["KIND"] == "ORDER"]
    trades = [(at, e) for at, e in events if e["KIND"] == "TRADE"]
    expected = sorted((o["ORDER_ID"], o["AMOUNT"], t["AMOUNT"]) for at, o in orders for when, t in trades
                      if o["ORDER_ID"] == t["ORDER_ID"] and at - 60_000 <= when <= at)
    assert 0 < len(expected) < len(orders) * len(trades) // 10, len(expected)
    rows = wait_for_rows(kinesis, destination, len(expected))
    got = sorted((r["ORDER_ID"], r["ORDER_AMOUNT"], r["TRADE_AMOUNT"]) for r in rows)
    assert got == expected, (len(got), len(expected), got[:5], expected[:5])
    analytics.stop_application(ApplicationName=name)


ANOMALY = """-- Creates a temporary stream.
CREATE OR REPLACE STREAM "TEMP_STREAM" (
        "heartRate"        INTEGER,
        "rateType"         varchar(20),
        "ANOMALY_SCORE"    DOUBLE);

-- Creates another stream for application output.
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
        "heartRate"        INTEGER,
        "rateType"         varchar(20),
        "ANOMALY_SCORE"    DOUBLE);

-- Compute an anomaly score for each record in the input stream
-- using Random Cut Forest
CREATE OR REPLACE PUMP "STREAM_PUMP" AS
   INSERT INTO "TEMP_STREAM"
      SELECT STREAM "heartRate", "rateType", ANOMALY_SCORE
      FROM TABLE(RANDOM_CUT_FOREST(
              CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001")));

-- Sort records by descending anomaly score, insert into output stream
CREATE OR REPLACE PUMP "OUTPUT_PUMP" AS
   INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM * FROM "TEMP_STREAM"
      ORDER BY FLOOR("TEMP_STREAM".ROWTIME TO SECOND), ANOMALY_SCORE DESC;"""


def test_the_anomaly_example_scores_the_injected_spikes_highest(endpoint):
    """The documentation's RANDOM_CUT_FOREST example, unchanged, over its heart-rate
    generator (60 to 100, NORMAL) with a few HIGH rates (150 to 200) injected."""
    kinesis, analytics = client(endpoint, "kinesis"), client(endpoint, "kinesisanalytics")
    source, destination = create_stream(kinesis, "heartrate"), create_stream(kinesis, "anomalies")
    errors = create_stream(kinesis, "errors")
    spikes = {250, 380, 520}
    # Two records that do not fit the schema: rows of the error stream, not scored.
    bad = [b'{"heartRate": "fast", "rateType": "NORMAL"}', b"not json"]
    kinesis.put_records(StreamName=source, Records=[{"Data": d, "PartitionKey": "bad"} for d in bad])
    for start in range(0, 600, 100):
        records = []
        for i in range(start, start + 100):
            rate = 150 + (i * 7) % 51 if i in spikes else 60 + (i * 37) % 41
            kind = "HIGH" if i in spikes else "NORMAL"
            data = json.dumps({"heartRate": rate, "rateType": kind, "id": i}).encode()
            records.append({"Data": data, "PartitionKey": str(i)})
        kinesis.put_records(StreamName=source, Records=records)
        time.sleep(0.3)
    schema = {"RecordFormat": {"RecordFormatType": "JSON",
                               "MappingParameters": {"JSONMappingParameters": {"RecordRowPath": "$"}}},
              "RecordColumns": [{"Name": "heartRate", "SqlType": "INTEGER", "Mapping": "$.heartRate"},
                                {"Name": "rateType", "SqlType": "VARCHAR(20)", "Mapping": "$.rateType"}]}
    name = unique("anomaly")
    analytics.create_application(ApplicationName=name, ApplicationCode=ANOMALY,
                                 Inputs=[input_config(source, schema)],
                                 Outputs=[output_config(destination), output_config(errors, "error_stream")])
    analytics.start_application(ApplicationName=name, InputConfigurations=[
        {"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "TRIM_HORIZON"}}])
    rows = wait_for_rows(kinesis, destination, 600)
    assert len(rows) == 600, len(rows)
    ranked = sorted(rows, key=lambda r: r["ANOMALY_SCORE"], reverse=True)
    assert all(r["rateType"] == "HIGH" for r in ranked[:len(spikes)]), ranked[:6]
    assert ranked[len(spikes) - 1]["ANOMALY_SCORE"] > ranked[len(spikes)]["ANOMALY_SCORE"], ranked[:6]
    # Within each second of arrival the output is ordered by score, highest first: a score
    # may rise from one row to the next only where a second ends.
    seconds = {round(r["ApproximateArrivalTimestamp"].timestamp() * 1000) // 1000 for r in read_all(kinesis, source)}
    rises = sum(1 for a, b in zip(rows, rows[1:]) if b["ANOMALY_SCORE"] > a["ANOMALY_SCORE"])
    assert rises <= len(seconds) - 1, (rises, len(seconds))
    failed = wait_for_rows(kinesis, errors, 2)
    assert sorted(r["DATA_ROW"] for r in failed) == sorted(d.decode() for d in bad), failed
    assert all(r["ERROR_LEVEL"] == "ERROR" and r["MESSAGE"] for r in failed), failed
    analytics.stop_application(ApplicationName=name)


REFERENCE = """CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
    ticker_symbol VARCHAR(4), "Company" varchar(20), sector VARCHAR(12), change DOUBLE, price DOUBLE);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
   SELECT STREAM ticker_symbol, "c"."Company", sector, change, price
   FROM "SOURCE_SQL_STREAM_001" LEFT JOIN "CompanyName" as "c"
   ON "SOURCE_SQL_STREAM_001".ticker_symbol = "c"."Ticker";"""

COMPANY_SCHEMA = {"RecordFormat": {"RecordFormatType": "CSV", "MappingParameters": {"CSVMappingParameters": {
                      "RecordRowDelimiter": "\n", "RecordColumnDelimiter": ","}}},
                  "RecordEncoding": "UTF-8",
                  "RecordColumns": [{"Name": "Ticker", "SqlType": "VARCHAR(64)"},
                                    {"Name": "Company", "SqlType": "VARCHAR(64)"}]}


def put_object(bucket, key, text):
    """An object in a bucket of the server's bucket directory (as `aws s3 cp` would put it in S3)."""
    path = os.path.join(BUCKET_DIR, bucket, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_the_reference_data_example_names_each_trades_company(endpoint):
    kinesis, analytics = client(endpoint, "kinesis"), client(endpoint, "kinesisanalytics")
    source, destination = create_stream(kinesis, "trades"), create_stream(kinesis, "named")
    bucket = unique("reference").lower()
    # The documentation's file, its header line and all.
    put_object(bucket, "TickerReference.csv", "Ticker, Company\nAMZN,Amazon\nASD, SomeCompanyA\nMMB, SomeCompanyB\n")
    schema = {"RecordFormat": {"RecordFormatType": "JSON"},
              "RecordColumns": [{"Name": name, "Mapping": f"$.{name}", "SqlType": sql_type} for name, sql_type in
                                [("TICKER_SYMBOL", "VARCHAR(4)"), ("SECTOR", "VARCHAR(16)"), ("CHANGE", "DOUBLE"),
                                 ("PRICE", "DOUBLE")]]}
    name = unique("reference")
    # The code names a table the application does not have yet.
    expect_error("CodeValidationException", analytics.create_application, ApplicationName=name,
                 ApplicationCode=REFERENCE, Inputs=[input_config(source, schema)])
    analytics.create_application(ApplicationName=name, Inputs=[input_config(source, schema)],
                                 Outputs=[output_config(destination)])
    table = {"TableName": "CompanyName", "ReferenceSchema": COMPANY_SCHEMA, "S3ReferenceDataSource": {
        "BucketARN": f"arn:aws:s3:::{bucket}", "FileKey": "TickerReference.csv", "ReferenceRoleARN": ROLE}}
    analytics.add_application_reference_data_source(ApplicationName=name, CurrentApplicationVersionId=1,
                                                     ReferenceDataSource=table)
    expect_error("LimitExceededException", analytics.add_application_reference_data_source, ApplicationName=name,
                 CurrentApplicationVersionId=2, ReferenceDataSource=dict(table, TableName="Other"))
    analytics.update_application(ApplicationName=name, CurrentApplicationVersionId=2,
                                 ApplicationUpdate={"ApplicationCodeUpdate": REFERENCE})
    detail = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]
    [described] = detail["ReferenceDataSourceDescriptions"]
    assert described["ReferenceId"] == "1.1" and described["TableName"] == "CompanyName", described
    assert described["S3ReferenceDataSourceDescription"] == table["S3ReferenceDataSource"], described
    assert [c["Name"] for c in described["ReferenceSchema"]["RecordColumns"]] == ["Ticker", "Company"], described
    analytics.start_application(ApplicationName=name, InputConfigurations=[
        {"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "TRIM_HORIZON"}}])
    put_trades(kinesis, source, 40)
    rows = wait_for_rows(kinesis, destination, 40)
    assert len(rows) == 40, rows
    for row in rows:
        assert row.get("Company") == ("Amazon" if row["TICKER_SYMBOL"] == "AMZN" else None), row

    # A new object, named by an update while the application runs: read when it starts again.
    put_object(bucket, "v2/TickerReference.csv", "AMZN,Amazon.com\nNVDA,NVIDIA\n")
    analytics.update_application(ApplicationName=name, CurrentApplicationVersionId=3, ApplicationUpdate={
        "ReferenceDataSourceUpdates": [{"ReferenceId": "1.1", "S3ReferenceDataSourceUpdate": {
            "FileKeyUpdate": "v2/TickerReference.csv"}}]})
    put_trades(kinesis, source, 40)
    rows = wait_for_rows(kinesis, destination, 80)
    assert len(rows) == 80, rows
    names = {"AMZN": "Amazon.com", "NVDA": "NVIDIA"}
    for row in rows[40:]:
        assert row.get("Company") == names.get(row["TICKER_SYMBOL"]), row

    # The code reads the table: it cannot go while the code does; a missing object stops a start.
    expect_error("CodeValidationException", analytics.delete_application_reference_data_source,
                 ApplicationName=name, CurrentApplicationVersionId=4, ReferenceId="1.1")
    analytics.stop_application(ApplicationName=name)
    analytics.update_application(ApplicationName=name, CurrentApplicationVersionId=4, ApplicationUpdate={
        "ReferenceDataSourceUpdates": [{"ReferenceId": "1.1", "S3ReferenceDataSourceUpdate": {
            "FileKeyUpdate": "missing.csv"}}]})
    error = expect_error("InvalidArgumentException", analytics.start_application, ApplicationName=name,
                         InputConfigurations=[{"Id": "1.1", "InputStartingPositionConfiguration": {
                             "InputStartingPosition": "LAST_STOPPED_POINT"}}])
    assert "missing.csv" in error.response["Error"]["Message"], error.response
    analytics.update_application(ApplicationName=name, CurrentApplicationVersionId=5,
                                 ApplicationUpdate={"ApplicationCodeUpdate": FILTER})
    analytics.delete_application_reference_data_source(ApplicationName=name, CurrentApplicationVersionId=6,
                                                       ReferenceId="1.1")
    detail = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]
    assert detail["ReferenceDataSourceDescriptions"] == [], detail


def test_policies_cover_the_streams_an_application_reads_and_the_application_tagged(endpoint):
    kinesis, admin = client(endpoint, "kinesis"), client(endpoint, "kinesisanalytics")
    apps = client(endpoint, "kinesisanalytics", key="AKIDAPPS")
    fenced, open_stream = create_stream(kinesis, "fenced"), create_stream(kinesis, "open")
    schema = {"RecordFormat": {"RecordFormatType": "JSON"},
              "RecordColumns": [{"Name": "PRICE", "Mapping": "$.PRICE", "SqlType": "DOUBLE"}]}
    # Who may not read a stream may not make an application read it, nor sample it.
    expect_error("AccessDeniedException", apps.create_application, ApplicationName=unique("reader"),
                 Inputs=[input_config(fenced, schema)])
    expect_error("AccessDeniedException", apps.discover_input_schema, ResourceARN=stream_arn(fenced), RoleARN=ROLE,
                 InputStartingPositionConfiguration={"InputStartingPosition": "TRIM_HORIZON"})
    own = unique("own")
    apps.create_application(ApplicationName=own, Inputs=[input_config(open_stream, schema)])
    # Tags are authorized on the application the ResourceARN names.
    guarded = unique("guarded")
    admin.create_application(ApplicationName=guarded)
    arn = lambda name: f"arn:aws:kinesisanalytics:us-east-1:{ACCOUNT}:application/{name}"
    apps.tag_resource(ResourceARN=arn(own), Tags=[{"Key": "k", "Value": "v"}])
    expect_error("AccessDeniedException", apps.tag_resource, ResourceARN=arn(guarded),
                 Tags=[{"Key": "k", "Value": "v"}])
    # Who may not read an object may not make it an application's reference table.
    table = {"TableName": "T", "ReferenceSchema": COMPANY_SCHEMA, "S3ReferenceDataSource": {
        "BucketARN": "arn:aws:s3:::fenced-bucket", "FileKey": "companies.csv", "ReferenceRoleARN": ROLE}}
    expect_error("AccessDeniedException", apps.add_application_reference_data_source, ApplicationName=own,
                 CurrentApplicationVersionId=1, ReferenceDataSource=table)
    # Nor point an application's reference at another object of a bucket it may not read.
    fenced_app = unique("fenced")
    admin.create_application(ApplicationName=fenced_app)
    admin.add_application_reference_data_source(ApplicationName=fenced_app, CurrentApplicationVersionId=1,
                                                ReferenceDataSource=table)
    expect_error("AccessDeniedException", apps.update_application, ApplicationName=fenced_app,
                 CurrentApplicationVersionId=2, ApplicationUpdate={"ReferenceDataSourceUpdates": [
                     {"ReferenceId": "1.1", "S3ReferenceDataSourceUpdate": {"FileKeyUpdate": "other.csv"}}]})
    # Nor read a delivery stream without firehose:DescribeDeliveryStream (it has no firehose:* at all).
    delivery = f"arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/any"
    expect_error("AccessDeniedException", apps.create_application, ApplicationName=unique("delivered"),
                 Inputs=[{"NamePrefix": "SOURCE_SQL_STREAM", "InputSchema": schema,
                          "KinesisFirehoseInput": {"ResourceARN": delivery, "RoleARN": ROLE}}])
    # A name of dots only is no application's.
    expect_error("InvalidArgumentException", admin.create_application, ApplicationName="..")


def test_the_filter_example_and_an_update_while_running(endpoint):
    kinesis, analytics = client(endpoint, "kinesis"), client(endpoint, "kinesisanalytics")
    source, destination = create_stream(kinesis, "trades"), create_stream(kinesis, "tech")
    put_trades(kinesis, source, 40)
    schema = analytics.discover_input_schema(
        ResourceARN=stream_arn(source), RoleARN=ROLE,
        InputStartingPositionConfiguration={"InputStartingPosition": "TRIM_HORIZON"})["InputSchema"]
    name = unique("filter")
    analytics.create_application(ApplicationName=name, ApplicationCode=FILTER)
    detail = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]
    assert detail["ApplicationVersionId"] == 1 and detail["InputDescriptions"] == [], detail
    analytics.add_application_input(ApplicationName=name, CurrentApplicationVersionId=1,
                                    Input=input_config(source, schema))
    analytics.add_application_output(ApplicationName=name, CurrentApplicationVersionId=2,
                                     Output=output_config(destination))
    detail = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]
    assert detail["ApplicationVersionId"] == 3, detail
    assert detail["InputDescriptions"][0]["InAppStreamNames"] == ["SOURCE_SQL_STREAM_001"], detail
    assert detail["OutputDescriptions"][0]["KinesisStreamsOutputDescription"]["RoleARN"] == ROLE, detail
    analytics.start_application(ApplicationName=name, InputConfigurations=[
        {"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "TRIM_HORIZON"}}])
    rows = wait_for_rows(kinesis, destination, 20)
    assert len(rows) == 20 and {r["TICKER_SYMBOL"] for r in rows} == {"NVDA", "MSFT"}, rows

    # A stale version is refused; the right one changes the code of the running application,
    # which goes on from where it was.
    expect_error("ConcurrentModificationException", analytics.update_application, ApplicationName=name,
                 CurrentApplicationVersionId=1, ApplicationUpdate={"ApplicationCodeUpdate": FILTER})
    energy = FILTER.replace("'%TECH%'", "'%ENERGY%'")
    analytics.update_application(ApplicationName=name, CurrentApplicationVersionId=3,
                                 ApplicationUpdate={"ApplicationCodeUpdate": energy})
    detail = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]
    assert (detail["ApplicationVersionId"], detail["ApplicationStatus"]) == (4, "RUNNING"), detail
    put_trades(kinesis, source, 40)
    rows = wait_for_rows(kinesis, destination, 30)
    assert len(rows) == 30 and sum(r["TICKER_SYMBOL"] == "XOM" for r in rows) == 10, rows

    created = detail["CreateTimestamp"]
    analytics.stop_application(ApplicationName=name)
    analytics.delete_application(ApplicationName=name, CreateTimestamp=created)
    expect_error("ResourceNotFoundException", analytics.describe_application, ApplicationName=name)


def delivered_lines(bucket, prefix):
    """The lines of the objects a delivery stream delivered into a bucket of the bucket directory."""
    lines = []
    for directory, _, files in os.walk(os.path.join(BUCKET_DIR, bucket, prefix)):
        for name in files:
            if "#" not in name:  # the local store's file being written, renamed into place when whole
                with open(os.path.join(directory, name)) as f:
                    lines.extend(f.read().splitlines())
    return lines


def test_delivery_streams_as_input_and_output(endpoint):
    firehose, analytics = client(endpoint, "firehose"), client(endpoint, "kinesisanalytics")
    source, target, bucket = unique("ticks"), unique("dear"), unique("lake")
    for name in (source, target):
        firehose.create_delivery_stream(DeliveryStreamName=name, DeliveryStreamType="DirectPut",
                                        ExtendedS3DestinationConfiguration={
                                            "RoleARN": ROLE, "BucketARN": f"arn:aws:s3:::{bucket}", "Prefix": f"{name}/",
                                            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
                                            "CompressionFormat": "UNCOMPRESSED"})
    delivery_arn = lambda n: f"arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/{n}"
    schema = {"RecordFormat": {"RecordFormatType": "JSON"},
              "RecordColumns": [{"Name": "TICKER_SYMBOL", "Mapping": "$.TICKER_SYMBOL", "SqlType": "VARCHAR(4)"},
                                {"Name": "PRICE", "Mapping": "$.PRICE", "SqlType": "INTEGER"}]}
    code = """CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ticker_symbol VARCHAR(4), price INTEGER);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM ticker_symbol, price FROM "SOURCE_SQL_STREAM_001" WHERE price >= 50;"""
    name = unique("delivered")
    analytics.create_application(
        ApplicationName=name, ApplicationCode=code,
        Inputs=[{"NamePrefix": "SOURCE_SQL_STREAM", "InputSchema": schema,
                 "KinesisFirehoseInput": {"ResourceARN": delivery_arn(source), "RoleARN": ROLE}}],
        Outputs=[{"Name": "DESTINATION_SQL_STREAM", "DestinationSchema": {"RecordFormatType": "JSON"},
                  "KinesisFirehoseOutput": {"ResourceARN": delivery_arn(target), "RoleARN": ROLE}}])
    detail = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]
    described_input = detail["InputDescriptions"][0]["KinesisFirehoseInputDescription"]
    assert described_input == {"ResourceARN": delivery_arn(source), "RoleARN": ROLE}, detail
    described_output = detail["OutputDescriptions"][0]["KinesisFirehoseOutputDescription"]
    assert described_output == {"ResourceARN": delivery_arn(target), "RoleARN": ROLE}, detail
    analytics.start_application(ApplicationName=name, InputConfigurations=[
        {"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "TRIM_HORIZON"}}])
    trades = [{"TICKER_SYMBOL": TICKERS[i % 4][0], "PRICE": (i * 37) % 100} for i in range(200)]
    firehose.put_record_batch(DeliveryStreamName=source, Records=[{"Data": json.dumps(t).encode()} for t in trades])
    expected = sorted((t["TICKER_SYMBOL"], t["PRICE"]) for t in trades if t["PRICE"] >= 50)
    deadline = time.time() + 30
    while True:
        rows = [json.loads(line) for line in delivered_lines(bucket, f"{target}/")]
        if len(rows) >= len(expected) or time.time() > deadline:
            break
        time.sleep(0.2)
    time.sleep(1.5)  # none more may come
    rows = [json.loads(line) for line in delivered_lines(bucket, f"{target}/")]
    assert sorted((r["TICKER_SYMBOL"], r["PRICE"]) for r in rows) == expected, rows
    analytics.stop_application(ApplicationName=name)
    # A delivery stream that does not exist is refused when it is named; one that reads a
    # Kinesis stream is neither an input (read that stream) nor an output (it takes no puts).
    expect_error("InvalidArgumentException", analytics.create_application, ApplicationName=unique("nowhere"),
                 Inputs=[{"NamePrefix": "SOURCE_SQL_STREAM", "InputSchema": schema,
                          "KinesisFirehoseInput": {"ResourceARN": delivery_arn("none-such"), "RoleARN": ROLE}}])
    kinesis = client(endpoint, "kinesis")
    stream = create_stream(kinesis, "feed")
    reader = unique("reader")
    firehose.create_delivery_stream(
        DeliveryStreamName=reader, DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": stream_arn(stream), "RoleARN": ROLE},
        ExtendedS3DestinationConfiguration={"RoleARN": ROLE, "BucketARN": f"arn:aws:s3:::{bucket}",
                                            "Prefix": f"{reader}/", "CompressionFormat": "UNCOMPRESSED"})
    error = expect_error("InvalidArgumentException", analytics.create_application, ApplicationName=unique("reads"),
                         Inputs=[{"NamePrefix": "SOURCE_SQL_STREAM", "InputSchema": schema,
                                  "KinesisFirehoseInput": {"ResourceARN": delivery_arn(reader), "RoleARN": ROLE}}])
    assert "read that stream instead" in error.response["Error"]["Message"], error.response
    writes = unique("writes")
    analytics.create_application(
        ApplicationName=writes, ApplicationCode=code,
        Inputs=[{"NamePrefix": "SOURCE_SQL_STREAM", "InputSchema": schema,
                 "KinesisFirehoseInput": {"ResourceARN": delivery_arn(source), "RoleARN": ROLE}}],
        Outputs=[{"Name": "DESTINATION_SQL_STREAM", "DestinationSchema": {"RecordFormatType": "JSON"},
                  "KinesisFirehoseOutput": {"ResourceARN": delivery_arn(reader), "RoleARN": ROLE}}])
    error = expect_error("InvalidArgumentException", analytics.start_application, ApplicationName=writes,
                         InputConfigurations=[{"Id": "1.1", "InputStartingPositionConfiguration": {
                             "InputStartingPosition": "NOW"}}])
    assert "reads a Kinesis stream" in error.response["Error"]["Message"], error.response


def test_input_parallelism_makes_numbered_input_streams(endpoint):
    kinesis, analytics = client(endpoint, "kinesis"), client(endpoint, "kinesisanalytics")
    source = create_stream(kinesis, "trades")
    schema = {"RecordFormat": {"RecordFormatType": "JSON"},
              "RecordColumns": [{"Name": "PRICE", "Mapping": "$.PRICE", "SqlType": "DOUBLE"}]}
    parallel = dict(input_config(source, schema), InputParallelism={"Count": 2})
    name = unique("parallel")
    analytics.create_application(ApplicationName=name, Inputs=[parallel])
    [described] = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]["InputDescriptions"]
    assert described["InAppStreamNames"] == ["SOURCE_SQL_STREAM_001", "SOURCE_SQL_STREAM_002"], described
    assert described["InputParallelism"] == {"Count": 2}, described
    analytics.update_application(ApplicationName=name, CurrentApplicationVersionId=1, ApplicationUpdate={
        "InputUpdates": [{"InputId": "1.1", "InputParallelismUpdate": {"CountUpdate": 3}}]})
    [described] = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]["InputDescriptions"]
    assert described["InAppStreamNames"][-1] == "SOURCE_SQL_STREAM_003", described
    expect_error("InvalidArgumentException", analytics.create_application, ApplicationName=unique("parallel"),
                 Inputs=[dict(parallel, InputParallelism={"Count": 65})])


def test_listing_and_tags(endpoint):
    analytics = client(endpoint, "kinesisanalytics")
    names = sorted(unique("listed") for _ in range(3))
    for name in names:
        analytics.create_application(ApplicationName=name, Tags=[{"Key": "team", "Value": "data"}])
    page = analytics.list_applications(Limit=2, ExclusiveStartApplicationName=names[0])
    assert [s["ApplicationName"] for s in page["ApplicationSummaries"]] == names[1:], page
    arn = page["ApplicationSummaries"][0]["ApplicationARN"]
    assert arn == f"arn:aws:kinesisanalytics:us-east-1:{ACCOUNT}:application/{names[1]}", arn
    analytics.tag_resource(ResourceARN=arn, Tags=[{"Key": "env", "Value": "test"}])
    analytics.untag_resource(ResourceARN=arn, TagKeys=["team"])
    assert analytics.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "env", "Value": "test"}]


def test_bad_input_gets_kdas_errors(endpoint):
    kinesis, analytics = client(endpoint, "kinesis"), client(endpoint, "kinesisanalytics")
    source = create_stream(kinesis, "trades")
    schema = {"RecordFormat": {"RecordFormatType": "JSON",
                               "MappingParameters": {"JSONMappingParameters": {"RecordRowPath": "$"}}},
              "RecordColumns": [{"Name": name, "Mapping": f"$.{name}", "SqlType": sql_type} for name, sql_type in
                                [("TICKER_SYMBOL", "VARCHAR(4)"), ("SECTOR", "VARCHAR(16)"), ("CHANGE", "DOUBLE"),
                                 ("PRICE", "DOUBLE")]]}
    bad_sql = FILTER.replace("ticker_symbol, change, price\n", "nope, change, price\n")
    error = expect_error("CodeValidationException", analytics.create_application, ApplicationName=unique("bad"),
                         ApplicationCode=bad_sql, Inputs=[input_config(source, schema)])
    message = error.response["Error"]["Message"]
    assert 'No field named "NOPE"' in message and "line 2" in message, message
    expect_error("InvalidArgumentException", analytics.create_application, ApplicationName=unique("bad"),
                 Inputs=[input_config("none-such", schema)])
    bad_type = json.loads(json.dumps(schema))
    bad_type["RecordColumns"][3]["SqlType"] = "WIBBLE"
    expect_error("InvalidArgumentException", analytics.create_application, ApplicationName=unique("bad"),
                 Inputs=[input_config(source, bad_type)])
    name = unique("app")
    analytics.create_application(ApplicationName=name)
    expect_error("ResourceInUseException", analytics.create_application, ApplicationName=name)
    expect_error("InvalidArgumentException", analytics.start_application, ApplicationName=name,
                 InputConfigurations=[])
    # "b" is no S3 bucket name (3 to 63 characters).
    expect_error("InvalidArgumentException", analytics.add_application_reference_data_source,
                 ApplicationName=name, CurrentApplicationVersionId=1,
                 ReferenceDataSource={"TableName": "T", "S3ReferenceDataSource": {
                     "BucketARN": "arn:aws:s3:::b", "FileKey": "k", "ReferenceRoleARN": ROLE},
                     "ReferenceSchema": schema})
    expect_error("ResourceNotFoundException", analytics.describe_application, ApplicationName="none-such")
    expect_error("UnableToDetectSchemaException", analytics.discover_input_schema,
                 ResourceARN=stream_arn(source), RoleARN=ROLE,
                 InputStartingPositionConfiguration={"InputStartingPosition": "TRIM_HORIZON"})


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
