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

/// Bounds on one load attempt: connecting, each statement, each lock wait, the whole.
#[cfg(feature = "postgres")]
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
#[cfg(feature = "postgres")]
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);
#[cfg(feature = "postgres")]
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);
#[cfg(feature = "postgres")]
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(600);

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
        failed: impl FnMut(&Refused),
    ) -> Result<Result<u32, Failure>, Interrupted> {
        let retry = Duration::from_millis(self.spec.retry_ms);
        retrying(retry, &self.stop, failed, || {
            self.attempt(key, data, records)
        })
        .await
    }

    #[cfg(not(feature = "postgres"))]
    async fn attempt(&self, _key: &str, _data: &[u8], _records: u64) -> Result<(), Refused> {
        Err(Refused::again(
            "Redshift.ConnectionFailed",
            "sluice-firehose was built without its `postgres` feature.",
        ))
    }

    /// One load, in one transaction: nothing when the key is recorded as loaded already.
    /// The records are made into COPY's input first (a record that cannot be is refused
    /// for good: no attempt would load it). An attempt is bounded: connecting, each
    /// statement, each lock wait, and the whole attempt; one abandoned (a timeout, a stop)
    /// is cancelled on the server, so its transaction rolls back and its locks go.
    #[cfg(feature = "postgres")]
    async fn attempt(&self, key: &str, data: &[u8], records: u64) -> Result<(), Refused> {
        let input = copy_input(self.spec.format, data)?;
        let mut config: tokio_postgres::Config = self.spec.url.parse().map_err(refused)?;
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives_idle(Duration::from_secs(30));
        let (mut client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(refused)?;
        let mut guard = Abandoned {
            token: Some(client.cancel_token()),
            connection: tokio::spawn(connection),
        };
        let loaded = tokio::time::timeout(
            ATTEMPT_TIMEOUT,
            self.transaction(&mut client, key, &input, records),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Refused::again(
                "Redshift.ConnectionFailed",
                format!("The load did not finish within {ATTEMPT_TIMEOUT:?}."),
            ))
        });
        if loaded.is_ok() {
            guard.token = None;
        }
        loaded
    }

    #[cfg(feature = "postgres")]
    async fn transaction(
        &self,
        client: &mut tokio_postgres::Client,
        key: &str,
        input: &[u8],
        records: u64,
    ) -> Result<(), Refused> {
        // Created when missing only: a role with INSERT and SELECT on an existing table
        // (no CREATE on the schema) loads.
        let exists = client
            .query_one(
                &format!("SELECT to_regclass('{LOADS_TABLE}') IS NOT NULL"),
                &[],
            )
            .await
            .map_err(refused)?;
        if !exists.get::<_, bool>(0) {
            client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {LOADS_TABLE} (object_key text PRIMARY KEY, \
                     delivery_stream text NOT NULL, records bigint NOT NULL, \
                     loaded_at timestamptz NOT NULL DEFAULT now())"
                ))
                .await
                .map_err(refused)?;
        }
        let transaction = client.transaction().await.map_err(refused)?;
        transaction
            .batch_execute(&format!(
                "SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
                STATEMENT_TIMEOUT.as_millis(),
                LOCK_TIMEOUT.as_millis()
            ))
            .await
            .map_err(refused)?;
        let find = format!("SELECT 1 FROM {LOADS_TABLE} WHERE object_key = $1");
        if transaction
            .query_opt(&find, &[&key])
            .await
            .map_err(refused)?
            .is_some()
        {
            return Ok(());
        }
        self.copy(&transaction, input).await.map_err(refused)?;
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

    /// COPY's input into the table, as the format reads it. JSON records go through a
    /// temporary one-column table (CSV with a quote and a delimiter compact JSON never
    /// holds), then into the table by column name (`json_populate_record`). Identifiers are
    /// quoted, lower-cased as Redshift folds them (so `order` or `user` are column names).
    #[cfg(feature = "postgres")]
    async fn copy(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        input: &[u8],
    ) -> Result<(), tokio_postgres::Error> {
        use crate::spec::CopyFormat;
        let table = self
            .spec
            .table
            .split('.')
            .map(quoted)
            .collect::<Vec<_>>()
            .join(".");
        let columns: Vec<String> = self.spec.columns.iter().map(|c| quoted(c)).collect();
        let listed = if columns.is_empty() {
            String::new()
        } else {
            format!(" ({})", columns.join(", "))
        };
        let (format, delimiter) = match self.spec.format {
            CopyFormat::Text { delimiter } => ("text", delimiter),
            CopyFormat::Csv { delimiter } => ("csv", delimiter),
            CopyFormat::JsonAuto => {
                transaction
                    .batch_execute(
                        "CREATE TEMP TABLE sluice_firehose_json (doc json) ON COMMIT DROP",
                    )
                    .await?;
                let copy = "COPY sluice_firehose_json (doc) FROM STDIN \
                            WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')";
                copy_in(transaction, copy, input).await?;
                let selected = if columns.is_empty() {
                    "r.*".to_owned()
                } else {
                    columns
                        .iter()
                        .map(|c| format!("r.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return transaction
                    .batch_execute(&format!(
                        "INSERT INTO {table}{listed} SELECT {selected} FROM sluice_firehose_json, \
                         json_populate_record(NULL::{table}, doc) AS r WHERE doc IS NOT NULL"
                    ))
                    .await;
            }
        };
        let delimiter = literal(delimiter);
        let copy = format!(
            "COPY {table}{listed} FROM STDIN WITH (FORMAT {format}, DELIMITER {delimiter})"
        );
        copy_in(transaction, &copy, input).await
    }
}

/// An attempt's connection: when the attempt is abandoned (dropped before it loaded), the
/// statement under way is cancelled on the server and the connection closed.
#[cfg(feature = "postgres")]
struct Abandoned {
    token: Option<tokio_postgres::CancelToken>,
    connection: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
}

#[cfg(feature = "postgres")]
impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            tokio::spawn(async move {
                let _ = token.cancel_query(tokio_postgres::NoTls).await;
            });
        }
        self.connection.abort();
    }
}

