//! Bad input on every endpoint: each case gets its exact status and error
//! text, and the database is unchanged afterwards.

mod common;

use common::*;
use serde_json::json;

const SETTINGS: &str = "/api/v1/microsoft-compliance-partner/settings";
const DEVICE: &str = "/api/v1/microsoft-compliance-partner/device";
const MESSAGE: &str = "/api/v1/microsoft-compliance-partner/device/message";
const NOT_A_GUID: &str = "is not a GUID (expected the form 6f1c2b3a-8d4e-4c5f-9a7b-2e1d0c9b8a76)";

/// One request and what it must be answered with.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
    status: u16,
    error: String,
}

fn key() -> (&'static str, String) {
    ("MS-API-Key", API_KEY.to_string())
}

fn json_body() -> (&'static str, String) {
    ("Content-Type", "application/json".to_string())
}

fn origin() -> (&'static str, String) {
    ("Origin", ORIGIN.to_string())
}

fn run(env: &TestEnv, cases: Vec<Case>) {
    for case in cases {
        let before = env.db_snapshot();
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let reply = env.send(
            case.method,
            &env.url(&case.path),
            &headers,
            case.body.as_deref(),
        );
        assert_eq!(reply.status, case.status, "{}: {}", case.name, reply.body);
        assert_eq!(reply.error(), case.error, "{}", case.name);
        let challenge =
            (case.error.contains("API key")).then_some(r#"Bearer realm="compliance-proxy""#);
        assert_eq!(reply.header("www-authenticate"), challenge, "{}", case.name);
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{}",
            case.name
        );
        assert_eq!(
            env.db_snapshot(),
            before,
            "{} changed the database",
            case.name
        );
    }
}

