//! The measurements beside the table: memory with many open connections, a
//! heartbeat round over many tenants, and process start to ready.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use crate::procs::{self, CLIENT_ID, Memory};
use crate::seed::{self, Op};
use crate::wrk::{self, Load, Outcome};

/// Memory while wrk holds `connections` connections open.
pub struct ConnectionsRss {
    pub what: String,
    pub idle: Memory,
    /// Largest VmRSS sampled during the run.
    pub loaded_rss_kib: u64,
    /// VmHWM at the end.
    pub peak_kib: u64,
    pub max_sockets: usize,
    pub max_threads: u64,
    pub outcome: Outcome,
}

/// Runs wrk with `load` against one operation of a freshly seeded proxy and
/// samples the proxy's memory every 100 ms.
pub fn connections_rss(
    dir: &Path,
    latency: Duration,
    op: Option<Op>,
    load: &Load,
) -> anyhow::Result<ConnectionsRss> {
    let tag = format!(
        "rss-{}ms-{}",
        latency.as_millis(),
        op.map_or("healthz", Op::slug)
    );
    let (_sim, sim_url) = procs::start_simulator(
        latency,
        &["--pending-polls", "1000000000"],
        &dir.join(format!("{tag}-sim.log")),
    )?;
    let (proxy, addr) = procs::start_proxy(
        &dir.join(format!("{tag}.db")),
        &sim_url,
        &dir.join(format!("{tag}.log")),
    )?;
    let seeded = seed::seed(&format!("http://{addr}"), &sim_url)?;
    let shape = match op {
        Some(op) => seeded.proxy_shape(op),
        None => seeded.baseline_shape(seed::Baseline::Healthz),
    };
    let script = wrk::write_script(dir, &tag, &shape)?;
    let idle = proxy.memory();

    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let running = running.clone();
        let pid = proxy.pid();
        std::thread::spawn(move || {
            let (mut rss, mut sockets, mut threads) = (0, 0, 0);
            while running.load(Ordering::Relaxed) {
                rss = rss.max(procs::memory(pid).rss_kib);
                sockets = sockets.max(procs::sockets(pid));
                threads = threads.max(procs::threads(pid));
                std::thread::sleep(Duration::from_millis(100));
            }
            (rss, sockets, threads)
        })
    };
    let outcome = wrk::run(&shape, &script, load, rand_nonce());
    running.store(false, Ordering::Relaxed);
    let (loaded_rss_kib, max_sockets, max_threads) = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
    Ok(ConnectionsRss {
        what: format!(
            "{} at {} ms",
            op.map_or("GET /healthz", Op::name),
            latency.as_millis()
        ),
        idle,
        loaded_rss_kib,
        peak_kib: proxy.memory().peak_kib,
        max_sockets,
        max_threads,
        outcome: outcome?,
    })
}

/// A heartbeat round, timed.
pub struct Heartbeat {
    pub tenants: usize,
    pub concurrency: usize,
    pub elapsed: Duration,
    pub exit_code: Option<i32>,
    pub succeeded: Option<u64>,
    pub failed: Option<u64>,
    pub microsoft_calls: u64,
    pub peak_rss_kib: u64,
}

/// Seeds `tenants` set-up integrations by SQL and times `heartbeat` against
/// a simulator with open tenants and `latency`.
pub fn heartbeat(
    dir: &Path,
    tenants: usize,
    concurrency: usize,
    latency: Duration,
) -> anyhow::Result<Heartbeat> {
    let tag = format!("heartbeat-{tenants}-c{concurrency}");
    let database = dir.join(format!("{tag}.db"));
    seed_integrations(dir, &database, tenants)?;

    let (_sim, sim_url) = procs::start_simulator(
        latency,
        &["--open-tenants"],
        &dir.join(format!("{tag}-sim.log")),
    )?;
    let agent = seed::agent();
    let before = arrivals(&agent, &sim_url)?;
    let log = dir.join(format!("{tag}.log"));
    let args: Vec<String> = [
        "heartbeat",
        "--database",
        &database.to_string_lossy(),
        "--login-url",
        &sim_url,
        "--graph-url",
        &sim_url,
        "--client-id",
        CLIENT_ID,
        "--heartbeat-concurrency",
        &concurrency.to_string(),
        "--log-format",
        "json",
        "--log-level",
        "info",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    let started = Instant::now();
    let mut child = procs::proxy_command(&args, &log)?.spawn()?;
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        peak = peak.max(procs::memory(pid).peak_kib);
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let microsoft_calls = arrivals(&agent, &sim_url)? - before;

    let summary = std::fs::read_to_string(&log)?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "heartbeat round finished");
    let field = |name: &str| summary.as_ref().and_then(|s| s["fields"][name].as_u64());
    Ok(Heartbeat {
        tenants,
        concurrency,
        elapsed,
        exit_code: status.code(),
        succeeded: field("succeeded"),
        failed: field("failed"),
        microsoft_calls,
        peak_rss_kib: peak,
    })
}

