//! The state's files against the real filesystem: what a change writes, what a reopen
//! reads, torn and damaged journals.

use super::*;
use std::os::unix::fs::MetadataExt as _;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn consumer(name: &str) -> Consumer {
    Consumer {
        name: name.to_owned(),
        created_ms: 1,
        tags: BTreeMap::new(),
        policy: None,
    }
}

/// Sets stream `name`'s policy (making its extras).
async fn set_policy(state: &ServerState, name: &str, policy: &str) {
    state
        .update(|s| {
            s.stream_mut(name, 7)?.policy = Some(policy.to_owned());
            Ok(())
        })
        .await
        .unwrap();
}

async fn add_consumer(state: &ServerState, stream: &str, name: &str) {
    state
        .update(|s| {
            s.stream_mut(stream, 7)?.consumers.push(consumer(name));
            Ok(())
        })
        .await
        .unwrap();
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn a_change_writes_the_stream_it_changes_not_the_whole_state() {
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        "{{\"Statement\": [], \"Padding\": \"{}\"}}",
        "x".repeat(20_000)
    );
    runtime().block_on(async {
        let state = ServerState::open(dir.path()).unwrap();
        for i in 0..400 {
            set_policy(&state, &format!("stream-{i}"), &policy).await;
        }
        // 8 MB of policies: the journal was folded into a snapshot along the way.
        let snapshot = dir.path().join(SNAPSHOT);
        let journal = dir.path().join(JOURNAL);
        assert!(
            len(&snapshot) > 4_000_000,
            "snapshot {} bytes",
            len(&snapshot)
        );
        let inode = std::fs::metadata(&snapshot).unwrap().ino();
        let before = len(&journal);
        add_consumer(&state, "stream-7", "c").await;
        let grew = len(&journal) - before;
        assert!(grew < 64 << 10, "one consumer wrote {grew} bytes");
        assert_eq!(
            std::fs::metadata(&snapshot).unwrap().ino(),
            inode,
            "the snapshot was not rewritten"
        );
    });
}

#[test]
fn a_reopened_state_is_the_state_before_through_compactions_and_removals() {
    let dir = tempfile::tempdir().unwrap();
    let big = "p".repeat(100_000);
    let expected = runtime().block_on(async {
        let state = ServerState::open(dir.path()).unwrap();
        for round in 0..30 {
            for i in 0..5 {
                set_policy(&state, &format!("s{i}"), &format!("{round}{big}")).await;
            }
            add_consumer(&state, "s1", &format!("c{round}")).await;
            if round % 7 == 0 {
                state
                    .update(|s| {
                        s.forget_stream("s3", 7);
                        s.billing_commitment = Some(format!("round {round}"));
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
        }
        state.read(Persisted::clone)
    });
    let reopened = ServerState::open(dir.path()).unwrap();
    assert_eq!(reopened.read(Persisted::clone), expected);
    assert_eq!(expected.stream("s1", 7).unwrap().consumers.len(), 30);
}

#[test]
fn a_torn_last_frame_is_dropped_and_the_next_change_follows_the_last_whole_one() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join(JOURNAL);
    runtime().block_on(async {
        let state = ServerState::open(dir.path()).unwrap();
        add_consumer(&state, "s", "acknowledged").await;
    });
    let whole = len(&journal);
    // A second change cut short by a crash: its header and half its payload.
    runtime().block_on(async {
        let state = ServerState::open(dir.path()).unwrap();
        add_consumer(&state, "s", "torn").await;
    });
    let with_torn = len(&journal);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len(whole + (with_torn - whole) / 2)
        .unwrap();
    runtime().block_on(async {
        let state = ServerState::open(dir.path()).unwrap();
        let names = |state: &ServerState| {
            state.read(|s| {
                s.stream("s", 7)
                    .map(|e| {
                        e.consumers
                            .iter()
                            .map(|c| c.name.clone())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
        };
        assert_eq!(names(&state), ["acknowledged"]);
        assert_eq!(len(&journal), whole, "cut at the last whole frame");
        add_consumer(&state, "s", "after").await;
        let reopened = ServerState::open(dir.path()).unwrap();
        assert_eq!(names(&reopened), ["acknowledged", "after"]);
    });
}

#[test]
fn a_damaged_frame_before_the_end_is_refused_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join(JOURNAL);
    runtime().block_on(async {
        let state = ServerState::open(dir.path()).unwrap();
        for name in ["a", "b", "c"] {
            add_consumer(&state, "s", name).await;
        }
    });
    let bytes = std::fs::read(&journal).unwrap();
    // A byte inside the first frame's payload, then one in its length field.
    for at in [40, 5] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x20;
        std::fs::write(&journal, &damaged).unwrap();
        let error = ServerState::open(dir.path()).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        assert!(
            error
                .to_string()
                .contains("server-state.journal is damaged"),
            "{error}"
        );
    }
    // Undamaged, it opens with all three.
    std::fs::write(&journal, &bytes).unwrap();
    let state = ServerState::open(dir.path()).unwrap();
    assert_eq!(state.read(|s| s.stream("s", 7).unwrap().consumers.len()), 3);
}

#[test]
fn the_state_files_are_the_owner_s_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let state = ServerState::open(dir.path()).unwrap();
        add_consumer(&state, "s", "c").await;
    });
    let mode = |name: &str| {
        std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(JOURNAL), 0o600);
}

#[test]
fn a_last_frame_whose_header_is_garbage_is_a_torn_write_too() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join(JOURNAL);
    runtime().block_on(async {
        let state = ServerState::open(dir.path()).unwrap();
        add_consumer(&state, "s", "kept").await;
    });
    let whole = len(&journal);
    // A crash left zeroed pages after the last whole frame (its header never written).
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&journal, &bytes).unwrap();
    let state = ServerState::open(dir.path()).unwrap();
    assert_eq!(state.read(|s| s.stream("s", 7).unwrap().consumers.len()), 1);
    assert_eq!(len(&journal), whole);
}
