//! The C++ side: `include/rrra.hpp`, the FAISS example, and the CMake / pkg-config packaging,
//! each built against the `librrra.a` of this same cargo invocation and run:
//!
//! - `include/rrra.hpp` alone, as C++17 and C++20 under strict warnings (-Wconversion, -Wshadow,
//!   -Wold-style-cast, ...), so that users' strict builds stay quiet;
//! - `tests/cpp/wrapper_test.cpp` under AddressSanitizer + UndefinedBehaviorSanitizer: every
//!   wrapper call and error path, and bit-for-bit agreement with the C API;
//! - `examples/cpp/faiss_rerank.cpp` and `tests/cpp/faiss_test.cpp` against Debian's FAISS
//!   (libfaiss-dev: a static libfaiss.a, C++ API only, OpenMP and BLAS/LAPACK), under the same
//!   sanitizers;
//! - `tests/cpp/cmake_consumer` through `find_package(rrra)`, both from this checkout's `cmake/`
//!   and from an install made by `cmake/install.cmake`, and the installed `rrra.pc` through
//!   pkg-config.
//!
//! FAISS, cmake and pkg-config are optional on a developer machine (the test prints a skip line)
//! and required where `CI` is set. Compilers: `$CXX` (default `c++`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{check_summary, manifest_dir, on_path, require, run_tool, run_with_timeout, static_lib, SANITIZE};

/// Longest one test program may run (ASan included) before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest one compiler or cmake step may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

/// What the FAISS link needs after libfaiss.a: Debian builds FAISS with OpenMP (-fopenmp at
/// compile and link time) against the BLAS/LAPACK interfaces that libfaiss-dev depends on.
const FAISS_LIBS: &[&str] = &["-lfaiss", "-llapack", "-lblas"];

fn cxx() -> String {
    std::env::var("CXX").unwrap_or_else(|_| "c++".into())
}

fn scratch_dir(variant: &str) -> PathBuf {
    support::scratch_dir("cpp", variant)
}

/// Compiles C++17 `source` with the project's include paths into `dir/<stem>` and links it with
/// librrra.a; `flags` go before the source, `libs` after the library.
fn compile(source: &Path, flags: &[&str], libs: &[&str], dir: &Path) -> PathBuf {
    let root = manifest_dir();
    let exe = dir.join(source.file_stem().expect("source file name"));
    let mut cmd = Command::new(cxx());
    cmd.args(["-std=c++17", "-Wall", "-Wextra", "-Werror"])
        .args(flags)
        .arg("-pthread")
        .arg("-I")
        .arg(root.join("include"))
        .arg("-I")
        .arg(root.join("examples/cpp"))
        .arg("-I")
        .arg(root.join("tests/cpp"))
        .arg(source)
        .arg(static_lib())
        .args(libs)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe);
    run_tool(cmd, &format!("compiling {}", source.display()), BUILD_TIMEOUT);
    exe
}

/// Writes an adapter file with the Rust API.
fn write_adapter(path: &Path, dim: usize, hidden: usize, seed: u64, config: rrra::AdapterConfig) {
    let weights = rrra::AdapterWeights::random(dim, hidden, seed);
    rrra::Adapter::new(weights, config).expect("adapter").save(path).expect("save adapter");
}

/// The adapter wrapper_test.cpp expects (its `expected_info()`); every value is exact in
/// binary, so it survives the file's text metadata unchanged.
fn wrapper_test_adapter(path: &Path) {
    let config = rrra::AdapterConfig {
        activation: rrra::Activation::Gelu,
        similarity: rrra::Similarity::Cosine,
        adapter_mu: 0.125,
        adapter_tau: 0.5,
        base_transform: rrra::BaseTransform::Sigmoid,
        base_mu: 0.25,
        base_tau: 0.75,
        lambda_rr: 0.625,
        gamma_rs: 1.5,
        encoder: "cpp-wrapper-test encoder".into(),
        ..Default::default()
    };
    write_adapter(path, 8, 6, 11, config);
}

#[test]
fn header_is_quiet_under_strict_warnings() {
    let header = manifest_dir().join("include/rrra.hpp");
    for std in ["-std=c++17", "-std=c++20"] {
        let mut cmd = Command::new(cxx());
        cmd.args(["-x", "c++", std, "-fsyntax-only", "-Werror", "-Wall", "-Wextra", "-Wpedantic"])
            .args(["-Wconversion", "-Wsign-conversion", "-Wshadow", "-Wold-style-cast", "-Wnon-virtual-dtor"])
            .args(["-Wcast-qual", "-Wundef", "-Wzero-as-null-pointer-constant"])
            .arg("-I")
            .arg(manifest_dir().join("include"))
            .arg(&header);
        run_tool(cmd, &format!("compiling rrra.hpp alone ({std}, strict warnings)"), BUILD_TIMEOUT);
    }
}

