//! Open live streams per tenant (the `open_streams` quota) and per client address
//! (`live.max_streams_per_client`) on this gateway: a stream holds a [`StreamGuard`] of each
//! while it is open, and one at its limit gets `429` for the next one.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open streams per key. Entries at zero are removed, so the map holds only keys with streams
/// open (bounded by the gateway's `live.max_streams`).
#[derive(Debug)]
pub struct OpenStreams<K> {
    open: Mutex<HashMap<K, u64>>,
}

/// Open streams per tenant.
pub type TenantStreams = OpenStreams<String>;
/// Open streams per client address.
pub type ClientStreams = OpenStreams<IpAddr>;

impl<K> Default for OpenStreams<K> {
    fn default() -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
        }
    }
}

/// One open stream of a key; dropping it closes it.
#[derive(Debug)]
pub struct StreamGuard<K: Hash + Eq> {
    streams: Arc<OpenStreams<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> OpenStreams<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, u64>> {
        self.open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Opens a stream of `key` when fewer than `limit` are open, else answers how many are.
    pub fn open(self: &Arc<Self>, key: K, limit: u64) -> Result<StreamGuard<K>, u64> {
        let mut open = self.lock();
        let count = open.get(&key).copied().unwrap_or(0);
        if count >= limit {
            return Err(count);
        }
        open.insert(key.clone(), count + 1);
        Ok(StreamGuard {
            streams: self.clone(),
            key,
        })
    }

    /// The keys with a stream open now.
    pub fn keys(&self) -> Vec<K> {
        self.lock().keys().cloned().collect()
    }

    /// Streams of `key` open now.
    pub fn count<Q>(&self, key: &Q) -> u64
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().get(key).copied().unwrap_or(0)
    }
}

impl<K: Hash + Eq> Drop for StreamGuard<K> {
    fn drop(&mut self) {
        let mut open = self
            .streams
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_at_its_limit_is_refused_until_a_stream_closes() {
        let streams = Arc::new(TenantStreams::default());
        let first = streams.open("a".to_owned(), 2).unwrap();
        let _second = streams.open("a".to_owned(), 2).unwrap();
        assert_eq!(streams.open("a".to_owned(), 2).unwrap_err(), 2);
        let _other = streams.open("b".to_owned(), 2).unwrap();
        drop(first);
        assert_eq!(streams.count("a"), 1);
        let _third = streams.open("a".to_owned(), 2).unwrap();
        assert_eq!(streams.count("b"), 1);
    }
}
