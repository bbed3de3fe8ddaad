//! Everything the simulated Microsoft remembers, behind one mutex.
//!
//! Owns the tenants (directory, partner provisioning, policies, heartbeats),
//! issued tokens, upload messages, the request log and the fault queue, plus
//! the rules for auto-creating a tenant on first sight. Handlers lock the
//! state, do their work synchronously and unlock; nothing awaits while
//! holding the lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

use super::SimConfig;
use super::fault::Fault;
use super::listener::Listeners;
use super::odata::{random_guid, stable_guid};
use super::records::Record;
use super::snapshot::TenantSnapshot;
use super::snapshot::{DeviceSnapshot, GroupSnapshot, PolicySnapshot, RecordedRequest};

/// The appId of the "Microsoft Intune API" service principal in every tenant.
pub(crate) const INTUNE_APP_ID: &str = "0000000a-0000-0000-c000-000000000000";

/// What the request handlers share: fixed configuration and the locked state.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    state: Mutex<State>,
    /// Lets `POST /_sim/move-endpoints` reach the listeners without the
    /// listeners (whose threads hold `Shared`) being kept alive by it.
    pub(crate) listeners: OnceLock<Weak<Mutex<Listeners>>>,
}

impl Shared {
    pub(crate) fn new(config: SimConfig, scale_base: String) -> Shared {
        let state = State::new(config.group_name.clone(), scale_base, config.open_tenants);
        Shared {
            config,
            state: Mutex::new(state),
            listeners: OnceLock::new(),
        }
    }

    /// Locks the state. A handler never panics while holding the lock, but if
    /// something did, the data is still consistent enough for a test double,
    /// so poisoning is ignored rather than turned into more panics.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The audience a token was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    Graph,
    Intune,
}

/// One issued access token.
#[derive(Debug)]
pub(crate) struct IssuedToken {
    pub(crate) tenant: String,
    pub(crate) audience: Audience,
    pub(crate) expires_at: Instant,
    /// Set by `expire_tokens` and `revoke_consent`.
    pub(crate) revoked: bool,
}

/// One Entra tenant as far as the simulator models it.
#[derive(Debug)]
pub(crate) struct Tenant {
    pub(crate) id: String,
    pub(crate) consented: bool,
    /// 0 never provisioned, 1 provisioned, 2 deprovisioned.
    pub(crate) provisioned: u8,
    pub(crate) enrollment_url: Option<String>,
    pub(crate) remediation_url: Option<String>,
    pub(crate) heartbeats: Vec<String>,
    /// Object id of the tenant's Intune service principal.
    pub(crate) sp_id: String,
    pub(crate) groups: Vec<GroupSnapshot>,
    /// Users handed out by `users('…')`, keyed by lower-case UPN.
    pub(crate) users: BTreeMap<String, User>,
    /// Lower-case UPNs removed by `remove_user`; they are not re-created.
    pub(crate) removed_users: BTreeSet<String>,
    pub(crate) devices: BTreeMap<String, DeviceSnapshot>,
    pub(crate) policies: Vec<PolicySnapshot>,
    pub(crate) token_scopes: Vec<String>,
}

/// A directory user the simulator has handed out.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) upn: String,
}

impl Tenant {
    /// A tenant as first seen: the configured group exists, the Intune
    /// connector has the partner added, nobody consented yet, and one policy
    /// of another partner exists so that clients must pick policies by name
    /// and platform rather than take the first.
    fn new(id: &str, group_name: &str) -> Tenant {
        let group = GroupSnapshot {
            id: stable_guid(&["group", id, &group_name.to_lowercase()]),
            display_name: group_name.to_owned(),
        };
        let other_policy = PolicySnapshot {
            id: stable_guid(&["other-partner-policy", id]),
            display_name: "Other partner policy".to_owned(),
            description: "Managed by another compliance partner".to_owned(),
            platform: "iOS".to_owned(),
            partner_managed_compliance: true,
            assigned_groups: Vec::new(),
            other_partner: true,
        };
        Tenant {
            id: id.to_owned(),
            consented: false,
            provisioned: 0,
            enrollment_url: None,
            remediation_url: None,
            heartbeats: Vec::new(),
            sp_id: stable_guid(&["intune-service-principal", id]),
            groups: vec![group],
            users: BTreeMap::new(),
            removed_users: BTreeSet::new(),
            devices: BTreeMap::new(),
            policies: vec![other_policy],
            token_scopes: Vec::new(),
        }
    }

    /// The user with this UPN, created on first lookup unless removed.
    pub(crate) fn user_by_upn(&mut self, upn: &str) -> Option<User> {
        let key = upn.to_lowercase();
        if self.removed_users.contains(&key) {
            return None;
        }
        let tenant = self.id.clone();
        let user = self.users.entry(key.clone()).or_insert_with(|| User {
            id: stable_guid(&["user", &tenant, &key]),
            upn: upn.to_owned(),
        });
        Some(user.clone())
    }

    /// The handed-out user with this object id.
    pub(crate) fn user_by_id(&self, id: &str) -> Option<&User> {
        self.users.values().find(|u| u.id.eq_ignore_ascii_case(id))
    }

