//! Known answers for windowed joins of two streams: orders and trades read from one input,
//! out of order within the allowed lateness, joined by the pipeline micro-batch by
//! micro-batch, give exactly the pairs a brute-force join of every order with every trade
//! gives (a pair when the right row's time is within the windows of the left row's).

use datafusion::arrow::array::{Array, Int64Array, StringArray, TimestampMillisecondArray};
use datafusion::arrow::record_batch::RecordBatch;
use sluice_analytics::*;

const INPUT: &str = "SOURCE_SQL_STREAM_001";

fn schema() -> InputSchema {
    let column = |name: &str, sql_type: &str| RecordColumn {
        name: name.into(),
        sql_type: sql_type.into(),
        mapping: None,
    };
    InputSchema {
        columns: vec![
            column("KIND", "VARCHAR(5)"),
            column("ID", "BIGINT"),
            column("TICKER", "VARCHAR(4)"),
            column("AMOUNT", "BIGINT"),
        ],
        format: RecordFormat::Json,
    }
}

/// An order or a trade, as put.
#[derive(Debug, Clone)]
struct Event {
    order: bool,
    id: i64,
    ticker: &'static str,
    amount: i64,
    at: i64,
}

impl Event {
    fn record(&self) -> Vec<u8> {
        let kind = if self.order { "order" } else { "trade" };
        format!(
            r#"{{"KIND":"{kind}","ID":{},"TICKER":"{}","AMOUNT":{}}}"#,
            self.id, self.ticker, self.amount
        )
        .into_bytes()
    }
}

/// `count` events over five minutes: two in five orders, the rest trades, of 50 order ids
/// (so an order meets trades of its id before and after it), arrival times increasing
/// with up to 2 s of disorder.
fn events(count: usize) -> Vec<Event> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as i64
    };
    let start = 1_796_464_800_000_i64;
    (0..count)
        .map(|i| {
            let id = next() % 50;
            let base = start + i as i64 * 300_000 / count as i64;
            Event {
                order: next() % 5 < 2,
                id,
                ticker: ["AMZN", "MSFT", "GOOG", "AAPL", "QXZ"][(id % 5) as usize],
                amount: 1 + next() % 1000,
                at: base - next() % 2_000,
            }
        })
        .collect()
}

const STREAMS: &str = r#"
    CREATE OR REPLACE STREAM "ORDERS" (id BIGINT, ticker VARCHAR(4), amount BIGINT);
    CREATE OR REPLACE STREAM "TRADES" (id BIGINT, ticker VARCHAR(4), amount BIGINT);
    CREATE OR REPLACE PUMP "TAKE_ORDERS" AS INSERT INTO "ORDERS"
        SELECT STREAM id, ticker, amount FROM "SOURCE_SQL_STREAM_001" WHERE kind = 'order';
    CREATE OR REPLACE PUMP "TAKE_TRADES" AS INSERT INTO "TRADES"
        SELECT STREAM id, ticker, amount FROM "SOURCE_SQL_STREAM_001" WHERE kind = 'trade';
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM"
        (pair_time TIMESTAMP, id BIGINT, ticker VARCHAR(4), left_amount BIGINT, right_amount BIGINT);"#;

/// A joined row: its time, the left row's id, ticker and amount, the right row's amount.
type Row = (i64, i64, String, i64, Option<i64>);

/// Runs the pump `select` (into `DESTINATION_SQL_STREAM`) over `events`, 200 records a
/// micro-batch, the watermark 2 s behind the newest; returns its rows, each row's
/// `ROWTIME` checked to be the time the query selected as `ROWTIME`.
async fn streamed(select: &str, events: &[Event]) -> Vec<Row> {
    let decoder = Decoder::new(&schema()).unwrap();
    let code = sql::parse(&format!(
        r#"{STREAMS}
           CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM" {select};"#
    ))
    .unwrap();
    let mut pipeline = Pipeline::new(&code, INPUT, decoder.schema()).await.unwrap();
    let (mut out, mut seen_ms) = (Vec::new(), 0);
    for chunk in events.chunks(200) {
        let records: Vec<(Vec<u8>, u64)> =
            chunk.iter().map(|e| (e.record(), e.at as u64)).collect();
        let (batch, errors) = decoder
            .decode(records.iter().map(|(d, t)| (&d[..], *t)))
            .unwrap();
        assert!(errors.is_empty());
        out.extend(pipeline.push(batch).await.unwrap());
        seen_ms = seen_ms.max(chunk.iter().map(|e| e.at).max().unwrap());
        out.extend(pipeline.advance(seen_ms - 2_000).await.unwrap());
    }
    out.extend(pipeline.advance(i64::MAX).await.unwrap());
    assert_eq!(pipeline.late_rows(), 0);
    let batches: Vec<RecordBatch> = out
        .into_iter()
        .filter(|(stream, _)| stream == "DESTINATION_SQL_STREAM")
        .map(|(_, rows)| rows)
        .collect();
    rows(&batches)
}

