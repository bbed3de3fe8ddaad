//! Admin consent and the token endpoint.

use std::time::Duration;

use super::*;

fn consent_url(sim: &Simulator, client_id: &str, redirect_uri: &str) -> String {
    let query = form(&[
        ("client_id", client_id),
        ("state", "st ate"),
        ("redirect_uri", redirect_uri),
    ]);
    format!("{}/{TENANT}/adminconsent?{query}", sim.login_url())
}

/// Consent redirects straight back with tenant, state and admin_consent,
/// appending to an existing query, and records the consent.
#[tokio::test]
async fn consent_redirects_back_and_marks_the_tenant_consented() {
    let sim = start().await;
    let client = SimConfig::DEFAULT_CLIENT_ID;

    let answer = call(
        "GET",
        &consent_url(&sim, client, "https://fleet.example.com/cb"),
        &[],
        "",
    )
    .await;
    assert_eq!(answer.status, 302);
    let expected =
        format!("https://fleet.example.com/cb?tenant={TENANT}&state=st%20ate&admin_consent=True");
    assert_eq!(answer.header("location"), Some(expected.as_str()));
    assert!(sim.tenant(TENANT).unwrap().consented);

    let answer = call(
        "GET",
        &consent_url(&sim, client, "http://h:8080/cb?x=1"),
        &[],
        "",
    )
    .await;
    let location = answer.header("location").unwrap();
    assert!(
        location.starts_with("http://h:8080/cb?x=1&tenant="),
        "{location}"
    );
}

/// A wrong client id or an unusable redirect_uri gets an HTML error page.
#[tokio::test]
async fn consent_rejects_unknown_clients_and_relative_redirects() {
    let sim = start().await;
    let wrong_client = consent_url(
        &sim,
        "11111111-1111-4111-8111-111111111111",
        "https://a.b/c",
    );
    let answer = call("GET", &wrong_client, &[], "").await;
    assert_eq!(answer.status, 400);
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(answer.body.contains("AADSTS700016"));

    let relative = consent_url(&sim, SimConfig::DEFAULT_CLIENT_ID, "/callback");
    assert_eq!(call("GET", &relative, &[], "").await.status, 400);
    assert!(!sim.tenant(TENANT).is_some_and(|t| t.consented));
}

/// Tokens for both audiences, with numeric lifetimes, unique each time; the
/// single-slash Intune scope also works and is recorded.
#[tokio::test]
async fn tokens_are_issued_after_consent() {
    let sim = start().await;
    sim.grant_consent(TENANT);
    let graph = request_token(&sim, TENANT, GRAPH_SCOPE).await;
    assert_eq!(graph.status, 200, "{}", graph.body);
    let body = graph.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["ext_expires_in"], 3600);

    let intune = request_token(&sim, TENANT, INTUNE_SCOPE).await.json();
    assert_ne!(intune["access_token"], body["access_token"]);
    let single = "https://api.manage.microsoft.com/.default";
    assert_eq!(request_token(&sim, TENANT, single).await.status, 200);
    let scopes = sim.tenant(TENANT).unwrap().token_scopes;
    assert_eq!(scopes, [GRAPH_SCOPE, INTUNE_SCOPE, single]);
}

/// Without consent, or after it is revoked, Entra answers AADSTS700016; a
/// revoked tenant's tokens stop working too.
#[tokio::test]
async fn tokens_need_consent() {
    let sim = start().await;
    let answer = request_token(&sim, TENANT, GRAPH_SCOPE).await;
    assert_eq!(answer.status, 400);
    let body = answer.json();
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(body["error_codes"], json!([700016]));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS700016:")
    );

    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    sim.revoke_consent(TENANT);
    assert_eq!(request_token(&sim, TENANT, GRAPH_SCOPE).await.status, 400);
    let groups = format!("{}/v1.0/groups", sim.graph_url());
    assert_eq!(authed("GET", &groups, &graph, None).await.status, 401);
}

