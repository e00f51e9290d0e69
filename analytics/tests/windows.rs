//! Known answers: tumbling windows run by the pipeline, micro-batch by micro-batch with rows
//! out of order (within the allowed lateness), give exactly what DataFusion gives running the
//! same aggregation in batch over the whole data set; late rows are counted, not counted in.

use datafusion::arrow::array::{
    Array, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use sluice_analytics::*;
use std::collections::BTreeMap;

const INPUT: &str = "SOURCE_SQL_STREAM_001";

fn schema() -> InputSchema {
    let column = |name: &str, sql_type: &str| RecordColumn {
        name: name.into(),
        sql_type: sql_type.into(),
        mapping: None,
    };
    InputSchema {
        columns: vec![column("TICKER", "VARCHAR(4)"), column("PRICE", "BIGINT")],
        format: RecordFormat::Json,
    }
}

/// `count` trades over about five minutes from `start_ms`: seven tickers, prices from a
/// fixed LCG, arrival times increasing with up to 2 s of disorder.
fn trades(count: usize, start_ms: u64) -> Vec<(Vec<u8>, u64)> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    (0..count)
        .map(|i| {
            let ticker =
                ["AMZN", "MSFT", "GOOG", "AAPL", "QXZ", "WAS", "NFS"][(next() % 7) as usize];
            let price = 100 + next() % 900;
            let base = start_ms + (i as u64) * 300_000 / count as u64;
            let arrival = base.saturating_sub(next() % 2_000);
            (
                format!(r#"{{"TICKER":"{ticker}","PRICE":{price}}}"#).into_bytes(),
                arrival,
            )
        })
        .collect()
}

const CODE: &str = r#"
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
        ticker VARCHAR(4), trades BIGINT, total BIGINT, mean DOUBLE, low BIGINT, high BIGINT, mid DOUBLE);
    CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
        SELECT STREAM ticker, COUNT(*), SUM(price), AVG(price), MIN(price), MAX(price), MEDIAN(price)
        FROM "SOURCE_SQL_STREAM_001"
        GROUP BY ticker, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND);"#;

/// A window's row: end, ticker, count, sum, mean, min, max, median.
type Row = (i64, String, i64, i64, f64, i64, i64, f64);

fn rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut found = Vec::new();
    for batch in batches {
        let column = |i: usize| batch.column(i).clone();
        let end = column(0);
        let end = end
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        let ticker = column(1);
        let ticker = ticker.as_any().downcast_ref::<StringArray>().unwrap();
        let ints = |i: usize| {
            column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone()
        };
        let floats = |i: usize| {
            column(i)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .clone()
        };
        let (count, sum, min, max) = (ints(2), ints(3), ints(5), ints(6));
        let (mean, median) = (floats(4), floats(7));
        for r in 0..batch.num_rows() {
            found.push((
                end.value(r),
                ticker.value(r).to_owned(),
                count.value(r),
                sum.value(r),
                mean.value(r),
                min.value(r),
                max.value(r),
                median.value(r),
            ));
        }
    }
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    found
}

