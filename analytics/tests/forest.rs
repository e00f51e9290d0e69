//! RANDOM_CUT_FOREST as the AWS documentation's anomaly example writes it (scores into a
//! stream, then ordered per second by score), over a heart-rate signal with injected spikes:
//! the spikes score highest, each row comes out once, sorted within its second, with its
//! own ROWTIME; the scores do not depend on how the rows were split into reads; and what
//! cannot be run is refused where it is written.

use datafusion::arrow::array::{Array, Float64Array, Int32Array, TimestampMillisecondArray};
use datafusion::arrow::record_batch::RecordBatch;
use sluice_analytics::*;

const INPUT: &str = "SOURCE_SQL_STREAM_001";

/// The documentation's example, unchanged.
const CODE: &str = r#"
-- Creates a temporary stream.
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
      ORDER BY FLOOR("TEMP_STREAM".ROWTIME TO SECOND), ANOMALY_SCORE DESC;
"#;

fn schema() -> InputSchema {
    InputSchema {
        columns: vec![
            RecordColumn {
                name: "heartRate".into(),
                sql_type: "INTEGER".into(),
                mapping: Some("$.heartRate".into()),
            },
            RecordColumn {
                name: "rateType".into(),
                sql_type: "VARCHAR(20)".into(),
                mapping: Some("$.rateType".into()),
            },
        ],
        format: RecordFormat::Json,
    }
}

/// 2,000 heart rates, ten a second: 60 to 100 (the example's generator), with a few of
/// 150 to 200 among them.
const SPIKES: [usize; 4] = [900, 1_234, 1_500, 1_877];

fn heart_rates() -> Vec<(Vec<u8>, u64)> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..2_000)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let (rate, kind) = if SPIKES.contains(&i) {
                (150 + (state >> 33) % 51, "HIGH")
            } else {
                (60 + (state >> 33) % 41, "NORMAL")
            };
            let record = format!(r#"{{"heartRate":{rate},"rateType":"{kind}"}}"#);
            (record.into_bytes(), 1_000_000 + i as u64 * 100)
        })
        .collect()
}

/// Each output row: ROWTIME, heart rate, score.
fn rows(produced: &[(String, RecordBatch)], stream: &str) -> Vec<(i64, i32, f64)> {
    let mut found = Vec::new();
    for (_, batch) in produced.iter().filter(|(s, _)| s == stream) {
        let time = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        let rate = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap();
        let score = batch
            .column(3)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        for row in 0..batch.num_rows() {
            found.push((time.value(row), rate.value(row), score.value(row)));
        }
    }
    found
}

/// Runs the example over the records, `read` of them a push, the watermark following the
/// newest record less `lateness_ms`; returns every row made.
async fn run(records: &[(Vec<u8>, u64)], read: usize) -> Vec<(String, RecordBatch)> {
    let decoder = Decoder::new(&schema()).unwrap();
    let code = sql::parse(CODE).unwrap();
    let mut pipeline = Pipeline::new(&code, INPUT, decoder.schema()).await.unwrap();
    let mut produced = Vec::new();
    for chunk in records.chunks(read) {
        let (batch, rejected) = decoder
            .decode(chunk.iter().map(|(d, t)| (d.as_slice(), *t)))
            .unwrap();
        assert!(rejected.is_empty());
        produced.extend(pipeline.push(batch).await.unwrap());
        let newest = chunk.last().unwrap().1 as i64;
        produced.extend(pipeline.advance(newest - 1_000).await.unwrap());
    }
    produced.extend(pipeline.advance(i64::MAX).await.unwrap());
    produced
}