    /// The directory device, created with empty attributes on first use.
    pub(crate) fn device_mut(&mut self, device_id: &str) -> &mut DeviceSnapshot {
        self.devices
            .entry(device_id.to_owned())
            .or_insert_with(|| DeviceSnapshot {
                device_id: device_id.to_owned(),
                display_name: String::new(),
                os_version: String::new(),
                is_compliant: false,
                is_managed: false,
            })
    }

    pub(crate) fn snapshot(&self) -> TenantSnapshot {
        TenantSnapshot {
            tenant_id: self.id.clone(),
            consented: self.consented,
            provisioned: self.provisioned,
            enrollment_url: self.enrollment_url.clone(),
            remediation_url: self.remediation_url.clone(),
            policies: self.policies.clone(),
            heartbeats: self.heartbeats.clone(),
            groups: self.groups.clone(),
            token_scopes: self.token_scopes.clone(),
        }
    }
}

/// One accepted upload message and its progress.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) tenant: String,
    /// The exact upload answer, repeated when the same id is PUT again.
    pub(crate) upload_answer: serde_json::Value,
    pub(crate) records: Vec<Record>,
    /// Status polls answered so far.
    pub(crate) polls: u32,
    /// `Some(None)` once completed, `Some(Some(detail))` once failed.
    pub(crate) outcome: Option<Option<String>>,
}

/// All mutable simulator state.
#[derive(Debug)]
pub(crate) struct State {
    group_name: String,
    /// New tenants start consented and provisioned (see `SimConfig`).
    open_tenants: bool,
    /// Base URL of the current scale-unit listener, e.g. `http://127.0.0.1:4711`.
    pub(crate) scale_base: String,
    pub(crate) tenants: BTreeMap<String, Tenant>,
    pub(crate) tokens: HashMap<String, IssuedToken>,
    pub(crate) messages: HashMap<String, Message>,
    pub(crate) requests: Vec<RecordedRequest>,
    /// Requests that arrived, counted before any fault or delay; unlike
    /// `requests`, this includes ones still being answered.
    pub(crate) arrivals: u64,
    pub(crate) faults: Vec<Fault>,
}

impl State {
    fn new(group_name: String, scale_base: String, open_tenants: bool) -> State {
        State {
            group_name,
            open_tenants,
            scale_base,
            tenants: BTreeMap::new(),
            tokens: HashMap::new(),
            messages: HashMap::new(),
            requests: Vec::new(),
            arrivals: 0,
            faults: Vec::new(),
        }
    }

    /// Forgets everything except configuration and the current listeners.
    pub(crate) fn reset(&mut self) {
        let fresh = State::new(
            self.group_name.clone(),
            self.scale_base.clone(),
            self.open_tenants,
        );
        *self = fresh;
    }

    /// The tenant with this (lower-case GUID) id, created on first sight.
    pub(crate) fn tenant_mut(&mut self, id: &str) -> &mut Tenant {
        let (group_name, open) = (&self.group_name, self.open_tenants);
        self.tenants.entry(id.to_owned()).or_insert_with(|| {
            let mut tenant = Tenant::new(id, group_name);
            if open {
                tenant.consented = true;
                tenant.provisioned = 1;
            }
            tenant
        })
    }

    /// Issues a token and returns it.
    pub(crate) fn issue_token(
        &mut self,
        tenant: &str,
        audience: Audience,
        lifetime: u64,
    ) -> String {
        let audience_tag = match audience {
            Audience::Graph => "graph",
            Audience::Intune => "intune",
        };
        let token = format!("sim-{audience_tag}-{}", random_guid().replace('-', ""));
        let expires_at = Instant::now() + std::time::Duration::from_secs(lifetime);
        let issued = IssuedToken {
            tenant: tenant.to_owned(),
            audience,
            expires_at,
            revoked: false,
        };
        self.tokens.insert(token.clone(), issued);
        token
    }

    /// Grants or revokes the partner application's consent in a tenant.
    ///
    /// Revoking also invalidates the tenant's issued tokens, so the client's
    /// next call gets a 401, asks for a new token and meets AADSTS700016.
    pub(crate) fn set_consent(&mut self, tenant: &str, consented: bool) {
        self.tenant_mut(tenant).consented = consented;
        if !consented {
            self.revoke_tokens(Some(tenant));
        }
    }

    /// Deletes a group (display names compare ignoring case, as Graph's do).
    pub(crate) fn remove_group(&mut self, tenant: &str, name: &str) {
        let name = name.to_lowercase();
        self.tenant_mut(tenant)
            .groups
            .retain(|g| g.display_name.to_lowercase() != name);
    }

    /// Deletes a user; its UPN then stays unknown and its id unrecognised.
    pub(crate) fn remove_user(&mut self, tenant: &str, upn: &str) {
        let key = upn.to_lowercase();
        let record = self.tenant_mut(tenant);
        record.users.remove(&key);
        record.removed_users.insert(key);
    }

    /// Marks every token (of one tenant, or all) as no longer valid.
    pub(crate) fn revoke_tokens(&mut self, tenant: Option<&str>) {
        for token in self.tokens.values_mut() {
            if tenant.is_none_or(|t| t == token.tenant) {
                token.revoked = true;
            }
        }
    }
}
