//! What this machine offers: CPU model, cores, SIMD features, RAM (respecting a cgroup limit)
//! and GPUs with their free memory where a driver is present. Detection never fails: what
//! cannot be read is left empty or zero.

use serde::Serialize;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A GPU and its memory.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Gpu {
    pub index: u32,
    pub name: String,
    /// The API that reaches it (`"cuda"`).
    pub backend: String,
    pub total_memory_bytes: u64,
    pub free_memory_bytes: u64,
}

/// The machine uml runs on.
#[derive(Serialize, Clone, Debug)]
pub struct Hardware {
    pub cpu_model: String,
    pub physical_cores: usize,
    pub logical_cores: usize,
    /// SIMD extensions detected at run time (`"avx2"`, `"fma"`, `"avx512f"`, `"neon"`, ...).
    pub simd: Vec<String>,
    /// RAM, or the cgroup (container) limit when that is lower.
    pub total_memory_bytes: u64,
    /// RAM available to new allocations, capped by what the cgroup limit leaves.
    pub available_memory_bytes: u64,
    pub gpus: Vec<Gpu>,
    /// The llama.cpp CPU kernels in use: `"native"`, or a portable build's variant
    /// (`"haswell"`, `"skylakex"`, ...), or `"unavailable: <why>"`; `None` without llama.cpp.
    pub cpu_kernels: Option<String>,
}

impl Hardware {
    /// Threads for inference: the physical cores (hyper-threads do not speed up matrix
    /// products), no more than the CPUs this process may use (a container's CPU quota), at
    /// least 1.
    pub fn recommended_threads(&self) -> usize {
        let allowed = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(self.logical_cores.max(1));
        self.physical_cores.min(allowed).max(1)
    }

    /// Free memory over all GPUs (llama.cpp splits layers across them by default).
    pub fn gpu_free_bytes(&self) -> u64 {
        self.gpus.iter().map(|g| g.free_memory_bytes).sum()
    }
}

/// The OpenMP spin budget uml runs llama.cpp with: `GOMP_SPINCOUNT=1000`. libgomp's default
/// spins ~300,000 times at every barrier before it sleeps, which is harmless on idle cores
/// but, when another process holds a core and a partner thread is descheduled, turns each of
/// a decode's hundreds of barriers into milliseconds of spinning: a 16-token `uml run` took
/// 2.6 to 13 s beside two busy loops, against 0.63 to 0.69 s with this setting (and 0.7 to
/// 1.0 s for llama-simple), while generation on idle cores kept its speed (BENCHMARKS.md).
/// `OMP_WAIT_POLICY=passive` is no answer: it cut idle generation speed to a quarter.
pub const OPENMP_SPIN: (&str, &str) = ("GOMP_SPINCOUNT", "1000");

/// The variable to set before libgomp loads (it reads it once, at load), unless the user
/// chose an OpenMP wait policy or spin count already.
pub fn openmp_spin_setting() -> Option<(&'static str, &'static str)> {
    let chosen = ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT"]
        .iter()
        .any(|k| std::env::var_os(k).is_some());
    (!chosen).then_some(OPENMP_SPIN)
}

/// Detect the hardware. Takes a few milliseconds, plus an `nvidia-smi` call when that
/// program exists.
pub fn detect() -> Hardware {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
    let logical_cores = sys.cpus().len().max(1);
    let cpu_model = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let physical_cores = sysinfo::System::physical_core_count()
        .unwrap_or(logical_cores)
        .max(1);

    let mut total = sys.total_memory();
    let mut available = sys.available_memory();
    if let Some((limit, used)) = cgroup_memory() {
        if limit < total {
            total = limit;
        }
        available = available.min(limit.saturating_sub(used));
    }

    Hardware {
        cpu_model,
        physical_cores,
        logical_cores,
        simd: simd_features(),
        total_memory_bytes: total,
        available_memory_bytes: available,
        gpus: nvidia_gpus(),
        cpu_kernels: crate::backend::llama_cpp_cpu_kernels(),
    }
}

