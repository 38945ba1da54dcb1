//! The kernel sources, built with NVRTC for one architecture, once per process.
//!
//! The sources are embedded (`include_str!`), so the library carries its kernels and needs only
//! libnvrtc at run time: no toolkit, no headers (the kernels include none but their own
//! `common.cuh`, handed to NVRTC by name). A device whose architecture this NVRTC knows gets a
//! cubin for exactly its `sm_XY`; a newer one gets PTX for the newest architecture NVRTC knows,
//! which the driver compiles on load.
//!
//! NVRTC takes seconds per file, so the images are also kept on disk between processes
//! ([`DiskCache`]): a process whose kernels, NVRTC and target match a stored image loads it
//! instead of compiling.
//!
//! The same build, with `--ptxas-options=-v`, feeds [`compile_kernels`], which tests use to
//! check registers and spills without a GPU.

use super::unsupported;
use crate::error::{Error, ErrorKind, Result};
use cudarc::nvrtc::sys;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Kernel files, one NVRTC program (and one CUDA module) each.
const SOURCES: [(&str, &str); 1] = [("rerank.cu", include_str!("../../../kernels/rerank.cu"))];
/// Headers the kernel files include by name.
const HEADERS: [(&str, &str); 1] = [("common.cuh", include_str!("../../../kernels/common.cuh"))];

/// The entry points the engine launches, with the file that defines each.
const ENTRY_POINTS: [(&str, &str); 7] = [
    ("rerank.cu", "fold_query_f32"),
    ("rerank.cu", "score_pairs_bf16"),
    ("rerank.cu", "score_pairs_f16"),
    ("rerank.cu", "score_pairs_f32"),
    ("rerank.cu", "adapt_cosine_bf16"),
    ("rerank.cu", "adapt_cosine_f16"),
    ("rerank.cu", "adapt_cosine_f32"),
];

/// What NVRTC is asked to produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// Machine code for exactly `sm_<arch>`.
    Cubin(u32),
    /// PTX for `compute_<arch>`, compiled by the driver for the device on load.
    Ptx(u32),
}

impl Target {
    /// The target for a device of compute capability `arch` (major·10 + minor), given the
    /// architectures this NVRTC supports.
    pub(crate) fn for_device(arch: u32, supported: &[u32]) -> Option<Target> {
        if supported.contains(&arch) {
            return Some(Target::Cubin(arch));
        }
        // Newer than this NVRTC: PTX for the newest older architecture runs on it.
        supported.iter().copied().filter(|&a| a < arch).max().map(Target::Ptx)
    }

    pub(crate) fn describe(self) -> String {
        match self {
            Target::Cubin(arch) => format!("a cubin for sm_{arch}"),
            Target::Ptx(arch) => format!("PTX for compute_{arch}, compiled by the driver"),
        }
    }
}

/// One kernel file built for one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Build {
    pub file: &'static str,
    /// The cubin, or the PTX with its terminating NUL (as the driver wants it).
    pub image: Vec<u8>,
    pub log: String,
}

fn nvrtc_error(what: &str, result: sys::nvrtcResult) -> Error {
    // A call that fails for want of memory or of support is the machine's limit, not our bug.
    let kind = match result {
        sys::nvrtcResult::NVRTC_ERROR_OUT_OF_MEMORY | sys::nvrtcResult::NVRTC_ERROR_INVALID_OPTION => {
            ErrorKind::Unsupported
        }
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("NVRTC: {what} failed: {result:?}"))
}

fn check(what: &str, result: sys::nvrtcResult) -> Result<()> {
    match result {
        sys::nvrtcResult::NVRTC_SUCCESS => Ok(()),
        other => Err(nvrtc_error(what, other)),
    }
}

/// Whether libnvrtc can be loaded; every other NVRTC call panics inside cudarc without it.
pub(crate) fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library under its usual names.
    unsafe { sys::is_culib_present() }
}

fn require_nvrtc() -> Result<()> {
    if nvrtc_present() {
        Ok(())
    } else {
        Err(unsupported("libnvrtc (NVRTC from CUDA 12 or 13) cannot be loaded"))
    }
}

