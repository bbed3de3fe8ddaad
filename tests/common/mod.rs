//! The test environment: the real server on `127.0.0.1:0`, the simulated
//! Microsoft over real HTTP, and a SQLite file in a temporary directory.
//!
//! Each [`TestEnv`] owns a tokio runtime on which both servers run, so tests
//! themselves are plain synchronous functions that talk HTTP with a blocking
//! client. The server is started with `run::serve_on`, the same code `serve`
//! runs; nothing of ours is replaced. Dropping the environment shuts the
//! server down and surfaces any panic or error it ended with.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use compliance_proxy::config::{
    MicrosoftSettings, Secret, ServeConfig, ServerLimits, SetupSettings,
};
use compliance_proxy::secrets::ApiKeys;
use compliance_proxy::simulator::{SimConfig, Simulator};
use serde_json::Value;
use tokio::sync::oneshot;

/// The API key every test server accepts, besides the wire fixtures' one.
pub const API_KEY: &str = "test-api-key-5c1f0e9d";
/// The key in `../shared/fixtures/fleet-client-wire/`.
pub const FIXTURE_API_KEY: &str = "example-api-key";
pub const ORIGIN: &str = "https://fleet.example.com";
pub const API: &str = "/api/v1/microsoft-compliance-partner";
pub const GROUP: &str = "Fleet conditional access";

/// Polls `done` until it holds; fails the test with `what` after 20 s. For
/// outcomes of work that goes on in the background, never for readiness.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh random tenant id, so tests never share state by accident.
pub fn new_tenant() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The `error` text of a JSON error answer.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error text in {:?}", self.body))
            .to_string()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running proxy with its simulated Microsoft.
pub struct TestEnv {
    pub sim: Simulator,
    pub addr: SocketAddr,
    pub db_path: PathBuf,
    config: ServeConfig,
    runtime: tokio::runtime::Runtime,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    agent: ureq::Agent,
    _dir: tempfile::TempDir,
}

impl TestEnv {
    pub fn start() -> TestEnv {
        TestEnv::start_with(|_| {})
    }

    /// Starts with the test configuration, changed by `adjust` first.
    pub fn start_with(adjust: impl FnOnce(&mut ServeConfig)) -> TestEnv {
        TestEnv::start_full(SimConfig::default(), adjust)
    }

    /// Starts with a simulator configured by `sim_config`.
    pub fn start_full(sim_config: SimConfig, adjust: impl FnOnce(&mut ServeConfig)) -> TestEnv {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("proxy.db");

        let sim = runtime
            .block_on(Simulator::start(sim_config.clone()))
            .expect("simulator starts");
        let mut config = test_config(&sim, &sim_config, db_path.clone());
        adjust(&mut config);

        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut env = TestEnv {
            sim,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_path,
            config,
            runtime,
            stop: None,
            server: None,
            agent,
            _dir: dir,
        };
        env.launch();
        env
    }

    /// Binds a fresh port and starts the server on it. The listener is bound
    /// before this returns, so requests can be sent at once.
    fn launch(&mut self) {
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        self.addr = listener.local_addr().expect("bound address");

        let (stop, stopped) = oneshot::channel::<()>();
        let config = self.config.clone();
        let server = self.runtime.spawn(compliance_proxy::run::serve_on(
            listener,
            config,
            async move {
                let _ = stopped.await;
            },
        ));
        self.stop = Some(stop);
        self.server = Some(server);
    }