/// Wrong credentials are `invalid_client` with a 401.
#[tokio::test]
async fn tokens_need_the_right_client_and_secret() {
    let sim = start().await;
    sim.grant_consent(TENANT);
    let wrong_secret = form(&[
        ("client_id", SimConfig::DEFAULT_CLIENT_ID),
        ("client_secret", "nope"),
        ("grant_type", "client_credentials"),
        ("scope", GRAPH_SCOPE),
    ]);
    let answer = post_form(&sim, TENANT, &wrong_secret).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["error"], "invalid_client");
    assert_eq!(answer.json()["error_codes"], json!([7000215]));

    let wrong_client = wrong_secret.replace(SimConfig::DEFAULT_CLIENT_ID, "someone-else");
    let answer = post_form(&sim, TENANT, &wrong_client).await;
    assert_eq!(
        (answer.status, answer.json()["error"].clone()),
        (401, json!("invalid_client"))
    );
}

/// Grant type, scope, content type and tenant are all checked.
#[tokio::test]
async fn tokens_reject_bad_grants_scopes_and_forms() {
    let sim = start().await;
    sim.grant_consent(TENANT);
    let base = [
        ("client_id", SimConfig::DEFAULT_CLIENT_ID),
        ("client_secret", SimConfig::DEFAULT_CLIENT_SECRET),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        form(&pairs)
    };
    let cases = [
        (
            with(&[("grant_type", "password"), ("scope", GRAPH_SCOPE)]),
            "unsupported_grant_type",
        ),
        (
            with(&[("grant_type", "client_credentials")]),
            "invalid_request",
        ),
        (
            with(&[
                ("grant_type", "client_credentials"),
                ("scope", "https://graph.microsoft.com"),
            ]),
            "invalid_scope",
        ),
    ];
    for (body, error) in cases {
        let answer = post_form(&sim, TENANT, &body).await;
        assert_eq!(
            (answer.status, answer.json()["error"].clone()),
            (400, json!(error)),
            "{body}"
        );
    }

    let url = format!("{}/{TENANT}/oauth2/v2.0/token", sim.login_url());
    let body = with(&[("grant_type", "client_credentials"), ("scope", GRAPH_SCOPE)]);
    let as_json = call("POST", &url, &[("Content-Type", "application/json")], &body).await;
    assert_eq!(as_json.status, 400);
    let not_a_tenant = post_form(&sim, "contoso.com", &body).await;
    assert_eq!(not_a_tenant.json()["error_codes"], json!([90002]));
    let v1 = format!("{}/{TENANT}/oauth2/token", sim.login_url());
    assert_eq!(call("POST", &v1, &[], "").await.status, 404);
    assert_eq!(call("GET", &url, &[], "").await.status, 405);
}

/// The v1-style string lifetimes can be switched on; a zero lifetime gives
/// tokens that are already expired.
#[tokio::test]
async fn lifetimes_can_be_strings_and_tokens_expire() {
    let config = SimConfig {
        expires_in_as_string: true,
        token_lifetime: Duration::ZERO,
        ..SimConfig::default()
    };
    let sim = start_with(config).await;
    sim.grant_consent(TENANT);
    let body = request_token(&sim, TENANT, GRAPH_SCOPE).await.json();
    assert_eq!(body["expires_in"], "0");
    let token = body["access_token"].as_str().unwrap();
    let groups = format!("{}/v1.0/groups", sim.graph_url());
    assert_eq!(authed("GET", &groups, token, None).await.status, 401);
}

/// The consent-refused fault redirects back with `error` and the state,
/// and does not consent.
#[tokio::test]
async fn consent_can_be_refused() {
    let sim = start().await;
    sim.add_fault(crate::simulator::Fault::on("GET", "/adminconsent").consent_refused());
    let url = consent_url(
        &sim,
        SimConfig::DEFAULT_CLIENT_ID,
        "https://fleet.example.com/cb",
    );
    let answer = call("GET", &url, &[], "").await;
    assert_eq!(answer.status, 302);
    let location = answer.header("location").unwrap();
    assert!(
        location.starts_with("https://fleet.example.com/cb?error=access_denied&"),
        "{location}"
    );
    assert!(location.contains("&state=st%20ate") && !location.contains("admin_consent"));
    assert!(!sim.tenant(TENANT).is_some_and(|t| t.consented));
}
