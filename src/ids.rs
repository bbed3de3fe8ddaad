//! Validated identifiers: Entra GUIDs and the Fleet server's `Origin`.
//!
//! Everything a caller sends that ends up in a database key, a Microsoft URL or a
//! redirect passes through one of these types first. Parsing is strict on purpose:
//! a value either has exactly the expected shape or it is rejected before any
//! storage or network work happens.

use std::fmt;

/// A GUID in its canonical 36-character hyphenated form, stored lower-case.
///
/// Entra tenant ids, device ids, message ids, user and group object ids are all
/// GUIDs. Only the hyphenated form is accepted (not braces, URNs or the 32-digit
/// form), so one id has one spelling everywhere: in SQLite, in Microsoft URLs and
/// in the consent redirect, where Microsoft returns the tenant id lower-cased.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(uuid::Uuid);

impl Guid {
    /// The all-zero GUID, which Microsoft uses to say "nothing was created".
    pub const NIL: Guid = Guid(uuid::Uuid::nil());

    /// Parses the hyphenated form, in any letter case.
    pub fn parse(text: &str) -> Option<Guid> {
        let bytes = text.as_bytes();
        if bytes.len() != 36 {
            return None;
        }

        let hyphens_in_place = [8, 13, 18, 23].iter().all(|&i| bytes[i] == b'-');
        if !hyphens_in_place {
            return None;
        }

        uuid::Uuid::try_parse(text).ok().map(Guid)
    }

    /// A fresh random (version 4) GUID from the operating system's generator.
    pub fn new_v4() -> Guid {
        Guid(uuid::Uuid::new_v4())
    }

    /// Whether this is the all-zero GUID.
    pub fn is_nil(&self) -> bool {
        self.0.is_nil()
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The URL of a Fleet server, as given in the `Origin` header at create time.
///
/// It becomes the target of the redirect after admin consent, so only a bare
/// `scheme://host[:port]` is accepted: `http` or `https`, a DNS name or IP
/// literal, an optional port, and nothing else (no userinfo, path, query or
/// fragment). The stored form is lower-case with no trailing slash.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Origin(String);

/// Why an `Origin` value was refused; the text is shown to the caller.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OriginError {
    Scheme,
    Userinfo,
    Host,
    /// The host ends in a number but is not a plain dotted-quad IPv4 address.
    NumericHost,
    Port,
    Path,
    QueryOrFragment,
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OriginError::Scheme => "the scheme must be http or https",
            OriginError::Userinfo => "user information is not allowed",
            OriginError::Host => "the host is missing or not a valid host name or IP address",
            OriginError::NumericHost => {
                "a host ending in a number must be an IPv4 address of four decimal numbers \
                 from 0 to 255 without leading zeros, such as 192.0.2.10"
            }
            OriginError::Port => "the port is not a number between 1 and 65535",
            OriginError::Path => "a path is not allowed (only scheme, host and port)",
            OriginError::QueryOrFragment => "a query or fragment is not allowed",
        })
    }
}

impl Origin {
    /// Parses and normalises an origin such as `https://fleet.example.com:8443/`.
    pub fn parse(text: &str) -> Result<Origin, OriginError> {
        let (scheme, rest) = text.split_once("://").ok_or(OriginError::Scheme)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(OriginError::Scheme);
        }

        // Everything up to the first '/' is the authority; a single trailing '/'
        // is the only path allowed.
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(OriginError::Host);
        }
        if authority.contains(['?', '#']) || path.contains(['?', '#']) {
            return Err(OriginError::QueryOrFragment);
        }
        if !path.is_empty() && path != "/" {
            return Err(OriginError::Path);
        }
        if authority.contains('@') {
            return Err(OriginError::Userinfo);
        }

        let (host, port) = split_host_port(authority)?;
        let host = host.to_ascii_lowercase();
        if ends_in_number(&host) {
            if host.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(OriginError::NumericHost);
            }
        } else if !is_valid_host(&host) {
            return Err(OriginError::Host);
        }
        let port = port.map(parse_port).transpose()?;

        let mut normalized = format!("{scheme}://{host}");
        if let Some(port) = port {
            normalized.push(':');
            normalized.push_str(&port.to_string());
        }
        Ok(Origin(normalized))
    }

    /// Rebuilds an origin read back from storage, where it was stored normalised.
    pub fn from_stored(text: String) -> Origin {
        Origin(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits `host[:port]`, where an IPv6 literal is written in brackets.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), OriginError> {
    if authority.starts_with('[') {
        let end = authority.find(']').ok_or(OriginError::Host)?;
        let (host, after) = authority.split_at(end + 1);
        return match after {
            "" => Ok((host, None)),
            _ => Ok((
                host,
                Some(after.strip_prefix(':').ok_or(OriginError::Host)?),
            )),
        };
    }
    Ok(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn parse_port(digits: &str) -> Result<u16, OriginError> {
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OriginError::Port);
    }
    match digits.parse::<u16>() {
        Ok(0) | Err(_) => Err(OriginError::Port),
        Ok(port) => Ok(port),
    }
}

/// Whether a browser would read the host as an IPv4 address: the WHATWG URL
/// standard does so when the last label is a decimal number or starts with
/// `0x`, and then accepts shorthand, octal and hex forms (`127.1`, `0177.0.0.1`
/// and `0x7f.1` all mean 127.0.0.1). Such a host must be a plain dotted quad
/// (std's parser refuses every other form), so the address checked here is
/// the one the browser is redirected to.
fn ends_in_number(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or_default();
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())) || last.starts_with("0x")
}

