//! Load benchmark of the proxy against the simulated Microsoft.
//!
//! `cargo bench --bench load -- [options]` (or `bench/run`, which installs
//! wrk first). For each simulator latency and concurrency it starts the
//! release binary twice, as `simulate` and as `serve`, seeds them over HTTP,
//! and drives every operation with wrk after a warm-up, next to the direct
//! request it is compared with. Then it measures memory with many open
//! connections, a heartbeat round over many tenants, and start to ready. It
//! prints one markdown report and writes it under `target/bench/`.
//!
//! Layout: `procs` (the processes and `/proc`), `wrk` (scripts, runs,
//! reports), `seed` (state and request shapes), `extras` (the measurements
//! beside the table), `report` (the markdown).
//!
//! Nothing here asserts a timing: the figures are for people to read.

mod extras;
mod procs;
mod report;
mod seed;
mod wrk;

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use procs::{MachineCpu, Memory, Proc};
use seed::{Baseline, Op};
use wrk::{Load, Outcome, Shape};

const USAGE: &str = "\
usage: cargo bench --bench load -- [options]

  --latency LIST        simulator latencies, e.g. 0ms,50ms        [0ms,50ms]
  --concurrency LIST    wrk connections per run                   [1,64,512]
  --duration D          measured time per run                     [10s]
  --warmup D            unmeasured load before each run           [3s]
  --threads N           wrk threads                               [2]
  --ops LIST            create,settings,push,pending-poll,terminal-poll [all]
  --connections N       open connections for the memory figure    [1000]
  --heartbeat-tenants N tenants in the heartbeat round            [10000]
  --heartbeat-concurrency LIST  rounds to time, by concurrency    [64,256]
  --ready-samples N     starts to time, each fresh and existing   [7]
  --no-table            skip the table
  --no-extras           skip memory, heartbeat and start-up figures
  --perf DIR            run perf during every measured run, output in DIR
  --perf-args ARGS      perf's arguments; {out}, {proxy}, {sim} are replaced
                        [record -a -e cpu-clock -F 499 --call-graph dwarf,16384
                        -o {out}]
  --quick               0ms, 64 connections, 3s runs, 1s warm-up, 1,000
                        heartbeat tenants, 3 start samples (a smoke run)
  --out FILE            also write the report here [target/bench/load.md]";

/// What to run, from the command line.
#[derive(Clone, Debug)]
struct Options {
    latencies: Vec<Duration>,
    concurrency: Vec<u32>,
    duration: Duration,
    warmup: Duration,
    threads: u32,
    ops: Vec<Op>,
    connections: u32,
    heartbeat_tenants: usize,
    heartbeat_concurrency: Vec<usize>,
    ready_samples: usize,
    table: bool,
    extras: bool,
    perf: Option<PathBuf>,
    perf_args: String,
    out: Option<PathBuf>,
    args: Vec<String>,
}

impl Options {
    fn parse(args: Vec<String>) -> anyhow::Result<Options> {
        let mut o = Options {
            latencies: vec![Duration::ZERO, Duration::from_millis(50)],
            concurrency: vec![1, 64, 512],
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(3),
            threads: 2,
            ops: Op::ALL.to_vec(),
            connections: 1000,
            heartbeat_tenants: 10_000,
            heartbeat_concurrency: vec![64, 256],
            ready_samples: 7,
            table: true,
            extras: true,
            perf: None,
            perf_args: "record -a -e cpu-clock -F 499 --call-graph dwarf,16384 -o {out}".into(),
            out: None,
            args: args.clone(),
        };
        // `--quick` first, so that explicit options given with it win.
        if args.iter().any(|a| a == "--quick") {
            o.latencies = vec![Duration::ZERO];
            o.concurrency = vec![64];
            o.duration = Duration::from_secs(3);
            o.warmup = Duration::from_secs(1);
            o.heartbeat_tenants = 1000;
            o.heartbeat_concurrency = vec![32];
            o.ready_samples = 3;
        }
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                // Cargo passes `--bench` to every benchmark binary.
                "--bench" | "--quick" => {}
                "--latency" => o.latencies = list(&value()?, parse_duration)?,
                "--concurrency" => o.concurrency = list(&value()?, |v| Ok(v.parse()?))?,
                "--duration" => o.duration = parse_duration(&value()?)?,
                "--warmup" => o.warmup = parse_duration(&value()?)?,
                "--threads" => o.threads = value()?.parse()?,
                "--ops" => o.ops = list(&value()?, parse_op)?,
                "--connections" => o.connections = value()?.parse()?,
                "--heartbeat-tenants" => o.heartbeat_tenants = value()?.parse()?,
                "--heartbeat-concurrency" => {
                    o.heartbeat_concurrency = list(&value()?, |v| Ok(v.parse()?))?;
                }
                "--ready-samples" => o.ready_samples = value()?.parse()?,
                "--no-table" => o.table = false,
                "--no-extras" => o.extras = false,
                "--perf" => o.perf = Some(value()?.into()),
                "--perf-args" => o.perf_args = value()?,
                "--out" => o.out = Some(value()?.into()),
                other => bail!("unknown option {other:?}\n{USAGE}"),
            }
        }
        Ok(o)
    }
}

