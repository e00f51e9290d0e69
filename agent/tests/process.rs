//! The processing options on the agent documentation's own examples and on lines that do
//! not fit: what the Java agent makes of them, byte for byte.

use sluice_agent::process::{LogFormat, Processor, process};

fn text(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| String::from_utf8(b).unwrap())
}

fn log(format: LogFormat, line: &str) -> Option<String> {
    text(
        Processor::log_to_json(format, None, None)
            .unwrap()
            .apply(line.as_bytes()),
    )
}

#[test]
fn single_line_trims_each_line_and_joins_them() {
    let record = "{\n  \"a\": 1,\n  \"b\": 1,\n  \"c\"\n}\n\n";
    assert_eq!(
        text(Processor::SingleLine.apply(record.as_bytes())).unwrap(),
        "{\"a\": 1,\"b\": 1,\"c\"}\n"
    );
}

#[test]
fn csv_fields_are_named_in_order_missing_ones_null() {
    let names = |n: usize| (1..=n).map(|i| format!("column{i}")).collect::<Vec<_>>();
    let csv = Processor::csv_to_json(names(4), None).unwrap();
    assert_eq!(
        text(csv.apply(b"value1, value2,value3\n")).unwrap(),
        "{\"column1\":\"value1\",\"column2\":\" value2\",\"column3\":\"value3\",\"column4\":null}\n"
    );
    // Empty fields at the end are left out, as Java's split leaves them; extra ones too.
    assert_eq!(
        text(
            Processor::csv_to_json(names(2), None)
                .unwrap()
                .apply(b"a,,\n")
        )
        .unwrap(),
        "{\"column1\":\"a\",\"column2\":null}\n"
    );
    let tabs = Processor::csv_to_json(names(2), Some("\\t")).unwrap();
    assert_eq!(
        text(tabs.apply(b"x\ty\tz\n")).unwrap(),
        "{\"column1\":\"x\",\"column2\":\"y\"}\n"
    );
    assert!(Processor::csv_to_json(Vec::new(), None).is_err());
}

#[test]
fn apache_logs_become_json_with_dashes_null() {
    assert_eq!(
        log(
            LogFormat::CommonApache,
            "123.45.67.89 - - [27/Oct/2000:09:27:09 -0400] \"GET /java/javaResources.html HTTP/1.0\" 200 10450\n"
        )
        .unwrap(),
        "{\"host\":\"123.45.67.89\",\"ident\":null,\"authuser\":null,\"datetime\":\"27/Oct/2000:09:27:09 -0400\",\"request\":\"GET /java/javaResources.html HTTP/1.0\",\"response\":\"200\",\"bytes\":\"10450\"}\n"
    );
    assert_eq!(
        log(
            LogFormat::CombinedApache,
            "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326 \"http://www.example.com/start.html\" \"Mozilla/4.08 [en] (Win98; I ;Nav)\""
        )
        .unwrap(),
        "{\"host\":\"127.0.0.1\",\"ident\":null,\"authuser\":\"frank\",\"datetime\":\"10/Oct/2000:13:55:36 -0700\",\"request\":\"GET /apache_pb.gif HTTP/1.0\",\"response\":\"200\",\"bytes\":\"2326\",\"referer\":\"http://www.example.com/start.html\",\"agent\":\"Mozilla/4.08 [en] (Win98; I ;Nav)\"}\n"
    );
    assert_eq!(
        log(
            LogFormat::ApacheError,
            "[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist: /usr/local/apache2/htdocs/favicon.ico"
        )
        .unwrap(),
        "{\"timestamp\":\"Fri Sep 09 10:42:29.902022 2011\",\"module\":\"core\",\"severity\":\"error\",\"processid\":\"35708\",\"threadid\":\"4328636416\",\"client\":\"72.15.99.187\",\"message\":\"File does not exist: /usr/local/apache2/htdocs/favicon.ico\"}\n"
    );
    // A line that is not the format's, or ends in a carriage return, is dropped.
    assert_eq!(log(LogFormat::CommonApache, "not a log line\n"), None);
    assert_eq!(
        log(
            LogFormat::CommonApache,
            "1.2.3.4 - - [27/Oct/2000:09:27:09 -0400] \"GET / HTTP/1.0\" 200 1\r\n"
        ),
        None
    );
}

