//! The validated configuration of each subcommand, and the checks that build it.
//!
//! `cli` collects raw flag and environment values; this module turns them into
//! typed settings. A [`Validator`] records every bad value instead of stopping at
//! the first, so an operator sees all mistakes in one run, and nothing here
//! prints a secret: [`Secret`] and [`ApiKeys`] redact themselves in `Debug`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::secrets::ApiKeys;

/// A value that must never reach a log line or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How to reach Microsoft and with which application.
#[derive(Clone, Debug)]
pub struct MicrosoftSettings {
    /// Base of the Entra login endpoints, without trailing slash.
    pub login_url: String,
    /// Base of Microsoft Graph, without trailing slash.
    pub graph_url: String,
    /// The partner application's (client) id.
    pub client_id: String,
    pub client_secret: Secret,
    /// Overall limit for one Microsoft call, connect included.
    pub timeout: Duration,
    /// Limit for opening a connection to Microsoft.
    pub connect_timeout: Duration,
    /// Longest `Retry-After` we wait out before telling Fleet to come back later.
    pub retry_after_cap: Duration,
    /// Most Microsoft calls in flight at once; each holds a worker thread.
    pub max_calls: usize,
}

/// What the setup flow creates in a tenant, and how long its pieces live.
#[derive(Clone, Debug)]
pub struct SetupSettings {
    /// Entra group the compliance policy is assigned to.
    pub group_name: String,
    pub policy_name: String,
    pub policy_description: String,
    /// How long a consent state stays valid once handed out.
    pub consent_ttl: Duration,
    /// Age after which an integration whose setup never finished is dropped.
    pub pending_ttl: Duration,
    /// Most integrations that may be waiting for setup at once.
    pub max_pending: u32,
    /// Age after which upload messages are pruned.
    pub message_retention: Duration,
    /// Enrollment page URL registered with Intune; defaults under the public URL.
    pub enroll_url: Option<String>,
    /// Remediation page URL registered with Intune; defaults under the public URL.
    pub remediate_url: Option<String>,
}

impl SetupSettings {
    /// Settings for a process that only runs heartbeat rounds and maintenance
    /// (the `heartbeat` subcommand): it creates nothing in tenants, so only
    /// the ages matter, and the page URLs for deprovisioning expired ones.
    pub fn for_maintenance(message_retention: Duration, pending_ttl: Duration) -> SetupSettings {
        SetupSettings {
            group_name: String::new(),
            policy_name: String::new(),
            policy_description: String::new(),
            consent_ttl: Duration::ZERO,
            pending_ttl,
            max_pending: 0,
            message_retention,
            enroll_url: None,
            remediate_url: None,
        }
    }
}

/// Limits the HTTP server enforces on its clients.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Time a client has to send its request headers.
    pub header_timeout: Duration,
    /// Time one request may take from headers received to response ready.
    pub request_timeout: Duration,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Most connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time in-flight requests get to finish after a shutdown signal.
    pub shutdown_timeout: Duration,
}

/// Everything `serve` needs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub database: PathBuf,
    pub listen: SocketAddr,
    /// External base URL; `None` means `http://{bound address}`.
    pub public_url: Option<String>,
    pub api_keys: ApiKeys,
    pub allow_anonymous: bool,
    pub microsoft: MicrosoftSettings,
    /// Start the built-in simulated Microsoft and point `microsoft` at it.
    pub simulate_microsoft: bool,
    pub setup: SetupSettings,
    pub limits: ServerLimits,
    /// When heartbeat rounds run inside `serve`; `None` when turned off.
    pub heartbeat_schedule: Option<cron::Schedule>,
    pub heartbeat_concurrency: usize,
}

/// Everything `heartbeat` needs.
#[derive(Clone, Debug)]
pub struct HeartbeatConfig {
    pub database: PathBuf,
    pub microsoft: MicrosoftSettings,
    pub heartbeat_concurrency: usize,
    pub message_retention: Duration,
    pub pending_ttl: Duration,
    /// Needed to deprovision expired integrations: Intune is sent the same
    /// page URLs as when the tenant was provisioned.
    pub public_url: Option<String>,
    pub enroll_url: Option<String>,
    pub remediate_url: Option<String>,
}

/// The configuration was refused; each entry names one setting and its problem.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .problems.join("\n  "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// Collects the problems found while checking settings.
///
/// Each check returns a usable placeholder when the value is bad, so checking
/// continues and [`Validator::finish`] reports everything at once.
#[derive(Default)]
pub struct Validator {
    problems: Vec<String>,
    warnings: Vec<String>,
}

impl Validator {
    pub fn problem(&mut self, setting: &str, message: impl fmt::Display) {
        self.problems.push(format!("{setting}: {message}"));
    }

