//! The C test programs (tests/c) and the examples, compiled by the system C compiler with
//! AddressSanitizer against libsluice and run: every check in them must pass, with no ASan
//! or LeakSanitizer report.

use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding libsluice.so for this build (target/<profile>).
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    for dir in [profile_dir.clone(), profile_dir.join("deps")] {
        if dir.join("libsluice.so").exists() {
            return dir;
        }
    }
    panic!("libsluice.so not found next to {}", exe.display());
}

/// Compiles `sources` into `output` with ASan, linked to libsluice.
fn compile(sources: &[PathBuf], output: &Path) {
    let lib = library_dir();
    let status = Command::new("cc")
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-g",
            "-fsanitize=address",
            "-fno-omit-frame-pointer",
        ])
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg("-I")
        .arg(crate_dir().join("tests/c"))
        .args(sources)
        .arg("-o")
        .arg(output)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lsluice", "-lpthread"])
        .status()
        .expect("a C compiler (cc) is installed");
    assert!(status.success(), "compiling {sources:?} failed");
}

/// Runs a compiled program; it must exit 0 with no sanitizer report.
fn run(program: &Path, args: &[&Path]) -> String {
    let output = Command::new(program)
        .args(args)
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:exitcode=86",
        )
        .output()
        .expect("run the program");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.contains("Sanitizer"),
        "{} failed ({}):\n{stdout}\n{stderr}",
        program.display(),
        output.status
    );
    stdout
}

fn build_and_run(name: &str, sources: &[&str]) -> String {
    let work = tempfile::tempdir().unwrap();
    let program = work.path().join(name);
    let sources: Vec<PathBuf> = sources.iter().map(|s| crate_dir().join(s)).collect();
    compile(&sources, &program);
    let data = work.path().join("data");
    run(&program, &[&data])
}

#[test]
fn every_function_and_its_error_paths_pass_under_asan() {
    let out = build_and_run("api", &["tests/c/api.c"]);
    assert!(out.contains("api: all checks passed"), "{out}");
}

#[test]
fn producer_threads_and_a_consumer_thread_see_every_record_once_in_order() {
    let out = build_and_run("threads", &["tests/c/threads.c"]);
    assert!(out.contains("4000 records read back exactly once"), "{out}");
}