#[test]
fn wrapper_under_asan_and_ubsan() {
    let dir = scratch_dir("wrapper-asan");
    let adapter = dir.join("wrapper_test.safetensors");
    wrapper_test_adapter(&adapter);
    let exe = compile(&manifest_dir().join("tests/cpp/wrapper_test.cpp"), SANITIZE, &[], &dir);
    let mut cmd = Command::new(&exe);
    cmd.arg(&dir).arg(&adapter);
    support::sanitizer_env(&mut cmd);
    check_summary("wrapper_test", "wrapper-asan", &run_with_timeout(cmd, RUN_TIMEOUT));
}

/// Whether FAISS's C++ headers are installed (libfaiss-dev).
fn faiss_installed(dir: &Path) -> bool {
    let probe = dir.join("faiss_probe.cpp");
    std::fs::write(&probe, "#include <faiss/IndexFlat.h>\nint main() { return 0; }\n").expect("write probe");
    let mut cmd = Command::new(cxx());
    cmd.args(["-std=c++17", "-fsyntax-only"]).arg(&probe);
    run_with_timeout(cmd, BUILD_TIMEOUT).success
}

#[test]
fn faiss_example_and_test() {
    let dir = scratch_dir("faiss");
    if !require(faiss_installed(&dir), "FAISS (<faiss/IndexFlat.h>)", "libfaiss-dev") {
        return;
    }
    let adapter = dir.join("d64.safetensors");
    write_adapter(&adapter, 64, 32, 5, rrra::AdapterConfig::default());
    let flags: Vec<&str> = SANITIZE.iter().copied().chain(["-fopenmp"]).collect();

    // The test: agreement with the C API, permutations, λ = 0, resampling, FAISS's -1 padding.
    let test = compile(&manifest_dir().join("tests/cpp/faiss_test.cpp"), &flags, FAISS_LIBS, &dir);
    let mut cmd = Command::new(&test);
    cmd.arg(&adapter);
    support::sanitizer_env(&mut cmd);
    check_summary("faiss_test", "faiss-test-asan", &run_with_timeout(cmd, RUN_TIMEOUT));

    // The example, with the Rust-written adapter and with its own random one.
    let example = compile(&manifest_dir().join("examples/cpp/faiss_rerank.cpp"), &flags, FAISS_LIBS, &dir);
    for with_file in [true, false] {
        let mut cmd = Command::new(&example);
        if with_file {
            cmd.arg(&adapter);
        }
        support::sanitizer_env(&mut cmd);
        let r = run_with_timeout(cmd, RUN_TIMEOUT);
        println!(
            "===== faiss_rerank {}: exit {:?} after {:.2?}",
            if with_file { "FILE" } else { "(random adapter)" },
            r.code,
            r.elapsed
        );
        println!("--- stdout\n{}\n--- stderr\n{}", r.stdout, r.stderr);
        assert!(r.success, "faiss_rerank failed: exit {:?}", r.code);
        check_example_output(&r.stdout);
    }
}

/// Every query's reranked ids are a permutation of its FAISS ids, and the two candidate paths
/// agreed.
fn check_example_output(stdout: &str) {
    let ids = |prefix: &str| -> Vec<Vec<u64>> {
        stdout
            .lines()
            .filter_map(|l| l.split_once(prefix).map(|(_, rest)| rest))
            .map(|rest| rest.split_whitespace().map(|t| t.parse().expect("an id")).collect())
            .collect()
    };
    let faiss = ids(": faiss ");
    let reranked = ids(": reranked ");
    assert!(!faiss.is_empty() && faiss.len() == reranked.len(), "one faiss and one reranked line per query");
    for (f, r) in faiss.iter().zip(&reranked) {
        let (mut f, mut r) = (f.clone(), r.clone());
        assert!(!f.is_empty());
        f.sort_unstable();
        r.sort_unstable();
        assert_eq!(f, r, "the reranked list is not a permutation of the retrieved one");
    }
    assert!(
        stdout.lines().last().is_some_and(|l| l.ends_with("copied candidates: yes")),
        "the by-id and copied paths disagree"
    );
}