#[test]
fn create_refuses_bad_input() {
    let env = TestEnv::start();
    let done = new_tenant();
    env.set_up(&done);
    let tenant = new_tenant();
    let body = |v: serde_json::Value| Some(v.to_string());
    let post = |name, headers, body, status, error: &str| Case {
        name,
        method: "POST",
        path: API.to_string(),
        headers,
        body,
        status,
        error: error.to_string(),
    };

    run(
        &env,
        vec![
            post(
                "no API key",
                vec![origin(), json_body()],
                body(json!({"entraTenantId": tenant})),
                401,
                "an API key is required (header MS-API-Key or Authorization: Bearer)",
            ),
            post(
                "wrong API key",
                vec![("MS-API-Key", "wrong".into()), origin(), json_body()],
                body(json!({"entraTenantId": tenant})),
                401,
                "the API key is not valid",
            ),
            post(
                "API key prefix",
                vec![("MS-API-Key", API_KEY[..10].into()), origin(), json_body()],
                body(json!({"entraTenantId": tenant})),
                401,
                "the API key is not valid",
            ),
            post(
                "wrong bearer",
                vec![
                    ("Authorization", "Bearer nope".into()),
                    origin(),
                    json_body(),
                ],
                body(json!({"entraTenantId": tenant})),
                401,
                "the API key is not valid",
            ),
            post(
                "no Origin",
                vec![key(), json_body()],
                body(json!({"entraTenantId": tenant})),
                400,
                "the Origin header is missing; it must be the Fleet server's URL",
            ),
            post(
                "Origin with a path",
                vec![
                    key(),
                    ("Origin", "https://fleet.example.com/x".into()),
                    json_body(),
                ],
                body(json!({"entraTenantId": tenant})),
                400,
                "the Origin header is not a Fleet server URL: a path is not allowed \
             (only scheme, host and port)",
            ),
            post(
                "javascript Origin",
                vec![key(), ("Origin", "javascript:alert(1)".into()), json_body()],
                body(json!({"entraTenantId": tenant})),
                400,
                "the Origin header is not a Fleet server URL: the scheme must be http or https",
            ),
            post(
                "no tenant",
                vec![key(), origin(), json_body()],
                body(json!({})),
                400,
                "entraTenantId is missing",
            ),
            post(
                "empty tenant",
                vec![key(), origin(), json_body()],
                body(json!({"entraTenantId": ""})),
                400,
                "entraTenantId is missing",
            ),
            post(
                "tenant not a GUID",
                vec![key(), origin(), json_body()],
                body(json!({"entraTenantId": "contoso.onmicrosoft.com"})),
                400,
                &format!("entraTenantId {NOT_A_GUID}"),
            ),
            post(
                "one key twice, different values",
                vec![key(), origin(), json_body()],
                Some(format!(
                    r#"{{"entraTenantId":"{tenant}","entraTenantId":"{}"}}"#,
                    new_tenant()
                )),
                400,
                "entraTenantId is given more than once with different values",
            ),
            post(
                "tenant the nil GUID",
                vec![key(), origin(), json_body()],
                body(json!({"entraTenantId": "00000000-0000-0000-0000-000000000000"})),
                400,
                "entraTenantId is the all-zero GUID, which names nothing",
            ),
            post(
                "tenant a number",
                vec![key(), origin(), json_body()],
                body(json!({"entraTenantId": 7})),
                400,
                "entraTenantId must be a string",
            ),
            post(
                "malformed JSON",
                vec![key(), origin(), json_body()],
                Some("{\"entraTenantId\":".into()),
                400,
                "the body is not valid JSON: EOF while parsing a value at line 1 column 17",
            ),
            post(
                "JSON array",
                vec![key(), origin(), json_body()],
                Some("[]".into()),
                400,
                "the body must be a JSON object",
            ),
            post(
                "XML",
                vec![key(), origin(), ("Content-Type", "application/xml".into())],
                Some("<x/>".into()),
                400,
                "unsupported content type \"application/xml\"; send application/json",
            ),
            post(
                "gzip body",
                vec![
                    key(),
                    origin(),
                    json_body(),
                    ("Content-Encoding", "gzip".into()),
                ],
                body(json!({"entraTenantId": tenant})),
                415,
                "Content-Encoding gzip is not supported; send the body uncompressed",
            ),
            post(
                "a coding after identity",
                vec![
                    key(),
                    origin(),
                    json_body(),
                    ("Content-Encoding", "identity, BR".into()),
                ],
                body(json!({"entraTenantId": tenant})),
                415,
                "Content-Encoding BR is not supported; send the body uncompressed",
            ),
            post(
                "too large",
                vec![key(), origin(), json_body()],
                Some(format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000))),
                413,
                "the request body is larger than the limit of 65536 bytes",
            ),
            post(
                "already set up",
                vec![key(), origin(), json_body()],
                body(json!({"entraTenantId": done})),
                409,
                &format!("an integration for tenant {done} is already set up; delete it first"),
            ),
        ],
    );
}

#[test]
fn settings_and_delete_refuse_bad_credentials_with_404() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let unknown = new_tenant();
    let mut cases = Vec::new();
    for (method, path) in [("GET", SETTINGS), ("DELETE", API)] {
        let case = |name, query: String, headers, status, error: &str| Case {
            name,
            method,
            path: format!("{path}?{query}"),
            headers,
            body: None,
            status,
            error: error.to_string(),
        };
        cases.extend([
            case(
                "no API key",
                format!("entraTenantId={tenant}&fleetServerSecret={secret}"),
                vec![],
                401,
                "an API key is required (header MS-API-Key or Authorization: Bearer)",
            ),
            case(
                "wrong secret",
                format!("entraTenantId={tenant}&fleetServerSecret=x{secret}"),
                vec![key()],
                404,
                "no integration with this tenant id and secret",
            ),
            case(
                "unknown tenant",
                format!("entraTenantId={unknown}&fleetServerSecret={secret}"),
                vec![key()],
                404,
                "no integration with this tenant id and secret",
            ),
            case(
                "no secret",
                format!("entraTenantId={tenant}"),
                vec![key()],
                400,
                "fleetServerSecret is missing",
            ),
            case(
                "empty secret",
                format!("entraTenantId={tenant}&fleetServerSecret="),
                vec![key()],
                400,
                "fleetServerSecret is missing",
            ),
            case(
                "no tenant",
                format!("fleetServerSecret={secret}"),
                vec![key()],
                400,
                "entraTenantId is missing",
            ),
            case(
                "tenant not a GUID",
                format!("entraTenantId=x&fleetServerSecret={secret}"),
                vec![key()],
                400,
                &format!("entraTenantId {NOT_A_GUID}"),
            ),
            case(
                "two tenants",
                format!(
                    "entraTenantId={tenant}&entra_tenant_id={unknown}&fleetServerSecret={secret}"
                ),
                vec![key()],
                400,
                "entraTenantId is given more than once with different values",
            ),
        ]);
    }
    run(&env, cases);
}

