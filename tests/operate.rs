//! What operators rely on: graceful shutdown, online backups, metrics,
//! maintenance, and admin commands that never print a secret. These run the
//! built binary, as systemd and cron would.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use compliance_proxy::simulator::Fault;
use serde_json::{Value, json};

const DEVICE: &str = "/api/v1/microsoft-compliance-partner/device";

/// `serve` as a child process, with its log lines collected.
struct Served {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

/// Starts `serve` on a free port and waits for its "listening" log line.
fn serve(env: &TestEnv) -> Served {
    serve_with(env, &[])
}

fn serve_with(env: &TestEnv, extra: &[&str]) -> Served {
    let mut child = env
        .command(&["serve"])
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--api-key", API_KEY, "--heartbeat-schedule", "off"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");

    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve logs until listening").unwrap();
        let event: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if event["fields"]["message"] == "listening" {
            break event["fields"]["address"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
        }
    };

    // Keep draining stderr so the child never blocks on a full pipe.
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Served { child, addr, logs }
}

fn report(tenant: &str, secret: &str) -> String {
    json!({
        "entraTenantId": tenant, "fleetServerSecret": secret, "deviceId": new_tenant(),
        "userPrincipalName": "alex.doe@example.com", "deviceName": "Mac", "os": "macOS",
        "osVersion": "15.3.1", "compliant": true, "lastCheckInTime": 1_796_311_486,
    })
    .to_string()
}

#[test]
fn sigterm_lets_in_flight_requests_finish_and_exits_zero() {
    let mut env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    env.stop(); // the binary takes over the same database

    let mut served = serve(&env);
    let url = format!("http://{}{DEVICE}", served.addr);
    env.sim.add_fault(
        Fault::on("PUT", "/DataUploadMessages")
            .delay(Duration::from_millis(1500))
            .times(4),
    );

    let env = Arc::new(env);
    let pushes: Vec<_> = (0..4)
        .map(|_| {
            let (env, url, body) = (env.clone(), url.clone(), report(&tenant, &secret));
            std::thread::spawn(move || {
                let headers = [
                    ("MS-API-Key", API_KEY),
                    ("Content-Type", "application/json"),
                ];
                env.send("POST", &url, &headers, Some(&body)).status
            })
        })
        .collect();

    // Wait until all four uploads are held at the simulated Microsoft.
    wait_until("the uploads reach Microsoft", || {
        env.sim.arrivals() as usize - env.sim.requests().len() >= 4
    });
    let pid = served.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    let statuses: Vec<u16> = pushes.into_iter().map(|p| p.join().unwrap()).collect();
    assert_eq!(statuses, [200; 4]);
    let exit = served.child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{:#?}", served.logs.lock().unwrap());
    let logs = served.logs.lock().unwrap().join("\n");
    assert!(logs.contains("shutdown requested"), "{logs}");
    assert!(logs.contains("all connections closed"), "{logs}");
    assert_eq!(env.db_count("SELECT COUNT(*) FROM messages"), 4);
}

#[test]
fn sigterm_waits_for_work_that_outlived_its_request() {
    let mut env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    env.stop();

    let mut served = serve_with(&env, &["--request-timeout", "1s"]);
    // The upload fails, slowly, twice: the report's clean-up then removes its
    // message, but only if the process is still running by then.
    env.sim.add_fault(
        Fault::on("PUT", "/DataUploadMessages")
            .status(500)
            .delay(Duration::from_millis(1500))
            .times(2),
    );
    let url = format!("http://{}{DEVICE}", served.addr);
    let headers = [
        ("MS-API-Key", API_KEY),
        ("Content-Type", "application/json"),
    ];
    let reply = env.send("POST", &url, &headers, Some(&report(&tenant, &secret)));
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(env.db_count("SELECT COUNT(*) FROM messages"), 1);

    let pid = served.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = served.child.wait().unwrap();

    let logs = served.logs.lock().unwrap().join("\n");
    assert_eq!(exit.code(), Some(0), "{logs}");
    let closed = logs
        .find("all connections closed")
        .expect("connections closed");
    let failed = logs
        .find("uploading the device record failed")
        .expect("upload failed");
    assert!(
        closed < failed,
        "the upload ended after the connections: {logs}"
    );
    assert_eq!(env.sim.count("PUT", "/DataUploadMessages"), 2);
    assert_eq!(
        env.db_count("SELECT COUNT(*) FROM messages"),
        0,
        "the failed upload's message was removed before exit"
    );
}

#[test]
fn backup_taken_while_writing_holds_every_committed_row() {
    let env = Arc::new(TestEnv::start());
    let committed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tenants = Arc::new(Mutex::new(Vec::new()));

    let writer = {
        let (env, committed, stop, tenants) = (
            env.clone(),
            committed.clone(),
            stop.clone(),
            tenants.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let tenant = new_tenant();
                env.create(&tenant);
                tenants.lock().unwrap().push(tenant);
                committed.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while committed.load(Ordering::SeqCst) < 20 {
        std::thread::yield_now();
    }

    let acknowledged: Vec<String> = tenants.lock().unwrap().clone();
    let target = env.db_path.with_file_name("backup.db");
    let output = env
        .command(&["backup", target.to_str().unwrap()])
        .output()
        .unwrap();
    let after = committed.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        after > acknowledged.len(),
        "writes went on during the backup"
    );

    let copy = rusqlite::Connection::open(&target).unwrap();
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let version: u32 = copy
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, compliance_proxy::store::LATEST_VERSION);
    for tenant in &acknowledged {
        let found: i64 = copy
            .query_row(
                "SELECT COUNT(*) FROM integrations WHERE tenant_id = ?1",
                [tenant],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(found, 1, "{tenant} was committed before the backup began");
    }
}

/// The value of one sample in a Prometheus scrape, 0 when absent.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

fn scrape(env: &TestEnv) -> prometheus_parse::Scrape {
    let reply = env.send("GET", &env.url("/metrics"), &[], None);
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    for line in reply
        .body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "not a sample line: {line}");
    }
    // Every metric is described once: a HELP line for each TYPE line.
    let named = |prefix: &str| -> Vec<String> {
        let lines = reply.body.lines().filter_map(|l| l.strip_prefix(prefix));
        lines
            .map(|rest| rest.split(' ').next().unwrap().to_string())
            .collect()
    };
    let (typed, helped) = (named("# TYPE "), named("# HELP "));
    assert!(!typed.is_empty(), "{}", reply.body);
    assert_eq!(typed, helped, "{}", reply.body);
    prometheus_parse::Scrape::parse(reply.body.lines().map(|l| Ok(l.to_string()))).unwrap()
}

