//! Memory numbers for the benchmarks: the process's resident memory (`/proc/self/status`) on the
//! CPU backend, device memory sampled with `nvidia-smi` on CUDA. Linux only; elsewhere the
//! benchmarks say they cannot measure.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;

/// A memory field of `/proc/self/status` (e.g. "VmHWM", "VmRSS") in bytes.
pub fn status_bytes(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")
        .context("reading /proc/self/status (the memory numbers need Linux)")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .with_context(|| format!("no {field} line in /proc/self/status"))
}

/// Resets the process's peak resident memory (`VmHWM`) to its current RSS (Linux ≥ 4.0:
/// writing 5 to `/proc/self/clear_refs`), so that a later `VmHWM` is the peak of what follows.
pub fn reset_peak_rss() -> anyhow::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
        .context("resetting the peak RSS through /proc/self/clear_refs (needs Linux ≥ 4.0)")
}

/// Returns the heap's free pages to the kernel (glibc `malloc_trim(0)`), so that RSS counts live
/// memory only, not blocks freed but kept by the allocator. A no-op outside glibc.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Where a benchmark's memory figures come from.
pub enum Probe {
    /// The process's resident memory (CPU backend).
    Rss,
    /// Used memory of one GPU, sampled every 50 ms by `nvidia-smi` (all processes on that GPU,
    /// CUDA context included: what the device has to have free).
    Gpu(GpuWatch),
}

impl Probe {
    /// The probe for a device: RSS on the CPU, `nvidia-smi` sampling of GPU `index` otherwise.
    pub fn new(gpu: Option<usize>) -> anyhow::Result<Self> {
        match gpu {
            None => Ok(Probe::Rss),
            Some(index) => Ok(Probe::Gpu(GpuWatch::start(index)?)),
        }
    }

    /// What the figures are, for reports.
    pub fn what(&self) -> &'static str {
        match self {
            Probe::Rss => "process RSS",
            Probe::Gpu(_) => "GPU memory used (nvidia-smi)",
        }
    }

    /// Memory in use now, bytes (after freed heap pages are returned, on the CPU).
    pub fn current(&self) -> anyhow::Result<u64> {
        match self {
            Probe::Rss => {
                trim_heap();
                status_bytes("VmRSS")
            }
            Probe::Gpu(w) => w.query(),
        }
    }

    /// Starts a new peak window.
    pub fn reset_peak(&self) -> anyhow::Result<()> {
        match self {
            Probe::Rss => reset_peak_rss(),
            Probe::Gpu(w) => {
                w.settle();
                w.peak.store(0, Ordering::SeqCst);
                Ok(())
            }
        }
    }

    /// The peak since the last [`Probe::reset_peak`], bytes.
    pub fn peak(&self) -> anyhow::Result<u64> {
        match self {
            Probe::Rss => status_bytes("VmHWM"),
            Probe::Gpu(w) => {
                w.settle();
                Ok(w.peak.load(Ordering::SeqCst).max(w.query()?))
            }
        }
    }
}

/// A background `nvidia-smi --query-gpu=memory.used --loop-ms=50` whose largest sample is kept.
pub struct GpuWatch {
    index: usize,
    child: Child,
    peak: Arc<AtomicU64>,
}

impl GpuWatch {
    fn start(index: usize) -> anyhow::Result<Self> {
        let mut child = Command::new("nvidia-smi")
            .args(["--query-gpu=memory.used", "--format=csv,noheader,nounits"])
            .arg(format!("--id={index}"))
            .arg("--loop-ms=50")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "starting nvidia-smi to sample GPU memory (is the NVIDIA driver installed?)",
            )?;
        let stdout = child.stdout.take().context("nvidia-smi has no stdout")?;
        let peak = Arc::new(AtomicU64::new(0));
        let sink = peak.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mib) = line.trim().parse::<u64>() {
                    sink.fetch_max(mib << 20, Ordering::SeqCst);
                }
            }
        });
        Ok(Self { index, child, peak })
    }

    /// Waits two sampling periods, so that samples of what just ran have arrived.
    fn settle(&self) {
        std::thread::sleep(std::time::Duration::from_millis(120));
    }

    /// One `nvidia-smi` reading of the GPU's used memory, bytes.
    fn query(&self) -> anyhow::Result<u64> {
        let out = Command::new("nvidia-smi")
            .args(["--query-gpu=memory.used", "--format=csv,noheader,nounits"])
            .arg(format!("--id={}", self.index))
            .output()
            .context("running nvidia-smi")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mib: u64 = text
            .trim()
            .parse()
            .with_context(|| format!("parsing nvidia-smi's memory.used {text:?}"))?;
        Ok(mib << 20)
    }
}

impl Drop for GpuWatch {
    fn drop(&mut self) {
        // Ours alone: the sampling process started in `start`.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The name of GPU `index` as `nvidia-smi` reports it (e.g. "NVIDIA H100 80GB HBM3").
pub fn gpu_name(index: usize) -> Option<String> {
    let out = Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .arg(format!("--id={index}"))
        .output()
        .ok()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !name.is_empty()).then_some(name)
}
