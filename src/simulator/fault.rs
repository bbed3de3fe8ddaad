//! Fault injection rules: what to match and what to do instead of (or before)
//! answering normally.
//!
//! Owns the public [`Fault`] builder, its JSON form for `POST /_sim/faults`,
//! and the queue semantics: rules are tried in the order added, the first
//! that matches fires, and a rule with a count is removed once used up.

use std::time::Duration;

use serde::Deserialize;

/// A failure Microsoft reports inside an otherwise successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InBand {
    /// `PartnerTenants` answers `Provisioned: 0` with an `ErrorDetail`.
    ProvisionedZero,
    /// `PartnerTenants` (or a heartbeat) answers 200 with this `ErrorDetail`.
    ErrorDetail(String),
    /// An upload answers this `ErrorCode` instead of 202.
    UploadErrorCode(String),
    /// The next status poll answers `Failed` with this `ErrorDetail`.
    StatusFailed(String),
    /// A heartbeat answers `HttpStatusCode: 500` with `MessageErrors`.
    HeartbeatFailure,
    /// Policy create answers 204 with the all-zero GUID in `Location`.
    PolicyNullLocation,
    /// Policy create answers 204 with the new policy in `Location`.
    PolicyLocation,
    /// The token endpoint answers AADSTS700016.
    Aadsts700016,
    /// The consent page redirects back with `error=access_denied`.
    ConsentRefused,
}

/// One fault rule, built fluently:
/// `Fault::on("POST", "/PartnerCompliancePolicies").status(409).times(2)`.
///
/// A rule fires once unless told otherwise. When it fires, a `delay` is
/// waited first; then `drop_connection` closes the connection without an
/// answer, else `status` answers that status with a Microsoft-shaped error,
/// else an in-band failure (if any) replaces the normal answer of the
/// endpoint it applies to, else the request is handled normally. An in-band
/// failure on an endpoint it does not apply to is ignored (the rule is still
/// used up).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    method: String,
    path_contains: String,
    tenant: Option<String>,
    /// Firings left; `None` fires forever.
    remaining: Option<u32>,
    pub(crate) status: Option<u16>,
    pub(crate) retry_after: Option<u64>,
    pub(crate) delay: Option<Duration>,
    pub(crate) drop_connection: bool,
    pub(crate) in_band: Option<InBand>,
}

impl Fault {
    /// A rule for requests with this method (`"*"` for any, case ignored)
    /// whose path contains `path_contains` (compared with the path both as
    /// received and percent-decoded).
    pub fn on(method: &str, path_contains: &str) -> Fault {
        Fault {
            method: method.to_ascii_uppercase(),
            path_contains: path_contains.to_owned(),
            tenant: None,
            remaining: Some(1),
            status: None,
            retry_after: None,
            delay: None,
            drop_connection: false,
            in_band: None,
        }
    }

    /// Only for requests of this tenant (see `RecordedRequest::tenant`).
    pub fn tenant(mut self, tenant_id: &str) -> Fault {
        self.tenant = Some(tenant_id.to_ascii_lowercase());
        self
    }

    /// Fire `n` times instead of once (0 never fires).
    pub fn times(mut self, n: u32) -> Fault {
        self.remaining = Some(n);
        self
    }

    /// Fire on every matching request until the faults are cleared.
    pub fn always(mut self) -> Fault {
        self.remaining = None;
        self
    }

    /// Answer this status (400–599; anything else is answered as 500) with
    /// the error body of the endpoint's kind. A 401 carries `WWW-Authenticate`.
    pub fn status(mut self, code: u16) -> Fault {
        self.status = Some(if (400..=599).contains(&code) {
            code
        } else {
            500
        });
        self
    }

    /// Add `Retry-After: <secs>` to the `status` answer (for 429 and 503).
    pub fn retry_after(mut self, secs: u64) -> Fault {
        self.retry_after = Some(secs);
        self
    }

    /// Wait this long before answering (normally, or with `status`).
    pub fn delay(mut self, delay: Duration) -> Fault {
        self.delay = Some(delay);
        self
    }

    /// Close the TCP connection without sending any response.
    pub fn drop_connection(mut self) -> Fault {
        self.drop_connection = true;
        self
    }