fn list<T>(text: &str, item: impl Fn(&str) -> anyhow::Result<T>) -> anyhow::Result<Vec<T>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(item)
        .collect()
}

fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(text).with_context(|| format!("not a duration: {text:?}"))
}

fn parse_op(text: &str) -> anyhow::Result<Op> {
    Op::ALL
        .into_iter()
        .find(|op| op.slug() == text)
        .with_context(|| format!("unknown operation {text:?}"))
}

/// One measured wrk run and what the processes did meanwhile.
#[derive(Clone, Debug)]
pub struct Run {
    pub label: String,
    pub outcome: Outcome,
    /// Simulator arrivals per completed request.
    pub calls_per_request: f64,
    /// CPU used during the run, in percent of one core.
    pub proxy_cpu: f64,
    pub sim_cpu: f64,
    pub wrk_cpu: f64,
    /// Everything else on the machine (other jobs, the kernel's own threads).
    pub other_cpu: f64,
    /// The whole machine, in percent of one core (200 % = two busy cores).
    pub machine_cpu: f64,
    /// CPU time per completed request.
    pub proxy_cpu_per_request: Duration,
    pub sim_cpu_per_request: Duration,
    pub proxy_memory: Memory,
    pub proxy_threads: u64,
    pub load: String,
}

/// One latency × concurrency cell of the table.
pub struct Scenario {
    pub latency: Duration,
    pub concurrency: u32,
    pub ops: Vec<(Op, Run)>,
    pub baselines: Vec<(Baseline, Run)>,
    pub proxy_warnings: (usize, Option<String>),
}

