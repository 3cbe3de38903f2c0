//! A request body with a deadline: the whole body must arrive within the body read timeout
//! counted from when the request's headers were read, else reading it fails with
//! [`BodyTimeout`]. A deadline rather than an idle timeout between chunks: a client sending
//! one byte every few seconds never goes idle, yet holds its slot forever.

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use metrics::Counter;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The error a body read returns when the client did not send the body in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

/// Whether `err` or one of its causes is a [`BodyTimeout`] (handlers answer `408` then).
pub fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<BodyTimeout>() {
            return true;
        }
        current = err.source();
    }
    false
}

/// `inner` with a deadline (see the module docs).
pub struct DeadlineBody<B> {
    inner: B,
    timeout: Duration,
    deadline: Instant,
    /// Armed at the first read that has to wait, so a body that is there at once costs no
    /// timer.
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Option<Counter>,
    done: bool,
}

impl<B> DeadlineBody<B> {
    /// `inner`, to be read within `timeout` from now; `expired` counts the bodies that were
    /// not.
    pub fn new(inner: B, timeout: Duration, expired: Option<Counter>) -> Self {
        Self {
            inner,
            timeout,
            deadline: Instant::now() + timeout,
            sleep: None,
            expired,
            done: false,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.done = true;
                this.sleep = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame.map_err(Into::into))),
            Poll::Pending => {
                let deadline = this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.done = true;
                    this.sleep = None;
                    if let Some(counter) = &this.expired {
                        counter.increment(1);
                    }
                    return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that yields one chunk, then never another.
    struct Stalled(bool);

    impl Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.0 {
                Poll::Pending
            } else {
                self.0 = true;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_at_the_deadline_with_a_recognisable_error() {
        let started = Instant::now();
        let body = DeadlineBody::new(Stalled(false), Duration::from_secs(30), None);
        let err = body.collect().await.map(|_| ()).expect_err("timed out");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(is_body_timeout(err.as_ref()), "{err}");
        let wrapped = axum::Error::new(err);
        assert!(is_body_timeout(&wrapped), "found through the chain");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_arrives_in_time_is_read_whole() {
        let body = DeadlineBody::new(
            http_body_util::Full::new(Bytes::from_static(b"hello")),
            Duration::from_secs(1),
            None,
        );
        let bytes = body.collect().await.expect("read").to_bytes();
        assert_eq!(&bytes[..], b"hello");
    }
}
