//! The blocking HTTP core: one ureq agent, the token and URL caches, retries.
//!
//! Every Microsoft request goes through [`Client::execute`], which attaches a
//! cached token, resolves the base URL (discovering it if needed) and applies
//! the retry policy of SPEC §4.4:
//!
//! - one retry, after a short pause, for a broken connection or a
//!   500/502/503/504, and one with a fresh token for a 401, so that a call
//!   makes at most three attempts;
//! - a `Retry-After` on 429/503 is waited out while the total wait stays within
//!   the configured cap; beyond it the caller gets [`ErrorKind::Throttled`];
//! - a timeout is not retried: the limit is the operator's budget for the call.
//!
//! It returns the last reply whatever its status; the operation modules decide
//! what a status means for them.

use std::time::{Duration, Instant};

use ureq::http::{Method, Request};

use super::cache::{Cache, Lookup};
use super::error::{ErrorKind, MsError, Op, tidy};
use crate::config::MicrosoftSettings;
use crate::ids::Guid;

/// Pause before the single retry of a transient failure.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Most `Retry-After` waits within one call, whatever their length.
const MAX_THROTTLE_WAITS: u32 = 3;
/// What we tell Fleet to wait when Microsoft throttles without saying how long.
const DEFAULT_THROTTLE_HINT: Duration = Duration::from_secs(30);
/// Largest Microsoft answer we read; real ones are a few kilobytes.
const MAX_REPLY_BYTES: u64 = 4 * 1024 * 1024;

/// Which token a call needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Audience {
    Graph,
    Intune,
}

impl Audience {
    pub(crate) fn scope(self) -> &'static str {
        match self {
            Audience::Graph => "https://graph.microsoft.com/.default",
            // The resource id ends in '/', and `/.default` is appended to it.
            Audience::Intune => "https://api.manage.microsoft.com//.default",
        }
    }
}

/// Where a call's path is appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Base {
    Login,
    Graph,
    /// The tenant's discovered `PartnerTenantDataSyncService` URL.
    TenantSync,
    /// The tenant's discovered `PartnerDeviceDataSyncService` URL.
    DeviceSync,
}

impl Base {
    fn audience(self) -> Option<Audience> {
        match self {
            Base::Login => None,
            Base::Graph => Some(Audience::Graph),
            Base::TenantSync | Base::DeviceSync => Some(Audience::Intune),
        }
    }

    fn is_discovered(self) -> bool {
        matches!(self, Base::TenantSync | Base::DeviceSync)
    }
}

/// A request body and its content type.
pub(crate) enum Payload {
    None,
    Json(serde_json::Value),
    Form(String),
}

/// One Microsoft request, before base URL and token are known.
pub(crate) struct Call {
    pub op: Op,
    pub tenant: Guid,
    pub method: Method,
    pub base: Base,
    /// Path and query after the base, starting with `/`, already encoded.
    pub path: String,
    pub payload: Payload,
    /// Ask for the entity in the answer (`Prefer: return-content`).
    pub return_content: bool,
}

impl Call {
    pub(crate) fn new(op: Op, tenant: Guid, method: Method, base: Base, path: String) -> Call {
        Call {
            op,
            tenant,
            method,
            base,
            path,
            payload: Payload::None,
            return_content: false,
        }
    }

    pub(crate) fn json(mut self, body: serde_json::Value) -> Call {
        self.payload = Payload::Json(body);
        self
    }

    pub(crate) fn form(mut self, body: String) -> Call {
        self.payload = Payload::Form(body);
        self
    }

    pub(crate) fn return_content(mut self) -> Call {
        self.return_content = true;
        self
    }
}

/// Microsoft's answer to a call.
pub(crate) struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub retry_after: Option<Duration>,
    pub body: String,
    /// The URL the answer came from.
    pub url: String,
}

impl Reply {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as a JSON object; anything else is an unexpected answer.
    pub(crate) fn json(&self, op: Op) -> Result<serde_json::Value, MsError> {
        match serde_json::from_str::<serde_json::Value>(&self.body) {
            Ok(value) if value.is_object() => Ok(value),
            _ => Err(MsError::unexpected(
                op,
                format!("HTTP {} with a body that is not a JSON object", self.status),
            )),
        }
    }

    /// The error this reply stands for, with Microsoft's code and message
    /// pulled from whichever error shape the service uses.
    pub(crate) fn error(&self, op: Op) -> MsError {
        let (code, message) = error_fields(&self.body);
        MsError::new(
            op,
            ErrorKind::Status {
                status: self.status,
                code,
                message,
            },
        )
    }
}

