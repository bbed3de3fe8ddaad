//! Fault rules: statuses, counts, tenants, delays, dropped connections and
//! each in-band failure.

use std::time::{Duration, Instant};

use super::device_sync::{known_user, message_url, records, upload_body};
use super::*;
use crate::simulator::Fault;

fn policies_url(sim: &Simulator) -> String {
    format!(
        "{}/PartnerCompliancePolicies?api-version=1.6",
        tenant_sync(sim)
    )
}

/// A status fault answers once with a Graph-style body, then normal
/// handling resumes; `times` and `always` repeat.
#[tokio::test]
async fn status_faults_fire_the_given_number_of_times() {
    let sim = start().await;
    let intune = provisioned(&sim).await;
    sim.add_fault(Fault::on("POST", "/PartnerCompliancePolicies").status(409));
    let body = policy_body("macOS");
    let conflict = authed("POST", &policies_url(&sim), &intune, Some(&body)).await;
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.json()["error"]["code"], "Conflict");
    assert_eq!(
        authed("POST", &policies_url(&sim), &intune, Some(&body))
            .await
            .status,
        201
    );

    sim.add_fault(
        Fault::on("get", "/PartnerCompliancePolicies")
            .status(500)
            .times(2),
    );
    for expected in [500, 500, 200] {
        assert_eq!(
            authed("GET", &policies_url(&sim), &intune, None)
                .await
                .status,
            expected
        );
    }
    sim.add_fault(
        Fault::on("*", "/PartnerCompliancePolicies")
            .status(502)
            .always(),
    );
    for _ in 0..3 {
        assert_eq!(
            authed("GET", &policies_url(&sim), &intune, None)
                .await
                .status,
            502
        );
    }
    sim.clear_faults();
    assert_eq!(
        authed("GET", &policies_url(&sim), &intune, None)
            .await
            .status,
        200
    );
}

/// Every supported status comes back as asked, 429/503 with `Retry-After`
/// and 401 with `WWW-Authenticate`.
#[tokio::test]
async fn status_faults_carry_their_headers() {
    let sim = start().await;
    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    let url = format!("{}/v1.0/groups", sim.graph_url());
    for status in [400, 401, 403, 404, 409, 429, 500, 502, 503, 504] {
        sim.add_fault(
            Fault::on("GET", "/v1.0/groups")
                .status(status)
                .retry_after(7),
        );
        let answer = authed("GET", &url, &graph, None).await;
        assert_eq!(answer.status, status);
        assert_eq!(answer.header("retry-after"), Some("7"));
        assert!(answer.json()["error"]["code"].is_string());
        assert_eq!(answer.header("www-authenticate").is_some(), status == 401);
    }
}

/// Faults can be limited to one tenant; on the token endpoint they use the
/// OAuth error shape.
#[tokio::test]
async fn tenant_scoped_faults_and_token_endpoint_shape() {
    let sim = start().await;
    sim.grant_consent(OTHER_TENANT);
    sim.grant_consent(TENANT);
    sim.add_fault(
        Fault::on("POST", "/oauth2/v2.0/token")
            .tenant(TENANT)
            .status(503),
    );
    assert_eq!(
        request_token(&sim, OTHER_TENANT, GRAPH_SCOPE).await.status,
        200
    );
    let failed = request_token(&sim, TENANT, GRAPH_SCOPE).await;
    assert_eq!(failed.status, 503);
    let body = failed.json();
    assert!(body["error"].is_string());
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS")
    );

    sim.add_fault(Fault::on("POST", "/oauth2/v2.0/token").aadsts700016());
    let refused = request_token(&sim, TENANT, GRAPH_SCOPE).await;
    assert_eq!(
        (refused.status, refused.json()["error_codes"].clone()),
        (400, json!([700016]))
    );
    assert_eq!(request_token(&sim, TENANT, GRAPH_SCOPE).await.status, 200);
}

