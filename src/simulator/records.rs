//! The body of a `DataUploadMessages` PUT and the device records inside it.
//!
//! Owns the structural checks Microsoft makes when it accepts an upload:
//! field names and types, GUIDs, timestamps, enumerated values, and that
//! every tenant id is the caller's. Whether a record's user exists in the
//! directory is not checked here; that is decided later, when the message is
//! processed (see `device_sync`).

use serde_json::{Map, Value};

use super::request::{check_fields, field, guid_field, str_field, time_field};

/// Fields of an EntityType 1 (device inventory) record.
const INVENTORY_FIELDS: [&str; 12] = [
    "EntityType",
    "TenantId",
    "DeviceId",
    "DeviceName",
    "UserId",
    "DeviceManagementState",
    "LastCheckInTime",
    "LastUpdateTime",
    "Os",
    "OsVersion",
    "EasIds",
    "State",
];

/// Fields of an EntityType 4 (compliance) record.
const COMPLIANCE_FIELDS: [&str; 6] = [
    "EntityType",
    "TenantId",
    "DeviceId",
    "UserId",
    "LastUpdateTime",
    "complianceStatus",
];

/// One validated record of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// EntityType 1.
    Inventory {
        device_id: String,
        user_id: String,
        device_name: String,
        os_version: String,
        managed: bool,
    },
    /// EntityType 4.
    Compliance {
        device_id: String,
        user_id: String,
        compliant: bool,
    },
}

impl Record {
    pub(crate) fn device_id(&self) -> &str {
        match self {
            Record::Inventory { device_id, .. } | Record::Compliance { device_id, .. } => device_id,
        }
    }

    pub(crate) fn user_id(&self) -> &str {
        match self {
            Record::Inventory { user_id, .. } | Record::Compliance { user_id, .. } => user_id,
        }
    }
}

/// Validates an upload body for `tenant` and returns its records, or the
/// `ErrorDetail` of an in-band rejection.
pub(crate) fn read_upload(body: &Map<String, Value>, tenant: &str) -> Result<Vec<Record>, String> {
    check_fields(
        body,
        &["TenantId", "UploadTime", "Content"],
        &["TenantId", "UploadTime", "Content"],
    )?;
    let body_tenant = guid_field(body, "TenantId")?;
    if body_tenant != tenant {
        return Err(format!(
            "TenantId {body_tenant} does not match the caller's tenant {tenant}."
        ));
    }
    time_field(body, "UploadTime")?;
    let records = match field(body, "Content") {
        // The documented form: the record array serialized into a string.
        Value::String(text) => serde_json::from_str::<Value>(text)
            .map_err(|err| format!("Content is not a JSON document: {err}."))?,
        // Older partners sent the array itself; Microsoft accepts both.
        array @ Value::Array(_) => array.clone(),
        other => {
            return Err(format!(
                "Content must be a string or an array, not {other}."
            ));
        }
    };
    let Value::Array(records) = records else {
        return Err("Content must hold a JSON array of records.".to_owned());
    };
    if records.is_empty() {
        return Err("Content holds no records.".to_owned());
    }
    records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            read_record(record, tenant).map_err(|text| format!("Record {index}: {text}"))
        })
        .collect()
}

fn read_record(record: &Value, tenant: &str) -> Result<Record, String> {
    let Value::Object(record) = record else {
        return Err("A record must be a JSON object.".to_owned());
    };
    let entity_type = match record.get("EntityType") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(other) => return Err(format!("EntityType must be a number, not {other}.")),
        None => return Err("The property 'EntityType' is required.".to_owned()),
    };
    let fields: &[&str] = match entity_type {
        Some(1) => &INVENTORY_FIELDS,
        Some(4) => &COMPLIANCE_FIELDS,
        _ => {
            return Err(format!(
                "EntityType {} is not supported.",
                field(record, "EntityType")
            ));
        }
    };
    check_fields(record, fields, fields)?;
    let record_tenant = guid_field(record, "TenantId")?;
    if record_tenant != tenant {
        return Err(format!(
            "TenantId {record_tenant} is not the caller's tenant {tenant}."
        ));
    }
    let device_id = guid_field(record, "DeviceId")?;
    let user_id = guid_field(record, "UserId")?;
    time_field(record, "LastUpdateTime")?;
    if entity_type == Some(4) {
        let compliant = match str_field(record, "complianceStatus")? {
            "compliant" => true,
            "notCompliant" => false,
            other => return Err(format!("complianceStatus '{other}' is not a known value.")),
        };
        return Ok(Record::Compliance {
            device_id,
            user_id,
            compliant,
        });
    }
    read_inventory(record, device_id, user_id)
}

/// The EntityType 1 fields beyond those every record has.
fn read_inventory(
    record: &Map<String, Value>,
    device_id: String,
    user_id: String,
) -> Result<Record, String> {
    let managed = match str_field(record, "DeviceManagementState")? {
        "managed" => true,
        "notManaged" => false,
        other => {
            return Err(format!(
                "DeviceManagementState '{other}' is not a known value."
            ));
        }
    };
    time_field(record, "LastCheckInTime")?;
    str_field(record, "Os")?;
    match field(record, "EasIds") {
        Value::Array(ids) if ids.iter().all(Value::is_string) => {}
        other => return Err(format!("EasIds must be an array of strings, not {other}.")),
    }
    if !field(record, "State").is_u64() {
        return Err(format!(
            "State must be a non-negative integer, not {}.",
            field(record, "State")
        ));
    }
    Ok(Record::Inventory {
        device_id,
        user_id,
        device_name: str_field(record, "DeviceName")?.to_owned(),
        os_version: str_field(record, "OsVersion")?.to_owned(),
        managed,
    })
}
