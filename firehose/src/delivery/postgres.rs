//! The PostgreSQL target (Firehose's Redshift destination): a flush is staged as an object
//! in the bucket, then loaded with `COPY ... FROM STDIN` in one transaction that also
//! records the object's key in `sluice_firehose_loads`. A load whose answer was lost (or a
//! restart after it) finds the key there and does not load again, so each staged object's
//! rows are in the table exactly once. docs/design/firehose.md, "PostgreSQL".

use super::Interrupted;
use super::retry::{Failure, Refused, retrying};
use crate::spec::PostgresTable;
use std::time::Duration;
use tokio::sync::watch;

/// The table that records which staged objects are loaded.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
const LOADS_TABLE: &str = "sluice_firehose_loads";

/// A delivery stream's database.
pub(super) struct Database {
    spec: PostgresTable,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    delivery_stream: String,
    stop: watch::Receiver<bool>,
}

impl Database {
    pub(super) fn new(
        spec: &PostgresTable,
        delivery_stream: &str,
        stop: watch::Receiver<bool>,
    ) -> Database {
        Database {
            spec: spec.clone(),
            delivery_stream: delivery_stream.to_owned(),
            stop,
        }
    }

    /// Loads the staged object `key` (its records, uncompressed, in `data`) until the
    /// database takes it or the retry duration is over: the attempts it took, or why not.
    pub(super) async fn load(
        &self,
        key: &str,
        data: &[u8],
        records: u64,
    ) -> Result<Result<u32, Failure>, Interrupted> {
        let retry = Duration::from_millis(self.spec.retry_ms);
        retrying(retry, &self.stop, || self.attempt(key, data, records)).await
    }

    #[cfg(not(feature = "postgres"))]
    async fn attempt(&self, _key: &str, _data: &[u8], _records: u64) -> Result<(), Refused> {
        Err(Refused::again(
            "Redshift.ConnectionFailed",
            "sluice-firehose was built without its `postgres` feature.",
        ))
    }

    /// One load, in one transaction: nothing when the key is recorded as loaded already.
    #[cfg(feature = "postgres")]
    async fn attempt(&self, key: &str, data: &[u8], records: u64) -> Result<(), Refused> {
        let (mut client, connection) =
            tokio_postgres::connect(&self.spec.url, tokio_postgres::NoTls)
                .await
                .map_err(refused)?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {LOADS_TABLE} (object_key text PRIMARY KEY, \
                 delivery_stream text NOT NULL, records bigint NOT NULL, \
                 loaded_at timestamptz NOT NULL DEFAULT now())"
            ))
            .await
            .map_err(refused)?;
        let transaction = client.transaction().await.map_err(refused)?;
        let find = format!("SELECT 1 FROM {LOADS_TABLE} WHERE object_key = $1");
        if transaction
            .query_opt(&find, &[&key])
            .await
            .map_err(refused)?
            .is_some()
        {
            return Ok(());
        }
        self.copy(&transaction, data).await.map_err(refused)?;
        let record = format!(
            "INSERT INTO {LOADS_TABLE} (object_key, delivery_stream, records) VALUES ($1, $2, $3)"
        );
        let count = i64::try_from(records).unwrap_or(i64::MAX);
        match transaction
            .execute(&record, &[&key, &self.delivery_stream, &count])
            .await
        {
            // Another transaction loaded this object meanwhile (one a stop abandoned, say):
            // this one's rows go with its rollback.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                return Ok(());
            }
            Err(e) => return Err(refused(e)),
            Ok(_) => {}
        }
        transaction.commit().await.map_err(refused)
    }

    /// `data` into the table, as the format reads it. JSON records go through a temporary
    /// one-column table (CSV with a quote and a delimiter JSON text never holds unescaped),
    /// then into the table by column name (`json_populate_record`).
    #[cfg(feature = "postgres")]
    async fn copy(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        data: &[u8],
    ) -> Result<(), tokio_postgres::Error> {
        use crate::spec::CopyFormat;
        let (table, columns) = (&self.spec.table, &self.spec.columns);
        let listed = if columns.is_empty() {
            String::new()
        } else {
            format!(" ({})", columns.join(", "))
        };
        match self.spec.format {
            CopyFormat::Text { delimiter } => {
                let delimiter = literal(delimiter);
                let copy = format!(
                    "COPY {table}{listed} FROM STDIN WITH (FORMAT text, DELIMITER {delimiter})"
                );
                copy_in(transaction, &copy, data).await
            }
            CopyFormat::Csv { delimiter } => {
                let delimiter = literal(delimiter);
                let copy = format!(
                    "COPY {table}{listed} FROM STDIN WITH (FORMAT csv, DELIMITER {delimiter})"
                );
                copy_in(transaction, &copy, data).await
            }
            CopyFormat::JsonAuto => {
                transaction
                    .batch_execute(
                        "CREATE TEMP TABLE sluice_firehose_json (doc json) ON COMMIT DROP",
                    )
                    .await?;
                let copy = "COPY sluice_firehose_json (doc) FROM STDIN \
                            WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')";
                copy_in(transaction, copy, data).await?;
                let selected = if columns.is_empty() {
                    "r.*".to_owned()
                } else {
                    columns
                        .iter()
                        .map(|c| format!("r.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                transaction
                    .batch_execute(&format!(
                        "INSERT INTO {table}{listed} SELECT {selected} FROM sluice_firehose_json, \
                         json_populate_record(NULL::{table}, doc) AS r WHERE doc IS NOT NULL"
                    ))
                    .await
            }
        }
    }
}

/// COPY `data` in through `statement`.
#[cfg(feature = "postgres")]
async fn copy_in(
    transaction: &tokio_postgres::Transaction<'_>,
    statement: &str,
    data: &[u8],
) -> Result<(), tokio_postgres::Error> {
    use futures_util::SinkExt;
    let sink = transaction.copy_in::<_, bytes::Bytes>(statement).await?;
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::copy_from_slice(data)).await?;
    sink.finish().await.map(|_| ())
}

/// A one-character SQL string literal (`E'\t'` for a tab).
#[cfg(feature = "postgres")]
fn literal(c: char) -> String {
    match c {
        '\t' => "E'\\t'".to_owned(),
        '\'' => "''''".to_owned(),
        c => format!("'{c}'"),
    }
}

/// A database error as Firehose's Redshift error codes name it; every one is worth another
/// attempt (a table made, a column added, a server back).
#[cfg(feature = "postgres")]
fn refused(error: tokio_postgres::Error) -> Refused {
    use tokio_postgres::error::SqlState;
    let code = match error.code() {
        None => "Redshift.ConnectionFailed",
        Some(state) if state.code().starts_with("28") => "Redshift.AuthenticationFailed",
        Some(&SqlState::UNDEFINED_TABLE) => "Redshift.TableNotFound",
        Some(&SqlState::UNDEFINED_COLUMN) => "Redshift.MissingColumn",
        Some(_) => "Redshift.DataLoadFailed",
    };
    let message = match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => error.to_string(),
    };
    Refused::again(code, message)
}

