//! The README's programs as a user runs them: each twice in the same directory (the second
//! run opens what the first created), and the README showing each program's code verbatim.

use std::path::Path;
use std::process::Command;

/// Runs a program of this crate in `dir`; its stdout, or a failure with its output.
fn run(program: &str, dir: &Path) -> String {
    let output = Command::new(program)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} failed ({}):\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The line `N records` the consumer ends with.
fn consumed(stdout: &str) -> usize {
    let last = stdout.lines().last().unwrap_or_default();
    last.strip_suffix(" records")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the consumer ended with {last:?}:\n{stdout}"))
}

#[test]
fn producer_and_consumer_run_twice_on_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (producer, consumer) = (
        env!("CARGO_BIN_EXE_producer"),
        env!("CARGO_BIN_EXE_consumer"),
    );
    assert_eq!(consumed(&run(consumer, dir.path())), 0, "nothing put yet");
    let first = run(producer, dir.path());
    assert_eq!(first.lines().count(), 10, "{first}");
    assert_eq!(consumed(&run(consumer, dir.path())), 10);
    let second = run(producer, dir.path());
    assert_eq!(second.lines().count(), 10, "{second}");
    let read = run(consumer, dir.path());
    assert_eq!(consumed(&read), 20);
    for n in 0..10 {
        let copies = read
            .lines()
            .filter(|l| l.ends_with(&format!(": order {n}")))
            .count();
        assert_eq!(copies, 2, "order {n} once per producer run:\n{read}");
    }
    assert!(dir.path().join("sluice-example-data").is_dir());
}

#[test]
fn the_shard_log_program_runs_twice_and_appends_after_its_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let program = env!("CARGO_BIN_EXE_shard-log");
    let seq = |stdout: &str| -> u64 {
        let line = stdout.lines().next().unwrap_or_default();
        assert!(line.ends_with(" [104, 101, 108, 108, 111]"), "{stdout}");
        line.split(' ').next().unwrap().parse().unwrap()
    };
    let first = seq(&run(program, dir.path()));
    let second = seq(&run(program, dir.path()));
    assert!(
        second > first,
        "the reopened log appends after {first}, not at {second}"
    );
}

#[test]
fn the_readme_shows_each_program_verbatim() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../../README.md")).unwrap();
    for program in ["producer", "consumer", "shard_log"] {
        let path = root.join(format!("src/bin/{program}.rs"));
        let source = std::fs::read_to_string(&path).unwrap();
        // The README block is the program without its `//!` header, which the prose says.
        let body: String = source
            .lines()
            .skip_while(|l| l.starts_with("//!") || l.is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        let block = format!("```rust,no_run\n{body}```");
        assert!(
            readme.contains(&block),
            "README.md must show {} as one ```rust,no_run block:\n{block}",
            path.display()
        );
    }
}
