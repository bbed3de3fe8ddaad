//! Tenant-level partner calls: provisioning, the compliance policy, its group
//! assignment, and the heartbeat.
//!
//! Microsoft reports several failures inside HTTP 200 answers, so each call
//! checks the body as well as the status. Every call here is safe to repeat:
//! provisioning is a PUT of the same state, and a policy that already exists
//! is found by name and platform instead of created twice.

use ureq::http::Method;

use super::client::{Base, Call, Client, Reply};
use super::encode::odata_filter;
use super::error::{MsError, Op};
use crate::ids::Guid;
use serde_json::{Value, json};

/// The pages Intune sends users to, registered when provisioning.
#[derive(Clone, Debug)]
pub struct PartnerUrls {
    pub enrollment: String,
    pub remediation: String,
}

/// The partner compliance policy setup creates.
#[derive(Clone, Debug)]
pub struct PolicySpec {
    pub display_name: String,
    pub description: String,
}

/// The platform our partner policy covers.
const PLATFORM: &str = "macOS";

impl Client {
    /// Provisions (`Provisioned: 1`) or deprovisions (`2`) us in the tenant.
    pub fn set_provisioned(
        &self,
        tenant: Guid,
        provisioned: bool,
        urls: &PartnerUrls,
    ) -> Result<(), MsError> {
        let (op, state) = if provisioned {
            (Op::Provision, 1)
        } else {
            (Op::Deprovision, 2)
        };
        let path = format!("/PartnerTenants(guid'{tenant}')?api-version=1.6");
        let call = Call::new(op, tenant, Method::PUT, Base::TenantSync, path).json(json!({
            "Provisioned": state,
            "PartnerEnrollmentUrl": urls.enrollment,
            "PartnerRemediationUrl": urls.remediation,
        }));

        let Some(body) = self.tenant_call(tenant, &call)? else {
            return Ok(());
        };
        if let Some(detail) = error_detail(&body) {
            return Err(MsError::in_band(op, detail));
        }
        match body.get("Provisioned").and_then(Value::as_i64) {
            Some(n) if n == state => Ok(()),
            Some(n) => Err(MsError::in_band(
                op,
                format!("Provisioned is {n} instead of {state}"),
            )),
            None => Err(MsError::unexpected(
                op,
                "the answer has no Provisioned value",
            )),
        }
    }

    /// Creates our partner compliance policy, or finds it when it already
    /// exists, and returns its id.
    pub fn ensure_policy(&self, tenant: Guid, spec: &PolicySpec) -> Result<Guid, MsError> {
        let op = Op::CreatePolicy;
        let path = "/PartnerCompliancePolicies?api-version=1.6".to_string();
        let call = Call::new(op, tenant, Method::POST, Base::TenantSync, path).json(json!({
            "DisplayName": spec.display_name,
            "Description": spec.description,
            "Platform": PLATFORM,
            "PartnerManagedCompliance": true,
        }));

        let reply = self.execute(&call)?;
        match reply.status {
            200 | 201 => {
                let body = reply.json(op)?;
                let id = body.get("Id").and_then(Value::as_str).and_then(Guid::parse);
                real_policy_id(id, "the Id in the answer")
            }
            204 => real_policy_id(policy_id_from_location(&reply), "the Location header"),
            409 => self.find_policy(tenant, spec),
            _ => Err(reply.error(op)),
        }
    }

    /// Lists the tenant's partner policies and picks ours by name and platform.
    fn find_policy(&self, tenant: Guid, spec: &PolicySpec) -> Result<Guid, MsError> {
        let op = Op::ListPolicies;
        let path = "/PartnerCompliancePolicies?api-version=1.6".to_string();
        let reply = self.execute(&Call::new(op, tenant, Method::GET, Base::TenantSync, path))?;
        if !reply.is_success() {
            return Err(reply.error(op));
        }

        let body = reply.json(op)?;
        let policies = body
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| MsError::unexpected(op, "the answer has no list of policies"))?;
        let ours = policies.iter().find(|p| {
            p.get("DisplayName").and_then(Value::as_str) == Some(spec.display_name.as_str())
                && p.get("Platform").and_then(Value::as_str) == Some(PLATFORM)
        });
        let id = ours
            .and_then(|p| p.get("Id"))
            .and_then(Value::as_str)
            .and_then(Guid::parse);
        id.ok_or_else(|| {
            MsError::unexpected(
                op,
                format!(
                    "a {PLATFORM} partner policy already exists, but none named {:?}",
                    spec.display_name
                ),
            )
        })
    }

    /// The object id of the Entra group with this display name, if any.
    pub fn find_group(&self, tenant: Guid, name: &str) -> Result<Option<Guid>, MsError> {
        let op = Op::FindGroup;
        let filter = odata_filter("displayName", name);
        let path = format!("/v1.0/groups?$filter={filter}");
        let reply = self.execute(&Call::new(op, tenant, Method::GET, Base::Graph, path))?;
        if !reply.is_success() {
            return Err(reply.error(op));
        }

        let body = reply.json(op)?;
        let groups = body
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| MsError::unexpected(op, "the answer has no list of groups"))?;
        if groups.len() > 1 {
            let count = groups.len();
            tracing::warn!(%tenant, count, "several groups share the name; using the first");
        }
        Ok(groups
            .first()
            .and_then(|g| g.get("id"))
            .and_then(Value::as_str)
            .and_then(Guid::parse))
    }

    /// Assigns the policy to the group.
    pub fn assign_policy(&self, tenant: Guid, policy: Guid, group: Guid) -> Result<(), MsError> {
        let op = Op::AssignPolicy;
        let path = format!("/PartnerCompliancePolicies(guid'{policy}')/Assign?api-version=1.6");
        let call = Call::new(op, tenant, Method::POST, Base::TenantSync, path)
            .json(json!({ "assignments": [group.to_string()] }));
        let reply = self.execute(&call)?;
        if !reply.is_success() {
            return Err(reply.error(op));
        }
        Ok(())
    }

    /// Tells Intune we are alive for this tenant.
    pub fn heartbeat(&self, tenant: Guid) -> Result<(), MsError> {
        let op = Op::Heartbeat;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let path = format!("/PartnerTenantHeartbeat(guid'{tenant}')?api-version=1.6");
        let call = Call::new(op, tenant, Method::PUT, Base::TenantSync, path)
            .json(json!({ "Timestamp": now }))
            .return_content();

        let Some(body) = self.tenant_call(tenant, &call)? else {
            return Ok(());
        };
        let inner = body.get("HttpStatusCode").and_then(Value::as_i64);
        match (inner, error_detail(&body)) {
            (Some(code), detail) if !(200..300).contains(&code) => Err(MsError::in_band(
                op,
                match detail {
                    Some(d) => format!("HttpStatusCode {code}: {d}"),
                    None => format!("HttpStatusCode {code}"),
                },
            )),
            (_, Some(detail)) => Err(MsError::in_band(op, detail)),
            _ => Ok(()),
        }
    }
}

