//! Device-level calls: the user lookup, the macOS upload and its status, and
//! the Windows device update.
//!
//! macOS records go to Intune's asynchronous device data sync service: we
//! choose the message id, upload under it, and poll it later. Windows devices
//! are updated synchronously through Graph.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use ureq::http::Method;

use super::client::{Base, Call, Client, record_lookup};
use super::encode::user_segment;
use super::error::{MsError, Op};
use super::tenant::error_detail;
use crate::ids::Guid;

/// A user's object id is reused for an hour after a lookup.
const USER_TTL: Duration = Duration::from_secs(60 * 60);

/// One device's state, as uploaded for macOS.
#[derive(Clone, Debug)]
pub struct DeviceRecord {
    /// Entra device id (the `deviceId` attribute, not the directory object id).
    pub device_id: Guid,
    pub device_name: String,
    pub os: String,
    pub os_version: String,
    /// Entra object id of the device's user.
    pub user_id: Guid,
    /// Whether the device is enrolled in Fleet's MDM.
    pub managed: bool,
    pub compliant: bool,
    pub last_check_in: DateTime<Utc>,
}

/// One Windows device's state, as patched through Graph.
#[derive(Clone, Debug)]
pub struct WindowsDevice {
    pub device_id: Guid,
    pub device_name: String,
    pub os_version: String,
    pub managed: bool,
    pub compliant: bool,
}

/// Microsoft's processing state of an upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    /// `Status` exactly as Microsoft sent it.
    pub status: String,
    /// `ErrorDetail` (with `ErrorCode` when given), when there is one.
    pub detail: Option<String>,
    /// Where the status was read.
    pub location: String,
}

impl Client {
    /// The user's object id if it was looked up recently. Never blocks on
    /// the network, so it may be called from async code.
    pub fn cached_user_id(&self, tenant: Guid, upn: &str) -> Option<Guid> {
        let id = self.users.peek(&(tenant, upn.to_lowercase()))?;
        record_lookup("users", super::cache::Lookup::Hit);
        Some(id)
    }

    /// The object id of the user with this principal name; `None` when Graph
    /// has no such user.
    pub fn user_id(&self, tenant: Guid, upn: &str) -> Result<Option<Guid>, MsError> {
        if let Some(id) = self.cached_user_id(tenant, upn) {
            return Ok(Some(id));
        }
        let key = (tenant, upn.to_lowercase());

        let op = Op::LookUpUser;
        let path = format!("/v1.0/{}", user_segment(upn));
        let reply = self.execute(&Call::new(op, tenant, Method::GET, Base::Graph, path))?;
        if reply.status == 404 {
            return Ok(None);
        }
        if !reply.is_success() {
            return Err(reply.error(op));
        }

        let body = reply.json(op)?;
        let id = body
            .get("id")
            .and_then(Value::as_str)
            .and_then(Guid::parse)
            .ok_or_else(|| MsError::unexpected(op, "the user has no object id"))?;
        self.users.insert(key, id, Instant::now() + USER_TTL);
        record_lookup("users", super::cache::Lookup::Miss);
        Ok(Some(id))
    }

