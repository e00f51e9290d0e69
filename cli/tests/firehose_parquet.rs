//! Firehose's record format conversion through `sluice serve` (the `parquet` feature; CI
//! runs it in a step of its own): boto3 creates a delivery stream converting JSON to Parquet
//! by a Glue table kept in the server's Glue directory, and pyarrow reads the objects back
//! (cli/tests/clients/firehose_parquet_suite.py).

mod common;

use common::TestServer;
use sluice_storage::testing::{needs, runs};

#[test]
fn json_records_are_delivered_as_parquet_that_pyarrow_reads() {
    let pyarrow = runs("python3", &["-c", "import pyarrow"]);
    if !(common::needs_python_clients()
        && needs(
            pyarrow,
            "pyarrow",
            "run scripts/setup (cli/tests/clients/requirements.txt)",
        ))
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let buckets = dir.path().join("buckets");
    let glue = dir.path().join("glue");
    std::fs::create_dir_all(glue.join("analytics")).unwrap();
    // As `aws glue get-table --database-name analytics --name clicks` prints it.
    let table = serde_json::json!({"Table": {
        "Name": "clicks", "DatabaseName": "analytics",
        "StorageDescriptor": {"Columns": [
            {"Name": "id", "Type": "bigint"}, {"Name": "page", "Type": "string"},
            {"Name": "ms", "Type": "double"}, {"Name": "ok", "Type": "boolean"},
            {"Name": "at", "Type": "timestamp"}, {"Name": "day", "Type": "date"},
            {"Name": "price", "Type": "decimal(10,2)"}
        ]}
    }});
    std::fs::write(glue.join("analytics/clicks.json"), table.to_string()).unwrap();
    let server = TestServer::start(
        &dir.path().join("data"),
        &[
            "--firehose-bucket-dir",
            buckets.to_str().unwrap(),
            "--firehose-glue-dir",
            glue.to_str().unwrap(),
        ],
    );
    common::run_suite_with(
        &server.endpoint(),
        "firehose_parquet_suite.py",
        &[buckets.to_str().unwrap()],
    );
}
