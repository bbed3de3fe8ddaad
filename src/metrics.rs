//! Prometheus metrics: the recorder, every metric name, and the scrape text.
//!
//! Metrics are recorded through the `metrics` facade and exposed by
//! `metrics-exporter-prometheus` at `GET /metrics`. The recorder is global to
//! the process, so it is installed once and shared by every server the
//! process runs (tests run several).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const REQUESTS: &str = "compliance_proxy_http_requests_total";
const REQUEST_SECONDS: &str = "compliance_proxy_http_request_duration_seconds";
const MICROSOFT_CALLS: &str = "compliance_proxy_microsoft_calls_total";
const MICROSOFT_SECONDS: &str = "compliance_proxy_microsoft_call_duration_seconds";
const CACHE_LOOKUPS: &str = "compliance_proxy_cache_lookups_total";
const INTEGRATIONS: &str = "compliance_proxy_integrations";
const LAST_HEARTBEAT_ROUND: &str =
    "compliance_proxy_last_successful_heartbeat_round_timestamp_seconds";
const HEARTBEATS: &str = "compliance_proxy_heartbeats_total";
const OLDEST_HEARTBEAT: &str = "compliance_proxy_oldest_tenant_heartbeat_timestamp_seconds";

/// Latency buckets from 1 ms to a minute.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once) and returns its handle, or
/// `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("the bucket list is not empty");
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

/// Gives every metric its `# HELP` text. Descriptions are kept by the
/// recorder, so this runs once it is installed.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

    describe_counter!(
        REQUESTS,
        "HTTP requests answered, by route template and status."
    );
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request, by route template."
    );
    describe_counter!(
        MICROSOFT_CALLS,
        "Calls to Microsoft, by operation and outcome (ok or an error kind)."
    );
    describe_histogram!(
        MICROSOFT_SECONDS,
        Unit::Seconds,
        "Time per Microsoft call, retries included, by operation."
    );
    describe_counter!(
        CACHE_LOOKUPS,
        "Lookups in the token, endpoints and users caches, by hit or miss."
    );
    describe_gauge!(
        INTEGRATIONS,
        "Integrations pending consent and set up, read from the database at each scrape."
    );
    describe_gauge!(
        LAST_HEARTBEAT_ROUND,
        Unit::Seconds,
        "Unix time the last heartbeat round without a failure finished (serve's schedule only)."
    );
    describe_counter!(
        HEARTBEATS,
        "Tenant heartbeats sent by serve's schedule, by outcome."
    );
    describe_gauge!(
        OLDEST_HEARTBEAT,
        Unit::Seconds,
        "Oldest last successful heartbeat among set-up tenants (setup time if none yet)."
    );
}

/// Folds recorded histogram samples into their buckets every second.
///
/// The exporter keeps every sample until upkeep runs; without it, memory
/// would grow with traffic for as long as nobody scrapes `/metrics`.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

/// The current metrics in Prometheus text format.
pub fn render(handle: &PrometheusHandle) -> String {
    handle.run_upkeep();
    handle.render()
}

/// One answered HTTP request.
pub fn request(route: &'static str, status: u16, elapsed: Duration) {
    let status = status.to_string();
    metrics::counter!(REQUESTS, "route" => route, "status" => status).increment(1);
    metrics::histogram!(REQUEST_SECONDS, "route" => route).record(elapsed.as_secs_f64());
}

/// One Microsoft operation and how it ended (`ok` or an error kind).
pub fn microsoft_call(operation: &'static str, outcome: &'static str, elapsed: Duration) {
    metrics::counter!(MICROSOFT_CALLS, "operation" => operation, "outcome" => outcome).increment(1);
    metrics::histogram!(MICROSOFT_SECONDS, "operation" => operation).record(elapsed.as_secs_f64());
}

/// One lookup in a Microsoft-side cache (`token`, `endpoints`, `users`).
pub fn cache_lookup(cache: &'static str, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!(CACHE_LOOKUPS, "cache" => cache, "result" => result).increment(1);
}

/// Read from the database at scrape time: the number of integrations in
/// each state, and the oldest last successful heartbeat of a set-up tenant
/// (the time its setup was done if it has had none yet). The latter is right
/// whichever process sends heartbeats (`serve`'s schedule or a `heartbeat`
/// timer) and survives restarts, so it is the one to alert on.
pub fn integrations(pending: u64, set_up: u64, oldest_heartbeat: Option<i64>) {
    metrics::gauge!(INTEGRATIONS, "state" => "pending").set(pending as f64);
    metrics::gauge!(INTEGRATIONS, "state" => "set_up").set(set_up as f64);
    if let Some(at) = oldest_heartbeat {
        metrics::gauge!(OLDEST_HEARTBEAT).set(at as f64);
    }
}

/// A heartbeat round ended; `all_ok` rounds move the last-success time.
pub fn heartbeat_round(succeeded: usize, failed: usize) {
    metrics::counter!(HEARTBEATS, "outcome" => "ok").increment(succeeded as u64);
    metrics::counter!(HEARTBEATS, "outcome" => "failed").increment(failed as u64);
    if failed == 0 {
        let now = chrono::Utc::now().timestamp() as f64;
        metrics::gauge!(LAST_HEARTBEAT_ROUND).set(now);
    }
}
