//! Bringing a fresh proxy and simulator to the state the load needs, over
//! their HTTP APIs only, and building the request shapes of every operation.
//!
//! The proxy gets one set-up tenant (created, consent link followed), one
//! macOS device pushed (a message that stays pending, since the simulator is
//! started with a huge `--pending-polls`) and one Windows device pushed (a
//! message stored `Completed` at once). For the baseline, the same tenant's
//! tokens and device-sync URL are fetched from the simulator directly, and
//! one upload is sent there to be polled.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use crate::procs::{CLIENT_ID, CLIENT_SECRET};
use crate::wrk::Shape;

const API: &str = "/api/v1/microsoft-compliance-partner";
const ORIGIN: &str = "https://fleet.example.com";
const UPN: &str = "alex.doe@example.com";
const INTUNE_APP_ID: &str = "0000000a-0000-0000-c000-000000000000";
const INTUNE_SCOPE: &str = "https://api.manage.microsoft.com//.default";
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// An operation of the table, sent to the proxy or to the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Settings,
    Push,
    PendingPoll,
    TerminalPoll,
}

impl Op {
    pub const ALL: [Op; 5] = [
        Op::Create,
        Op::Settings,
        Op::Push,
        Op::PendingPoll,
        Op::TerminalPoll,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Settings => "settings",
            Op::Push => "device push",
            Op::PendingPoll => "pending status poll",
            Op::TerminalPoll => "terminal status poll",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Settings => "settings",
            Op::Push => "push",
            Op::PendingPoll => "pending-poll",
            Op::TerminalPoll => "terminal-poll",
        }
    }

    /// The direct request this operation is compared with.
    pub fn baseline(self) -> Baseline {
        match self {
            Op::Create | Op::Settings => Baseline::Healthz,
            Op::Push => Baseline::Upload,
            Op::PendingPoll | Op::TerminalPoll => Baseline::Status,
        }
    }
}

/// What an operation's proxy figures are compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// The proxy's own `GET /healthz`: the HTTP floor, for operations that
    /// make no Microsoft call.
    Healthz,
    /// The simulator's `PUT …/DataUploadMessages(guid'…')?api-version=1.2`.
    Upload,
    /// The simulator's `GET …/DataUploadMessages(guid'…')?api-version=1.2`.
    Status,
}

impl Baseline {
    pub const ALL: [Baseline; 3] = [Baseline::Healthz, Baseline::Upload, Baseline::Status];

    pub fn name(self) -> &'static str {
        match self {
            Baseline::Healthz => "proxy GET /healthz (HTTP floor)",
            Baseline::Upload => "sim PUT DataUploadMessages",
            Baseline::Status => "sim GET DataUploadMessages",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Baseline::Healthz => "base-healthz",
            Baseline::Upload => "base-upload",
            Baseline::Status => "base-status",
        }
    }
}

/// Everything the request shapes need.
pub struct Seeded {
    proxy: String,
    tenant: String,
    secret: String,
    pending_message: String,
    terminal_message: String,
    device_sync: String,
    intune_token: String,
    user_id: String,
    base_message: String,
}

/// A small blocking HTTP client that never follows redirects.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Status, `Location` and body of one exchange.
struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {}", self.body))
    }
}

fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> anyhow::Result<Answer> {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body.unwrap_or_default().as_bytes().to_vec())?;
    let mut response = agent
        .run(request)
        .with_context(|| format!("{method} {url}"))?;
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(Answer {
        status: response.status().as_u16(),
        location,
        body: response.body_mut().read_to_string()?,
    })
}

/// A JSON answer with status 200, or an error naming `what`.
fn ok_json(answer: &Answer, what: &str) -> anyhow::Result<Value> {
    ensure!(
        answer.status == 200,
        "{what}: HTTP {}: {}",
        answer.status,
        answer.body
    );
    answer.json()
}

/// A macOS (or, with `os = "windows"`, Windows) device report.
pub fn report(tenant: &str, secret: &str, device: &str, os: &str) -> Value {
    json!({
        "entraTenantId": tenant,
        "fleetServerSecret": secret,
        "deviceId": device,
        "userPrincipalName": UPN,
        "deviceManagementState": true,
        "deviceName": "Bench MacBook Pro",
        "os": os,
        "osVersion": "15.3.1",
        "compliant": true,
        "lastCheckInTime": 1_796_311_486,
    })
}

