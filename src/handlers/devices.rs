//! Device reports and upload status polls.

use chrono::{DateTime, Utc};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Serialize;

use super::{credentials, fields};
use crate::Error;
use crate::input::{self, Fields};
use crate::response::Body;
use crate::routes::App;
use crate::service::{DeviceReport, UserRef};

#[derive(Serialize)]
struct ReportResponse {
    message_id: String,
}

#[derive(Serialize)]
struct MessageResponse {
    message_id: String,
    status: String,
    detail: Option<String>,
}

/// `POST /api/v1/microsoft-compliance-partner/device`
pub async fn report(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let fields = fields(app, req).await?;
    let credentials = credentials(&fields)?;
    let report = device_report(&fields)?;

    let message_id = app.service.report_device(&credentials, report).await?;
    Ok(App::ok(&ReportResponse {
        message_id: message_id.to_string(),
    }))
}

/// `GET /api/v1/microsoft-compliance-partner/device/message`
pub async fn message(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let fields = fields(app, req).await?;
    let credentials = credentials(&fields)?;
    let message_id = fields.guid(&input::MESSAGE_ID)?;

    let report = app.service.message_status(&credentials, message_id).await?;
    Ok(App::ok(&MessageResponse {
        message_id: report.message_id.to_string(),
        status: report.status,
        detail: report.detail,
    }))
}

/// The device fields of a report, each checked for presence and type.
fn device_report(fields: &Fields) -> Result<DeviceReport, Error> {
    let device_id = fields.guid(&input::DEVICE_ID)?;
    let device_name = fields.required_string(&input::DEVICE_NAME)?;
    // Fleet sends the platform exactly, but a hand-written request may pad
    // it; trimmed once here, " windows " takes the Windows path and Intune's
    // inventory gets the bare name.
    let os = fields
        .string(&input::OS)?
        .map(|os| os.trim().to_string())
        .filter(|os| !os.is_empty())
        .ok_or_else(|| input::missing(&input::OS))?;
    let os_version = fields
        .string(&input::OS_VERSION)?
        .ok_or_else(|| input::missing(&input::OS_VERSION))?;
    let compliant = fields
        .bool(&input::COMPLIANT)?
        .ok_or_else(|| input::missing(&input::COMPLIANT))?;
    // Fleet sends whether the device is MDM-enrolled; absent means enrolled.
    let managed = fields.bool(&input::MANAGED)?.unwrap_or(true);

    let seconds = fields
        .integer(&input::LAST_CHECK_IN)?
        .ok_or_else(|| input::missing(&input::LAST_CHECK_IN))?;
    // Up to the last second of year 9999, the largest RFC 3339 can write.
    let last_check_in = DateTime::<Utc>::from_timestamp(seconds, 0)
        .filter(|_| (0..=253_402_300_799).contains(&seconds))
        .ok_or_else(|| {
            Error::BadRequest("lastCheckInTime must be Unix seconds between 1970 and 9999".into())
        })?;

    let user = match fields.optional_guid(&input::USER_ID)? {
        Some(id) => UserRef::Id(id),
        None => {
            UserRef::PrincipalName(fields.string(&input::USER_PRINCIPAL_NAME)?.ok_or_else(
                || Error::BadRequest("userPrincipalName (or userId) is missing".into()),
            )?)
        }
    };

    Ok(DeviceReport {
        device_id,
        device_name,
        os,
        os_version,
        compliant,
        managed,
        last_check_in,
        user,
    })
}
