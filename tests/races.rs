//! Requests that overlap one another or outlive their timeout: whatever the
//! order, Microsoft and the database end up telling the same story.

mod common;

use std::time::Duration;

use common::*;
use compliance_proxy::simulator::Fault;
use serde_json::json;

const DEVICE: &str = "/api/v1/microsoft-compliance-partner/device";
const FLEET_PAGE: &str = "https://fleet.example.com/settings/integrations/conditional-access";

/// How many simulator requests have arrived but are not answered yet.
fn held(env: &TestEnv) -> usize {
    env.sim.arrivals() as usize - env.sim.requests().len()
}

fn integration_row(env: &TestEnv, tenant: &str) -> Option<(i64, i64, i64)> {
    env.db()
        .query_row(
            "SELECT admin_consented, provisioned, setup_done FROM integrations \
             WHERE tenant_id = ?1",
            [tenant],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .ok()
}

#[test]
fn a_setup_cut_off_by_the_request_timeout_still_finishes_and_is_recorded() {
    let env = TestEnv::start_with(|c| c.limits.request_timeout = Duration::from_secs(1));
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    env.sim
        .add_fault(Fault::on("POST", "/PartnerCompliancePolicies").delay(Duration::from_secs(2)));

    let reply = env.follow_consent(&env.consent_url(&tenant, &secret));
    assert_eq!(reply.status, 503, "{}", reply.body);
    let told = "did not finish within 1s; the setup it started goes on, and the conditional \
                access settings page in Fleet will show its outcome";
    assert!(reply.body.contains(told), "{}", reply.body);

    wait_until("setup to finish", || {
        integration_row(&env, &tenant).is_some_and(|(_, _, done)| done == 1)
    });
    let settings = env.settings(&tenant, &secret).json();
    assert_eq!(settings["setup_done"], true, "{settings}");
    assert_eq!(settings["setup_error"], serde_json::Value::Null);
    let at_microsoft = env.sim.tenant(&tenant).unwrap();
    assert_eq!(at_microsoft.provisioned, 1);
    assert_eq!(env.sim.count("POST", "/Assign"), 1, "policy assigned");
}

#[test]
fn an_upload_cut_off_by_the_request_timeout_that_then_fails_leaves_no_message() {
    let env = TestEnv::start_with(|c| c.limits.request_timeout = Duration::from_secs(1));
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    env.sim.add_fault(
        Fault::on("PUT", "/DataUploadMessages")
            .status(500)
            .delay(Duration::from_millis(1500))
            .times(2),
    );

    let reply = env.post(DEVICE, &device(&tenant, &secret));
    assert_eq!(reply.status, 503, "{}", reply.body);
    // Stored before the upload, and still there while Microsoft is slow.
    assert_eq!(env.db_count("SELECT COUNT(*) FROM messages"), 1);

    wait_until("the failed upload to be answered twice", || {
        env.sim.count("PUT", "/DataUploadMessages") == 2
    });
    wait_until("the failed upload's message to be removed", || {
        env.db_count("SELECT COUNT(*) FROM messages") == 0
    });
}

#[test]
fn a_delete_during_setup_waits_for_it_and_deprovisions() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let link = env.consent_url(&tenant, &secret);
    env.sim
        .add_fault(Fault::on("PUT", "/PartnerTenants").delay(Duration::from_millis(1500)));

    std::thread::scope(|s| {
        let consent = s.spawn(|| env.follow_consent(&link));
        wait_until("provisioning to be held at Microsoft", || held(&env) == 1);
        assert_eq!(
            integration_row(&env, &tenant),
            Some((1, 0, 0)),
            "setup under way"
        );

        let deleted = env.delete(&format!(
            "{API}?entraTenantId={tenant}&fleetServerSecret={secret}"
        ));
        assert_eq!(deleted.status, 200, "{}", deleted.body);
        assert_eq!(deleted.body, "{}");
        assert_eq!(consent.join().unwrap().status, 302);
    });

    assert_eq!(integration_row(&env, &tenant), None);
    let at_microsoft = env.sim.tenant(&tenant).unwrap();
    assert_eq!(at_microsoft.provisioned, 2, "deprovisioned after the setup");
    assert_eq!(
        env.sim.count("PUT", "/PartnerTenants"),
        2,
        "provision, then deprovision"
    );
}