    /// Something allowed but worth an operator's attention; logged at start.
    pub fn warning(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    pub fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    /// A duration no shorter than `minimum`. Zero is simply too short, so
    /// one bad value yields one problem.
    pub fn duration_at_least(&mut self, setting: &str, text: &str, minimum: Duration) -> Duration {
        match parse_duration(text) {
            Ok(duration) if duration >= minimum => duration,
            Ok(_) => {
                let shown = humantime::format_duration(minimum);
                self.problem(
                    setting,
                    format!("{text:?} is shorter than the minimum of {shown}"),
                );
                minimum
            }
            Err(problem) => {
                self.problem(setting, problem);
                minimum
            }
        }
    }

    /// A duration such as `500ms`, `30s`, `5m`, `24h` or `7days`.
    pub fn duration(&mut self, setting: &str, text: &str) -> Duration {
        match parse_duration(text) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.problem(setting, "must be longer than zero");
                Duration::from_secs(1)
            }
            Err(problem) => {
                self.problem(setting, problem);
                Duration::from_secs(1)
            }
        }
    }

    /// An absolute `http` or `https` URL, returned without trailing slash.
    pub fn base_url(&mut self, setting: &str, text: &str) -> String {
        let trimmed = text.trim().trim_end_matches('/');
        let ok = match hyper::Uri::from_str(trimmed) {
            Ok(uri) => {
                matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri
                        .authority()
                        .is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'))
                    && uri.query().is_none()
            }
            Err(_) => false,
        };
        if !ok {
            self.problem(
                setting,
                format!("{text:?} is not an absolute http(s) URL without user, query or fragment"),
            );
        }
        trimmed.to_string()
    }

    pub fn socket_addr(&mut self, setting: &str, text: &str) -> SocketAddr {
        text.trim().parse().unwrap_or_else(|_| {
            self.problem(
                setting,
                format!("{text:?} is not an address like 127.0.0.1:8080"),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    /// A crontab expression of five fields (minute, hour, day of month,
    /// month, day of week; UTC), or `off`.
    pub fn schedule(&mut self, setting: &str, text: &str) -> Option<cron::Schedule> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return None;
        }

        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            self.problem(
                setting,
                format!("{text:?} is not a five-field crontab expression (or \"off\")"),
            );
            return None;
        };
        // The cron crate counts weekdays from 1 = Sunday and wants seconds
        // first; crontab counts from 0 (or 7) = Sunday. Names mean the same
        // in both, so numbers are turned into names.
        let expression = format!("0 {minute} {hour} {day} {month} {}", weekday_names(weekday));
        let schedule = match cron::Schedule::from_str(&expression) {
            Ok(schedule) => schedule,
            Err(e) => {
                self.problem(
                    setting,
                    format!("{text:?} is not a crontab expression ({e})"),
                );
                return None;
            }
        };
        if schedule.upcoming(chrono::Utc).next().is_none() {
            self.problem(setting, format!("{text:?} never fires"));
            return None;
        }
        Some(schedule)
    }

    /// A whole number of at least 1.
    pub fn count(&mut self, setting: &str, text: &str) -> u64 {
        match text.trim().parse::<u64>() {
            Ok(n) if n >= 1 => n,
            _ => {
                self.problem(
                    setting,
                    format!("{text:?} is not a whole number of at least 1"),
                );
                1
            }
        }
    }

    /// One of the listed words.
    pub fn choice(&mut self, setting: &str, text: &str, choices: &[&'static str]) -> &'static str {
        let text = text.trim();
        match choices.iter().find(|c| c.eq_ignore_ascii_case(text)) {
            Some(choice) => choice,
            None => {
                self.problem(
                    setting,
                    format!("{text:?} is not one of {}", choices.join(", ")),
                );
                choices[0]
            }
        }
    }

    /// A log filter: levels (`info`) and per-module directives
    /// (`compliance_proxy=debug`), comma-separated. A bare word that is not a
    /// level would silently match no module and turn logging off.
    pub fn log_filter(&mut self, setting: &str, text: &str) -> String {
        let bad = text.split(',').map(str::trim).find(|directive| {
            !directive.contains('=')
                && directive
                    .parse::<tracing::level_filters::LevelFilter>()
                    .is_err()
        });
        match (bad, tracing_subscriber::EnvFilter::try_new(text)) {
            (None, Ok(_)) => text.trim().to_string(),
            (Some(word), _) => {
                let levels = "trace, debug, info, warn, error, off";
                self.problem(
                    setting,
                    format!("{word:?} is not a level ({levels}) or module=level"),
                );
                "info".into()
            }
            (None, Err(e)) => {
                self.problem(setting, format!("{text:?} is not a log filter ({e})"));
                "info".into()
            }
        }
    }

    pub fn non_empty(&mut self, setting: &str, text: &str) -> String {
        let text = text.trim();
        if text.is_empty() {
            self.problem(setting, "must not be empty");
        }
        text.to_string()
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

/// Parses a duration, or says what is wrong with the text.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration like 500ms, 30s or 5m ({e})"))
}

/// Crontab weekday numbers (0-7, Sunday twice) as names, leaving steps
/// (`*/2`) alone: `1-5` becomes `MON-FRI`.
fn weekday_names(field: &str) -> String {
    const NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    let item = |item: &str| {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        let named: Vec<String> = base
            .split('-')
            .map(|part| match part.parse::<usize>() {
                Ok(n) if n < NAMES.len() => NAMES[n].to_string(),
                _ => part.to_string(),
            })
            .collect();
        match step {
            Some(step) => format!("{}/{step}", named.join("-")),
            None => named.join("-"),
        }
    };
    field.split(',').map(item).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let settings = MicrosoftSettings {
            login_url: "https://login.example".into(),
            graph_url: "https://graph.example".into(),
            client_id: "id".into(),
            client_secret: Secret::new("very-secret-value"),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            retry_after_cap: Duration::from_secs(1),
            max_calls: 1,
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn validator_reports_every_problem_at_once() {
        let mut v = Validator::default();
        assert_eq!(v.duration("--a", "500ms"), Duration::from_millis(500));
        assert_eq!(v.duration("--b", "5m"), Duration::from_secs(300));
        v.duration("--c", "soon");
        v.duration("--d", "0s");
        v.base_url("--e", "ftp://x");
        v.socket_addr("--f", "localhost");
        v.schedule("--g", "every day");
        v.count("--h", "0");
        let err = v.finish().unwrap_err();
        let names: Vec<_> = err
            .problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(names, ["--c", "--d", "--e", "--f", "--g", "--h"]);
    }

    #[test]
    fn a_duration_below_its_minimum_is_one_problem() {
        let minute = Duration::from_secs(60);
        for (text, expected) in [
            ("0s", r#"--ttl: "0s" is shorter than the minimum of 1m"#),
            ("30s", r#"--ttl: "30s" is shorter than the minimum of 1m"#),
            (
                "soon",
                r#"--ttl: "soon" is not a duration like 500ms, 30s or 5m"#,
            ),
        ] {
            let mut v = Validator::default();
            assert_eq!(v.duration_at_least("--ttl", text, minute), minute);
            let problems = v.finish().unwrap_err().problems;
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
            assert!(problems[0].starts_with(expected), "{text}: {problems:?}");
        }

        let mut v = Validator::default();
        assert_eq!(v.duration_at_least("--ttl", "2m", minute), 2 * minute);
        v.finish().unwrap();
    }

    #[test]
    fn base_urls_lose_their_trailing_slash() {
        let mut v = Validator::default();
        assert_eq!(
            v.base_url("--x", "https://login.example/"),
            "https://login.example"
        );
        assert_eq!(
            v.base_url("--x", "http://127.0.0.1:9/a/"),
            "http://127.0.0.1:9/a"
        );
        v.finish().unwrap();
    }

    #[test]
    fn schedules_are_crontab_expressions_or_off() {
        let mut v = Validator::default();
        assert!(v.schedule("--s", "30 4 * * *").is_some());
        assert!(v.schedule("--s", "OFF").is_none());
        v.finish().unwrap();

        let mut v = Validator::default();
        v.schedule("--s", "0 30 4 * * *");
        v.schedule("--s", "0 0 30 2 *");
        v.schedule("--s", "61 * * * *");
        assert_eq!(v.finish().unwrap_err().problems.len(), 3);
    }

    #[test]
    fn weekdays_count_from_sunday_as_in_crontab() {
        assert_eq!(weekday_names("1-5"), "MON-FRI");
        assert_eq!(weekday_names("0,6"), "SUN,SAT");
        assert_eq!(weekday_names("7"), "SUN");
        assert_eq!(weekday_names("*/2"), "*/2");
        assert_eq!(weekday_names("1-5/2"), "MON-FRI/2");
        assert_eq!(weekday_names("MON"), "MON");

        // 2026-12-03 is a Thursday; "5" is the next day, Friday.
        let mut v = Validator::default();
        let friday = v.schedule("--s", "17 3 * * 5").unwrap();
        let after = chrono::DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z").unwrap();
        let next = friday
            .after(&after.with_timezone(&chrono::Utc))
            .next()
            .unwrap();
        assert_eq!(next.to_rfc3339(), "2026-12-04T03:17:00+00:00");
    }
}
