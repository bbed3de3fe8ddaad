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
    HeartbeatConfig, MicrosoftSettings, Secret, ServeConfig, ServerLimits, SetupSettings, Validator,
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

    /// Log format: text or json.
    #[arg(long, env = "COMPLIANCE_PROXY_LOG_FORMAT", default_value = "text")]
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

    /// Most Microsoft calls in flight at once. Each holds a worker thread
    /// while it waits for Microsoft; further calls queue.
    #[arg(
        long,
        env = "COMPLIANCE_PROXY_MICROSOFT_CONCURRENCY",
        default_value = "256"
    )]
    microsoft_concurrency: String,

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
        default_value = "64"
    )]
    heartbeat_concurrency: String,

    /// Age after which upload messages are pruned.
    #[arg(
        long,
        env = "COMPLIANCE_PROXY_MESSAGE_RETENTION",
        default_value = "30days"
    )]
    message_retention: String,

    /// Age after which an integration whose setup never finished is dropped
    /// (at least 1m).
    #[arg(long, env = "COMPLIANCE_PROXY_PENDING_TTL", default_value = "7days")]
    pending_ttl: String,
}

/// Where this service is reached, which Intune is told when a tenant is
/// provisioned and again when it is deprovisioned.
#[derive(Args, Debug)]
struct PagesArgs {
    /// External base URL of this service (consent redirect_uri, default page
    /// URLs). `serve` defaults it to http://{listen address}.
    #[arg(long, env = "COMPLIANCE_PROXY_PUBLIC_URL")]
    public_url: Option<String>,

    /// Enrollment page registered with Intune
    /// [default: {public url}/microsoft-compliance-partner/enroll].
    #[arg(long, env = "COMPLIANCE_PROXY_ENROLL_URL")]
    enroll_url: Option<String>,

    /// Remediation page registered with Intune
    /// [default: {public url}/microsoft-compliance-partner/remediate].
    #[arg(long, env = "COMPLIANCE_PROXY_REMEDIATE_URL")]
    remediate_url: Option<String>,
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

    #[command(flatten)]
    pages: PagesArgs,

    /// An accepted API key. To accept several during a rotation, repeat the
    /// flag or separate keys with commas, in the flag as in the environment.
    /// Keys are printable ASCII without spaces or commas.
    #[arg(
        long = "api-key",
        env = "COMPLIANCE_PROXY_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_keys: Vec<String>,

    /// Serve Fleet servers that send no API key (Fleet 4.90 and later). The
    /// environment variable takes true/false, 1/0, yes/no or on/off.
    #[arg(long, env = "COMPLIANCE_PROXY_ALLOW_ANONYMOUS",
          value_parser = clap::builder::BoolishValueParser::new())]
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

    /// When to send heartbeats: a five-field crontab expression (UTC), or "off".
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

    /// Time a request may take before it is answered 503; a setup, upload or
    /// deprovisioning it started goes on, anything else is abandoned.
    #[arg(long, env = "COMPLIANCE_PROXY_REQUEST_TIMEOUT", default_value = "60s")]
    request_timeout: String,

    /// Largest request body in bytes.
    #[arg(long, env = "COMPLIANCE_PROXY_BODY_LIMIT", default_value = "65536")]
    body_limit: String,

    /// Most connections served at once.
    #[arg(long, env = "COMPLIANCE_PROXY_MAX_CONNECTIONS", default_value = "4096")]
    max_connections: String,

    /// Time in-flight requests, and work they started, get to finish after SIGTERM or SIGINT.
    #[arg(long, env = "COMPLIANCE_PROXY_SHUTDOWN_TIMEOUT", default_value = "30s")]
    shutdown_timeout: String,

    /// How long a consent link stays valid (at least 1m).
    #[arg(long, env = "COMPLIANCE_PROXY_CONSENT_TTL", default_value = "24h")]
    consent_ttl: String,

    /// Most integrations that may wait for admin consent at once.
    #[arg(long, env = "COMPLIANCE_PROXY_MAX_PENDING", default_value = "1000")]
    max_pending: String,
}

#[derive(Args, Debug)]
struct HeartbeatArgs {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    microsoft: MicrosoftArgs,

