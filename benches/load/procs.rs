//! The processes under test: the simulated Microsoft and the proxy, both the
//! release binary, plus what `/proc` says about them (memory, CPU, sockets).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The release binary Cargo built for this benchmark.
pub const BINARY: &str = env!("CARGO_BIN_EXE_compliance-proxy");

/// The application the simulator knows, and its secret.
pub const CLIENT_ID: &str = "00000000-0000-4000-8000-00000000c1d0";
pub const CLIENT_SECRET: &str = "simulated-client-secret";

/// A child process that is killed when dropped.
pub struct Proc {
    pub name: &'static str,
    child: Child,
    /// Kept open so the child never writes into a closed pipe.
    _stdout: Option<BufReader<ChildStdout>>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `VmRSS` and `VmHWM` (peak) in KiB.
    pub fn memory(&self) -> Memory {
        memory(self.pid())
    }

    /// User + system CPU time used so far.
    pub fn cpu(&self) -> Duration {
        cpu_time(self.pid())
    }

    /// Threads.
    pub fn threads(&self) -> u64 {
        threads(self.pid())
    }

    /// Fails if the process has already exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early with {status}", self.name);
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

pub fn memory(pid: u32) -> Memory {
    Memory {
        rss_kib: status_field(pid, "VmRSS:").unwrap_or(0),
        peak_kib: status_field(pid, "VmHWM:").unwrap_or(0),
    }
}

/// Open sockets of a process, from `/proc/<pid>/fd`.
pub fn sockets(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Threads of a process, from `/proc/<pid>/status`.
pub fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads:").unwrap_or(0)
}

/// A numeric field of `/proc/<pid>/status` (the first number on its line).
fn status_field(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// utime + stime of a process, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    stat_ticks(&format!("/proc/{pid}/stat"), 11)
}

/// CPU time of this process's children that have been waited for (wrk and
/// perf): cutime + cstime of `/proc/self/stat`.
pub fn children_cpu_time() -> Duration {
    stat_ticks("/proc/self/stat", 13)
}

/// The sum of two adjacent clock-tick fields of a `stat` file, counted from
/// the field after the command name (ticks of 10 ms, the kernel's USER_HZ
/// on every Linux this runs on).
fn stat_ticks(path: &str, first: usize) -> Duration {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return Duration::ZERO;
    };
    // The command name may contain spaces; fields resume after its ')'.
    // There the state is field 3, so utime (14) is index 11 and cutime
    // (16) is index 13.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(first) + ticks(first + 1)) * 10)
}

/// Busy and total jiffies of the whole machine, from `/proc/stat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineCpu {
    busy: u64,
    total: u64,
}

impl MachineCpu {
    pub fn now() -> MachineCpu {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let values: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let total: u64 = values.iter().take(8).sum();
        let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
        MachineCpu {
            busy: total.saturating_sub(idle),
            total,
        }
    }

    /// Share of the machine busy since `earlier`, in percent of all cores
    /// (so 200 % on two fully busy cores).
    pub fn busy_since(&self, earlier: &MachineCpu) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        let busy = self.busy.saturating_sub(earlier.busy);
        100.0 * busy as f64 / total as f64 * cores() as f64
    }
}

/// Online CPUs.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The one-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Starts `simulate` and returns it with its base URL.
pub fn start_simulator(
    latency: Duration,
    extra: &[&str],
    log: &Path,
) -> anyhow::Result<(Proc, String)> {
    let latency = format!("{}ms", latency.as_millis());
    let mut child = Command::new(BINARY)
        .args(["simulate", "--latency", &latency, "--no-request-log"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(log)?)
        .spawn()
        .context("starting the simulator")?;
    let mut stdout = BufReader::new(child.stdout.take().context("simulator stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let url = line.trim().to_string();
    if !url.starts_with("http://") {
        let _ = child.kill();
        bail!("the simulator printed {line:?} instead of its URL");
    }
    let proc = Proc {
        name: "simulator",
        child,
        _stdout: Some(stdout),
    };
    Ok((proc, url))
}

/// The arguments `serve` gets, pointed at the simulator at `sim`.
pub fn serve_args(database: &Path, listen: &str, sim: &str) -> Vec<String> {
    [
        "serve",
        "--listen",
        listen,
        "--database",
        &database.to_string_lossy(),
        "--login-url",
        sim,
        "--graph-url",
        sim,
        "--client-id",
        CLIENT_ID,
        "--allow-anonymous",
        "--heartbeat-schedule",
        "off",
        "--log-format",
        "json",
        // Warnings only, except the start-up line that says where we listen.
        "--log-level",
        "warn,compliance_proxy::run=info",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A `Command` for the proxy binary with the simulator's client secret.
pub fn proxy_command(args: &[String], log: &Path) -> anyhow::Result<Command> {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env("COMPLIANCE_PROXY_CLIENT_SECRET", CLIENT_SECRET)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log)?);
    Ok(command)
}

/// Starts `serve` on a free loopback port and waits for its "listening" line.
pub fn start_proxy(database: &Path, sim: &str, log: &Path) -> anyhow::Result<(Proc, SocketAddr)> {
    let args = serve_args(database, "127.0.0.1:0", sim);
    let child = proxy_command(&args, log)?
        .spawn()
        .context("starting the proxy")?;
    let mut proc = Proc {
        name: "proxy",
        child,
        _stdout: None,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(addr) = listening_address(log) {
            return Ok((proc, addr));
        }
        proc.check_alive()
            .with_context(|| format!("see {}", log.display()))?;
        if Instant::now() > deadline {
            bail!(
                "the proxy did not log where it listens; see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The address of the JSON "listening" log line, once it is written.
fn listening_address(log: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "listening")
        .and_then(|v| v["fields"]["address"].as_str()?.parse().ok())
}

/// Lines of a log file at level WARN or ERROR, and the first of them.
pub fn warnings(log: &Path) -> (usize, Option<String>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut found = text
        .lines()
        .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""));
    let first = found.next().map(str::to_owned);
    (first.iter().count() + found.count(), first)
}
