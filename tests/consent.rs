//! The admin-consent redirect: what authenticates it, what it records, and
//! where it sends the browser.

mod common;

use common::*;

const CONSENT: &str = "/api/v1/microsoft-compliance-partner/adminconsent";
const FLEET_PAGE: &str = "https://fleet.example.com/settings/integrations/conditional-access";
const REFUSED: &str = "A Microsoft Entra admin did not consent to the permissions requested by \
                       the conditional access integration.";

/// Sends the browser's request to our consent callback.
fn callback(env: &TestEnv, query: &str) -> Reply {
    env.send("GET", &env.url(&format!("{CONSENT}?{query}")), &[], None)
}

#[test]
fn consent_link_has_microsofts_parameters_and_a_stable_state() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);

    let settings = env.settings(&tenant, &secret).json();
    assert_eq!(settings["setup_done"], false);
    assert_eq!(settings["admin_consented"], false);
    let link = settings["admin_consent_url"].as_str().unwrap().to_string();
    let redirect = format!("{}{CONSENT}", env.url(""));
    let expected_prefix = format!(
        "{}/{tenant}/adminconsent?client_id={}&state=",
        env.config().microsoft.login_url,
        env.config().microsoft.client_id
    );
    assert!(link.starts_with(&expected_prefix), "{link}");
    let encoded_redirect: String = form_urlencoded::byte_serialize(redirect.as_bytes()).collect();
    assert!(
        link.ends_with(&format!("&redirect_uri={encoded_redirect}")),
        "{link}"
    );
    assert_eq!(TestEnv::state_of(&link).len(), 32);

    // An open consent page keeps working while Fleet polls settings.
    assert_eq!(env.consent_url(&tenant, &secret), link);
    // The database holds only a hash of the state.
    let plain = env.db_count(&format!(
        "SELECT COUNT(*) FROM integrations WHERE consent_state_hash = '{}' \
         OR consent_nonce = '{}'",
        TestEnv::state_of(&link),
        TestEnv::state_of(&link)
    ));
    assert_eq!(plain, 0);
}

#[test]
fn refused_consent_records_the_fixed_error_and_returns_to_fleet() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let state = TestEnv::state_of(&env.consent_url(&tenant, &secret));
    env.sim.clear_requests();

    let reply = callback(
        &env,
        &format!("error=access_denied&error_description=The+admin+canceled&state={state}"),
    );
    assert_eq!(reply.status, 302, "{}", reply.body);
    assert_eq!(reply.header("location"), Some(FLEET_PAGE));

    let settings = env.settings(&tenant, &secret).json();
    assert_eq!(settings["setup_error"], REFUSED);
    assert_eq!(settings["setup_done"], false);
    assert_eq!(settings["admin_consented"], false);
    // Refusal needs no Microsoft call, and the refused state is used up.
    assert!(env.sim.requests().is_empty(), "{:?}", env.sim.requests());
    assert_ne!(
        TestEnv::state_of(settings["admin_consent_url"].as_str().unwrap()),
        state
    );
    let again = callback(
        &env,
        &format!("tenant={tenant}&state={state}&admin_consent=True"),
    );
    assert_eq!(again.status, 404);
}

#[test]
fn consent_callback_errors_are_html_pages() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let state = TestEnv::state_of(&env.consent_url(&tenant, &secret));
    let other = new_tenant();

    let cases = [
        (
            "no state",
            format!("tenant={tenant}&admin_consent=True"),
            400,
            "The state parameter is missing.",
        ),
        (
            "empty state",
            format!("tenant={tenant}&state=&admin_consent=True"),
            400,
            "The state parameter is missing.",
        ),
        (
            "no tenant",
            format!("state={state}&admin_consent=True"),
            400,
            "The tenant parameter is missing.",
        ),
        (
            "tenant not a GUID",
            format!("tenant=contoso&state={state}&admin_consent=True"),
            400,
            "The tenant parameter is not a GUID.",
        ),
        (
            "all-zero tenant",
            format!("tenant=00000000-0000-0000-0000-000000000000&state={state}&admin_consent=True"),
            400,
            "The tenant parameter is the all-zero GUID, which names nothing.",
        ),
        (
            "unknown state",
            format!("tenant={tenant}&state=0123456789abcdef&admin_consent=True"),
            404,
            "This consent link is unknown, expired or already used.",
        ),
        (
            "other tenant",
            format!("tenant={other}&state={state}&admin_consent=True"),
            404,
            "This consent link is unknown, expired or already used.",
        ),
        (
            "consent not granted",
            format!("tenant={tenant}&state={state}"),
            400,
            "The admin_consent=True parameter is missing.",
        ),
        (
            "state twice",
            format!("tenant={tenant}&state={state}&state=x&admin_consent=True"),
            400,
            "The state parameter is given more than once.",
        ),
    ];
    for (name, query, status, text) in cases {
        let reply = callback(&env, &query);
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{name}"
        );
        assert!(reply.body.contains(text), "{name}: {}", reply.body);
    }

    // None of them used up the state: the real redirect still works.
    let reply = callback(
        &env,
        &format!("tenant={tenant}&state={state}&admin_consent=True"),
    );
    assert_eq!(reply.status, 302, "{}", reply.body);
    assert_eq!(reply.header("location"), Some(FLEET_PAGE));
}