#[test]
fn metrics_parse_and_move_with_traffic() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    let settings = [
        ("route", "/api/v1/microsoft-compliance-partner/settings"),
        ("status", "200"),
    ];
    let upload = [("operation", "upload"), ("outcome", "ok")];
    let before = scrape(&env);

    for _ in 0..3 {
        assert_eq!(env.settings(&tenant, &secret).status, 200);
    }
    let reply = env.post(
        DEVICE,
        &serde_json::from_str(&report(&tenant, &secret)).unwrap(),
    );
    assert_eq!(reply.status, 200);
    let after = scrape(&env);

    let requests = "compliance_proxy_http_requests_total";
    assert!(sample(&after, requests, &settings) >= sample(&before, requests, &settings) + 3.0);
    let calls = "compliance_proxy_microsoft_calls_total";
    assert!(sample(&after, calls, &upload) >= sample(&before, calls, &upload) + 1.0);
    let lookups = "compliance_proxy_cache_lookups_total";
    assert!(sample(&after, lookups, &[("cache", "token"), ("result", "hit")]) >= 1.0);
    assert!(
        sample(
            &after,
            "compliance_proxy_integrations",
            &[("state", "set_up")]
        ) >= 1.0
    );
    let latency = "compliance_proxy_http_request_duration_seconds_count";
    assert!(
        after.samples.iter().any(|s| s
            .metric
            .starts_with("compliance_proxy_http_request_duration")),
        "{latency}"
    );
}

/// A tenant set up moments ago has had no heartbeat yet; the gauge the
/// staleness alert watches must date it from its setup, not from 1970.
#[test]
fn oldest_heartbeat_gauge_counts_a_new_tenant_from_its_setup() {
    let mut env = TestEnv::start();
    let started = chrono::Utc::now().timestamp();
    env.set_up(&new_tenant());
    let finished = chrono::Utc::now().timestamp();
    // A process of its own, so no other test's scrape sets the gauge.
    env.stop();
    let mut served = serve(&env);

    let reply = env.send("GET", &format!("http://{}/metrics", served.addr), &[], None);
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    assert_eq!(reply.status, 200);
    let scrape =
        prometheus_parse::Scrape::parse(reply.body.lines().map(|l| Ok(l.to_string()))).unwrap();
    let oldest = sample(
        &scrape,
        "compliance_proxy_oldest_tenant_heartbeat_timestamp_seconds",
        &[],
    ) as i64;
    assert!(
        (started..=finished).contains(&oldest),
        "{oldest} is not within setup ({started}..={finished})"
    );
}

#[test]
fn migrate_status_reports_the_latest_schema_version() {
    let env = TestEnv::start();
    // An answered request means the server has created the schema.
    env.create(&new_tenant());
    let output = env.command(&["migrate", "--status"]).output().unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("schema version 3, this binary's latest 3 (up to date)"),
        "{printed}"
    );
}

