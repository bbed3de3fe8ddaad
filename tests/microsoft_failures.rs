//! When Microsoft misbehaves: one scenario per test, each asserting what
//! Fleet is answered, what the database holds, and what the simulated
//! Microsoft received.

mod common;

use std::time::{Duration, Instant};

use common::*;
use compliance_proxy::simulator::Fault;
use serde_json::json;

const DEVICE: &str = "/api/v1/microsoft-compliance-partner/device";
const MESSAGE: &str = "/api/v1/microsoft-compliance-partner/device/message";

fn report(tenant: &str, secret: &str) -> serde_json::Value {
    json!({
        "entraTenantId": tenant, "fleetServerSecret": secret, "deviceId": new_tenant(),
        "userPrincipalName": "alex.doe@example.com", "deviceManagementState": true,
        "deviceName": "Mac", "os": "macOS", "osVersion": "15.3.1", "compliant": true,
        "lastCheckInTime": 1_796_311_486,
    })
}

fn poll(env: &TestEnv, tenant: &str, secret: &str, message: &str) -> Reply {
    env.get(&format!(
        "{MESSAGE}?entraTenantId={tenant}&fleetServerSecret={secret}&messageId={message}"
    ))
}

/// Reports a device and returns its message id.
fn push(env: &TestEnv, tenant: &str, secret: &str) -> String {
    let reply = env.post(DEVICE, &report(tenant, secret));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["message_id"].as_str().unwrap().to_string()
}

/// Registers a tenant and follows its consent link; returns the secret.
fn consent(env: &TestEnv, tenant: &str) -> String {
    let secret = env.create(tenant);
    let reply = env.follow_consent(&env.consent_url(tenant, &secret));
    assert_eq!(reply.status, 302, "{}", reply.body);
    secret
}

fn setup_error(env: &TestEnv, tenant: &str, secret: &str) -> serde_json::Value {
    env.settings(tenant, secret).json()["setup_error"].clone()
}

fn token_requests(env: &TestEnv, tenant: &str) -> Vec<String> {
    env.sim
        .tenant(tenant)
        .map(|t| t.token_scopes)
        .unwrap_or_default()
}

#[test]
fn happy_setup_calls_microsoft_in_order_with_the_right_tokens() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let link = env.consent_url(&tenant, &secret);
    env.sim.clear_requests();
    assert_eq!(env.follow_consent(&link).status, 302);

    let calls: Vec<String> = env
        .sim
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let expected = [
        format!("GET /{tenant}/adminconsent"),
        format!("POST /{tenant}/oauth2/v2.0/token"),
        format!("POST /{tenant}/oauth2/v2.0/token"),
        "GET /v1.0/servicePrincipals".to_string(),
    ];
    assert_eq!(calls[..4], expected, "{calls:#?}");
    assert!(
        calls[4].starts_with("GET /v1.0/servicePrincipals/") && calls[4].ends_with("/endpoints")
    );
    assert_eq!(
        calls[5],
        format!("PUT /TenantDataSync/PartnerTenants(guid'{tenant}')")
    );
    assert_eq!(calls[6], "POST /TenantDataSync/PartnerCompliancePolicies");
    assert_eq!(calls[7], "GET /v1.0/groups");
    assert!(calls[8].starts_with("POST /TenantDataSync/PartnerCompliancePolicies(guid'"));
    assert!(calls[8].ends_with("')/Assign"), "{}", calls[8]);
    assert_eq!(calls.len(), 9, "{calls:#?}");
    assert!(
        env.sim
            .requests()
            .iter()
            .all(|r| (200..300).contains(&r.status) || r.status == 302)
    );

    let scopes = token_requests(&env, &tenant);
    assert_eq!(scopes.len(), 2, "one token per audience: {scopes:?}");
    assert!(scopes.contains(&"https://graph.microsoft.com/.default".to_string()));
    assert!(scopes.contains(&"https://api.manage.microsoft.com//.default".to_string()));
    assert_eq!(env.settings(&tenant, &secret).json()["setup_done"], true);
}

