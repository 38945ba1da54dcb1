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

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{manifest_dir, on_path, run_with_timeout, static_lib, RunResult, SANITIZE};

/// Longest a single run of api_test may take (Valgrind included) before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// A fresh scratch directory for one variant.
fn scratch_dir(variant: &str) -> PathBuf {
    support::scratch_dir("c_abi", variant)
}

/// Prints api_test's output and checks its exit status and summary line.
fn check_run(variant: &str, r: &RunResult) {
    support::check_summary("api_test", variant, r);
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

fn run_sanitized(variant: &str, lang: Lang) {
    let dir = scratch_dir(variant);
    let exe = compile(&api_test(), lang, SANITIZE, &dir);
    let mut cmd = Command::new(&exe);
    cmd.arg(&dir);
    support::sanitizer_env(&mut cmd);
    check_run(variant, &run_with_timeout(cmd, RUN_TIMEOUT));
}

#[test]
fn c99_under_asan_and_ubsan() {
    run_sanitized("c99-asan", Lang::C99);
}

#[test]
fn cxx17_under_asan_and_ubsan() {
    run_sanitized("cxx17-asan", Lang::Cxx17);
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
    let r = run_with_timeout(cmd, RUN_TIMEOUT);
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
    let r = run_with_timeout(cmd, RUN_TIMEOUT);
    println!("--- stdout\n{}\n--- stderr\n{}", r.stdout, r.stderr);
    assert!(r.success, "the README example failed: exit {:?}", r.code);
    let ranks: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("rank ")).collect();
    assert_eq!(ranks.len(), 3, "expected three ranked candidates");
    for (i, line) in ranks.iter().enumerate() {
        assert!(line.starts_with(&format!("rank {i}: candidate ")), "{line}");
    }
}
