//! The `PartnerDeviceDataSyncService` stand-in: asynchronous device-data
//! uploads and their status.
//!
//! An upload is only accepted (in-band `ErrorCode` "202") or rejected; its
//! records take effect when a later status poll finds it done. The first
//! `SimConfig::pending_polls` polls of a message answer non-terminal
//! statuses, the next one decides: `Completed` (the records are applied to
//! the directory devices) or `Failed` with an `ErrorDetail`, for instance
//! when a record names a user the tenant's directory does not know.

use serde_json::{Value, json};

use super::auth::partner_caller;
use super::fault::InBand;
use super::odata::guid_key;
use super::records::{Record, read_upload};
use super::reply::{Handled, Reply};
use super::request::{Incoming, bad_request};
use super::state::{Message, Shared, State, Tenant};

const API_VERSION: &str = "1.2";

/// `PUT /DeviceDataSync/DataUploadMessages(guid'{id}')?api-version=1.2`
///
/// Re-sending a message id already accepted for the tenant answers exactly
/// as the first time and changes nothing, so a client may retry safely.
pub(crate) fn upload(
    shared: &Shared,
    request: &Incoming,
    key: &str,
    in_band: Option<&InBand>,
) -> Handled {
    let mut state = shared.lock();
    let tenant = partner_caller(&state, request, API_VERSION)?;
    let message_id = guid_key(key).map_err(|text| bad_request(&text))?;
    let verdict = match in_band {
        Some(InBand::UploadErrorCode(code)) => {
            let detail = "The message was rejected by the device data sync service.";
            Verdict::Rejected(code.clone(), detail.to_owned())
        }
        _ => receive(&mut state, request, &tenant, &message_id)?,
    };
    let answer = match verdict {
        Verdict::Answer(answer) => answer,
        Verdict::Rejected(code, detail) => {
            upload_answer(&tenant, &message_id, &code, Some(&detail))
        }
    };
    Ok(Reply::json(200, &answer))
}

/// The in-band outcome of an upload.
enum Verdict {
    /// The answer to send (an acceptance, possibly a repeated one).
    Answer(Value),
    /// A rejection: `ErrorCode` and `ErrorDetail`.
    Rejected(String, String),
}

/// Accepts a new message or says why not; only an unreadable body is an
/// HTTP-level error.
fn receive(
    state: &mut State,
    request: &Incoming,
    tenant: &str,
    message_id: &str,
) -> Result<Verdict, Reply> {
    if let Some(existing) = state.messages.get(message_id) {
        if existing.tenant == tenant {
            return Ok(Verdict::Answer(existing.upload_answer.clone()));
        }
        return Ok(Verdict::Rejected(
            "409".to_owned(),
            "The MessageId is in use.".to_owned(),
        ));
    }
    if state.tenant_mut(tenant).provisioned != 1 {
        let text = format!("Partner tenant {tenant} is not provisioned; device data is refused.");
        return Ok(Verdict::Rejected("403".to_owned(), text));
    }
    let records = match read_upload(&request.json_object()?, tenant) {
        Ok(records) => records,
        Err(detail) => return Ok(Verdict::Rejected("400".to_owned(), detail)),
    };

    // Devices exist in the directory from their first report on; their
    // attributes change only once the message is processed.
    let directory = state.tenant_mut(tenant);
    for record in &records {
        directory.device_mut(record.device_id());
    }
    let accepted = upload_answer(tenant, message_id, "202", None);
    let message = Message {
        tenant: tenant.to_owned(),
        upload_answer: accepted.clone(),
        records,
        polls: 0,
        outcome: None,
    };
    state.messages.insert(message_id.to_owned(), message);
    Ok(Verdict::Answer(accepted))
}

fn upload_answer(tenant: &str, message_id: &str, code: &str, detail: Option<&str>) -> Value {
    json!({
        "TenantId": tenant,
        "ErrorCode": code,
        "ErrorDetail": detail,
        "MessageId": message_id,
    })
}

/// `GET /DeviceDataSync/DataUploadMessages(guid'{id}')?api-version=1.2`
pub(crate) fn status(
    shared: &Shared,
    request: &Incoming,
    key: &str,
    in_band: Option<&InBand>,
) -> Handled {
    let mut guard = shared.lock();
    let tenant = partner_caller(&guard, request, API_VERSION)?;
    let message_id = guid_key(key).map_err(|text| bad_request(&text))?;
    // Reborrow so the message and the tenant directory can be used together.
    let state: &mut State = &mut guard;
    let Some(message) = state
        .messages
        .get_mut(&message_id)
        .filter(|m| m.tenant == tenant)
    else {
        let text = format!("The message '{message_id}' does not exist.");
        return Err(Reply::graph_error(404, "ResourceNotFound", &text));
    };
    if let Some(InBand::StatusFailed(detail)) = in_band {
        message.outcome = Some(Some(detail.clone()));
    }
    if message.outcome.is_none() {
        message.polls += 1;
        if message.polls <= shared.config.pending_polls {
            let pending = if message.polls == 1 {
                "NotStarted"
            } else {
                "Running"
            };
            return Ok(status_reply(&message_id, pending, None));
        }
        let outcome = match state.tenants.get_mut(&tenant) {
            Some(directory) => process(directory, &message.records),
            None => Some(format!("Tenant {tenant} does not exist.")),
        };
        message.outcome = Some(outcome);
    }
    match &message.outcome {
        Some(Some(detail)) => Ok(status_reply(&message_id, "Failed", Some(detail))),
        _ => Ok(status_reply(&message_id, "Completed", None)),
    }
}

/// Applies a message's records to the directory, or says why it cannot.
/// Nothing is applied unless every record is acceptable.
fn process(directory: &mut Tenant, records: &[Record]) -> Option<String> {
    if directory.provisioned != 1 {
        return Some(format!(
            "Partner tenant {} is not provisioned.",
            directory.id
        ));
    }
    for (index, record) in records.iter().enumerate() {
        if directory.user_by_id(record.user_id()).is_none() {
            return Some(format!(
                "Record {index}: UserId {} is not a user in the directory of tenant {}.",
                record.user_id(),
                directory.id
            ));
        }
    }
    for record in records {
        let device = directory.device_mut(record.device_id());
        match record {
            Record::Inventory {
                device_name,
                os_version,
                managed,
                ..
            } => {
                device.display_name.clone_from(device_name);
                device.os_version.clone_from(os_version);
                device.is_managed = *managed;
            }
            Record::Compliance { compliant, .. } => device.is_compliant = *compliant,
        }
    }
    None
}

fn status_reply(message_id: &str, status: &str, detail: Option<&str>) -> Reply {
    let code: Value = if detail.is_some() {
        "400".into()
    } else {
        Value::Null
    };
    let body = json!({
        "MessageId": message_id,
        "Status": status,
        "ErrorCode": code,
        "ErrorDetail": detail,
    });
    Reply::json(200, &body)
}
