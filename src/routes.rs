//! The route table, and what every request goes through around its handler.
//!
//! Routes (all JSON unless noted):
//!
//! - `POST   /api/v1/microsoft-compliance-partner` — register a tenant
//! - `DELETE /api/v1/microsoft-compliance-partner` — remove an integration
//! - `GET    /api/v1/microsoft-compliance-partner/settings` — status and consent link
//! - `GET    /api/v1/microsoft-compliance-partner/adminconsent` — Microsoft's
//!   redirect after admin consent (browser, HTML; no API key)
//! - `POST   /api/v1/microsoft-compliance-partner/device` — report a device
//! - `GET    /api/v1/microsoft-compliance-partner/device/message` — upload status
//! - `GET    /microsoft-compliance-partner/enroll` — end-user page (HTML)
//! - `GET    /microsoft-compliance-partner/remediate` — end-user page (HTML)
//! - `GET    /healthz`, `GET /readyz` — liveness and readiness
//! - `GET    /metrics` — Prometheus text
//!
//! Unknown paths get 404 and known paths with another method 405 with `Allow`.
//! Around each handler: the API-key check, the request timeout, a tracing span
//! with method, route, status and latency, the request metrics, and catching
//! a handler panic as a 500 instead of a dropped connection.

use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::Error;
use crate::handlers;
use crate::response::{self, Body};
use crate::secrets::ApiKeys;
use crate::service::Service;

pub const API: &str = "/api/v1/microsoft-compliance-partner";
pub const SETTINGS: &str = "/api/v1/microsoft-compliance-partner/settings";
pub const CONSENT: &str = "/api/v1/microsoft-compliance-partner/adminconsent";
pub const DEVICE: &str = "/api/v1/microsoft-compliance-partner/device";
pub const MESSAGE: &str = "/api/v1/microsoft-compliance-partner/device/message";
pub const ENROLL: &str = "/microsoft-compliance-partner/enroll";
pub const REMEDIATE: &str = "/microsoft-compliance-partner/remediate";
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";

/// One path and the methods it answers.
pub struct Route {
    pub path: &'static str,
    pub methods: &'static [Method],
    /// The methods as an `Allow` header value.
    allow: &'static str,
}

const fn route(path: &'static str, methods: &'static [Method], allow: &'static str) -> Route {
    Route {
        path,
        methods,
        allow,
    }
}

/// Every route and its methods; the OpenAPI document must list the same.
/// `HEAD` is answered wherever `GET` is, as a `GET` without its body, except
/// on the consent redirect (see [`Route::answers_head`]).
pub const ROUTES: &[Route] = &[
    route(API, &[Method::POST, Method::DELETE], "POST, DELETE"),
    route(SETTINGS, &[Method::GET], "GET, HEAD"),
    route(CONSENT, &[Method::GET], "GET"),
    route(DEVICE, &[Method::POST], "POST"),
    route(MESSAGE, &[Method::GET], "GET, HEAD"),
    route(ENROLL, &[Method::GET], "GET, HEAD"),
    route(REMEDIATE, &[Method::GET], "GET, HEAD"),
    route(HEALTHZ, &[Method::GET], "GET, HEAD"),
    route(READYZ, &[Method::GET], "GET, HEAD"),
    route(METRICS, &[Method::GET], "GET, HEAD"),
];

impl Route {
    /// Whether `HEAD` is served as a `GET` without its body. Not on the
    /// consent redirect: its `GET` uses up the link and runs the setup, which
    /// a `HEAD` (a link checker, a prefetch) must not do.
    fn answers_head(&self) -> bool {
        self.methods.contains(&Method::GET) && self.path != CONSENT
    }
}

fn find_route(path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.path == path)
}

/// What request handling needs; shared by every connection.
pub struct App {
    pub service: Service,
    pub api_keys: ApiKeys,
    /// Serve requests that present no API key.
    pub allow_anonymous: bool,
    pub body_limit: usize,
    /// Time a client has to send its whole body once its headers arrived.
    pub body_timeout: Duration,
    pub request_timeout: Duration,
    pub metrics: Option<PrometheusHandle>,
    /// Every handler's task, so that shutdown can wait for work whose client
    /// already has its answer (a timeout) or has hung up.
    pub work: TaskTracker,
}

/// How a route's errors are shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// Fleet servers: JSON, API key required.
    Fleet,
    /// Browsers: HTML, no API key.
    Browser,
    /// Probes and scrapers: JSON, no API key.
    Open,
}

