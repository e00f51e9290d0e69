//! A second, independent SDK: the AWS SDK for JavaScript v3 (its Kinesis client speaks
//! HTTP/2 for every call, so this also runs the server's h2c path end to end): put, get,
//! list shards, errors and SubscribeToShard, all SigV4-signed and verified.

mod common;

use common::TestServer;
use std::path::Path;
use std::process::Command;

#[test]
fn the_javascript_sdk_puts_reads_lists_and_subscribes() {
    if !common::needs_js_sdk() {
        return;
    }
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/js");
    let dir = tempfile::tempdir().unwrap();
    // Signatures are verified: over HTTP/2 the host comes from the `:authority`.
    let server = TestServer::start(dir.path(), &["--credential", "AKIDEXAMPLE:secret"]);
    let output = Command::new("node")
        .arg("suite.mjs")
        .arg(server.endpoint())
        .current_dir(&js)
        .env("AWS_SDK_JS_SUPPRESS_NODE_VERSION_WARNING", "1")
        .output()
        .expect("running node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(
        output.status.success(),
        "the JavaScript suite failed:\n{text}"
    );
    assert!(text.contains("4 passed, 0 failed"), "{text}");
}