    /// `PartnerTenants` answers 200 with `Provisioned: 0` and an `ErrorDetail`.
    pub fn provisioned_zero(self) -> Fault {
        self.in_band(InBand::ProvisionedZero)
    }

    /// `PartnerTenants` answers 200 with the asked `Provisioned` but this
    /// `ErrorDetail` (a heartbeat likewise, with `HttpStatusCode` 200).
    pub fn error_detail(self, text: &str) -> Fault {
        self.in_band(InBand::ErrorDetail(text.to_owned()))
    }

    /// An upload answers 200 with this `ErrorCode` (not 202) and an
    /// `ErrorDetail`; the message is not stored.
    pub fn upload_error_code(self, code: &str) -> Fault {
        self.in_band(InBand::UploadErrorCode(code.to_owned()))
    }

    /// A status poll answers `Status: "Failed"` with this `ErrorDetail`, and
    /// the message stays failed.
    pub fn status_failed(self, detail: &str) -> Fault {
        self.in_band(InBand::StatusFailed(detail.to_owned()))
    }

    /// A heartbeat answers 200 with `HttpStatusCode: 500` and `MessageErrors`.
    pub fn heartbeat_failure(self) -> Fault {
        self.in_band(InBand::HeartbeatFailure)
    }

    /// Policy create answers 204 with the all-zero GUID in `Location`.
    pub fn policy_null_location(self) -> Fault {
        self.in_band(InBand::PolicyNullLocation)
    }

    /// Policy create creates the policy but answers 204 with its `Location`.
    pub fn policy_location(self) -> Fault {
        self.in_band(InBand::PolicyLocation)
    }

    /// The token endpoint answers 400 `unauthorized_client` AADSTS700016.
    pub fn aadsts700016(self) -> Fault {
        self.in_band(InBand::Aadsts700016)
    }

    /// The consent page redirects back with `error=access_denied` and does
    /// not record consent.
    pub fn consent_refused(self) -> Fault {
        self.in_band(InBand::ConsentRefused)
    }

    fn in_band(mut self, in_band: InBand) -> Fault {
        self.in_band = Some(in_band);
        self
    }

    /// Whether this rule applies to a request.
    fn matches(&self, method: &str, path: &str, tenant: Option<&str>) -> bool {
        self.remaining != Some(0)
            && (self.method == "*" || self.method.eq_ignore_ascii_case(method))
            && path_contains(path, &self.path_contains)
            && self.tenant.as_deref().is_none_or(|t| Some(t) == tenant)
    }
}

/// Substring match on a path as received or percent-decoded, so tests can
/// write `users('a@b.c')` for a request that arrived as `users('a%40b.c')`.
pub(crate) fn path_contains(path: &str, needle: &str) -> bool {
    path.contains(needle)
        || percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .contains(needle)
}

/// Finds the first rule matching a request, uses up one firing and returns a
/// copy of it.
pub(crate) fn take_matching(
    rules: &mut Vec<Fault>,
    method: &str,
    path: &str,
    tenant: Option<&str>,
) -> Option<Fault> {
    let index = rules
        .iter()
        .position(|rule| rule.matches(method, path, tenant))?;
    let rule = &mut rules[index];
    let fired = rule.clone();
    if let Some(left) = rule.remaining.as_mut() {
        *left -= 1;
        if *left == 0 {
            rules.remove(index);
        }
    }
    Some(fired)
}

/// The JSON body of `POST /_sim/faults`; field names follow the builder.
///
/// `{"method":"POST","path":"/PartnerCompliancePolicies","status":409,
/// "times":2}`; flags such as `"drop_connection":true`; in-band failures as
/// `"provisioned_zero":true`, `"error_detail":"…"`,
/// `"upload_error_code":"404"`, `"status_failed":"…"`,
/// `"heartbeat_failure":true`, `"policy_null_location":true`,
/// `"policy_location":true`, `"aadsts700016":true`, `"consent_refused":true`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    method: String,
    path: String,
    tenant: Option<String>,
    times: Option<u32>,
    #[serde(default)]
    always: bool,
    status: Option<u16>,
    retry_after: Option<u64>,
    delay_ms: Option<u64>,
    #[serde(default)]
    drop_connection: bool,
    #[serde(default)]
    provisioned_zero: bool,
    error_detail: Option<String>,
    upload_error_code: Option<String>,
    status_failed: Option<String>,
    #[serde(default)]
    heartbeat_failure: bool,
    #[serde(default)]
    policy_null_location: bool,
    #[serde(default)]
    policy_location: bool,
    #[serde(default)]
    aadsts700016: bool,
    #[serde(default)]
    consent_refused: bool,
}