#[test]
fn a_create_during_setup_waits_for_it_and_then_conflicts() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let link = env.consent_url(&tenant, &secret);
    env.sim
        .add_fault(Fault::on("PUT", "/PartnerTenants").delay(Duration::from_millis(1500)));

    std::thread::scope(|s| {
        let consent = s.spawn(|| env.follow_consent(&link));
        wait_until("provisioning to be held at Microsoft", || held(&env) == 1);

        let again = env.post(API, &json!({ "entraTenantId": tenant }));
        assert_eq!(again.status, 409, "{}", again.body);
        assert_eq!(
            again.error(),
            format!("an integration for tenant {tenant} is already set up; delete it first")
        );
        assert_eq!(consent.join().unwrap().status, 302);
    });

    // The first secret still works: the set-up row was not replaced.
    assert_eq!(env.settings(&tenant, &secret).json()["setup_done"], true);
    assert_eq!(integration_row(&env, &tenant), Some((1, 1, 1)));
}

#[test]
fn a_device_report_overtaken_by_a_delete_is_refused_without_an_upload() {
    let env = TestEnv::start();
    report_overtaken_by_delete(&env, Fault::on("GET", "/v1.0/users("));
    assert_eq!(env.sim.count("PUT", "/DataUploadMessages"), 0);
}

#[test]
fn the_consent_link_of_an_expired_pending_integration_is_refused() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let link = env.consent_url(&tenant, &secret);
    // Older than the pending lifetime (7 days), though its link is not.
    env.age_integration(&tenant, 8);
    assert_eq!(env.settings(&tenant, &secret).status, 404, "gone for Fleet");

    let reply = env.follow_consent(&link);
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("This consent link is unknown, expired or already used."),
        "{}",
        reply.body
    );
    assert_eq!(integration_row(&env, &tenant), Some((0, 0, 0)));
    assert_eq!(
        env.sim.count("PUT", "/PartnerTenants"),
        0,
        "nothing provisioned"
    );
}

fn device(tenant: &str, secret: &str) -> serde_json::Value {
    json!({
        "entraTenantId": tenant, "fleetServerSecret": secret, "deviceId": new_tenant(),
        "userPrincipalName": "alex.doe@example.com", "deviceName": "Mac", "os": "macOS",
        "osVersion": "15.3.1", "compliant": true, "lastCheckInTime": 1_796_311_486,
    })
}

#[test]
fn a_second_consent_link_followed_during_setup_only_redirects() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let first = env.consent_url(&tenant, &secret);
    env.sim
        .add_fault(Fault::on("POST", "/Assign").delay(Duration::from_millis(1500)));

    std::thread::scope(|s| {
        let consent = s.spawn(|| env.follow_consent(&first));
        wait_until("the assignment to be held at Microsoft", || held(&env) == 1);

        // The admin opens settings again meanwhile and gets a fresh link.
        let second = env.consent_url(&tenant, &secret);
        assert_ne!(second, first);
        let reply = env.follow_consent(&second);
        assert_eq!(reply.status, 302, "{}", reply.body);
        assert_eq!(reply.header("location"), Some(FLEET_PAGE));
        assert_eq!(consent.join().unwrap().status, 302);
    });

    let settings = env.settings(&tenant, &secret).json();
    assert_eq!(settings["setup_done"], true, "{settings}");
    assert_eq!(settings["setup_error"], serde_json::Value::Null);
    assert_eq!(
        env.sim.count("PUT", "/PartnerTenants"),
        1,
        "provisioned once"
    );
    assert_eq!(env.sim.count("POST", "/Assign"), 1, "assigned once");
}

#[test]
fn an_upload_overtaken_by_a_delete_is_refused_as_unknown_credentials() {
    // Microsoft refuses the upload of a deprovisioned tenant; to Fleet the
    // integration is simply gone.
    let env = TestEnv::start();
    report_overtaken_by_delete(&env, Fault::on("PUT", "/DataUploadMessages"));
    assert_eq!(env.sim.count("PUT", "/DataUploadMessages"), 1);
}

