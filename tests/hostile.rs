//! Hostile input, table-driven, across every endpoint. Each case asserts the
//! exact status and that the database did not change.
//!
//! Requests a client library would refuse to build (header injection, bytes
//! that are not UTF-8, broken chunking) go over a raw TCP connection.

mod common;

use common::*;
use serde_json::{Value, json};

const SETTINGS: &str = "/api/v1/microsoft-compliance-partner/settings";
const CONSENT: &str = "/api/v1/microsoft-compliance-partner/adminconsent";
const DEVICE: &str = "/api/v1/microsoft-compliance-partner/device";
const MESSAGE: &str = "/api/v1/microsoft-compliance-partner/device/message";

/// How a case is sent.
enum Send {
    /// Method, path and query, headers, body.
    Http(
        &'static str,
        String,
        Vec<(&'static str, String)>,
        Option<String>,
    ),
    /// Bytes on a fresh connection.
    Raw(Vec<u8>),
}

struct Case {
    name: String,
    send: Send,
    status: u16,
}

/// The world the cases run against: a set-up tenant with one message, a
/// second set-up tenant, and a pending one with a live consent state.
struct World {
    env: TestEnv,
    tenant: String,
    secret: String,
    message: String,
    other: String,
    other_secret: String,
    pending: String,
    pending_secret: String,
    state: String,
    /// (tenant, state) whose consent was already used to finish setup.
    used: (String, String),
    /// (tenant, state) whose consent link is past its lifetime.
    expired: (String, String),
}

fn world() -> World {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    let other = new_tenant();
    let other_secret = env.set_up(&other);
    let pending = new_tenant();
    let pending_secret = env.create(&pending);
    let state = TestEnv::state_of(&env.consent_url(&pending, &pending_secret));

    let used_tenant = new_tenant();
    let used_secret = env.create(&used_tenant);
    let used_link = env.consent_url(&used_tenant, &used_secret);
    assert_eq!(env.follow_consent(&used_link).status, 302);

    let expired_tenant = new_tenant();
    let expired_secret = env.create(&expired_tenant);
    let expired_state = TestEnv::state_of(&env.consent_url(&expired_tenant, &expired_secret));
    rusqlite::Connection::open(&env.db_path)
        .unwrap()
        .execute(
            "UPDATE integrations SET consent_expires_at = consent_expires_at - 90000 \
             WHERE tenant_id = ?1",
            [&expired_tenant],
        )
        .unwrap();

    let reply = env.post(DEVICE, &device_body(&tenant, &secret));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let message = reply.json()["message_id"].as_str().unwrap().to_string();
    World {
        env,
        tenant,
        secret,
        message,
        other,
        other_secret,
        pending,
        pending_secret,
        state,
        used: (used_tenant, TestEnv::state_of(&used_link)),
        expired: (expired_tenant, expired_state),
    }
}

fn device_body(tenant: &str, secret: &str) -> Value {
    json!({
        "entraTenantId": tenant, "fleetServerSecret": secret,
        "deviceId": "0c2f5e8a-7b1d-4e3c-8f6a-5d4b3a2c1e0f",
        "userPrincipalName": "alex.doe@example.com", "deviceManagementState": true,
        "deviceName": "Mac", "os": "macOS", "osVersion": "15.3.1", "compliant": true,
        "lastCheckInTime": 1_796_311_486,
    })
}

fn key() -> (&'static str, String) {
    ("MS-API-Key", API_KEY.to_string())
}

fn origin(value: &str) -> (&'static str, String) {
    ("Origin", value.to_string())
}

fn ctype(value: &str) -> (&'static str, String) {
    ("Content-Type", value.to_string())
}

fn case(name: impl Into<String>, send: Send, status: u16) -> Case {
    Case {
        name: name.into(),
        send,
        status,
    }
}

fn deep_json(levels: usize) -> String {
    format!(
        "{{\"entraTenantId\":{}1{}}}",
        "[".repeat(levels),
        "]".repeat(levels)
    )
}

fn create_cases(w: &World) -> Vec<Case> {
    let fresh = new_tenant();
    let post = |name: &str, headers: Vec<(&'static str, String)>, body: String, status| {
        case(
            format!("create: {name}"),
            Send::Http("POST", API.into(), headers, Some(body)),
            status,
        )
    };
    let good = |o: &str| vec![key(), origin(o), ctype("application/json")];
    let body = |tenant: Value| json!({ "entraTenantId": tenant }).to_string();
    let ok_body = body(json!(fresh));

    let mut cases = vec![
        post("missing tenant", good(ORIGIN), "{}".into(), 400),
        post("empty tenant", good(ORIGIN), body(json!("")), 400),
        post("null tenant", good(ORIGIN), body(Value::Null), 400),
        post("number tenant", good(ORIGIN), body(json!(42)), 400),
        post("bool tenant", good(ORIGIN), body(json!(true)), 400),
        post("array tenant", good(ORIGIN), body(json!([fresh])), 400),
        post(
            "object tenant",
            good(ORIGIN),
            body(json!({"id": fresh})),
            400,
        ),
        post(
            "60 KB tenant",
            good(ORIGIN),
            body(json!("a".repeat(60_000))),
            400,
        ),
        post(
            "domain name tenant",
            good(ORIGIN),
            body(json!("contoso.onmicrosoft.com")),
            400,
        ),
        post(
            "braced GUID",
            good(ORIGIN),
            body(json!(format!("{{{fresh}}}"))),
            400,
        ),
        post(
            "GUID without hyphens",
            good(ORIGIN),
            body(json!(fresh.replace('-', ""))),
            400,
        ),
        post(
            "GUID with junk",
            good(ORIGIN),
            body(json!(format!("{fresh}' OR '1'='1"))),
            400,
        ),
        post(
            "SQL injection",
            good(ORIGIN),
            body(json!("'; DROP TABLE integrations; --")),
            400,
        ),
        post(
            "other tenant's set-up id",
            good(ORIGIN),
            body(json!(w.tenant)),
            409,
        ),
        post(
            "conflicting spellings",
            good(ORIGIN),
            json!({"entraTenantId": fresh, "entra_tenant_id": new_tenant()}).to_string(),
            400,
        ),
        post(
            "missing Origin",
            vec![key(), ctype("application/json")],
            ok_body.clone(),
            400,
        ),
        post("empty Origin", good(""), ok_body.clone(), 400),
        post(
            "javascript: Origin",
            good("javascript:alert(document.domain)"),
            ok_body.clone(),
            400,
        ),
        post(
            "data: Origin",
            good("data:text/html,<script>x</script>"),
            ok_body.clone(),
            400,
        ),
        post(
            "userinfo Origin",
            good("https://fleet.example.com@evil.example"),
            ok_body.clone(),
            400,
        ),
        post(
            "path Origin",
            good("https://fleet.example.com/evil"),
            ok_body.clone(),
            400,
        ),
        post(
            "query Origin",
            good("https://fleet.example.com?next=evil"),
            ok_body.clone(),
            400,
        ),
        post(
            "fragment Origin",
            good("https://fleet.example.com#evil"),
            ok_body.clone(),
            400,
        ),
        post("null Origin", good("null"), ok_body.clone(), 400),
        post(
            "ftp Origin",
            good("ftp://fleet.example.com"),
            ok_body.clone(),
            400,
        ),
        post(
            "port 0 Origin",
            good("https://fleet.example.com:0"),
            ok_body.clone(),
            400,
        ),
        post(
            "port 99999 Origin",
            good("https://fleet.example.com:99999"),
            ok_body.clone(),
            400,
        ),
        post(
            "hex IPv4 Origin",
            good("https://0x7f.1"),
            ok_body.clone(),
            400,
        ),
        post(
            "backslash Origin",
            good("https://evil.example\\@fleet.example.com"),
            ok_body.clone(),
            400,
        ),
        post(
            "protocol-relative Origin",
            good("//evil.example"),
            ok_body.clone(),
            400,
        ),
        post(
            "spaces in Origin",
            good("https://fleet example.com"),
            ok_body.clone(),
            400,
        ),
        post(
            "no key",
            vec![origin(ORIGIN), ctype("application/json")],
            ok_body.clone(),
            401,
        ),
        post(
            "wrong key",
            vec![("MS-API-Key", "wrong".into()), origin(ORIGIN)],
            ok_body.clone(),
            401,
        ),
        post(
            "key prefix",
            vec![
                ("MS-API-Key", API_KEY[..API_KEY.len() - 1].into()),
                origin(ORIGIN),
            ],
            ok_body.clone(),
            401,
        ),
        post(
            "key with suffix",
            vec![("MS-API-Key", format!("{API_KEY}x")), origin(ORIGIN)],
            ok_body.clone(),
            401,
        ),
        post(
            "empty key",
            vec![("MS-API-Key", String::new()), origin(ORIGIN)],
            ok_body.clone(),
            401,
        ),
        post(
            "wrong bearer",
            vec![("Authorization", "Bearer wrong".into()), origin(ORIGIN)],
            ok_body.clone(),
            401,
        ),
        post(
            "basic auth",
            vec![
                ("Authorization", format!("Basic {API_KEY}")),
                origin(ORIGIN),
            ],
            ok_body.clone(),
            401,
        ),
        post(
            "malformed JSON",
            good(ORIGIN),
            "{\"entraTenantId\":".into(),
            400,
        ),
        post("JSON array", good(ORIGIN), format!("[\"{fresh}\"]"), 400),
        post("JSON nested 100 deep", good(ORIGIN), deep_json(100), 400),
        post("JSON nested 17 deep", good(ORIGIN), deep_json(17), 400),
        post(
            "70 KB body",
            good(ORIGIN),
            format!("{{\"x\":\"{}\"}}", "x".repeat(70_000)),
            413,
        ),
        post(
            "text/plain",
            vec![key(), origin(ORIGIN), ctype("text/plain")],
            ok_body.clone(),
            400,
        ),
        post(
            "multipart",
            vec![
                key(),
                origin(ORIGIN),
                ctype("multipart/form-data; boundary=x"),
            ],
            "--x--".into(),
            400,
        ),
        // Refused before the body is read, even when the body is plain.
        post(
            "gzip declared on a plain body",
            vec![
                key(),
                origin(ORIGIN),
                ctype("application/json"),
                ("Content-Encoding", "gzip".into()),
            ],
            ok_body.clone(),
            415,
        ),
        post(
            "identity then deflate",
            vec![
                key(),
                origin(ORIGIN),
                ctype("application/json"),
                ("Content-Encoding", "identity, deflate".into()),
            ],
            ok_body.clone(),
            415,
        ),
    ];
    cases.push(case(
        "create: key in the query",
        Send::Http(
            "POST",
            format!("{API}?api_key={API_KEY}"),
            vec![origin(ORIGIN)],
            Some(ok_body),
        ),
        401,
    ));
    cases.extend(raw_create_cases(&fresh));
    cases
}

/// Requests with broken framing or header bytes, sent over raw TCP.
fn raw_create_cases(tenant: &str) -> Vec<Case> {
    let json = format!("{{\"entraTenantId\":\"{tenant}\"}}");
    let head = |extra: &str| {
        format!(
            "POST {API} HTTP/1.1\r\nHost: x\r\nMS-API-Key: {API_KEY}\r\n\
             Content-Type: application/json\r\nConnection: close\r\n{extra}"
        )
    };
    let sized = |extra: &str, body: &[u8]| {
        let mut bytes =
            head(&format!("{extra}Content-Length: {}\r\n\r\n", body.len())).into_bytes();
        bytes.extend_from_slice(body);
        bytes
    };
    let big_chunk = "x".repeat(70_000);
    let origin = "Origin: https://fleet.example.com\r\n";
    let injected = "Origin: https://fleet.example.com\r\nX-Injected: 1\r\n\
                    Origin: https://evil.example\r\n";
    let not_utf8_body: &[u8] = b"{\"entraTenantId\":\"\xff\xfe\"}";
    // The start of a gzip stream: its magic number, then deflate.
    let gzip_body: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab\x56";
    let chunked = |size: String, chunk: &str| {
        let framing = "Transfer-Encoding: chunked\r\n\r\n";
        format!(
            "{}{origin}{framing}{size}\r\n{chunk}\r\n0\r\n\r\n",
            head("")
        )
        .into_bytes()
    };
    vec![
        case(
            "create: CRLF in Origin",
            Send::Raw(sized(injected, json.as_bytes())),
            400,
        ),
        case(
            "create: Origin not UTF-8",
            Send::Raw(sized(
                "Origin: https://fle\u{e9}t.example.com\r\n",
                json.as_bytes(),
            )),
            400,
        ),
        case(
            "create: body not UTF-8",
            Send::Raw(sized(origin, not_utf8_body)),
            400,
        ),
        case(
            "create: gzip body",
            Send::Raw(sized(
                &format!("{origin}Content-Encoding: gzip\r\n"),
                gzip_body,
            )),
            415,
        ),
        case(
            "create: chunked 70 KB without Content-Length",
            Send::Raw(chunked(format!("{:x}", big_chunk.len()), &big_chunk)),
            413,
        ),
        case(
            "create: chunk size not hex",
            Send::Raw(chunked("zz".into(), &json)),
            400,
        ),
    ]
}

fn credential_cases(w: &World) -> Vec<Case> {
    let (t, s) = (&w.tenant, &w.secret);
    let unknown = new_tenant();
    let mut cases = Vec::new();
    for (method, path, bad_credentials) in [("GET", SETTINGS, 404), ("DELETE", API, 404)] {
        let mut add = |name: &str, query: String, headers: Vec<(&'static str, String)>, status| {
            cases.push(case(
                format!("{method} {path}: {name}"),
                Send::Http(method, format!("{path}?{query}"), headers, None),
                status,
            ));
        };
        add(
            "missing secret",
            format!("entraTenantId={t}"),
            vec![key()],
            400,
        );
        add(
            "empty secret",
            format!("entraTenantId={t}&fleetServerSecret="),
            vec![key()],
            400,
        );
        add(
            "wrong secret",
            format!("entraTenantId={t}&fleetServerSecret=0{s}"),
            vec![key()],
            bad_credentials,
        );
        add(
            "other tenant's secret",
            format!("entraTenantId={t}&fleetServerSecret={}", w.other_secret),
            vec![key()],
            bad_credentials,
        );
        add(
            "unknown tenant",
            format!("entraTenantId={unknown}&fleetServerSecret={s}"),
            vec![key()],
            bad_credentials,
        );
        add(
            "tenant not a GUID",
            format!("entraTenantId=common&fleetServerSecret={s}"),
            vec![key()],
            400,
        );
        add(
            "tenant the nil GUID",
            format!("entraTenantId=00000000-0000-0000-0000-000000000000&fleetServerSecret={s}"),
            vec![key()],
            400,
        );
        add(
            "SQL in tenant",
            format!("entraTenantId=%27+OR+1%3D1--&fleetServerSecret={s}"),
            vec![key()],
            400,
        );
        add(
            "SQL in secret",
            format!("entraTenantId={t}&fleetServerSecret=%27+OR+%271%27%3D%271"),
            vec![key()],
            bad_credentials,
        );
        add(
            "8 KB secret",
            format!("entraTenantId={t}&fleetServerSecret={}", "a".repeat(8000)),
            vec![key()],
            bad_credentials,
        );
        add(
            "no key",
            format!("entraTenantId={t}&fleetServerSecret={s}"),
            vec![],
            401,
        );
        add(
            "two tenants",
            format!("entraTenantId={t}&entraTenantId={unknown}&fleetServerSecret={s}"),
            vec![key()],
            400,
        );
        add(
            "broken percent-encoding",
            format!("entraTenantId=%ZZ{t}&fleetServerSecret={s}"),
            vec![key()],
            400,
        );
    }
    cases
}

fn device_cases(w: &World) -> Vec<Case> {
    let base = device_body(&w.tenant, &w.secret);
    let with = |changes: Value| {
        let mut body = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        body.to_string()
    };
    let post = |name: &str, headers: Vec<(&'static str, String)>, body: String, status| {
        case(
            format!("device: {name}"),
            Send::Http("POST", DEVICE.into(), headers, Some(body)),
            status,
        )
    };
    let json_key = || vec![key(), ctype("application/json")];
    vec![
        post(
            "wrong secret",
            json_key(),
            with(json!({"fleetServerSecret": "x"})),
            401,
        ),
        post(
            "other tenant's secret",
            json_key(),
            with(json!({"fleetServerSecret": w.other_secret})),
            401,
        ),
        post(
            "pending tenant",
            json_key(),
            with(json!({"entraTenantId": w.pending,
            "fleetServerSecret": w.pending_secret})),
            409,
        ),
        post(
            "device id not a GUID",
            json_key(),
            with(json!({"deviceId": "MacBook"})),
            400,
        ),
        post(
            "SQL in device id",
            json_key(),
            with(json!({"deviceId": "1'; DELETE FROM messages;--"})),
            400,
        ),
        post(
            "compliant as string",
            json_key(),
            with(json!({"compliant": "yes"})),
            400,
        ),
        post(
            "compliant as number",
            json_key(),
            with(json!({"compliant": 1})),
            400,
        ),
        post(
            "check-in as float",
            json_key(),
            with(json!({"lastCheckInTime": 1.5})),
            400,
        ),
        post(
            "check-in beyond 9999",
            json_key(),
            with(json!({"lastCheckInTime": 1e20})),
            400,
        ),
        post(
            "check-in negative",
            json_key(),
            with(json!({"lastCheckInTime": -60})),
            400,
        ),
        post(
            "user id not a GUID",
            json_key(),
            with(json!({"userId": "alex"})),
            400,
        ),
        post(
            "device name array",
            json_key(),
            with(json!({"deviceName": ["a"]})),
            400,
        ),
        post(
            "os object",
            json_key(),
            with(json!({"os": {"name": "macOS"}})),
            400,
        ),
        post("os empty", json_key(), with(json!({"os": ""})), 400),
        post(
            "os version number",
            json_key(),
            with(json!({"osVersion": 15})),
            400,
        ),
        post(
            "10 KB user principal name",
            json_key(),
            with(json!({"userPrincipalName": format!("{}@example.com", "a".repeat(10_000))})),
            400,
        ),
        post(
            "device name of 2,000 emoji",
            json_key(),
            with(json!({"deviceName": "\u{1F600}".repeat(2_000)})),
            400,
        ),
        post(
            "70 KB body",
            json_key(),
            with(json!({"deviceName": "x".repeat(70_000)})),
            413,
        ),
        post("JSON nested 100 deep", json_key(), deep_json(100), 400),
        post(
            "no key",
            vec![ctype("application/json")],
            with(json!({})),
            401,
        ),
        post(
            "XML",
            vec![key(), ctype("application/xml")],
            "<device/>".into(),
            400,
        ),
        post(
            "zstd",
            vec![
                key(),
                ctype("application/json"),
                ("Content-Encoding", "zstd".into()),
            ],
            with(json!({})),
            415,
        ),
        post(
            "unknown user",
            json_key(),
            with(json!({"userPrincipalName": "gone@example.com"})),
            422,
        ),
    ]
}

fn message_cases(w: &World) -> Vec<Case> {
    let get = |name: &str, query: String, status| {
        case(
            format!("message: {name}"),
            Send::Http("GET", format!("{MESSAGE}?{query}"), vec![key()], None),
            status,
        )
    };
    let (t, s, m) = (&w.tenant, &w.secret, &w.message);
    vec![
        get(
            "another tenant's message",
            format!(
                "entraTenantId={}&fleetServerSecret={}\
            &messageId={m}",
                w.other, w.other_secret
            ),
            404,
        ),
        get(
            "unknown message",
            format!(
                "entraTenantId={t}&fleetServerSecret={s}&messageId={}",
                new_tenant()
            ),
            404,
        ),
        get(
            "message id not a GUID",
            format!("entraTenantId={t}&fleetServerSecret={s}&messageId=1"),
            400,
        ),
        get(
            "SQL in message id",
            format!(
                "entraTenantId={t}&fleetServerSecret={s}\
            &messageId=%27%20OR%201%3D1"
            ),
            400,
        ),
        get(
            "wrong secret",
            format!("entraTenantId={t}&fleetServerSecret=x&messageId={m}"),
            401,
        ),
        get(
            "missing message id",
            format!("entraTenantId={t}&fleetServerSecret={s}"),
            400,
        ),
    ]
}

fn consent_cases(w: &World) -> Vec<Case> {
    let get = |name: &str, query: String, status| {
        case(
            format!("consent: {name}"),
            Send::Http("GET", format!("{CONSENT}?{query}"), vec![], None),
            status,
        )
    };
    let (p, st) = (&w.pending, &w.state);
    vec![
        get(
            "state of another tenant",
            format!("tenant={}&state={st}&admin_consent=True", w.tenant),
            404,
        ),
        get(
            "unknown state",
            format!("tenant={p}&state={}&admin_consent=True", "0".repeat(32)),
            404,
        ),
        get(
            "SQL state",
            format!("tenant={p}&state=%27%20OR%20%271%27%3D%271&admin_consent=True"),
            404,
        ),
        get(
            "10 KB state",
            format!("tenant={p}&state={}&admin_consent=True", "a".repeat(10_000)),
            404,
        ),
        get(
            "missing state",
            format!("tenant={p}&admin_consent=True"),
            400,
        ),
        get("error without state", "error=access_denied".into(), 400),
        get(
            "tenant not a GUID",
            format!("tenant=..%2F..%2Fetc&state={st}&admin_consent=True"),
            400,
        ),
        get(
            "consent not granted",
            format!("tenant={p}&state={st}&admin_consent=False"),
            400,
        ),
        get(
            "replayed state",
            format!("tenant={}&state={}&admin_consent=True", w.used.0, w.used.1),
            404,
        ),
        get(
            "expired state",
            format!(
                "tenant={}&state={}&admin_consent=True",
                w.expired.0, w.expired.1
            ),
            404,
        ),
        get(
            "refusal with an expired state",
            format!("error=access_denied&state={}", w.expired.1),
            404,
        ),
        get(
            "state upper-cased",
            format!("tenant={p}&state={}&admin_consent=True", st.to_uppercase()),
            404,
        ),
    ]
}

fn routing_cases() -> Vec<Case> {
    let get = |name: &str, path: &str, method, status| {
        case(
            format!("routing: {name}"),
            Send::Http(method, path.into(), vec![key()], None),
            status,
        )
    };
    vec![
        get(
            "unknown path",
            "/api/v1/microsoft-compliance-partner/admin",
            "GET",
            404,
        ),
        get(
            "trailing slash",
            "/api/v1/microsoft-compliance-partner/settings/",
            "GET",
            404,
        ),
        get(
            "upper-case path",
            "/API/V1/MICROSOFT-COMPLIANCE-PARTNER/SETTINGS",
            "GET",
            404,
        ),
        get(
            "dot segments",
            "/api/v1/microsoft-compliance-partner/x/../settings",
            "GET",
            404,
        ),
        get(
            "encoded slash",
            "/api/v1/microsoft-compliance-partner%2Fsettings",
            "GET",
            404,
        ),
        get("wrong method", API, "PATCH", 405),
        get("HEAD on settings", SETTINGS, "HEAD", 400),
        get("OPTIONS", API, "OPTIONS", 405),
    ]
}

#[test]
fn hostile_requests_get_exact_statuses_and_change_nothing() {
    let w = world();
    let mut cases = create_cases(&w);
    cases.extend(credential_cases(&w));
    cases.extend(device_cases(&w));
    cases.extend(message_cases(&w));
    cases.extend(consent_cases(&w));
    cases.extend(routing_cases());
    assert!(cases.len() >= 80, "only {} cases", cases.len());
    w.env.sim.remove_user(&w.tenant, "gone@example.com");

    let mut failures = Vec::new();
    for case in &cases {
        let before = w.env.db_snapshot();
        let status = match &case.send {
            Send::Http(method, path, headers, body) => {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                w.env
                    .send(method, &w.env.url(path), &headers, body.as_deref())
                    .status
            }
            Send::Raw(bytes) => w.env.raw(bytes).0,
        };
        if status != case.status {
            failures.push(format!("{}: got {status}, want {}", case.name, case.status));
        }
        if w.env.db_snapshot() != before {
            failures.push(format!("{}: changed the database", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // The legitimate requests still work afterwards.
    let settings = w.env.settings(&w.pending, &w.pending_secret).json();
    assert!(
        settings["admin_consent_url"]
            .as_str()
            .unwrap()
            .contains(&w.state)
    );
    assert_eq!(
        w.env.settings(&w.tenant, &w.secret).json()["setup_done"],
        true
    );
}
