//! The `/_sim/` control interface: the HTTP twin of the `Simulator`
//! inspection and control methods, for tests and tools outside the process
//! (for example against `serve --simulate-microsoft`).
//!
//! Only the main listener serves it, and its requests are neither recorded
//! nor subject to faults. Request bodies are JSON; the `GET` routes and
//! `move-endpoints` answer JSON, the others 204 with no body. Routes:
//! - `GET /_sim/requests`, `DELETE /_sim/requests`, `GET /_sim/stats`
//!   (`{"arrivals": …, "recorded": …}`)
//! - `POST /_sim/faults` (a rule, see `FaultSpec`), `DELETE /_sim/faults`
//! - `POST /_sim/reset`, `POST /_sim/expire-tokens`, `POST /_sim/move-endpoints`
//! - `GET /_sim/tenants/{id}`, `GET /_sim/tenants/{id}/devices/{device id}`
//! - `POST /_sim/tenants/{id}/revoke-consent`, `…/grant-consent`
//! - `POST /_sim/tenants/{id}/remove-group` `{"name":…}`,
//!   `…/remove-user` `{"upn":…}`

use std::sync::Arc;

use hyper::Method;
use serde_json::{Value, json};

use super::fault::FaultSpec;
use super::listener;
use super::odata::normalize_guid;
use super::reply::{Handled, Reply};
use super::request::Incoming;
use super::state::{Shared, State};

/// True for paths the control interface owns.
pub(crate) fn is_control(path: &str) -> bool {
    path == "/_sim" || path.starts_with("/_sim/")
}

/// Answers one control request.
pub(crate) async fn handle(shared: &Arc<Shared>, request: &Incoming) -> Reply {
    let segments = request.segments();
    let route = segments.get(1..).unwrap_or_default();
    let handled = match (&request.method, route) {
        (&Method::POST, ["move-endpoints"]) => move_endpoints(shared).await,
        (&Method::GET | &Method::POST, ["tenants", tenant, rest @ ..]) => {
            tenant_route(shared, request, tenant, rest)
        }
        _ => global_route(shared, request, route),
    };
    handled.unwrap_or_else(|reply| reply)
}

fn global_route(shared: &Shared, request: &Incoming, route: &[&str]) -> Handled {
    let mut state = shared.lock();
    match (&request.method, route) {
        (&Method::GET, ["requests"]) => Ok(Reply::json(200, &to_json(&state.requests)?)),
        (&Method::GET, ["stats"]) => Ok(Reply::json(
            200,
            &serde_json::json!({
                "arrivals": state.arrivals,
                "recorded": state.requests.len(),
            }),
        )),
        (&Method::DELETE, ["requests"]) => {
            state.requests.clear();
            Ok(Reply::no_content())
        }
        (&Method::POST, ["faults"]) => {
            let spec: FaultSpec = serde_json::from_slice(&request.body)
                .map_err(|err| error(400, &format!("invalid fault rule: {err}")))?;
            state
                .faults
                .push(spec.into_fault().map_err(|text| error(400, &text))?);
            Ok(Reply::no_content())
        }
        (&Method::DELETE, ["faults"]) => {
            state.faults.clear();
            Ok(Reply::no_content())
        }
        (&Method::POST, ["reset"]) => {
            state.reset();
            Ok(Reply::no_content())
        }
        (&Method::POST, ["expire-tokens"]) => {
            state.revoke_tokens(None);
            Ok(Reply::no_content())
        }
        _ => Err(error(404, "unknown control route")),
    }
}

fn tenant_route(shared: &Shared, request: &Incoming, tenant: &str, rest: &[&str]) -> Handled {
    let tenant = normalize_guid(tenant).ok_or_else(|| error(400, "the tenant id is not a GUID"))?;
    let mut state = shared.lock();
    match (&request.method, rest) {
        (&Method::GET, []) => match state.tenants.get(&tenant) {
            Some(record) => Ok(Reply::json(200, &to_json(&record.snapshot())?)),
            None => Err(error(404, "the simulator has not seen this tenant")),
        },
        (&Method::GET, ["devices", device]) => {
            let device = normalize_guid(device).unwrap_or_default();
            match state
                .tenants
                .get(&tenant)
                .and_then(|t| t.devices.get(&device))
            {
                Some(snapshot) => Ok(Reply::json(200, &to_json(snapshot)?)),
                None => Err(error(404, "the simulator has no such device")),
            }
        }
        (&Method::POST, [action]) => tenant_action(&mut state, request, &tenant, action),
        _ => Err(error(404, "unknown control route")),
    }
}

fn tenant_action(state: &mut State, request: &Incoming, tenant: &str, action: &str) -> Handled {
    match action {
        "revoke-consent" => state.set_consent(tenant, false),
        "grant-consent" => state.set_consent(tenant, true),
        "remove-group" => state.remove_group(tenant, &body_string(request, "name")?),
        "remove-user" => state.remove_user(tenant, &body_string(request, "upn")?),
        _ => return Err(error(404, "unknown control route")),
    }
    Ok(Reply::no_content())
}

/// Replaces the scale unit on the blocking pool: closing the old socket
/// waits for its accept thread, which must not hold up a runtime worker.
async fn move_endpoints(shared: &Arc<Shared>) -> Handled {
    let listeners = shared
        .listeners
        .get()
        .and_then(std::sync::Weak::upgrade)
        .ok_or_else(|| error(503, "the simulator is shutting down"))?;
    let moved = tokio::task::spawn_blocking(move || listener::lock(&listeners).move_scale_unit())
        .await
        .map_err(|err| error(500, &format!("moving the endpoints failed: {err}")))?
        .map_err(|err| error(500, &format!("moving the endpoints failed: {err}")))?;
    Ok(Reply::json(200, &json!({ "scale_unit_url": moved })))
}

/// A string field of the JSON body.
fn body_string(request: &Incoming, name: &str) -> Result<String, Reply> {
    let body: Value = serde_json::from_slice(&request.body)
        .map_err(|err| error(400, &format!("invalid JSON body: {err}")))?;
    match body.get(name) {
        Some(Value::String(text)) => Ok(text.clone()),
        _ => Err(error(400, &format!("the body needs a string '{name}'"))),
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<Value, Reply> {
    serde_json::to_value(value).map_err(|err| error(500, &format!("cannot serialize: {err}")))
}

fn error(status: u16, text: &str) -> Reply {
    Reply::json(status, &json!({ "error": text }))
}