fn rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut found = Vec::new();
    for batch in batches {
        let at = |i: usize| batch.column(i).as_any();
        let rowtime = at(0).downcast_ref::<TimestampMillisecondArray>().unwrap();
        let time = at(1).downcast_ref::<TimestampMillisecondArray>().unwrap();
        let id = at(2).downcast_ref::<Int64Array>().unwrap();
        let ticker = at(3).downcast_ref::<StringArray>().unwrap();
        let left = at(4).downcast_ref::<Int64Array>().unwrap();
        let right = at(5).downcast_ref::<Int64Array>().unwrap();
        for r in 0..batch.num_rows() {
            assert_eq!(
                rowtime.value(r),
                time.value(r),
                "ROWTIME is the pair's time"
            );
            found.push((
                time.value(r),
                id.value(r),
                ticker.value(r).to_owned(),
                left.value(r),
                right.is_valid(r).then(|| right.value(r)),
            ));
        }
    }
    found.sort();
    found
}

/// The pairs of a join, brute force: `(l, r)` when `on` holds and `r.at` is within
/// `[l.at - right_ms, l.at + left_ms]`, at the later of the two times; with `outer`, a left
/// row no right row pairs with, alone at its own time.
fn expected(
    left: &[&Event],
    right: &[&Event],
    (left_ms, right_ms): (i64, i64),
    outer: bool,
    on: impl Fn(&Event, &Event) -> bool,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for l in left {
        let before = rows.len();
        for r in right {
            if on(l, r) && r.at >= l.at - right_ms && r.at <= l.at + left_ms {
                let time = l.at.max(r.at);
                rows.push((time, l.id, l.ticker.to_owned(), l.amount, Some(r.amount)));
            }
        }
        if outer && rows.len() == before {
            rows.push((l.at, l.id, l.ticker.to_owned(), l.amount, None));
        }
    }
    rows.sort();
    rows
}

fn same(streamed: &[Row], expected: &[Row]) {
    assert_eq!(streamed.len(), expected.len());
    for (s, e) in streamed.iter().zip(expected) {
        assert_eq!(s, e);
    }
}

/// The documentation's join (orders with the trades of their id in the minute before
/// them), a join windowed on both sides, a LEFT join with a condition on the right side
/// in `ON`, and a self-join: each gives the brute force's pairs.
#[tokio::test]
async fn windowed_joins_give_every_pair_within_the_windows_once() {
    let events = events(3_000);
    let orders: Vec<&Event> = events.iter().filter(|e| e.order).collect();
    let trades: Vec<&Event> = events.iter().filter(|e| !e.order).collect();
    let same_id = |l: &Event, r: &Event| l.id == r.id;

    let documentation = streamed(
        r#"SELECT STREAM ROWTIME AS order_time, o.id, o.ticker, o.amount, t.amount
           FROM "ORDERS" AS o JOIN "TRADES" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS t
           ON o.id = t.id"#,
        &events,
    )
    .await;
    let pairs = expected(&orders, &trades, (0, 60_000), false, same_id);
    assert!(pairs.len() > 5_000, "{}", pairs.len());
    same(&documentation, &pairs);

    let both = streamed(
        r#"SELECT STREAM ROWTIME, o.id, o.ticker, o.amount, t.amount
           FROM "ORDERS" OVER (RANGE INTERVAL '10' SECOND PRECEDING) o
           INNER JOIN "TRADES" OVER (RANGE INTERVAL '30' SECOND PRECEDING) t ON o.id = t.id"#,
        &events,
    )
    .await;
    same(
        &both,
        &expected(&orders, &trades, (10_000, 30_000), false, same_id),
    );

    let left = streamed(
        r#"SELECT STREAM ROWTIME, o.id, o.ticker, o.amount, t.amount
           FROM "ORDERS" AS o LEFT OUTER JOIN "TRADES" OVER (RANGE INTERVAL '20' SECOND PRECEDING) AS t
           ON o.id = t.id AND t.amount > 500"#,
        &events,
    )
    .await;
    let outer = expected(&orders, &trades, (0, 20_000), true, |l, r| {
        l.id == r.id && r.amount > 500
    });
    assert!(outer.iter().any(|r| r.4.is_none()) && outer.iter().any(|r| r.4.is_some()));
    same(&left, &outer);

    let itself = streamed(
        r#"SELECT STREAM ROWTIME, a.id, a.ticker, a.amount, b.amount
           FROM "TRADES" AS a JOIN "TRADES" OVER (RANGE INTERVAL '5' SECOND PRECEDING) AS b
           ON a.ticker = b.ticker AND a.amount < b.amount"#,
        &events,
    )
    .await;
    same(
        &itself,
        &expected(&trades, &trades, (0, 5_000), false, |l, r| {
            l.ticker == r.ticker && l.amount < r.amount
        }),
    );
}