/// The version of the NVRTC library this process loaded, `(major, minor)`.
pub fn nvrtc_version() -> Result<(u32, u32)> {
    require_nvrtc()?;
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    // SAFETY: two valid out-pointers.
    check("nvrtcVersion", unsafe { sys::nvrtcVersion(&mut major, &mut minor) })?;
    Ok((major as u32, minor as u32))
}

/// The architectures this NVRTC compiles for, as major·10 + minor.
pub(crate) fn supported_archs() -> Result<Vec<u32>> {
    require_nvrtc()?;
    let mut n: c_int = 0;
    // SAFETY: a valid out-pointer; then a buffer of the size NVRTC reported.
    check("nvrtcGetNumSupportedArchs", unsafe { sys::nvrtcGetNumSupportedArchs(&mut n) })?;
    let mut archs = vec![0 as c_int; n.max(0) as usize];
    check("nvrtcGetSupportedArchs", unsafe { sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) })?;
    Ok(archs.into_iter().map(|a| a as u32).collect())
}

/// An NVRTC program, destroyed on drop.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: created by nvrtcCreateProgram and destroyed only here.
        unsafe { sys::nvrtcDestroyProgram(&mut self.0) };
    }
}

impl Program {
    fn log(&self) -> String {
        let mut size = 0usize;
        // SAFETY: a live program; the buffer has the size NVRTC reported.
        if unsafe { sys::nvrtcGetProgramLogSize(self.0, &mut size) } != sys::nvrtcResult::NVRTC_SUCCESS {
            return String::new();
        }
        let mut log = vec![0u8; size.max(1)];
        if unsafe { sys::nvrtcGetProgramLog(self.0, log.as_mut_ptr() as *mut c_char) }
            != sys::nvrtcResult::NVRTC_SUCCESS
        {
            return String::new();
        }
        CStr::from_bytes_until_nul(&log).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// The compiled image: `size` then `get`, NVRTC's count-then-fill.
    fn image(
        &self,
        size: unsafe fn(sys::nvrtcProgram, *mut usize) -> sys::nvrtcResult,
        get: unsafe fn(sys::nvrtcProgram, *mut c_char) -> sys::nvrtcResult,
        what: &str,
    ) -> Result<Vec<u8>> {
        let mut n = 0usize;
        // SAFETY: a live, compiled program; the buffer has the size NVRTC reported.
        check(what, unsafe { size(self.0, &mut n) })?;
        let mut image = vec![0u8; n];
        check(what, unsafe { get(self.0, image.as_mut_ptr() as *mut c_char) })?;
        Ok(image)
    }
}

fn c_string(s: &str) -> CString {
    CString::new(s).expect("kernel sources and names contain no NUL")
}

/// Compiles one kernel file for `target`.
fn build(file: &'static str, source: &str, target: Target) -> Result<Build> {
    require_nvrtc()?;
    let src = c_string(source);
    let name = c_string(file);
    let header_sources: Vec<CString> = HEADERS.iter().map(|(_, text)| c_string(text)).collect();
    let header_names: Vec<CString> = HEADERS.iter().map(|(name, _)| c_string(name)).collect();
    let header_source_ptrs: Vec<*const c_char> = header_sources.iter().map(|s| s.as_ptr()).collect();
    let header_name_ptrs: Vec<*const c_char> = header_names.iter().map(|s| s.as_ptr()).collect();
    let mut raw = std::ptr::null_mut();
    // SAFETY: every pointer is a NUL-terminated string alive until the program is destroyed
    // (they outlive `program` below); the header arrays have HEADERS.len() entries.
    check("nvrtcCreateProgram", unsafe {
        sys::nvrtcCreateProgram(
            &mut raw,
            src.as_ptr(),
            name.as_ptr(),
            HEADERS.len() as c_int,
            header_source_ptrs.as_ptr(),
            header_name_ptrs.as_ptr(),
        )
    })?;
    let program = Program(raw);
    let mut options = vec!["-std=c++17".to_string()];
    match target {
        Target::Cubin(arch) => {
            options.push(format!("--gpu-architecture=sm_{arch}"));
            // Registers and spills per function, into the log (tests/cuda_kernels.rs reads it).
            options.push("--ptxas-options=-v".to_string());
        }
        Target::Ptx(arch) => options.push(format!("--gpu-architecture=compute_{arch}")),
    }
    let options: Vec<CString> = options.iter().map(|o| c_string(o)).collect();
    let option_ptrs: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();
    // SAFETY: a live program and `option_ptrs.len()` valid strings.
    let compiled = unsafe { sys::nvrtcCompileProgram(program.0, option_ptrs.len() as c_int, option_ptrs.as_ptr()) };
    let log = program.log();
    if compiled != sys::nvrtcResult::NVRTC_SUCCESS {
        let e = nvrtc_error(&format!("compiling kernels/{file} to {}", target.describe()), compiled);
        return Err(Error::new(e.kind(), format!("{}:\n{log}", e.message())));
    }
    let image = match target {
        Target::Cubin(_) => program.image(sys::nvrtcGetCUBINSize, sys::nvrtcGetCUBIN, "nvrtcGetCUBIN")?,
        Target::Ptx(_) => program.image(sys::nvrtcGetPTXSize, sys::nvrtcGetPTX, "nvrtcGetPTX")?,
    };
    Ok(Build { file, image, log })
}

type Cache = Mutex<HashMap<Target, Arc<Vec<Build>>>>;

/// Every kernel file built for `target`: on the first call for that target in this process
/// loaded from the disk cache or compiled, then shared. A failure is not cached, so it is
/// reported to every caller.
pub(crate) fn builds(target: Target) -> Result<Arc<Vec<Build>>> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    // Held while compiling, so two sessions starting together compile once.
    let mut cache = cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(builds) = cache.get(&target) {
        return Ok(builds.clone());
    }
    let disk = DiskCache::from_env();
    let builds: Arc<Vec<Build>> = Arc::new(
        SOURCES
            .iter()
            .map(|&(file, source)| build_through(disk.as_ref(), file, source, target).map(|(build, _)| build))
            .collect::<Result<_>>()?,
    );
    cache.insert(target, builds.clone());
    Ok(builds)
}

