//! Partner tenant sync: provisioning, policies, assignment, heartbeats.

use super::*;

fn policies_url(sim: &Simulator) -> String {
    format!(
        "{}/PartnerCompliancePolicies?api-version=1.6",
        tenant_sync(sim)
    )
}

fn assign_url(sim: &Simulator, policy: &str) -> String {
    format!(
        "{}/PartnerCompliancePolicies(guid'{policy}')/Assign?api-version=1.6",
        tenant_sync(sim)
    )
}

fn heartbeat_url(sim: &Simulator) -> String {
    format!(
        "{}/PartnerTenantHeartbeat(guid'{TENANT}')?api-version=1.6",
        tenant_sync(sim)
    )
}

/// Provisioning is echoed and stored; deprovisioning keeps the URLs.
#[tokio::test]
async fn provisioning_is_stored_and_echoed() {
    let sim = start().await;
    let intune = token(&sim, TENANT, INTUNE_SCOPE).await;
    let answer = put_partner_tenant(&sim, &intune, 1).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!(
        (
            &body["ContextId"],
            &body["Provisioned"],
            &body["HttpStatusCode"],
            &body["ErrorDetail"]
        ),
        (&json!(TENANT), &json!(1), &json!(200), &Value::Null)
    );
    let snapshot = sim.tenant(TENANT).unwrap();
    assert_eq!(snapshot.provisioned, 1);
    assert!(snapshot.enrollment_url.unwrap().ends_with("/enroll"));

    let url = partner_tenant_url(&sim, TENANT);
    let deprovision = authed("PUT", &url, &intune, Some(&json!({"Provisioned": 2}))).await;
    assert_eq!(deprovision.json()["Provisioned"], 2);
    let snapshot = sim.tenant(TENANT).unwrap();
    assert_eq!(snapshot.provisioned, 2);
    assert!(snapshot.remediation_url.is_some());
}

/// The partner services check the token audience, `api-version`, the
/// literal key syntax, the key's tenant and the body.
#[tokio::test]
async fn partner_calls_are_strict() {
    let sim = start().await;
    let intune = token(&sim, TENANT, INTUNE_SCOPE).await;
    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    let body = json!({"Provisioned": 2});
    let base = tenant_sync(&sim);
    let key = format!("PartnerTenants(guid'{TENANT}')");
    let i = intune.as_str();
    let cases = [
        (format!("{base}/{key}?api-version=1.6"), graph.as_str(), 401),
        (format!("{base}/{key}?api-version=1.5"), i, 400),
        (format!("{base}/{key}"), i, 400),
        (format!("{base}/{key}}}?api-version=1.6"), i, 400),
        (
            format!("{base}/PartnerTenants%28guid%27{TENANT}%27%29?api-version=1.6"),
            i,
            400,
        ),
        (
            format!("{base}/PartnerTenants('{TENANT}')?api-version=1.6"),
            i,
            400,
        ),
        (partner_tenant_url(&sim, OTHER_TENANT), i, 403),
        (
            format!("{base}/PartnerThings(guid'{TENANT}')?api-version=1.6"),
            i,
            404,
        ),
        (
            format!("{}/{key}?api-version=1.6", device_sync(&sim)),
            i,
            404,
        ),
    ];
    for (url, token, status) in cases {
        assert_eq!(
            authed("PUT", &url, token, Some(&body)).await.status,
            status,
            "{url}"
        );
    }
    let url = partner_tenant_url(&sim, TENANT);
    assert_eq!(authed("GET", &url, &intune, None).await.status, 405);
    let typo = json!({"Provisioned": 1, "PartnerEnrolmentUrl": "https://x.example/enroll"});
    assert_eq!(authed("PUT", &url, &intune, Some(&typo)).await.status, 400);
    let zero = json!({"Provisioned": 0});
    assert_eq!(authed("PUT", &url, &intune, Some(&zero)).await.status, 400);
    let bearer = format!("Bearer {intune}");
    let no_type = call("PUT", &url, &[("Authorization", &bearer)], "{}").await;
    assert_eq!(no_type.status, 415);
}