/// Why `select` (into `DESTINATION_SQL_STREAM`) is refused, at parse or planning.
async fn refusal(select: &str) -> String {
    let decoder = Decoder::new(&schema()).unwrap();
    let code = format!(
        r#"{STREAMS}
           CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM" {select};"#
    );
    let refused = match sql::parse(&code) {
        Ok(parsed) => Pipeline::new(&parsed, INPUT, decoder.schema())
            .await
            .err()
            .expect("refused"),
        Err(refused) => refused,
    };
    refused.to_string()
}

/// Joins that would answer wrongly, or that are not built, are refused at creation, saying
/// why and where.
#[tokio::test]
async fn joins_that_cannot_run_are_refused_at_creation() {
    let pair = r#"SELECT STREAM ROWTIME, o.id, o.ticker, o.amount, t.amount"#;
    for (from, message) in [
        (
            r#"FROM "ORDERS" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS o
               LEFT JOIN "TRADES" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS t ON o.id = t.id"#,
            "leaves the left stream unwindowed (OVER on the right only) (at line 10, column 161)",
        ),
        (
            r#"FROM "ORDERS" AS o RIGHT JOIN "TRADES" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS t ON o.id = t.id"#,
            "is a JOIN (INNER) or a LEFT JOIN (at line 10, column",
        ),
        (
            r#"FROM "ORDERS" AS o JOIN "TRADES" AS t ON o.id = t.id"#,
            "a join of two streams windows one of them",
        ),
        (
            r#"FROM "ORDERS" AS o JOIN "TRADES" OVER w AS t ON o.id = t.id"#,
            "written where the stream is named",
        ),
        (
            r#"FROM "ORDERS" AS o JOIN "TRADES" OVER (ROWS 3 PRECEDING) AS t ON o.id = t.id"#,
            "OVER (RANGE INTERVAL '<n>' SECOND, MINUTE, HOUR or DAY PRECEDING)",
        ),
        (
            r#"FROM "ORDERS" JOIN "ORDERS" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) ON true"#,
            "need names of their own",
        ),
        (
            r#"FROM "ORDERS" AS o JOIN "TRADES" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS t USING (id)"#,
            "takes ON <condition>",
        ),
        (
            r#"FROM "ORDERS" AS o JOIN "TRADES" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS t ON o.id = t.id
               JOIN "SOURCE_SQL_STREAM_001" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS s ON s.id = o.id"#,
            "A windowed join's two streams come first",
        ),
        (
            r#"FROM "ORDERS" AS o JOIN "TRADES" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS t ON o.id = t.id
               JOIN "SOURCE_SQL_STREAM_001" AS s ON s.id = o.id"#,
            "reads its two streams, \"ORDERS\" and \"TRADES\", and no other stream",
        ),
    ] {
        let refused = refusal(&format!("{pair} {from}")).await;
        assert!(refused.contains(message), "{from}: {refused}");
    }
    let aggregate = refusal(
        r#"SELECT STREAM ROWTIME, o.id, o.ticker, COUNT(*), SUM(t.amount)
           FROM "ORDERS" AS o JOIN "TRADES" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS t
           ON o.id = t.id GROUP BY ROWTIME, o.id, o.ticker"#,
    )
    .await;
    assert!(
        aggregate.contains(
            "a pump joining streams is a per-row query: aggregate its rows in another pump"
        ),
        "{aggregate}"
    );
    let windowed = refusal(
        r#"SELECT STREAM STEP(ROWTIME BY INTERVAL '1' MINUTE), o.id, o.ticker, COUNT(*), SUM(t.amount)
           FROM "ORDERS" AS o JOIN "TRADES" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS t
           ON o.id = t.id GROUP BY o.id, o.ticker, STEP(ROWTIME BY INTERVAL '1' MINUTE)"#,
    )
    .await;
    assert!(
        windowed.contains("A pump joining streams is a per-row query"),
        "{windowed}"
    );
}