/// A delay holds the answer back, then answers normally; a dropped
/// connection gets no answer at all and is recorded with status 0.
#[tokio::test]
async fn delays_and_dropped_connections() {
    let sim = start().await;
    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    let url = format!("{}/v1.0/groups", sim.graph_url());
    sim.add_fault(Fault::on("GET", "/v1.0/groups").delay(Duration::from_millis(150)));
    let started = Instant::now();
    assert_eq!(authed("GET", &url, &graph, None).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    sim.add_fault(Fault::on("GET", "/v1.0/groups").drop_connection());
    let bearer = format!("Bearer {graph}");
    assert!(
        send("GET", &url, &[("Authorization", &bearer)], "")
            .await
            .is_err()
    );
    let last = sim.requests().pop().unwrap();
    assert_eq!((last.path.as_str(), last.status), ("/v1.0/groups", 0));
    assert_eq!(authed("GET", &url, &graph, None).await.status, 200);
}

/// `PartnerTenants` in-band failures: `Provisioned: 0`, or an `ErrorDetail`;
/// neither changes the tenant.
#[tokio::test]
async fn provisioning_in_band_failures() {
    let sim = start().await;
    let intune = token(&sim, TENANT, INTUNE_SCOPE).await;
    sim.add_fault(Fault::on("PUT", "/PartnerTenants(").provisioned_zero());
    let zero = put_partner_tenant(&sim, &intune, 1).await.json();
    assert_eq!(zero["Provisioned"], 0);
    assert!(zero["ErrorDetail"].is_string());
    sim.add_fault(Fault::on("PUT", "/PartnerTenants(").error_detail("connector missing"));
    let detail = put_partner_tenant(&sim, &intune, 1).await.json();
    assert_eq!(
        (detail["Provisioned"].clone(), detail["ErrorDetail"].clone()),
        (json!(1), json!("connector missing"))
    );
    assert_eq!(sim.tenant(TENANT).unwrap().provisioned, 0);
}

/// Policy create's 204 variants: null `Location` even when provisioned,
/// and a real `Location` for a created policy.
#[tokio::test]
async fn policy_location_variants() {
    let sim = start().await;
    let intune = provisioned(&sim).await;
    sim.add_fault(Fault::on("POST", "/PartnerCompliancePolicies").policy_null_location());
    let null = authed(
        "POST",
        &policies_url(&sim),
        &intune,
        Some(&policy_body("macOS")),
    )
    .await;
    assert_eq!(null.status, 204);
    assert!(
        null.header("location")
            .unwrap()
            .contains("00000000-0000-0000-0000-000000000000")
    );

    sim.add_fault(Fault::on("POST", "/PartnerCompliancePolicies").policy_location());
    let real = authed(
        "POST",
        &policies_url(&sim),
        &intune,
        Some(&policy_body("macOS")),
    )
    .await;
    assert_eq!(real.status, 204);
    let id = sim.tenant(TENANT).unwrap().policies[1].id.clone();
    assert!(
        real.header("location")
            .unwrap()
            .ends_with(&format!("(guid'{id}')"))
    );
}

/// Heartbeat failure: 200 with `HttpStatusCode` 500 and `MessageErrors`.
#[tokio::test]
async fn heartbeat_in_band_failure() {
    let sim = start().await;
    let intune = provisioned(&sim).await;
    sim.add_fault(Fault::on("PUT", "PartnerTenantHeartbeat").heartbeat_failure());
    let url = format!(
        "{}/PartnerTenantHeartbeat(guid'{TENANT}')?api-version=1.6",
        tenant_sync(&sim)
    );
    let beat = json!({"Timestamp": "2025-05-14T10:00:00Z"});
    let answer = authed("PUT", &url, &intune, Some(&beat)).await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["HttpStatusCode"], 500);
    assert!(!body["MessageErrors"].as_array().unwrap().is_empty());
    assert!(sim.tenant(TENANT).unwrap().heartbeats.is_empty());
}

/// Upload rejected with another `ErrorCode`; a status poll forced to
/// `Failed`, which then sticks.
#[tokio::test]
async fn upload_and_status_in_band_failures() {
    let sim = start().await;
    let intune = provisioned(&sim).await;
    let user = known_user(&sim).await;
    let message = "3c0ffee0-0000-4000-8000-0000000000f1";
    let body = upload_body(&records(&user, true));
    sim.add_fault(Fault::on("PUT", "DataUploadMessages").upload_error_code("404"));
    let rejected = authed("PUT", &message_url(&sim, message), &intune, Some(&body))
        .await
        .json();
    assert_eq!(rejected["ErrorCode"], "404");
    assert!(rejected["ErrorDetail"].is_string());

    let accepted = authed("PUT", &message_url(&sim, message), &intune, Some(&body))
        .await
        .json();
    assert_eq!(accepted["ErrorCode"], "202");
    sim.add_fault(Fault::on("GET", message).status_failed("device not found"));
    for _ in 0..2 {
        let status = authed("GET", &message_url(&sim, message), &intune, None)
            .await
            .json();
        assert_eq!(
            (status["Status"].clone(), status["ErrorDetail"].clone()),
            (json!("Failed"), json!("device not found"))
        );
    }
}