#[test]
fn device_and_message_refuse_bad_input() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    let pending = new_tenant();
    let pending_secret = env.create(&pending);
    let other = new_tenant();
    let other_secret = env.set_up(&other);
    env.sim.remove_user(&tenant, "gone@example.com");

    let report = json!({
        "entraTenantId": tenant, "fleetServerSecret": secret, "deviceId": new_tenant(),
        "userPrincipalName": "alex.doe@example.com", "deviceManagementState": true,
        "deviceName": "Mac", "os": "macOS", "osVersion": "15.3.1", "compliant": true,
        "lastCheckInTime": 1_796_311_486,
    });
    let reply = env.post(DEVICE, &report);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let message = reply.json()["message_id"].as_str().unwrap().to_string();

    let with = |changes: serde_json::Value| {
        let mut body = report.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        Some(body.to_string())
    };
    let device = |name, body, status, error: &str| Case {
        name,
        method: "POST",
        path: DEVICE.to_string(),
        headers: vec![key(), json_body()],
        body,
        status,
        error: error.to_string(),
    };
    let unauthorized = "unknown tenant id or wrong fleet server secret";

    let mut cases = vec![
        device(
            "wrong secret",
            with(json!({"fleetServerSecret": "nope"})),
            401,
            unauthorized,
        ),
        device(
            "unknown tenant",
            with(json!({"entraTenantId": new_tenant()})),
            401,
            unauthorized,
        ),
        device(
            "other tenant's secret",
            with(json!({"fleetServerSecret": other_secret})),
            401,
            unauthorized,
        ),
        device(
            "setup not done",
            with(json!({"entraTenantId": pending,
            "fleetServerSecret": pending_secret})),
            409,
            "the integration's setup is not done: an Entra admin must follow the consent link \
             from settings first",
        ),
        device(
            "no device id",
            with(json!({"deviceId": null})),
            400,
            "deviceId is missing",
        ),
        device(
            "device id not a GUID",
            with(json!({"deviceId": "ABC"})),
            400,
            &format!("deviceId {NOT_A_GUID}"),
        ),
        device(
            "no device name",
            with(json!({"deviceName": null})),
            400,
            "deviceName is missing",
        ),
        device("no os", with(json!({"os": ""})), 400, "os is missing"),
        device(
            "os only blanks",
            with(json!({"os": " \t "})),
            400,
            "os is missing",
        ),
        device(
            "no os version",
            with(json!({"osVersion": null})),
            400,
            "osVersion is missing",
        ),
        device(
            "user principal name over its bound",
            with(json!({"userPrincipalName": format!("{}@example.com", "a".repeat(1013))})),
            400,
            "userPrincipalName is longer than 1024 bytes",
        ),
        // 257 characters, but 1025 bytes: the bound is on the bytes that go
        // into Graph's URL.
        device(
            "user principal name over its bound in bytes",
            with(json!({"userPrincipalName": format!("{}@", "\u{1F600}".repeat(256))})),
            400,
            "userPrincipalName is longer than 1024 bytes",
        ),
        device(
            "device name over its bound",
            with(json!({"deviceName": "d".repeat(1025)})),
            400,
            "deviceName is longer than 1024 bytes",
        ),
        device(
            "os over its bound",
            with(json!({"os": "o".repeat(257)})),
            400,
            "os is longer than 256 bytes",
        ),
        device(
            "os version over its bound",
            with(json!({"osVersion": "1".repeat(257)})),
            400,
            "osVersion is longer than 256 bytes",
        ),
        device(
            "compliant as a JSON string",
            with(json!({"compliant": "true"})),
            400,
            "compliant must be a boolean",
        ),
        device(
            "check-in as a JSON string",
            with(json!({"lastCheckInTime": "1796311486"})),
            400,
            "lastCheckInTime must be a whole number",
        ),
        device(
            "compliant as text",
            with(json!({"compliant": "yes"})),
            400,
            "compliant must be a boolean",
        ),
        device(
            "no compliant",
            with(json!({"compliant": null})),
            400,
            "compliant is missing",
        ),
        device(
            "managed as number",
            with(json!({"deviceManagementState": 1})),
            400,
            "deviceManagementState must be a boolean",
        ),
        device(
            "check-in as text",
            with(json!({"lastCheckInTime": "yesterday"})),
            400,
            "lastCheckInTime must be a whole number",
        ),
        device(
            "check-in negative",
            with(json!({"lastCheckInTime": -1})),
            400,
            "lastCheckInTime must be Unix seconds between 1970 and 9999",
        ),
        device(
            "no user",
            with(json!({"userPrincipalName": null})),
            400,
            "userPrincipalName (or userId) is missing",
        ),
        device(
            "user id not a GUID",
            with(json!({"userId": "alex"})),
            400,
            &format!("userId {NOT_A_GUID}"),
        ),
        device(
            "empty user",
            with(json!({"userPrincipalName": ""})),
            422,
            "the device has no user: userPrincipalName is empty and no userId was given, and \
             Intune needs the device's Entra user",
        ),
        device(
            "unknown user",
            with(json!({"userPrincipalName": "gone@example.com"})),
            422,
            "Entra ID has no user with principal name \"gone@example.com\" in this tenant",
        ),
        device(
            "malformed JSON",
            Some("{\"deviceId\" 1}".into()),
            400,
            "the body is not valid JSON: expected `:` at line 1 column 13",
        ),
    ];

    let poll = |name, query: String, status, error: &str| Case {
        name,
        method: "GET",
        path: format!("{MESSAGE}?{query}"),
        headers: vec![key()],
        body: None,
        status,
        error: error.to_string(),
    };
    let unknown_message = new_tenant();
    cases.extend([
        poll(
            "message: wrong secret",
            format!("entraTenantId={tenant}&fleetServerSecret=x&messageId={message}"),
            401,
            unauthorized,
        ),
        poll(
            "message: no message id",
            format!("entraTenantId={tenant}&fleetServerSecret={secret}"),
            400,
            "messageId is missing",
        ),
        poll(
            "message: not a GUID",
            format!("entraTenantId={tenant}&fleetServerSecret={secret}&messageId=42"),
            400,
            &format!("messageId {NOT_A_GUID}"),
        ),
        poll(
            "message: unknown",
            format!(
                "entraTenantId={tenant}&fleetServerSecret={secret}&messageId={unknown_message}"
            ),
            404,
            &format!("no message {unknown_message} for this tenant"),
        ),
        poll(
            "message: another tenant's",
            format!("entraTenantId={other}&fleetServerSecret={other_secret}&messageId={message}"),
            404,
            &format!("no message {message} for this tenant"),
        ),
    ]);
    run(&env, cases);
}