    #[command(flatten)]
    round: RoundArgs,

    #[command(flatten)]
    pages: PagesArgs,
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
    #[arg(value_parser = parse_tenant)]
    tenant: Guid,

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

/// A tenant id on the command line. A malformed one is a usage error, which
/// clap reports like any other (exit status 2), before anything is opened.
fn parse_tenant(text: &str) -> Result<Guid, String> {
    Guid::parse(text.trim()).ok_or_else(|| "not a tenant id (a GUID)".to_string())
}

/// A consent link must live long enough for an admin to sign in and click.
const MIN_CONSENT_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The consent link leads back to a pending integration, so that must last
/// at least as long; shorter, a new integration vanishes before any admin
/// could consent (`1ms` expired every one at once).
const MIN_PENDING_TTL: std::time::Duration = MIN_CONSENT_TTL;

/// A subcommand with its settings checked, ready to run.
enum Job {
    Serve(Box<ServeConfig>),
    Heartbeat(Box<HeartbeatConfig>),
    Migrate {
        database: PathBuf,
        status: bool,
    },
    List {
        database: PathBuf,
        json: bool,
    },
    Show {
        database: PathBuf,
        tenant: Guid,
        json: bool,
    },
    Backup {
        database: PathBuf,
        file: PathBuf,
    },
}

/// Parses the command line, runs the subcommand, returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Simulate(args) = &cli.command {
        return simulate(args);
    }

    // Every setting, logging included, is checked before anything starts, and
    // all problems are reported together.
    let mut v = Validator::default();
    let common = match &cli.command {
        Command::Serve(args) => &args.common,
        Command::Heartbeat(args) => &args.common,
        Command::Migrate(args) => &args.common,
        Command::Tenants(args) => match &args.command {
            TenantsCommand::List(list) => &list.common,
            TenantsCommand::Show(show) => &show.common,
        },
        Command::Backup(args) => &args.common,
        Command::Simulate(_) => unreachable!("returned above"),
    };
    let log_format = v.choice("--log-format", &common.log_format, &["text", "json"]);
    let log_filter = v.log_filter("--log-level", &common.log_level);
    let database = common.database.clone();

    let job = match cli.command {
        Command::Serve(args) => Job::Serve(Box::new(serve_config(&mut v, &args))),
        Command::Heartbeat(args) => Job::Heartbeat(Box::new(heartbeat_config(&mut v, &args))),
        Command::Migrate(args) => Job::Migrate {
            database,
            status: args.status,
        },
        Command::Tenants(args) => match args.command {
            TenantsCommand::List(a) => Job::List {
                database,
                json: a.json,
            },
            TenantsCommand::Show(a) => Job::Show {
                database,
                tenant: a.tenant,
                json: a.json,
            },
        },
        Command::Backup(args) => Job::Backup {
            database,
            file: args.file,
        },
        Command::Simulate(_) => unreachable!("returned above"),
    };
    let warnings = v.warnings();
    if let Err(e) = v.finish() {
        eprintln!("compliance-proxy: {e}");
        return ExitCode::from(2);
    }
    crate::telemetry::init(log_format, &log_filter);
    for warning in warnings {
        tracing::warn!("{warning}");
    }

    // Blocking threads: one per Microsoft call allowed in flight, one per
    // database connection, and a few for everything else (file I/O, DNS).
    let microsoft_calls = match &job {
        Job::Serve(config) => config.microsoft.max_calls,
        Job::Heartbeat(config) => config.microsoft.max_calls,
        _ => 0,
    };
    let blocking_threads = microsoft_calls + crate::run::POOL_SIZE as usize + 16;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("compliance-proxy: could not start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(async {
        match job {
            Job::Serve(config) => crate::run::serve(*config).await,
            Job::Heartbeat(config) => crate::run::heartbeat(*config).await,
            Job::Migrate { database, status } => crate::run::migrate(&database, status).await,
            Job::List { database, json } => crate::admin::list(&database, json).await,
            Job::Show {
                database,
                tenant,
                json,
            } => crate::admin::show(&database, tenant, json).await,
            Job::Backup { database, file } => crate::admin::backup(&database, file).await,
        }
    });
    // Microsoft calls still running on worker threads (after a shutdown
    // deadline) must not hold the process open.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));

    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("compliance-proxy: {e:#}");
            ExitCode::from(1)
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
    let log_filter = v.log_filter("--log-level", &args.log_level);
    if let Err(e) = v.finish() {
        eprintln!("compliance-proxy: {e}");
        return ExitCode::from(2);
    }
    crate::telemetry::init("text", &log_filter);

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

