//! The command line: flags and environment variables, and the subcommands.
//!
//! Every setting is a long flag with a `COMPLIANCE_PROXY_*` environment
//! variable. Raw values are checked by `config::Validator` before anything is
//! opened or bound, and all problems are reported together. Exit codes:
//! 0 success, 1 failure at run time (including a heartbeat round in which a
//! tenant failed), 2 invalid configuration or usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    ConfigError, HeartbeatConfig, MicrosoftSettings, Secret, ServeConfig, ServerLimits,
    SetupSettings, Validator,
};
use crate::ids::Guid;
use crate::secrets::ApiKeys;
use crate::simulator::SimConfig;

/// Fleet's compliance-partner proxy for Microsoft Intune and Entra ID.
#[derive(Parser, Debug)]
#[command(name = "compliance-proxy", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the HTTP API for Fleet servers and the admin-consent redirect.
    Serve(Box<ServeArgs>),
    /// Send one heartbeat to every set-up tenant, then prune old data.
    Heartbeat(Box<HeartbeatArgs>),
    /// Create or upgrade the database schema.
    Migrate(MigrateArgs),
    /// Show registered tenants and their state (never secrets).
    Tenants(TenantsArgs),
    /// Write a consistent copy of the database to FILE; safe while `serve` runs.
    Backup(BackupArgs),
    /// Run the simulated Microsoft alone (for benchmarks and local tools).
    Simulate(SimulateArgs),
}

#[derive(Args, Debug)]
struct CommonArgs {
    /// SQLite database file.
    #[arg(
        long,
        env = "COMPLIANCE_PROXY_DATABASE",
        default_value = "./compliance-proxy.db"
    )]
    database: PathBuf,

    /// Log format.
    #[arg(long, env = "COMPLIANCE_PROXY_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    log_format: String,

    /// Log filter: a level (info, debug …) or per-module directives.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
}

#[derive(Args, Debug)]
struct MicrosoftArgs {
    /// The partner application's (client) id in Entra.
    #[arg(long, env = "COMPLIANCE_PROXY_CLIENT_ID")]
    client_id: Option<String>,

    /// The partner application's client secret. Prefer --client-secret-file
    /// or the environment: flags are visible in the process list.
    #[arg(long, env = "COMPLIANCE_PROXY_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,

    /// File holding the client secret (e.g. a systemd credential). Without
    /// either option, $CREDENTIALS_DIRECTORY/client-secret is used if present.
    #[arg(long, env = "COMPLIANCE_PROXY_CLIENT_SECRET_FILE")]
    client_secret_file: Option<PathBuf>,

    /// Base URL of Entra's login endpoints.
    #[arg(
        long,
        env = "COMPLIANCE_PROXY_LOGIN_URL",
        default_value = "https://login.microsoftonline.com"
    )]
    login_url: String,

    /// Base URL of Microsoft Graph.
    #[arg(
        long,
        env = "COMPLIANCE_PROXY_GRAPH_URL",
        default_value = "https://graph.microsoft.com"
    )]
    graph_url: String,

    /// Overall time limit for one Microsoft call.
    #[arg(
        long,
        env = "COMPLIANCE_PROXY_MICROSOFT_TIMEOUT",
        default_value = "30s"
    )]
    microsoft_timeout: String,

    /// Time limit for connecting to Microsoft.
    #[arg(
        long,
        env = "COMPLIANCE_PROXY_MICROSOFT_CONNECT_TIMEOUT",
        default_value = "10s"
    )]
    microsoft_connect_timeout: String,

    /// Longest Retry-After to wait out; longer ones reach Fleet as 503.
    #[arg(long, env = "COMPLIANCE_PROXY_RETRY_AFTER_CAP", default_value = "10s")]
    retry_after_cap: String,
}

