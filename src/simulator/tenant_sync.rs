//! The `PartnerTenantDataSyncService` stand-in: partner provisioning,
//! heartbeats, partner compliance policies and their group assignment.
//!
//! All calls need an Intune token and `api-version=1.6`; the tenant acted on
//! is the token's, and keys naming a tenant must name that one. Several
//! answers report failure inside an HTTP 200 (`Provisioned`, `ErrorDetail`,
//! `HttpStatusCode`), as Microsoft's do.

use serde_json::{Map, Value, json};

use super::auth::{own_tenant_key, partner_caller};
use super::fault::InBand;
use super::odata::{NULL_GUID, guid_key, is_absolute_http_url, random_guid, stable_guid};
use super::reply::{Handled, Reply};
use super::request::{
    Incoming, bad_request, bool_field, check_fields, field, str_field, time_field,
};
use super::snapshot::PolicySnapshot;
use super::state::Shared;

const API_VERSION: &str = "1.6";

/// Platforms a partner compliance policy may target.
const PLATFORMS: [&str; 4] = ["android", "iOS", "macOS", "windows10"];

/// `PUT /TenantDataSync/PartnerTenants(guid'{tenant}')?api-version=1.6`
pub(crate) fn partner_tenant(
    shared: &Shared,
    request: &Incoming,
    key: &str,
    in_band: Option<&InBand>,
) -> Handled {
    let mut state = shared.lock();
    let tenant = partner_caller(&state, request, API_VERSION)?;
    own_tenant_key(key, &tenant)?;
    let asked = Provisioning::read(&request.json_object()?).map_err(|t| bad_request(&t))?;
    let metadata = format!(
        "{}/TenantDataSync/$metadata#PartnerTenants/@Element",
        state.scale_base
    );
    let answer = |provisioned: u8, detail: Option<&str>| {
        let body = json!({
            "odata.metadata": metadata,
            "Key": stable_guid(&["partner-tenant", &tenant]),
            "ContextId": tenant,
            "Provisioned": provisioned,
            "HttpStatusCode": 200,
            "ErrorDetail": detail,
        });
        Reply::json(200, &body)
    };
    // In-band failures leave the tenant as it was: Microsoft did nothing.
    match in_band {
        Some(InBand::ProvisionedZero) => {
            let text = "The partner could not be provisioned for this tenant.";
            return Ok(answer(0, Some(text)));
        }
        Some(InBand::ErrorDetail(text)) => return Ok(answer(asked.provisioned, Some(text))),
        _ => {}
    }
    let record = state.tenant_mut(&tenant);
    record.provisioned = asked.provisioned;
    record.enrollment_url = asked.enrollment_url.or(record.enrollment_url.take());
    record.remediation_url = asked.remediation_url.or(record.remediation_url.take());
    Ok(answer(asked.provisioned, None))
}

/// The body of a `PartnerTenants` PUT.
struct Provisioning {
    provisioned: u8,
    enrollment_url: Option<String>,
    remediation_url: Option<String>,
}

impl Provisioning {
    /// Provisioning (1) needs both URLs; deprovisioning (2) may omit them.
    fn read(body: &Map<String, Value>) -> Result<Provisioning, String> {
        let urls = ["PartnerEnrollmentUrl", "PartnerRemediationUrl"];
        check_fields(body, &["Provisioned", urls[0], urls[1]], &["Provisioned"])?;
        let provisioned = match field(body, "Provisioned").as_u64() {
            Some(1) => 1,
            Some(2) => 2,
            _ => {
                let given = field(body, "Provisioned");
                return Err(format!("Provisioned must be 1 or 2, not {given}."));
            }
        };
        let url = |name: &str| match body.get(name) {
            None => Ok(None),
            Some(Value::String(url)) if is_absolute_http_url(url) => Ok(Some(url.clone())),
            Some(other) => Err(format!(
                "{name} must be an absolute http(s) URL, not {other}."
            )),
        };
        let enrollment_url = url(urls[0])?;
        let remediation_url = url(urls[1])?;
        if provisioned == 1 && (enrollment_url.is_none() || remediation_url.is_none()) {
            return Err(format!(
                "Provisioning requires both {} and {}.",
                urls[0], urls[1]
            ));
        }
        Ok(Provisioning {
            provisioned,
            enrollment_url,
            remediation_url,
        })
    }
}