/// Everything measured, for the report.
pub struct Results {
    pub scenarios: Vec<Scenario>,
    pub rss: Vec<extras::ConnectionsRss>,
    pub heartbeats: Vec<extras::Heartbeat>,
    pub ready: Option<extras::StartToReady>,
    pub problems: Vec<String>,
}

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not, and a
    // ten-minute load run has no place in a test run.
    if !std::env::args().any(|a| a == "--bench") {
        println!("load: not run (no --bench); use `cargo bench --bench load` or bench/run");
        return ExitCode::SUCCESS;
    }
    let options = match Options::parse(std::env::args().skip(1).collect()) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match bench(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(options: &Options) -> anyhow::Result<()> {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("wrk is not installed: run bench/run, or apt-get install -y wrk")?;
    let dir = tempfile::Builder::new().prefix("load-bench-").tempdir()?;
    let started = Instant::now();
    let machine = report::machine();
    eprintln!("load bench: {machine}; working in {}", dir.path().display());

    let mut results = Results {
        scenarios: Vec::new(),
        rss: Vec::new(),
        heartbeats: Vec::new(),
        ready: None,
        problems: Vec::new(),
    };
    if options.table {
        for &latency in &options.latencies {
            for &concurrency in &options.concurrency {
                let scenario = scenario(options, dir.path(), latency, concurrency)?;
                results.scenarios.push(scenario);
            }
        }
    }
    if options.extras {
        extras(options, dir.path(), &mut results);
    }

    let text = report::render(options, &machine, &results, started.elapsed());
    println!("{text}");
    let target = PathBuf::from(procs::BINARY)
        .parent()
        .and_then(|release| release.parent())
        .map(|t| t.join("bench"))
        .context("no target directory")?;
    std::fs::create_dir_all(&target)?;
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let mut written = vec![
        target.join(format!("load-{stamp}.md")),
        target.join("load.md"),
    ];
    written.extend(options.out.clone());
    for path in &written {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("load bench: report written to {}", written[0].display());
    Ok(())
}

/// The table's figures at one latency and concurrency, with a fresh
/// simulator and proxy.
fn scenario(
    options: &Options,
    dir: &std::path::Path,
    latency: Duration,
    concurrency: u32,
) -> anyhow::Result<Scenario> {
    let tag = format!("{}ms-c{concurrency}", latency.as_millis());
    eprintln!(
        "load bench: scenario {tag} (load {})",
        procs::load_average()
    );
    let (mut sim, sim_url) = procs::start_simulator(
        latency,
        &["--pending-polls", "1000000000"],
        &dir.join(format!("{tag}-sim.log")),
    )?;
    let proxy_log = dir.join(format!("{tag}-proxy.log"));
    let (mut proxy, addr) =
        procs::start_proxy(&dir.join(format!("{tag}.db")), &sim_url, &proxy_log)?;
    let seeded = seed::seed(&format!("http://{addr}"), &sim_url)
        .with_context(|| format!("seeding ({})", proxy_log.display()))?;

    let load = Load {
        threads: options.threads,
        connections: concurrency,
        duration: options.duration,
    };
    let bench = Bench {
        options,
        dir,
        tag: &tag,
        load,
        latency,
        sim_url: &sim_url,
        agent: seed::agent(),
    };
    let mut scenario = Scenario {
        latency,
        concurrency,
        ops: Vec::new(),
        baselines: Vec::new(),
        proxy_warnings: (0, None),
    };
    // Each operation right after its baseline, so both see similar
    // machine load.
    for baseline in Baseline::ALL {
        let ops: Vec<Op> = options
            .ops
            .iter()
            .copied()
            .filter(|op| op.baseline() == baseline)
            .collect();
        if ops.is_empty() {
            continue;
        }
        let shape = seeded.baseline_shape(baseline);
        let run = bench.measure(baseline.slug(), &shape, &proxy, &sim)?;
        scenario.baselines.push((baseline, run));
        for op in ops {
            let run = bench.measure(op.slug(), &seeded.proxy_shape(op), &proxy, &sim)?;
            scenario.ops.push((op, run));
        }
        proxy.check_alive()?;
        sim.check_alive()?;
    }
    scenario.proxy_warnings = procs::warnings(&proxy_log);
    Ok(scenario)
}

/// What one scenario's runs share.
struct Bench<'a> {
    options: &'a Options,
    dir: &'a std::path::Path,
    tag: &'a str,
    load: Load,
    latency: Duration,
    sim_url: &'a str,
    agent: ureq::Agent,
}

impl Bench<'_> {
    /// Warm-up, then one measured run, with CPU, memory and simulator
    /// arrivals read around it.
    fn measure(&self, slug: &str, shape: &Shape, proxy: &Proc, sim: &Proc) -> anyhow::Result<Run> {
        let label = format!("{}/{slug}", self.tag);
        let script = wrk::write_script(self.dir, &label.replace('/', "-"), shape)?;
        if !self.options.warmup.is_zero() {
            let warmup = Load {
                duration: self.options.warmup,
                ..self.load.clone()
            };
            wrk::run(shape, &script, &warmup, extras::rand_nonce())
                .with_context(|| format!("{label}: warm-up"))?;
            self.settle();
        }

        let calls_before = extras::arrivals(&self.agent, self.sim_url)?;
        let (proxy_before, sim_before, machine_before) =
            (proxy.cpu(), sim.cpu(), MachineCpu::now());
        let wrk_before = procs::children_cpu_time();
        let perf = self.start_perf(&label, proxy, sim)?;
        let started = Instant::now();
        let outcome = wrk::run(shape, &script, &self.load, extras::rand_nonce())
            .with_context(|| format!("{label}: measured run"))?;
        let wall = started.elapsed().as_secs_f64();
        let (proxy_after, sim_after, machine_after) = (proxy.cpu(), sim.cpu(), MachineCpu::now());
        // wrk has been waited for; perf, if any, has not yet.
        let wrk_after = procs::children_cpu_time();
        let proxy_threads = proxy.threads();
        if let Some(mut perf) = perf {
            let _ = perf.wait();
        }
        self.settle();
        let calls = extras::arrivals(&self.agent, self.sim_url)? - calls_before;

        let percent = |after: Duration, before: Duration| {
            100.0 * (after.saturating_sub(before)).as_secs_f64() / wall
        };
        let requests = outcome.requests.max(1) as u32;
        let machine_cpu = machine_after.busy_since(&machine_before);
        let (proxy_cpu, sim_cpu) = (
            percent(proxy_after, proxy_before),
            percent(sim_after, sim_before),
        );
        let wrk_cpu = percent(wrk_after, wrk_before);
        let run = Run {
            label,
            calls_per_request: calls as f64 / f64::from(requests),
            proxy_cpu_per_request: proxy_after.saturating_sub(proxy_before) / requests,
            sim_cpu_per_request: sim_after.saturating_sub(sim_before) / requests,
            proxy_cpu,
            sim_cpu,
            wrk_cpu,
            other_cpu: (machine_cpu - proxy_cpu - sim_cpu - wrk_cpu).max(0.0),
            machine_cpu,
            proxy_memory: proxy.memory(),
            proxy_threads,
            load: procs::load_average(),
            outcome,
        };
        eprintln!("{}", report::progress(&run));
        Ok(run)
    }

    /// Lets requests still in flight when wrk stopped finish.
    fn settle(&self) {
        std::thread::sleep(self.latency * 2 + Duration::from_millis(300));
    }

    /// perf for the length of a measured run, when asked for. The process
    /// ids go beside its output, for `perf report --pid`.
    fn start_perf(&self, label: &str, proxy: &Proc, sim: &Proc) -> anyhow::Result<Option<Child>> {
        let Some(dir) = &self.options.perf else {
            return Ok(None);
        };
        std::fs::create_dir_all(dir)?;
        let name = label.replace('/', "-");
        let pids = format!("proxy={}\nsimulator={}\n", proxy.pid(), sim.pid());
        std::fs::write(dir.join(format!("{name}.pids")), pids)?;
        let out = dir.join(format!("{name}.data"));
        let args: Vec<String> = self
            .options
            .perf_args
            .split_whitespace()
            .map(|arg| {
                arg.replace("{out}", &out.to_string_lossy())
                    .replace("{proxy}", &proxy.pid().to_string())
                    .replace("{sim}", &sim.pid().to_string())
            })
            .collect();
        let seconds = self.options.duration.as_secs().max(1).to_string();
        let child = Command::new("perf")
            .args(&args)
            .args(["--", "sleep", &seconds])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting perf")?;
        Ok(Some(child))
    }
}