#[test]
fn cmake_package_and_pkg_config() {
    if !require(on_path("cmake"), "cmake", "cmake") {
        return;
    }
    let root = manifest_dir();
    let dir = scratch_dir("packaging");
    let lib = static_lib();
    let adapter = dir.join("d8.safetensors");
    write_adapter(&adapter, 8, 4, 1, rrra::AdapterConfig::default());
    let consumer_src = root.join("tests/cpp/cmake_consumer");

    // find_package(rrra MAJOR.MINOR) of this very version must be accepted.
    let request = rrra::VERSION.rsplit_once('.').expect("MAJOR.MINOR.PATCH").0;
    let build_and_run = |variant: &str, config_args: &[String]| {
        let build = dir.join(variant);
        let mut cmd = Command::new("cmake");
        cmd.arg("-S").arg(&consumer_src).arg("-B").arg(&build).args(config_args);
        cmd.arg(format!("-DRRRA_REQUEST={request}"));
        cmd.arg(format!("-DCMAKE_CXX_COMPILER={}", cxx()));
        run_tool(cmd, &format!("configuring the CMake consumer ({variant})"), BUILD_TIMEOUT);
        let mut cmd = Command::new("cmake");
        cmd.arg("--build").arg(&build);
        run_tool(cmd, &format!("building the CMake consumer ({variant})"), BUILD_TIMEOUT);
        run_consumer(&build.join("consumer"), &adapter, variant);
    };

    // 1. From the checkout: rrra_DIR = cmake/. The library is found relative to the config
    // file (target/<RRRA_PROFILE>/) when cargo builds into this checkout's target/, as here
    // unless CARGO_TARGET_DIR moves it; otherwise RRRA_LIBRARY names it.
    let mut args = vec![format!("-Drrra_DIR={}", root.join("cmake").display())];
    let profile_dir = lib.parent().expect("profile dir");
    if profile_dir.parent() == Some(&root.join("target")) {
        let profile = profile_dir.file_name().and_then(|n| n.to_str()).expect("profile");
        args.push(format!("-DRRRA_PROFILE={profile}"));
    } else {
        args.push(format!("-DRRRA_LIBRARY={}", lib.display()));
    }
    build_and_run("checkout", &args);

    // 2. From an install made by cmake/install.cmake, found through CMAKE_PREFIX_PATH.
    let prefix = dir.join("prefix");
    let mut cmd = Command::new("cmake");
    cmd.arg(format!("-DPREFIX={}", prefix.display()))
        .arg(format!("-DRRRA_LIBRARY={}", lib.display()))
        .arg("-P")
        .arg(root.join("cmake/install.cmake"));
    run_tool(cmd, "cmake/install.cmake", BUILD_TIMEOUT);
    for file in ["include/rrra.h", "include/rrra.hpp", "lib/librrra.a", "lib/cmake/rrra/rrraConfig.cmake"] {
        assert!(prefix.join(file).is_file(), "install.cmake did not install {file}");
    }
    build_and_run("installed", &[format!("-DCMAKE_PREFIX_PATH={}", prefix.display())]);

    // A version request the package cannot satisfy is refused at configure time.
    let mut cmd = Command::new("cmake");
    cmd.arg("-S")
        .arg(&consumer_src)
        .arg("-B")
        .arg(dir.join("too-new"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .arg("-DRRRA_REQUEST=99.0")
        .arg(format!("-DCMAKE_CXX_COMPILER={}", cxx()));
    let r = run_with_timeout(cmd, BUILD_TIMEOUT);
    assert!(!r.success && r.stderr.contains("99.0"), "find_package(rrra 99.0) should fail\n{}{}", r.stdout, r.stderr);

    // 3. pkg-config against the installed rrra.pc.
    if !require(on_path("pkg-config"), "pkg-config", "pkgconf") {
        return;
    }
    let mut cmd = Command::new("pkg-config");
    cmd.env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")).args(["--cflags", "--libs", "rrra"]);
    let flags = run_tool(cmd, "pkg-config --cflags --libs rrra", BUILD_TIMEOUT);
    println!("pkg-config --cflags --libs rrra: {}", flags.trim());
    let mut cmd = Command::new("pkg-config");
    cmd.env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")).args(["--modversion", "rrra"]);
    assert_eq!(run_tool(cmd, "pkg-config --modversion rrra", BUILD_TIMEOUT).trim(), rrra::VERSION);
    let exe = dir.join("pkg-config-consumer");
    let mut cmd = Command::new(cxx());
    cmd.args(["-std=c++17", "-Wall", "-Wextra", "-Werror"])
        .arg(consumer_src.join("main.cpp"))
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&exe);
    run_tool(cmd, "compiling the consumer with pkg-config's flags", BUILD_TIMEOUT);
    run_consumer(&exe, &adapter, "pkg-config");
}

fn run_consumer(exe: &Path, adapter: &Path, variant: &str) {
    let mut cmd = Command::new(exe);
    cmd.arg(adapter);
    let r = run_with_timeout(cmd, RUN_TIMEOUT);
    println!("===== consumer ({variant}): {}{}", r.stdout, r.stderr);
    assert!(
        r.success && r.stdout.contains("reranked 3 candidates"),
        "the {variant} consumer failed: exit {:?}\n{}{}",
        r.code,
        r.stdout,
        r.stderr
    );
}
