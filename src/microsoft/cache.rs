//! A small per-key cache with expiry and single-flight fetching.
//!
//! Tokens and service URLs are fetched at most once per key at a time: the
//! first caller fetches while holding that key's slot, and callers for the
//! same key wait for it and then read its result, instead of all asking
//! Microsoft at once. Callers are blocking worker threads, so waiting on a
//! `std` mutex is what we want here.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

struct Entry<V> {
    value: V,
    fresh_until: Instant,
}

type Slot<V> = Arc<Mutex<Option<Entry<V>>>>;

pub(crate) struct Cache<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
}

/// Whether a value came from the cache or was just fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    Hit,
    Miss,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    pub(crate) fn new() -> Self {
        Cache {
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The fresh cached value for `key`, or the result of `fetch`, which
    /// returns the value and the instant until which it may be reused.
    pub(crate) fn get_or_fetch<E>(
        &self,
        key: &K,
        fetch: impl FnOnce() -> Result<(V, Instant), E>,
    ) -> Result<(V, Lookup), E> {
        let slot = lock(&self.slots).entry(key.clone()).or_default().clone();
        let mut entry = lock(&slot);

        if let Some(cached) = entry.as_ref()
            && cached.fresh_until > Instant::now()
        {
            return Ok((cached.value.clone(), Lookup::Hit));
        }

        let (value, fresh_until) = fetch()?;
        *entry = Some(Entry {
            value: value.clone(),
            fresh_until,
        });
        Ok((value, Lookup::Miss))
    }

    /// The cached value, if present and fresh; never fetches or waits on a fetch.
    pub(crate) fn peek(&self, key: &K) -> Option<V> {
        let slot = lock(&self.slots).get(key).cloned()?;
        let entry = slot.try_lock().ok()?;
        entry
            .as_ref()
            .filter(|e| e.fresh_until > Instant::now())
            .map(|e| e.value.clone())
    }

    /// Drops every entry whose key matches. A fetch already under way for such
    /// a key finishes into a slot nobody reads again.
    pub(crate) fn forget(&self, matches: impl Fn(&K) -> bool) {
        lock(&self.slots).retain(|key, _| !matches(key));
    }

    /// Inserts a value directly, for values learned outside a fetch.
    pub(crate) fn insert(&self, key: K, value: V, fresh_until: Instant) {
        let slot = lock(&self.slots).entry(key).or_default().clone();
        *lock(&slot) = Some(Entry { value, fresh_until });
    }
}

/// A panic while a lock was held leaves only a stale or missing cache entry
/// behind, never a broken invariant, so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn fetches_once_then_hits_until_stale() {
        let cache: Cache<u32, &str> = Cache::new();
        let later = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            cache.get_or_fetch(&1, || Ok::<_, ()>(("a", later))),
            Ok(("a", Lookup::Miss))
        );
        assert_eq!(
            cache.get_or_fetch(&1, || Ok::<_, ()>(("b", later))),
            Ok(("a", Lookup::Hit))
        );

        cache.insert(2, "old", Instant::now());
        assert_eq!(cache.peek(&2), None);
        assert_eq!(
            cache.get_or_fetch(&2, || Ok::<_, ()>(("new", later))),
            Ok(("new", Lookup::Miss))
        );
    }

    #[test]
    fn errors_are_not_cached_and_forget_drops_entries() {
        let cache: Cache<u32, &str> = Cache::new();
        let later = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            cache.get_or_fetch(&1, || Err::<(&str, Instant), _>("down")),
            Err("down")
        );
        assert_eq!(
            cache.get_or_fetch(&1, || Ok::<_, ()>(("a", later))),
            Ok(("a", Lookup::Miss))
        );
        cache.forget(|k| *k == 1);
        assert_eq!(cache.peek(&1), None);
    }

    #[test]
    fn concurrent_callers_share_one_fetch() {
        let cache: Arc<Cache<u32, u32>> = Arc::new(Cache::new());
        let fetches = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, fetches) = (cache.clone(), fetches.clone());
                std::thread::spawn(move || {
                    cache.get_or_fetch(&7, || {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        Ok::<_, ()>((42, Instant::now() + Duration::from_secs(60)))
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().unwrap().0, 42);
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }
}
