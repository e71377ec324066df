//! The broker under test as a child process, and what `/proc` says about it.
//!
//! The bench runs the real release binary (not an in-process broker) so that
//! its memory and CPU are the broker's alone and can be read from
//! `/proc/<pid>/{stat,status}`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long the broker may take to accept its first connection.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a graceful shutdown may take before the broker is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `runnel` child on a fresh data directory and a free port.
/// Dropping it kills the process and removes the directory.
pub struct BrokerProcess {
    child: Option<Child>,
    data_dir: PathBuf,
    addr: SocketAddr,
    clk_tck: f64,
}

impl BrokerProcess {
    /// Starts `binary` with its data under a new directory in `base` and
    /// `overrides` (`key=value`) after the bench's own, then waits until it
    /// accepts connections.
    pub fn start(binary: &Path, base: &Path, label: &str, overrides: &[String]) -> Result<Self> {
        let data_dir = unique_dir(base, label)?;
        // Port 0 cannot be used: the broker advertises the listener's port,
        // and the bench must know it. A port freed just now is the usual
        // compromise; a clash shows up as a start failure, not a wrong result.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = Command::new(binary);
        cmd.arg("--override")
            .arg(format!("log.dirs={}", data_dir.display()))
            .arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .arg("--override")
            .arg("auto.create.topics.enable=false");
        for o in overrides {
            cmd.arg("--override").arg(o);
        }
        // Only warnings and errors, on the bench's stderr, so that the
        // Markdown on stdout stays clean.
        cmd.env(
            "RUNNEL_LOG",
            std::env::var("RUNNEL_LOG").unwrap_or("warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut broker = BrokerProcess {
            child: Some(child),
            data_dir,
            addr,
            clk_tck: clk_tck(),
        };
        broker.wait_ready()?;
        Ok(broker)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child_mut().try_wait()? {
                bail!("broker exited during start-up: {status}");
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "broker did not accept connections on {} within {START_TIMEOUT:?}",
                    self.addr
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present until stop")
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child present until stop").id()
    }

    /// utime + stime of the broker so far, in seconds.
    pub fn cpu_secs(&self) -> Result<f64> {
        cpu_secs_of(&format!("/proc/{}/stat", self.pid()), self.clk_tck)
    }

    /// Resident set size now (VmRSS), in bytes.
    pub fn rss_bytes(&self) -> Result<u64> {
        status_kib(self.pid(), "VmRSS").map(|k| k * 1024)
    }

    /// Peak resident set size (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> Result<u64> {
        status_kib(self.pid(), "VmHWM").map(|k| k * 1024)
    }

    /// SIGTERM, then waits for a clean exit; returns how long it took.
    pub fn stop(mut self) -> Result<Duration> {
        let started = Instant::now();
        let pid = self.pid();
        // std has no portable SIGTERM and the crate denies `unsafe`, so the
        // signal goes through kill(1).
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .context("cannot run kill(1)")?;
        if !status.success() {
            bail!("kill -TERM {pid} failed: {status}");
        }
        let deadline = started + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child_mut().try_wait()? {
                self.child = None;
                if !status.success() {
                    bail!("broker exited with {status} on SIGTERM");
                }
                return Ok(started.elapsed());
            }
            if Instant::now() > deadline {
                bail!("broker did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn unique_dir(base: &Path, label: &str) -> Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = base.join(format!(
        "runnel-bench-{}-{label}-{nanos:09}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// utime + stime (fields 14 and 15 of `/proc/<pid>/stat`) in seconds. The
/// command name (field 2) may hold spaces, so fields are counted after its
/// closing parenthesis.
pub fn cpu_secs_of(stat_path: &str, clk_tck: f64) -> Result<f64> {
    let text = std::fs::read_to_string(stat_path).with_context(|| format!("read {stat_path}"))?;
    let rest = &text[text.rfind(')').context("malformed stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let ticks: u64 = fields
        .get(11..13)
        .context("short stat")?
        .iter()
        .map(|f| f.parse::<u64>())
        .sum::<Result<u64, _>>()?;
    Ok(ticks as f64 / clk_tck)
}

/// CPU seconds used by this process (the bench's clients), all threads.
pub fn self_cpu_secs() -> Result<f64> {
    cpu_secs_of("/proc/self/stat", clk_tck())
}

fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

/// Clock ticks per second for `/proc/*/stat` times: `getconf CLK_TCK`, or
/// Linux's near-universal 100.
fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Mean time of a 4 KiB append + fdatasync in `dir`: what one fsync costs on
/// the disk the broker writes to (virtual disks often make it nearly free).
pub fn fsync_probe(dir: &Path) -> Result<Duration> {
    use std::io::Write;
    const ROUNDS: u32 = 100;
    let path = dir.join(format!("runnel-bench-fsync-probe-{}", std::process::id()));
    let result = (|| -> Result<Duration> {
        let mut file = std::fs::File::create(&path)?;
        let block = [0u8; 4096];
        let started = Instant::now();
        for _ in 0..ROUNDS {
            file.write_all(&block)?;
            file.sync_data()?;
        }
        Ok(started.elapsed() / ROUNDS)
    })();
    let _ = std::fs::remove_file(&path);
    result.with_context(|| format!("fsync probe in {}", dir.display()))
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` prints them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// What the numbers were measured on.
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total_bytes: u64,
    pub kernel: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let mem_total_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines().find_map(|l| {
                    l.strip_prefix("MemTotal:")?
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
            })
            .unwrap_or(0)
            * 1024;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            mem_total_bytes,
            kernel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_counted_after_the_command_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        // A command name with spaces and a parenthesis, as a thread may have.
        std::fs::write(
            &path,
            "4242 (tokio rt) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 0 0\n",
        )
        .unwrap();
        let secs = cpu_secs_of(path.to_str().unwrap(), 100.0).unwrap();
        assert!((secs - 3.0).abs() < 1e-9, "{secs}");
    }

    #[test]
    fn own_process_is_readable() {
        assert!(self_cpu_secs().unwrap() >= 0.0);
        assert!(status_kib(std::process::id(), "VmRSS").unwrap() > 0);
        assert!(fsync_probe(&std::env::temp_dir()).is_ok());
    }
}