/// `PUT /TenantDataSync/PartnerTenantHeartbeat(guid'{tenant}')?api-version=1.6`
///
/// Like an OData PUT, it answers `204 No Content` unless the client sends
/// `Prefer: return-content`; only with that header can a client see the
/// in-band `HttpStatusCode` and `ErrorDetail`.
pub(crate) fn heartbeat(
    shared: &Shared,
    request: &Incoming,
    key: &str,
    in_band: Option<&InBand>,
) -> Handled {
    let mut state = shared.lock();
    let tenant = partner_caller(&state, request, API_VERSION)?;
    own_tenant_key(key, &tenant)?;
    let body = request.json_object()?;
    check_fields(&body, &["Timestamp"], &["Timestamp"]).map_err(|t| bad_request(&t))?;
    let timestamp = time_field(&body, "Timestamp").map_err(|t| bad_request(&t))?;
    let metadata = format!(
        "{}/TenantDataSync/$metadata#PartnerTenantHeartbeat/@Element",
        state.scale_base
    );
    let record = state.tenant_mut(&tenant);
    let (status, detail, errors): (u16, Option<String>, Vec<String>) = match in_band {
        Some(InBand::HeartbeatFailure) => {
            let text = "The heartbeat could not be processed.".to_owned();
            (500, Some(text.clone()), vec![text])
        }
        Some(InBand::ErrorDetail(text)) => (200, Some(text.clone()), Vec::new()),
        _ if record.provisioned != 1 => {
            let text = format!("Partner tenant {tenant} is not provisioned.");
            (404, Some(text), Vec::new())
        }
        _ => {
            record.heartbeats.push(timestamp.clone());
            (200, None, Vec::new())
        }
    };
    if !prefers_content(request) {
        return Ok(Reply::no_content());
    }
    let body = json!({
        "odata.metadata": metadata,
        "Key": stable_guid(&["heartbeat", &tenant]),
        "TenantId": tenant,
        "ClientType": "Partner",
        "Timestamp": timestamp,
        "ResyncTimestamp": null,
        "HttpStatusCode": status,
        "ErrorDetail": detail,
        "MessageErrors": errors,
    });
    Ok(Reply::json(200, &body))
}

fn prefers_content(request: &Incoming) -> bool {
    request
        .headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("return-content"))
}

/// `POST /TenantDataSync/PartnerCompliancePolicies?api-version=1.6`
pub(crate) fn create_policy(
    shared: &Shared,
    request: &Incoming,
    in_band: Option<&InBand>,
) -> Handled {
    let mut state = shared.lock();
    let tenant = partner_caller(&state, request, API_VERSION)?;
    let policy = read_policy(&request.json_object()?).map_err(|t| bad_request(&t))?;
    let base = state.scale_base.clone();
    let record = state.tenant_mut(&tenant);

    // Not provisioned: Microsoft silently creates nothing and names the
    // all-zero GUID.
    if in_band == Some(&InBand::PolicyNullLocation) || record.provisioned != 1 {
        return Ok(Reply::no_content().with_header("location", policy_url(&base, NULL_GUID)));
    }
    let mine = |p: &&PolicySnapshot| !p.other_partner && p.platform == policy.platform;
    if record.policies.iter().any(|p| mine(&p)) {
        let text = format!(
            "A partner compliance policy for {} already exists.",
            policy.platform
        );
        return Err(Reply::graph_error(409, "Conflict", &text));
    }
    record.policies.push(policy.clone());
    let location = policy_url(&base, &policy.id);
    if in_band == Some(&InBand::PolicyLocation) {
        return Ok(Reply::no_content().with_header("location", location));
    }
    Ok(Reply::json(201, &policy_json(&base, &policy)).with_header("location", location))
}