/// Policy create: 204 with the null GUID before provisioning, 201 after,
/// 409 when run again; the list also holds another partner's policy.
#[tokio::test]
async fn policy_create_follows_provisioning() {
    let sim = start().await;
    let intune = token(&sim, TENANT, INTUNE_SCOPE).await;
    let body = policy_body("macOS");

    let early = authed("POST", &policies_url(&sim), &intune, Some(&body)).await;
    assert_eq!(early.status, 204);
    let location = early.header("location").unwrap();
    assert!(
        location.ends_with("PartnerCompliancePolicies(guid'00000000-0000-0000-0000-000000000000')")
    );
    assert_eq!(
        sim.tenant(TENANT).unwrap().policies.len(),
        1,
        "only the seeded policy"
    );

    assert_eq!(put_partner_tenant(&sim, &intune, 1).await.status, 200);
    let created = authed("POST", &policies_url(&sim), &intune, Some(&body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["Id"].as_str().unwrap().to_owned();
    assert_eq!(created.json()["Platform"], "macOS");
    assert!(created.header("location").unwrap().contains(&id));

    let again = authed("POST", &policies_url(&sim), &intune, Some(&body)).await;
    assert_eq!(again.status, 409);
    let listed = authed("GET", &policies_url(&sim), &intune, None)
        .await
        .json();
    let names: Vec<_> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["Id"])
        .collect();
    assert_eq!(names.len(), 2);
    assert_eq!(listed["value"][0]["DisplayName"], "Other partner policy");
    assert_eq!(names[1], &json!(id));

    let bad = json!({"DisplayName": "x", "Description": "", "Platform": "macos",
                     "PartnerManagedCompliance": true});
    assert_eq!(
        authed("POST", &policies_url(&sim), &intune, Some(&bad))
            .await
            .status,
        400
    );
}

/// Assign: unknown policy 404, unknown group 400, else stored and echoed
/// as a JSON string.
#[tokio::test]
async fn assignment_checks_policy_and_group() {
    let sim = start().await;
    let intune = provisioned(&sim).await;
    let created = authed(
        "POST",
        &policies_url(&sim),
        &intune,
        Some(&policy_body("macOS")),
    )
    .await;
    let policy = created.json()["Id"].as_str().unwrap().to_owned();
    let group = sim.tenant(TENANT).unwrap().groups[0].id.clone();
    let assign = |groups: Value| json!({ "assignments": groups });

    let unknown_policy = assign_url(&sim, OTHER_TENANT);
    let answer = authed(
        "POST",
        &unknown_policy,
        &intune,
        Some(&assign(json!([group]))),
    )
    .await;
    assert_eq!(answer.status, 404);
    let unknown_group = assign(json!([OTHER_TENANT]));
    assert_eq!(
        authed(
            "POST",
            &assign_url(&sim, &policy),
            &intune,
            Some(&unknown_group)
        )
        .await
        .status,
        400
    );
    let capitalised = json!({ "Assignments": [group] });
    assert_eq!(
        authed(
            "POST",
            &assign_url(&sim, &policy),
            &intune,
            Some(&capitalised)
        )
        .await
        .status,
        400
    );

    let url = assign_url(&sim, &policy);
    let answer = authed("POST", &url, &intune, Some(&assign(json!([group])))).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let value: Value = serde_json::from_str(answer.json()["value"].as_str().unwrap()).unwrap();
    assert_eq!(value, json!({ "assignments": [group] }));
    let snapshot = sim.tenant(TENANT).unwrap();
    let ours = snapshot.policies.iter().find(|p| p.id == policy).unwrap();
    assert_eq!(ours.assigned_groups, [group]);
}

/// Heartbeats: in-band 404 before provisioning, recorded after, 400 for a
/// bad timestamp, 204 without `Prefer: return-content`.
#[tokio::test]
async fn heartbeats_are_recorded_once_provisioned() {
    let sim = start().await;
    let intune = token(&sim, TENANT, INTUNE_SCOPE).await;
    let beat = json!({"Timestamp": "2025-05-14T10:00:00.000Z"});

    let early = authed("PUT", &heartbeat_url(&sim), &intune, Some(&beat))
        .await
        .json();
    assert_eq!(early["HttpStatusCode"], 404);
    assert!(early["ErrorDetail"].is_string());

    assert_eq!(put_partner_tenant(&sim, &intune, 1).await.status, 200);
    let answer = authed("PUT", &heartbeat_url(&sim), &intune, Some(&beat)).await;
    let body = answer.json();
    assert_eq!(
        (body["HttpStatusCode"].clone(), body["ErrorDetail"].clone()),
        (json!(200), Value::Null)
    );
    assert_eq!(body["MessageErrors"], json!([]));
    assert_eq!(body["TenantId"], TENANT);
    assert_eq!(
        sim.tenant(TENANT).unwrap().heartbeats,
        ["2025-05-14T10:00:00.000Z"]
    );

    let bad = json!({"Timestamp": "yesterday"});
    assert_eq!(
        authed("PUT", &heartbeat_url(&sim), &intune, Some(&bad))
            .await
            .status,
        400
    );
    let headers = [
        ("Authorization", format!("Bearer {intune}")),
        ("Content-Type", "application/json".to_owned()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let quiet = call("PUT", &heartbeat_url(&sim), &headers, &beat.to_string()).await;
    assert_eq!((quiet.status, quiet.body.as_str()), (204, ""));
    assert_eq!(sim.tenant(TENANT).unwrap().heartbeats.len(), 2);
}