/// Registers and sets up a tenant on the proxy; returns its secret.
pub fn set_up_tenant(agent: &ureq::Agent, proxy: &str, tenant: &str) -> anyhow::Result<String> {
    let json_headers = [("Content-Type", "application/json"), ("Origin", ORIGIN)];
    let body = json!({ "entraTenantId": tenant }).to_string();
    let created = send(
        agent,
        "POST",
        &format!("{proxy}{API}"),
        &json_headers,
        Some(&body),
    )?;
    let secret = ok_json(&created, "create")?["fleet_server_secret"]
        .as_str()
        .context("no secret")?
        .to_owned();

    let settings_url =
        format!("{proxy}{API}/settings?entraTenantId={tenant}&fleetServerSecret={secret}");
    let settings = ok_json(&send(agent, "GET", &settings_url, &[], None)?, "settings")?;
    let consent = settings["admin_consent_url"]
        .as_str()
        .context("no consent link")?;
    let microsoft = send(agent, "GET", consent, &[], None)?;
    ensure!(
        microsoft.status == 302,
        "consent page: HTTP {}",
        microsoft.status
    );
    let back = microsoft.location.context("no redirect back")?;
    let callback = send(agent, "GET", &back, &[], None)?;
    ensure!(
        callback.status == 302,
        "consent callback: HTTP {}: {}",
        callback.status,
        callback.body
    );

    let settings = ok_json(&send(agent, "GET", &settings_url, &[], None)?, "settings")?;
    ensure!(settings["setup_done"] == true, "setup not done: {settings}");
    Ok(secret)
}

/// Pushes a device through the proxy; returns the message id.
fn push(agent: &ureq::Agent, proxy: &str, body: &Value) -> anyhow::Result<String> {
    let headers = [("Content-Type", "application/json")];
    let url = format!("{proxy}{API}/device");
    let answer = send(agent, "POST", &url, &headers, Some(&body.to_string()))?;
    Ok(ok_json(&answer, "device push")?["message_id"]
        .as_str()
        .context("no message id")?
        .to_owned())
}

/// Polls a message through the proxy; returns its status.
fn poll(
    agent: &ureq::Agent,
    proxy: &str,
    tenant: &str,
    secret: &str,
    message: &str,
) -> anyhow::Result<String> {
    let url = format!(
        "{proxy}{API}/device/message?entraTenantId={tenant}&fleetServerSecret={secret}\
         &messageId={message}"
    );
    let answer = send(agent, "GET", &url, &[], None)?;
    Ok(ok_json(&answer, "status poll")?["status"]
        .as_str()
        .context("no status")?
        .to_owned())
}

/// A client-credentials token for the tenant, straight from the simulator.
pub fn token(agent: &ureq::Agent, sim: &str, tenant: &str, scope: &str) -> anyhow::Result<String> {
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", CLIENT_ID)
        .append_pair("client_secret", CLIENT_SECRET)
        .append_pair("grant_type", "client_credentials")
        .append_pair("scope", scope)
        .finish();
    let url = format!("{sim}/{tenant}/oauth2/v2.0/token");
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let answer = send(agent, "POST", &url, &headers, Some(&form))?;
    Ok(ok_json(&answer, "token")?["access_token"]
        .as_str()
        .context("no access_token")?
        .to_owned())
}

/// The tenant's `PartnerDeviceDataSyncService` URL, by Graph discovery.
fn device_sync_url(agent: &ureq::Agent, sim: &str, graph_token: &str) -> anyhow::Result<String> {
    let bearer = format!("Bearer {graph_token}");
    let headers = [("Authorization", bearer.as_str())];
    let filter: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("$filter", &format!("appId eq '{INTUNE_APP_ID}'"))
        .finish();
    let url = format!("{sim}/v1.0/servicePrincipals?{filter}");
    let principals = ok_json(
        &send(agent, "GET", &url, &headers, None)?,
        "servicePrincipals",
    )?;
    let sp = principals["value"][0]["id"]
        .as_str()
        .context("no Intune service principal")?;
    let url = format!("{sim}/v1.0/servicePrincipals/{sp}/endpoints");
    let endpoints = ok_json(&send(agent, "GET", &url, &headers, None)?, "endpoints")?;
    endpoints["value"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["providerName"] == "PartnerDeviceDataSyncService")
        .and_then(|e| e["uri"].as_str())
        .map(str::to_owned)
        .context("no PartnerDeviceDataSyncService endpoint")
}

/// The user's object id, by Graph lookup.
fn user_id(agent: &ureq::Agent, sim: &str, graph_token: &str) -> anyhow::Result<String> {
    let bearer = format!("Bearer {graph_token}");
    let url = format!("{sim}/v1.0/users('{}')", UPN.replace('@', "%40"));
    let user = ok_json(
        &send(agent, "GET", &url, &[("Authorization", &bearer)], None)?,
        "user",
    )?;
    Ok(user["id"].as_str().context("no user id")?.to_owned())
}

/// The body the proxy PUTs for a macOS device (see `src/microsoft/device.rs`).
fn upload_body(tenant: &str, device: &str, user: &str) -> String {
    let now = "2026-01-15T10:00:00.000Z";
    let records = json!([
        {
            "EntityType": 1,
            "TenantId": tenant,
            "DeviceId": device,
            "DeviceName": "Bench MacBook Pro",
            "UserId": user,
            "DeviceManagementState": "managed",
            "LastCheckInTime": "2026-01-15T09:58:06.000Z",
            "LastUpdateTime": now,
            "Os": "macOS",
            "OsVersion": "15.3.1",
            "EasIds": [],
            "State": 0,
        },
        {
            "EntityType": 4,
            "TenantId": tenant,
            "DeviceId": device,
            "UserId": user,
            "LastUpdateTime": now,
            "complianceStatus": "compliant",
        },
    ]);
    json!({ "TenantId": tenant, "UploadTime": now, "Content": records.to_string() }).to_string()
}

