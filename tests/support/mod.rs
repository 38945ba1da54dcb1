//! Shared by the tests that build C and C++ programs against `librrra.a` and run them
//! (`tests/c_abi.rs`, `tests/cpp_faiss.rs`): the freshly built static library, scratch
//! directories, running a program with a time limit, and tools that CI must have.

#![allow(dead_code)] // each test crate uses its own subset

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The static library, freshly built. `cargo test` builds the library only as an rlib for the
/// Rust tests, so this asks cargo for the staticlib of the same profile into the same target
/// directory (a no-op when it is current). The test binary lives in `target/<profile>/deps/`.
pub fn static_lib() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("current_exe");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .unwrap_or_else(|| panic!("cannot find the target directory above {}", exe.display()));
            let target_dir = profile_dir.parent().expect("target directory");
            let profile = profile_dir.file_name().and_then(|n| n.to_str()).expect("profile name");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(&cargo);
            cmd.args(["build", "--lib", "--quiet", "--manifest-path"])
                .arg(manifest_dir().join("Cargo.toml"))
                .arg("--target-dir")
                .arg(target_dir);
            if profile != "debug" {
                cmd.args(["--profile", if profile == "release" { "release" } else { profile }]);
            }
            let status = cmd.status().unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
            assert!(status.success(), "building the static library failed: {cmd:?}");
            let lib = profile_dir.join("librrra.a");
            assert!(lib.is_file(), "{} is missing after `cargo build --lib`", lib.display());
            lib
        })
        .clone()
}

/// A fresh, empty scratch directory `<suite>/<variant>` under cargo's per-test temp dir.
pub fn scratch_dir(suite: &str, variant: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(suite).join(variant);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Compiler flags for AddressSanitizer + UndefinedBehaviorSanitizer builds.
pub const SANITIZE: &[&str] = &[
    "-fsanitize=address,undefined",
    // UBSan findings must fail the run, not just print.
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-g",
];

/// Runtime options for a program built with [`SANITIZE`].
pub fn sanitizer_env(cmd: &mut Command) {
    cmd.env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1")
        // LeakSanitizer needs no suppressions: Rust's thread-locals (the error message of
        // rrra_last_error) are freed by TLS destructors, which glibc runs at thread exit and,
        // for the main thread, in exit() before LSan's check. Add a suppressions file (and
        // LSAN_OPTIONS=suppressions=...) only for a proven false positive, never for a real leak.
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1");
}

pub struct RunResult {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `cmd` to completion, or kills it after `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> RunResult {
    let shown = format!("{cmd:?}");
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("wait for {shown}: {e}")) {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{shown} did not finish within {timeout:?}; killed\n--- stdout\n{}\n--- stderr\n{}",
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    RunResult {
        success: status.success(),
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// Runs a build step (compiler, cmake, pkg-config) and panics with its output if it fails;
/// returns its stdout. `what` says what was being done.
pub fn run_tool(cmd: Command, what: &str, timeout: Duration) -> String {
    let shown = format!("{cmd:?}");
    let r = run_with_timeout(cmd, timeout);
    assert!(
        r.success,
        "{what} failed (exit {:?})\ncommand: {shown}\n--- stdout\n{}\n--- stderr\n{}",
        r.code, r.stdout, r.stderr
    );
    r.stdout
}

/// Prints a test program's output and checks its exit status and its last
/// "<program>: N passed, 0 failed" line (N > 0).
pub fn check_summary(program: &str, variant: &str, r: &RunResult) {
    println!("===== {variant}: exit {:?} after {:.2?}", r.code, r.elapsed);
    println!("--- stdout\n{}", r.stdout);
    if !r.stderr.trim().is_empty() {
        println!("--- stderr\n{}", r.stderr);
    }
    let prefix = format!("{program}: ");
    let summary = r.stdout.lines().rev().find(|l| l.starts_with(&prefix));
    let passed = summary
        .and_then(|l| l.strip_prefix(&prefix))
        .and_then(|l| l.strip_suffix(" passed, 0 failed"))
        .and_then(|n| n.parse::<u32>().ok());
    assert!(
        r.success && passed.is_some_and(|n| n > 0),
        "{variant}: {program} failed (exit {:?}; summary {:?}); its output is printed above\n--- stdout\n{}\n--- stderr\n{}",
        r.code,
        summary,
        r.stdout,
        r.stderr
    );
}

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// For an optional tool or library: true when `present`. Otherwise, where `CI` is set, fails
/// the test (CI must install it); on a developer machine, prints a skip line and returns false.
pub fn require(present: bool, what: &str, debian_packages: &str) -> bool {
    if present {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} not found, and CI is set: CI must install it (Debian: apt-get install {debian_packages}; see .ci/run)"
    );
    println!("skipping: {what} not found (Debian: apt-get install {debian_packages})");
    false
}