/// The measurements beside the table; a failure is reported, not fatal.
fn extras(options: &Options, dir: &std::path::Path, results: &mut Results) {
    let load = |concurrency| Load {
        threads: options.threads,
        connections: concurrency,
        duration: options.duration,
    };
    let slow = Duration::from_millis(50);
    for (latency, op) in [(Duration::ZERO, None), (slow, Some(Op::Push))] {
        // Two runs share the connection count; name what each one loads.
        eprintln!(
            "load bench: memory with {} connections on {} at {} ms (load {})",
            options.connections,
            op.map_or("GET /healthz", Op::name),
            latency.as_millis(),
            procs::load_average()
        );
        match extras::connections_rss(dir, latency, op, &load(options.connections)) {
            Ok(rss) => results.rss.push(rss),
            Err(e) => results
                .problems
                .push(format!("memory with open connections: {e:#}")),
        }
    }

    for &concurrency in &options.heartbeat_concurrency {
        eprintln!(
            "load bench: heartbeat over {} tenants, concurrency {concurrency} (load {})",
            options.heartbeat_tenants,
            procs::load_average()
        );
        match extras::heartbeat(dir, options.heartbeat_tenants, concurrency, slow) {
            Ok(round) => results.heartbeats.push(round),
            Err(e) => results.problems.push(format!("heartbeat round: {e:#}")),
        }
    }

    eprintln!(
        "load bench: start to ready (load {})",
        procs::load_average()
    );
    let ready = procs::start_simulator(Duration::ZERO, &[], &dir.join("ready-sim.log"))
        .and_then(|(_sim, url)| extras::start_to_ready(dir, &url, options.ready_samples));
    match ready {
        Ok(ready) => results.ready = Some(ready),
        Err(e) => results.problems.push(format!("start to ready: {e:#}")),
    }
}
