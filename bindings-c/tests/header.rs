//! include/sluice.h is exactly what the pinned cbindgen generates from this crate, with the
//! version macros of this crate's version.

use std::path::Path;

/// The version macros, written after the includes: from the crate version, so the header
/// cannot name another version than the library built with it (`sluice_version()`).
fn version_macros() -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        "
// The version of libsluice this header belongs to; `sluice_version()` returns the
// loaded library's, for a program to compare.
#define SLUICE_VERSION_MAJOR {}
#define SLUICE_VERSION_MINOR {}
#define SLUICE_VERSION_PATCH {}
#define SLUICE_VERSION \"{version}\"",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    )
}

#[test]
fn the_checked_in_header_is_what_cbindgen_generates() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    config.after_includes = Some(version_macros());
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = crate_dir.join("include/sluice.h");
    if std::env::var_os("SLUICE_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "include/sluice.h is stale: run `SLUICE_UPDATE_HEADER=1 cargo test -p sluice-c --test header` and commit it"
    );
}
