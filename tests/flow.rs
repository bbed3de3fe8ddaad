//! The whole Fleet ↔ Microsoft flow, end to end, as Fleet servers drive it.

mod common;

use common::*;
use serde_json::json;

const DEVICE: &str = "/api/v1/microsoft-compliance-partner/device";
const MESSAGE: &str = "/api/v1/microsoft-compliance-partner/device/message";

fn mac_report(tenant: &str, secret: &str, device: &str, compliant: bool) -> serde_json::Value {
    json!({
        "entraTenantId": tenant,
        "fleetServerSecret": secret,
        "deviceId": device,
        "userPrincipalName": "alex.doe@example.com",
        "deviceManagementState": true,
        "deviceName": "Alex's MacBook Pro",
        "os": "macOS",
        "osVersion": "15.3.1",
        "compliant": compliant,
        "lastCheckInTime": 1_796_311_486,
    })
}

fn poll(env: &TestEnv, tenant: &str, secret: &str, message: &str) -> serde_json::Value {
    let reply = env.get(&format!(
        "{MESSAGE}?entraTenantId={tenant}&fleetServerSecret={secret}&messageId={message}"
    ));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

#[test]
fn setup_provisions_the_tenant_and_assigns_our_policy_to_the_group() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);

    let settings = env.settings(&tenant, &secret).json();
    assert_eq!(
        settings,
        json!({
            "entra_tenant_id": tenant,
            "setup_done": true,
            "admin_consented": true,
            "setup_error": null,
        })
    );

    let state = env
        .sim
        .tenant(&tenant)
        .expect("the simulator saw the tenant");
    assert_eq!(state.provisioned, 1);
    let base = env.url("");
    assert_eq!(
        state.enrollment_url.as_deref(),
        Some(format!("{base}/microsoft-compliance-partner/enroll").as_str())
    );
    let ours: Vec<_> = state.policies.iter().filter(|p| !p.other_partner).collect();
    assert_eq!(ours.len(), 1, "{:?}", state.policies);
    assert_eq!(ours[0].display_name, "Fleet compliance policy");
    assert_eq!(ours[0].platform, "macOS");
    let group = state
        .groups
        .iter()
        .find(|g| g.display_name == GROUP)
        .unwrap();
    assert_eq!(ours[0].assigned_groups, vec![group.id.clone()]);

    let stored_policy: String = env
        .db()
        .query_row(
            "SELECT policy_id FROM integrations WHERE tenant_id = ?1",
            [&tenant],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored_policy, ours[0].id);
}

#[test]
fn macos_report_is_polled_from_not_started_to_completed() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    let device = new_tenant();

    let reply = env.post(DEVICE, &mac_report(&tenant, &secret, &device, true));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let message = reply.json()["message_id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&message).is_ok(), "{message}");

    // The simulator answers two pending polls before the outcome.
    let statuses: Vec<String> = (0..3)
        .map(|_| {
            poll(&env, &tenant, &secret, &message)["status"]
                .as_str()
                .unwrap()
                .into()
        })
        .collect();
    assert_eq!(statuses, ["NotStarted", "Running", "Completed"]);

    let done = poll(&env, &tenant, &secret, &message);
    assert_eq!(
        done,
        json!({"message_id": message, "status": "Completed", "detail": null})
    );

    let state = env
        .sim
        .device(&tenant, &device)
        .expect("Entra has the device");
    assert!(state.is_compliant && state.is_managed, "{state:?}");

    // A terminal status is answered from the database: no further polls.
    let polls = env.sim.count("GET", "/DataUploadMessages");
    poll(&env, &tenant, &secret, &message);
    assert_eq!(env.sim.count("GET", "/DataUploadMessages"), polls);
}

#[test]
fn failed_upload_reports_microsofts_detail() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);

    // A user id Entra never handed out: Intune accepts the upload, then fails it.
    let mut report = mac_report(&tenant, &secret, &new_tenant(), false);
    report["userId"] = json!(new_tenant());
    let reply = env.post(DEVICE, &report);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let message = reply.json()["message_id"].as_str().unwrap().to_string();

    let last = (0..3)
        .map(|_| poll(&env, &tenant, &secret, &message))
        .last()
        .unwrap();
    assert_eq!(last["status"], "Failed");
    let detail = last["detail"]
        .as_str()
        .expect("a detail for a failed upload");
    assert!(detail.contains("user"), "{detail}");

    let stored: (String, String) = env
        .db()
        .query_row(
            "SELECT status, detail FROM messages WHERE message_id = ?1",
            [&message],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(stored, ("Failed".to_string(), detail.to_string()));
}

