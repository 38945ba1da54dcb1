//! Every file in `kernels/` compiles with NVRTC, with the engine's own options, for sm_80 and
//! sm_90, and no function spills a register; a second build loads the first from the disk
//! cache. Needs libnvrtc, not a GPU.
//!
//! `scripts/test-all.sh` runs this with `--features cuda`, `RRRA_NVRTC_DIR` set to the library
//! `scripts/fetch-nvrtc.sh` installed from PyPI, and that directory on `LD_LIBRARY_PATH` (the
//! dynamic loader reads it at process start, so the test cannot add it itself). Without the
//! feature or the variable (a plain `cargo test`) it says why it skipped and passes.

/// The architectures the kernels are held to: Ampere (the oldest with bf16 tensor cores) and Hopper.
#[cfg(feature = "cuda")]
const ARCHS: [u32; 2] = [80, 90];

#[test]
fn kernels_compile_for_sm80_and_sm90_without_spills() {
    #[cfg(not(feature = "cuda"))]
    println!("skipped: built without the cuda feature (scripts/test-all.sh runs this with --features cuda)");
    #[cfg(feature = "cuda")]
    check_kernels();
}

#[cfg(feature = "cuda")]
fn check_kernels() {
    use std::collections::BTreeSet;
    use std::path::Path;

    let Some(dir) = std::env::var_os("RRRA_NVRTC_DIR") else {
        println!("skipped: RRRA_NVRTC_DIR is not set (scripts/fetch-nvrtc.sh installs NVRTC and prints it)");
        return;
    };
    // From here on the caller asked for the check: anything missing is a failure, not a skip.
    let version = rrra::cuda::nvrtc_version().unwrap_or_else(|e| {
        panic!(
            "RRRA_NVRTC_DIR={} but NVRTC does not load ({}); is the directory on LD_LIBRARY_PATH?",
            Path::new(&dir).display(),
            e.message()
        )
    });
    println!("NVRTC {}.{} from {}", version.0, version.1, Path::new(&dir).display());

    // The library embeds exactly the kernel files the repository has.
    let on_disk: BTreeSet<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels"))
        .expect("kernels/")
        .map(|entry| entry.expect("kernels/ entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".cu"))
        .collect();
    let embedded: BTreeSet<String> = rrra::cuda::kernel_files().iter().map(|f| f.to_string()).collect();
    assert_eq!(embedded, on_disk, "the kernel files the library embeds (src/engine/cuda/compile.rs)");

    let mut problems = Vec::new();
    for arch in ARCHS {
        let builds = rrra::cuda::compile_kernels(arch).unwrap_or_else(|e| panic!("sm_{arch}: {}", e.message()));
        for build in &builds {
            assert!(build.cubin_bytes > 0, "sm_{arch} {}: empty cubin", build.file);
            assert!(
                !build.functions.is_empty(),
                "sm_{arch} {}: no ptxas report in the log:\n{}",
                build.file,
                build.log
            );
            for f in &build.functions {
                println!(
                    "sm_{arch} {} {}{}: {} registers, {} bytes stack frame, {} bytes spill stores, {} bytes spill loads",
                    build.file,
                    f.name,
                    if f.entry { "" } else { " (device function)" },
                    f.registers.map_or("-".to_string(), |r| r.to_string()),
                    f.stack_frame_bytes,
                    f.spill_store_bytes,
                    f.spill_load_bytes
                );
                if f.spill_store_bytes > 0 || f.spill_load_bytes > 0 {
                    problems.push(format!(
                        "sm_{arch} {} {}: spills {} bytes stored, {} loaded",
                        build.file, f.name, f.spill_store_bytes, f.spill_load_bytes
                    ));
                }
                if f.entry && f.registers.is_none() {
                    problems.push(format!("sm_{arch} {} {}: no register count in the log", build.file, f.name));
                }
            }
        }
        // Every entry point the engine launches is in the file it is expected in.
        for (file, entry) in rrra::cuda::entry_points() {
            let found = builds
                .iter()
                .filter(|b| b.file == *file)
                .flat_map(|b| &b.functions)
                .any(|f| f.entry && f.name == *entry);
            if !found {
                problems.push(format!("sm_{arch}: entry point {entry} is not in kernels/{file}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // A session's build goes through the disk cache: the second process-like build loads what
    // the first compiled and stored.
    let dir = std::env::temp_dir().join(format!("rrra-kernel-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let build = || rrra::cuda::build_kernels_cached_in(&dir, ARCHS[0]).unwrap_or_else(|e| panic!("{}", e.message()));
    assert!(build().iter().all(|&(_, cached)| !cached), "an empty cache");
    assert!(build().iter().all(|&(_, cached)| cached), "the second build compiled again");
    std::fs::remove_dir_all(&dir).expect("removing the test's cache");
}

/// The spill check itself: a log that reports spills is read as spilling.
#[cfg(feature = "cuda")]
#[test]
fn ptxas_reports_are_read() {
    use rrra::cuda::KernelResources;
    let log = "ptxas info    : 0 bytes gmem\n\
               ptxas info    : Compiling entry function 'score_pairs_bf16' for 'sm_80'\n\
               ptxas info    : Function properties for score_pairs_bf16\n\
               ptxas         .     24 bytes stack frame, 20 bytes spill stores, 16 bytes spill loads\n\
               ptxas info    : Used 128 registers, used 1 barriers, 20992 bytes smem, 484 bytes cmem[0]\n\
               ptxas info    : Function properties for helper\n\
               ptxas         .     8 bytes stack frame, 0 bytes spill stores, 4 bytes spill loads\n";
    let functions = KernelResources::from_ptxas_log(log);
    assert_eq!(
        functions,
        vec![
            KernelResources {
                name: "score_pairs_bf16".into(),
                entry: true,
                registers: Some(128),
                stack_frame_bytes: 24,
                spill_store_bytes: 20,
                spill_load_bytes: 16,
            },
            KernelResources {
                name: "helper".into(),
                entry: false,
                registers: None,
                stack_frame_bytes: 8,
                spill_store_bytes: 0,
                spill_load_bytes: 4,
            },
        ]
    );
}