#[tokio::test]
async fn the_documentations_anomaly_example_ranks_the_spikes_highest() {
    let records = heart_rates();
    let produced = run(&records, 64).await;
    let scored = rows(&produced, "TEMP_STREAM");
    let out = rows(&produced, "DESTINATION_SQL_STREAM");
    assert_eq!(scored.len(), records.len(), "every record scored once");
    assert_eq!(out.len(), records.len(), "every scored row out once");

    // The spikes, and only they, at the top.
    let mut ranked = scored.clone();
    ranked.sort_by(|a, b| b.2.total_cmp(&a.2));
    let mut top: Vec<i64> = ranked[..SPIKES.len()].iter().map(|r| r.0).collect();
    top.sort_unstable();
    let spike_times: Vec<i64> = SPIKES.iter().map(|i| 1_000_000 + *i as i64 * 100).collect();
    assert_eq!(top, spike_times, "top scores: {:?}", &ranked[..8]);
    assert!(
        ranked[SPIKES.len() - 1].2 > 1.5 * ranked[SPIKES.len()].2,
        "the spikes stand out: {:?}",
        &ranked[..8]
    );
    // No score before the forest holds points.
    assert_eq!(scored[0].2, 0.0);

    // The output: the same rows, each keeping its ROWTIME, ordered per second by score.
    let mut same = out.clone();
    same.sort_by_key(|r| r.0);
    let mut expected = scored.clone();
    expected.sort_by_key(|r| r.0);
    assert_eq!(same, expected);
    for pair in out.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let (second_a, second_b) = (a.0.div_euclid(1_000), b.0.div_euclid(1_000));
        assert!(second_a <= second_b, "seconds in order: {a:?} {b:?}");
        if second_a == second_b {
            assert!(
                a.2 >= b.2,
                "within a second, highest score first: {a:?} {b:?}"
            );
        }
    }
}

#[tokio::test]
async fn scores_do_not_depend_on_how_the_rows_were_read() {
    let mut records = heart_rates();
    let whole = rows(&run(&records, 500).await, "TEMP_STREAM");
    let small = rows(&run(&records, 7).await, "TEMP_STREAM");
    // Out of order within the lateness: pairs swapped.
    for pair in records.chunks_mut(2) {
        pair.swap(0, 1);
    }
    let swapped = rows(&run(&records, 33).await, "TEMP_STREAM");
    let sorted = |mut r: Vec<(i64, i32, f64)>| {
        r.sort_by_key(|r| r.0);
        r
    };
    let whole = sorted(whole);
    assert_eq!(sorted(small), whole);
    assert_eq!(sorted(swapped), whole);
}

/// Why `code` is refused, when read or when planned.
async fn refusal(code: &str) -> AnalyticsError {
    match sql::parse(code) {
        Err(e) => e,
        Ok(parsed) => {
            let decoder = Decoder::new(&schema()).unwrap();
            Pipeline::new(&parsed, INPUT, decoder.schema())
                .await
                .err()
                .expect("refused")
        }
    }
}

