//! With jemalloc as the global allocator (as in the `edge-agent` binary), the memory budget
//! counts the allocator's figure: it sees an allocation the estimates know nothing about.

#![cfg(feature = "jemalloc")]

use edge_agent::memory::{AllocatorStats, REFRESH_INTERVAL};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[test]
fn the_allocator_figure_follows_allocations() {
    let stop = CancellationToken::new();
    let stats = AllocatorStats::start(stop.clone()).expect("jemalloc serves this process");
    let before = stats.allocated();
    assert!(before > 0);
    assert!(stats.resident() >= before);
    let big: Vec<u8> = vec![1; 64 << 20];
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats.allocated() < before + (64 << 20) {
        assert!(
            Instant::now() < deadline,
            "allocated {} never reflected 64 MiB more than {before}",
            stats.allocated()
        );
        std::thread::sleep(REFRESH_INTERVAL / 2);
    }
    drop(std::hint::black_box(big));
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats.allocated() >= before + (64 << 20) {
        assert!(Instant::now() < deadline, "the free never showed");
        std::thread::sleep(REFRESH_INTERVAL / 2);
    }
    stop.cancel();
}