/// Reports a device while `held_call` (a Microsoft call the report makes) is
/// held, deletes the integration meanwhile, and checks that the report is
/// answered 401 and that nothing is left behind.
fn report_overtaken_by_delete(env: &TestEnv, held_call: Fault) {
    let tenant = new_tenant();
    let secret = env.set_up(&tenant);
    env.sim
        .add_fault(held_call.delay(Duration::from_millis(1500)));

    std::thread::scope(|s| {
        let report = s.spawn(|| env.post(DEVICE, &device(&tenant, &secret)));
        wait_until("the call to be held at Microsoft", || held(env) == 1);

        let deleted = env.delete(&format!(
            "{API}?entraTenantId={tenant}&fleetServerSecret={secret}"
        ));
        assert_eq!(deleted.status, 200, "{}", deleted.body);

        let report = report.join().unwrap();
        assert_eq!(report.status, 401, "{}", report.body);
        assert_eq!(
            report.error(),
            "unknown tenant id or wrong fleet server secret"
        );
    });

    assert_eq!(env.db_count("SELECT COUNT(*) FROM messages"), 0);
    assert_eq!(env.db_count("SELECT COUNT(*) FROM integrations"), 0);
}

#[test]
fn a_setup_whose_integration_expires_meanwhile_undoes_its_provisioning() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let link = env.consent_url(&tenant, &secret);
    env.sim
        .add_fault(Fault::on("PUT", "/PartnerTenants").delay(Duration::from_millis(1500)));

    let other = new_tenant();
    std::thread::scope(|s| {
        let consent = s.spawn(|| env.follow_consent(&link));
        wait_until("provisioning to be held at Microsoft", || held(&env) == 1);

        // The integration passes its pending lifetime, and another tenant's
        // registration sweeps it away; the new row must not inherit its id
        // and with it the running setup.
        env.age_integration(&tenant, 8);
        env.create(&other);
        assert_eq!(integration_row(&env, &tenant), None);

        let reply = consent.join().unwrap();
        assert_eq!(reply.status, 404, "{}", reply.body);
        let told = "The integration expired while its setup ran; connect the tenant again \
                    from Fleet.";
        assert!(reply.body.contains(told), "{}", reply.body);
    });

    assert_eq!(integration_row(&env, &other), Some((0, 0, 0)), "untouched");
    assert_eq!(
        env.sim.tenant(&tenant).unwrap().provisioned,
        2,
        "deprovisioned"
    );
    assert_eq!(env.sim.count("POST", "/PartnerCompliancePolicies"), 0);
}

#[test]
fn a_status_poll_outliving_its_tenant_never_writes_into_another_tenants_message() {
    let env = TestEnv::start();
    let (a, b) = (new_tenant(), new_tenant());
    let secret_a = env.set_up(&a);
    let secret_b = env.set_up(&b);
    let message_a = env.post(DEVICE, &device(&a, &secret_a)).json()["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    env.sim.add_fault(
        Fault::on("GET", "/DataUploadMessages")
            .status_failed("rejected for tenant A")
            .delay(Duration::from_millis(1500)),
    );
    let poll = |tenant: &str, secret: &str, message: &str| {
        env.get(&format!(
            "{DEVICE}/message?entraTenantId={tenant}&fleetServerSecret={secret}\
             &messageId={message}"
        ))
    };

    let message_b = std::thread::scope(|s| {
        let polled = s.spawn(|| poll(&a, &secret_a, &message_a));
        wait_until("the poll to be held at Microsoft", || held(&env) == 1);

        // A is deleted under the running poll, and B's next message is the
        // first row stored after A's went.
        let deleted = env.delete(&format!(
            "{API}?entraTenantId={a}&fleetServerSecret={secret_a}"
        ));
        assert_eq!(deleted.status, 200, "{}", deleted.body);
        let reported = env.post(DEVICE, &device(&b, &secret_b));
        assert_eq!(reported.status, 200, "{}", reported.body);

        polled.join().unwrap();
        reported.json()["message_id"].as_str().unwrap().to_string()
    });

    let stored: (String, Option<String>) = env
        .db()
        .query_row(
            "SELECT status, detail FROM messages WHERE message_id = ?1",
            [&message_b],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        stored,
        ("NotStarted".to_string(), None),
        "B's message as stored"
    );
    let answer = poll(&b, &secret_b, &message_b).json();
    assert_ne!(answer["status"], "Failed", "{answer}");
}

