//! The simulated Microsoft: a loopback HTTP server that stands in for
//! login.microsoftonline.com, graph.microsoft.com and the Intune partner
//! services, with fault injection, for tests and `serve --simulate-microsoft`.
//!
//! It is deliberately strict (exact URL shapes, `api-version`s, bodies, token
//! audiences) so that a client bug shows up as a 400 or 404 here rather than
//! at Microsoft, and it shares no code with the proxy's Microsoft client.
//!
//! Layout:
//! - [`Simulator`], [`SimConfig`] (this file): start, stop, inspect, control
//! - `listener`: sockets and connections; `pipeline`: per-request flow
//! - `routes`: the route table; `login`, `graph`, `tenant_sync`,
//!   `device_sync` (+ `records`): the endpoints
//! - `fault`: the [`Fault`] rules; `control`: the `/_sim/` HTTP interface
//! - `state`: what the simulator remembers; `snapshot`: views handed out
//! - `auth`, `request`, `reply`, `odata`: shared mechanics

mod auth;
mod control;
mod device_sync;
mod fault;
mod graph;
mod listener;
mod login;
mod odata;
mod pipeline;
mod records;
mod reply;
mod request;
mod routes;
mod snapshot;
mod state;
mod tenant_sync;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use fault::Fault;
pub use snapshot::TenantSnapshot;
pub use snapshot::{DeviceSnapshot, GroupSnapshot, PolicySnapshot, RecordedRequest};

use listener::Listeners;
use odata::normalize_guid;
use state::Shared;

/// What the simulated Microsoft accepts and how it behaves.
#[derive(Clone)]
pub struct SimConfig {
    /// The partner application (client) id the simulator knows.
    pub client_id: String,
    /// That application's secret.
    pub client_secret: String,
    /// `expires_in` of issued tokens (whole seconds are used).
    pub token_lifetime: Duration,
    /// Status polls of an upload that answer a non-terminal status before
    /// the outcome (`Completed` or `Failed`).
    pub pending_polls: u32,
    /// The Entra group every auto-created tenant has.
    pub group_name: String,
    /// Send `expires_in`/`ext_expires_in` as strings, as Microsoft's v1 token
    /// endpoint does, instead of the v2 endpoint's numbers.
    pub expires_in_as_string: bool,
    /// Added before every answer (not control requests), like a network and
    /// service round trip; benchmarks use it.
    pub latency: Duration,
    /// Tenants are consented and provisioned on first sight, so heartbeats
    /// and uploads work without a setup flow (benchmarks seed many tenants).
    pub open_tenants: bool,
    /// Keep every request for inspection; benchmarks turn it off and count
    /// arrivals only.
    pub record_requests: bool,
}

impl SimConfig {
    /// The client id of the default configuration.
    pub const DEFAULT_CLIENT_ID: &'static str = "00000000-0000-4000-8000-00000000c1d0";
    /// The client secret of the default configuration.
    pub const DEFAULT_CLIENT_SECRET: &'static str = "simulated-client-secret";
    /// The group name of the default configuration.
    pub const DEFAULT_GROUP_NAME: &'static str = "Fleet conditional access";
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            client_id: SimConfig::DEFAULT_CLIENT_ID.to_owned(),
            client_secret: SimConfig::DEFAULT_CLIENT_SECRET.to_owned(),
            token_lifetime: Duration::from_secs(3600),
            pending_polls: 2,
            group_name: SimConfig::DEFAULT_GROUP_NAME.to_owned(),
            expires_in_as_string: false,
            latency: Duration::ZERO,
            open_tenants: false,
            record_requests: true,
        }
    }
}

/// The secret is left out so that a logged configuration does not show it.
impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("token_lifetime", &self.token_lifetime)
            .field("pending_polls", &self.pending_polls)
            .field("group_name", &self.group_name)
            .field("expires_in_as_string", &self.expires_in_as_string)
            .field("latency", &self.latency)
            .field("open_tenants", &self.open_tenants)
            .field("record_requests", &self.record_requests)
            .finish()
    }
}