/// Reads `code` and `message` from Graph (`error.code`/`error.message`),
/// OAuth (`error`/`error_description`) and OData v3 (`odata.error`) bodies.
pub(crate) fn error_fields(body: &str) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return (None, None);
    };
    let text = |v: &serde_json::Value| v.as_str().and_then(tidy);

    if let Some(error) = value.get("error").filter(|e| e.is_object()) {
        return (
            error.get("code").and_then(text),
            error.get("message").and_then(text),
        );
    }
    if let Some(code) = value.get("error").and_then(text) {
        return (Some(code), value.get("error_description").and_then(text));
    }
    if let Some(error) = value.get("odata.error") {
        let message = error
            .get("message")
            .and_then(|m| m.get("value").or(Some(m)));
        return (error.get("code").and_then(text), message.and_then(text));
    }
    (None, value.get("Message").and_then(text))
}

/// Discovered partner service URLs of one tenant.
#[derive(Clone, Debug)]
pub(crate) struct Endpoints {
    pub tenant_sync: String,
    pub device_sync: String,
}

/// Why one attempt did not produce a reply.
enum Failure {
    Timeout,
    Unreachable(String),
    /// Getting the token or the URLs failed; already a full error.
    Prerequisite(MsError),
}

/// The blocking Microsoft client. Shared by all worker threads.
pub struct Client {
    agent: ureq::Agent,
    pub(crate) settings: MicrosoftSettings,
    pub(crate) tokens: Cache<(Guid, Audience), String>,
    pub(crate) endpoints: Cache<Guid, Endpoints>,
    pub(crate) users: Cache<(Guid, String), Guid>,
}

impl Client {
    pub fn new(settings: MicrosoftSettings) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(settings.timeout))
            .timeout_connect(Some(settings.connect_timeout))
            .user_agent(concat!("compliance-proxy/", env!("CARGO_PKG_VERSION")))
            // Microsoft's answers are a few kilobytes; ureq's 128 KiB buffers
            // per connection would cost tens of megabytes at hundreds of
            // calls in flight.
            .max_response_header_size(8 * 1024)
            .input_buffer_size(8 * 1024)
            .output_buffer_size(8 * 1024)
            // Keep enough idle connections that a burst of calls to one
            // Microsoft host reuses them instead of opening new ones.
            .max_idle_connections(512)
            .max_idle_connections_per_host(256)
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::new(),
            super::resolve::CachingResolver::default(),
        );
        Client {
            agent,
            settings,
            tokens: Cache::new(),
            endpoints: Cache::new(),
            users: Cache::new(),
        }
    }

    /// Drops everything cached for a tenant.
    pub fn forget_tenant(&self, tenant: Guid) {
        self.tokens.forget(|(t, _)| *t == tenant);
        self.endpoints.forget(|t| *t == tenant);
        self.users.forget(|(t, _)| *t == tenant);
    }

    /// Sends `call` under the retry policy and returns the last reply.
    pub(crate) fn execute(&self, call: &Call) -> Result<Reply, MsError> {
        // One retry for a broken connection or a 5xx, and separately one with a
        // fresh token after a 401: after Intune moved, the retry against the
        // new URL can meet a token that expired meanwhile.
        let mut retried = false;
        let mut reauthenticated = false;
        let mut throttle_waits = 0;
        let mut waited = Duration::ZERO;

        loop {
            let reply = match self.attempt(call) {
                Ok(reply) => reply,
                Err(Failure::Prerequisite(e)) => return Err(e),
                Err(Failure::Timeout) => {
                    return Err(MsError::new(
                        call.op,
                        ErrorKind::Timeout(self.settings.timeout),
                    ));
                }
                Err(Failure::Unreachable(why)) => {
                    // The tenant may have moved to another scale unit.
                    if call.base.is_discovered() {
                        self.endpoints.forget(|t| *t == call.tenant);
                    }
                    if !retried {
                        retried = true;
                        std::thread::sleep(RETRY_PAUSE);
                        continue;
                    }
                    return Err(MsError::new(call.op, ErrorKind::Unreachable(why)));
                }
            };

            let throttled = matches!(reply.status, 429 | 503) && reply.retry_after.is_some();
            if throttled {
                let after = reply.retry_after.unwrap_or_default();
                if throttle_waits < MAX_THROTTLE_WAITS
                    && waited + after <= self.settings.retry_after_cap
                {
                    tracing::debug!(
                        op = call.op.name(),
                        wait_ms = after.as_millis() as u64,
                        "microsoft asked to retry later; waiting"
                    );
                    throttle_waits += 1;
                    waited += after;
                    std::thread::sleep(after);
                    continue;
                }
                return Err(MsError::new(call.op, ErrorKind::Throttled(after)));
            }

            if reply.status == 401
                && let Some(audience) = call.base.audience()
            {
                // Microsoft sometimes refuses a token it just issued; never
                // reuse one that was refused.
                self.tokens.forget(|key| *key == (call.tenant, audience));
                if !reauthenticated {
                    reauthenticated = true;
                    std::thread::sleep(RETRY_PAUSE);
                    continue;
                }
            }
            let transient = matches!(reply.status, 429 | 500 | 502 | 503 | 504);
            if transient && !retried {
                retried = true;
                std::thread::sleep(RETRY_PAUSE);
                continue;
            }
            if reply.status == 429 {
                return Err(MsError::new(
                    call.op,
                    ErrorKind::Throttled(DEFAULT_THROTTLE_HINT),
                ));
            }
            return Ok(reply);
        }
    }

    /// One try: token, base URL, request, answer.
    fn attempt(&self, call: &Call) -> Result<Reply, Failure> {
        let token = match call.base.audience() {
            Some(audience) => Some(
                self.token(call.tenant, audience)
                    .map_err(Failure::Prerequisite)?,
            ),
            None => None,
        };
        let url = format!(
            "{}{}",
            self.base_url(call).map_err(Failure::Prerequisite)?,
            call.path
        );

        let mut request = Request::builder()
            .method(call.method.clone())
            .uri(&url)
            .header("Accept", "application/json");
        if let Some(token) = &token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if call.return_content {
            request = request.header("Prefer", "return-content");
        }
        let body = match &call.payload {
            Payload::None => Vec::new(),
            Payload::Json(value) => {
                request = request.header("Content-Type", "application/json");
                serde_json::to_vec(value).expect("a JSON value always serializes")
            }
            Payload::Form(text) => {
                request = request.header("Content-Type", "application/x-www-form-urlencoded");
                text.clone().into_bytes()
            }
        };
        let request = request.body(body).map_err(|_| {
            Failure::Prerequisite(MsError::unexpected(call.op, "invalid request URL"))
        })?;

        let started = Instant::now();
        let result = self.agent.run(request);
        tracing::trace!(
            op = call.op.name(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "microsoft call"
        );
        let mut response = result.map_err(classify)?;

        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let location = header("location");
        let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v));
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_string()
            .map_err(classify)?;

        Ok(Reply {
            status,
            location,
            retry_after,
            body,
            url,
        })
    }

    fn base_url(&self, call: &Call) -> Result<String, MsError> {
        Ok(match call.base {
            Base::Login => self.settings.login_url.clone(),
            Base::Graph => self.settings.graph_url.clone(),
            Base::TenantSync => self.endpoints(call.tenant)?.tenant_sync,
            Base::DeviceSync => self.endpoints(call.tenant)?.device_sync,
        })
    }

    /// A valid token for the tenant and audience, from the cache when fresh.
    pub(crate) fn token(&self, tenant: Guid, audience: Audience) -> Result<String, MsError> {
        let (token, lookup) = self
            .tokens
            .get_or_fetch(&(tenant, audience), || self.fetch_token(tenant, audience))?;
        record_lookup("token", lookup);
        Ok(token)
    }
}