/// Answers one request. Never fails: every error becomes a response.
pub async fn handle(app: std::sync::Arc<App>, mut req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = normalize(req.uri().path()).to_string();
    let (route, audience) = classify(&path);

    let span = tracing::debug_span!(
        "request",
        method = %method,
        route,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
        tenant = tracing::field::Empty,
    );

    // The handler runs as its own task, so that a panic costs one 500, and so
    // that work already sent to Microsoft (a setup, an upload) completes and
    // is recorded even when the client hangs up or the request timeout
    // answers first: cutting it off half-way would leave Microsoft and our
    // records apart. Every Microsoft and database call it makes is bounded.
    let timeout = app.request_timeout;
    let goes_on = outlives_timeout(&method, route);
    // Aborting the task does not stop a database write already handed to a
    // blocking thread; the write checks this token before it commits.
    let abandoned = CancellationToken::new();
    if !goes_on {
        req.extensions_mut().insert(abandoned.clone());
    }
    let tracker = app.work.clone();
    let mut work = tracker.spawn(
        async move { dispatch(&app, req, &method, &path, audience).await }.instrument(span.clone()),
    );
    let result = match tokio::time::timeout(timeout, &mut work).await {
        Ok(joined) => joined.unwrap_or_else(|e| Err(panicked(e))),
        Err(_) if !goes_on => {
            abandoned.cancel();
            work.abort();
            Err(Error::Unavailable {
                message: format!(
                    "the request did not finish within {} and was abandoned; retry it",
                    humantime::format_duration(timeout)
                ),
                retry_after: None,
            })
        }
        Err(_) => {
            tracker.spawn(finish_late(work).instrument(span.clone()));
            let within = humantime::format_duration(timeout);
            // The one browser route is the consent redirect, whose admin
            // cannot retry (the link is used up) but can look at Fleet.
            let message = match audience {
                Audience::Browser => format!(
                    "the request did not finish within {within}; the setup it started goes on, \
                     and the conditional access settings page in Fleet will show its outcome"
                ),
                Audience::Fleet | Audience::Open => format!(
                    "the request did not finish within {within}; what it started goes on, and \
                     a retry will see its outcome"
                ),
            };
            Err(Error::Unavailable {
                message,
                retry_after: None,
            })
        }
    };

    let response = match result {
        Ok(response) => response,
        Err(error) => {
            let _entered = span.enter();
            log_error(&error);
            match audience {
                Audience::Browser => response::error_html(&error),
                Audience::Fleet | Audience::Open => response::error_json(&error),
            }
        }
    };

    let status = response.status();
    let elapsed = started.elapsed();
    span.record("status", status.as_u16());
    span.record("latency_ms", elapsed.as_secs_f64() * 1000.0);
    crate::metrics::request(route, status.as_u16(), elapsed);
    span.in_scope(|| {
        if route == HEALTHZ || route == READYZ || route == METRICS {
            tracing::trace!("request finished");
        } else {
            tracing::debug!("request finished");
        }
    });
    response
}

/// Whether a request's work goes on once the request timeout has answered:
/// only work Microsoft may already be acting on (a setup, an upload, a
/// deprovisioning). The rest is abandoned, so that a create held up behind a
/// setup, say, does not replace the integration after its client was told it
/// failed.
fn outlives_timeout(method: &Method, route: &str) -> bool {
    matches!(
        (method, route),
        (&Method::GET, CONSENT) | (&Method::POST, DEVICE) | (&Method::DELETE, API)
    )
}

/// Waits for a handler the request timeout gave up on, and logs how it ended.
async fn finish_late(work: tokio::task::JoinHandle<Result<Response<Body>, Error>>) {
    match work.await {
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            tracing::info!(status, "request finished after its timeout was answered");
        }
        Ok(Err(error)) => log_error(&error),
        Err(e) => log_error(&panicked(e)),
    }
}

fn panicked(e: tokio::task::JoinError) -> Error {
    Error::Internal(format!("request handler panicked: {e}"))
}

/// The one `match` from method and path to handler.
async fn dispatch(
    app: &App,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
    audience: Audience,
) -> Result<Response<Body>, Error> {
    // The method is checked before the key: a wrong method is a 405 for
    // everyone, whatever their credentials.
    let Some(route) = find_route(path) else {
        let shown: String = path.chars().take(100).collect();
        return Err(Error::NotFound(format!("no route for {method} {shown}")));
    };
    // HEAD is a GET whose body hyper leaves out.
    let method = match method {
        &Method::HEAD if route.answers_head() => &Method::GET,
        other => other,
    };
    if !route.methods.contains(method) {
        return Err(Error::MethodNotAllowed { allow: route.allow });
    }
    if audience == Audience::Fleet {
        authorize(app, &req)?;
    }

    match (method, path) {
        (&Method::POST, API) => handlers::integrations::create(app, req).await,
        (&Method::DELETE, API) => handlers::integrations::delete(app, req).await,
        (&Method::GET, SETTINGS) => handlers::integrations::settings(app, req).await,
        (&Method::GET, CONSENT) => handlers::consent::callback(app, req).await,
        (&Method::POST, DEVICE) => handlers::devices::report(app, req).await,
        (&Method::GET, MESSAGE) => handlers::devices::message(app, req).await,
        (&Method::GET, ENROLL) => Ok(handlers::pages::enroll()),
        (&Method::GET, REMEDIATE) => Ok(handlers::pages::remediate()),
        (&Method::GET, HEALTHZ) => Ok(handlers::pages::healthz()),
        (&Method::GET, READYZ) => handlers::pages::readyz(app).await,
        (&Method::GET, METRICS) => handlers::pages::metrics(app).await,
        _ => unreachable!("every route and method pair above has an arm"),
    }
}

