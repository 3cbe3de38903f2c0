//! The wake-up multiplexer of a viewer: one task waits on several sources (shutdown,
//! dashboard changes, pipeline status, NATS link, keep-alive, one per topic), and a wake-up
//! polls only the sources that fired.
//!
//! Each source is polled with a waker of its own that sets the source's bit before waking the
//! task (re-polling a registered wait takes its channel's lock, and 10,000 viewers woken by one
//! update would otherwise all take the locks of every other channel). The waits stay
//! registered across wake-ups ([`WatchWait`], [`ChangeWait`]): only the source that fired is
//! re-armed.

use futures::task::AtomicWaker;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::ReusableBoxFuture;

/// Highest bit; sources beyond it share it.
const LAST_BIT: u32 = 63;

/// The bit of source `index` (sources beyond the 64th share the last bit).
pub(super) fn bit_of(index: usize) -> u32 {
    index.min(LAST_BIT as usize) as u32
}

/// Which sources fired since the task last looked, and the task to wake.
#[derive(Debug)]
struct WakeFlags {
    bits: AtomicU64,
    task: AtomicWaker,
}

/// The waker of one source.
struct SourceWaker {
    mask: u64,
    flags: Arc<WakeFlags>,
}

impl Wake for SourceWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flags.bits.fetch_or(self.mask, Ordering::AcqRel);
        self.flags.task.wake();
    }
}

/// The wakers of `sources` sources and the bits they set.
pub(super) struct WakeSet {
    flags: Arc<WakeFlags>,
    wakers: Vec<Waker>,
}

impl WakeSet {
    /// Wakers for sources `0..sources`; every source counts as fired, so the first pass
    /// polls (and registers) each one.
    pub(super) fn new(sources: usize) -> Self {
        let every = (0..sources).fold(0u64, |bits, index| bits | 1 << bit_of(index));
        let flags = Arc::new(WakeFlags {
            bits: AtomicU64::new(every),
            task: AtomicWaker::new(),
        });
        let wakers = (0..sources)
            .map(|index| {
                Waker::from(Arc::new(SourceWaker {
                    mask: 1 << bit_of(index),
                    flags: flags.clone(),
                }))
            })
            .collect();
        Self { flags, wakers }
    }

    /// Starts a pass: registers the task's waker (`cx`) and takes the bits of the sources
    /// that fired since the last pass. A source firing from here on wakes the task again.
    pub(super) fn begin(&self, cx: &Context<'_>) -> Pass {
        self.flags.task.register(cx.waker());
        Pass {
            fired: self.flags.bits.swap(0, Ordering::AcqRel),
            polled: 0,
            rearmed: 0,
        }
    }

    /// Ends a pass: the sources it did not poll, and those it re-armed (a fresh wait, never
    /// polled yet), are polled on the next pass. (A pass that found nothing polled every
    /// source that fired and re-armed none.)
    pub(super) fn finish(&self, pass: Pass) {
        let leftover = (pass.fired & !pass.polled) | pass.rearmed;
        if leftover != 0 {
            self.flags.bits.fetch_or(leftover, Ordering::AcqRel);
        }
    }

    /// The context to poll source `index` with.
    pub(super) fn context(&self, index: usize) -> Context<'_> {
        Context::from_waker(&self.wakers[index])
    }
}

/// One pass over the sources (see [`WakeSet::begin`]).
#[derive(Debug)]
#[must_use = "a pass that woke the task must be finished"]
pub(super) struct Pass {
    fired: u64,
    polled: u64,
    rearmed: u64,
}

impl Pass {
    /// Whether source `index` fired; marks it polled in this pass.
    pub(super) fn take(&mut self, index: usize) -> bool {
        let mask = 1u64 << bit_of(index);
        self.polled |= mask;
        self.fired & mask != 0
    }

    /// Source `index` got a fresh wait: poll it on the next pass, so it registers.
    pub(super) fn rearm(&mut self, index: usize) {
        self.rearmed |= 1u64 << bit_of(index);
    }
}

/// A wait on a watch channel that stays registered until it fires, and hands the receiver
/// back.
pub(super) type WatchWait<T> =
    ReusableBoxFuture<'static, (Result<(), watch::error::RecvError>, watch::Receiver<T>)>;

/// Waits for the next change of `rx` (the future of a [`WatchWait`]).
pub(super) async fn watch_wait<T: Send + Sync>(
    mut rx: watch::Receiver<T>,
) -> (Result<(), watch::error::RecvError>, watch::Receiver<T>) {
    let result = rx.changed().await;
    (result, rx)
}

/// What a [`ChangeWait`] received.
pub(super) type ChangeResult = Result<Arc<str>, broadcast::error::RecvError>;