/// The same aggregation in batch over every row at once.
async fn in_batch(all: RecordBatch) -> Vec<Row> {
    let ctx = SessionContext::new();
    ctx.register_batch("trades", all).unwrap();
    let batches = ctx
        .sql(
            r#"SELECT CAST(date_bin(INTERVAL '60' SECOND, "ROWTIME") + INTERVAL '60' SECOND AS TIMESTAMP(3)),
                      "TICKER", COUNT(*), SUM("PRICE"), AVG("PRICE"), MIN("PRICE"), MAX("PRICE"),
                      CAST(MEDIAN("PRICE") AS DOUBLE)
               FROM trades GROUP BY 1, 2"#,
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    rows(&batches)
}

fn same(streamed: &[Row], batch: &[Row]) {
    assert_eq!(streamed.len(), batch.len());
    for (s, b) in streamed.iter().zip(batch) {
        assert_eq!(
            (s.0, &s.1, s.2, s.3, s.5, s.6),
            (b.0, &b.1, b.2, b.3, b.5, b.6),
            "{s:?} {b:?}"
        );
        assert!(
            (s.4 - b.4).abs() < 1e-9 && (s.7 - b.7).abs() < 1e-9,
            "{s:?} {b:?}"
        );
    }
}

#[tokio::test]
async fn tumbling_windows_match_the_same_query_in_batch() {
    let decoder = Decoder::new(&schema()).unwrap();
    let code = sql::parse(CODE).unwrap();
    let mut pipeline = Pipeline::new(&code, INPUT, decoder.schema()).await.unwrap();
    let records = trades(20_000, 1_796_464_800_000);
    let mut streamed = Vec::new();
    let mut inputs = Vec::new();
    let mut seen_ms = 0;
    for chunk in records.chunks(700) {
        let (batch, rejected) = decoder
            .decode(chunk.iter().map(|(d, t)| (&d[..], *t)))
            .unwrap();
        assert!(rejected.is_empty());
        inputs.push(batch.clone());
        let produced = pipeline.push(batch).await.unwrap();
        assert!(
            produced.is_empty(),
            "windows close only as the watermark passes them"
        );
        seen_ms = seen_ms.max(chunk.iter().map(|(_, t)| *t).max().unwrap());
        // Two seconds of disorder, allowed for: the watermark trails what was seen by 2 s.
        for (stream, rows) in pipeline.advance(seen_ms as i64 - 2_000).await.unwrap() {
            assert_eq!(stream, "DESTINATION_SQL_STREAM");
            streamed.push(rows);
        }
    }
    for (_, rows) in pipeline.advance(i64::MAX).await.unwrap() {
        streamed.push(rows);
    }
    assert_eq!(pipeline.late_rows(), 0);
    let all = datafusion::arrow::compute::concat_batches(&decoder.schema(), &inputs).unwrap();
    let expected = in_batch(all).await;
    assert!(
        expected.len() > 30,
        "{} windows and tickers",
        expected.len()
    );
    same(&rows(&streamed), &expected);
}

#[tokio::test]
async fn rows_of_a_closed_window_are_late_and_left_out() {
    let decoder = Decoder::new(&schema()).unwrap();
    let code = sql::parse(CODE).unwrap();
    let mut pipeline = Pipeline::new(&code, INPUT, decoder.schema()).await.unwrap();
    let record = |ms: u64| (br#"{"TICKER":"AMZN","PRICE":5}"#.to_vec(), ms);
    let push = |records: Vec<(Vec<u8>, u64)>| {
        decoder
            .decode(
                records
                    .iter()
                    .map(|(d, t)| (&d[..], *t))
                    .collect::<Vec<_>>(),
            )
            .unwrap()
            .0
    };
    pipeline
        .push(push(vec![record(1_000), record(59_999)]))
        .await
        .unwrap();
    let closed = pipeline.advance(60_000).await.unwrap();
    assert_eq!(rows(&[closed[0].1.clone()])[0].2, 2);
    pipeline
        .push(push(vec![record(30_000), record(61_000)]))
        .await
        .unwrap();
    assert_eq!(pipeline.late_rows(), 1);
    let closed = pipeline.advance(120_000).await.unwrap();
    let closed = rows(&[closed[0].1.clone()]);
    assert_eq!((closed[0].0, closed[0].2), (120_000, 1));
}

#[tokio::test]
async fn per_row_pumps_keep_rowtime_and_feed_other_pumps() {
    let decoder = Decoder::new(&schema()).unwrap();
    let code = sql::parse(
        r#"CREATE OR REPLACE STREAM "DEARS" (ticker VARCHAR(4), price BIGINT);
           CREATE OR REPLACE STREAM "COUNTS" (ticker VARCHAR(4), n BIGINT);
           CREATE OR REPLACE PUMP "FILTER" AS INSERT INTO "DEARS"
               SELECT STREAM ticker, price FROM "SOURCE_SQL_STREAM_001" WHERE price > 500;
           CREATE OR REPLACE PUMP "COUNT" AS INSERT INTO "COUNTS"
               SELECT STREAM ticker, COUNT(*) FROM "DEARS"
               GROUP BY ticker, FLOOR("DEARS".ROWTIME TO MINUTE);"#,
    )
    .unwrap();
    let mut pipeline = Pipeline::new(&code, INPUT, decoder.schema()).await.unwrap();
    let records: Vec<(Vec<u8>, u64)> = [
        ("A", 600, 1_000),
        ("A", 100, 2_000),
        ("B", 900, 3_000),
        ("A", 700, 61_000),
    ]
    .iter()
    .map(|(t, p, ms)| {
        (
            format!(r#"{{"TICKER":"{t}","PRICE":{p}}}"#).into_bytes(),
            *ms,
        )
    })
    .collect();
    let (batch, _) = decoder
        .decode(records.iter().map(|(d, t)| (&d[..], *t)))
        .unwrap();
    let produced = pipeline.push(batch).await.unwrap();
    let dears = &produced[0].1;
    assert_eq!(produced[0].0, "DEARS");
    let rowtime = dears
        .column(0)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .unwrap();
    assert_eq!(rowtime.values().to_vec(), [1_000, 3_000, 61_000]);
    let counted = pipeline.advance(i64::MAX).await.unwrap();
    let mut counts: Vec<(i64, String, i64)> = counted
        .iter()
        .filter(|(s, _)| s == "COUNTS")
        .flat_map(|(_, b)| {
            let end = b
                .column(0)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .unwrap()
                .clone();
            let ticker = b
                .column(1)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            let n = b
                .column(2)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            (0..b.num_rows())
                .map(move |r| (end.value(r), ticker.value(r).to_owned(), n.value(r)))
                .collect::<Vec<_>>()
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            (60_000, "A".into(), 1),
            (60_000, "B".into(), 1),
            (120_000, "A".into(), 1)
        ]
    );
}

#[tokio::test]
async fn queries_that_cannot_run_are_refused_at_creation() {
    for (code, message) in [
        (
            r#"CREATE OR REPLACE STREAM "O" (n BIGINT);
               CREATE OR REPLACE PUMP "P" AS INSERT INTO "O" SELECT STREAM COUNT(*) FROM "SOURCE_SQL_STREAM_001";"#,
            "needs a tumbling window",
        ),
        (
            r#"CREATE OR REPLACE STREAM "O" (n BIGINT);
               CREATE OR REPLACE PUMP "P" AS INSERT INTO "O" SELECT STREAM nope FROM "SOURCE_SQL_STREAM_001";"#,
            "NOPE",
        ),
        (
            r#"CREATE OR REPLACE STREAM "O" (n BIGINT, m BIGINT);
               CREATE OR REPLACE PUMP "P" AS INSERT INTO "O" SELECT STREAM price FROM "SOURCE_SQL_STREAM_001";"#,
            "gives 1 columns for 2",
        ),
        (
            r#"CREATE OR REPLACE PUMP "P" AS INSERT INTO "MISSING" SELECT STREAM price FROM "SOURCE_SQL_STREAM_001";"#,
            "does not exist",
        ),
        (
            // A missing ";": the second pump would otherwise be read as an alias.
            r#"CREATE OR REPLACE STREAM "O" (n BIGINT);
               CREATE OR REPLACE PUMP "P" AS INSERT INTO "O" SELECT STREAM price FROM "SOURCE_SQL_STREAM_001"
               CREATE OR REPLACE PUMP "Q" AS INSERT INTO "O" SELECT STREAM price FROM "SOURCE_SQL_STREAM_001";"#,
            "Expected the end of the pump's SELECT",
        ),
        (
            r#"CREATE OR REPLACE STREAM "O" (n BIGINT);
               CREATE OR REPLACE PUMP "P" AS INSERT INTO "O" SELECT STREAM price FROM "SOURCE_SQL_STREAM_001" WHERE price > 1 ticker = 'A';"#,
            "Expected the end",
        ),
        (
            r#"CREATE OR REPLACE STREAM "O" (n DOUBLE);
               CREATE OR REPLACE PUMP "P" AS INSERT INTO "O"
               SELECT STREAM DISTINCT AVG(price) OVER (PARTITION BY ticker RANGE INTERVAL '1' MINUTE PRECEDING)
               FROM "SOURCE_SQL_STREAM_001";"#,
            "DISTINCT over a stream",
        ),
        (
            r#"CREATE OR REPLACE STREAM "O" (n BIGINT);
               CREATE OR REPLACE PUMP "P" AS INSERT INTO "O" SELECT STREAM DISTINCT price FROM "SOURCE_SQL_STREAM_001";"#,
            "DISTINCT over a stream",
        ),
        (
            r#"CREATE OR REPLACE STREAM "A" (n BIGINT);
               CREATE OR REPLACE STREAM "B" (n BIGINT);
               CREATE OR REPLACE PUMP "AB" AS INSERT INTO "B" SELECT STREAM n FROM "A";
               CREATE OR REPLACE PUMP "BA" AS INSERT INTO "A" SELECT STREAM n FROM "B";"#,
            "cycle",
        ),
        (
            r#"CREATE OR REPLACE STREAM "O" (d DATE);
               CREATE OR REPLACE PUMP "P" AS INSERT INTO "O" SELECT STREAM price > 3 FROM "SOURCE_SQL_STREAM_001";"#,
            "cannot go into column",
        ),
    ] {
        assert_refused_at_creation(code, message).await;
    }
}

/// `code` is refused, at parse or planning, with `message`.
async fn assert_refused_at_creation(code: &str, message: &str) {
    let decoder = Decoder::new(&schema()).unwrap();
    let parsed = match sql::parse(code) {
        Ok(parsed) => parsed,
        Err(refused) => {
            assert!(refused.to_string().contains(message), "{refused}");
            return;
        }
    };
    let refused = Pipeline::new(&parsed, INPUT, decoder.schema())
        .await
        .err()
        .expect("refused");
    assert!(refused.to_string().contains(message), "{refused}");
}

/// Sliding forms that would answer wrongly are refused at creation, saying which.
#[tokio::test]
async fn sliding_forms_that_would_answer_wrongly_are_refused_at_creation() {
    for (code, message) in [
        (
            r#"CREATE OR REPLACE STREAM "O" (n BIGINT);
               CREATE OR REPLACE PUMP "P" AS INSERT INTO "O"
               SELECT STREAM COUNT(*) OVER (PARTITION BY ticker ROWS 3 PRECEDING)
               FROM "SOURCE_SQL_STREAM_001" WHERE price > 900;"#,
            "filters no rows (WHERE)",
        ),
        (
            r#"CREATE OR REPLACE STREAM "O" (n BIGINT);
               CREATE OR REPLACE PUMP "P" AS INSERT INTO "O"
               SELECT STREAM ROW_NUMBER() OVER (PARTITION BY ticker RANGE INTERVAL '1' MINUTE PRECEDING)
               FROM "SOURCE_SQL_STREAM_001";"#,
            "row_number is not supported in a sliding window",
        ),
    ] {
        assert_refused_at_creation(code, message).await;
    }
}

#[tokio::test]
async fn a_window_of_windows_closes_in_time_order_even_when_the_watermark_jumps() {
    let decoder = Decoder::new(&schema()).unwrap();
    let code = sql::parse(
        r#"CREATE OR REPLACE STREAM "PER_MINUTE" (ticker VARCHAR(4), n BIGINT);
           CREATE OR REPLACE STREAM "PER_HOUR" (ticker VARCHAR(4), minutes BIGINT, n BIGINT);
           CREATE OR REPLACE PUMP "M" AS INSERT INTO "PER_MINUTE"
               SELECT STREAM ticker, COUNT(*) FROM "SOURCE_SQL_STREAM_001"
               GROUP BY ticker, FLOOR("SOURCE_SQL_STREAM_001".ROWTIME TO MINUTE);
           CREATE OR REPLACE PUMP "H" AS INSERT INTO "PER_HOUR"
               SELECT STREAM ticker, COUNT(*), SUM(n) FROM "PER_MINUTE"
               GROUP BY ticker, FLOOR("PER_MINUTE".ROWTIME TO HOUR);"#,
    )
    .unwrap();
    let mut pipeline = Pipeline::new(&code, INPUT, decoder.schema()).await.unwrap();
    // Three records a minute for 90 minutes, then one jump of the watermark to the end.
    let records: Vec<(Vec<u8>, u64)> = (0..270u64)
        .map(|i| (br#"{"TICKER":"A","PRICE":1}"#.to_vec(), i * 20_000))
        .collect();
    let (batch, _) = decoder
        .decode(records.iter().map(|(d, t)| (&d[..], *t)))
        .unwrap();
    pipeline.push(batch).await.unwrap();
    let produced = pipeline.advance(i64::MAX).await.unwrap();
    assert_eq!(pipeline.late_rows(), 0);
    let hours: Vec<(i64, i64)> = produced
        .iter()
        .filter(|(s, _)| s == "PER_HOUR")
        .flat_map(|(_, b)| {
            let minutes = b
                .column(2)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            let n = b
                .column(3)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            (0..b.num_rows())
                .map(move |r| (minutes.value(r), n.value(r)))
                .collect::<Vec<_>>()
        })
        .collect();
    // A minute's row carries its window's end: minutes 1..=59 end in the first hour, 60..=90
    // (the 60th ends at 01:00) in the second.
    assert_eq!(hours, [(59, 177), (31, 93)]);
}

/// `SIMILAR TO` as SQL means it (the whole value; `%` any text, `_` one character, `.`
/// literal), not as DataFusion reads it (an unanchored regular expression).
#[tokio::test]
async fn similar_to_matches_whole_values_with_sql_wildcards() {
    let decoder = Decoder::new(&schema()).unwrap();
    let code = sql::parse(&format!(
        r#"CREATE OR REPLACE STREAM "TECH" (ticker VARCHAR(4));
           CREATE OR REPLACE STREAM "OTHER" (ticker VARCHAR(4));
           CREATE OR REPLACE PUMP "P1" AS INSERT INTO "TECH"
             SELECT STREAM ticker FROM "{INPUT}" WHERE ticker SIMILAR TO 'A%(L|N)';
           CREATE OR REPLACE PUMP "P2" AS INSERT INTO "OTHER"
             SELECT STREAM ticker FROM "{INPUT}" WHERE ticker NOT SIMILAR TO 'A.%';"#
    ))
    .unwrap();
    let mut pipeline = Pipeline::new(&code, INPUT, decoder.schema()).await.unwrap();
    let records: Vec<(Vec<u8>, u64)> = ["AMZN", "AAPL", "XAPLX", "A.BC", "ABC", "SAAL"]
        .iter()
        .map(|t| {
            (
                format!(r#"{{"TICKER":"{t}","PRICE":1}}"#).into_bytes(),
                1_000,
            )
        })
        .collect();
    let (batch, _) = decoder
        .decode(records.iter().map(|(d, t)| (d.as_slice(), *t)))
        .unwrap();
    let produced = pipeline.push(batch).await.unwrap();
    let tickers = |stream: &str| -> Vec<String> {
        let mut found: Vec<String> = produced
            .iter()
            .filter(|(s, _)| s == stream)
            .flat_map(|(_, b)| {
                let column = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
                (0..column.len())
                    .map(|i| column.value(i).to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        found.sort();
        found
    };
    // Starts with A and ends with L or N: not SAAL or XAPLX, which hold such runs inside.
    assert_eq!(tickers("TECH"), ["AAPL", "AMZN"]);
    // Not "A." then anything: the dot is literal.
    assert_eq!(tickers("OTHER"), ["AAPL", "ABC", "AMZN", "SAAL", "XAPLX"]);
}

/// A sliding window's row: the input row's time, ticker and price; the mean and count of
/// the ticker's last 10 s, and the highest price of its last 3 s.
type SlidingRow = (i64, String, i64, f64, i64, i64);

fn sliding_rows(batches: &[RecordBatch]) -> Vec<SlidingRow> {
    let mut found = Vec::new();
    for batch in batches {
        let at = |i: usize| batch.column(i).as_any();
        let time = at(0).downcast_ref::<TimestampMillisecondArray>().unwrap();
        let ticker = at(1).downcast_ref::<StringArray>().unwrap();
        let price = at(2).downcast_ref::<Int64Array>().unwrap();
        let mean = at(3).downcast_ref::<Float64Array>().unwrap();
        let count = at(4).downcast_ref::<Int64Array>().unwrap();
        let high = at(5).downcast_ref::<Int64Array>().unwrap();
        for r in 0..batch.num_rows() {
            found.push((
                time.value(r),
                ticker.value(r).to_owned(),
                price.value(r),
                mean.value(r),
                count.value(r),
                high.value(r),
            ));
        }
    }
    found.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
    found
}

/// Runs the pump `select` (into ticker, price, mean, trades, high) over `records` row by
/// row, the watermark 2 s behind the newest, and checks it gives what `batch` (the same
/// query with DataFusion's window functions, over the table `trades`) gives over the whole
/// data set at once, out-of-order rows included; returns the rows.
async fn sliding_known_answer(
    select: &str,
    records: &[(Vec<u8>, u64)],
    batch: &str,
) -> Vec<SlidingRow> {
    let decoder = Decoder::new(&schema()).unwrap();
    let code = sql::parse(&format!(
        r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM"
             (ticker VARCHAR(4), price BIGINT, mean DOUBLE, trades BIGINT, high BIGINT);
           CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM" {select};"#
    ))
    .unwrap();
    let mut pipeline = Pipeline::new(&code, INPUT, decoder.schema()).await.unwrap();
    let (mut streamed, mut inputs, mut seen_ms) = (Vec::new(), Vec::new(), 0);
    for chunk in records.chunks(300) {
        let (batch, _) = decoder
            .decode(chunk.iter().map(|(d, t)| (&d[..], *t)))
            .unwrap();
        inputs.push(batch.clone());
        let produced = pipeline.push(batch).await.unwrap();
        assert!(produced.is_empty(), "rows wait for the watermark");
        seen_ms = seen_ms.max(chunk.iter().map(|(_, t)| *t).max().unwrap());
        for (_, rows) in pipeline.advance(seen_ms as i64 - 2_000).await.unwrap() {
            streamed.push(rows);
        }
    }
    for (_, rows) in pipeline.advance(i64::MAX).await.unwrap() {
        streamed.push(rows);
    }
    assert_eq!(pipeline.late_rows(), 0);
    let all = datafusion::arrow::compute::concat_batches(&decoder.schema(), &inputs).unwrap();
    let ctx = SessionContext::new();
    ctx.register_batch("trades", all).unwrap();
    let batch = ctx.sql(batch).await.unwrap().collect().await.unwrap();
    let (streamed, expected) = (sliding_rows(&streamed), sliding_rows(&batch));
    assert_eq!(streamed.len(), records.len());
    assert_eq!(streamed.len(), expected.len());
    for (s, b) in streamed.iter().zip(&expected) {
        assert_eq!(
            (s.0, &s.1, s.2, s.4, s.5),
            (b.0, &b.1, b.2, b.4, b.5),
            "{s:?} {b:?}"
        );
        assert!((s.3 - b.3).abs() < 1e-9, "{s:?} {b:?}");
    }
    expected
}

/// Sliding windows (`RANGE INTERVAL ... PRECEDING`, named and inline) give what the same
/// query gives in batch.
#[tokio::test]
async fn sliding_windows_match_the_same_query_in_batch() {
    let frame = |seconds: u32| {
        format!(
            r#"OVER (PARTITION BY "TICKER" ORDER BY "ROWTIME" RANGE BETWEEN INTERVAL '{seconds}' SECOND PRECEDING AND CURRENT ROW)"#
        )
    };
    let (ten, three) = (frame(10), frame(3));
    let expected = sliding_known_answer(
        &format!(
            r#"SELECT STREAM ticker, price, AVG(price) OVER W1, COUNT(*) OVER W1,
                 MAX(price) OVER (PARTITION BY ticker RANGE INTERVAL '3' SECOND PRECEDING)
               FROM "{INPUT}"
               WINDOW W1 AS (PARTITION BY ticker RANGE INTERVAL '10' SECOND PRECEDING)"#
        ),
        &trades(6_000, 1_796_464_800_000),
        &format!(
            r#"SELECT "ROWTIME", "TICKER", "PRICE", AVG("PRICE") {ten}, COUNT(*) {ten},
                      MAX("PRICE") {three} FROM trades"#
        ),
    )
    .await;
    // The windows are not trivial: some hold many rows.
    assert!(
        expected.iter().any(|r| r.4 > 20),
        "{:?}",
        expected.iter().map(|r| r.4).max()
    );
}

/// `ROWS <n> PRECEDING` windows (per partition and over the whole stream, beside a
/// `RANGE` window in one pump) give what the same query gives in batch: the rows kept
/// between runs are enough, however old.
#[tokio::test]
async fn rows_windows_match_the_same_query_in_batch() {
    // Each arrival time once: which of two rows of one time is first is no one's to say.
    let mut seen = std::collections::HashSet::new();
    let records: Vec<(Vec<u8>, u64)> = trades(6_000, 1_796_464_800_000)
        .into_iter()
        .map(|(data, mut time)| {
            while !seen.insert(time) {
                time += 1;
            }
            (data, time)
        })
        .collect();
    let expected = sliding_known_answer(
        &format!(
            r#"SELECT STREAM ticker, price, AVG(price) OVER LAST_TEN, COUNT(*) OVER (ROWS 3 PRECEDING),
                 MAX(price) OVER (PARTITION BY ticker RANGE INTERVAL '2' SECOND PRECEDING)
               FROM "{INPUT}"
               WINDOW LAST_TEN AS (PARTITION BY "{INPUT}".ticker ROWS 10 PRECEDING)"#
        ),
        &records,
        r#"SELECT "ROWTIME", "TICKER", "PRICE",
             AVG("PRICE") OVER (PARTITION BY "TICKER" ORDER BY "ROWTIME" ROWS BETWEEN 10 PRECEDING AND CURRENT ROW),
             COUNT(*) OVER (ORDER BY "ROWTIME" ROWS BETWEEN 3 PRECEDING AND CURRENT ROW),
             MAX("PRICE") OVER (PARTITION BY "TICKER" ORDER BY "ROWTIME" RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND CURRENT ROW)
           FROM trades"#,
    )
    .await;
    // Most rows' last ten of their ticker reach back further than the 2 s range, so rows
    // kept by time alone would leave their windows short.
    let mut times: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
    for row in &expected {
        times.entry(&row.1).or_default().push(row.0);
    }
    let far = times
        .values()
        .flat_map(|t| t.windows(11).filter(|w| w[10] - w[0] > 2_000))
        .count();
    assert!(far > 4_000, "{far}");
}

/// The front end notes how far back a pump's windows reach: the widest range, and each
/// `ROWS` window.
#[test]
fn sliding_windows_say_how_far_back_rows_are_kept() {
    let pump = |windows: &str| {
        let code = sql::parse(&format!(
            r#"CREATE OR REPLACE STREAM "O" (a BIGINT, b BIGINT);
               CREATE OR REPLACE PUMP "P" AS INSERT INTO "O"
                 SELECT STREAM {windows} FROM "{INPUT}"
                 WINDOW W1 AS (PARTITION BY ticker RANGE INTERVAL '10' SECOND PRECEDING);"#
        ))
        .unwrap();
        code.pumps[0].sliding.clone().unwrap()
    };
    let range = pump("COUNT(*) OVER W1, MAX(price) OVER (RANGE INTERVAL '3' SECOND PRECEDING)");
    assert_eq!((range.range_ms, range.rows.len()), (10_000, 0));
    let rows = pump(
        "COUNT(*) OVER (ROWS 3 PRECEDING), AVG(price) OVER (PARTITION BY \"S\".ticker ROWS 10 PRECEDING)",
    );
    assert_eq!(rows.range_ms, 10_000);
    let windows: Vec<_> = rows
        .rows
        .iter()
        .map(|w| (w.preceding, w.partition.clone()))
        .collect();
    assert_eq!(windows, [(3, vec![]), (10, vec!["TICKER".to_owned()])]);
}

#[tokio::test]
async fn sliding_windows_kda_does_not_have_are_refused_where_they_are() {
    let refused = |over: &str| {
        let code = format!(
            r#"CREATE OR REPLACE STREAM "O" (n BIGINT);
               CREATE OR REPLACE PUMP "P" AS INSERT INTO "O"
                 SELECT STREAM COUNT(*) OVER ({over}) FROM "{INPUT}";"#
        );
        match sql::parse(&code) {
            Err(AnalyticsError::Code { message, at }) => (message, at.line),
            other => panic!("{over}: {other:?}"),
        }
    };
    assert!(
        refused("ROWS UNBOUNDED PRECEDING")
            .0
            .contains("ROWS <n> PRECEDING")
    );
    assert!(refused("ROWS 100001 PRECEDING").0.contains("0 to 100000"));
    assert!(
        refused("PARTITION BY ticker RANGE INTERVAL '1' SECOND PRECEDING ROWS 2 PRECEDING")
            .0
            .contains("not both")
    );
    assert!(
        refused("PARTITION BY UPPER(ticker) ROWS 2 PRECEDING")
            .0
            .contains("names columns")
    );
    assert!(refused("PARTITION BY ticker").0.contains("RANGE INTERVAL"));
    assert!(
        refused("ORDER BY price RANGE INTERVAL '1' MINUTE PRECEDING")
            .0
            .contains("ORDER BY")
    );
    assert_eq!(refused("RANGE INTERVAL '1' FORTNIGHT PRECEDING").1, 3);
}

/// Code a client may send (up to KDA's 100 KiB) does not overflow the planner's stack: a
/// `WHERE` of thousands of `OR`s is refused at creation, naming the limit, and the same
/// alternatives as an `IN` list (a flat expression) plan and run.
#[tokio::test]
async fn a_deep_expression_is_refused_and_an_in_list_runs() {
    let decoder = Decoder::new(&schema()).unwrap();
    let terms: Vec<String> = (0..8_000).map(|i| format!("price = {i}")).collect();
    let refused = sql::parse(&format!(
        r#"CREATE OR REPLACE STREAM "O" (price BIGINT);
           CREATE OR REPLACE PUMP "P" AS INSERT INTO "O"
             SELECT STREAM price FROM "{INPUT}" WHERE {};"#,
        terms.join(" OR ")
    ))
    .unwrap_err();
    assert!(refused.to_string().contains("IN (...)"), "{refused}");
    let values: Vec<String> = (0..8_000).map(|i| i.to_string()).collect();
    let code = sql::parse(&format!(
        r#"CREATE OR REPLACE STREAM "O" (price BIGINT);
           CREATE OR REPLACE PUMP "P" AS INSERT INTO "O"
             SELECT STREAM price FROM "{INPUT}" WHERE price IN ({});"#,
        values.join(", ")
    ))
    .unwrap();
    let mut pipeline = Pipeline::new(&code, INPUT, decoder.schema()).await.unwrap();
    let (batch, _) = decoder
        .decode([
            (&br#"{"TICKER":"A","PRICE":7999}"#[..], 1_000),
            (&br#"{"TICKER":"A","PRICE":8000}"#[..], 1_000),
        ])
        .unwrap();
    let produced = pipeline.push(batch).await.unwrap();
    assert_eq!(produced[0].1.num_rows(), 1);
}

/// Runs `code` over `records` as the known-answer test does; returns the output rows.
async fn streamed(code: &str, records: &[(Vec<u8>, u64)]) -> Vec<RecordBatch> {
    let decoder = Decoder::new(&schema()).unwrap();
    let code = sql::parse(code).unwrap();
    let mut pipeline = Pipeline::new(&code, INPUT, decoder.schema()).await.unwrap();
    let (mut out, mut seen_ms) = (Vec::new(), 0);
    for chunk in records.chunks(700) {
        let (batch, _) = decoder
            .decode(chunk.iter().map(|(d, t)| (&d[..], *t)))
            .unwrap();
        pipeline.push(batch).await.unwrap();
        seen_ms = seen_ms.max(chunk.iter().map(|(_, t)| *t).max().unwrap());
        out.extend(pipeline.advance(seen_ms as i64 - 2_000).await.unwrap());
    }
    out.extend(pipeline.advance(i64::MAX).await.unwrap());
    assert_eq!(pipeline.late_rows(), 0);
    out.into_iter().map(|(_, rows)| rows).collect()
}

/// Per window end, the trades of each ticker, counted here from the records.
fn counts_by_window(records: &[(Vec<u8>, u64)]) -> BTreeMap<i64, BTreeMap<String, i64>> {
    let mut counts: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
    for (data, at) in records {
        let trade: serde_json::Value = serde_json::from_slice(data).unwrap();
        let end = (*at as i64).div_euclid(60_000) * 60_000 + 60_000;
        *counts
            .entry(end)
            .or_default()
            .entry(trade["TICKER"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    counts
}

/// TOP_K_ITEMS_TUMBLING's rows: per window end, each item and its count, in order.
fn top_k_rows(top: &[RecordBatch]) -> BTreeMap<i64, Vec<(String, i64)>> {
    let mut got: BTreeMap<i64, Vec<(String, i64)>> = BTreeMap::new();
    for batch in top {
        let end = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        let ticker = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let n = batch
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        for row in 0..batch.num_rows() {
            got.entry(end.value(row))
                .or_default()
                .push((ticker.value(row).to_owned(), n.value(row)));
        }
    }
    got
}

#[tokio::test]
async fn top_k_items_match_counts_of_the_records() {
    let records = trades(20_000, 1_796_464_800_000);
    let counts = counts_by_window(&records);
    // The documentation's examples, over one-minute windows.
    let expected: BTreeMap<i64, Vec<(String, i64)>> = counts
        .iter()
        .map(|(end, by_ticker)| {
            let mut ranked: Vec<(String, i64)> =
                by_ticker.iter().map(|(t, n)| (t.clone(), *n)).collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            ranked.truncate(3);
            (*end, ranked)
        })
        .collect();
    assert!(expected.len() >= 5, "{expected:?}");
    // The cursor as the documentation writes it, and one naming ROWTIME itself.
    for cursor in [
        r#"SELECT STREAM * FROM "SOURCE_SQL_STREAM_001""#,
        r#"SELECT STREAM ROWTIME, ticker FROM "SOURCE_SQL_STREAM_001""#,
    ] {
        let code = format!(
            r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("TICKER" VARCHAR(4), "MOST_FREQUENT_VALUES" BIGINT);
               CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
               SELECT STREAM * FROM TABLE (TOP_K_ITEMS_TUMBLING(CURSOR({cursor}), 'TICKER', 3, 60));"#
        );
        assert_eq!(
            top_k_rows(&streamed(&code, &records).await),
            expected,
            "{cursor}"
        );
    }
}

#[tokio::test]
async fn count_distinct_items_match_counts_of_the_records() {
    let records = trades(20_000, 1_796_464_800_000);
    let distinct = streamed(
        r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (NUMBER_OF_DISTINCT_ITEMS BIGINT);
           CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
           SELECT STREAM * FROM TABLE(COUNT_DISTINCT_ITEMS_TUMBLING(
               CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001" WHERE price > 900), 'TICKER', 60));"#,
        &records,
    )
    .await;
    let mut got = BTreeMap::new();
    for batch in &distinct {
        let end = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        let n = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        for row in 0..batch.num_rows() {
            got.insert(end.value(row), n.value(row));
        }
    }
    let dear: Vec<(Vec<u8>, u64)> = records
        .iter()
        .filter(|(d, _)| {
            serde_json::from_slice::<serde_json::Value>(d).unwrap()["PRICE"]
                .as_i64()
                .unwrap()
                > 900
        })
        .cloned()
        .collect();
    let expected: BTreeMap<i64, i64> = counts_by_window(&dear)
        .into_iter()
        .map(|(end, by_ticker)| (end, by_ticker.len() as i64))
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn tumbling_table_functions_written_wrong_are_refused_where_they_are() {
    let decoder = Decoder::new(&schema()).unwrap();
    for (call, message) in [
        (
            "TOP_K_ITEMS_TUMBLING(CURSOR(SELECT STREAM * FROM \"SOURCE_SQL_STREAM_001\"), TICKER, 3, 60)",
            "single quotes",
        ),
        (
            "TOP_K_ITEMS_TUMBLING(CURSOR(SELECT STREAM * FROM \"SOURCE_SQL_STREAM_001\"), 'TICKER', 0, 60)",
            "K is a whole number from 1 to 100000",
        ),
        (
            "TOP_K_ITEMS_TUMBLING(CURSOR(SELECT STREAM * FROM \"SOURCE_SQL_STREAM_001\"), 'TICKER', 3, 7200)",
            "windowSize is a whole number from 1 to 3600",
        ),
        (
            "COUNT_DISTINCT_ITEMS_TUMBLING(CURSOR(SELECT STREAM * FROM \"SOURCE_SQL_STREAM_001\"), 'TICKER', 3, 60)",
            "COUNT_DISTINCT_ITEMS_TUMBLING is read from as",
        ),
        (
            "TOP_K_ITEMS_TUMBLING(CURSOR(SELECT STREAM * FROM \"SOURCE_SQL_STREAM_001\"), 'NOPE', 3, 60)",
            "NOPE",
        ),
        (
            "TOP_K_ITEMS_TUMBLING(CURSOR(SELECT STREAM * FROM \"SOURCE_SQL_STREAM_001\"), 'TICKER', 3, 60)) JOIN TABLE(COUNT_DISTINCT_ITEMS_TUMBLING(CURSOR(SELECT STREAM * FROM \"SOURCE_SQL_STREAM_001\"), 'TICKER', 60)",
            "one tumbling table function",
        ),
    ] {
        let code = format!(
            r#"CREATE OR REPLACE STREAM "O" (t VARCHAR(4), n BIGINT);
               CREATE OR REPLACE PUMP "P" AS INSERT INTO "O" SELECT STREAM * FROM TABLE({call});"#
        );
        let refused = match sql::parse(&code) {
            Err(e) => e,
            Ok(parsed) => Pipeline::new(&parsed, INPUT, decoder.schema())
                .await
                .err()
                .expect("refused"),
        };
        assert!(refused.to_string().contains(message), "{call}: {refused}");
    }
}
