//! What can go wrong when talking to Microsoft, as readable sentences.
//!
//! Every error names the operation that failed and what Microsoft said, in a
//! form fit for Fleet's UI and the `setup_error` column: Microsoft's status,
//! error code and the first sentence of its message, never a raw body, a
//! header dump or a token.

use std::fmt;
use std::time::Duration;

/// The Microsoft operations we perform, named for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Token,
    Discovery,
    Provision,
    Deprovision,
    CreatePolicy,
    ListPolicies,
    FindGroup,
    AssignPolicy,
    Heartbeat,
    LookUpUser,
    Upload,
    UploadStatus,
    UpdateWindowsDevice,
}

impl Op {
    /// A short stable name, used in logs and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Token => "token",
            Op::Discovery => "discovery",
            Op::Provision => "provision",
            Op::Deprovision => "deprovision",
            Op::CreatePolicy => "create_policy",
            Op::ListPolicies => "list_policies",
            Op::FindGroup => "find_group",
            Op::AssignPolicy => "assign_policy",
            Op::Heartbeat => "heartbeat",
            Op::LookUpUser => "look_up_user",
            Op::Upload => "upload",
            Op::UploadStatus => "upload_status",
            Op::UpdateWindowsDevice => "update_windows_device",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Token => "getting an access token",
            Op::Discovery => "finding the tenant's Intune partner service URLs",
            Op::Provision => "provisioning the tenant",
            Op::Deprovision => "deprovisioning the tenant",
            Op::CreatePolicy => "creating the partner compliance policy",
            Op::ListPolicies => "listing the partner compliance policies",
            Op::FindGroup => "finding the Entra group",
            Op::AssignPolicy => "assigning the compliance policy",
            Op::Heartbeat => "sending the heartbeat",
            Op::LookUpUser => "looking up the user",
            Op::Upload => "uploading the device record",
            Op::UploadStatus => "reading the upload status",
            Op::UpdateWindowsDevice => "updating the Windows device",
        })
    }
}

/// A Microsoft call that did not succeed.
#[derive(Debug, thiserror::Error)]
#[error("{op} failed: {kind}")]
pub struct MsError {
    pub op: Op,
    pub kind: ErrorKind,
}

/// How a Microsoft call failed.
#[derive(Debug)]
pub enum ErrorKind {
    /// No connection could be made or it broke before an answer arrived.
    Unreachable(String),
    /// No complete answer within the configured limit.
    Timeout(Duration),
    /// Microsoft answered with an HTTP error status.
    Status {
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    /// Microsoft asked us to slow down for longer than we are willing to wait.
    Throttled(Duration),
    /// HTTP success, but the body reports a failure.
    InBand(String),
    /// The partner application is not (or no longer) consented in the tenant.
    NotConsented(String),
    /// The answer did not have the shape Microsoft documents.
    Unexpected(String),
    /// The worker thread running the call panicked.
    Worker,
}

impl ErrorKind {
    /// A short stable name, used as a metrics label.
    pub fn name(&self) -> &'static str {
        match self {
            ErrorKind::Unreachable(_) => "unreachable",
            ErrorKind::Timeout(_) => "timeout",
            ErrorKind::Status { .. } => "status",
            ErrorKind::Throttled(_) => "throttled",
            ErrorKind::InBand(_) => "in_band",
            ErrorKind::NotConsented(_) => "not_consented",
            ErrorKind::Unexpected(_) => "unexpected",
            ErrorKind::Worker => "worker",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Unreachable(why) => write!(f, "Microsoft could not be reached ({why})"),
            ErrorKind::Timeout(after) => {
                write!(
                    f,
                    "Microsoft did not answer within {}",
                    humantime::format_duration(*after)
                )
            }
            ErrorKind::Status {
                status,
                code,
                message,
            } => {
                write!(f, "Microsoft answered HTTP {status}")?;
                match (code, message) {
                    (Some(c), Some(m)) => write!(f, " ({c}: {m})"),
                    (Some(c), None) => write!(f, " ({c})"),
                    (None, Some(m)) => write!(f, " ({m})"),
                    (None, None) => Ok(()),
                }
            }
            ErrorKind::Throttled(after) => write!(
                f,
                "Microsoft is throttling requests; retry after {}",
                humantime::format_duration(*after)
            ),
            ErrorKind::InBand(detail) => write!(f, "Microsoft reported a failure: {detail}"),
            ErrorKind::NotConsented(detail) => write!(
                f,
                "the partner application is not consented in this Entra tenant ({detail})"
            ),
            ErrorKind::Unexpected(what) => write!(f, "unexpected answer from Microsoft: {what}"),
            ErrorKind::Worker => f.write_str("the worker running the call stopped unexpectedly"),
        }
    }
}

impl MsError {
    pub(crate) fn new(op: Op, kind: ErrorKind) -> MsError {
        MsError { op, kind }
    }

    pub(crate) fn unexpected(op: Op, what: impl Into<String>) -> MsError {
        MsError::new(op, ErrorKind::Unexpected(what.into()))
    }

    pub(crate) fn in_band(op: Op, detail: impl Into<String>) -> MsError {
        MsError::new(op, ErrorKind::InBand(detail.into()))
    }

    /// Whether Microsoft says the application is not consented in the tenant,
    /// which makes deprovisioning moot.
    pub fn is_not_consented(&self) -> bool {
        matches!(self.kind, ErrorKind::NotConsented(_))
    }

    /// How long Microsoft asked us to wait, when it throttled us.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::Throttled(after) => Some(after),
            _ => None,
        }
    }

    /// The HTTP status Microsoft answered, if the failure was one.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            ErrorKind::Status { status, .. } => Some(status),
            _ => None,
        }
    }
}

/// Trims Microsoft-provided text to one readable line of bounded length.
///
/// Token endpoint descriptions carry trace and correlation ids after the
/// first sentence; they are noise for an admin and are cut here.
pub(crate) fn tidy(text: &str) -> Option<String> {
    const MAX: usize = 300;
    let first_line = text.split(['\r', '\n']).next().unwrap_or("");
    let cut = first_line
        .find(" Trace ID:")
        .map_or(first_line, |i| &first_line[..i]);
    let clean: String = cut
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX)
        .collect::<String>()
        .trim()
        .to_string();
    (!clean.is_empty()).then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_sentences() {
        let e = MsError::new(
            Op::Provision,
            ErrorKind::Status {
                status: 403,
                code: Some("Forbidden".into()),
                message: Some("Insufficient privileges.".into()),
            },
        );
        assert_eq!(
            e.to_string(),
            "provisioning the tenant failed: Microsoft answered HTTP 403 \
             (Forbidden: Insufficient privileges.)"
        );

        let e = MsError::new(Op::Upload, ErrorKind::Throttled(Duration::from_secs(120)));
        assert_eq!(
            e.to_string(),
            "uploading the device record failed: Microsoft is throttling requests; \
             retry after 2m"
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    }

    #[test]
    fn tidy_keeps_the_first_sentence_of_aadsts_descriptions() {
        let raw = "AADSTS700016: Application with identifier 'x' was not found. \
                   Trace ID: 1 Correlation ID: 2\r\nTimestamp: 3";
        assert_eq!(
            tidy(raw).unwrap(),
            "AADSTS700016: Application with identifier 'x' was not found."
        );
        assert_eq!(tidy("  \n"), None);
        assert_eq!(tidy(&"x".repeat(1000)).unwrap().len(), 300);
    }
}