    /// Stops the server gracefully and checks it ended without error.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let ended = self.runtime.block_on(server);
            if !std::thread::panicking() {
                ended
                    .expect("server task panicked")
                    .expect("server ended with an error");
            }
        }
    }

    /// Stops the server and starts a new one on the same database file.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    pub fn config(&self) -> &ServeConfig {
        &self.config
    }

    /// Sends a request with the given headers (no API key unless given).
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(body.unwrap_or("").as_bytes().to_vec())
            .expect("valid test request");
        let mut response = self.agent.run(request).expect("request reaches the server");
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        Reply {
            status: response.status().as_u16(),
            headers,
            body: response.body_mut().read_to_string().expect("readable body"),
        }
    }

    /// `GET` on the proxy with the API key.
    pub fn get(&self, path_and_query: &str) -> Reply {
        self.send(
            "GET",
            &self.url(path_and_query),
            &[("MS-API-Key", API_KEY)],
            None,
        )
    }

    /// `DELETE` on the proxy with the API key.
    pub fn delete(&self, path_and_query: &str) -> Reply {
        self.send(
            "DELETE",
            &self.url(path_and_query),
            &[("MS-API-Key", API_KEY)],
            None,
        )
    }

    /// `POST` of a JSON body on the proxy with the API key and our Origin.
    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(
            "POST",
            &self.url(path),
            &[
                ("MS-API-Key", API_KEY),
                ("Origin", ORIGIN),
                ("Content-Type", "application/json"),
            ],
            Some(&body.to_string()),
        )
    }

    /// Registers a tenant and returns its secret.
    pub fn create(&self, tenant: &str) -> String {
        let reply = self.post(API, &serde_json::json!({ "entraTenantId": tenant }));
        assert_eq!(reply.status, 200, "create: {}", reply.body);
        reply.json()["fleet_server_secret"]
            .as_str()
            .expect("a secret")
            .to_string()
    }

    pub fn settings(&self, tenant: &str, secret: &str) -> Reply {
        self.get(&format!(
            "{API}/settings?entraTenantId={tenant}&fleetServerSecret={secret}"
        ))
    }

    /// The admin-consent link settings hands out.
    pub fn consent_url(&self, tenant: &str, secret: &str) -> String {
        let reply = self.settings(tenant, secret);
        assert_eq!(reply.status, 200, "settings: {}", reply.body);
        reply.json()["admin_consent_url"]
            .as_str()
            .expect("a consent link while setup is not done")
            .to_string()
    }

    /// The `state` parameter of a consent link.
    pub fn state_of(consent_url: &str) -> String {
        consent_url
            .split("state=")
            .nth(1)
            .and_then(|rest| rest.split('&').next())
            .expect("a state in the consent link")
            .to_string()
    }

    /// Follows a consent link like a browser: Microsoft's consent page, then
    /// its redirect back to the proxy. Returns the proxy's answer.
    pub fn follow_consent(&self, consent_url: &str) -> Reply {
        let microsoft = self.send("GET", consent_url, &[], None);
        assert_eq!(microsoft.status, 302, "consent page: {}", microsoft.body);
        let back = microsoft
            .header("location")
            .expect("a redirect back")
            .to_string();
        assert!(back.starts_with(&self.url("")), "redirected to {back}");
        self.send("GET", &back, &[], None)
    }

    /// Registers a tenant and completes setup; returns the secret.
    pub fn set_up(&self, tenant: &str) -> String {
        let secret = self.create(tenant);
        let reply = self.follow_consent(&self.consent_url(tenant, &secret));
        assert_eq!(reply.status, 302, "consent callback: {}", reply.body);
        let settings = self.settings(tenant, &secret).json();
        assert_eq!(settings["setup_done"], true, "{settings}");
        secret
    }

    /// Sends raw bytes on a new connection and reads one HTTP/1.1 response;
    /// returns its status and body. For requests a client library refuses to
    /// build (header injection, broken framing).
    pub fn raw(&self, request: &[u8]) -> (u16, String) {
        use std::io::{BufRead, BufReader, Read, Write};

        let mut stream = std::net::TcpStream::connect(self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        stream.write_all(request).expect("send");
        let mut reader = BufReader::new(stream);

        let mut status_line = String::new();
        reader.read_line(&mut status_line).expect("status line");
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));

        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header line");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("a header");
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().expect("numeric length");
            }
            assert!(
                !name.eq_ignore_ascii_case("transfer-encoding"),
                "responses have a length"
            );
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        (status, String::from_utf8(body).expect("UTF-8 body"))
    }

    /// A read-only connection to the proxy's database, for assertions.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            &self.db_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("database opens")
    }

    /// Every stored row, as one comparable snapshot (secrets and states as
    /// their stored hashes, heartbeats and timestamps left out).
    pub fn db_snapshot(&self) -> Vec<String> {
        let db = self.db();
        let mut rows = Vec::new();
        for sql in [
            "SELECT tenant_id || origin || hex(secret_hash) || ifnull(hex(consent_state_hash), '') \
             || ifnull(consent_expires_at, '') || admin_consented || provisioned || setup_done \
             || ifnull(setup_error, '') || ifnull(policy_id, '') FROM integrations",
            "SELECT message_id || device_id || status || ifnull(detail, '') FROM messages",
        ] {
            let mut stmt = db.prepare(sql).expect("snapshot query");
            let found = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .expect("snapshot rows");
            rows.extend(found.map(|row| row.expect("snapshot row")));
        }
        rows.sort();
        rows
    }

    /// Makes a tenant's integration look created `days` days earlier, e.g.
    /// past the pending lifetime (7 days by default).
    pub fn age_integration(&self, tenant: &str, days: i64) {
        let changed = rusqlite::Connection::open(&self.db_path)
            .expect("database opens")
            .execute(
                "UPDATE integrations SET created_at = created_at - ?1 * 86400 \
                 WHERE tenant_id = ?2",
                rusqlite::params![days, tenant],
            )
            .expect("integration aged");
        assert_eq!(changed, 1, "no integration for {tenant}");
    }

    /// One integer from the database.
    pub fn db_count(&self, sql: &str) -> i64 {
        self.db()
            .query_row(sql, [], |row| row.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The built binary with a subcommand, set up for this environment's
    /// database and simulated Microsoft, as systemd or cron would run it.
    pub fn command(&self, subcommand: &[&str]) -> std::process::Command {
        let ms = &self.config.microsoft;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_compliance-proxy"));
        command
            .args(subcommand)
            .env("COMPLIANCE_PROXY_DATABASE", &self.db_path)
            .env("COMPLIANCE_PROXY_LOGIN_URL", &ms.login_url)
            .env("COMPLIANCE_PROXY_GRAPH_URL", &ms.graph_url)
            .env("COMPLIANCE_PROXY_CLIENT_ID", &ms.client_id)
            .env("COMPLIANCE_PROXY_CLIENT_SECRET", ms.client_secret.expose())
            .env("RUST_LOG", "info")
            .env_remove("CREDENTIALS_DIRECTORY");
        command
    }

    /// Runs a future on the environment's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.stop();
    }
}