impl FaultSpec {
    /// Builds the rule, refusing contradictions a builder chain would hide.
    pub(crate) fn into_fault(self) -> Result<Fault, String> {
        if self.always && self.times.is_some() {
            return Err("'times' and 'always' exclude each other".to_owned());
        }
        if self.status.is_some_and(|s| !(400..=599).contains(&s)) {
            return Err("'status' must be between 400 and 599".to_owned());
        }
        let in_band = self.in_band()?;
        let mut fault = Fault::on(&self.method, &self.path);
        fault.tenant = self.tenant.map(|t| t.to_ascii_lowercase());
        fault.remaining = if self.always {
            None
        } else {
            Some(self.times.unwrap_or(1))
        };
        fault.status = self.status;
        fault.retry_after = self.retry_after;
        fault.delay = self.delay_ms.map(Duration::from_millis);
        fault.drop_connection = self.drop_connection;
        fault.in_band = in_band;
        Ok(fault)
    }

    fn in_band(&self) -> Result<Option<InBand>, String> {
        let flags = [
            (self.provisioned_zero, InBand::ProvisionedZero),
            (self.heartbeat_failure, InBand::HeartbeatFailure),
            (self.policy_null_location, InBand::PolicyNullLocation),
            (self.policy_location, InBand::PolicyLocation),
            (self.aadsts700016, InBand::Aadsts700016),
            (self.consent_refused, InBand::ConsentRefused),
        ];
        let texts = [
            self.error_detail.clone().map(InBand::ErrorDetail),
            self.upload_error_code.clone().map(InBand::UploadErrorCode),
            self.status_failed.clone().map(InBand::StatusFailed),
        ];
        let mut chosen: Vec<InBand> = flags
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, kind)| kind)
            .collect();
        chosen.extend(texts.into_iter().flatten());
        if chosen.len() > 1 {
            return Err("at most one in-band failure per rule".to_owned());
        }
        Ok(chosen.pop())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_fires_and_counts_down() {
        let mut rules = vec![
            Fault::on("post", "/Policies").status(409).times(2),
            Fault::on("*", "/Policies").status(500).always(),
        ];
        let first = take_matching(&mut rules, "POST", "/x/Policies", None).unwrap();
        assert_eq!(first.status, Some(409));
        take_matching(&mut rules, "POST", "/x/Policies", None).unwrap();
        assert_eq!(rules.len(), 1);
        let fallback = take_matching(&mut rules, "GET", "/x/Policies", None).unwrap();
        assert_eq!(fallback.status, Some(500));
        assert_eq!(rules.len(), 1, "an always rule stays");
    }

    #[test]
    fn tenant_and_decoded_paths_are_matched() {
        let mut rules = vec![Fault::on("GET", "users('a@b.c')").tenant("T1")];
        assert!(take_matching(&mut rules, "GET", "/v1.0/users('a%40b.c')", Some("t2")).is_none());
        assert!(take_matching(&mut rules, "GET", "/v1.0/users('a%40b.c')", Some("t1")).is_some());
        assert!(rules.is_empty());
    }

    #[test]
    fn json_specs_refuse_contradictions() {
        let parse = |text: &str| {
            serde_json::from_str::<FaultSpec>(text)
                .map_err(|e| e.to_string())?
                .into_fault()
        };
        let fault = parse(r#"{"method":"GET","path":"/x","status":429,"retry_after":2}"#);
        assert_eq!(fault.unwrap().retry_after, Some(2));
        assert!(parse(r#"{"method":"GET","path":"/x","times":2,"always":true}"#).is_err());
        assert!(parse(r#"{"method":"GET","path":"/x","status":302}"#).is_err());
        let two = r#"{"method":"GET","path":"/x","provisioned_zero":true,"error_detail":"e"}"#;
        assert!(parse(two).is_err());
        assert!(parse(r#"{"method":"GET","path":"/x","bogus":1}"#).is_err());
    }
}