/// `file` built for `target`, from `disk` where it holds the image, else compiled (and then
/// stored there); `true` when it came from the disk.
fn build_through(disk: Option<&DiskCache>, file: &'static str, source: &str, target: Target) -> Result<(Build, bool)> {
    let Some(disk) = disk else { return Ok((build(file, source, target)?, false)) };
    let key = build_key(source, target)?;
    if let Some(build) = disk.load(file, target, &key) {
        return Ok((build, true));
    }
    let build = build(file, source, target)?;
    disk.store(&build, target, &key);
    Ok((build, false))
}

/// Everything a build depends on, as one line: the library's version, NVRTC's, the target
/// (which fixes the options) and a hash of the source with the headers it may include.
fn build_key(source: &str, target: Target) -> Result<String> {
    let (major, minor) = nvrtc_version()?;
    let sources = hash64(&(source, HEADERS));
    Ok(format!("rrra {} | nvrtc {major}.{minor} | {target:?} | source {sources:016x}", crate::VERSION))
}

/// A 64-bit hash for file names and integrity checks (not across Rust versions: a changed
/// hash only makes the cache miss).
fn hash64<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Built kernel images on disk, one file per kernel file, target and key. A file holds the
/// key, the image's length and hash, the image and the build log; it is written under a
/// temporary name and renamed, and used only when all of that checks, so a stale, partial or
/// damaged file is compiled over, never loaded. Failing to write is not an error: the cache
/// only saves time.
pub(crate) struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// `$RRRA_KERNEL_CACHE` (set but empty: no disk cache), else `$XDG_CACHE_HOME/rrra/kernels`,
    /// else `$HOME/.cache/rrra/kernels`.
    pub(crate) fn from_env() -> Option<DiskCache> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let dir = match std::env::var_os("RRRA_KERNEL_CACHE") {
            Some(dir) if dir.is_empty() => return None,
            Some(dir) => PathBuf::from(dir),
            None => var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))?.join("rrra/kernels"),
        };
        Some(DiskCache { dir })
    }

    fn path(&self, file: &str, target: Target, key: &str) -> PathBuf {
        let target = match target {
            Target::Cubin(arch) => format!("sm_{arch}"),
            Target::Ptx(arch) => format!("compute_{arch}"),
        };
        self.dir.join(format!("{}-{target}-{:016x}.bin", file.trim_end_matches(".cu"), hash64(key)))
    }

    pub(crate) fn load(&self, file: &'static str, target: Target, key: &str) -> Option<Build> {
        let bytes = std::fs::read(self.path(file, target, key)).ok()?;
        let newline = bytes.iter().position(|&b| b == b'\n')?;
        let header = std::str::from_utf8(&bytes[..newline]).ok()?;
        let (stored_key, sizes) = header.rsplit_once(" | image ")?;
        let (len, hash) = sizes.split_once(' ')?;
        let (len, hash): (usize, u64) = (len.parse().ok()?, u64::from_str_radix(hash, 16).ok()?);
        let body = &bytes[newline + 1..];
        let (image, log) = (body.get(..len)?, body.get(len..)?);
        (stored_key == key && hash64(image) == hash).then(|| Build {
            file,
            image: image.to_vec(),
            log: String::from_utf8_lossy(log).into_owned(),
        })
    }

    pub(crate) fn store(&self, build: &Build, target: Target, key: &str) {
        let path = self.path(build.file, target, key);
        let header = format!("{key} | image {} {:016x}\n", build.image.len(), hash64(&build.image));
        let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
        let written = std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(&temporary, [header.as_bytes(), &build.image, build.log.as_bytes()].concat()))
            .and_then(|()| std::fs::rename(&temporary, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
    }
}