#[test]
fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let env = TestEnv::start();

    let reply = env.get("/api/v1/microsoft-compliance-partner/nope");
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.error(),
        "no route for GET /api/v1/microsoft-compliance-partner/nope"
    );

    for (method, path, allow) in [
        ("GET", API, "POST, DELETE"),
        ("PUT", API, "POST, DELETE"),
        ("POST", SETTINGS, "GET, HEAD"),
        ("DELETE", DEVICE, "POST"),
        ("POST", MESSAGE, "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
    ] {
        // The method is refused before the key is even looked at.
        let reply = env.send(method, &env.url(path), &[], None);
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
        assert_eq!(reply.error(), format!("method not allowed; use {allow}"));
    }
}

#[test]
fn head_is_answered_wherever_get_is() {
    let env = TestEnv::start();
    let reply = env.send("HEAD", &env.url("/healthz"), &[], None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let reply = env.send("HEAD", &env.url(SETTINGS), &[("MS-API-Key", API_KEY)], None);
    assert_eq!(reply.status, 400, "the same checks as GET");
}

/// `identity` names no coding at all, so a body labelled with it is read;
/// any other coding is refused with 415 (see `create_refuses_bad_input`).
#[test]
fn a_body_labelled_identity_is_read_as_it_is() {
    let env = TestEnv::start();
    let body = json!({"entraTenantId": new_tenant()}).to_string();
    let headers = [
        ("MS-API-Key", API_KEY),
        ("Origin", ORIGIN),
        ("Content-Type", "application/json"),
        ("Content-Encoding", "Identity"),
    ];
    let reply = env.send("POST", &env.url(API), &headers, Some(&body));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn anonymous_deployments_serve_requests_without_a_key_but_refuse_a_wrong_one() {
    let env = TestEnv::start_with(|c| c.allow_anonymous = true);
    let tenant = new_tenant();
    let body = json!({"entraTenantId": tenant}).to_string();

    let reply = env.send("POST", &env.url(API), &[("Origin", ORIGIN)], Some(&body));
    assert_eq!(reply.status, 200, "{}", reply.body);

    let reply = env.send(
        "POST",
        &env.url(API),
        &[("Origin", ORIGIN), ("MS-API-Key", "stale-key")],
        Some(&json!({"entraTenantId": new_tenant()}).to_string()),
    );
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error(), "the API key is not valid");
}

#[test]
fn health_pages_and_metrics_need_no_key() {
    let env = TestEnv::start();
    let health = env.send("GET", &env.url("/healthz"), &[], None);
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );
    let ready = env.send("GET", &env.url("/readyz"), &[], None);
    assert_eq!(
        (ready.status, ready.json()),
        (200, json!({"status": "ready"}))
    );

    for page in [
        "/microsoft-compliance-partner/enroll",
        "/microsoft-compliance-partner/remediate",
    ] {
        let reply = env.send("GET", &env.url(page), &[], None);
        assert_eq!(reply.status, 200, "{page}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(reply.body.contains("Fleet"), "{page}");
    }

    let metrics = env.send("GET", &env.url("/metrics"), &[], None);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains("compliance_proxy_http_requests_total"),
        "{}",
        metrics.body
    );
}

#[test]
fn a_keyless_anonymous_deployment_ignores_the_key_old_fleet_servers_send() {
    let env = TestEnv::start_with(|c| {
        c.allow_anonymous = true;
        c.api_keys = compliance_proxy::secrets::ApiKeys::default();
    });
    let body = json!({"entraTenantId": new_tenant()}).to_string();
    let headers = [("Origin", ORIGIN), ("Ms-Api-Key", "example-api-key")];
    let reply = env.send("POST", &env.url(API), &headers, Some(&body));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn any_one_valid_key_header_is_enough() {
    let env = TestEnv::start();
    let body = json!({"entraTenantId": new_tenant()}).to_string();
    let bearer = format!("Bearer {API_KEY}");
    for headers in [
        vec![("MS-API-Key", ""), ("Authorization", bearer.as_str())],
        vec![("MS-API-Key", "stale"), ("Authorization", bearer.as_str())],
        vec![("Authorization", "bearer  test-api-key-5c1f0e9d ")],
    ] {
        let mut all = headers.clone();
        all.push(("Origin", ORIGIN));
        let reply = env.send("POST", &env.url(API), &all, Some(&body));
        assert_eq!(reply.status, 200, "{headers:?}: {}", reply.body);
    }
}
