//! The graph.microsoft.com stand-in: service-principal discovery of the
//! Intune partner endpoints, group and user lookups, and the device PATCH of
//! the Windows path.
//!
//! Every call needs a Graph token; the tenant acted on is the token's. Query
//! and path literals are decoded the way Graph decodes them (form-decoded
//! query, percent-decoded key segments, OData `''` escapes), so a client that
//! encodes wrongly gets a 400 or 404 rather than a lucky match.

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};

use super::auth::caller;
use super::odata::{eq_filter, is_guid, normalize_guid, string_literal};
use super::reply::{Handled, Reply};
use super::request::{Incoming, bad_request, bool_field, check_fields, str_field};
use super::state::{Audience, INTUNE_APP_ID, Shared};

/// Display name of the Intune service principal.
const INTUNE_SP_NAME: &str = "Microsoft Intune API";

/// `GET /v1.0/servicePrincipals?$filter=appId eq '…'`
pub(crate) fn service_principals(shared: &Shared, request: &Incoming) -> Handled {
    let mut state = shared.lock();
    let tenant = caller(&state, request, Audience::Graph)?;
    let sp_id = state.tenant_mut(&tenant).sp_id.clone();
    let intune = json!({
        "id": sp_id,
        "appId": INTUNE_APP_ID,
        "displayName": INTUNE_SP_NAME,
        "servicePrincipalType": "Application",
    });
    let value = match request.param("$filter") {
        None => vec![intune],
        Some(filter) => match eq_filter(&filter) {
            None => return Err(invalid_filter(&filter)),
            Some(("appId", app_id)) if app_id.eq_ignore_ascii_case(INTUNE_APP_ID) => vec![intune],
            Some(_) => Vec::new(),
        },
    };
    Ok(collection("servicePrincipals", value))
}

/// `GET /v1.0/servicePrincipals/{id}/endpoints` (also `endPoints`).
///
/// Lists an unrelated provider first, so a client must pick by
/// `providerName` rather than by position.
pub(crate) fn endpoints(shared: &Shared, request: &Incoming, sp_id: &str) -> Handled {
    let mut state = shared.lock();
    let tenant = caller(&state, request, Audience::Graph)?;
    let base = state.scale_base.clone();
    let tenant_sp = state.tenant_mut(&tenant).sp_id.clone();
    if !sp_id.eq_ignore_ascii_case(&tenant_sp) {
        return Err(not_found(sp_id));
    }
    let endpoint = |provider: &str, path: &str| {
        json!({
            "id": super::odata::stable_guid(&["endpoint", &tenant, provider]),
            "capability": provider,
            "providerId": INTUNE_APP_ID,
            "providerName": provider,
            "providerResourceId": null,
            "uri": format!("{base}/{path}"),
        })
    };
    let value = vec![
        endpoint("NACAPIService", "NACAPI"),
        endpoint("PartnerTenantDataSyncService", "TenantDataSync"),
        endpoint("PartnerDeviceDataSyncService", "DeviceDataSync"),
    ];
    Ok(collection("servicePrincipals('…')/endpoints", value))
}

/// `GET /v1.0/groups?$filter=displayName eq '…'` (comparison ignores case,
/// as Graph's does for display names).
pub(crate) fn groups(shared: &Shared, request: &Incoming) -> Handled {
    let mut state = shared.lock();
    let tenant = caller(&state, request, Audience::Graph)?;
    let groups = &state.tenant_mut(&tenant).groups;
    let wanted = match request.param("$filter") {
        None => None,
        Some(filter) => match eq_filter(&filter) {
            Some(("displayName", name)) => Some(name),
            Some((property, _)) => {
                return Err(bad_request(&format!(
                    "Unsupported filter property '{property}'."
                )));
            }
            None => return Err(invalid_filter(&filter)),
        },
    };
    let value = groups
        .iter()
        .filter(|g| {
            wanted
                .as_ref()
                .is_none_or(|w| g.display_name.to_lowercase() == w.to_lowercase())
        })
        .map(|g| json!({"id": g.id, "displayName": g.display_name, "securityEnabled": true}))
        .collect();
    Ok(collection("groups", value))
}