#[test]
fn syslog_lines_become_json() {
    assert_eq!(
        log(
            LogFormat::Syslog,
            "Mar 12 12:00:08 server2 rcd[308]: Loaded 12 packages in 'ximian-red-carpet|351' (0.01878 seconds)\n"
        )
        .unwrap(),
        "{\"timestamp\":\"Mar 12 12:00:08\",\"hostname\":\"server2\",\"program\":\"rcd\",\"processid\":\"308\",\"message\":\"Loaded 12 packages in 'ximian-red-carpet|351' (0.01878 seconds)\"}\n"
    );
    // No [pid]: NULL; syslog keeps a dash as it is.
    assert_eq!(
        log(LogFormat::Syslog, "Mar  2 01:00:00 host cron: - done").unwrap(),
        "{\"timestamp\":\"Mar  2 01:00:00\",\"hostname\":\"host\",\"program\":\"cron\",\"processid\":null,\"message\":\"- done\"}\n"
    );
    assert_eq!(
        log(
            LogFormat::Rfc3339Syslog,
            "2026-12-05T21:00:00.123+01:00 web1 nginx[12]: started"
        )
        .unwrap(),
        "{\"timestamp\":\"2026-12-05T21:00:00.123+01:00\",\"hostname\":\"web1\",\"program\":\"nginx\",\"processid\":\"12\",\"message\":\"started\"}\n"
    );
    assert_eq!(
        log(
            LogFormat::Rfc5424Syslog,
            "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed for lonvick on /dev/pts/8"
        )
        .unwrap(),
        "{\"priority\":\"34\",\"version\":\"1\",\"timestamp\":\"2003-10-11T22:14:15.003Z\",\"hostname\":\"mymachine.example.com\",\"program\":\"su\",\"processid\":null,\"messageid\":\"ID47\",\"structureddata\":null,\"message\":\"'su root' failed for lonvick on /dev/pts/8\"}\n"
    );
}

#[test]
fn a_match_pattern_names_its_groups_and_options_chain_in_order() {
    let custom = Processor::log_to_json(
        LogFormat::CommonApache,
        Some(r"(\w+) took (\d+) ?ms"),
        Some(vec!["call".into(), "ms".into()]),
    )
    .unwrap();
    assert_eq!(
        text(custom.apply(b"fetch took 12 ms\n")).unwrap(),
        "{\"call\":\"fetch\",\"ms\":\"12\"}\n"
    );
    // A pattern must match the whole line; its groups and names must agree.
    assert_eq!(custom.apply(b"fetch took 12 ms and more\n"), None);
    assert!(
        Processor::log_to_json(LogFormat::Syslog, Some("(a)(b)"), Some(vec!["a".into()])).is_err()
    );
    assert!(Processor::log_to_json(LogFormat::Syslog, Some("(a)"), None).is_err());
    assert!(Processor::log_to_json(LogFormat::Syslog, None, Some(vec!["a".into()])).is_err());
    // SINGLELINE first makes a multi-line record one line the pattern can match (its
    // lines joined with nothing between them, as the agent joins them).
    let chain = [Processor::SingleLine, custom, Processor::AddBrackets];
    assert_eq!(
        text(process(&chain, b"fetch took 12\n  ms\n".to_vec())).unwrap(),
        "{{\"call\":\"fetch\",\"ms\":\"12\"}\n}"
    );
}

#[test]
fn metadata_goes_first_and_a_field_named_twice_is_refused() {
    let add = Processor::AddMetadata {
        metadata: serde_json::json!({"host": "web1"}),
    };
    assert_eq!(
        text(add.apply(b"GET / 200\n")).unwrap(),
        "{\"metadata\":{\"host\":\"web1\"},\"data\":\"GET / 200\"}\n"
    );
    let twice = Processor::csv_to_json(vec!["a".into(), "a".into()], None).unwrap_err();
    assert!(twice.to_string().contains("a is named twice"), "{twice}");
}