impl Client {
    /// Sends a call that addresses the tenant itself (`PartnerTenants`,
    /// `PartnerTenantHeartbeat`) and returns its JSON body, or `None` when
    /// the success carried none.
    fn tenant_call(&self, tenant: Guid, call: &Call) -> Result<Option<Value>, MsError> {
        let reply = self.execute(call)?;
        if reply.status == 404 {
            // The scale unit does not know the tenant; look it up afresh next time.
            self.forget_endpoints(tenant);
        }
        if !reply.is_success() {
            return Err(reply.error(call.op));
        }
        if reply.status == 204 || reply.body.trim().is_empty() {
            return Ok(None);
        }
        reply.json(call.op).map(Some)
    }
}

/// A non-empty `ErrorDetail`, tidied for display.
pub(crate) fn error_detail(body: &Value) -> Option<String> {
    let detail = body.get("ErrorDetail")?;
    match detail {
        Value::Null => None,
        Value::String(s) => super::error::tidy(s),
        other => super::error::tidy(&other.to_string()),
    }
}

/// Rejects a missing or all-zero policy id, which Microsoft returns when the
/// tenant is not really provisioned as our partner.
fn real_policy_id(id: Option<Guid>, source: &str) -> Result<Guid, MsError> {
    match id {
        Some(id) if !id.is_nil() => Ok(id),
        Some(_) => Err(MsError::in_band(
            Op::CreatePolicy,
            "no policy was created (empty policy id): the tenant is not provisioned \
             as a macOS compliance partner in Intune",
        )),
        None => Err(MsError::unexpected(
            Op::CreatePolicy,
            format!("{source} holds no policy id"),
        )),
    }
}

/// The GUID in a `…/PartnerCompliancePolicies(guid'…')` Location header.
fn policy_id_from_location(reply: &Reply) -> Option<Guid> {
    let location = reply.location.as_deref()?;
    let start = location.rfind("guid'")? + "guid'".len();
    let end = start + location[start..].find('\'')?;
    Guid::parse(&location[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_with_location(location: &str) -> Reply {
        Reply {
            status: 204,
            location: Some(location.into()),
            retry_after: None,
            body: String::new(),
            url: String::new(),
        }
    }

    #[test]
    fn policy_ids_come_from_location_headers() {
        let id = "2b0b8a1c-3f4e-4d5a-9b6c-7d8e9f0a1b2c";
        let reply =
            reply_with_location(&format!("https://x/PartnerCompliancePolicies(guid'{id}')"));
        assert_eq!(policy_id_from_location(&reply), Guid::parse(id));
        assert_eq!(
            policy_id_from_location(&reply_with_location("https://x/y")),
            None
        );
        assert_eq!(
            policy_id_from_location(&reply_with_location("guid'nope'")),
            None
        );
    }

    #[test]
    fn nil_policy_ids_are_refused() {
        let err = real_policy_id(Some(Guid::NIL), "x").unwrap_err();
        assert!(err.to_string().contains("not provisioned"), "{err}");
        assert!(real_policy_id(None, "the Location header").is_err());
    }

    #[test]
    fn error_detail_ignores_null_and_blank() {
        assert_eq!(error_detail(&json!({"ErrorDetail": null})), None);
        assert_eq!(error_detail(&json!({"ErrorDetail": " "})), None);
        assert_eq!(
            error_detail(&json!({"ErrorDetail": "Bad"})),
            Some("Bad".into())
        );
        assert_eq!(error_detail(&json!({})), None);
    }
}