#[test]
fn a_used_state_is_refused() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let link = env.consent_url(&tenant, &secret);
    assert_eq!(env.follow_consent(&link).status, 302);

    let reply = env.follow_consent(&link);
    assert_eq!(reply.status, 404);
    assert!(
        reply
            .body
            .contains("This consent link is unknown, expired or already used.")
    );
}

#[test]
fn an_expired_state_is_refused_and_settings_hands_out_a_new_one() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let link = env.consent_url(&tenant, &secret);

    // Age the state past its lifetime.
    let db = rusqlite::Connection::open(&env.db_path).unwrap();
    db.execute(
        "UPDATE integrations SET consent_expires_at = consent_expires_at - 86401",
        [],
    )
    .unwrap();

    let reply = env.follow_consent(&link);
    assert_eq!(reply.status, 404, "{}", reply.body);
    let fresh = env.consent_url(&tenant, &secret);
    assert_ne!(TestEnv::state_of(&fresh), TestEnv::state_of(&link));
    assert_eq!(env.follow_consent(&fresh).status, 302);
    assert_eq!(env.settings(&tenant, &secret).json()["setup_done"], true);
}

#[test]
fn a_missing_group_fails_setup_with_the_exact_text() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let link = env.consent_url(&tenant, &secret);
    env.sim.remove_group(&tenant, GROUP);

    let reply = env.follow_consent(&link);
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header("location"), Some(FLEET_PAGE));

    let settings = env.settings(&tenant, &secret).json();
    assert_eq!(
        settings["setup_error"],
        "No \"Fleet conditional access\" Entra ID group was found on this Entra tenant."
    );
    assert_eq!(settings["setup_done"], false);
    assert_eq!(settings["admin_consented"], true);
    assert!(
        settings["admin_consent_url"].is_string(),
        "setup can be retried: {settings}"
    );
    assert_eq!(env.sim.tenant(&tenant).unwrap().provisioned, 1);
}

#[test]
fn a_pending_integration_is_replaced_but_a_set_up_one_is_not() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let first = env.create(&tenant);
    let old_link = env.consent_url(&tenant, &first);

    let second = env.create(&tenant);
    assert_ne!(first, second);
    assert_eq!(env.settings(&tenant, &first).status, 404);
    assert_eq!(env.follow_consent(&old_link).status, 404);

    assert_eq!(
        env.follow_consent(&env.consent_url(&tenant, &second))
            .status,
        302
    );
    let reply = env.post(API, &serde_json::json!({ "entraTenantId": tenant }));
    assert_eq!(reply.status, 409);
    assert_eq!(env.settings(&tenant, &second).json()["setup_done"], true);
}

#[test]
fn concurrent_settings_calls_hand_out_one_working_link() {
    let env = std::sync::Arc::new(TestEnv::start());
    let tenant = new_tenant();
    let secret = env.create(&tenant);

    let calls: Vec<_> = (0..20)
        .map(|_| {
            let (env, tenant, secret) = (env.clone(), tenant.clone(), secret.clone());
            std::thread::spawn(move || env.consent_url(&tenant, &secret))
        })
        .collect();
    let mut links: Vec<String> = calls.into_iter().map(|c| c.join().unwrap()).collect();
    links.sort();
    links.dedup();
    assert_eq!(links.len(), 1, "{links:#?}");
    assert_eq!(env.follow_consent(&links[0]).status, 302);
    assert_eq!(env.settings(&tenant, &secret).json()["setup_done"], true);
}

/// A setup that failed after provisioning the tenant, as a missing group
/// leaves it: pending, consented, and provisioned at Microsoft.
fn fail_setup_after_provisioning(env: &TestEnv, tenant: &str) -> String {
    let secret = env.create(tenant);
    let link = env.consent_url(tenant, &secret);
    env.sim.remove_group(tenant, GROUP);
    assert_eq!(env.follow_consent(&link).status, 302);
    assert_eq!(env.sim.tenant(tenant).unwrap().provisioned, 1);
    secret
}