#[tokio::test]
async fn a_forest_that_cannot_run_is_refused_where_it_is_written() {
    let stream = r#"CREATE OR REPLACE STREAM "O" (r INTEGER, s DOUBLE);"#;
    for (pump, message) in [
        (
            r#"SELECT STREAM "heartRate", RANDOM_CUT_FOREST("heartRate") FROM "SOURCE_SQL_STREAM_001""#,
            "FROM TABLE(RANDOM_CUT_FOREST(CURSOR(",
        ),
        (
            r#"SELECT STREAM "heartRate", ANOMALY_SCORE FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001"), 0))"#,
            "numberOfTrees is a whole number from 1 to 1000, not 0",
        ),
        (
            r#"SELECT STREAM "heartRate", ANOMALY_SCORE FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001"), 100, 256, 100000, 1, 9))"#,
            "at most four numbers",
        ),
        (
            r#"SELECT STREAM 1, ANOMALY_SCORE FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM "rateType" FROM "SOURCE_SQL_STREAM_001")))"#,
            "no numeric column",
        ),
        (
            r#"SELECT STREAM MAX("heartRate"), MAX(ANOMALY_SCORE) FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001")))
               GROUP BY STEP(ROWTIME BY INTERVAL '1' MINUTE)"#,
            "per-row query",
        ),
        (
            r#"SELECT STREAM 1, 2.0 FROM TABLE(RANDOM_CUT_FOREST_WITH_EXPLANATION(CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001")))"#,
            "RANDOM_CUT_FOREST_WITH_EXPLANATION is not supported yet",
        ),
        (
            r#"SELECT STREAM "heartRate", 1.0 FROM "SOURCE_SQL_STREAM_001" ORDER BY "heartRate""#,
            "ORDER BY over a stream needs a tumbling window",
        ),
    ] {
        let code = format!(r#"{stream} CREATE OR REPLACE PUMP "P" AS INSERT INTO "O" {pump};"#);
        let refused = refusal(&code).await;
        assert!(refused.to_string().contains(message), "{pump}: {refused}");
    }
}

#[tokio::test]
async fn ordered_windows_and_forests_that_cannot_run_are_refused() {
    let streams = r#"CREATE OR REPLACE STREAM "O" (r INTEGER, s DOUBLE);
                     CREATE OR REPLACE STREAM "T" (r INTEGER, s DOUBLE);"#;
    let deep = format!(
        r#"CREATE OR REPLACE PUMP "P" AS INSERT INTO "O" SELECT STREAM "heartRate", ANOMALY_SCORE
           FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001" WHERE {})));"#,
        (0..400)
            .map(|i| format!(r#""heartRate" = {i}"#))
            .collect::<Vec<_>>()
            .join(" OR ")
    );
    for (code, message) in [
        (deep.as_str(), "operators"),
        (
            r#"CREATE OR REPLACE PUMP "P" AS INSERT INTO "O" SELECT STREAM "heartRate", 1.0 FROM "SOURCE_SQL_STREAM_001"
               ORDER BY "heartRate", FLOOR("SOURCE_SQL_STREAM_001".ROWTIME TO SECOND);"#,
            "first key",
        ),
        (
            r#"CREATE OR REPLACE PUMP "P" AS INSERT INTO "O" SELECT STREAM DISTINCT "heartRate", 1.0 FROM "SOURCE_SQL_STREAM_001"
               ORDER BY FLOOR("SOURCE_SQL_STREAM_001".ROWTIME TO SECOND);"#,
            "DISTINCT",
        ),
        (
            r#"CREATE OR REPLACE PUMP "P" AS INSERT INTO "T" SELECT STREAM "heartRate", 1.0 FROM "SOURCE_SQL_STREAM_001";
               CREATE OR REPLACE PUMP "P" AS INSERT INTO "O" SELECT STREAM r, s FROM "T";"#,
            "created twice",
        ),
        (
            r#"CREATE OR REPLACE PUMP "SORT" AS INSERT INTO "T" SELECT STREAM "heartRate", 1.0 FROM "SOURCE_SQL_STREAM_001"
               ORDER BY FLOOR("SOURCE_SQL_STREAM_001".ROWTIME TO MINUTE), "heartRate";
               CREATE OR REPLACE PUMP "COUNT" AS INSERT INTO "O" SELECT STREAM COUNT(*), 1.0 FROM "T"
               GROUP BY STEP("T".ROWTIME BY INTERVAL '10' SECOND);"#,
            "window the rows before ordering them",
        ),
        (
            r#"CREATE OR REPLACE STREAM "RANDOM_CUT_FOREST(P)" (r INTEGER);"#,
            "the name is a RANDOM_CUT_FOREST's",
        ),
        (
            r#"CREATE OR REPLACE PUMP "P" AS INSERT INTO "T" SELECT STREAM "heartRate", ANOMALY_SCORE
               FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001")));
               CREATE OR REPLACE PUMP "Q" AS INSERT INTO "O" SELECT STREAM "heartRate", ANOMALY_SCORE FROM "RANDOM_CUT_FOREST(P)";"#,
            "read by its own pump only",
        ),
    ] {
        let code = format!("{streams} {code}");
        let refused = refusal(&code).await;
        assert!(refused.to_string().contains(message), "{code}: {refused}");
    }
}

#[tokio::test]
async fn a_wildcard_leaves_rowtime_out() {
    let decoder = Decoder::new(&schema()).unwrap();
    let code = sql::parse(
        r#"CREATE OR REPLACE STREAM "O" ("heartRate" INTEGER, "rateType" VARCHAR(20));
           CREATE OR REPLACE PUMP "P" AS INSERT INTO "O" SELECT STREAM * FROM "SOURCE_SQL_STREAM_001";"#,
    )
    .unwrap();
    let mut pipeline = Pipeline::new(&code, INPUT, decoder.schema()).await.unwrap();
    let records = heart_rates();
    let (batch, _) = decoder
        .decode(records[..3].iter().map(|(d, t)| (d.as_slice(), *t)))
        .unwrap();
    let produced = pipeline.push(batch).await.unwrap();
    let out = &produced[0].1;
    assert_eq!(out.num_columns(), 3, "ROWTIME and the two columns");
    let times = out
        .column(0)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .unwrap();
    assert_eq!(times.values().to_vec(), [1_000_000, 1_000_100, 1_000_200]);
}
