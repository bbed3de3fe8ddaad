//! Nothing secret reaches the logs at debug level: no API key, Fleet server
//! secret, consent state, Microsoft token or client secret, whether the
//! request succeeds or fails.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
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

#[test]
fn a_full_flow_at_debug_level_logs_no_secret() {
    let capture = Capture::default();
    let sink = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .init();

    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let link = env.consent_url(&tenant, &secret);
    let state = TestEnv::state_of(&link);
    assert_eq!(env.follow_consent(&link).status, 302);

    let report = json!({
        "entraTenantId": tenant, "fleetServerSecret": secret,
        "deviceId": new_tenant(), "userPrincipalName": "alex.doe@example.com",
        "deviceName": "Mac", "os": "macOS", "osVersion": "15.3.1", "compliant": true,
        "lastCheckInTime": 1_796_311_486,
    });
    let message = env.post(DEVICE, &report).json()["message_id"]
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
