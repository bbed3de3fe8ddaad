//! Device data sync: uploads, status polls and their effect on devices.

use super::*;

pub(super) const DEVICE: &str = "d1e2f3a4-0000-4000-8000-00000000d001";
const MESSAGE: &str = "3c0ffee0-0000-4000-8000-000000000001";

pub(super) fn message_url(sim: &Simulator, message: &str) -> String {
    format!(
        "{}/DataUploadMessages(guid'{message}')?api-version=1.2",
        device_sync(sim)
    )
}

/// The two records Fleet sends for one device.
pub(super) fn records(user_id: &str, compliant: bool) -> Value {
    json!([
        {
            "EntityType": 1, "TenantId": TENANT, "DeviceId": DEVICE, "DeviceName": "Alice's Mac",
            "UserId": user_id, "DeviceManagementState": "managed",
            "LastCheckInTime": "2025-05-14T09:59:00Z", "LastUpdateTime": "2025-05-14T10:00:00Z",
            "Os": "macOS", "OsVersion": "15.3.1", "EasIds": [], "State": 0
        },
        {
            "EntityType": 4, "TenantId": TENANT, "DeviceId": DEVICE, "UserId": user_id,
            "LastUpdateTime": "2025-05-14T10:00:00Z",
            "complianceStatus": if compliant { "compliant" } else { "notCompliant" }
        }
    ])
}

/// An upload body with `Content` as a JSON string.
pub(super) fn upload_body(content: &Value) -> Value {
    let content = content.to_string();
    json!({"TenantId": TENANT, "UploadTime": "2025-05-14T10:00:01Z", "Content": content})
}