#[test]
fn maintenance_removes_exactly_what_is_past_its_age() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    for _ in 0..3 {
        let body = serde_json::from_str(&report(&tenant, &secret)).unwrap();
        assert_eq!(env.post(DEVICE, &body).status, 200);
    }
    let (stale, fresh) = (new_tenant(), new_tenant());
    env.create(&stale);
    env.create(&fresh);

    let day = 86_400;
    let db = rusqlite::Connection::open(&env.db_path).unwrap();
    let ids: Vec<String> = db
        .prepare("SELECT message_id FROM messages ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // Retention is 30 days: one message just past it, one just inside.
    let age = |id: &str, seconds: i64| {
        db.execute(
            "UPDATE messages SET created_at = created_at - ?1 WHERE message_id = ?2",
            rusqlite::params![seconds, id],
        )
        .unwrap();
    };
    age(&ids[0], 30 * day + 60);
    age(&ids[1], 30 * day - 60);
    // Pending integrations expire after 7 days.
    let age_pending = |tenant: &str, seconds: i64| {
        db.execute(
            "UPDATE integrations SET created_at = created_at - ?1 WHERE tenant_id = ?2",
            rusqlite::params![seconds, tenant],
        )
        .unwrap();
    };
    age_pending(&stale, 7 * day + 60);
    age_pending(&fresh, 7 * day - 60);
    age_pending(&tenant, 90 * day); // set-up integrations never expire

    let output = env.command(&["heartbeat"]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("maintenance finished messages_pruned=1 pending_expired=1 expired_kept=0"),
        "{log}"
    );

    let remaining: Vec<String> = db
        .prepare("SELECT message_id FROM messages ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(remaining, ids[1..]);
    let tenants: Vec<String> = db
        .prepare("SELECT tenant_id FROM integrations ORDER BY tenant_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut expected = vec![tenant.clone(), fresh.clone()];
    expected.sort();
    assert_eq!(tenants, expected);
}

#[test]
fn admin_commands_print_no_secret() {
    let env = TestEnv::start();
    let done = new_tenant();
    let done_secret = env.set_up(&done);
    let pending = new_tenant();
    let pending_secret = env.create(&pending);
    let link = env.consent_url(&pending, &pending_secret);
    let state = TestEnv::state_of(&link);

    let db = env.db();
    let mut stored: Vec<String> = db
        .prepare(
            "SELECT hex(secret_hash) FROM integrations UNION ALL \
             SELECT hex(consent_state_hash) FROM integrations \
             WHERE consent_state_hash IS NOT NULL UNION ALL \
             SELECT consent_nonce FROM integrations WHERE consent_nonce IS NOT NULL",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    stored.extend([done_secret, pending_secret, state, API_KEY.to_string()]);
    stored.push(env.config().microsoft.client_secret.expose().to_string());

    for args in [
        vec!["tenants", "list"],
        vec!["tenants", "list", "--json"],
        vec!["tenants", "show", &done],
        vec!["tenants", "show", &pending, "--json"],
        vec!["migrate", "--status"],
    ] {
        let output = env.command(&args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for secret in &stored {
            let lower = secret.to_lowercase();
            assert!(
                !printed.to_lowercase().contains(&lower),
                "{args:?} printed {secret}:\n{printed}"
            );
        }
        if args[0] == "tenants" && args[1] == "list" {
            assert!(
                printed.contains(&done) && printed.contains(&pending),
                "{printed}"
            );
        }
    }

    let shown = env
        .command(&["tenants", "show", &done, "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["state"], "set up");
    assert_eq!(shown["origin"], ORIGIN);
    let listed = env
        .command(&["tenants", "show", &new_tenant()])
        .output()
        .unwrap();
    assert_eq!(listed.status.code(), Some(1));
}

/// A malformed tenant id is a usage error (2), like any other bad argument;
/// a well-formed one the database does not hold is a failure (1), above.
#[test]
fn tenants_show_refuses_a_malformed_tenant_id_as_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_compliance-proxy"))
        .args(["tenants", "show", "nope", "--database", "/nonexistent/x.db"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{printed}");
    assert!(printed.contains("not a tenant id (a GUID)"), "{printed}");
}

/// A database that cannot be opened is reported once, with its path: the
/// error chain used to repeat SQLite's message (and the path) three times.
#[test]
fn unopenable_files_are_reported_once_with_their_path() {
    let env = TestEnv::start();
    // An answered request means the server has created the schema.
    env.create(&new_tenant());
    let missing = env.db_path.with_file_name("no-such-dir").join("x.db");
    let target = env.db_path.with_file_name("no-such-dir").join("b.db");
    let migrate = env
        .command(&["migrate"])
        .env("COMPLIANCE_PROXY_DATABASE", &missing)
        .output()
        .unwrap();
    let backup = env
        .command(&["backup", target.to_str().unwrap()])
        .output()
        .unwrap();

    for (output, path, expected) in [
        (
            migrate,
            missing.display().to_string(),
            format!(
                "could not open the database {}: unable to open database file",
                missing.display()
            ),
        ),
        (
            backup,
            target.with_extension("partial").display().to_string(),
            format!(
                "could not back up to {}: could not create {}: unable to open database file",
                target.display(),
                target.with_extension("partial").display()
            ),
        ),
    ] {
        let printed = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{printed}");
        assert_eq!(printed.trim_end(), format!("compliance-proxy: {expected}"));
        assert_eq!(printed.matches(&path).count(), 1, "{printed}");
        assert_eq!(printed.matches("unable to open").count(), 1, "{printed}");
    }
}
