//! The C test programs (tests/c) and the examples, compiled by the system C compiler with
//! AddressSanitizer against libsluice and run: every check in them must pass, with no ASan
//! or LeakSanitizer report.

use std::path::{Path, PathBuf};
use std::process::Command;

use sluice_storage::testing::{needs, runs};

/// A C compiler, `cc`.
fn needs_cc() -> bool {
    needs(
        runs("cc", &["--version"]),
        "a C compiler (cc) with AddressSanitizer",
        "run scripts/setup as root (it installs gcc and libc6-dev with apt-get), or install one",
    )
}

/// pkg-config, as C users find the library.
fn needs_pkg_config() -> bool {
    needs(
        runs("pkg-config", &["--version"]),
        "pkg-config",
        "run scripts/setup as root (it installs pkg-config with apt-get), or install it",
    )
}

/// python3, for the ctypes example.
fn needs_python3() -> bool {
    needs(
        runs("python3", &["--version"]),
        "python3",
        "run scripts/setup as root (it installs python3 with apt-get), or install it",
    )
}

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding this build's libsluice.so: `cargo test` builds it in
/// target/<profile>/deps; `cargo build` also copies it to target/<profile>, where an older
/// copy may linger. The newest one is this build's.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    [profile_dir.join("deps"), profile_dir]
        .into_iter()
        .filter_map(|dir| {
            let modified = std::fs::metadata(dir.join("libsluice.so"))
                .ok()?
                .modified()
                .ok()?;
            Some((modified, dir))
        })
        .max()
        .map(|(_, dir)| dir)
        .unwrap_or_else(|| panic!("libsluice.so not found near {}", exe.display()))
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
        // cargo's LD_LIBRARY_PATH may name another copy of the library first; the program's
        // rpath names this build's.
        .env_remove("LD_LIBRARY_PATH")
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
    if !needs_cc() {
        return;
    }
    let out = build_and_run("api", &["tests/c/api.c"]);
    assert!(out.contains("api: all checks passed"), "{out}");
}

#[test]
fn every_bound_and_code_the_header_states_holds_under_asan() {
    if !needs_cc() {
        return;
    }
    let out = build_and_run("promises", &["tests/c/promises.c"]);
    assert!(out.contains("promises: all checks passed"), "{out}");
}

#[test]
fn every_error_detail_names_the_c_function_and_argument_and_reads_right() {
    if !needs_cc() {
        return;
    }
    let out = build_and_run("messages", &["tests/c/messages.c"]);
    assert!(out.contains("messages: all checks passed"), "{out}");
}

/// Compiles a one-line program that includes sluice.h with `standard`; returns whether it
/// compiled and the compiler's messages.
fn compile_header_with(standard: &str) -> (bool, String) {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("include.c");
    std::fs::write(
        &source,
        "#include \"sluice.h\"\nint main(void) { return SLUICE_OK; }\n",
    )
    .unwrap();
    let output = Command::new("cc")
        .arg(format!("-std={standard}"))
        .args(["-pedantic", "-Wall", "-Wextra", "-Werror", "-c"])
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(&source)
        .arg("-o")
        .arg(work.path().join("include.o"))
        .output()
        .expect("a C compiler (cc) is installed");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_header_compiles_as_c99_and_says_it_needs_c99_to_an_older_compiler() {
    if !needs_cc() {
        return;
    }
    for standard in ["c99", "c11"] {
        let (compiled, messages) = compile_header_with(standard);
        assert!(compiled, "-std={standard}: {messages}");
    }
    let (compiled, messages) = compile_header_with("c89");
    assert!(!compiled);
    assert!(
        messages.contains("sluice.h requires C99 or later"),
        "{messages}"
    );
}

#[test]
fn producer_threads_and_a_consumer_thread_see_every_record_once_in_order() {
    if !needs_cc() {
        return;
    }
    let out = build_and_run("threads", &["tests/c/threads.c"]);
    assert!(out.contains("4000 records read back exactly once"), "{out}");
}

/// A consumer commits durably, everything is freed (the engine closes), and after a reopen it
/// resumes strictly after its committed record; a visible commit survives the engine's close.
#[test]
fn a_consumer_commits_closes_reopens_and_resumes_after_its_position() {
    if !needs_cc() {
        return;
    }
    let out = build_and_run("consumer", &["tests/c/consumer.c"]);
    assert!(
        out.contains("consumer: resumed after job-3 with job-4..job-9 across two reopens"),
        "{out}"
    );
}

/// A batch's records stay valid until `sluice_batch_free`, across its engine's close and an
/// engine reopened on the same directory that expires their segment and rolls past it
/// (docs/design/leases.md).
#[test]
fn a_batch_held_across_an_engine_close_keeps_its_bytes_through_retention_and_rolls() {
    if !needs_cc() {
        return;
    }
    let out = build_and_run("held_batch", &["tests/c/held_batch.c"]);
    assert!(
        out.contains("held_batch: 100 held records unchanged"),
        "{out}"
    );
}

/// The README's first C example, as a user pastes it (the README must hold it verbatim).
const README_COMMAND: &str = "cc app.c $(pkg-config --cflags --libs sluice) -o app";

/// Into a prefix of one's own: install-c strips the library, leaves ldconfig alone (it says
/// so), and the README's command, with nothing added, builds a program that finds the
/// library without LD_LIBRARY_PATH.
#[test]
fn the_c_example_builds_with_pkg_config_after_the_documented_install() {
    if !(needs_cc() && needs_pkg_config()) {
        return;
    }
    let readme = std::fs::read_to_string(crate_dir().join("README.md")).unwrap();
    assert!(
        readme.contains(README_COMMAND),
        "README.md lacks {README_COMMAND}"
    );
    let work = tempfile::tempdir().unwrap();
    let prefix = work.path().join("prefix");
    let install = Command::new(crate_dir().join("../scripts/install-c"))
        .arg("--prefix")
        .arg(&prefix)
        .arg("--from")
        .arg(library_dir())
        .output()
        .expect("run scripts/install-c");
    let said = String::from_utf8_lossy(&install.stdout);
    assert!(install.status.success(), "{said}");
    assert!(said.contains("not running ldconfig"), "{said}");
    let sections = Command::new("readelf")
        .arg("-S")
        .arg(prefix.join("lib/libsluice.so"))
        .output()
        .expect("readelf (binutils, beside strip) is installed");
    let sections = String::from_utf8_lossy(&sections.stdout);
    assert!(sections.contains(".dynsym") && !sections.contains(".symtab"));
    // The README's command: cc app.c $(pkg-config --cflags --libs sluice) -o app.
    let pkg_config = Command::new("pkg-config")
        .args(["--cflags", "--libs", "sluice"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("pkg-config is installed");
    assert!(pkg_config.status.success());
    let flags = String::from_utf8(pkg_config.stdout).unwrap();
    let program = work.path().join("producer_consumer");
    let compiled = Command::new("cc")
        .arg(crate_dir().join("examples/producer_consumer.c"))
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&program)
        .status()
        .unwrap();
    assert!(compiled.success());
    let output = Command::new(&program)
        .arg(work.path().join("data"))
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("greeter: hello") && stdout.contains("read 3 records"),
        "{stdout}"
    );
}

#[test]
fn the_python_ctypes_example_reads_back_what_it_put() {
    if !needs_python3() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let output = Command::new("python3")
        .arg(crate_dir().join("examples/ctypes_example.py"))
        .arg(work.path().join("data"))
        .env("SLUICE_LIB", library_dir().join("libsluice.so"))
        .output()
        .expect("python3 is installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("python: read back hello from python"),
        "{stdout}"
    );
}
