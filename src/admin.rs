//! The operator's commands: `tenants list`, `tenants show`, `backup`.
//!
//! They read the database directly (it may be in use by `serve`: WAL mode
//! lets them read alongside) and print for people or, with `--json`, for
//! scripts. They never print a secret, a consent state or its nonce: the
//! integration's secret hash and consent columns are left out here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::ids::Guid;
use crate::run::open_store;
use crate::store::Integration;

/// `tenants list`: one line per tenant.
pub async fn list(database: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let store = open_store(database, false).await?;
    let integrations = store.integrations().await?;

    if as_json {
        let all: Vec<Value> = integrations.iter().map(describe).collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }

    println!(
        "{:<36}  {:<12}  {:<20}  {:<20}  ORIGIN",
        "TENANT", "STATE", "CREATED (UTC)", "LAST HEARTBEAT (UTC)"
    );
    for i in &integrations {
        let heartbeat = match (&i.last_heartbeat_error, i.last_heartbeat_at) {
            (Some(_), _) => "failed".to_string(),
            (None, Some(at)) => time(at),
            (None, None) => "-".to_string(),
        };
        println!(
            "{:<36}  {:<12}  {:<20}  {:<20}  {}",
            i.tenant,
            state(i),
            time(i.created_at),
            heartbeat,
            i.origin
        );
    }
    println!("{} tenant(s)", integrations.len());
    Ok(ExitCode::SUCCESS)
}

/// `tenants show <tenant>`: everything stored about one tenant.
pub async fn show(database: &Path, tenant: Guid, as_json: bool) -> anyhow::Result<ExitCode> {
    let store = open_store(database, false).await?;
    let Some(integration) = store.integration_by_tenant(tenant).await? else {
        eprintln!("no integration for tenant {tenant}");
        return Ok(ExitCode::FAILURE);
    };
    let messages = store.message_counts(integration.id).await?;

    let mut details = describe(&integration);
    details["messages"] = messages
        .iter()
        .map(|(status, n)| (status.clone(), json!(n)))
        .collect();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&details)?);
        return Ok(ExitCode::SUCCESS);
    }

    if let Value::Object(fields) = details {
        for (name, value) in fields {
            let shown = match value {
                Value::Null => "-".to_string(),
                Value::String(s) => s,
                other => other.to_string(),
            };
            println!("{name:<28} {shown}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `backup <file>`: a consistent copy of the database.
pub async fn backup(database: &Path, target: PathBuf) -> anyhow::Result<ExitCode> {
    let store = open_store(database, false).await?;
    let pages = store
        .backup_to(target.clone())
        .await
        .with_context(|| format!("could not back up to {}", target.display()))?;
    println!(
        "{}: backed up to {} ({pages} pages)",
        database.display(),
        target.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What an operator may see of an integration: no secret hash, no consent
/// state or nonce, only whether a consent link is live and until when.
fn describe(i: &Integration) -> Value {
    let now = Utc::now().timestamp();
    json!({
        "tenant": i.tenant.to_string(),
        "state": state(i),
        "origin": i.origin.as_str(),
        "admin_consented": i.admin_consented,
        "provisioned": i.provisioned,
        "setup_done": i.setup_done,
        "setup_error": i.setup_error,
        "policy_id": i.policy_id.map(|p| p.to_string()),
        "consent_link_valid_until": i.consent_expires_at.filter(|at| *at > now).map(time),
        "created_at": time(i.created_at),
        "updated_at": time(i.updated_at),
        "last_heartbeat_at": i.last_heartbeat_at.map(time),
        "last_heartbeat_attempt_at": i.last_heartbeat_attempt_at.map(time),
        "last_heartbeat_error": i.last_heartbeat_error,
    })
}

fn state(i: &Integration) -> &'static str {
    match (i.setup_done, &i.setup_error, i.admin_consented) {
        (true, _, _) => "set up",
        (false, Some(_), _) => "setup failed",
        (false, None, true) => "consented",
        (false, None, false) => "pending",
    }
}

fn time(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| unix.to_string())
}