fn read_policy(body: &Map<String, Value>) -> Result<PolicySnapshot, String> {
    let fields = [
        "DisplayName",
        "Description",
        "Platform",
        "PartnerManagedCompliance",
    ];
    check_fields(body, &fields, &fields)?;
    let display_name = str_field(body, "DisplayName")?;
    if display_name.trim().is_empty() {
        return Err("DisplayName must not be empty.".to_owned());
    }
    let platform = str_field(body, "Platform")?;
    if !PLATFORMS.contains(&platform) {
        return Err(format!(
            "Platform '{platform}' is not one of {}.",
            PLATFORMS.join(", ")
        ));
    }
    if !bool_field(body, "PartnerManagedCompliance")? {
        return Err("Only partner-managed compliance policies (true) can be created.".to_owned());
    }
    Ok(PolicySnapshot {
        id: random_guid(),
        display_name: display_name.to_owned(),
        description: str_field(body, "Description")?.to_owned(),
        platform: platform.to_owned(),
        partner_managed_compliance: true,
        assigned_groups: Vec::new(),
        other_partner: false,
    })
}

/// `GET /TenantDataSync/PartnerCompliancePolicies?api-version=1.6`
pub(crate) fn list_policies(shared: &Shared, request: &Incoming) -> Handled {
    let mut state = shared.lock();
    let tenant = partner_caller(&state, request, API_VERSION)?;
    let base = state.scale_base.clone();
    let value: Vec<Value> = state
        .tenant_mut(&tenant)
        .policies
        .iter()
        .map(|p| policy_json(&base, p))
        .collect();
    let metadata = format!("{base}/TenantDataSync/$metadata#PartnerCompliancePolicies");
    Ok(Reply::json(
        200,
        &json!({"odata.metadata": metadata, "value": value}),
    ))
}

/// `POST /TenantDataSync/PartnerCompliancePolicies(guid'{id}')/Assign?api-version=1.6`
pub(crate) fn assign(shared: &Shared, request: &Incoming, key: &str) -> Handled {
    let mut state = shared.lock();
    let tenant = partner_caller(&state, request, API_VERSION)?;
    let policy_id = guid_key(key).map_err(|t| bad_request(&t))?;
    let body = request.json_object()?;
    let groups = read_assignments(&body).map_err(|t| bad_request(&t))?;
    let base = state.scale_base.clone();
    let record = state.tenant_mut(&tenant);
    let known_groups: Vec<String> = record.groups.iter().map(|g| g.id.clone()).collect();
    let Some(policy) = record
        .policies
        .iter_mut()
        .find(|p| !p.other_partner && p.id == policy_id)
    else {
        let text = format!("The partner compliance policy '{policy_id}' does not exist.");
        return Err(Reply::graph_error(404, "ResourceNotFound", &text));
    };
    if let Some(unknown) = groups.iter().find(|g| !known_groups.contains(g)) {
        return Err(bad_request(&format!(
            "The group '{unknown}' does not exist."
        )));
    }
    policy.assigned_groups = groups.clone();
    let value = json!({"assignments": groups}).to_string();
    let metadata = format!("{base}/TenantDataSync/$metadata#Edm.String");
    Ok(Reply::json(
        200,
        &json!({"odata.metadata": metadata, "value": value}),
    ))
}

/// The group ids of an `Assign` body.
fn read_assignments(body: &Map<String, Value>) -> Result<Vec<String>, String> {
    check_fields(body, &["assignments"], &["assignments"])?;
    let Value::Array(items) = field(body, "assignments") else {
        return Err("assignments must be an array of group ids.".to_owned());
    };
    items
        .iter()
        .map(
            |item| match item.as_str().and_then(super::odata::normalize_guid) {
                Some(id) => Ok(id),
                None => Err(format!("The assignment {item} is not a group id (GUID).")),
            },
        )
        .collect()
}

fn policy_url(base: &str, id: &str) -> String {
    format!("{base}/TenantDataSync/PartnerCompliancePolicies(guid'{id}')")
}

fn policy_json(base: &str, policy: &PolicySnapshot) -> Value {
    json!({
        "odata.id": policy_url(base, &policy.id),
        "odata.etag": format!("W/\"{}\"", stable_guid(&["etag", &policy.id])),
        "Id": policy.id,
        "DisplayName": policy.display_name,
        "Description": policy.description,
        "Platform": policy.platform,
        "PartnerManagedCompliance": policy.partner_managed_compliance,
    })
}