fn serve_config(v: &mut Validator, args: &ServeArgs) -> ServeConfig {
    let microsoft = microsoft_settings(v, &args.microsoft, args.simulate_microsoft);

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
    for key in &api_keys {
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            v.problem("--api-key", "a key must be printable ASCII without spaces");
        } else if key.len() < 16 {
            v.warning(format!(
                "an API key is {} characters long; use 16 or more",
                key.len()
            ));
        }
    }

    let setup = SetupSettings {
        group_name: v.non_empty("--group-name", &args.group_name),
        policy_name: v.non_empty("--policy-name", &args.policy_name),
        policy_description: args.policy_description.trim().to_string(),
        consent_ttl: v.duration_at_least("--consent-ttl", &args.consent_ttl, MIN_CONSENT_TTL),
        pending_ttl: v.duration_at_least("--pending-ttl", &args.round.pending_ttl, MIN_PENDING_TTL),
        max_pending: v
            .count("--max-pending", &args.max_pending)
            .min(u32::MAX.into()) as u32,
        message_retention: v.duration("--message-retention", &args.round.message_retention),
        enroll_url: page_url(v, "--enroll-url", &args.pages.enroll_url),
        remediate_url: page_url(v, "--remediate-url", &args.pages.remediate_url),
    };
    let body_limit = v.count("--body-limit", &args.body_limit);
    let limits = ServerLimits {
        header_timeout: v.duration("--header-timeout", &args.header_timeout),
        request_timeout: v.duration("--request-timeout", &args.request_timeout),
        body_limit: usize::try_from(body_limit).unwrap_or(usize::MAX),
        max_connections: v.count("--max-connections", &args.max_connections) as usize,
        shutdown_timeout: v.duration("--shutdown-timeout", &args.shutdown_timeout),
    };

    ServeConfig {
        database: args.common.database.clone(),
        listen: v.socket_addr("--listen", &args.listen),
        public_url: page_url(v, "--public-url", &args.pages.public_url),
        api_keys: ApiKeys::new(api_keys),
        allow_anonymous: args.allow_anonymous,
        heartbeat_schedule: v.schedule("--heartbeat-schedule", &args.heartbeat_schedule),
        heartbeat_concurrency: v.count("--heartbeat-concurrency", &args.round.heartbeat_concurrency)
            as usize,
        microsoft,
        simulate_microsoft: args.simulate_microsoft,
        setup,
        limits,
    }
}

fn heartbeat_config(v: &mut Validator, args: &HeartbeatArgs) -> HeartbeatConfig {
    HeartbeatConfig {
        database: args.common.database.clone(),
        microsoft: microsoft_settings(v, &args.microsoft, false),
        heartbeat_concurrency: v.count("--heartbeat-concurrency", &args.round.heartbeat_concurrency)
            as usize,
        message_retention: v.duration("--message-retention", &args.round.message_retention),
        pending_ttl: v.duration_at_least("--pending-ttl", &args.round.pending_ttl, MIN_PENDING_TTL),
        public_url: page_url(v, "--public-url", &args.pages.public_url),
        enroll_url: page_url(v, "--enroll-url", &args.pages.enroll_url),
        remediate_url: page_url(v, "--remediate-url", &args.pages.remediate_url),
    }
}

fn page_url(v: &mut Validator, flag: &str, url: &Option<String>) -> Option<String> {
    url.as_deref().map(|u| v.base_url(flag, u))
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
        SecretSource::Found(secret) => secret,
        SecretSource::Unreadable => Secret::new(""),
        SecretSource::Missing if simulated => Secret::new(defaults.client_secret.clone()),
        SecretSource::Missing => {
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
        max_calls: v.count("--microsoft-concurrency", &args.microsoft_concurrency) as usize,
    }
}

