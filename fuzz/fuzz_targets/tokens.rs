//! Iterator and ListShards tokens: arbitrary text, and arbitrary payloads signed with the
//! engine's key (so the fuzzer gets past the signature), must decode to a valid iterator or
//! page, or to a clean error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::{CreateStream, Engine, EngineConfig, ErrorCode, ListShards};
use std::sync::OnceLock;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<(tempfile::TempDir, Engine)> = OnceLock::new();
    &ENGINE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let mut config = EngineConfig::new(dir.path());
            config.cores = 1;
            config.segment_size_bytes = 1 << 20;
            let engine = Engine::open(config).unwrap();
            engine.create_stream(CreateStream::provisioned("s", 3)).wait().unwrap();
            (dir, engine)
        })
        .1
}

fuzz_target!(|data: &[u8]| {
    let engine = engine();
    let Some((&mode, rest)) = data.split_first() else { return };
    let token = match mode % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        _ => engine.fuzz_seal_token(rest),
    };
    match engine.iterator_from_token(&token) {
        Ok(mut iterator) => {
            // A token that decodes names a real shard: reading it works or fails cleanly.
            let _ = engine.get_records(&mut iterator, Some(10));
        }
        Err(e) => assert!(
            matches!(e.code(), ErrorCode::InvalidArgument | ErrorCode::ExpiredIterator | ErrorCode::ResourceNotFound),
            "{e}"
        ),
    }
    let page = engine.list_shards(&ListShards { next_token: Some(token), ..ListShards::default() });
    if let Err(e) = page {
        assert!(
            matches!(e.code(), ErrorCode::InvalidArgument | ErrorCode::ExpiredNextToken | ErrorCode::ResourceNotFound | ErrorCode::Validation),
            "{e}"
        );
    }
});
