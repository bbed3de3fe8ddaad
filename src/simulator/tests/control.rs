//! Request recording, endpoint moves, reset, shutdown and the `/_sim/`
//! HTTP control interface.

use std::net::TcpStream as StdTcpStream;

use super::*;
use crate::simulator::Fault;

fn control(sim: &Simulator, path: &str) -> String {
    format!("{}/_sim/{path}", sim.base_url())
}

/// Requests are recorded with path as received, query, tenant, headers,
/// body and status; control requests are not.
#[tokio::test]
async fn requests_are_recorded() {
    let sim = start().await;
    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    let url = format!("{}/v1.0/users('bob%40example.com')?x=1", sim.graph_url());
    assert_eq!(authed("GET", &url, &graph, None).await.status, 200);
    call("GET", &control(&sim, "requests"), &[], "").await;

    let recorded = sim.requests();
    assert_eq!(recorded.len(), 2, "the token request and the lookup");
    assert!(recorded[0].body.contains("grant_type=client_credentials"));
    let lookup = &recorded[1];
    assert_eq!(lookup.path, "/v1.0/users('bob%40example.com')");
    assert_eq!(lookup.query.as_deref(), Some("x=1"));
    assert_eq!(lookup.tenant.as_deref(), Some(TENANT));
    assert_eq!(lookup.status, 200);
    assert_eq!(
        lookup.header("authorization"),
        Some(format!("Bearer {graph}").as_str())
    );
    assert_eq!(sim.count("GET", "users('bob@example.com')"), 1);
    assert_eq!(sim.count("*", "/oauth2/v2.0/token"), 1);
    sim.clear_requests();
    assert!(sim.requests().is_empty());
}

/// After `move_endpoints` the old scale unit refuses connections, discovery
/// points at the new one, and the tenant's state carries over.
#[tokio::test]
async fn moved_endpoints_refuse_the_old_url() {
    let sim = start().await;
    let intune = provisioned(&sim).await;
    let old = sim.scale_unit_url();
    sim.move_endpoints().unwrap();
    let new = sim.scale_unit_url();
    assert_ne!(old, new);
    let refused = StdTcpStream::connect(old.trim_start_matches("http://")).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    let principals = format!(
        "{}/v1.0/servicePrincipals?$filter=appId+eq+'0000000a-0000-0000-c000-000000000000'",
        sim.graph_url()
    );
    let id = authed("GET", &principals, &graph, None).await.json()["value"][0]["id"].clone();
    let endpoints = format!(
        "{}/v1.0/servicePrincipals/{}/endpoints",
        sim.graph_url(),
        id.as_str().unwrap()
    );
    let listed = authed("GET", &endpoints, &graph, None).await.body;
    assert!(listed.contains(&format!("{new}/TenantDataSync")) && !listed.contains(&old));
    assert_eq!(put_partner_tenant(&sim, &intune, 1).await.status, 200);

    // The HTTP twin does the same.
    let moved = call("POST", &control(&sim, "move-endpoints"), &[], "").await;
    assert_eq!(moved.json()["scale_unit_url"], json!(sim.scale_unit_url()));
    assert!(StdTcpStream::connect(new.trim_start_matches("http://")).is_err());
}

/// The scale unit does not serve the control interface.
#[tokio::test]
async fn control_lives_only_on_the_main_listener() {
    let sim = start().await;
    let answer = call(
        "GET",
        &format!("{}/_sim/requests", sim.scale_unit_url()),
        &[],
        "",
    )
    .await;
    assert_eq!(answer.status, 404);
    assert_eq!(
        sim.count("GET", "/_sim/requests"),
        1,
        "an ordinary, recorded request there"
    );
}

/// Sends a control request with an optional JSON body.
async fn ctl(sim: &Simulator, method: &str, path: &str, body: Option<Value>) -> Answer {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    call(method, &control(sim, path), &[], &body).await
}