/// Builds every kernel file for `sm_<arch>` through a disk cache in `dir`, as a session does,
/// and says which came from it (tests check that a second build loads the first's images).
#[doc(hidden)]
pub fn build_kernels_cached_in(dir: &Path, arch: u32) -> Result<Vec<(&'static str, bool)>> {
    let disk = DiskCache { dir: dir.to_path_buf() };
    SOURCES
        .iter()
        .map(|&(file, source)| {
            build_through(Some(&disk), file, source, Target::Cubin(arch)).map(|(_, hit)| (file, hit))
        })
        .collect()
}

/// What ptxas reported for one function of a kernel file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelResources {
    pub name: String,
    /// An `extern "C"` entry point (rather than a device function ptxas kept as a call).
    pub entry: bool,
    /// Registers per thread (entry points only).
    pub registers: Option<u32>,
    pub stack_frame_bytes: u32,
    pub spill_store_bytes: u32,
    pub spill_load_bytes: u32,
}

/// One kernel file compiled to a cubin.
#[derive(Clone, Debug)]
pub struct CompiledKernels {
    /// The file name in `kernels/`.
    pub file: &'static str,
    /// `sm_<arch>`.
    pub arch: u32,
    pub cubin_bytes: usize,
    /// Per function, in the order ptxas reported them.
    pub functions: Vec<KernelResources>,
    /// NVRTC's whole log, ptxas's lines included.
    pub log: String,
}

/// The number just before `unit` in `text` (`"24 bytes stack frame"`, `"Used 40 registers"`).
fn number_before(text: &str, unit: &str) -> Option<u32> {
    let at = text.find(unit)?;
    text[..at].split_whitespace().last()?.parse().ok()
}

impl KernelResources {
    /// Reads ptxas's `-v` lines out of a compile log, one entry per function:
    /// ```text
    /// ptxas info    : Compiling entry function 'score_pairs_bf16' for 'sm_80'
    /// ptxas info    : Function properties for score_pairs_bf16
    /// ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
    /// ptxas info    : Used 128 registers, used 1 barriers, 20992 bytes smem, 484 bytes cmem[0]
    /// ```
    pub fn from_ptxas_log(log: &str) -> Vec<KernelResources> {
        let mut functions: Vec<KernelResources> = Vec::new();
        let index_of =
            |functions: &mut Vec<KernelResources>, name: &str| match functions.iter().position(|f| f.name == name) {
                Some(i) => i,
                None => {
                    functions.push(KernelResources { name: name.to_string(), ..Default::default() });
                    functions.len() - 1
                }
            };
        let (mut properties_of, mut entry) = (None, None);
        for line in log.lines() {
            if let Some(rest) = line.split("Compiling entry function '").nth(1) {
                let i = index_of(&mut functions, rest.split('\'').next().unwrap_or_default());
                functions[i].entry = true;
                entry = Some(i);
            } else if let Some(name) = line.split("Function properties for ").nth(1) {
                properties_of = Some(index_of(&mut functions, name.trim()));
            } else if line.contains("bytes stack frame") {
                if let Some(i) = properties_of.take() {
                    let f = &mut functions[i];
                    f.stack_frame_bytes = number_before(line, "bytes stack frame").unwrap_or(0);
                    f.spill_store_bytes = number_before(line, "bytes spill stores").unwrap_or(0);
                    f.spill_load_bytes = number_before(line, "bytes spill loads").unwrap_or(0);
                }
            } else if line.contains("Used ") && line.contains(" registers") {
                if let Some(i) = entry {
                    functions[i].registers = number_before(line, " registers");
                }
            }
        }
        functions
    }
}

