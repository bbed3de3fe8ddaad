//! What happens to every request: read the body, divert control requests,
//! apply a matching fault, route, record.
//!
//! Faults are looked up before normal handling, against the request's
//! method, path and tenant. A delay is waited out first; a dropped
//! connection makes the service fail, which hyper answers by closing the
//! connection without writing a response.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, body::Incoming as Body};

use super::auth::token_tenant;
use super::control;
use super::fault::{Fault, take_matching};
use super::listener::Side;
use super::odata::normalize_guid;
use super::reply::{Reply, graph_fault, oauth_fault};
use super::request::Incoming;
use super::routes;
use super::snapshot::RecordedRequest;
use super::state::{Shared, State};

/// Largest request body the simulator reads.
const MAX_BODY: usize = 1 << 20;

/// The service error that makes hyper drop a connection unanswered.
#[derive(Debug, thiserror::Error)]
#[error("a simulated fault dropped the connection")]
pub(crate) struct DroppedConnection;

/// Handles one request on `side`.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    side: Side,
    request: Request<Body>,
) -> Result<Response<Full<Bytes>>, DroppedConnection> {
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes());
    let request = Incoming::new(&parts, body.as_ref().cloned().unwrap_or_default());
    if side == Side::Main && control::is_control(&request.path) {
        return Ok(control::handle(&shared, &request).await.into_response());
    }
    if body.is_err() {
        let text = format!("The request body could not be read or exceeds {MAX_BODY} bytes.");
        let reply = Reply::graph_error(413, "RequestEntityTooLarge", &text);
        return Ok(finish(&shared, &request, None, reply));
    }

    let (tenant, fault) = {
        let mut state = shared.lock();
        state.arrivals += 1;
        let tenant = request_tenant(&state, side, &request);
        let fault = take_matching(
            &mut state.faults,
            request.method.as_str(),
            &request.path,
            tenant.as_deref(),
        );
        (tenant, fault)
    };
    let latency = shared.config.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let Some(fault) = fault else {
        let reply = routes::dispatch(&shared, side, &request, None);
        return Ok(finish(&shared, &request, tenant, reply));
    };

    if let Some(delay) = fault.delay {
        tokio::time::sleep(delay).await;
    }
    if fault.drop_connection {
        record(&shared, &request, tenant, 0);
        return Err(DroppedConnection);
    }
    let reply = match fault.status {
        Some(status) => fault_reply(&request, &fault, status),
        None => routes::dispatch(&shared, side, &request, fault.in_band.as_ref()),
    };
    Ok(finish(&shared, &request, tenant, reply))
}

/// The tenant a request is for: the path's on login endpoints, otherwise the
/// bearer token's.
fn request_tenant(state: &State, side: Side, request: &Incoming) -> Option<String> {
    if side == Side::Main {
        if let [tenant, "adminconsent"] | [tenant, "oauth2", ..] = request.segments().as_slice() {
            return normalize_guid(tenant);
        }
    }
    token_tenant(state, request)
}

/// The error a status fault answers, in the shape of the endpoint hit.
fn fault_reply(request: &Incoming, fault: &Fault, status: u16) -> Reply {
    let mut reply = match request.segments().as_slice() {
        [_, "oauth2", ..] => oauth_fault(status),
        [_, "adminconsent"] => {
            let text = format!("Simulated failure (HTTP {status}).");
            Reply::html(status, "Sign in to your account", &text)
        }
        _ => graph_fault(status),
    };
    if status == 401
        && !reply
            .headers
            .iter()
            .any(|(name, _)| *name == "www-authenticate")
    {
        reply = reply.with_header("www-authenticate", "Bearer".to_owned());
    }
    if let Some(seconds) = fault.retry_after {
        reply = reply.with_header("retry-after", seconds.to_string());
    }
    reply
}

/// Records the exchange and builds the response.
fn finish(
    shared: &Shared,
    request: &Incoming,
    tenant: Option<String>,
    reply: Reply,
) -> Response<Full<Bytes>> {
    tracing::debug!(
        method = %request.method,
        path = %request.path,
        status = reply.status,
        "simulated Microsoft answered"
    );
    record(shared, request, tenant, reply.status);
    reply.into_response()
}

fn record(shared: &Shared, request: &Incoming, tenant: Option<String>, status: u16) {
    if !shared.config.record_requests {
        return;
    }
    let headers = request
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let recorded = RecordedRequest {
        method: request.method.to_string(),
        path: request.path.clone(),
        query: request.query.clone(),
        tenant,
        headers,
        body: request.body_text(),
        status,
    };
    shared.lock().requests.push(recorded);
}