/// Where the client secret came from.
enum SecretSource {
    Found(Secret),
    /// Given, but unusable; the problem is already recorded.
    Unreadable,
    Missing,
}

/// The client secret from the flag, its file, or the systemd credential.
fn client_secret(v: &mut Validator, args: &MicrosoftArgs) -> SecretSource {
    let credential = std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(|dir| Path::new(&dir).join("client-secret"))
        .filter(|path| path.is_file());

    match (&args.client_secret, &args.client_secret_file) {
        (Some(_), Some(_)) => {
            v.problem(
                "--client-secret",
                "give either --client-secret or --client-secret-file",
            );
            SecretSource::Unreadable
        }
        (Some(secret), None) => one_line_secret(v, "--client-secret", secret),
        (None, Some(path)) => read_secret(v, path),
        (None, None) => credential.map_or(SecretSource::Missing, |path| read_secret(v, &path)),
    }
}

fn read_secret(v: &mut Validator, path: &Path) -> SecretSource {
    match std::fs::read_to_string(path) {
        Ok(text) => one_line_secret(v, "--client-secret-file", &text),
        Err(e) => {
            v.problem(
                "--client-secret-file",
                format!("cannot read {}: {e}", path.display()),
            );
            SecretSource::Unreadable
        }
    }
}

/// A secret is one line; surrounding whitespace (a file's final newline) is
/// dropped. The problem text never includes the value.
fn one_line_secret(v: &mut Validator, setting: &str, text: &str) -> SecretSource {
    let secret = text.trim();
    if secret.is_empty() {
        v.problem(setting, "the client secret is empty");
        SecretSource::Unreadable
    } else if secret.contains(['\r', '\n']) {
        v.problem(setting, "the client secret must be a single line");
        SecretSource::Unreadable
    } else {
        SecretSource::Found(Secret::new(secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration problems of a `serve` or `heartbeat` command line,
    /// found as `main` finds them.
    fn problems(args: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from(std::iter::once("compliance-proxy").chain(args.to_vec()))
            .expect("the command line parses");
        let mut v = Validator::default();
        match &cli.command {
            Command::Serve(args) => {
                serve_config(&mut v, args);
            }
            Command::Heartbeat(args) => {
                heartbeat_config(&mut v, args);
            }
            _ => panic!("only serve and heartbeat are checked here"),
        }
        v.finish().err().map(|e| e.problems).unwrap_or_default()
    }

    /// The help text promised comma-separation in the environment only, but
    /// the flag splits too; a key is never taken with a comma in it.
    #[test]
    fn commas_separate_api_keys_in_the_flag_as_in_the_environment() {
        let (old, new) = ("old-key-0123456789", "new-key-0123456789");
        let cli = Cli::try_parse_from([
            "compliance-proxy",
            "serve",
            "--simulate-microsoft",
            "--api-key",
            &format!("{old},{new}"),
        ])
        .expect("the command line parses");
        let Command::Serve(args) = &cli.command else {
            panic!("serve was given");
        };
        assert_eq!(args.api_keys, [old, new]);

        let mut v = Validator::default();
        let config = serve_config(&mut v, args);
        assert!(v.finish().is_ok());
        assert!(config.api_keys.accepts(old) && config.api_keys.accepts(new));
        assert!(!config.api_keys.accepts(&format!("{old},{new}")));
    }

    #[test]
    fn pending_ttl_has_the_consent_ttl_minimum_in_serve_and_heartbeat() {
        let serve = ["serve", "--simulate-microsoft", "--allow-anonymous"];
        let client = "0d5e8c1a-4b7f-4e2d-9c3b-6a1f0e2d4c8b";
        let heartbeat = ["heartbeat", "--client-id", client, "--client-secret", "s"];
        for command in [&serve[..], &heartbeat[..]] {
            let with = |ttl| problems(&[command, &["--pending-ttl", ttl]].concat());
            assert_eq!(
                with("1ms"),
                [r#"--pending-ttl: "1ms" is shorter than the minimum of 1m"#],
                "{command:?}"
            );
            assert_eq!(with("59s").len(), 1, "{command:?}");
            assert_eq!(with("1m"), Vec::<String>::new(), "{command:?}");
        }
    }
}