#[test]
fn windows_report_updates_the_device_and_is_completed_at_once() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    let device = new_tenant();

    let mut report = mac_report(&tenant, &secret, &device, false);
    report["os"] = json!("windows");
    report["osVersion"] = json!("10.0.19045.6456");
    report["deviceName"] = json!("DESKTOP-1");
    report["deviceManagementState"] = json!(false);
    let reply = env.post(DEVICE, &report);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let message = reply.json()["message_id"].as_str().unwrap().to_string();

    let state = env
        .sim
        .device(&tenant, &device)
        .expect("Entra has the device");
    assert_eq!(state.display_name, "DESKTOP-1");
    assert_eq!(state.os_version, "10.0.19045.6456");
    assert!(!state.is_compliant && !state.is_managed, "{state:?}");
    assert_eq!(env.sim.count("PUT", "/DataUploadMessages"), 0);

    let polls = env.sim.count("GET", "/DataUploadMessages");
    let status = poll(&env, &tenant, &secret, &message);
    assert_eq!(
        status,
        json!({"message_id": message, "status": "Completed", "detail": null})
    );
    assert_eq!(env.sim.count("GET", "/DataUploadMessages"), polls);
}

/// `os` is trimmed before anything looks at it: a padded "windows" takes
/// the Windows path, and a padded "macOS" reaches Intune's inventory bare.
#[test]
fn whitespace_around_os_is_trimmed() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);

    let windows = new_tenant();
    let mut report = mac_report(&tenant, &secret, &windows, true);
    report["os"] = json!(" Windows\t");
    let reply = env.post(DEVICE, &report);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(env.sim.device(&tenant, &windows).is_some());
    assert_eq!(env.sim.count("PUT", "/DataUploadMessages"), 0);

    let mut report = mac_report(&tenant, &secret, &new_tenant(), true);
    report["os"] = json!("  macOS ");
    let reply = env.post(DEVICE, &report);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let upload = env
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT" && r.path.contains("/DataUploadMessages"))
        .expect("the Mac was uploaded");
    let body: serde_json::Value = serde_json::from_str(&upload.body).unwrap();
    let content: serde_json::Value =
        serde_json::from_str(body["Content"].as_str().unwrap()).unwrap();
    assert!(content.to_string().contains(r#""Os":"macOS""#), "{content}");
}

#[test]
fn delete_deprovisions_and_removes_the_integration_and_its_messages() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    let reply = env.post(DEVICE, &mac_report(&tenant, &secret, &new_tenant(), true));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(env.db_count("SELECT COUNT(*) FROM messages"), 1);

    let reply = env.delete(&format!(
        "{API}?entraTenantId={tenant}&fleetServerSecret={secret}"
    ));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), json!({}));
    assert_eq!(env.sim.tenant(&tenant).unwrap().provisioned, 2);
    assert_eq!(env.db_count("SELECT COUNT(*) FROM integrations"), 0);
    assert_eq!(env.db_count("SELECT COUNT(*) FROM messages"), 0);

    // Fleet treats 404 as "already gone" and cleans up locally.
    let again = env.delete(&format!(
        "{API}?entraTenantId={tenant}&fleetServerSecret={secret}"
    ));
    assert_eq!(again.status, 404);
}