#[test]
fn setup_reruns_after_a_partial_failure_and_finds_its_policy_on_409() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    env.sim
        .add_fault(Fault::on("POST", "/Assign").status(500).always());
    let secret = consent(&env, &tenant);

    let error = setup_error(&env, &tenant, &secret);
    assert_eq!(
        error,
        "Assigning the compliance policy failed: Microsoft answered HTTP 500 \
         (InternalServerError: Simulated internal server error.)"
    );
    // One retry, then the error: two attempts.
    assert_eq!(env.sim.count("POST", "/Assign"), 2);

    env.sim.clear_faults();
    env.sim.clear_requests();
    let reply = env.follow_consent(&env.consent_url(&tenant, &secret));
    assert_eq!(reply.status, 302);
    let settings = env.settings(&tenant, &secret).json();
    assert_eq!(settings["setup_done"], true, "{settings}");
    assert!(settings["setup_error"].is_null());

    // The rerun met 409, listed the policies and picked ours, not the other partner's.
    let created = env
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/TenantDataSync/PartnerCompliancePolicies");
    assert_eq!(created.map(|r| r.status), Some(409));
    assert_eq!(env.sim.count("GET", "/PartnerCompliancePolicies"), 1);
    let state = env.sim.tenant(&tenant).unwrap();
    let ours: Vec<_> = state.policies.iter().filter(|p| !p.other_partner).collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].assigned_groups.len(), 1);
    assert!(
        state
            .policies
            .iter()
            .filter(|p| p.other_partner)
            .all(|p| p.assigned_groups.is_empty())
    );
}

#[test]
fn policy_created_with_204_and_location_is_accepted() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    env.sim
        .add_fault(Fault::on("POST", "/PartnerCompliancePolicies").policy_location());
    let secret = consent(&env, &tenant);
    assert_eq!(env.settings(&tenant, &secret).json()["setup_done"], true);
    let policy: String = env
        .db()
        .query_row("SELECT policy_id FROM integrations", [], |r| r.get(0))
        .unwrap();
    let state = env.sim.tenant(&tenant).unwrap();
    assert!(
        state
            .policies
            .iter()
            .any(|p| p.id == policy && p.assigned_groups.len() == 1)
    );
}

#[test]
fn an_all_zero_policy_id_fails_setup_clearly() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    env.sim
        .add_fault(Fault::on("POST", "/PartnerCompliancePolicies").policy_null_location());
    let secret = consent(&env, &tenant);
    assert_eq!(
        setup_error(&env, &tenant, &secret),
        "Creating the partner compliance policy failed: Microsoft reported a failure: no policy \
         was created (empty policy id): the tenant is not provisioned as a macOS compliance \
         partner in Intune"
    );
    assert_eq!(env.sim.count("POST", "/Assign"), 0);
}

#[test]
fn provisioning_failure_in_band_stops_setup_before_the_policy() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    env.sim
        .add_fault(Fault::on("PUT", "/PartnerTenants").provisioned_zero());
    let secret = consent(&env, &tenant);

    let error = setup_error(&env, &tenant, &secret);
    let error = error.as_str().unwrap();
    assert!(
        error.starts_with("Provisioning the tenant failed: Microsoft reported a failure: "),
        "{error}"
    );
    assert_eq!(env.sim.count("POST", "/PartnerCompliancePolicies"), 0);
    assert_eq!(
        env.db_count("SELECT provisioned + setup_done FROM integrations"),
        0
    );
    let state = env.sim.tenant(&tenant).unwrap();
    assert!(state.policies.iter().all(|p| p.other_partner));
}

#[test]
fn consent_refused_on_microsofts_page_makes_no_microsoft_call() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    env.sim
        .add_fault(Fault::on("GET", "/adminconsent").consent_refused());
    env.sim.clear_requests();
    let reply = env.follow_consent(&env.consent_url(&tenant, &secret));
    assert_eq!(reply.status, 302);

    assert_eq!(
        setup_error(&env, &tenant, &secret),
        "A Microsoft Entra admin did not consent to the permissions requested by the \
         conditional access integration."
    );
    let calls = env.sim.requests();
    assert_eq!(calls.len(), 1, "only the consent page: {calls:#?}");
}

#[test]
fn upload_rejected_in_band_is_a_502_and_stores_nothing() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    env.sim
        .add_fault(Fault::on("PUT", "/DataUploadMessages").upload_error_code("404"));

    let reply = env.post(DEVICE, &report(&tenant, &secret));
    assert_eq!(reply.status, 502, "{}", reply.body);
    let error = reply.error();
    assert!(
        error.starts_with(
            "uploading the device record failed: Microsoft reported a failure: ErrorCode 404: "
        ),
        "{error}"
    );
    assert_eq!(env.db_count("SELECT COUNT(*) FROM messages"), 0);
    assert_eq!(env.sim.count("PUT", "/DataUploadMessages"), 1);
}