fn test_config(sim: &Simulator, sim_config: &SimConfig, database: PathBuf) -> ServeConfig {
    ServeConfig {
        database,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        public_url: None,
        api_keys: ApiKeys::new([API_KEY, FIXTURE_API_KEY]),
        allow_anonymous: false,
        microsoft: MicrosoftSettings {
            login_url: sim.login_url(),
            graph_url: sim.graph_url(),
            client_id: sim_config.client_id.clone(),
            client_secret: Secret::new(sim_config.client_secret.clone()),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            retry_after_cap: Duration::from_secs(3),
            max_calls: 64,
        },
        simulate_microsoft: false,
        setup: SetupSettings {
            group_name: sim_config.group_name.clone(),
            policy_name: "Fleet compliance policy".into(),
            policy_description: "Device compliance reported by Fleet".into(),
            consent_ttl: Duration::from_secs(24 * 3600),
            pending_ttl: Duration::from_secs(7 * 24 * 3600),
            max_pending: 1000,
            message_retention: Duration::from_secs(30 * 24 * 3600),
            enroll_url: None,
            remediate_url: None,
        },
        limits: ServerLimits {
            header_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
            body_limit: 65536,
            max_connections: 256,
            shutdown_timeout: Duration::from_secs(10),
        },
        heartbeat_schedule: None,
        heartbeat_concurrency: 4,
    }
}
