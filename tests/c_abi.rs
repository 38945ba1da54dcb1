//! The C ABI as a C or C++ program sees it: builds `tests/c/api_test.c` against the
//! `librrra.a` that this same cargo invocation built, and runs it:
//!
//! - as C99, under AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer on);
//! - as C++17 (the same file), under the same sanitizers;
//! - as C99 without sanitizers, under Valgrind's memcheck.
//!
//! ASan and UBSan only instrument the C side: the Rust library is not compiled with them, so an
//! out-of-bounds read or write inside the library is Valgrind's to find. (Leaks are seen by
//! both: the library allocates through malloc, which LeakSanitizer intercepts.)
//!
//! Every build uses `-Wall -Wextra -Werror` (and `-pedantic` for C99): the header and the program
//! must compile warning-free in both languages. The compilers are `$CC` (default `cc`) and
//! `$CXX` (default `c++`). Valgrind is optional on a developer machine (the test says it skipped
//! the run) and required where `CI` is set.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a single run of api_test may take (Valgrind included) before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The static library, freshly built. `cargo test` builds the library only as an rlib for the
/// Rust tests, so this asks cargo for the staticlib of the same profile into the same target
/// directory (a no-op when it is current). The test binary lives in `target/<profile>/deps/`.
fn static_lib() -> PathBuf {
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

/// A fresh scratch directory for one variant.
fn scratch_dir(variant: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_abi").join(variant);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

fn api_test() -> PathBuf {
    manifest_dir().join("tests/c/api_test.c")
}

enum Lang {
    C99,
    Cxx17,
}

/// Compiles `source` into `dir/<its stem>` and returns the executable's path.
fn compile(source: &Path, lang: Lang, extra_flags: &[&str], dir: &Path) -> PathBuf {
    let root = manifest_dir();
    let exe = dir.join(source.file_stem().expect("source file name"));
    let (compiler, lang_flags): (String, &[&str]) = match lang {
        Lang::C99 => (
            std::env::var("CC").unwrap_or_else(|_| "cc".into()),
            &["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"],
        ),
        // `-x c++` applies to every input after it, so `-x none` before the archive.
        Lang::Cxx17 => (
            std::env::var("CXX").unwrap_or_else(|_| "c++".into()),
            &["-x", "c++", "-std=c++17", "-Wall", "-Wextra", "-Werror"],
        ),
    };
    let mut cmd = Command::new(&compiler);
    cmd.args(lang_flags)
        .args(extra_flags)
        .arg("-pthread")
        .arg("-I")
        .arg(root.join("include"))
        .arg(source)
        .args(["-x", "none"])
        .arg(static_lib())
        .args(["-lpthread", "-ldl", "-lm"])
        .arg("-o")
        .arg(&exe);
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the compiler `{compiler}` (set CC / CXX to choose another): {e}"));
    assert!(
        out.status.success(),
        "compiling {} failed ({})\ncommand: {shown}\n--- stdout\n{}\n--- stderr\n{}",
        source.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

struct RunResult {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `cmd` to completion, or kills it after [`RUN_TIMEOUT`].
fn run_with_timeout(mut cmd: Command) -> RunResult {
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
        if let Some(status) = child.try_wait().expect("wait for api_test") {
            break status;
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{shown} did not finish within {RUN_TIMEOUT:?}; killed\n--- stdout\n{}\n--- stderr\n{}",
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

/// Prints the program's output and checks its exit status and summary line.
fn check_run(variant: &str, r: &RunResult) {
    println!("===== {variant}: exit {:?} after {:.2?}", r.code, r.elapsed);
    println!("--- stdout\n{}", r.stdout);
    if !r.stderr.trim().is_empty() {
        println!("--- stderr\n{}", r.stderr);
    }
    let summary = r.stdout.lines().rev().find(|l| l.starts_with("api_test: "));
    let passed = summary
        .and_then(|l| l.strip_prefix("api_test: "))
        .and_then(|l| l.strip_suffix(" passed, 0 failed"))
        .and_then(|n| n.parse::<u32>().ok());
    assert!(
        r.success && passed.is_some_and(|n| n > 0),
        "{variant}: api_test failed (exit {:?}; summary {:?}); its output is printed above\n--- stdout\n{}\n--- stderr\n{}",
        r.code,
        summary,
        r.stdout,
        r.stderr
    );
}

const SANITIZE: &[&str] = &[
    "-fsanitize=address,undefined",
    // UBSan findings must fail the run, not just print.
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-g",
];

fn run_sanitized(variant: &str, lang: Lang) {
    let dir = scratch_dir(variant);
    let exe = compile(&api_test(), lang, SANITIZE, &dir);
    let mut cmd = Command::new(&exe);
    cmd.arg(&dir)
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1")
        // LeakSanitizer needs no suppressions: Rust's thread-locals (the error message of
        // rrra_last_error) are freed by TLS destructors, which glibc runs at thread exit and,
        // for the main thread, in exit() before LSan's check. Add tests/c/lsan.supp (and
        // LSAN_OPTIONS=suppressions=...) only for a proven false positive, never for a real leak.
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1");
    check_run(variant, &run_with_timeout(cmd));
}

#[test]
fn c99_under_asan_and_ubsan() {
    run_sanitized("c99-asan", Lang::C99);
}

#[test]
fn cxx17_under_asan_and_ubsan() {
    run_sanitized("cxx17-asan", Lang::Cxx17);
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

#[test]
fn c99_under_valgrind() {
    if !on_path("valgrind") {
        assert!(
            std::env::var_os("CI").is_none(),
            "valgrind not found on PATH, and CI is set: CI must install valgrind (see .ci/run)"
        );
        println!("skipping valgrind run: valgrind not found (install it to run the C ABI test under memcheck)");
        return;
    }
    let variant = "c99-valgrind";
    let dir = scratch_dir(variant);
    let exe = compile(&api_test(), Lang::C99, &["-O1", "-g"], &dir);
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
        "--track-origins=yes",
        "--quiet",
    ])
    .arg(&exe)
    .arg(&dir);
    let r = run_with_timeout(cmd);
    if r.code == Some(99) {
        println!("valgrind reported errors (exit status 99); see stderr below");
    }
    check_run(variant, &r);
}

/// The README's C example compiles exactly as printed and reranks with a real adapter file.
#[test]
fn readme_c_example() {
    let readme = std::fs::read_to_string(manifest_dir().join("README.md")).expect("README.md");
    let start = readme.find("```c\n").expect("README has a ```c block") + "```c\n".len();
    let source = &readme[start..start + readme[start..].find("```").expect("closing fence")];
    let dir = scratch_dir("readme");
    let source_path = dir.join("example.c");
    std::fs::write(&source_path, source).expect("write example.c");
    let exe = compile(&source_path, Lang::C99, SANITIZE, &dir);

    let weights = rrra::AdapterWeights::random(12, 7, 3);
    let model = dir.join("model.safetensors");
    rrra::Adapter::new(weights, rrra::AdapterConfig::default()).unwrap().save(&model).unwrap();
    let mut cmd = Command::new(&exe);
    cmd.arg(&model);
    let r = run_with_timeout(cmd);
    println!("--- stdout\n{}\n--- stderr\n{}", r.stdout, r.stderr);
    assert!(r.success, "the README example failed: exit {:?}", r.code);
    let ranks: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("rank ")).collect();
    assert_eq!(ranks.len(), 3, "expected three ranked candidates");
    for (i, line) in ranks.iter().enumerate() {
        assert!(line.starts_with(&format!("rank {i}: candidate ")), "{line}");
    }
}