#[test]
fn status_failed_passes_microsofts_detail_through() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    let message = push(&env, &tenant, &secret);
    env.sim
        .add_fault(Fault::on("GET", "/DataUploadMessages").status_failed("Device is retired"));

    let reply = poll(&env, &tenant, &secret, &message);
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["status"], "Failed");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Device is retired"),
        "{body}"
    );
    assert_eq!(
        env.db_count("SELECT COUNT(*) FROM messages WHERE status = 'Failed'"),
        1
    );
}

#[test]
fn an_expired_token_is_refreshed_once() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    let message = push(&env, &tenant, &secret);
    let before = token_requests(&env, &tenant).len();
    env.sim.expire_tokens();
    env.sim.clear_requests();

    let reply = poll(&env, &tenant, &secret, &message);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let statuses: Vec<u16> = env
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("DataUploadMessages"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [401, 200]);
    assert_eq!(token_requests(&env, &tenant).len(), before + 1);
}

#[test]
fn retry_after_within_the_cap_is_waited_out() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    env.sim.add_fault(
        Fault::on("PUT", "/DataUploadMessages")
            .status(429)
            .retry_after(1),
    );

    let started = Instant::now();
    let reply = env.post(DEVICE, &report(&tenant, &secret));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the wait was honoured"
    );
    let statuses: Vec<u16> = env
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("DataUploadMessages"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 200]);
}

#[test]
fn retry_after_beyond_the_cap_reaches_fleet_as_503() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    env.sim.add_fault(
        Fault::on("PUT", "/DataUploadMessages")
            .status(429)
            .retry_after(120),
    );

    let reply = env.post(DEVICE, &report(&tenant, &secret));
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.header("retry-after"), Some("120"));
    assert_eq!(
        reply.error(),
        "uploading the device record failed: Microsoft is throttling requests; retry after 2m"
    );
    assert_eq!(env.sim.count("PUT", "/DataUploadMessages"), 1);
    assert_eq!(env.db_count("SELECT COUNT(*) FROM messages"), 0);
}

#[test]
fn a_5xx_once_is_retried_and_succeeds() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    env.sim
        .add_fault(Fault::on("PUT", "/DataUploadMessages").status(503));

    let reply = env.post(DEVICE, &report(&tenant, &secret));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(env.sim.count("PUT", "/DataUploadMessages"), 2);
    assert_eq!(env.db_count("SELECT COUNT(*) FROM messages"), 1);
}

#[test]
fn persistent_5xx_gives_up_after_two_attempts() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    env.sim
        .add_fault(Fault::on("PUT", "/DataUploadMessages").status(502).always());

    let reply = env.post(DEVICE, &report(&tenant, &secret));
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(
        reply.error(),
        "uploading the device record failed: Microsoft answered HTTP 502 \
         (BadGateway: Simulated bad gateway.)"
    );
    assert_eq!(env.sim.count("PUT", "/DataUploadMessages"), 2);
    assert_eq!(env.db_count("SELECT COUNT(*) FROM messages"), 0);
}

#[test]
fn a_response_slower_than_the_timeout_is_an_error_without_a_second_upload() {
    let env = TestEnv::start_with(|c| c.microsoft.timeout = Duration::from_secs(1));
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    env.sim
        .add_fault(Fault::on("PUT", "/DataUploadMessages").delay(Duration::from_secs(3)));

    let reply = env.post(DEVICE, &report(&tenant, &secret));
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(
        reply.error(),
        "uploading the device record failed: Microsoft did not answer within 1s"
    );
    assert_eq!(env.db_count("SELECT COUNT(*) FROM messages"), 0);
    // The delay fault fires once: a retry would have gone through and been
    // recorded. The timed-out attempt itself is never answered, so never recorded.
    assert_eq!(
        env.sim.count("PUT", "/DataUploadMessages"),
        0,
        "no second upload"
    );
}

#[test]
fn a_moved_service_url_is_rediscovered() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    push(&env, &tenant, &secret);
    env.sim.move_endpoints().unwrap();
    env.sim.clear_requests();

    let message = push(&env, &tenant, &secret);
    assert!(!message.is_empty());
    assert_eq!(
        env.sim.count("GET", "/v1.0/servicePrincipals"),
        2,
        "rediscovered once"
    );
    assert_eq!(env.sim.count("PUT", "/DataUploadMessages"), 1);
    assert_eq!(env.db_count("SELECT COUNT(*) FROM messages"), 2);
}