/// Compiles every kernel file to a cubin for `sm_<arch>` with the engine's own options, and
/// reports what ptxas said about each function. Needs libnvrtc, not a GPU.
pub fn compile_kernels(arch: u32) -> Result<Vec<CompiledKernels>> {
    let builds =
        SOURCES.iter().map(|&(file, source)| build(file, source, Target::Cubin(arch))).collect::<Result<Vec<_>>>()?;
    Ok(builds
        .iter()
        .map(|b| CompiledKernels {
            file: b.file,
            arch,
            cubin_bytes: b.image.len(),
            functions: KernelResources::from_ptxas_log(&b.log),
            log: b.log.clone(),
        })
        .collect())
}

/// The kernel files embedded in the library (each one a file in `kernels/`).
pub fn kernel_files() -> Vec<&'static str> {
    SOURCES.iter().map(|(file, _)| *file).collect()
}

/// The entry points the engine launches, each with the kernel file that defines it.
pub fn entry_points() -> &'static [(&'static str, &'static str)] {
    &ENTRY_POINTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_the_device_or_the_newest_older_architecture() {
        let supported = [75, 80, 86, 90, 100, 120];
        assert_eq!(Target::for_device(86, &supported), Some(Target::Cubin(86)));
        assert_eq!(Target::for_device(89, &supported), Some(Target::Ptx(86)));
        assert_eq!(Target::for_device(130, &supported), Some(Target::Ptx(120)));
        assert_eq!(Target::for_device(70, &supported), None);
    }

    #[test]
    fn the_disk_cache_returns_only_what_it_stored_under_that_key() {
        let dir = std::env::temp_dir().join(format!("rrra-kernel-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let disk = DiskCache { dir: dir.clone() };
        let build = Build { file: "rerank.cu", image: vec![0, 1, 2, 10, 255, 7], log: "ptxas: 40 registers\n".into() };
        let target = Target::Cubin(90);
        assert_eq!(disk.load("rerank.cu", target, "key a"), None, "empty");
        disk.store(&build, target, "key a");
        assert_eq!(disk.load("rerank.cu", target, "key a"), Some(build.clone()));
        assert_eq!(disk.load("rerank.cu", target, "key b"), None, "another key");
        assert_eq!(disk.load("rerank.cu", Target::Ptx(90), "key a"), None, "another target");
        assert_eq!(disk.load("other.cu", target, "key a"), None, "another file");

        // A damaged or partial file is not loaded, and storing again repairs it.
        let path = disk.path("rerank.cu", target, "key a");
        let good = std::fs::read(&path).unwrap();
        let header = good.iter().position(|&b| b == b'\n').unwrap();
        for damaged in [good[..good.len() - build.log.len() - 1].to_vec(), {
            let mut flipped = good.clone();
            flipped[header + 3] ^= 1;
            flipped
        }] {
            std::fs::write(&path, damaged).unwrap();
            assert_eq!(disk.load("rerank.cu", target, "key a"), None);
        }
        disk.store(&build, target, "key a");
        assert_eq!(disk.load("rerank.cu", target, "key a"), Some(build.clone()));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left behind");

        // Where it cannot write, it stores nothing and says nothing.
        let blocked = DiskCache { dir: path.join("not-a-directory") };
        blocked.store(&build, target, "key a");
        assert_eq!(blocked.load("rerank.cu", target, "key a"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