/// Runs `code` over `events` put in this order, the watermark moved to each `Some` before
/// the next event; returns the rows of `DESTINATION_SQL_STREAM` and the late rows.
async fn run_in_order(code: &str, steps: &[(Option<i64>, Event)]) -> (Vec<RecordBatch>, u64) {
    let decoder = Decoder::new(&schema()).unwrap();
    let mut pipeline = Pipeline::new(&sql::parse(code).unwrap(), INPUT, decoder.schema())
        .await
        .unwrap();
    let mut out = Vec::new();
    for (watermark, event) in steps {
        if let Some(watermark) = watermark {
            out.extend(pipeline.advance(*watermark).await.unwrap());
        }
        let record = event.record();
        let (batch, _) = decoder.decode([(&record[..], event.at as u64)]).unwrap();
        out.extend(pipeline.push(batch).await.unwrap());
    }
    out.extend(pipeline.advance(i64::MAX).await.unwrap());
    let rows = out
        .into_iter()
        .filter(|(stream, _)| stream == "DESTINATION_SQL_STREAM")
        .map(|(_, rows)| rows)
        .collect();
    (rows, pipeline.late_rows())
}

/// `SELECT STREAM *` of a join is both streams' columns (not `ROWTIME`); a row that comes
/// for a time the join has run past is late: counted, and paired with nothing.
#[tokio::test]
async fn star_is_both_sides_columns_and_late_rows_are_left_out() {
    let code = r#"
        CREATE OR REPLACE STREAM "ORDERS" (id BIGINT, ticker VARCHAR(4), amount BIGINT);
        CREATE OR REPLACE STREAM "TRADES" (id BIGINT, ticker VARCHAR(4), amount BIGINT);
        CREATE OR REPLACE PUMP "TAKE_ORDERS" AS INSERT INTO "ORDERS"
            SELECT STREAM id, ticker, amount FROM "SOURCE_SQL_STREAM_001" WHERE kind = 'order';
        CREATE OR REPLACE PUMP "TAKE_TRADES" AS INSERT INTO "TRADES"
            SELECT STREAM id, ticker, amount FROM "SOURCE_SQL_STREAM_001" WHERE kind = 'trade';
        CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (o_id BIGINT, o_ticker VARCHAR(4),
            o_amount BIGINT, t_id BIGINT, t_ticker VARCHAR(4), t_amount BIGINT);
        CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
            SELECT STREAM * FROM "ORDERS" AS o
            JOIN "TRADES" OVER (RANGE INTERVAL '10' SECOND PRECEDING) AS t ON o.id = t.id;"#;
    let event = |order: bool, amount: i64, at: i64| Event {
        order,
        id: 7,
        ticker: "AMZN",
        amount,
        at,
    };
    let (rows, late) = run_in_order(
        code,
        &[
            (None, event(false, 1, 1_000)),
            (None, event(true, 2, 5_000)),
            // Run up to 5 s: the order and the trade before it pair.
            (Some(6_000), event(false, 3, 4_000)),
            (None, event(true, 4, 9_000)),
        ],
    )
    .await;
    assert_eq!(late, 1, "the trade at 4 s came after the join ran to 5 s");
    let rows = datafusion::arrow::compute::concat_batches(&rows[0].schema(), &rows).unwrap();
    assert_eq!(
        rows.num_columns(),
        7,
        "ROWTIME and both sides' three columns"
    );
    let amounts = |i: usize| {
        let column = rows
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        column.values().to_vec()
    };
    let times = rows
        .column(0)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .unwrap();
    assert_eq!(times.values().to_vec(), [5_000, 9_000]);
    assert_eq!((amounts(3), amounts(6)), (vec![2, 4], vec![1, 1]));
}

/// The pairs (left id, right value) a code's `DESTINATION_SQL_STREAM` gets over trades at
/// 1 s and 3 s and orders at 2 s and 4 s, all of id 7, with no row late.
async fn pairs_of(code: &str) -> Vec<(i64, i64)> {
    let event = |order: bool, at: i64| Event {
        order,
        id: 7,
        ticker: "AMZN",
        amount: at / 1_000,
        at,
    };
    let steps = [
        (None, event(false, 1_000)),
        (None, event(true, 2_000)),
        (None, event(false, 3_000)),
        (None, event(true, 4_000)),
    ];
    let (batches, late) = run_in_order(code, &steps).await;
    assert_eq!(late, 0);
    let mut pairs = Vec::new();
    for batch in &batches {
        let column = |i: usize| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
        };
        for r in 0..batch.num_rows() {
            pairs.push((column(1).value(r), column(2).value(r)));
        }
    }
    pairs.sort_unstable();
    pairs
}