/// Creates the schema with `migrate`, then inserts set-up integrations.
fn seed_integrations(dir: &Path, database: &Path, tenants: usize) -> anyhow::Result<()> {
    let args = vec![
        "migrate".to_string(),
        "--database".into(),
        database.to_string_lossy().into_owned(),
    ];
    let status = procs::proxy_command(&args, &dir.join("migrate.log"))?.status()?;
    ensure!(status.success(), "migrate failed: {status}");

    let mut db = rusqlite::Connection::open(database)?;
    let tx = db.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO integrations (tenant_id, origin, secret_hash, admin_consented, \
             provisioned, setup_done, created_at, updated_at) \
             VALUES (?1, 'https://fleet.example.com', ?2, 1, 1, 1, ?3, ?3)",
        )?;
        let now = chrono::Utc::now().timestamp();
        for i in 0..tenants {
            let tenant = format!("5eed0000-0000-4000-8000-{i:012x}");
            // Nobody logs in with these; any 32 bytes do for the hash.
            insert.execute(rusqlite::params![tenant, vec![0u8; 32], now])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The simulator's arrival count.
pub fn arrivals(agent: &ureq::Agent, sim: &str) -> anyhow::Result<u64> {
    let mut response = agent.get(format!("{sim}/_sim/stats")).call()?;
    let stats: serde_json::Value = serde_json::from_str(&response.body_mut().read_to_string()?)?;
    stats["arrivals"]
        .as_u64()
        .context("no arrivals in /_sim/stats")
}

/// Spawn to first 200 from `/readyz`, on a fresh or on an existing database.
pub struct StartToReady {
    pub fresh: Vec<Duration>,
    pub existing: Vec<Duration>,
}

/// Starts `serve` `samples` times on fresh databases and `samples` times on
/// one existing database; each time polls `/readyz` every 0.5 ms.
pub fn start_to_ready(dir: &Path, sim: &str, samples: usize) -> anyhow::Result<StartToReady> {
    let existing_db = dir.join("ready-existing.db");
    let mut result = StartToReady {
        fresh: Vec::new(),
        existing: Vec::new(),
    };
    // One unmeasured start creates the existing database and warms the page
    // cache with the binary.
    time_to_ready(dir, &existing_db, sim)?;
    for i in 0..samples {
        let fresh_db = dir.join(format!("ready-fresh-{i}.db"));
        result.fresh.push(time_to_ready(dir, &fresh_db, sim)?);
        result.existing.push(time_to_ready(dir, &existing_db, sim)?);
    }
    Ok(result)
}

fn time_to_ready(dir: &Path, database: &Path, sim: &str) -> anyhow::Result<Duration> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let args = procs::serve_args(database, &addr.to_string(), sim);
    let mut command = procs::proxy_command(&args, &dir.join("ready.log"))?;

    let started = Instant::now();
    let mut child = command.spawn()?;
    let deadline = started + Duration::from_secs(10);
    let outcome = loop {
        if readyz(addr) {
            break Ok(started.elapsed());
        }
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!("serve exited with {status} before ready"));
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!("serve not ready after 10 s"));
        }
        std::thread::sleep(Duration::from_micros(500));
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

/// True when `GET /readyz` answers 200.
fn readyz(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// A wrk script argument that tells this run's GUIDs from earlier runs'.
pub fn rand_nonce() -> u32 {
    // Below 2^31: LuaJIT's %x formats it without surprises.
    (uuid::Uuid::new_v4().as_u128() as u32) & 0x7fff_ffff
}
