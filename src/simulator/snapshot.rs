//! The read-only views tests get of the simulator: recorded requests and
//! copies of a tenant's or device's state.
//!
//! These are plain data, detached from the live state, and serializable so
//! the `/_sim/` control interface can hand out the same views as JSON.

use serde::Serialize;

/// One request the simulator received (control requests are not recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedRequest {
    /// The method, e.g. `PUT`.
    pub method: String,
    /// The path as received, still percent-encoded.
    pub path: String,
    /// The raw query string without `?`, still encoded.
    pub query: Option<String>,
    /// The tenant the request was for: the path's tenant on login endpoints,
    /// the bearer token's tenant elsewhere; `None` when neither is known.
    pub tenant: Option<String>,
    /// Header names (lower case) and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
    /// The status answered, or 0 when a fault dropped the connection instead.
    pub status: u16,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A copy of one simulated tenant's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantSnapshot {
    /// The tenant GUID, lower case.
    pub tenant_id: String,
    /// Whether an admin consented to the partner application.
    pub consented: bool,
    /// Partner provisioning: 0 never provisioned, 1 provisioned, 2 deprovisioned.
    pub provisioned: u8,
    /// `PartnerEnrollmentUrl` from the last accepted `PartnerTenants` call.
    pub enrollment_url: Option<String>,
    /// `PartnerRemediationUrl` from the last accepted `PartnerTenants` call.
    pub remediation_url: Option<String>,
    /// Partner compliance policies, including the seeded one of another partner.
    pub policies: Vec<PolicySnapshot>,
    /// `Timestamp`s of accepted heartbeats, oldest first.
    pub heartbeats: Vec<String>,
    /// Entra groups of the tenant's directory.
    pub groups: Vec<GroupSnapshot>,
    /// `scope` of every token issued for this tenant, oldest first (shows
    /// which form of the Intune scope a client used and how often it asked).
    pub token_scopes: Vec<String>,
}

/// A copy of one partner compliance policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicySnapshot {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub platform: String,
    pub partner_managed_compliance: bool,
    /// Group ids from the last `Assign`.
    pub assigned_groups: Vec<String>,
    /// True for the policy seeded as belonging to some other partner.
    pub other_partner: bool,
}

/// A copy of one Entra group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupSnapshot {
    pub id: String,
    pub display_name: String,
}

/// A copy of one Entra directory device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceSnapshot {
    /// The Entra device id (`deviceId`), lower case.
    pub device_id: String,
    pub display_name: String,
    pub os_version: String,
    /// Entra's `isCompliant`: set by a Graph PATCH or a completed upload.
    pub is_compliant: bool,
    /// Entra's `isManaged`: set by a Graph PATCH or a completed upload.
    pub is_managed: bool,
}