/// A running simulated Microsoft. Clones share the same server; the
/// listeners stop when the last clone is dropped or on [`Simulator::shutdown`].
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
    listeners: Arc<Mutex<Listeners>>,
    main_addr: SocketAddr,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("base_url", &self.base_url())
            .field("scale_unit_url", &self.scale_unit_url())
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Binds `127.0.0.1:0` for login and Graph and another loopback port for
    /// the Intune partner services (the "scale unit"), serving on the current
    /// tokio runtime. Both accept connections when this returns.
    ///
    /// Connections are served by tasks on that runtime, so it must keep
    /// running while clients talk to the simulator: a multi-thread runtime,
    /// or a current-thread one that is being driven (inside `block_on`, e.g.
    /// a `#[tokio::test]` awaiting its client). Errors if called outside a
    /// runtime or if a socket cannot be bound.
    pub async fn start(config: SimConfig) -> io::Result<Simulator> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let shared = Arc::new(Shared::new(config, String::new()));
        let listeners = Listeners::start(shared.clone(), runtime)?;
        let main_addr = listeners.main_addr();
        let listeners = Arc::new(Mutex::new(listeners));
        // Set exactly once, here, before any request can need it.
        let _ = shared.listeners.set(Arc::downgrade(&listeners));
        Ok(Simulator {
            shared,
            listeners,
            main_addr,
        })
    }

    /// `http://127.0.0.1:PORT` of the main listener.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.main_addr)
    }

    /// The login.microsoftonline.com stand-in (the main listener).
    pub fn login_url(&self) -> String {
        self.base_url()
    }

    /// The graph.microsoft.com stand-in (the main listener).
    pub fn graph_url(&self) -> String {
        self.base_url()
    }

    /// Base URL of the current scale unit; discovery returns
    /// `{this}/TenantDataSync` and `{this}/DeviceDataSync`.
    pub fn scale_unit_url(&self) -> String {
        self.shared.lock().scale_base.clone()
    }

    /// The configuration the simulator was started with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Every request received so far (control requests excepted), in the
    /// order answered. A request is recorded once answered, so one held back
    /// by a fault's delay appears only after the delay.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// How many recorded requests have this method (`"*"` for any) and a
    /// path containing `path_contains` (as received or percent-decoded).
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        let state = self.shared.lock();
        let method_matches = |m: &str| method == "*" || m.eq_ignore_ascii_case(method);
        state
            .requests
            .iter()
            .filter(|r| method_matches(&r.method) && fault::path_contains(&r.path, path_contains))
            .count()
    }

    /// How many requests have arrived, including ones not yet answered (a
    /// delayed request is in `requests` only once its answer is sent).
    pub fn arrivals(&self) -> u64 {
        self.shared.lock().arrivals
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// A copy of a tenant's state, if the simulator has seen the tenant.
    pub fn tenant(&self, tenant_id: &str) -> Option<TenantSnapshot> {
        let id = normalize_guid(tenant_id)?;
        self.shared
            .lock()
            .tenants
            .get(&id)
            .map(state::Tenant::snapshot)
    }

    /// A copy of a directory device, if it exists.
    pub fn device(&self, tenant_id: &str, device_id: &str) -> Option<DeviceSnapshot> {
        let (tenant, device) = (normalize_guid(tenant_id)?, normalize_guid(device_id)?);
        self.shared
            .lock()
            .tenants
            .get(&tenant)?
            .devices
            .get(&device)
            .cloned()
    }

    /// Adds a fault rule after the existing ones.
    pub fn add_fault(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// Removes every fault rule, used up or not.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Consents for a tenant without the browser round trip. Ignored for an
    /// id that is not a GUID, like the other tenant controls.
    pub fn grant_consent(&self, tenant_id: &str) {
        if let Some(id) = normalize_guid(tenant_id) {
            self.shared.lock().set_consent(&id, true);
        }
    }

    /// Withdraws consent: the tenant's tokens stop working and new token
    /// requests fail with AADSTS700016.
    pub fn revoke_consent(&self, tenant_id: &str) {
        if let Some(id) = normalize_guid(tenant_id) {
            self.shared.lock().set_consent(&id, false);
        }
    }

    /// Deletes a group from the tenant's directory.
    pub fn remove_group(&self, tenant_id: &str, name: &str) {
        if let Some(id) = normalize_guid(tenant_id) {
            self.shared.lock().remove_group(&id, name);
        }
    }

    /// Deletes a user: `users('upn')` then answers 404 and uploads naming
    /// the user's id end `Failed`.
    pub fn remove_user(&self, tenant_id: &str, upn: &str) {
        if let Some(id) = normalize_guid(tenant_id) {
            self.shared.lock().remove_user(&id, upn);
        }
    }

    /// Every token issued so far is rejected with 401 from now on.
    pub fn expire_tokens(&self) {
        self.shared.lock().revoke_tokens(None);
    }

    /// Starts a new scale-unit listener, makes discovery return its URLs and
    /// closes the old one, so old URLs are refused once this returns.
    pub fn move_endpoints(&self) -> io::Result<()> {
        listener::lock(&self.listeners).move_scale_unit().map(drop)
    }

    /// Back to a fresh state: no tenants, tokens, messages, requests or
    /// faults. The listeners (and the current scale unit) stay.
    pub fn reset(&self) {
        self.shared.lock().reset();
    }

    /// Closes both listeners and their connections.
    pub async fn shutdown(self) {
        let listeners = self.listeners.clone();
        let stopped = tokio::task::spawn_blocking(move || listener::lock(&listeners).stop()).await;
        if let Err(error) = stopped {
            tracing::warn!(%error, "stopping the simulator's listeners failed");
        }
    }
}