/// Settings of heartbeat rounds and of the maintenance that follows them.
#[derive(Args, Debug)]
struct RoundArgs {
    /// Most heartbeats in flight at once during a round.
    #[arg(
        long,
        env = "COMPLIANCE_PROXY_HEARTBEAT_CONCURRENCY",
        default_value_t = 32
    )]
    heartbeat_concurrency: u64,

    /// Age after which upload messages are pruned.
    #[arg(
        long,
        env = "COMPLIANCE_PROXY_MESSAGE_RETENTION",
        default_value = "30days"
    )]
    message_retention: String,

    /// Age after which an integration whose setup never finished is dropped.
    #[arg(long, env = "COMPLIANCE_PROXY_PENDING_TTL", default_value = "7days")]
    pending_ttl: String,
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    microsoft: MicrosoftArgs,

    #[command(flatten)]
    round: RoundArgs,

    /// Address to listen on.
    #[arg(
        long,
        env = "COMPLIANCE_PROXY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    listen: String,

    /// External base URL of this service (consent redirect_uri, default page
    /// URLs). Defaults to http://{listen address}.
    #[arg(long, env = "COMPLIANCE_PROXY_PUBLIC_URL")]
    public_url: Option<String>,

    /// An accepted API key; repeat (or comma-separate in the environment) to
    /// accept several during a rotation.
    #[arg(
        long = "api-key",
        env = "COMPLIANCE_PROXY_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_keys: Vec<String>,

    /// Serve Fleet servers that send no API key (Fleet 4.90 and later).
    #[arg(long, env = "COMPLIANCE_PROXY_ALLOW_ANONYMOUS")]
    allow_anonymous: bool,

    /// Entra group the compliance policy is assigned to.
    #[arg(
        long,
        env = "COMPLIANCE_PROXY_GROUP_NAME",
        default_value = "Fleet conditional access"
    )]
    group_name: String,

    /// Display name of the partner compliance policy created in each tenant.
    #[arg(
        long,
        env = "COMPLIANCE_PROXY_POLICY_NAME",
        default_value = "Fleet compliance policy"
    )]
    policy_name: String,

    /// Description of the partner compliance policy.
    #[arg(
        long,
        env = "COMPLIANCE_PROXY_POLICY_DESCRIPTION",
        default_value = "Device compliance reported by Fleet"
    )]
    policy_description: String,

    /// Enrollment page registered with Intune
    /// [default: {public url}/microsoft-compliance-partner/enroll].
    #[arg(long, env = "COMPLIANCE_PROXY_ENROLL_URL")]
    enroll_url: Option<String>,

    /// Remediation page registered with Intune
    /// [default: {public url}/microsoft-compliance-partner/remediate].
    #[arg(long, env = "COMPLIANCE_PROXY_REMEDIATE_URL")]
    remediate_url: Option<String>,

    /// When to send heartbeats (cron, UTC; five or six fields), or "off".
    #[arg(
        long,
        env = "COMPLIANCE_PROXY_HEARTBEAT_SCHEDULE",
        default_value = "17 3 * * *"
    )]
    heartbeat_schedule: String,

    /// Run against the built-in simulated Microsoft (for local use and demos).
    #[arg(long)]
    simulate_microsoft: bool,

    /// Time a client has to send its request headers.
    #[arg(long, env = "COMPLIANCE_PROXY_HEADER_TIMEOUT", default_value = "10s")]
    header_timeout: String,

    /// Time one request may take.
    #[arg(long, env = "COMPLIANCE_PROXY_REQUEST_TIMEOUT", default_value = "60s")]
    request_timeout: String,

    /// Largest request body in bytes.
    #[arg(long, env = "COMPLIANCE_PROXY_BODY_LIMIT", default_value_t = 65536)]
    body_limit: u64,

    /// Most connections served at once.
    #[arg(long, env = "COMPLIANCE_PROXY_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: u64,

    /// Time in-flight requests get to finish after SIGTERM or SIGINT.
    #[arg(long, env = "COMPLIANCE_PROXY_SHUTDOWN_TIMEOUT", default_value = "30s")]
    shutdown_timeout: String,

    /// How long a consent link stays valid.
    #[arg(long, env = "COMPLIANCE_PROXY_CONSENT_TTL", default_value = "24h")]
    consent_ttl: String,

    /// Most integrations that may wait for admin consent at once.
    #[arg(long, env = "COMPLIANCE_PROXY_MAX_PENDING", default_value_t = 1000)]
    max_pending: u64,
}

#[derive(Args, Debug)]
struct HeartbeatArgs {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    microsoft: MicrosoftArgs,

    #[command(flatten)]
    round: RoundArgs,
}

#[derive(Args, Debug)]
struct MigrateArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// Print the schema version instead of migrating.
    #[arg(long)]
    status: bool,
}

#[derive(Args, Debug)]
struct TenantsArgs {
    #[command(subcommand)]
    command: TenantsCommand,
}

#[derive(Subcommand, Debug)]
enum TenantsCommand {
    /// One line per tenant: state, origin, last heartbeat.
    List(ListArgs),
    /// Everything stored about one tenant, and its messages by status.
    Show(ShowArgs),
}

#[derive(Args, Debug)]
struct ListArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// Print JSON (one array) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ShowArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// The Entra tenant id.
    tenant: String,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct BackupArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// Where to write the copy; replaced atomically if it exists.
    file: PathBuf,
}

#[derive(Args, Debug)]
struct SimulateArgs {
    /// Delay added before every answer, like Microsoft's own latency.
    #[arg(long, default_value = "0ms")]
    latency: String,

    /// Status polls of an upload that answer a pending status first.
    #[arg(long, default_value_t = 2)]
    pending_polls: u32,