#[test]
fn a_create_replacing_a_provisioned_pending_integration_still_deprovisions_on_delete() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    fail_setup_after_provisioning(&env, &tenant);

    // Fleet lost its secret and registers the tenant again.
    let secret = env.create(&tenant);
    let provisioned = env.db_count(&format!(
        "SELECT provisioned FROM integrations WHERE tenant_id = '{tenant}'"
    ));
    assert_eq!(
        provisioned, 1,
        "the new row knows Microsoft holds the tenant"
    );

    let deleted = env.delete(&format!(
        "{API}?entraTenantId={tenant}&fleetServerSecret={secret}"
    ));
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(
        env.sim.tenant(&tenant).unwrap().provisioned,
        2,
        "deprovisioned"
    );
    assert_eq!(env.db_count("SELECT COUNT(*) FROM integrations"), 0);
}

#[test]
fn maintenance_deprovisions_a_stale_provisioned_pending_integration() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    fail_setup_after_provisioning(&env, &tenant);
    // Older than the pending lifetime (7 days).
    env.age_integration(&tenant, 8);
    let rows = "SELECT COUNT(*) FROM integrations";

    // A create's own sweep leaves it: only a deprovision may forget it.
    env.create(&new_tenant());
    assert_eq!(env.db_count(rows), 2);

    let maintain = |public_url: bool| {
        let mut heartbeat = env.command(&["heartbeat"]);
        if public_url {
            heartbeat.env("COMPLIANCE_PROXY_PUBLIC_URL", env.url(""));
        }
        let output = heartbeat.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // A kept integration fails the run, so that a timer unit shows it.
    let unchanged = |(code, log): &(Option<i32>, String)| {
        assert_eq!(*code, Some(1), "{log}");
        assert!(log.contains("pending_expired=0 expired_kept=1"), "{log}");
        assert_eq!(env.db_count(rows), 2);
        assert_eq!(env.sim.tenant(&tenant).unwrap().provisioned, 1);
    };

    // Without the public URL, Intune cannot be sent the pages again.
    let run = maintain(false);
    let kept = format!(
        "expired pending integration kept: its tenant is provisioned at Microsoft, and \
         deprovisioning it needs COMPLIANCE_PROXY_PUBLIC_URL (--public-url), or both \
         --enroll-url and --remediate-url tenant={tenant}"
    );
    assert!(run.1.contains(&kept), "{}", run.1);
    unchanged(&run);
    assert_eq!(
        env.sim.count("PUT", "/PartnerTenants"),
        1,
        "only the provisioning"
    );

    // Microsoft failing keeps the row for the next pass.
    env.sim.add_fault(
        compliance_proxy::simulator::Fault::on("PUT", "/PartnerTenants")
            .status(500)
            .times(2),
    );
    let run = maintain(true);
    assert!(
        run.1
            .contains("could not deprovision an expired integration"),
        "{}",
        run.1
    );
    unchanged(&run);

    let (code, log) = maintain(true);
    assert_eq!(code, Some(0), "{log}");
    let deleted = format!("expired pending integration deleted tenant={tenant} deprovisioned=true");
    assert!(log.contains(&deleted), "{log}");
    assert!(log.contains("pending_expired=1 expired_kept=0"), "{log}");
    assert_eq!(
        env.sim.tenant(&tenant).unwrap().provisioned,
        2,
        "deprovisioned"
    );
    assert_eq!(env.db_count(rows), 1, "only the fresh integration is left");
    let left = env.db_count(&format!(
        "SELECT COUNT(*) FROM integrations WHERE tenant_id = '{tenant}'"
    ));
    assert_eq!(left, 0);
}

#[test]
fn a_head_request_on_the_consent_redirect_uses_nothing_up() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let link = env.consent_url(&tenant, &secret);
    let state = TestEnv::state_of(&link);
    let query = format!("tenant={tenant}&state={state}&admin_consent=True");
    let before = env.db_snapshot();

    let reply = env.send("HEAD", &env.url(&format!("{CONSENT}?{query}")), &[], None);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET"));
    assert_eq!(reply.body, "", "no body on a HEAD answer");
    assert_eq!(env.db_snapshot(), before, "the state is still live");
    assert_eq!(env.sim.count("PUT", "/PartnerTenants"), 0, "no setup ran");

    // The admin's consent, and the browser's GET after it, still complete
    // the setup.
    let reply = env.follow_consent(&link);
    assert_eq!(reply.status, 302, "{}", reply.body);
    assert_eq!(env.settings(&tenant, &secret).json()["setup_done"], true);
}
