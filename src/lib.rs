//! compliance-proxy: Fleet's Microsoft Intune compliance-partner proxy.
//!
//! Fleet servers register an Entra tenant here, send its admin through
//! Microsoft's consent page, then report each device's compliance. The proxy
//! holds the partner application's credentials, sets the tenant up at
//! Microsoft after consent, uploads device records to Intune, polls their
//! results and sends a daily heartbeat per tenant.
//!
//! # Layout
//!
//! - [`cli`]: flags and environment → validated configuration; exit codes.
//! - [`config`]: the configuration types, their validation, secret redaction.
//! - [`run`]: wiring the parts together for each subcommand.
//! - [`admin`]: the operator's commands: `tenants list|show`, `backup`.
//! - [`server`]: accepting connections, limits, graceful shutdown.
//! - [`routes`]: the route table and what wraps every handler.
//! - [`handlers`]: one function per endpoint.
//! - [`input`], [`response`]: decoding requests, building responses.
//! - [`service`]: the product's flows (setup, devices, heartbeat).
//! - [`store`]: SQLite, every SQL statement, schema versions.
//! - [`microsoft`]: tokens, discovery, Graph and the Intune partner APIs.
//! - [`scheduler`]: the heartbeat schedule inside `serve`.
//! - [`simulator`]: a simulated Microsoft for local runs and tests.
//! - [`error`]: the error type and its one mapping to HTTP statuses.
//! - [`ids`], [`secrets`]: validated identifiers; secrets and their checks.
//! - [`metrics`], [`telemetry`]: Prometheus metrics and logs.

#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod error;
pub mod handlers;
pub mod ids;
pub mod input;
pub mod metrics;
pub mod microsoft;
pub mod response;
pub mod routes;
pub mod run;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod service;
pub mod simulator;
pub mod store;
pub mod telemetry;

pub use error::Error;