    /// Tenants start consented and provisioned (no setup flow needed).
    #[arg(long)]
    open_tenants: bool,

    /// Keep no request log; only count arrivals (`GET /_sim/stats`).
    #[arg(long)]
    no_request_log: bool,

    /// Log filter.
    #[arg(long, env = "RUST_LOG", default_value = "warn")]
    log_level: String,
}

/// Parses the command line, runs the subcommand, returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let common = match &cli.command {
        Command::Serve(args) => &args.common,
        Command::Heartbeat(args) => &args.common,
        Command::Migrate(args) => &args.common,
        Command::Tenants(args) => match &args.command {
            TenantsCommand::List(list) => &list.common,
            TenantsCommand::Show(show) => &show.common,
        },
        Command::Backup(args) => &args.common,
        Command::Simulate(args) => return simulate(args),
    };
    if let Err(e) = crate::telemetry::init(&common.log_format, &common.log_level) {
        eprintln!("compliance-proxy: invalid configuration:\n  --log-level: {e}");
        return ExitCode::from(2);
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("compliance-proxy: could not start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };

    let outcome = match cli.command {
        Command::Serve(args) => serve_config(&args).map(|c| runtime.block_on(crate::run::serve(c))),
        Command::Heartbeat(args) => {
            heartbeat_config(&args).map(|c| runtime.block_on(crate::run::heartbeat(c)))
        }
        Command::Migrate(args) => {
            Ok(runtime.block_on(crate::run::migrate(&args.common.database, args.status)))
        }
        Command::Tenants(args) => Ok(match args.command {
            TenantsCommand::List(a) => {
                runtime.block_on(crate::admin::list(&a.common.database, a.json))
            }
            TenantsCommand::Show(a) => {
                runtime.block_on(crate::admin::show(&a.common.database, &a.tenant, a.json))
            }
        }),
        Command::Backup(args) => {
            Ok(runtime.block_on(crate::admin::backup(&args.common.database, args.file)))
        }
        Command::Simulate(_) => unreachable!("handled before the runtime is built"),
    };

    match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("compliance-proxy: {e:#}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("compliance-proxy: {e}");
            ExitCode::from(2)
        }
    }
}

/// `simulate`: the simulated Microsoft as its own process. Prints its base
/// URL on the first line of stdout, then serves until SIGTERM or SIGINT.
fn simulate(args: &SimulateArgs) -> ExitCode {
    let mut v = Validator::default();
    let latency = humantime::parse_duration(args.latency.trim()).unwrap_or_else(|e| {
        v.problem("--latency", e);
        std::time::Duration::ZERO
    });
    if let Err(e) = v.finish() {
        eprintln!("compliance-proxy: {e}");
        return ExitCode::from(2);
    }
    let _ = crate::telemetry::init("text", &args.log_level);

    let config = SimConfig {
        latency,
        pending_polls: args.pending_polls,
        open_tenants: args.open_tenants,
        record_requests: !args.no_request_log,
        ..SimConfig::default()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("compliance-proxy: could not start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        match crate::simulator::Simulator::start(config).await {
            Ok(simulator) => {
                println!("{}", simulator.base_url());
                crate::run::shutdown_signal().await;
                simulator.shutdown().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("compliance-proxy: could not start the simulated Microsoft: {e}");
                ExitCode::from(1)
            }
        }
    })
}

