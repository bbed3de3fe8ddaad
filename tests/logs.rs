//! Nothing secret reaches the logs at debug level: no API key, Fleet server
//! secret, consent state, Microsoft token or client secret, whether the
//! request succeeds or fails. And what Fleet is not told is still logged.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use compliance_proxy::simulator::Fault;
use serde_json::json;

const DEVICE: &str = "/api/v1/microsoft-compliance-partner/device";
const MESSAGE: &str = "/api/v1/microsoft-compliance-partner/device/message";

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The process's log at debug level. A process has one global subscriber,
/// so the tests share it, and each looks for what its own requests logged.
fn debug_log() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let sink = capture.clone();
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .init();
        capture
    })
}

fn mac_report(tenant: &str, secret: &str) -> serde_json::Value {
    json!({
        "entraTenantId": tenant, "fleetServerSecret": secret,
        "deviceId": new_tenant(), "userPrincipalName": "alex.doe@example.com",
        "deviceName": "Mac", "os": "macOS", "osVersion": "15.3.1", "compliant": true,
        "lastCheckInTime": 1_796_311_486,
    })
}

#[test]
fn a_full_flow_at_debug_level_logs_no_secret() {
    let capture = debug_log();
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let link = env.consent_url(&tenant, &secret);
    let state = TestEnv::state_of(&link);
    assert_eq!(env.follow_consent(&link).status, 302);

    let message = env.post(DEVICE, &mac_report(&tenant, &secret)).json()["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let poll =
        format!("{MESSAGE}?entraTenantId={tenant}&fleetServerSecret={secret}&messageId={message}");
    assert_eq!(env.get(&poll).status, 200);

    // Failures log too: wrong keys and secrets must not be echoed either.
    let near_key = format!("{API_KEY}-near-miss");
    let wrong = env.send("GET", &env.url(&poll), &[("MS-API-Key", &near_key)], None);
    assert_eq!(wrong.status, 401);
    let near_secret = format!("{secret}0");
    let wrong = env.get(&format!(
        "{MESSAGE}?entraTenantId={tenant}&fleetServerSecret={near_secret}&messageId={message}"
    ));
    assert_eq!(wrong.status, 401);
    let replay = env.follow_consent(&link);
    assert_eq!(replay.status, 404);
    let gone = env.delete(&format!(
        "{API}?entraTenantId={tenant}&fleetServerSecret={secret}"
    ));
    assert_eq!(gone.status, 200);

    let tokens: Vec<String> = env
        .sim
        .requests()
        .iter()
        .filter_map(|r| {
            r.header("authorization")
                .map(|h| h.trim_start_matches("Bearer ").to_string())
        })
        .collect();
    assert!(!tokens.is_empty(), "the flow used Microsoft tokens");

    drop(env);
    let logs = capture.text();
    assert!(logs.contains("DEBUG"), "debug logging was on: {logs}");
    assert!(
        logs.contains("admin consent received"),
        "the flow was logged"
    );

    let client_secret = compliance_proxy::simulator::SimConfig::DEFAULT_CLIENT_SECRET;
    let mut secrets = vec![
        ("API key", API_KEY.to_string()),
        ("near-miss API key", near_key),
        ("fleet server secret", secret),
        ("near-miss secret", near_secret),
        ("consent state", state),
        ("client secret", client_secret.to_string()),
    ];
    secrets.extend(tokens.into_iter().map(|t| ("Microsoft token", t)));
    for (what, value) in secrets {
        assert!(
            !logs.contains(&value),
            "the {what} {value:?} is in the logs"
        );
    }
}

/// An upload Microsoft refuses because the integration was deleted during it
/// is answered like unknown credentials (see tests/races.rs); Microsoft's
/// error is not dropped but logged at debug, with the tenant and message.
#[test]
fn an_upload_refused_after_a_delete_logs_microsofts_error_at_debug() {
    let capture = debug_log();
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    let held = Fault::on("PUT", "/DataUploadMessages").delay(Duration::from_millis(1500));
    env.sim.add_fault(held);

    std::thread::scope(|s| {
        let report = s.spawn(|| env.post(DEVICE, &mac_report(&tenant, &secret)));
        wait_until("the upload to be held at Microsoft", || {
            env.sim.arrivals() as usize > env.sim.requests().len()
        });
        let deleted = env.delete(&format!(
            "{API}?entraTenantId={tenant}&fleetServerSecret={secret}"
        ));
        assert_eq!(deleted.status, 200, "{}", deleted.body);
        let report = report.join().unwrap();
        assert_eq!(report.status, 401, "{}", report.body);
    });
    let upload = env
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT" && r.path.contains("/DataUploadMessages"))
        .expect("the upload reached Microsoft");
    drop(env);

    let logs = capture.text();
    let what = "upload failed after its integration was deleted ";
    let line = logs
        .lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no debug line for the refused upload: {logs}"));
    assert!(line.contains(" DEBUG "), "{line}");
    let message_id = upload
        .path
        .split('\'')
        .nth(1)
        .expect("a message id in the path");
    assert_eq!(
        line.split_once(what).unwrap().1,
        format!(
            "tenant={tenant} message_id={message_id} error=uploading the device record failed: \
             Microsoft reported a failure: ErrorCode 403: Partner tenant {tenant} is not \
             provisioned; device data is refused."
        )
    );
}
