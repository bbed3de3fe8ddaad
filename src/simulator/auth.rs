//! Who is calling: bearer-token checks for Graph and the Intune partner
//! services, and the partner services' mandatory `api-version`.
//!
//! A token is only good for the audience it was issued for, until it expires
//! or is revoked; the tenant a Graph or Intune request acts on is always the
//! token's tenant.

use std::time::Instant;

use super::odata::guid_key;
use super::reply::Reply;
use super::request::{Incoming, bad_request};
use super::state::{Audience, State};

/// The tenant of the bearer token, if the request carries a token the
/// simulator issued (valid or not); used to attribute requests and faults.
pub(crate) fn token_tenant(state: &State, request: &Incoming) -> Option<String> {
    let token = request.bearer()?;
    state.tokens.get(token).map(|issued| issued.tenant.clone())
}

/// The tenant of a valid token for `audience`, or a Graph-style 401.
pub(crate) fn caller(
    state: &State,
    request: &Incoming,
    audience: Audience,
) -> Result<String, Reply> {
    let Some(token) = request.bearer() else {
        return Err(unauthorized(
            "Authentication failed: no Bearer access token was sent.",
        ));
    };
    let Some(issued) = state.tokens.get(token) else {
        return Err(unauthorized(
            "Access token validation failure. Invalid token.",
        ));
    };
    if issued.revoked || issued.expires_at <= Instant::now() {
        return Err(unauthorized(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    if issued.audience != audience {
        let wanted = match audience {
            Audience::Graph => "https://graph.microsoft.com",
            Audience::Intune => "https://api.manage.microsoft.com/",
        };
        let text =
            format!("Access token validation failure. Invalid audience (expected {wanted}).");
        return Err(unauthorized(&text));
    }
    Ok(issued.tenant.clone())
}

/// Checks that `api-version` appears exactly once with exactly `version`.
pub(crate) fn require_api_version(request: &Incoming, version: &str) -> Result<(), Reply> {
    match request.param_values("api-version").as_slice() {
        [given] if given == version => Ok(()),
        [] => Err(bad_request(&format!(
            "The 'api-version' query parameter is required; this resource expects {version}."
        ))),
        [given] => Err(bad_request(&format!(
            "The api-version '{given}' is not supported by this resource; it expects {version}."
        ))),
        _ => Err(bad_request(
            "The 'api-version' query parameter was given more than once.",
        )),
    }
}

/// The common preamble of every Intune partner call: a valid Intune token
/// and the exact `api-version`. Returns the caller's tenant.
pub(crate) fn partner_caller(
    state: &State,
    request: &Incoming,
    api_version: &str,
) -> Result<String, Reply> {
    let tenant = caller(state, request, Audience::Intune)?;
    require_api_version(request, api_version)?;
    Ok(tenant)
}

/// Reads a `Name(guid'…')` key whose GUID must be the caller's tenant.
pub(crate) fn own_tenant_key(rest: &str, tenant: &str) -> Result<(), Reply> {
    let key = guid_key(rest).map_err(|text| bad_request(&text))?;
    if key != tenant {
        let text = format!("The token's tenant {tenant} may not act on tenant {key}.");
        return Err(Reply::graph_error(403, "Forbidden", &text));
    }
    Ok(())
}

fn unauthorized(message: &str) -> Reply {
    Reply::graph_error(401, "InvalidAuthenticationToken", message)
}