    /// Uploads one device's inventory and compliance records under
    /// `message_id`.
    pub fn upload(
        &self,
        tenant: Guid,
        message_id: Guid,
        device: &DeviceRecord,
    ) -> Result<(), MsError> {
        let op = Op::Upload;
        let now = rfc3339(Utc::now());
        let records = json!([
            {
                "EntityType": 1,
                "TenantId": tenant.to_string(),
                "DeviceId": device.device_id.to_string(),
                "DeviceName": device.device_name,
                "UserId": device.user_id.to_string(),
                "DeviceManagementState": if device.managed { "managed" } else { "notManaged" },
                "LastCheckInTime": rfc3339(device.last_check_in),
                "LastUpdateTime": now,
                "Os": device.os,
                "OsVersion": device.os_version,
                "EasIds": [],
                "State": 0,
            },
            {
                "EntityType": 4,
                "TenantId": tenant.to_string(),
                "DeviceId": device.device_id.to_string(),
                "UserId": device.user_id.to_string(),
                "LastUpdateTime": now,
                "complianceStatus": if device.compliant { "compliant" } else { "notCompliant" },
            },
        ]);
        let path = format!("/DataUploadMessages(guid'{message_id}')?api-version=1.2");
        let call = Call::new(op, tenant, Method::PUT, Base::DeviceSync, path).json(json!({
            "TenantId": tenant.to_string(),
            "UploadTime": now,
            // Microsoft wants the records as a JSON string, not an array.
            "Content": records.to_string(),
        }));

        let reply = self.execute(&call)?;
        if !reply.is_success() {
            return Err(reply.error(op));
        }
        if reply.status != 204 && !reply.body.trim().is_empty() {
            let body = reply.json(op)?;
            if let Some(code) = rejected_code(&body) {
                if code == "404" {
                    // Intune does not know the tenant at this scale unit any more.
                    self.forget_endpoints(tenant);
                }
                let detail = error_detail(&body).unwrap_or_else(|| "no detail given".into());
                return Err(MsError::in_band(op, format!("ErrorCode {code}: {detail}")));
            }
        }
        Ok(())
    }

    /// Reads the processing state of an upload.
    pub fn upload_status(&self, tenant: Guid, message_id: Guid) -> Result<UploadStatus, MsError> {
        let op = Op::UploadStatus;
        let path = format!("/DataUploadMessages(guid'{message_id}')?api-version=1.2");
        let reply = self.execute(&Call::new(op, tenant, Method::GET, Base::DeviceSync, path))?;
        if !reply.is_success() {
            return Err(reply.error(op));
        }

        let body = reply.json(op)?;
        let status = body
            .get("Status")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| MsError::unexpected(op, "the answer has no Status"))?;
        let detail = match (error_detail(&body), code_text(body.get("ErrorCode"))) {
            (Some(d), Some(c)) if c != "0" && c != "202" => Some(format!("ErrorCode {c}: {d}")),
            (detail, _) => detail,
        };
        Ok(UploadStatus {
            status: status.to_string(),
            detail,
            location: reply.url,
        })
    }

    /// Writes a Windows device's state to its Entra device object. Returns
    /// `Ok(false)` when Entra has no device with that id.
    pub fn update_windows_device(
        &self,
        tenant: Guid,
        device: &WindowsDevice,
    ) -> Result<bool, MsError> {
        let op = Op::UpdateWindowsDevice;
        let path = format!("/v1.0/devices(deviceId='{}')", device.device_id);
        let call = Call::new(op, tenant, Method::PATCH, Base::Graph, path).json(json!({
            "displayName": device.device_name,
            "operatingSystemVersion": device.os_version,
            "isManaged": device.managed,
            "isCompliant": device.compliant,
        }));

        let reply = self.execute(&call)?;
        match reply.status {
            404 => Ok(false),
            _ if reply.is_success() => Ok(true),
            _ => Err(reply.error(op)),
        }
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `ErrorCode` as text, whether Microsoft sent a number or a string.
fn code_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// The upload's `ErrorCode` when it means rejection: anything but absent, 0
/// or 202 ("accepted").
fn rejected_code(body: &Value) -> Option<String> {
    code_text(body.get("ErrorCode")).filter(|c| c != "0" && c != "202")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_error_codes_202_and_0_mean_accepted() {
        for accepted in [
            json!({"ErrorCode": "202"}),
            json!({"ErrorCode": 202}),
            json!({"ErrorCode": 0}),
            json!({"ErrorCode": null}),
            json!({}),
        ] {
            assert_eq!(rejected_code(&accepted), None, "{accepted}");
        }
        assert_eq!(
            rejected_code(&json!({"ErrorCode": "404"})),
            Some("404".into())
        );
        assert_eq!(
            rejected_code(&json!({"ErrorCode": 400})),
            Some("400".into())
        );
    }
}
