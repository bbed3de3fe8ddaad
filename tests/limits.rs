//! The limits that keep one client (or many) from tying the service up:
//! header read timeout, request timeout, connection cap, pending cap and age,
//! and the bounds on the text a device report passes on to Microsoft.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use compliance_proxy::simulator::Fault;
use serde_json::json;

const DEVICE: &str = "/api/v1/microsoft-compliance-partner/device";

#[test]
fn a_client_sending_headers_byte_by_byte_is_cut_off_while_others_are_served() {
    let env = TestEnv::start(); // header timeout: 2 s
    let mut slow = TcpStream::connect(env.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();

    let request =
        b"GET /healthz HTTP/1.1\r\nHost: proxy\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut_off = false;
    for (i, byte) in request.iter().cycle().take(200).enumerate() {
        if slow.write_all(&[*byte]).is_err() {
            cut_off = true;
            break;
        }
        if i % 10 == 5 {
            // Meanwhile, a well-behaved client is served at once.
            let reply = env.send("GET", &env.url("/healthz"), &[], None);
            assert_eq!(reply.status, 200);
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }

    // The server closed the connection without answering.
    let mut answer = Vec::new();
    let read = slow.read_to_end(&mut answer);
    assert!(cut_off || read.is_ok(), "{read:?}");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900),
        "cut off too early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(15),
        "not cut off: {elapsed:?}"
    );
}

#[test]
fn a_body_that_stops_arriving_gets_408() {
    let env = TestEnv::start(); // header (and body) timeout: 2 s
    let request = format!(
        "POST {API} HTTP/1.1\r\nHost: proxy\r\nMS-API-Key: {API_KEY}\r\nOrigin: {ORIGIN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"entraTenant"
    );
    let started = Instant::now();
    let (status, body) = env.raw(request.as_bytes());
    assert_eq!(status, 408, "{body}");
    assert_eq!(
        body,
        r#"{"error":"the request body did not arrive within 2s"}"#
    );
    assert!(started.elapsed() >= Duration::from_millis(1900));
}

#[test]
fn a_request_that_takes_too_long_gets_503() {
    let env = TestEnv::start_with(|c| c.limits.request_timeout = Duration::from_secs(1));
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    env.sim
        .add_fault(Fault::on("PUT", "/DataUploadMessages").delay(Duration::from_secs(3)));

    let reply = env.post(
        "/api/v1/microsoft-compliance-partner/device",
        &json!({
            "entraTenantId": tenant, "fleetServerSecret": secret, "deviceId": new_tenant(),
            "userPrincipalName": "a@example.com", "deviceName": "Mac", "os": "macOS",
            "osVersion": "15", "compliant": true, "lastCheckInTime": 1,
        }),
    );
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(
        reply.error(),
        "the request did not finish within 1s; what it started goes on, and a retry will see \
         its outcome"
    );
}

#[test]
fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let env = TestEnv::start_with(|c| c.limits.max_connections = 1);

    // An idle connection holds the only slot until the header timeout (2 s).
    let _idle = TcpStream::connect(env.addr).unwrap();
    let started = Instant::now();
    let reply = env.send("GET", &env.url("/healthz"), &[], None);
    assert_eq!(reply.status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn pending_integrations_are_capped() {
    let env = TestEnv::start_with(|c| c.setup.max_pending = 2);
    env.set_up(&new_tenant()); // finished setups never count
    let first = new_tenant();
    env.create(&first);
    env.create(&new_tenant());

    let third = env.post(API, &json!({ "entraTenantId": new_tenant() }));
    assert_eq!(third.status, 503, "{}", third.body);
    assert_eq!(
        third.error(),
        "too many integrations are waiting for admin consent; try again later"
    );
    assert_eq!(third.header("retry-after"), Some("3600"));
    assert_eq!(env.db_count("SELECT COUNT(*) FROM integrations"), 3);

    // Re-registering a pending tenant replaces it, so it stays within the cap.
    env.create(&first);
    assert_eq!(
        env.db_count("SELECT COUNT(*) FROM integrations WHERE setup_done = 0"),
        2
    );
}

#[test]
fn an_expired_integration_waiting_to_be_deprovisioned_is_not_counted_as_pending() {
    let env = TestEnv::start_with(|c| c.setup.max_pending = 1);
    let stale = new_tenant();
    let secret = env.create(&stale);
    let link = env.consent_url(&stale, &secret);
    env.sim.remove_group(&stale, GROUP);
    assert_eq!(
        env.follow_consent(&link).status,
        302,
        "setup failed, tenant provisioned"
    );
    env.age_integration(&stale, 8);

    env.create(&new_tenant());
    assert_eq!(env.db_count("SELECT COUNT(*) FROM integrations"), 2);
}

#[test]
fn pending_integrations_expire() {
    let env = TestEnv::start_with(|c| c.setup.max_pending = 1);
    let old = new_tenant();
    let secret = env.create(&old);

    // Age the pending row past the 7-day default.
    env.age_integration(&old, 8);

    assert_eq!(
        env.settings(&old, &secret).status,
        404,
        "expired rows are gone for Fleet"
    );
    let fresh = new_tenant();
    env.create(&fresh); // the expired row no longer counts, and is deleted
    assert_eq!(env.db_count("SELECT COUNT(*) FROM integrations"), 1);
    assert_eq!(
        env.db_count(&format!(
            "SELECT COUNT(*) FROM integrations WHERE tenant_id = '{fresh}'"
        )),
        1
    );
}

/// Text at its bound still reaches Microsoft, both paths: a user principal
/// name of 4-byte characters is the longest Graph URL the proxy can build
/// (before the bound, a longer one failed as a 502 "malformed HTTP answer").
#[test]
fn device_text_at_its_bounds_reaches_microsoft() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    let upn = format!("{}@abc", "\u{1F600}".repeat(255));
    assert_eq!(upn.len(), 1024);
    let name = "\u{e9}".repeat(512);
    let report = |device: &str, os: String| {
        json!({
            "entraTenantId": tenant, "fleetServerSecret": secret, "deviceId": device,
            "userPrincipalName": upn, "deviceName": name, "os": os,
            "osVersion": "9".repeat(256), "compliant": true, "lastCheckInTime": 1_796_311_486,
        })
    };

    let mac = env.post(DEVICE, &report(&new_tenant(), "m".repeat(256)));
    assert_eq!(mac.status, 200, "{}", mac.body);
    let lookup = env
        .sim
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/v1.0/users("))
        .expect("the user was looked up");
    assert_eq!(lookup.status, 200);
    assert!(lookup.path.len() > 3 * 1020, "{}", lookup.path.len());

    let windows = new_tenant();
    let reply = env.post(DEVICE, &report(&windows, "windows".into()));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let device = env
        .sim
        .device(&tenant, &windows)
        .expect("Entra has the device");
    assert_eq!(device.display_name, name);
}
