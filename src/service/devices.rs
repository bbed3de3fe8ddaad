//! Device reports and the status of their uploads.
//!
//! macOS (and every platform but Windows) goes through Intune's asynchronous
//! upload: resolve the user, upload under a fresh message id, store the
//! message, and let Fleet poll it. Windows devices are updated synchronously
//! through Graph and stored as an already `Completed` message, so a client
//! that polls anyway gets a sensible answer.

use chrono::{DateTime, Utc};

use crate::Error;
use crate::ids::Guid;
use crate::microsoft::{DeviceRecord, WindowsDevice};
use crate::store::NewMessage;

use super::{Credentials, Deny, Service};

/// Microsoft's terminal upload states; anything else is still pending.
const COMPLETED: &str = "Completed";
const FAILED: &str = "Failed";
/// What we store for an upload Microsoft accepted but has not reported on.
const NOT_STARTED: &str = "NotStarted";

/// Who uses the device: an Entra object id, or a principal name to look up.
#[derive(Clone, Debug)]
pub enum UserRef {
    Id(Guid),
    PrincipalName(String),
}

/// One device's compliance, as Fleet reports it.
#[derive(Clone, Debug)]
pub struct DeviceReport {
    pub device_id: Guid,
    pub device_name: String,
    pub os: String,
    pub os_version: String,
    pub compliant: bool,
    /// Whether the device is enrolled in Fleet's MDM.
    pub managed: bool,
    pub last_check_in: DateTime<Utc>,
    pub user: UserRef,
}

/// An upload's status, as Fleet reads it.
#[derive(Clone, Debug)]
pub struct MessageReport {
    pub message_id: Guid,
    pub status: String,
    pub detail: Option<String>,
}

impl Service {
    /// Sends one device's compliance to Microsoft; returns the message id.
    pub async fn report_device(
        &self,
        credentials: &Credentials,
        report: DeviceReport,
    ) -> Result<Guid, Error> {
        let integration = self.authenticate(credentials, Deny::Unauthorized).await?;
        if !integration.setup_done {
            return Err(Error::Conflict(
                "the integration's setup is not done: an Entra admin must follow the consent \
                 link from settings first"
                    .into(),
            ));
        }

        let tenant = integration.tenant;
        let message_id = Guid::new_v4();
        let device_id = report.device_id;
        let message = |status: &str| NewMessage {
            integration_id: integration.id,
            message_id,
            device_id,
            status: status.into(),
            detail: None,
            poll_location: None,
        };

        if report.os.eq_ignore_ascii_case("windows") {
            self.update_windows(tenant, &report).await?;
            if !self.store.insert_message(message(COMPLETED)).await? {
                // Deleted since the credential check: as if never known.
                return Err(Deny::Unauthorized.error());
            }
        } else {
            let user_id = self.resolve_user(tenant, &report.user).await?;
            let device = DeviceRecord {
                device_id,
                device_name: report.device_name,
                os: report.os,
                os_version: report.os_version,
                user_id,
                managed: report.managed,
                compliant: report.compliant,
                last_check_in: report.last_check_in,
            };

            // The message is stored before the upload: a database failure then
            // stops the report before Microsoft acts on it, and the answer to
            // Fleet leaves as soon as Microsoft's does. An upload that fails
            // takes its message back out.
            if !self.store.insert_message(message(NOT_STARTED)).await? {
                // Deleted since the credential check: as if never known.
                return Err(Deny::Unauthorized.error());
            }
            if let Err(e) = self.microsoft.upload(tenant, message_id, device).await {
                match self.store.delete_message(message_id).await {
                    Ok(true) => {}
                    // The integration was deleted (with its messages) during
                    // the upload, which is why Microsoft refused it: the
                    // credentials name nothing any more. Microsoft's answer
                    // is not Fleet's business then, but is kept for whoever
                    // wonders where the upload went.
                    Ok(false) => {
                        tracing::debug!(
                            %tenant,
                            %message_id,
                            error = %e,
                            "upload failed after its integration was deleted"
                        );
                        return Err(Deny::Unauthorized.error());
                    }
                    Err(cleanup) => {
                        let why = "could not remove the message of a failed upload";
                        tracing::error!(%message_id, error = %cleanup, "{why}");
                    }
                }
                return Err(e.into());
            }
        }
        tracing::debug!(%tenant, %message_id, device_id = %report.device_id, "device reported");
        Ok(message_id)
    }

    /// The upload's status: from storage when terminal, else from Microsoft.
    pub async fn message_status(
        &self,
        credentials: &Credentials,
        message_id: Guid,
    ) -> Result<MessageReport, Error> {
        let integration = self.authenticate(credentials, Deny::Unauthorized).await?;
        let message = self
            .store
            .message(integration.id, message_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no message {message_id} for this tenant")))?;

        if message.status == COMPLETED || message.status == FAILED {
            return Ok(MessageReport {
                message_id,
                status: message.status,
                detail: message.detail,
            });
        }

        let latest = self
            .microsoft
            .upload_status(integration.tenant, message_id)
            .await?;
        let changed = latest.status != message.status
            || latest.detail != message.detail
            || Some(&latest.location) != message.poll_location.as_ref();
        if changed {
            self.store
                .update_message(
                    message.id,
                    latest.status.clone(),
                    latest.detail.clone(),
                    Some(latest.location),
                )
                .await?;
        }

        Ok(MessageReport {
            message_id,
            status: latest.status,
            detail: latest.detail,
        })
    }

    async fn resolve_user(&self, tenant: Guid, user: &UserRef) -> Result<Guid, Error> {
        let upn = match user {
            UserRef::Id(id) => return Ok(*id),
            UserRef::PrincipalName(upn) if upn.trim().is_empty() => {
                return Err(Error::Unprocessable(
                    "the device has no user: userPrincipalName is empty and no userId was \
                     given, and Intune needs the device's Entra user"
                        .into(),
                ));
            }
            UserRef::PrincipalName(upn) => upn,
        };

        self.microsoft
            .user_id(tenant, upn.clone())
            .await?
            .ok_or_else(|| {
                Error::Unprocessable(format!(
                    "Entra ID has no user with principal name {upn:?} in this tenant"
                ))
            })
    }

    async fn update_windows(&self, tenant: Guid, report: &DeviceReport) -> Result<(), Error> {
        let device = WindowsDevice {
            device_id: report.device_id,
            device_name: report.device_name.clone(),
            os_version: report.os_version.clone(),
            managed: report.managed,
            compliant: report.compliant,
        };
        if self.microsoft.update_windows_device(tenant, device).await? {
            Ok(())
        } else {
            Err(Error::Unprocessable(format!(
                "Entra ID has no device with id {} in this tenant",
                report.device_id
            )))
        }
    }
}