#[test]
fn snake_case_camel_case_query_and_body_spellings_are_all_accepted() {
    let env = TestEnv::start();

    // create: snake_case in a JSON body, and camelCase in the query alone.
    let a = new_tenant();
    let reply = env.post(API, &json!({ "entra_tenant_id": a }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let secret_a = reply.json()["fleet_server_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let b = new_tenant();
    let reply = env.send(
        "POST",
        &env.url(&format!("{API}?entraTenantId={b}")),
        &[("MS-API-Key", API_KEY), ("Origin", ORIGIN)],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    // settings: snake_case and the old `ID` spelling in the query.
    for query in [
        format!("entra_tenant_id={a}&fleet_server_secret={secret_a}"),
        format!("entraTenantID={a}&fleetServerSecret={secret_a}"),
    ] {
        let reply = env.get(&format!("{API}/settings?{query}"));
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
        assert_eq!(reply.json()["entra_tenant_id"], a.as_str());
    }

    // device: snake_case body, with a form-encoded variant too.
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    let device = new_tenant();
    let snake = json!({
        "entra_tenant_id": tenant, "fleet_server_secret": secret, "device_id": device,
        "user_principal_name": "sam@example.com", "device_management_state": true,
        "device_name": "Sam's Mac", "os": "macOS", "os_version": "14.6",
        "compliant": true, "last_check_in_time": 1_796_311_486,
    });
    let reply = env.post(DEVICE, &snake);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let message = reply.json()["message_id"].as_str().unwrap().to_string();

    let form = format!(
        "entraTenantId={tenant}&fleetServerSecret={secret}&deviceId={device}\
         &userPrincipalName=sam%40example.com&deviceName=Sam%27s+Mac&os=macOS&osVersion=14.6\
         &compliant=true&lastCheckInTime=1796311486"
    );
    let reply = env.send(
        "POST",
        &env.url(DEVICE),
        &[
            ("MS-API-Key", API_KEY),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(&form),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    // message: snake_case and `ID` spellings; delete with a JSON body.
    for key in ["message_id", "messageID"] {
        let reply = env.get(&format!(
            "{MESSAGE}?entra_tenant_id={tenant}&fleet_server_secret={secret}&{key}={message}"
        ));
        assert_eq!(reply.status, 200, "{key}: {}", reply.body);
        assert_eq!(reply.json()["message_id"], message.as_str());
    }
    let body = json!({ "entra_tenant_id": a, "fleet_server_secret": secret_a }).to_string();
    let reply = env.send(
        "DELETE",
        &env.url(API),
        &[
            ("Authorization", &format!("Bearer {API_KEY}")),
            ("Content-Type", "application/json"),
        ],
        Some(&body),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn integrations_and_messages_survive_a_restart() {
    let mut env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    let pending = new_tenant();
    let pending_secret = env.create(&pending);
    let consent_before = env.consent_url(&pending, &pending_secret);
    let reply = env.post(DEVICE, &mac_report(&tenant, &secret, &new_tenant(), true));
    let message = reply.json()["message_id"].as_str().unwrap().to_string();
    assert_eq!(
        poll(&env, &tenant, &secret, &message)["status"],
        "NotStarted"
    );

    env.restart();

    let settings = env.settings(&tenant, &secret).json();
    assert_eq!(settings["setup_done"], true);
    // The pending integration keeps its consent state across the restart
    // (only the port in redirect_uri changed, since the server was rebound).
    let consent_after = env.consent_url(&pending, &pending_secret);
    assert_eq!(
        TestEnv::state_of(&consent_before),
        TestEnv::state_of(&consent_after)
    );
    let statuses: Vec<String> = (0..2)
        .map(|_| {
            poll(&env, &tenant, &secret, &message)["status"]
                .as_str()
                .unwrap()
                .into()
        })
        .collect();
    assert_eq!(statuses, ["Running", "Completed"]);
    assert_eq!(env.db_count("SELECT COUNT(*) FROM integrations"), 2);
}

#[test]
fn heartbeat_command_beats_for_every_set_up_tenant() {
    let env = TestEnv::start();
    let tenants: Vec<String> = (0..3).map(|_| new_tenant()).collect();
    for tenant in &tenants {
        env.set_up(tenant);
    }
    let pending = new_tenant();
    env.create(&pending);
    let never: i64 =
        env.db_count("SELECT COUNT(*) FROM integrations WHERE last_heartbeat_at IS NULL");
    assert_eq!(never, 4);

    let output = env
        .command(&["heartbeat"])
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("heartbeat round finished"), "{log}");

    for tenant in &tenants {
        assert_eq!(
            env.sim.tenant(tenant).unwrap().heartbeats.len(),
            1,
            "{tenant}"
        );
        let (at, error): (Option<i64>, Option<String>) = env
            .db()
            .query_row(
                "SELECT last_heartbeat_at, last_heartbeat_error FROM integrations \
                 WHERE tenant_id = ?1",
                [tenant],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!(
            at.is_some_and(|at| (now - at).abs() < 120),
            "{tenant}: {at:?}"
        );
        assert_eq!(error, None);
    }
    assert!(
        env.sim
            .tenant(&pending)
            .is_none_or(|t| t.heartbeats.is_empty())
    );
}

#[test]
fn heartbeat_command_exits_non_zero_when_a_tenant_fails_and_beats_the_others() {
    let env = TestEnv::start();
    let good = new_tenant();
    let bad = new_tenant();
    env.set_up(&good);
    env.set_up(&bad);
    env.sim.revoke_consent(&bad);

    let output = env
        .command(&["heartbeat"])
        .output()
        .expect("the binary runs");
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(env.sim.tenant(&good).unwrap().heartbeats.len(), 1);

    let error: Option<String> = env
        .db()
        .query_row(
            "SELECT last_heartbeat_error FROM integrations WHERE tenant_id = ?1",
            [&bad],
            |r| r.get(0),
        )
        .unwrap();
    let error = error.expect("the failure is stored");
    assert!(error.contains("not consented"), "{error}");
}
