//! Graph: discovery, groups, users, devices and Graph token checks.

use super::*;

const INTUNE_FILTER_ENCODED: &str =
    "%24filter=appId%20eq%20%270000000a-0000-0000-c000-000000000000%27";

/// Discovery works with the filter encoded either way and lists the two
/// partner services (after an unrelated one) on the scale unit.
#[tokio::test]
async fn discovery_finds_the_partner_services() {
    let sim = start().await;
    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    let base = sim.graph_url();

    let encoded = format!("{base}/v1.0/servicePrincipals?{INTUNE_FILTER_ENCODED}");
    let plus = format!(
        "{base}/v1.0/servicePrincipals?$filter=appId+eq+'0000000a-0000-0000-c000-000000000000'"
    );
    let mut ids = Vec::new();
    for url in [encoded, plus] {
        let answer = authed("GET", &url, &graph, None).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let principal = &answer.json()["value"][0];
        assert_eq!(principal["appId"], "0000000a-0000-0000-c000-000000000000");
        ids.push(principal["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids[0], ids[1]);

    for segment in ["endpoints", "endPoints"] {
        let url = format!("{base}/v1.0/servicePrincipals/{}/{segment}", ids[0]);
        let value = authed("GET", &url, &graph, None).await.json()["value"].clone();
        let uri = |provider: &str| {
            value
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["providerName"] == provider)
                .unwrap()["uri"]
                .clone()
        };
        assert_eq!(value.as_array().unwrap().len(), 3);
        assert_ne!(value[0]["providerName"], "PartnerTenantDataSyncService");
        assert_eq!(
            uri("PartnerTenantDataSyncService"),
            json!(tenant_sync(&sim))
        );
        assert_eq!(
            uri("PartnerDeviceDataSyncService"),
            json!(device_sync(&sim))
        );
    }
    let unknown = format!("{base}/v1.0/servicePrincipals/{OTHER_TENANT}/endpoints");
    assert_eq!(authed("GET", &unknown, &graph, None).await.status, 404);
}

/// Another appId gives an empty list; a filter that is not OData is a 400.
#[tokio::test]
async fn other_filters_find_nothing_and_bad_filters_fail() {
    let sim = start().await;
    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    let url = |filter: &str| {
        format!(
            "{}/v1.0/servicePrincipals?{}",
            sim.graph_url(),
            form(&[("$filter", filter)])
        )
    };
    let other_app = url("appId eq 'ffffffff-0000-0000-c000-000000000000'");
    let other = authed("GET", &other_app, &graph, None).await;
    assert_eq!(other.json()["value"], json!([]));
    let broken = authed("GET", &url("appId eq 0000000a"), &graph, None).await;
    assert_eq!(broken.status, 400);
    assert_eq!(broken.json()["error"]["code"], "BadRequest");
}

/// Graph wants a valid Graph token: none, an Intune one, an unknown one or
/// an expired one are all 401 with a challenge.
#[tokio::test]
async fn graph_requires_a_graph_token() {
    let sim = start().await;
    let url = format!(
        "{}/v1.0/servicePrincipals?{INTUNE_FILTER_ENCODED}",
        sim.graph_url()
    );
    let anonymous = call("GET", &url, &[], "").await;
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(
        anonymous.json()["error"]["code"],
        "InvalidAuthenticationToken"
    );

    let intune = token(&sim, TENANT, INTUNE_SCOPE).await;
    assert_eq!(authed("GET", &url, &intune, None).await.status, 401);
    assert_eq!(authed("GET", &url, "made-up", None).await.status, 401);
    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    assert_eq!(authed("GET", &url, &graph, None).await.status, 200);
    sim.expire_tokens();
    assert_eq!(authed("GET", &url, &graph, None).await.status, 401);
}

/// Groups are found by display name, with OData quote doubling; a removed
/// group is no longer found.
#[tokio::test]
async fn groups_are_found_by_display_name() {
    let config = SimConfig {
        group_name: "O'Neil devices".to_owned(),
        ..SimConfig::default()
    };
    let sim = start_with(config).await;
    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    let url = |name: &str| {
        let filter = format!("displayName eq '{}'", name.replace('\'', "''"));
        format!(
            "{}/v1.0/groups?{}",
            sim.graph_url(),
            form(&[("$filter", &filter)])
        )
    };
    let found = authed("GET", &url("O'Neil devices"), &graph, None)
        .await
        .json();
    let group_id = sim.tenant(TENANT).unwrap().groups[0].id.clone();
    assert_eq!(found["value"][0]["id"], json!(group_id));
    assert_eq!(found["value"][0]["displayName"], "O'Neil devices");

    let missing = authed("GET", &url("Fleet conditional access"), &graph, None).await;
    assert_eq!(missing.json()["value"], json!([]));
    sim.remove_group(TENANT, "O'Neil devices");
    let removed = authed("GET", &url("O'Neil devices"), &graph, None).await;
    assert_eq!(removed.json()["value"], json!([]));
}

/// UPNs resolve to stable ids (also by id), quotes are doubled, removed
/// users are 404, and a malformed key is 400.
#[tokio::test]
async fn users_resolve_to_stable_ids() {
    let sim = start().await;
    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    let user = |segment: &str| format!("{}/v1.0/users({segment})", sim.graph_url());

    let first = authed("GET", &user("'alice%40example.com'"), &graph, None)
        .await
        .json();
    let again = authed("GET", &user("%27Alice%40example.com%27"), &graph, None)
        .await
        .json();
    assert_eq!(first["id"], again["id"]);
    assert_eq!(first["userPrincipalName"], "alice@example.com");
    let by_id = format!("'{}'", first["id"].as_str().unwrap());
    assert_eq!(
        authed("GET", &user(&by_id), &graph, None).await.json()["id"],
        first["id"]
    );

    let quoted = authed("GET", &user("'o''hara%40example.com'"), &graph, None)
        .await
        .json();
    assert_eq!(quoted["userPrincipalName"], "o'hara@example.com");

    sim.remove_user(TENANT, "alice@example.com");
    let gone = authed("GET", &user("'alice%40example.com'"), &graph, None).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["error"]["code"], "Request_ResourceNotFound");
    assert_eq!(
        authed("GET", &user("alice%40example.com"), &graph, None)
            .await
            .status,
        400
    );
    assert_eq!(
        authed("GET", &user("'o'hara%40example.com'"), &graph, None)
            .await
            .status,
        400
    );
}

/// A device PATCH updates the directory device; wrong types and unknown
/// properties are 400.
#[tokio::test]
async fn device_patch_updates_the_directory() {
    let sim = start().await;
    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    let device = "aaaaaaaa-1111-4222-8333-444444444444";
    let url = format!("{}/v1.0/devices(deviceId='{device}')", sim.graph_url());
    let body = json!({
        "displayName": "WIN-01",
        "operatingSystemVersion": "10.0.22631",
        "isManaged": true,
        "isCompliant": true,
    });
    let answer = authed("PATCH", &url, &graph, Some(&body)).await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    let snapshot = sim.device(TENANT, device).unwrap();
    assert!(snapshot.is_compliant && snapshot.is_managed);
    assert_eq!(
        (snapshot.display_name.as_str(), snapshot.os_version.as_str()),
        ("WIN-01", "10.0.22631")
    );

    let wrong_type = json!({"isCompliant": "yes"});
    assert_eq!(
        authed("PATCH", &url, &graph, Some(&wrong_type))
            .await
            .status,
        400
    );
    let unknown = json!({"compliant": true});
    assert_eq!(
        authed("PATCH", &url, &graph, Some(&unknown)).await.status,
        400
    );
    let bad_key = format!("{}/v1.0/devices(deviceId='nope')", sim.graph_url());
    assert_eq!(
        authed("PATCH", &bad_key, &graph, Some(&body)).await.status,
        400
    );
    assert_eq!(authed("GET", &url, &graph, None).await.status, 405);
    let bearer = format!("Bearer {graph}");
    let no_type = call("PATCH", &url, &[("Authorization", &bearer)], "{}").await;
    assert_eq!(no_type.status, 415);
}

/// Malformed requests get HTTP errors, never a dropped connection.
#[tokio::test]
async fn malformed_requests_get_errors() {
    let sim = start().await;
    let graph = token(&sim, TENANT, GRAPH_SCOPE).await;
    let intune = provisioned(&sim).await;
    let bearer = format!("Bearer {graph}");
    let json = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let device = format!("{}/v1.0/devices(deviceId='{TENANT}')", sim.graph_url());
    assert_eq!(call("PATCH", &device, &json, "{not json").await.status, 400);
    assert_eq!(call("PATCH", &device, &json, "[1, 2]").await.status, 400);
    let bad_utf8 = format!("{}/v1.0/users('%FF%FE')", sim.graph_url());
    assert_eq!(authed("GET", &bad_utf8, &graph, None).await.status, 400);
    let empty = format!("{}/v1.0/users('')", sim.graph_url());
    assert_eq!(authed("GET", &empty, &graph, None).await.status, 400);

    let upload = format!(
        "{}/DataUploadMessages(guid'{TENANT}')?api-version=1.2&api-version=1.2",
        device_sync(&sim)
    );
    assert_eq!(
        authed("PUT", &upload, &intune, Some(&json!({})))
            .await
            .status,
        400
    );
    let bearer = format!("Bearer {intune}");
    let json = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let once = upload.replace("&api-version=1.2", "");
    assert_eq!(call("PUT", &once, &json, "\"Content\"").await.status, 400);
    assert_eq!(
        call("GET", &format!("{}/nowhere", sim.base_url()), &[], "")
            .await
            .status,
        404
    );
}
