//! Fleet's Go client, byte for byte: each captured request in
//! `tests/fixtures/fleet-client-wire/` is replayed over a raw TCP connection,
//! with only the tenant id, secret and message id swapped for the test's own
//! and the chunk size or `Content-Length` fixed to match. Each must get HTTP
//! 200 and the JSON the Go client unmarshals.

mod common;

use common::*;
use serde_json::Value;

const FIXTURE_TENANT: &str = "6f1c2b3a-8d4e-4c5f-9a7b-2e1d0c9b8a76";
const FIXTURE_SECRET: &str = "3fa9c1d27be04e8a9c5d1f20b7e6a4c3";
const FIXTURE_MESSAGE: &str = "4d6c1d8e-0d1e-4f55-9a0b-3a2f3c1b9e77";

/// A captured request with the ids replaced and its framing recomputed.
fn fixture(name: &str, swaps: &[(&str, &str)]) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/fleet-client-wire/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let swap = |text: &str| {
        swaps
            .iter()
            .fold(text.to_string(), |t, (from, to)| t.replace(from, to))
    };

    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let head = swap(head);
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        assert!(body.is_empty(), "{name}: only chunked bodies are captured");
        return format!("{head}\r\n\r\n").into_bytes();
    }

    // Decode the chunks, swap ids in the payload, and re-chunk it.
    let mut payload = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            break;
        }
        payload.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    let payload = swap(&payload);
    format!(
        "{head}\r\n\r\n{:x}\r\n{payload}\r\n0\r\n\r\n",
        payload.len()
    )
    .into_bytes()
}

fn json_200(env: &TestEnv, name: &str, request: &[u8]) -> Value {
    let (status, body) = env.raw(request);
    assert_eq!(status, 200, "{name}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{name}: {e}: {body}"))
}

fn string(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {value}"))
        .to_string()
}

#[test]
fn every_captured_fleet_request_gets_200_and_the_json_the_go_client_reads() {
    let env = TestEnv::start();
    let tenant = new_tenant();

    let created = json_200(
        &env,
        "create",
        &fixture("create.http", &[(FIXTURE_TENANT, &tenant)]),
    );
    assert_eq!(string(&created, "entra_tenant_id"), tenant);
    let secret = string(&created, "fleet_server_secret");
    let ids = [
        (FIXTURE_TENANT, tenant.as_str()),
        (FIXTURE_SECRET, secret.as_str()),
    ];

    let settings = json_200(&env, "settings", &fixture("settings.http", &ids));
    assert_eq!(settings["setup_done"], false);
    assert!(settings["setup_error"].is_null(), "{settings}");
    let consent = string(&settings, "admin_consent_url");

    // The admin consents in a browser; then the integration is set up.
    assert_eq!(env.follow_consent(&consent).status, 302);
    let settings = json_200(&env, "settings", &fixture("settings.http", &ids));
    assert_eq!(settings["setup_done"], true, "{settings}");

    let reported = json_200(&env, "device", &fixture("device.http", &ids));
    let message = string(&reported, "message_id");
    let with_message = [ids[0], ids[1], (FIXTURE_MESSAGE, message.as_str())];
    let status = json_200(&env, "message", &fixture("message.http", &with_message));
    assert_eq!(string(&status, "message_id"), message);
    assert_eq!(string(&status, "status"), "NotStarted");
    assert!(status["detail"].is_null(), "{status}");

    let deleted = json_200(&env, "delete", &fixture("delete.http", &ids));
    assert_eq!(deleted, serde_json::json!({}));
    assert_eq!(env.db_count("SELECT COUNT(*) FROM integrations"), 0);
}