/// Sets up the proxy side and the baseline side; checks both answer as the
/// table assumes.
pub fn seed(proxy: &str, sim: &str) -> anyhow::Result<Seeded> {
    let agent = agent();
    let tenant = uuid::Uuid::new_v4().to_string();
    let secret = set_up_tenant(&agent, proxy, &tenant)?;

    let mac = uuid::Uuid::new_v4().to_string();
    let pending_message = push(&agent, proxy, &report(&tenant, &secret, &mac, "macOS"))?;
    let windows = uuid::Uuid::new_v4().to_string();
    let terminal_message = push(
        &agent,
        proxy,
        &report(&tenant, &secret, &windows, "windows"),
    )?;
    let pending = poll(&agent, proxy, &tenant, &secret, &pending_message)?;
    ensure!(
        pending != "Completed" && pending != "Failed",
        "macOS message is {pending}"
    );
    let done = poll(&agent, proxy, &tenant, &secret, &terminal_message)?;
    ensure!(done == "Completed", "Windows message is {done}");

    let graph_token = token(&agent, sim, &tenant, GRAPH_SCOPE)?;
    let intune_token = token(&agent, sim, &tenant, INTUNE_SCOPE)?;
    let device_sync = device_sync_url(&agent, sim, &graph_token)?;
    let user_id = user_id(&agent, sim, &graph_token)?;
    let seeded = Seeded {
        proxy: proxy.to_owned(),
        tenant,
        secret,
        pending_message,
        terminal_message,
        device_sync,
        intune_token,
        user_id,
        base_message: uuid::Uuid::new_v4().to_string(),
    };

    // The baseline's pending message, and a check that its shapes work.
    let put = seeded.baseline_shape(Baseline::Upload);
    let put_url = put.url.replace("@GUID@", &seeded.base_message);
    let body = put
        .body
        .clone()
        .unwrap_or_default()
        .replace("@GUID@", &seeded.base_message);
    let headers: Vec<(&str, &str)> = put.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let answer = send(&agent, "PUT", &put_url, &headers, Some(&body))?;
    let accepted = ok_json(&answer, "baseline upload")?;
    if accepted["ErrorCode"] != "202" {
        bail!("the simulator did not accept the baseline upload: {accepted}");
    }
    let get = seeded.baseline_shape(Baseline::Status);
    let answer = send(&agent, "GET", &get.url, &headers, None)?;
    let status = ok_json(&answer, "baseline status")?;
    ensure!(
        status["Status"] == "NotStarted",
        "baseline message: {status}"
    );
    Ok(seeded)
}

impl Seeded {
    /// The request an operation sends to the proxy.
    pub fn proxy_shape(&self, op: Op) -> Shape {
        let (proxy, tenant, secret) = (&self.proxy, &self.tenant, &self.secret);
        let credentials = format!("entraTenantId={tenant}&fleetServerSecret={secret}");
        match op {
            // 512 tenant ids in turn: after the first round each create
            // replaces a pending integration, and the pending count stays
            // under the default --max-pending.
            Op::Create => Shape::get(format!("{proxy}{API}"))
                .header("Content-Type", "application/json")
                .header("Origin", ORIGIN)
                .body("POST", json!({ "entraTenantId": "@POOL@" }).to_string()),
            Op::Settings => Shape::get(format!("{proxy}{API}/settings?{credentials}")),
            Op::Push => Shape::get(format!("{proxy}{API}/device"))
                .header("Content-Type", "application/json")
                .body(
                    "POST",
                    report(tenant, secret, "@GUID@", "macOS").to_string(),
                ),
            Op::PendingPoll => Shape::get(format!(
                "{proxy}{API}/device/message?{credentials}&messageId={}",
                self.pending_message
            )),
            Op::TerminalPoll => Shape::get(format!(
                "{proxy}{API}/device/message?{credentials}&messageId={}",
                self.terminal_message
            )),
        }
    }

    /// The direct request a baseline sends.
    pub fn baseline_shape(&self, baseline: Baseline) -> Shape {
        let message = |id: &str| {
            format!(
                "{}/DataUploadMessages(guid'{id}')?api-version=1.2",
                self.device_sync
            )
        };
        let bearer = format!("Bearer {}", self.intune_token);
        match baseline {
            Baseline::Healthz => Shape::get(format!("{}/healthz", self.proxy)),
            // A fresh message id per request, as the proxy's pushes have.
            Baseline::Upload => Shape::get(message("@GUID@"))
                .header("Authorization", bearer)
                .header("Accept", "application/json")
                .header("Content-Type", "application/json")
                .body("PUT", upload_body(&self.tenant, "@GUID@", &self.user_id)),
            Baseline::Status => Shape::get(message(&self.base_message))
                .header("Authorization", bearer)
                .header("Accept", "application/json"),
        }
    }
}