/// Faults and the request log over HTTP.
#[tokio::test]
async fn http_control_of_faults_and_requests() {
    let sim = start().await;
    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    let groups = format!("{}/v1.0/groups", sim.graph_url());

    let rule = json!({"method": "GET", "path": "/v1.0/groups", "status": 429, "retry_after": 3});
    assert_eq!(ctl(&sim, "POST", "faults", Some(rule)).await.status, 204);
    let throttled = authed("GET", &groups, &graph, None).await;
    assert_eq!(
        (throttled.status, throttled.header("retry-after")),
        (429, Some("3"))
    );
    let bad_rule = json!({"method": "GET", "path": "/x", "colour": "red"});
    assert_eq!(
        ctl(&sim, "POST", "faults", Some(bad_rule)).await.status,
        400
    );
    let always = json!({"method": "GET", "path": "/v1.0/groups", "status": 500, "always": true});
    ctl(&sim, "POST", "faults", Some(always)).await;
    assert_eq!(ctl(&sim, "DELETE", "faults", None).await.status, 204);
    assert_eq!(authed("GET", &groups, &graph, None).await.status, 200);

    let log = ctl(&sim, "GET", "requests", None).await.json();
    assert_eq!(
        log.as_array().unwrap().len(),
        3,
        "token, throttled, answered"
    );
    assert_eq!(log[1]["status"], 429);
    ctl(&sim, "DELETE", "requests", None).await;
    assert!(sim.requests().is_empty());
    assert_eq!(ctl(&sim, "GET", "nothing-here", None).await.status, 404);
}

/// What the README promises of the control interface: fault rules are added
/// and cleared with 204 and no body, and `status_failed` takes the detail as
/// a string, not a flag.
#[tokio::test]
async fn fault_rules_answer_no_content_and_status_failed_takes_text() {
    let sim = start().await;
    let failed = json!({"method": "GET", "path": "/DataUploadMessages", "status_failed": "gone"});
    let added = ctl(&sim, "POST", "faults", Some(failed)).await;
    assert_eq!((added.status, added.body.as_str()), (204, ""));
    let cleared = ctl(&sim, "DELETE", "faults", None).await;
    assert_eq!((cleared.status, cleared.body.as_str()), (204, ""));

    let flag = json!({"method": "GET", "path": "/DataUploadMessages", "status_failed": true});
    let refused = ctl(&sim, "POST", "faults", Some(flag)).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.json()["error"],
        "invalid fault rule: invalid type: boolean `true`, expected a string at line 1 \
         column 65"
    );
}

/// Tenant views, consent, token expiry and reset over HTTP.
#[tokio::test]
async fn http_control_of_tenants_and_tokens() {
    let sim = start().await;
    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    let groups = format!("{}/v1.0/groups", sim.graph_url());

    let view = ctl(&sim, "GET", &format!("tenants/{TENANT}"), None)
        .await
        .json();
    assert_eq!(view["consented"], true);
    assert_eq!(
        view["groups"][0]["display_name"],
        "Fleet conditional access"
    );
    let unseen = ctl(&sim, "GET", &format!("tenants/{OTHER_TENANT}"), None).await;
    assert_eq!(unseen.status, 404);
    let name = json!({"name": "Fleet conditional access"});
    ctl(
        &sim,
        "POST",
        &format!("tenants/{TENANT}/remove-group"),
        Some(name),
    )
    .await;
    assert!(sim.tenant(TENANT).unwrap().groups.is_empty());

    ctl(&sim, "POST", "expire-tokens", None).await;
    assert_eq!(authed("GET", &groups, &graph, None).await.status, 401);
    ctl(
        &sim,
        "POST",
        &format!("tenants/{TENANT}/revoke-consent"),
        None,
    )
    .await;
    let refused = request_token(&sim, TENANT, GRAPH_SCOPE).await;
    assert_eq!(refused.json()["error_codes"], json!([700016]));
    assert_eq!(ctl(&sim, "POST", "reset", None).await.status, 204);
    assert!(sim.tenant(TENANT).is_none() && sim.requests().is_empty());
}

/// `reset` forgets tenants and tokens but keeps serving; `shutdown` closes
/// both listeners.
#[tokio::test]
async fn reset_and_shutdown() {
    let sim = start().await;
    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    sim.add_fault(Fault::on("*", "/").status(500).always());
    sim.reset();
    assert!(sim.tenant(TENANT).is_none());
    let groups = format!("{}/v1.0/groups", sim.graph_url());
    assert_eq!(
        authed("GET", &groups, &graph, None).await.status,
        401,
        "token forgotten, no fault"
    );

    let (main, scale) = (sim.base_url(), sim.scale_unit_url());
    sim.clone().shutdown().await;
    for url in [main, scale] {
        assert!(StdTcpStream::connect(url.trim_start_matches("http://")).is_err());
    }
}