/// Resolves a user through Graph, so the directory knows its id.
pub(super) async fn known_user(sim: &Simulator) -> String {
    let graph = token(sim, TENANT, GRAPH_SCOPE).await;
    let url = format!("{}/v1.0/users('alice%40example.com')", sim.graph_url());
    authed("GET", &url, &graph, None).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn poll(sim: &Simulator, token: &str, message: &str) -> Value {
    let answer = authed("GET", &message_url(sim, message), token, None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

/// Accepted with 202, pending for two polls, then Completed with the
/// records applied to the directory device; later polls stay Completed.
#[tokio::test]
async fn upload_completes_after_pending_polls() {
    let sim = start().await;
    let intune = provisioned(&sim).await;
    let user = known_user(&sim).await;
    let body = upload_body(&records(&user, true));

    let answer = authed("PUT", &message_url(&sim, MESSAGE), &intune, Some(&body)).await;
    let expected = json!({"TenantId": TENANT, "ErrorCode": "202", "ErrorDetail": null,
                          "MessageId": MESSAGE});
    assert_eq!((answer.status, answer.json()), (200, expected.clone()));
    assert!(!sim.device(TENANT, DEVICE).unwrap().is_compliant);

    let statuses: Vec<Value> = [
        poll(&sim, &intune, MESSAGE).await,
        poll(&sim, &intune, MESSAGE).await,
        poll(&sim, &intune, MESSAGE).await,
        poll(&sim, &intune, MESSAGE).await,
    ]
    .iter()
    .map(|s| s["Status"].clone())
    .collect();
    assert_eq!(
        statuses,
        [
            json!("NotStarted"),
            json!("Running"),
            json!("Completed"),
            json!("Completed")
        ]
    );
    let device = sim.device(TENANT, DEVICE).unwrap();
    assert!(device.is_compliant && device.is_managed);
    assert_eq!(
        (device.display_name.as_str(), device.os_version.as_str()),
        ("Alice's Mac", "15.3.1")
    );

    // The same message id again: the same answer, nothing re-queued.
    let again = authed("PUT", &message_url(&sim, MESSAGE), &intune, Some(&body)).await;
    assert_eq!(again.json(), expected);
    assert_eq!(poll(&sim, &intune, MESSAGE).await["Status"], "Completed");
}

/// A user id the directory never handed out is accepted at upload time and
/// ends `Failed` with a detail naming it; the device is untouched.
#[tokio::test]
async fn unknown_user_fails_when_processed() {
    let config = SimConfig {
        pending_polls: 0,
        ..SimConfig::default()
    };
    let sim = start_with(config).await;
    let intune = provisioned(&sim).await;
    let stranger = "5757a11e-0000-4000-8000-000000000000";
    let body = upload_body(&records(stranger, true));
    let accepted = authed("PUT", &message_url(&sim, MESSAGE), &intune, Some(&body)).await;
    assert_eq!(accepted.json()["ErrorCode"], "202");

    let status = poll(&sim, &intune, MESSAGE).await;
    assert_eq!(status["Status"], "Failed");
    assert!(
        status["ErrorDetail"].as_str().unwrap().contains(stranger),
        "{status}"
    );
    assert!(!sim.device(TENANT, DEVICE).unwrap().is_compliant);
}

/// Structural problems are rejected in-band with ErrorCode 400 and leave
/// no message behind; an array `Content` is also accepted.
#[tokio::test]
async fn invalid_uploads_are_rejected_in_band() {
    let sim = start().await;
    let intune = provisioned(&sim).await;
    let user = known_user(&sim).await;
    let mut wrong_key = records(&user, true);
    let compliance = wrong_key[1].as_object_mut().unwrap();
    compliance.remove("complianceStatus");
    compliance.insert("ComplianceState".to_owned(), json!("compliant"));
    let mut bad_state = records(&user, true);
    bad_state[0]["DeviceManagementState"] = json!("Managed");
    let mut other_tenant = upload_body(&records(&user, true));
    other_tenant["TenantId"] = json!(OTHER_TENANT);

    for body in [
        upload_body(&wrong_key),
        upload_body(&bad_state),
        other_tenant,
        json!({}),
    ] {
        let answer = authed("PUT", &message_url(&sim, MESSAGE), &intune, Some(&body)).await;
        let answer = answer.json();
        assert_eq!(answer["ErrorCode"], "400", "{body}");
        assert!(answer["ErrorDetail"].is_string());
    }
    assert_eq!(
        authed("GET", &message_url(&sim, MESSAGE), &intune, None)
            .await
            .status,
        404
    );

    let as_array = json!({"TenantId": TENANT, "UploadTime": "2025-05-14T10:00:01Z",
                          "Content": records(&user, false)});
    let answer = authed("PUT", &message_url(&sim, MESSAGE), &intune, Some(&as_array)).await;
    assert_eq!(answer.json()["ErrorCode"], "202");
}

/// Before provisioning (or after deprovisioning) uploads are refused
/// in-band; unknown messages and wrong versions are HTTP errors.
#[tokio::test]
async fn uploads_need_a_provisioned_tenant() {
    let sim = start().await;
    let intune = token(&sim, TENANT, INTUNE_SCOPE).await;
    let user = known_user(&sim).await;
    let body = upload_body(&records(&user, true));
    let answer = authed("PUT", &message_url(&sim, MESSAGE), &intune, Some(&body))
        .await
        .json();
    assert_eq!(answer["ErrorCode"], "403");
    assert!(answer["ErrorDetail"].is_string());

    assert_eq!(
        authed("GET", &message_url(&sim, MESSAGE), &intune, None)
            .await
            .status,
        404
    );
    let wrong_version = message_url(&sim, MESSAGE).replace("1.2", "1.6");
    assert_eq!(
        authed("GET", &wrong_version, &intune, None).await.status,
        400
    );
    let bad_key = format!(
        "{}/DataUploadMessages(guid'x')?api-version=1.2",
        device_sync(&sim)
    );
    assert_eq!(authed("GET", &bad_key, &intune, None).await.status, 400);
    assert_eq!(
        authed("DELETE", &message_url(&sim, MESSAGE), &intune, None)
            .await
            .status,
        405
    );
}
