//! Tests of the simulator over real HTTP on loopback.
//!
//! The client here is written for the tests: one request per connection
//! (`Connection: close`), the whole answer read until the server closes.
//! Each test starts its own simulator on ephemeral ports; nothing sleeps to
//! wait for readiness because `Simulator::start` returns with both sockets
//! already listening.

mod control;
mod device_sync;
mod faults;
mod graph;
mod login;
mod tenant_sync;

use std::io;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{SimConfig, Simulator};

/// The tenant most tests use.
pub(super) const TENANT: &str = "6f1c2c5e-8d3b-4e9a-9a43-0c7f2d1b5e11";
/// Another tenant, for cross-tenant checks.
pub(super) const OTHER_TENANT: &str = "1b2c3d4e-0000-4000-8000-00000000beef";
pub(super) const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
pub(super) const INTUNE_SCOPE: &str = "https://api.manage.microsoft.com//.default";

/// One parsed HTTP answer.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: String,
}

impl Answer {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request to an absolute `http://` URL and reads the answer.
/// Fails when the connection is refused or closed without an answer.
pub(super) async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> io::Result<Answer> {
    let rest = url.strip_prefix("http://").expect("tests use http URLs");
    let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let target = if target.is_empty() { "/" } else { target };
    let mut stream = TcpStream::connect(authority).await?;
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> io::Result<Answer> {
    let text = String::from_utf8_lossy(raw);
    let incomplete = || io::Error::new(io::ErrorKind::UnexpectedEof, "no complete answer");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(incomplete)?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(incomplete)?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// `send` for tests that expect an answer.
pub(super) async fn call(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    send(method, url, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// A request with a bearer token and, when `body` is given, a JSON body.
pub(super) async fn authed(method: &str, url: &str, token: &str, body: Option<&Value>) -> Answer {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![
        ("Authorization", bearer.as_str()),
        ("Prefer", "return-content"),
    ];
    let text = body.map(Value::to_string).unwrap_or_default();
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    call(method, url, &headers, &text).await
}

pub(super) async fn start() -> Simulator {
    start_with(SimConfig::default()).await
}

pub(super) async fn start_with(config: SimConfig) -> Simulator {
    Simulator::start(config)
        .await
        .expect("the simulator starts")
}

/// Posts a client-credentials form for `tenant` with the default app.
pub(super) async fn request_token(sim: &Simulator, tenant: &str, scope: &str) -> Answer {
    let form = form(&[
        ("client_id", SimConfig::DEFAULT_CLIENT_ID),
        ("client_secret", SimConfig::DEFAULT_CLIENT_SECRET),
        ("grant_type", "client_credentials"),
        ("scope", scope),
    ]);
    post_form(sim, tenant, &form).await
}

pub(super) async fn post_form(sim: &Simulator, tenant: &str, form: &str) -> Answer {
    let url = format!("{}/{tenant}/oauth2/v2.0/token", sim.login_url());
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    call("POST", &url, &headers, form).await
}

pub(super) fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Consents for `tenant` and returns a token for `scope`.
pub(super) async fn token(sim: &Simulator, tenant: &str, scope: &str) -> String {
    sim.grant_consent(tenant);
    let answer = request_token(sim, tenant, scope).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["access_token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

pub(super) fn tenant_sync(sim: &Simulator) -> String {
    format!("{}/TenantDataSync", sim.scale_unit_url())
}

pub(super) fn device_sync(sim: &Simulator) -> String {
    format!("{}/DeviceDataSync", sim.scale_unit_url())
}

pub(super) fn partner_tenant_url(sim: &Simulator, tenant: &str) -> String {
    format!(
        "{}/PartnerTenants(guid'{tenant}')?api-version=1.6",
        tenant_sync(sim)
    )
}

/// PUTs `PartnerTenants` with `provisioned` and both URLs.
pub(super) async fn put_partner_tenant(sim: &Simulator, token: &str, provisioned: u8) -> Answer {
    let body = json!({
        "Provisioned": provisioned,
        "PartnerEnrollmentUrl": "https://proxy.example.com/microsoft-compliance-partner/enroll",
        "PartnerRemediationUrl": "https://proxy.example.com/microsoft-compliance-partner/remediate",
    });
    authed("PUT", &partner_tenant_url(sim, TENANT), token, Some(&body)).await
}

/// Consents, provisions `TENANT` and returns its Intune token.
pub(super) async fn provisioned(sim: &Simulator) -> String {
    let intune = token(sim, TENANT, INTUNE_SCOPE).await;
    assert_eq!(put_partner_tenant(sim, &intune, 1).await.status, 200);
    intune
}

/// The body of a policy create.
pub(super) fn policy_body(platform: &str) -> Value {
    json!({
        "DisplayName": "Fleet compliance policy",
        "Description": "Compliance policy managed by Fleet",
        "Platform": platform,
        "PartnerManagedCompliance": true,
    })
}