fn serve_config(args: &ServeArgs) -> Result<ServeConfig, ConfigError> {
    let mut v = Validator::default();
    let microsoft = microsoft_settings(&mut v, &args.microsoft, args.simulate_microsoft);

    let api_keys: Vec<&str> = args
        .api_keys
        .iter()
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
        .collect();
    if api_keys.is_empty() && !args.allow_anonymous {
        v.problem(
            "--api-key",
            "no API key is configured; give --api-key (COMPLIANCE_PROXY_API_KEYS), or \
             --allow-anonymous to serve Fleet servers that send none",
        );
    }
    if let Some(short) = api_keys.iter().find(|k| k.len() < 16) {
        tracing::warn!(
            length = short.len(),
            "an API key is shorter than 16 characters"
        );
    }

    let setup = SetupSettings {
        group_name: v.non_empty("--group-name", &args.group_name),
        policy_name: v.non_empty("--policy-name", &args.policy_name),
        policy_description: args.policy_description.trim().to_string(),
        consent_ttl: v.duration("--consent-ttl", &args.consent_ttl),
        pending_ttl: v.duration("--pending-ttl", &args.round.pending_ttl),
        max_pending: v
            .positive("--max-pending", args.max_pending)
            .min(u32::MAX.into()) as u32,
        message_retention: v.duration("--message-retention", &args.round.message_retention),
        enroll_url: args
            .enroll_url
            .as_deref()
            .map(|u| v.base_url("--enroll-url", u)),
        remediate_url: args
            .remediate_url
            .as_deref()
            .map(|u| v.base_url("--remediate-url", u)),
    };
    let body_limit = v.positive("--body-limit", args.body_limit);
    let limits = ServerLimits {
        header_timeout: v.duration("--header-timeout", &args.header_timeout),
        request_timeout: v.duration("--request-timeout", &args.request_timeout),
        body_limit: usize::try_from(body_limit).unwrap_or(usize::MAX),
        max_connections: v.positive("--max-connections", args.max_connections) as usize,
        shutdown_timeout: v.duration("--shutdown-timeout", &args.shutdown_timeout),
    };

    let config = ServeConfig {
        database: args.common.database.clone(),
        listen: v.socket_addr("--listen", &args.listen),
        public_url: args
            .public_url
            .as_deref()
            .map(|u| v.base_url("--public-url", u)),
        api_keys: ApiKeys::new(api_keys),
        allow_anonymous: args.allow_anonymous,
        heartbeat_schedule: v.schedule("--heartbeat-schedule", &args.heartbeat_schedule),
        heartbeat_concurrency: v
            .positive("--heartbeat-concurrency", args.round.heartbeat_concurrency)
            as usize,
        microsoft,
        simulate_microsoft: args.simulate_microsoft,
        setup,
        limits,
    };
    v.finish()?;
    Ok(config)
}

fn heartbeat_config(args: &HeartbeatArgs) -> Result<HeartbeatConfig, ConfigError> {
    let mut v = Validator::default();
    let config = HeartbeatConfig {
        database: args.common.database.clone(),
        microsoft: microsoft_settings(&mut v, &args.microsoft, false),
        heartbeat_concurrency: v
            .positive("--heartbeat-concurrency", args.round.heartbeat_concurrency)
            as usize,
        message_retention: v.duration("--message-retention", &args.round.message_retention),
        pending_ttl: v.duration("--pending-ttl", &args.round.pending_ttl),
    };
    v.finish()?;
    Ok(config)
}

/// The Microsoft settings; with the simulator, the application defaults to
/// the one the simulator accepts.
fn microsoft_settings(
    v: &mut Validator,
    args: &MicrosoftArgs,
    simulated: bool,
) -> MicrosoftSettings {
    let defaults = SimConfig::default();
    let client_id = match (&args.client_id, simulated) {
        (Some(id), _) => {
            if Guid::parse(id.trim()).is_none() {
                v.problem("--client-id", format!("{id:?} is not a GUID"));
            }
            id.trim().to_string()
        }
        (None, true) => defaults.client_id.clone(),
        (None, false) => {
            v.problem(
                "--client-id",
                "is required (the partner application's client id)",
            );
            String::new()
        }
    };
    let client_secret = match client_secret(v, args) {
        Some(secret) => secret,
        None if simulated => Secret::new(defaults.client_secret.clone()),
        None => {
            v.problem("--client-secret", "is required (or --client-secret-file)");
            Secret::new("")
        }
    };

    MicrosoftSettings {
        login_url: v.base_url("--login-url", &args.login_url),
        graph_url: v.base_url("--graph-url", &args.graph_url),
        client_id,
        client_secret,
        timeout: v.duration("--microsoft-timeout", &args.microsoft_timeout),
        connect_timeout: v.duration(
            "--microsoft-connect-timeout",
            &args.microsoft_connect_timeout,
        ),
        retry_after_cap: v.duration("--retry-after-cap", &args.retry_after_cap),
    }
}

/// The client secret from the flag, its file, or the systemd credential.
fn client_secret(v: &mut Validator, args: &MicrosoftArgs) -> Option<Secret> {
    let credential = std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(|dir| Path::new(&dir).join("client-secret"))
        .filter(|path| path.is_file());

    match (&args.client_secret, &args.client_secret_file) {
        (Some(_), Some(_)) => {
            v.problem(
                "--client-secret",
                "give either --client-secret or --client-secret-file",
            );
            None
        }
        (Some(secret), None) if !secret.trim().is_empty() => Some(Secret::new(secret.trim())),
        (Some(_), None) => None,
        (None, Some(path)) => read_secret(v, path),
        (None, None) => credential.and_then(|path| read_secret(v, &path)),
    }
}

fn read_secret(v: &mut Validator, path: &Path) -> Option<Secret> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Some(Secret::new(text.trim())),
        Ok(_) => {
            v.problem(
                "--client-secret-file",
                format!("{} is empty", path.display()),
            );
            None
        }
        Err(e) => {
            v.problem(
                "--client-secret-file",
                format!("cannot read {}: {e}", path.display()),
            );
            None
        }
    }
}
