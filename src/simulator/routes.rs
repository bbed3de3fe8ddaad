//! The simulator's route table: which handler answers which method and path
//! on which listener.
//!
//! Main listener (login.microsoftonline.com and graph.microsoft.com):
//! - `GET /{tenant}/adminconsent` — admin consent, redirects straight back
//! - `POST /{tenant}/oauth2/v2.0/token` — client-credentials tokens
//! - `GET /v1.0/servicePrincipals` — Intune service principal by `appId`
//! - `GET /v1.0/servicePrincipals/{id}/endpoints` (or `endPoints`) — discovery
//! - `GET /v1.0/groups` — groups by `displayName`
//! - `GET /v1.0/users('{upn}')` — user object id
//! - `PATCH /v1.0/devices(deviceId='{id}')` — Windows compliance
//!
//! Scale-unit listener (the Intune partner services):
//! - `PUT /TenantDataSync/PartnerTenants(guid'{tenant}')` — (de)provision
//! - `PUT /TenantDataSync/PartnerTenantHeartbeat(guid'{tenant}')` — heartbeat
//! - `GET|POST /TenantDataSync/PartnerCompliancePolicies` — list, create
//! - `POST /TenantDataSync/PartnerCompliancePolicies(guid'{id}')/Assign`
//! - `PUT|GET /DeviceDataSync/DataUploadMessages(guid'{id}')` — upload, status
//!
//! Anything else is 404; a known path with another method is 405 with
//! `Allow`. The `/_sim/` control routes live in `control` and are matched
//! before this table.

use hyper::Method;

use super::device_sync;
use super::fault::InBand;
use super::graph;
use super::listener::Side;
use super::login;
use super::reply::{Handled, Reply};
use super::request::Incoming;
use super::state::Shared;
use super::tenant_sync;

/// Answers a request that no fault has taken over.
pub(crate) fn dispatch(
    shared: &Shared,
    side: Side,
    request: &Incoming,
    in_band: Option<&InBand>,
) -> Reply {
    let handled = match side {
        Side::Main => main_listener(shared, request, in_band),
        Side::ScaleUnit => scale_unit(shared, request, in_band),
    };
    handled.unwrap_or_else(|reply| reply)
}

fn main_listener(shared: &Shared, request: &Incoming, in_band: Option<&InBand>) -> Handled {
    let method = &request.method;
    match request.segments().as_slice() {
        [tenant, "adminconsent"] => only(method, &[Method::GET], || {
            login::admin_consent(shared, request, tenant, in_band)
        }),
        [tenant, "oauth2", "v2.0", "token"] => only(method, &[Method::POST], || {
            login::token(shared, request, tenant, in_band)
        }),
        ["v1.0", "servicePrincipals"] => only(method, &[Method::GET], || {
            graph::service_principals(shared, request)
        }),
        [
            "v1.0",
            "servicePrincipals",
            sp_id,
            "endpoints" | "endPoints",
        ] => only(method, &[Method::GET], || {
            graph::endpoints(shared, request, sp_id)
        }),
        ["v1.0", "groups"] => only(method, &[Method::GET], || graph::groups(shared, request)),
        ["v1.0", segment] if segment.starts_with("users(") => only(method, &[Method::GET], || {
            graph::user(shared, request, segment)
        }),
        ["v1.0", segment] if segment.starts_with("devices(") => {
            only(method, &[Method::PATCH], || {
                graph::patch_device(shared, request, segment)
            })
        }
        _ => Err(not_found(request)),
    }
}

fn scale_unit(shared: &Shared, request: &Incoming, in_band: Option<&InBand>) -> Handled {
    let method = &request.method;
    let segments = request.segments();
    let (service, entity, tail) = match segments.as_slice() {
        [service, entity] => (*service, *entity, None),
        [service, entity, tail] => (*service, *entity, Some(*tail)),
        _ => return Err(not_found(request)),
    };
    match (service, tail) {
        ("TenantDataSync", None) if entity == "PartnerCompliancePolicies" => match *method {
            Method::GET => tenant_sync::list_policies(shared, request),
            Method::POST => tenant_sync::create_policy(shared, request, in_band),
            _ => Err(method_not_allowed(&[Method::GET, Method::POST])),
        },
        ("TenantDataSync", None) => {
            if let Some(key) = entity_key(entity, "PartnerTenants") {
                let handler = || tenant_sync::partner_tenant(shared, request, key, in_band);
                only(method, &[Method::PUT], handler)
            } else if let Some(key) = entity_key(entity, "PartnerTenantHeartbeat") {
                let handler = || tenant_sync::heartbeat(shared, request, key, in_band);
                only(method, &[Method::PUT], handler)
            } else {
                Err(not_found(request))
            }
        }
        ("TenantDataSync", Some("Assign")) => match entity_key(entity, "PartnerCompliancePolicies")
        {
            Some(key) => only(method, &[Method::POST], || {
                tenant_sync::assign(shared, request, key)
            }),
            None => Err(not_found(request)),
        },
        ("DeviceDataSync", None) => match entity_key(entity, "DataUploadMessages") {
            Some(key) => match *method {
                Method::PUT => device_sync::upload(shared, request, key, in_band),
                Method::GET => device_sync::status(shared, request, key, in_band),
                _ => Err(method_not_allowed(&[Method::GET, Method::PUT])),
            },
            None => Err(not_found(request)),
        },
        _ => Err(not_found(request)),
    }
}

/// The key part of `Name(…)`: what follows the entity-set name when it looks
/// like an attempt at a key (literal or percent-encoded parenthesis, or
/// nothing). The handler then insists on the exact `(guid'…')` form, so a
/// malformed key is a 400 while an unknown entity set stays a 404.
fn entity_key<'a>(segment: &'a str, name: &str) -> Option<&'a str> {
    let rest = segment.strip_prefix(name)?;
    (rest.is_empty() || rest.starts_with('(') || rest.starts_with('%')).then_some(rest)
}

/// Runs `handler` when the method is allowed, else answers 405.
fn only(method: &Method, allowed: &[Method], handler: impl FnOnce() -> Handled) -> Handled {
    if allowed.contains(method) {
        handler()
    } else {
        Err(method_not_allowed(allowed))
    }
}

fn method_not_allowed(allowed: &[Method]) -> Reply {
    let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    let text = "The requested resource does not support this HTTP method.";
    Reply::graph_error(405, "MethodNotAllowed", text).with_header("allow", allow.join(", "))
}

fn not_found(request: &Incoming) -> Reply {
    let text = format!(
        "No HTTP resource was found that matches the request URI '{}'.",
        request.path
    );
    Reply::graph_error(404, "ResourceNotFound", &text)
}