/// A DNS name (letters, digits, hyphens, dots; labels of 1–63 characters that
/// neither start nor end with a hyphen) or a bracketed IPv6 address. Hosts
/// that end in a number are IPv4 addresses, checked by [`ends_in_number`]'s
/// caller.
fn is_valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    if host.is_empty() || host.len() > 253 {
        return false;
    }

    // A trailing dot (fully qualified form) is legal in DNS but not worth the
    // ambiguity in a redirect target.
    host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_accepts_only_the_hyphenated_form() {
        let id = "6F1C2B3A-8D4E-4C5F-9A7B-2E1D0C9B8A76";
        assert_eq!(
            Guid::parse(id).unwrap().to_string(),
            id.to_ascii_lowercase()
        );

        for bad in [
            "",
            "6f1c2b3a8d4e4c5f9a7b2e1d0c9b8a76",
            "{6f1c2b3a-8d4e-4c5f-9a7b-2e1d0c9b8a76}",
            "urn:uuid:6f1c2b3a-8d4e-4c5f-9a7b-2e1d0c9b8a76",
            "6f1c2b3a-8d4e-4c5f-9a7b-2e1d0c9b8a7g",
            "6f1c2b3a-8d4e-4c5f-9a7b2-e1d0c9b8a76",
            " 6f1c2b3a-8d4e-4c5f-9a7b-2e1d0c9b8a7",
        ] {
            assert_eq!(Guid::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn origin_is_normalised() {
        let cases = [
            ("https://fleet.example.com", "https://fleet.example.com"),
            ("https://Fleet.Example.COM/", "https://fleet.example.com"),
            ("HTTP://localhost:8080", "http://localhost:8080"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            ("https://10.0.0.255", "https://10.0.0.255"),
            ("https://0xfleet.example.com", "https://0xfleet.example.com"),
            ("https://fleet1.example.com2", "https://fleet1.example.com2"),
            ("https://[::1]:8443", "https://[::1]:8443"),
            (
                "https://fleet.example.com:0443",
                "https://fleet.example.com:443",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Origin::parse(input).unwrap().as_str(), want, "{input:?}");
        }
    }

    #[test]
    fn origin_refuses_what_is_not_safe_to_redirect_to() {
        let cases = [
            ("javascript:alert(1)", OriginError::Scheme),
            ("ftp://fleet.example.com", OriginError::Scheme),
            ("null", OriginError::Scheme),
            ("//fleet.example.com", OriginError::Scheme),
            ("https://user:pw@fleet.example.com", OriginError::Userinfo),
            ("https://evil.com@fleet.example.com", OriginError::Userinfo),
            ("https://fleet.example.com/evil", OriginError::Path),
            ("https://fleet.example.com//evil.com", OriginError::Path),
            (
                "https://fleet.example.com?x=1",
                OriginError::QueryOrFragment,
            ),
            ("https://fleet.example.com/#x", OriginError::QueryOrFragment),
            ("https://", OriginError::Host),
            (
                "https://fleet.example.com\r\nSet-Cookie: a=b",
                OriginError::Host,
            ),
            ("https://fleet_example.com", OriginError::Host),
            ("https://fleet.example.com.", OriginError::Host),
            ("http://999.999.999.999", OriginError::NumericHost),
            ("http://127.1", OriginError::NumericHost),
            // Browsers read all of these as IPv4 addresses in other notations.
            ("https://0x7f.1", OriginError::NumericHost),
            ("https://0X7F.0.0.1", OriginError::NumericHost),
            ("http://0177.0.0.1", OriginError::NumericHost),
            ("http://127.0.0.01", OriginError::NumericHost),
            ("http://2130706433", OriginError::NumericHost),
            ("https://fleet.example.0x1", OriginError::NumericHost),
            ("https://fleet.example.123", OriginError::NumericHost),
            ("http://1.2.3.4.5", OriginError::NumericHost),
            ("https:///fleet.example.com", OriginError::Host),
            ("https://-fleet.example.com", OriginError::Host),
            ("https://fleet%2eexample.com", OriginError::Host),
            ("https://[::1", OriginError::Host),
            ("https://[zz]:80", OriginError::Host),
            ("https://fleet.example.com:", OriginError::Port),
            ("https://fleet.example.com:99999", OriginError::Port),
            ("https://fleet.example.com:0", OriginError::Port),
            ("https://fleet.example.com:+80", OriginError::Port),
        ];
        for (input, want) in cases {
            assert_eq!(Origin::parse(input), Err(want), "{input:?}");
        }
    }
}