/// The route template (for logs and metrics) and audience of a path.
fn classify(path: &str) -> (&'static str, Audience) {
    let Some(route) = find_route(path) else {
        // Unknown paths are logged under one name so metrics stay bounded.
        return ("unknown", Audience::Open);
    };
    let audience = match route.path {
        CONSENT | ENROLL | REMEDIATE => Audience::Browser,
        HEALTHZ | READYZ | METRICS => Audience::Open,
        _ => Audience::Fleet,
    };
    (route.path, audience)
}

/// Fleet joins its configured proxy URL and our path without checking for a
/// trailing slash, so `//api/v1/…` means `/api/v1/…`.
fn normalize(path: &str) -> &str {
    if !path.starts_with('/') {
        return path;
    }
    let trimmed = path.trim_start_matches('/');
    &path[path.len() - trimmed.len() - 1..]
}

/// Checks the API key: `MS-API-Key: <key>` or `Authorization: Bearer <key>`.
///
/// Without configured keys an anonymous deployment ignores whatever key a
/// Fleet server sends (Fleet 4.89 sends one whenever the feature is on). With
/// keys configured, a presented key must be one of them, and a request with
/// no key at all passes only when anonymous requests are allowed too.
fn authorize(app: &App, req: &Request<Incoming>) -> Result<(), Error> {
    if app.api_keys.is_empty() && app.allow_anonymous {
        return Ok(());
    }

    let headers = req.headers();
    let named = headers.get_all("ms-api-key").iter().map(|v| v.as_bytes());
    let bearer = headers
        .get_all(hyper::header::AUTHORIZATION)
        .iter()
        .filter_map(|v| bearer_token(v.as_bytes()));
    let presented: Vec<&[u8]> = named
        .chain(bearer)
        .map(<[u8]>::trim_ascii)
        .filter(|k| !k.is_empty())
        .collect();

    let valid = |key: &&[u8]| std::str::from_utf8(key).is_ok_and(|k| app.api_keys.accepts(k));
    if presented.iter().any(valid) {
        return Ok(());
    }
    match (presented.is_empty(), app.allow_anonymous) {
        (false, _) => Err(Error::ApiKey("the API key is not valid".into())),
        (true, true) => Ok(()),
        (true, false) => Err(Error::ApiKey(
            "an API key is required (header MS-API-Key or Authorization: Bearer)".into(),
        )),
    }
}

/// The token of an `Authorization: Bearer <token>` value, any scheme case.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, token) = value.split_at(space);
    scheme.eq_ignore_ascii_case(b"bearer").then_some(token)
}

/// Logs an error once: server faults at `error`, upstream trouble at `warn`,
/// client mistakes at `debug`.
fn log_error(error: &Error) {
    let status = error.status();
    match error {
        Error::Internal(cause) => tracing::error!(error = %cause, "request failed"),
        // Graph may echo the user principal name in a user lookup's error, and
        // UPNs are logged at debug only.
        Error::Microsoft(e) if e.op == crate::microsoft::Op::LookUpUser => {
            tracing::warn!(
                operation = e.op.name(),
                outcome = e.kind.name(),
                "microsoft call failed"
            );
            tracing::debug!(error = %e, "microsoft call failed");
        }
        Error::Microsoft(e) => tracing::warn!(error = %e, "microsoft call failed"),
        _ if status.is_server_error() => tracing::warn!(error = %error, "request failed"),
        _ => tracing::debug!(error = %error, "request refused"),
    }
}

impl App {
    /// A 200 JSON response; a helper for handlers.
    pub fn ok<T: serde::Serialize>(value: &T) -> Response<Body> {
        response::json(StatusCode::OK, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_slashes_collapse() {
        assert_eq!(normalize("/healthz"), "/healthz");
        assert_eq!(normalize("//api/v1/x"), "/api/v1/x");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("///"), "/");
        assert_eq!(normalize("*"), "*");
    }

    #[test]
    fn allow_headers_list_each_routes_methods() {
        for route in ROUTES {
            let mut methods: Vec<&str> = route.methods.iter().map(Method::as_str).collect();
            if route.answers_head() {
                methods.push("HEAD");
            }
            assert_eq!(route.allow, methods.join(", "), "{}", route.path);
        }
    }

    #[test]
    fn every_route_is_classified_by_template() {
        assert_eq!(classify(API).0, API);
        assert!(classify(CONSENT).1 == Audience::Browser);
        assert!(classify(SETTINGS).1 == Audience::Fleet);
        assert!(classify(METRICS).1 == Audience::Open);
        assert_eq!(classify("/nope").0, "unknown");
    }
}