/// The tests' PostgreSQL server (shared with tests/postgres.rs).
#[cfg(all(test, feature = "postgres"))]
#[path = "../../tests/support/postgres.rs"]
mod support;

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;
    use crate::spec::CopyFormat;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_object_is_loaded_once_however_often_and_however_concurrently_it_is_loaded() {
        let postgres = support::Postgres::start();
        postgres.query("CREATE TABLE t (id int)");
        let (_stop, stopped) = watch::channel(false);
        let spec = PostgresTable {
            url: postgres.url(),
            table: "t".into(),
            columns: Vec::new(),
            format: CopyFormat::JsonAuto,
            retry_ms: 0,
        };
        let database = Database::new(&spec, "s", stopped);
        let rows = b"{\"id\":1}\n{\"id\":2}\n";
        for _ in 0..3 {
            let loaded = database
                .load("k1", rows, 2)
                .await
                .ok()
                .expect("not stopped");
            assert!(loaded.is_ok(), "{:?}", loaded.err().map(|f| f.message));
        }
        let (a, b) = tokio::join!(database.load("k2", rows, 2), database.load("k2", rows, 2));
        for outcome in [a, b] {
            let loaded = outcome.ok().expect("not stopped");
            assert!(loaded.is_ok(), "{:?}", loaded.err().map(|f| f.message));
        }
        assert_eq!(postgres.query("SELECT count(*) FROM t"), ["4"]);
        assert_eq!(
            postgres.query("SELECT object_key, records FROM sluice_firehose_loads ORDER BY 1"),
            ["k1|2", "k2|2"]
        );
        // A bad record fails the whole load: nothing of it is in the table.
        let bad = database
            .load("k3", b"{\"id\":3}\nnot json\n", 2)
            .await
            .ok()
            .expect("not stopped");
        let failure = bad.expect_err("a bad record fails the load");
        assert_eq!(
            (failure.code, failure.attempts),
            ("Redshift.DataLoadFailed", 1)
        );
        assert_eq!(postgres.query("SELECT count(*) FROM t"), ["4"]);
    }
}
