//! Open live streams per tenant on this gateway: a stream holds a [`StreamGuard`] while it is
//! open, and a tenant at its `open_streams` limit gets `429` for the next one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Open streams per tenant. Entries at zero are removed, so the map holds only tenants with
/// streams open (bounded by the gateway's `live.max_streams`).
#[derive(Debug, Default)]
pub struct TenantStreams {
    open: Mutex<HashMap<String, u64>>,
}

/// One open stream of a tenant; dropping it closes it.
#[derive(Debug)]
pub struct StreamGuard {
    streams: Arc<TenantStreams>,
    tenant: String,
}

impl TenantStreams {
    /// Opens a stream of `tenant` when fewer than `limit` are open, else answers how many
    /// are.
    pub fn open(self: &Arc<Self>, tenant: &str, limit: u64) -> Result<StreamGuard, u64> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let count = open.get(tenant).copied().unwrap_or(0);
        if count >= limit {
            return Err(count);
        }
        open.insert(tenant.to_owned(), count + 1);
        Ok(StreamGuard {
            streams: self.clone(),
            tenant: tenant.to_owned(),
        })
    }

    /// The tenants with a stream open now.
    pub fn tenants(&self) -> Vec<String> {
        let open = self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        open.keys().cloned().collect()
    }

    /// Streams of `tenant` open now.
    pub fn count(&self, tenant: &str) -> u64 {
        let open = self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        open.get(tenant).copied().unwrap_or(0)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut open = self
            .streams
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(count) = open.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_at_its_limit_is_refused_until_a_stream_closes() {
        let streams = Arc::new(TenantStreams::default());
        let first = streams.open("a", 2).unwrap();
        let _second = streams.open("a", 2).unwrap();
        assert_eq!(streams.open("a", 2).unwrap_err(), 2);
        let _other = streams.open("b", 2).unwrap();
        drop(first);
        assert_eq!(streams.count("a"), 1);
        let _third = streams.open("a", 2).unwrap();
        assert_eq!(streams.count("b"), 1);
    }
}