/// An identifier quoted, lower-cased as an unquoted one would be (it was checked to be
/// `[A-Za-z_][A-Za-z0-9_$]*`, so it holds no quote).
#[cfg(feature = "postgres")]
fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.to_ascii_lowercase())
}

#[cfg(feature = "postgres")]
/// The staged records as COPY reads them, refused for good when they cannot be:
/// - JSON: each JSON object (records may be one after another or span lines) as one compact
///   line; anything else in the data is refused;
/// - text: Redshift's text format, where a backslash is a character (no `ESCAPE`), while
///   PostgreSQL's escapes with it: every backslash doubled, but a field that is exactly
///   `\N` (null);
/// - every format: no line may be `\.`, which ends COPY's input early (PostgreSQL up to 17
///   would drop the rest of the records without an error).
fn copy_input(format: crate::spec::CopyFormat, data: &[u8]) -> Result<Vec<u8>, Refused> {
    use crate::spec::CopyFormat;
    let refuse = |message: String| Refused {
        code: "Redshift.DataLoadFailed",
        message,
        retry: false,
    };
    match format {
        CopyFormat::JsonAuto => {
            let mut out = Vec::with_capacity(data.len());
            for value in serde_json::Deserializer::from_slice(data).into_iter::<serde_json::Value>()
            {
                let value = value.map_err(|e| refuse(format!("A record is not JSON: {e}.")))?;
                if !value.is_object() {
                    return Err(refuse(format!("A record is not a JSON object: {value}.")));
                }
                serde_json::to_writer(&mut out, &value).expect("JSON into a Vec");
                out.push(b'\n');
            }
            Ok(out)
        }
        CopyFormat::Text { delimiter } => {
            let mut out = Vec::with_capacity(data.len() + data.len() / 16);
            let mut field = [0; 4];
            let delimiter = delimiter.encode_utf8(&mut field).as_bytes().to_vec();
            for line in lines(data) {
                end_marker(line).map_err(refuse)?;
                for (i, value) in split(line, &delimiter).enumerate() {
                    if i > 0 {
                        out.extend_from_slice(&delimiter);
                    }
                    if value == b"\\N" {
                        out.extend_from_slice(value);
                    } else {
                        for &byte in value {
                            if byte == b'\\' {
                                out.push(b'\\');
                            }
                            out.push(byte);
                        }
                    }
                }
                out.push(b'\n');
            }
            Ok(out)
        }
        CopyFormat::Csv { .. } => {
            for line in lines(data) {
                end_marker(line).map_err(refuse)?;
            }
            Ok(data.to_vec())
        }
    }
}