/// `GET /v1.0/users('{upn}')`: a UPN resolves to a stable id (created on
/// first lookup) unless removed; a GUID resolves only to a handed-out user.
pub(crate) fn user(shared: &Shared, request: &Incoming, segment: &str) -> Handled {
    let literal = key_literal(segment, "users(", ")")?;
    let mut state = shared.lock();
    let tenant = caller(&state, request, Audience::Graph)?;
    let directory = state.tenant_mut(&tenant);
    let found = if is_guid(&literal) {
        directory.user_by_id(&literal).cloned()
    } else if literal.contains('@') {
        directory.user_by_upn(&literal)
    } else {
        None
    };
    let user = found.ok_or_else(|| not_found(&literal))?;
    let body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
        "id": user.id,
        "userPrincipalName": user.upn,
        "displayName": user.upn.split('@').next().unwrap_or_default(),
    });
    Ok(Reply::json(200, &body))
}

/// `PATCH /v1.0/devices(deviceId='{id}')` with any of `displayName`,
/// `operatingSystemVersion`, `isManaged`, `isCompliant`.
pub(crate) fn patch_device(shared: &Shared, request: &Incoming, segment: &str) -> Handled {
    let literal = key_literal(segment, "devices(deviceId=", ")")?;
    let device_id = normalize_guid(&literal)
        .ok_or_else(|| bad_request(&format!("Invalid object identifier '{literal}'.")))?;
    let mut state = shared.lock();
    let tenant = caller(&state, request, Audience::Graph)?;
    let body = request.json_object()?;
    let update = DeviceUpdate::read(&body).map_err(|text| bad_request(&text))?;
    let device = state.tenant_mut(&tenant).device_mut(&device_id);
    if let Some(name) = update.display_name {
        device.display_name = name;
    }
    if let Some(version) = update.os_version {
        device.os_version = version;
    }
    device.is_managed = update.is_managed.unwrap_or(device.is_managed);
    device.is_compliant = update.is_compliant.unwrap_or(device.is_compliant);
    Ok(Reply::no_content())
}

/// The attributes a device PATCH may set, all validated before any is applied.
struct DeviceUpdate {
    display_name: Option<String>,
    os_version: Option<String>,
    is_managed: Option<bool>,
    is_compliant: Option<bool>,
}

impl DeviceUpdate {
    fn read(body: &Map<String, Value>) -> Result<DeviceUpdate, String> {
        let allowed = [
            "displayName",
            "operatingSystemVersion",
            "isManaged",
            "isCompliant",
        ];
        check_fields(body, &allowed, &[])?;
        let text = |name| {
            body.get(name)
                .map(|_| str_field(body, name).map(str::to_owned))
        };
        let flag = |name| body.get(name).map(|_| bool_field(body, name));
        Ok(DeviceUpdate {
            display_name: text("displayName").transpose()?,
            os_version: text("operatingSystemVersion").transpose()?,
            is_managed: flag("isManaged").transpose()?,
            is_compliant: flag("isCompliant").transpose()?,
        })
    }
}

/// Percent-decodes a `name('literal')` segment and returns the literal.
fn key_literal(segment: &str, open: &str, close: &str) -> Result<String, Reply> {
    let decoded = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| bad_request("The request URL is not valid UTF-8 after decoding."))?;
    let literal = decoded
        .strip_prefix(open)
        .and_then(|rest| rest.strip_suffix(close))
        .and_then(string_literal)
        .ok_or_else(|| bad_request(&format!("Bad request: the segment '{decoded}' is invalid.")))?;
    if literal.is_empty() {
        return Err(bad_request("Invalid object identifier ''."));
    }
    Ok(literal)
}

fn collection(context: &str, value: Vec<Value>) -> Reply {
    let body = json!({
        "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#{context}"),
        "value": value,
    });
    Reply::json(200, &body)
}

fn invalid_filter(filter: &str) -> Reply {
    bad_request(&format!("Invalid filter clause: '{filter}'."))
}

fn not_found(what: &str) -> Reply {
    let text = format!(
        "Resource '{what}' does not exist or one of its queried reference-property objects are \
         not present."
    );
    Reply::graph_error(404, "Request_ResourceNotFound", &text)
}