/// The cgroup memory limit and current usage (v2 `memory.max` / `memory.current`, else v1
/// `memory.limit_in_bytes` / `memory.usage_in_bytes`), when a limit is set.
fn cgroup_memory() -> Option<(u64, u64)> {
    let read = |p: &str| std::fs::read_to_string(Path::new(p)).ok();
    if let Some(max) = read("/sys/fs/cgroup/memory.max") {
        let limit = parse_limit(&max)?;
        let used = read("/sys/fs/cgroup/memory.current")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        return Some((limit, used));
    }
    let limit = parse_limit(&read("/sys/fs/cgroup/memory/memory.limit_in_bytes")?)?;
    let used = read("/sys/fs/cgroup/memory/memory.usage_in_bytes")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    Some((limit, used))
}

/// A cgroup limit file's value: `"max"` (v2) or a near-2^63 number (v1) mean no limit.
fn parse_limit(text: &str) -> Option<u64> {
    let v: u64 = text.trim().parse().ok()?;
    (v < (1u64 << 60)).then_some(v)
}

fn simd_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut out: Vec<&str> = Vec::new();
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        macro_rules! probe {
            ($($f:tt),*) => {
                $(if std::arch::is_x86_feature_detected!($f) {
                    out.push($f);
                })*
            };
        }
        probe!(
            "sse3",
            "ssse3",
            "sse4.1",
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "bmi2",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx512bf16"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {
                $(if std::arch::is_aarch64_feature_detected!($f) {
                    out.push($f);
                })*
            };
        }
        probe!("neon", "fp16", "dotprod", "i8mm", "sve", "sve2");
    }
    out.into_iter().map(str::to_string).collect()
}

/// GPUs from `nvidia-smi`; none when it is missing, fails or hangs (5 s).
fn nvidia_gpus() -> Vec<Gpu> {
    let child = Command::new("nvidia-smi")
        .args([
            "--query-gpu=index,name,memory.total,memory.free",
            "--format=csv,noheader,nounits",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Vec::new();
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                // A wedged driver: give up rather than hang detection.
                let _ = child.kill();
                let _ = child.wait();
                return Vec::new();
            }
        }
    }
    match child.wait_with_output() {
        Ok(out) if out.status.success() => parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout)),
        _ => Vec::new(),
    }
}

/// Lines of `index, name, total MiB, free MiB`; malformed lines are skipped.
fn parse_nvidia_smi(text: &str) -> Vec<Gpu> {
    const MIB: u64 = 1 << 20;
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            if f.len() != 4 {
                return None;
            }
            Some(Gpu {
                index: f[0].parse().ok()?,
                name: f[1].to_string(),
                backend: "cuda".to_string(),
                total_memory_bytes: f[2].parse::<u64>().ok()?.saturating_mul(MIB),
                free_memory_bytes: f[3].parse::<u64>().ok()?.saturating_mul(MIB),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_something_sane() {
        let hw = detect();
        assert!(hw.logical_cores >= 1);
        assert!(hw.physical_cores >= 1 && hw.physical_cores <= hw.logical_cores);
        assert!(hw.total_memory_bytes > 0);
        assert!(hw.available_memory_bytes <= hw.total_memory_bytes);
        assert!(!hw.cpu_model.is_empty());
        assert!(hw.recommended_threads() >= 1);
        assert!(hw.recommended_threads() <= hw.physical_cores);
        #[cfg(target_arch = "x86_64")]
        assert!(
            hw.simd.iter().any(|s| s == "sse4.2" || s == "sse3"),
            "{:?}",
            hw.simd
        );
        let json = serde_json::to_value(&hw).unwrap();
        assert!(json["gpus"].is_array());
    }

    #[test]
    fn nvidia_smi_output() {
        let gpus = parse_nvidia_smi(
            "0, NVIDIA H100 80GB HBM3, 81559, 81000\n1, NVIDIA A10, 24564, 100\nbad line\n",
        );
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpus[0].total_memory_bytes, 81559 << 20);
        assert_eq!(gpus[1].free_memory_bytes, 100 << 20);
        assert_eq!(gpus[1].backend, "cuda");
        assert!(parse_nvidia_smi("").is_empty());
        assert!(parse_nvidia_smi("NVIDIA-SMI has failed").is_empty());
    }

    #[test]
    fn cgroup_limits() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("2147483648\n"), Some(2 << 30));
        assert_eq!(parse_limit("junk"), None);
    }
}