#[cfg(feature = "postgres")]
/// The lines of `data` (without their `\n`; a last line without one included).
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    data.split(|&b| b == b'\n')
        .filter(move |_| !data.is_empty())
}

#[cfg(feature = "postgres")]
fn end_marker(line: &[u8]) -> Result<(), String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line == b"\\." {
        return Err(
            "A record is the line \\. (COPY's end of data), which cannot be loaded.".to_owned(),
        );
    }
    Ok(())
}

#[cfg(feature = "postgres")]
/// `line`'s fields between `delimiter`s.
fn split<'a>(line: &'a [u8], delimiter: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let current = rest?;
        match current
            .windows(delimiter.len())
            .position(|w| w == delimiter)
        {
            Some(at) => {
                rest = Some(&current[at + delimiter.len()..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
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

    #[test]
    fn records_become_copy_input_or_are_refused_for_good() {
        let input = |format, data: &[u8]| {
            copy_input(format, data)
                .map(|out| String::from_utf8(out).unwrap())
                .map_err(|refused| (refused.code, refused.retry))
        };
        // Concatenated, multi-line and whitespace-separated objects: one compact line each.
        assert_eq!(
            input(
                CopyFormat::JsonAuto,
                b"{\"a\":1}{\"b\":\n 2}\n\n{\"c\":\"x\\ny\"}"
            ),
            Ok("{\"a\":1}\n{\"b\":2}\n{\"c\":\"x\\ny\"}\n".to_owned())
        );
        for bad in [&b"{\"a\":1}\n\\.\n{\"b\":2}"[..], b"[1,2]", b"{\"a\":"] {
            assert_eq!(
                input(CopyFormat::JsonAuto, bad),
                Err(("Redshift.DataLoadFailed", false)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Text: backslashes are characters, as in Redshift without ESCAPE; \N stays null.
        let text = CopyFormat::Text { delimiter: '|' };
        assert_eq!(
            input(text, b"C:\\new|x\nend\\|\\N\n"),
            Ok("C:\\\\new|x\nend\\\\|\\N\n".to_owned())
        );
        for format in [text, CopyFormat::Csv { delimiter: ',' }] {
            assert_eq!(
                input(format, b"a|1\n\\.\nb|2\n"),
                Err(("Redshift.DataLoadFailed", false)),
                "a line \\. would end COPY's input and lose the records after it"
            );
            assert!(input(format, b"a|1\r\n\\.\r\n").is_err());
        }
        assert_eq!(
            input(CopyFormat::Csv { delimiter: ',' }, b"a,\"\\\"\n"),
            Ok("a,\"\\\"\n".to_owned())
        );
    }

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
                .load("k1", rows, 2, |_| {})
                .await
                .ok()
                .expect("not stopped");
            assert!(loaded.is_ok(), "{:?}", loaded.err().map(|f| f.message));
        }
        let (a, b) = tokio::join!(
            database.load("k2", rows, 2, |_| {}),
            database.load("k2", rows, 2, |_| {})
        );
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
            .load("k3", b"{\"id\":3}\nnot json\n", 2, |_| {})
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