/// A wait on the config change broadcast, handing the receiver back.
pub(super) type ChangeWait =
    ReusableBoxFuture<'static, (ChangeResult, broadcast::Receiver<Arc<str>>)>;

/// Waits for the next changed key (the future of a [`ChangeWait`]).
pub(super) async fn change_wait(
    mut rx: broadcast::Receiver<Arc<str>>,
) -> (ChangeResult, broadcast::Receiver<Arc<str>>) {
    let result = rx.recv().await;
    (result, rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Poll;

    /// Counts how often the task was woken.
    #[derive(Default)]
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn task() -> (Arc<Task>, Waker) {
        let task = Arc::new(Task::default());
        (task.clone(), Waker::from(task))
    }

    /// The sources that fired in one pass, finishing it (as a wake-up would).
    fn fired(set: &WakeSet, cx: &Context<'_>, sources: usize) -> Vec<usize> {
        let mut pass = set.begin(cx);
        let fired = (0..sources).filter(|&index| pass.take(index)).collect();
        set.finish(pass);
        fired
    }

    #[test]
    fn every_source_is_polled_first_then_only_those_that_fired() {
        let (_task, waker) = task();
        let cx = Context::from_waker(&waker);
        let set = WakeSet::new(4);
        assert_eq!(fired(&set, &cx, 4), vec![0, 1, 2, 3]);
        assert_eq!(fired(&set, &cx, 4), Vec::<usize>::new());
        set.context(2).waker().wake_by_ref();
        assert_eq!(fired(&set, &cx, 4), vec![2]);
    }

    #[test]
    fn a_wake_up_between_passes_is_not_lost() {
        let (task, waker) = task();
        let cx = Context::from_waker(&waker);
        let set = WakeSet::new(3);
        let _ = fired(&set, &cx, 3);
        // The pass registered the task: a source firing after it wakes the task...
        let pass = set.begin(&cx);
        set.context(1).waker().wake_by_ref();
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        // ...and is seen on the next pass, even though this one ended without it.
        set.finish(pass);
        assert_eq!(fired(&set, &cx, 3), vec![1]);
        // Wakers may be cloned and woken by value (a channel keeps a clone).
        let kept = set.context(0).waker().clone();
        kept.wake();
        assert_eq!(task.0.load(Ordering::SeqCst), 2);
        assert_eq!(fired(&set, &cx, 3), vec![0]);
    }

    #[test]
    fn sources_not_polled_or_rearmed_are_polled_next_time() {
        let (_task, waker) = task();
        let cx = Context::from_waker(&waker);
        let set = WakeSet::new(3);
        let _ = fired(&set, &cx, 3);
        set.context(0).waker().wake_by_ref();
        set.context(2).waker().wake_by_ref();
        // A pass that stops at the first source that fired, re-arming it.
        let mut pass = set.begin(&cx);
        assert!(pass.take(0));
        pass.rearm(0);
        set.finish(pass);
        assert_eq!(fired(&set, &cx, 3), vec![0, 2]);
    }

    #[test]
    fn many_sources_share_the_last_bit() {
        let (_task, waker) = task();
        let cx = Context::from_waker(&waker);
        let sources = 100;
        let set = WakeSet::new(sources);
        let _ = fired(&set, &cx, sources);
        set.context(70).waker().wake_by_ref();
        // Every source from the 64th on is polled: one of them fired.
        assert_eq!(fired(&set, &cx, sources), (63..sources).collect::<Vec<_>>());
        set.context(5).waker().wake_by_ref();
        assert_eq!(fired(&set, &cx, sources), vec![5]);
    }

    #[tokio::test]
    async fn watch_waits_stay_registered_and_hand_the_receiver_back() {
        let (tx, mut rx) = watch::channel(0u32);
        rx.borrow_and_update();
        let (task, waker) = task();
        let cx = Context::from_waker(&waker);
        let set = WakeSet::new(1);
        let mut wait: WatchWait<u32> = ReusableBoxFuture::new(watch_wait(rx));
        let mut source = set.context(0);
        assert!(wait.poll(&mut source).is_pending());
        let _ = fired(&set, &cx, 1);
        tx.send_replace(7);
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        assert_eq!(fired(&set, &cx, 1), vec![0]);
        let Poll::Ready((result, mut rx)) = wait.poll(&mut source) else {
            panic!("the change is ready");
        };
        assert!(result.is_ok());
        assert_eq!(*rx.borrow_and_update(), 7);
        wait.set(watch_wait(rx));
        assert!(wait.poll(&mut source).is_pending());
        tx.send_replace(8);
        assert_eq!(task.0.load(Ordering::SeqCst), 2, "re-armed");
    }
}
