//! Host name resolution for the ureq agent, cached for a minute.
//!
//! ureq resolves the host of every request before it looks for a pooled
//! connection, and when a timeout is set its default resolver does so on a
//! freshly spawned thread (so a slow resolver cannot outlive the timeout).
//! At thousands of Microsoft calls a second that is a thread per call. The
//! handful of Microsoft hosts resolve to the same addresses call after call,
//! so the answer is kept for a short while and the default resolver, with
//! its timeout, is asked only when it expires.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a resolved address list is reused. Short enough that a moved
/// Microsoft endpoint is followed within a minute.
const TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct CachingResolver {
    inner: DefaultResolver,
    answers: Mutex<HashMap<String, (ResolvedSocketAddrs, Instant)>>,
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = match uri.authority() {
            Some(authority) => format!("{}|{authority}", uri.scheme_str().unwrap_or("")),
            // Let the default resolver report what is wrong with the URI.
            None => return self.inner.resolve(uri, config, timeout),
        };

        let cached = {
            let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
            answers
                .get(&key)
                .filter(|(_, until)| *until > Instant::now())
                .map(|(addresses, _)| addresses.clone())
        };
        if let Some(addresses) = cached {
            return Ok(addresses);
        }

        let addresses = self.inner.resolve(uri, config, timeout)?;
        self.answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (addresses.clone(), Instant::now() + TTL));
        Ok(addresses)
    }
}