#[test]
fn a_moved_service_url_and_expired_tokens_together_still_succeed() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    push(&env, &tenant, &secret);
    env.sim.expire_tokens();
    env.sim.move_endpoints().unwrap();
    env.sim.clear_requests();

    // The cached URL refuses the connection (one retry, after rediscovery),
    // and then the expired token is refused (one retry, with a fresh one).
    let message = push(&env, &tenant, &secret);
    assert!(!message.is_empty());
    let uploads: Vec<u16> = env
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("DataUploadMessages"))
        .map(|r| r.status)
        .collect();
    assert_eq!(uploads, [401, 200]);
    assert_eq!(env.db_count("SELECT COUNT(*) FROM messages"), 2);
}

#[test]
fn deprovision_failing_keeps_the_row_for_a_retry() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    env.sim
        .add_fault(Fault::on("PUT", "/PartnerTenants").status(500).times(2));
    let query = format!("{API}?entraTenantId={tenant}&fleetServerSecret={secret}");

    let reply = env.delete(&query);
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(
        reply.error(),
        "deprovisioning the tenant failed: Microsoft answered HTTP 500 \
         (InternalServerError: Simulated internal server error.)"
    );
    assert_eq!(env.db_count("SELECT COUNT(*) FROM integrations"), 1);
    assert_eq!(env.sim.tenant(&tenant).unwrap().provisioned, 1);

    let retry = env.delete(&query);
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(env.db_count("SELECT COUNT(*) FROM integrations"), 0);
    assert_eq!(env.sim.tenant(&tenant).unwrap().provisioned, 2);
}

#[test]
fn deprovision_after_consent_was_revoked_deletes_locally() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    env.sim.revoke_consent(&tenant);

    let reply = env.delete(&format!(
        "{API}?entraTenantId={tenant}&fleetServerSecret={secret}"
    ));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(env.db_count("SELECT COUNT(*) FROM integrations"), 0);
    assert_eq!(
        env.sim.tenant(&tenant).unwrap().provisioned,
        1,
        "nothing reached Intune"
    );
}

#[test]
fn heartbeat_round_survives_one_failing_tenant_and_stores_each_outcome() {
    let env = TestEnv::start();
    let tenants: Vec<String> = (0..4).map(|_| new_tenant()).collect();
    for tenant in &tenants {
        env.set_up(tenant);
    }
    env.sim.add_fault(
        Fault::on("PUT", "/PartnerTenantHeartbeat")
            .tenant(&tenants[1])
            .heartbeat_failure(),
    );
    env.sim.add_fault(
        Fault::on("PUT", "/PartnerTenantHeartbeat")
            .tenant(&tenants[2])
            .drop_connection()
            .always(),
    );

    let output = env.command(&["heartbeat"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));

    let outcome = |tenant: &str| -> (Option<i64>, Option<String>) {
        env.db()
            .query_row(
                "SELECT last_heartbeat_at, last_heartbeat_error FROM integrations \
                 WHERE tenant_id = ?1",
                [tenant],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    for ok in [&tenants[0], &tenants[3]] {
        let (at, error) = outcome(ok);
        assert!(at.is_some() && error.is_none(), "{ok}: {error:?}");
    }
    let (at, error) = outcome(&tenants[1]);
    assert!(at.is_none());
    assert!(error.unwrap().starts_with(
        "sending the heartbeat failed: Microsoft reported a failure: HttpStatusCode 500"
    ));
    let (at, error) = outcome(&tenants[2]);
    assert!(at.is_none());
    assert!(
        error
            .unwrap()
            .starts_with("sending the heartbeat failed: Microsoft could not be reached")
    );
}

#[test]
fn steady_state_costs_one_microsoft_call_per_push_and_none_per_settings() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    let first = push(&env, &tenant, &secret); // warms the user cache
    env.sim.clear_requests();

    let message = push(&env, &tenant, &secret);
    assert_eq!(
        env.sim.requests().len(),
        1,
        "device push: {:#?}",
        env.sim.requests()
    );

    env.sim.clear_requests();
    assert_eq!(poll(&env, &tenant, &secret, &message).status, 200);
    assert_eq!(env.sim.requests().len(), 1, "pending poll");

    for _ in 0..3 {
        poll(&env, &tenant, &secret, &first);
    }
    env.sim.clear_requests();
    assert_eq!(
        poll(&env, &tenant, &secret, &first).json()["status"],
        "Completed"
    );
    assert_eq!(env.sim.requests().len(), 0, "terminal poll");

    assert_eq!(env.settings(&tenant, &secret).status, 200);
    assert_eq!(env.sim.requests().len(), 0, "settings");

    // Two tokens (Graph, Intune) were fetched during setup and reused since.
    assert_eq!(token_requests(&env, &tenant).len(), 2);
}