#[test]
fn a_create_cut_off_by_the_request_timeout_is_abandoned() {
    let env = TestEnv::start_with(|c| c.limits.request_timeout = Duration::from_secs(1));
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let link = env.consent_url(&tenant, &secret);
    env.sim.remove_group(&tenant, GROUP);
    env.sim
        .add_fault(Fault::on("GET", "/v1.0/groups").delay(Duration::from_millis(2500)));

    std::thread::scope(|s| {
        let consent = s.spawn(|| env.follow_consent(&link));
        wait_until("the group lookup to be held at Microsoft", || {
            held(&env) == 1
        });

        // Fleet registers the tenant again while the setup holds it, and
        // gives up when told the request timed out.
        let again = env.post(API, &json!({ "entraTenantId": tenant }));
        assert_eq!(again.status, 503, "{}", again.body);
        assert_eq!(
            again.error(),
            "the request did not finish within 1s and was abandoned; retry it"
        );
        assert_eq!(consent.join().unwrap().status, 503, "the setup goes on");
    });
    wait_until("the setup to fail", || {
        env.db_count("SELECT COUNT(*) FROM integrations WHERE setup_error IS NOT NULL") == 1
    });

    // A consent callback waits for the tenant behind anything queued before
    // it, such as an abandoned create that had not been abandoned after all.
    let retry = env.consent_url(&tenant, &secret);
    assert_eq!(env.follow_consent(&retry).status, 302);
    assert_eq!(
        env.settings(&tenant, &secret).status,
        200,
        "the secret still works"
    );
}

#[test]
fn a_create_abandoned_while_the_database_is_locked_writes_nothing() {
    let env = TestEnv::start_with(|c| c.limits.request_timeout = Duration::from_secs(1));
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let row_id = || {
        env.db_count(&format!(
            "SELECT id FROM integrations WHERE tenant_id = '{tenant}'"
        ))
    };
    let before = row_id();

    // Another process (a `heartbeat` run, an operator's sqlite3) holds the
    // write lock for longer than the request may take.
    let holder = rusqlite::Connection::open(&env.db_path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let again = env.post(API, &json!({ "entraTenantId": tenant }));
    assert_eq!(again.status, 503, "{}", again.body);
    assert_eq!(
        again.error(),
        "the request did not finish within 1s and was abandoned; retry it"
    );
    holder.execute_batch("COMMIT").unwrap();

    // The create's write was waiting for the lock when it was abandoned. It
    // retries within 100 ms of the lock's release; watch well past that.
    let watch = std::time::Instant::now();
    while watch.elapsed() < Duration::from_millis(1500) {
        assert_eq!(row_id(), before, "the integration was not replaced");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        env.settings(&tenant, &secret).status,
        200,
        "the secret still works"
    );
}

#[test]
fn a_setup_whose_integration_another_process_removes_meanwhile_says_so() {
    let env = TestEnv::start();
    let tenant = new_tenant();
    let secret = env.create(&tenant);
    let link = env.consent_url(&tenant, &secret);
    env.sim
        .add_fault(Fault::on("POST", "/Assign").delay(Duration::from_millis(2500)));

    std::thread::scope(|s| {
        let consent = s.spawn(|| env.follow_consent(&link));
        wait_until("the assignment to be held at Microsoft", || held(&env) == 1);

        // The tenant is provisioned by now; past its pending lifetime, a
        // `heartbeat` run's maintenance (which takes no lock of `serve`'s)
        // deprovisions and deletes it.
        env.age_integration(&tenant, 8);
        let output = env
            .command(&["heartbeat"])
            .env("COMPLIANCE_PROXY_PUBLIC_URL", env.url(""))
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{log}");
        assert!(log.contains("pending_expired=1"), "{log}");

        let reply = consent.join().unwrap();
        assert_eq!(reply.status, 404, "{}", reply.body);
        let told = "The integration expired while its setup ran; connect the tenant again \
                    from Fleet.";
        assert!(reply.body.contains(told), "{}", reply.body);
    });

    assert_eq!(integration_row(&env, &tenant), None, "not written back");
}