pub(crate) fn record_lookup(cache: &'static str, lookup: Lookup) {
    crate::metrics::cache_lookup(cache, lookup == Lookup::Hit);
}

/// Sorts a ureq failure into "took too long" and "could not talk". The text
/// never includes the URL, which may carry a user principal name.
fn classify(error: ureq::Error) -> Failure {
    use ureq::Timeout;
    match error {
        ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => {
            Failure::Unreachable("connection timed out".into())
        }
        ureq::Error::Timeout(_) => Failure::Timeout,
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => Failure::Timeout,
        ureq::Error::Io(e) => Failure::Unreachable(e.kind().to_string()),
        ureq::Error::HostNotFound => Failure::Unreachable("host not found".into()),
        ureq::Error::Tls(what) => Failure::Unreachable(format!("TLS: {what}")),
        ureq::Error::Protocol(_) => Failure::Unreachable("malformed HTTP answer".into()),
        ureq::Error::BodyExceedsLimit(_) => Failure::Unreachable("answer too large".into()),
        _ => Failure::Unreachable("connection failed".into()),
    }
}

/// `Retry-After` is either delay seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let parsed = parse_retry_after(&soon).unwrap();
        assert!(parsed > Duration::from_secs(80) && parsed <= Duration::from_secs(90));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn error_fields_reads_each_microsoft_shape() {
        let graph = r#"{"error":{"code":"Request_ResourceNotFound","message":"Gone."}}"#;
        assert_eq!(
            error_fields(graph),
            (
                Some("Request_ResourceNotFound".into()),
                Some("Gone.".into())
            )
        );
        let oauth =
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Bad. Trace ID: x"}"#;
        assert_eq!(
            error_fields(oauth),
            (
                Some("invalid_client".into()),
                Some("AADSTS7000215: Bad.".into())
            )
        );
        let odata = r#"{"odata.error":{"code":"","message":{"lang":"en","value":"No."}}}"#;
        assert_eq!(error_fields(odata), (None, Some("No.".into())));
        assert_eq!(error_fields("<html>"), (None, None));
    }
}
