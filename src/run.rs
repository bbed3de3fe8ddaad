//! Wiring the parts together for each subcommand.
//!
//! `cli` hands over a validated configuration; this module opens the
//! database, builds the Microsoft client and the service, and runs the
//! server, a heartbeat round, or a migration. Errors here are `anyhow`
//! chains with context, printed once by `cli`.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::config::{HeartbeatConfig, ServeConfig, SetupSettings};
use crate::microsoft::Microsoft;
use crate::routes::App;
use crate::service::{Service, ServiceConfig};
use crate::simulator::{SimConfig, Simulator};
use crate::store::{LATEST_VERSION, Store};

/// Database connections in the pool; SQLite serialises writers anyway.
pub(crate) const POOL_SIZE: u32 = 16;

/// `serve`: binds the configured address and serves until SIGTERM or SIGINT.
pub async fn serve(config: ServeConfig) -> anyhow::Result<ExitCode> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("could not listen on {}", config.listen))?;
    if config.public_url.is_none() && config.listen.ip().is_unspecified() {
        tracing::warn!(
            listen = %config.listen,
            "listening on all addresses without --public-url: consent links will point at \
             an unroutable address"
        );
    }
    serve_on(listener, config, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Serves on an already bound listener until `shutdown` completes. Tests call
/// this directly with a `127.0.0.1:0` listener.
pub async fn serve_on(
    listener: TcpListener,
    mut config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let store = open_store(&config.database, true).await?;

    let simulator = if config.simulate_microsoft {
        let simulator = start_simulator(&config).await?;
        config.microsoft.login_url = simulator.login_url();
        config.microsoft.graph_url = simulator.graph_url();
        Some(simulator)
    } else {
        None
    };

    let local = listener.local_addr().context("reading the bound address")?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let service = Service::new(
        store,
        Microsoft::new(config.microsoft.clone()),
        ServiceConfig {
            public_url: public_url.clone(),
            login_url: config.microsoft.login_url.clone(),
            client_id: config.microsoft.client_id.clone(),
            setup: config.setup.clone(),
            heartbeat_concurrency: config.heartbeat_concurrency,
        },
    );

    let (stop_scheduler, stopped) = tokio::sync::watch::channel(false);
    if let Some(schedule) = config.heartbeat_schedule.clone() {
        tokio::spawn(crate::scheduler::run(schedule, service.clone(), stopped));
    } else {
        tracing::info!("heartbeat schedule is off; run `compliance-proxy heartbeat` externally");
    }

    let metrics = crate::metrics::install();
    if let Some(handle) = metrics.clone() {
        tokio::spawn(crate::metrics::upkeep(handle));
    }
    let app = Arc::new(App {
        service,
        api_keys: config.api_keys.clone(),
        allow_anonymous: config.allow_anonymous,
        body_limit: config.limits.body_limit,
        body_timeout: config.limits.header_timeout,
        request_timeout: config.limits.request_timeout,
        metrics,
        work: TaskTracker::new(),
    });
    tracing::info!(
        address = %local,
        %public_url,
        anonymous = config.allow_anonymous,
        version = env!("CARGO_PKG_VERSION"),
        "listening"
    );

    // Under systemd `Type=notify`, say when we serve and when we start stopping.
    notify_systemd(sd_notify::NotifyState::Ready);
    let shutdown = async {
        shutdown.await;
        notify_systemd(sd_notify::NotifyState::Stopping);
    };
    crate::server::run(listener, app, &config.limits, shutdown).await;
    let _ = stop_scheduler.send(true);
    if let Some(simulator) = simulator {
        simulator.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// `heartbeat`: one round over every set-up tenant, then maintenance. Exits
/// 1 if any tenant failed or an expired integration could not be
/// deprovisioned, so a timer unit shows the failure.
pub async fn heartbeat(config: HeartbeatConfig) -> anyhow::Result<ExitCode> {
    let store = open_store(&config.database, false).await?;
    let mut setup = SetupSettings::for_maintenance(config.message_retention, config.pending_ttl);
    setup.enroll_url = config.enroll_url;
    setup.remediate_url = config.remediate_url;
    let service = Service::new(
        store,
        Microsoft::new(config.microsoft.clone()),
        ServiceConfig {
            // Without one, only page URLs given explicitly are known.
            public_url: config.public_url.unwrap_or_default(),
            login_url: config.microsoft.login_url.clone(),
            client_id: config.microsoft.client_id.clone(),
            setup,
            heartbeat_concurrency: config.heartbeat_concurrency,
        },
    );

    let summary = service.heartbeat_round().await?;
    let maintenance = service.maintain().await?;
    Ok(if summary.failed == 0 && maintenance.expired_kept == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `migrate`: applies pending schema versions, or with `status` only reports.
pub async fn migrate(database: &Path, status: bool) -> anyhow::Result<ExitCode> {
    if status {
        must_exist(database)?;
    }
    let store = Store::open(database, 1)
        .with_context(|| format!("could not open the database {}", database.display()))?;
    if status {
        let version = store.schema_version().await?;
        let state = match version {
            v if v == LATEST_VERSION => "up to date",
            v if v < LATEST_VERSION => "migrations pending",
            _ => "newer than this binary",
        };
        println!(
            "{}: schema version {version}, this binary's latest {LATEST_VERSION} ({state})",
            database.display()
        );
        return Ok(ExitCode::SUCCESS);
    }

    let migration = store.migrate().await?;
    if migration.applied_any() {
        println!(
            "{}: migrated from schema version {} to {}",
            database.display(),
            migration.from,
            migration.to
        );
    } else {
        println!(
            "{}: already at schema version {}",
            database.display(),
            migration.to
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Commands that only read or use an existing database must not create an
/// empty one by accident (a mistyped path would then look like "no tenants").
fn must_exist(database: &Path) -> anyhow::Result<()> {
    if !database.exists() {
        bail!(
            "the database {} does not exist; `compliance-proxy migrate` or `serve` creates it",
            database.display()
        );
    }
    Ok(())
}

/// Opens the database; `serve` also brings its schema up to date, while
/// `heartbeat` refuses a schema it does not know.
pub(crate) async fn open_store(database: &Path, migrate: bool) -> anyhow::Result<Store> {
    if !migrate {
        must_exist(database)?;
    }
    let path = database.to_path_buf();
    let store = tokio::task::spawn_blocking(move || Store::open(&path, POOL_SIZE))
        .await?
        .with_context(|| format!("could not open the database {}", database.display()))?;

    if migrate {
        let migration = store
            .migrate()
            .await
            .context("could not migrate the database")?;
        if migration.applied_any() {
            tracing::info!(
                from = migration.from,
                to = migration.to,
                "database schema migrated"
            );
        } else {
            tracing::info!(version = migration.to, "database schema up to date");
        }
    } else {
        let version = store.schema_version().await?;
        if version != LATEST_VERSION {
            bail!(
                "the database {} is at schema version {version}, not {LATEST_VERSION}; \
                 run `compliance-proxy migrate` first",
                database.display()
            );
        }
    }
    Ok(store)
}

async fn start_simulator(config: &ServeConfig) -> anyhow::Result<Simulator> {
    let simulator = Simulator::start(SimConfig {
        client_id: config.microsoft.client_id.clone(),
        client_secret: config.microsoft.client_secret.expose().to_string(),
        group_name: config.setup.group_name.clone(),
        ..SimConfig::default()
    })
    .await
    .context("could not start the simulated Microsoft")?;
    tracing::warn!(
        url = %simulator.base_url(),
        "using the SIMULATED Microsoft: nothing reaches a real tenant"
    );
    Ok(simulator)
}

/// Tells systemd about a state change; a no-op when not run by systemd.
fn notify_systemd(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// Completes on SIGTERM (systemd stop) or SIGINT (Ctrl-C).
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutdown requested"),
    }
}
