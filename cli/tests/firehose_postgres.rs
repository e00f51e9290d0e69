//! Firehose's Redshift destination through `sluice serve`, loading into a real PostgreSQL
//! server started by the test (Debian's; firehose/tests/support/postgres.rs), with boto3 as
//! the client (cli/tests/clients/firehose_postgres_suite.py).

mod common;

#[path = "../../firehose/tests/support/postgres.rs"]
mod postgres;

use common::TestServer;

#[test]
fn records_become_rows_of_a_postgresql_table_exactly_once() {
    if !common::needs_python_clients() {
        return;
    }
    let postgres = postgres::Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let buckets = dir.path().join("buckets");
    let server = TestServer::start(
        &dir.path().join("data"),
        &["--firehose-bucket-dir", buckets.to_str().unwrap()],
    );
    let psql = postgres.psql().get_program().to_owned();
    common::run_suite_with(
        &server.endpoint(),
        "firehose_postgres_suite.py",
        &[
            buckets.to_str().unwrap(),
            psql.to_str().unwrap(),
            &postgres.port.to_string(),
        ],
    );
}
