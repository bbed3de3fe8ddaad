//! Driving `wrk`: a Lua script per request shape, one run, and its report.
//!
//! A request shape is a method, a URL, headers and a body. Two placeholders
//! make each request different where the service would otherwise see the
//! same one over and over: `@GUID@` becomes a GUID no earlier request of the
//! run used, and `@POOL@` one of [`POOL`] fixed GUIDs in turn.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

/// How many GUIDs `@POOL@` cycles through.
pub const POOL: u32 = 512;

/// One kind of request to send.
#[derive(Clone, Debug)]
pub struct Shape {
    pub method: &'static str,
    /// Absolute URL; path and query may hold placeholders.
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
}

impl Shape {
    pub fn get(url: String) -> Shape {
        Shape {
            method: "GET",
            url,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Shape {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, method: &'static str, body: String) -> Shape {
        self.method = method;
        self.body = Some(body);
        self
    }

    fn is_dynamic(&self) -> bool {
        let has = |text: &str| text.contains("@GUID@") || text.contains("@POOL@");
        has(&self.url) || self.body.as_deref().is_some_and(has)
    }

    /// Scheme, host and port; wrk connects there.
    fn origin(&self) -> &str {
        let after_scheme = self.url.find("://").map_or(0, |i| i + 3);
        let end = self.url[after_scheme..]
            .find('/')
            .map_or(self.url.len(), |i| after_scheme + i);
        &self.url[..end]
    }

    /// Path and query.
    fn target(&self) -> &str {
        let target = &self.url[self.origin().len()..];
        if target.is_empty() { "/" } else { target }
    }

    /// The Lua script that sends this request.
    fn script(&self) -> String {
        let mut lua = String::from("-- Written by benches/load; see BENCHMARKS.md.\n");
        lua += &format!("wrk.method = {}\n", quote(self.method));
        for (name, value) in &self.headers {
            lua += &format!("wrk.headers[{}] = {}\n", quote(name), quote(value));
        }
        if let Some(body) = &self.body {
            lua += &format!("wrk.body = {}\n", quote(body));
        }
        if !self.is_dynamic() {
            return lua;
        }
        lua += &format!("local target = {}\n", quote(self.target()));
        lua += &format!("local pool = {POOL}\n");
        lua += DYNAMIC;
        lua
    }
}

/// Per-request substitution. `tid` numbers the wrk threads (set in each
/// thread's state by `setup`), the nonce (first script argument) tells runs
/// apart, and `n` counts this thread's requests.
const DYNAMIC: &str = r#"
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local nonce = 0
local n = 0
function init(args)
  nonce = tonumber(args[1]) or 0
end

function request()
  n = n + 1
  local guid = string.format("%08x-%04x-4000-8000-%012x", nonce, tid, n)
  local pooled = string.format("00000000-0000-4000-8000-%012x", (n * 2 + tid) % pool)
  local function fill(text)
    if text == nil then return nil end
    return (text:gsub("@GUID@", guid):gsub("@POOL@", pooled))
  end
  return wrk.format(nil, fill(target), nil, fill(wrk.body))
end
"#;

/// A Lua string literal.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' => out += "\\\\",
            '"' => out += "\\\"",
            '\n' => out += "\\n",
            '\r' => out += "\\r",
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// How to run wrk.
#[derive(Clone, Debug)]
pub struct Load {
    pub threads: u32,
    pub connections: u32,
    pub duration: Duration,
}

/// What wrk reported.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub requests: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    /// Non-2xx/3xx answers.
    pub bad_status: u64,
    /// Connect, read, write and timeout errors.
    pub socket_errors: u64,
}

impl Outcome {
    pub fn errors(&self) -> u64 {
        self.bad_status + self.socket_errors
    }
}

/// Writes the script for `shape` into `dir` under `name`.
pub fn write_script(dir: &Path, name: &str, shape: &Shape) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, shape.script())?;
    Ok(path)
}

/// Runs wrk once and reads its report.
pub fn run(shape: &Shape, script: &Path, load: &Load, nonce: u32) -> anyhow::Result<Outcome> {
    let threads = load.threads.min(load.connections).max(1);
    let output = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.duration.as_secs().max(1)))
        .args(["--timeout", "10s", "--latency", "-s"])
        .arg(script)
        .arg(format!("{}{}", shape.origin(), shape.target()))
        .arg("--")
        .arg(nonce.to_string())
        .output()
        .context("running wrk (is it installed? bench/run installs it)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            output.status,
            text,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&text).with_context(|| format!("reading wrk's report:\n{text}"))
}

/// Reads wrk's `--latency` report.
pub fn parse(text: &str) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    let mut saw_rate = false;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => outcome.p50 = duration(value)?,
            ["90%", value] => outcome.p90 = duration(value)?,
            ["99%", value] => outcome.p99 = duration(value)?,
            [count, "requests", "in", seconds, ..] => {
                outcome.requests = count.parse()?;
                outcome.seconds = duration(seconds.trim_end_matches(','))?.as_secs_f64();
            }
            ["Requests/sec:", rate] => {
                outcome.per_second = rate.parse()?;
                saw_rate = true;
            }
            ["Non-2xx", "or", "3xx", "responses:", count] => outcome.bad_status = count.parse()?,
            ["Socket", "errors:", rest @ ..] => {
                outcome.socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    if !saw_rate {
        bail!("no Requests/sec line");
    }
    Ok(outcome)
}

/// wrk's durations: `812.00us`, `1.20ms`, `2.00s`, `1.50m`.
fn duration(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {text:?}"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => bail!("unknown unit in {text:?}"),
    };
    Ok(Duration::from_secs_f64(seconds))
}