/// A join runs after the pumps feeding it, wherever the code declares it: rows a sliding
/// pump releases for a time reach the join before it runs to that time.
#[tokio::test]
async fn a_join_declared_before_the_pumps_feeding_it_misses_no_row() {
    let streams = r#"
        CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (order_id BIGINT, trades BIGINT);
        CREATE OR REPLACE STREAM "ORDERS" (id BIGINT);
        CREATE OR REPLACE STREAM "RECENT" (id BIGINT, trades BIGINT);"#;
    let join = r#"
        CREATE OR REPLACE PUMP "PAIR" AS INSERT INTO "DESTINATION_SQL_STREAM"
            SELECT STREAM o.id, t.trades FROM "ORDERS" AS o
            JOIN "RECENT" OVER (RANGE INTERVAL '10' SECOND PRECEDING) AS t ON o.id = t.id;"#;
    let feeders = r#"
        CREATE OR REPLACE PUMP "TAKE_ORDERS" AS INSERT INTO "ORDERS"
            SELECT STREAM id FROM "SOURCE_SQL_STREAM_001" WHERE kind = 'order';
        CREATE OR REPLACE PUMP "COUNT_TRADES" AS INSERT INTO "RECENT"
            SELECT STREAM id, COUNT(*) OVER (PARTITION BY id RANGE INTERVAL '10' SECOND PRECEDING)
            FROM "SOURCE_SQL_STREAM_001" WHERE kind = 'trade';"#;
    let last = pairs_of(&format!("{streams}{feeders}{join}")).await;
    let first = pairs_of(&format!("{streams}{join}{feeders}")).await;
    // The order at 2 s with the trade at 1 s (1 trade so far); the order at 4 s with both.
    assert_eq!(last, [(7, 1), (7, 1), (7, 2)]);
    assert_eq!(first, last);
}

/// SQL around a join that looks like its clauses is read as what it is: `IS DISTINCT FROM`
/// in the select list, the function `LEFT(...)` in `ON`; a window function in `ON` of a
/// join without a stream window is refused, not taken for one.
#[tokio::test]
async fn sql_that_looks_like_a_joins_clauses_is_read_as_what_it_is() {
    let code = |select: &str| {
        format!(
            r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (order_id BIGINT, amount BIGINT);
               CREATE OR REPLACE STREAM "ORDERS" (id BIGINT, ticker VARCHAR(4), amount BIGINT);
               CREATE OR REPLACE STREAM "TRADES" (id BIGINT, ticker VARCHAR(4), amount BIGINT);
               CREATE OR REPLACE PUMP "TAKE_ORDERS" AS INSERT INTO "ORDERS"
                   SELECT STREAM id, ticker, amount FROM "SOURCE_SQL_STREAM_001" WHERE kind = 'order';
               CREATE OR REPLACE PUMP "TAKE_TRADES" AS INSERT INTO "TRADES"
                   SELECT STREAM id, ticker, amount FROM "SOURCE_SQL_STREAM_001" WHERE kind = 'trade';
               CREATE OR REPLACE PUMP "PAIR" AS INSERT INTO "DESTINATION_SQL_STREAM" {select};"#
        )
    };
    let distinct = pairs_of(&code(
        r#"SELECT STREAM o.id, CASE WHEN o.amount IS DISTINCT FROM t.amount THEN t.amount END
           FROM "ORDERS" AS o JOIN "TRADES" OVER (RANGE INTERVAL '10' SECOND PRECEDING) AS t
           ON o.id = t.id"#,
    ))
    .await;
    assert_eq!(distinct, [(7, 1), (7, 1), (7, 3)]);
    let left = pairs_of(&code(
        r#"SELECT STREAM o.id, t.amount
           FROM "ORDERS" AS o JOIN "TRADES" OVER (RANGE INTERVAL '10' SECOND PRECEDING) AS t
           ON o.id = t.id AND LEFT(t.ticker, 2) = 'AM' AND RIGHT(o.ticker, 1) = 'N'"#,
    ))
    .await;
    assert_eq!(left, distinct);
    let in_on = code(
        r#"SELECT STREAM o.id, t.amount FROM "ORDERS" AS o JOIN "TRADES" AS t
           ON o.id = t.id AND COUNT(*) OVER () > 0"#,
    );
    let refused = sql::parse(&in_on).expect_err("a window in ON");
    assert!(
        refused.to_string().contains("A window in FROM"),
        "{refused}"
    );
}
