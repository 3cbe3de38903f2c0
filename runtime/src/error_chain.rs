//! An error with its causes on one line, for exit lines and logs: library errors keep their
//! cause as a `source` instead of in their message, so `{err}` alone would drop it.

use std::error::Error;
use std::fmt;

/// Displays `error: cause: cause's cause` on one line, leaving out a cause whose text the
/// line already holds (errors that also print their source in their own message, as
/// tokio-postgres' do).
/// `tracing::warn!(error = %ErrorChain(&err), "...")`.
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            source = cause.source();
        }
        f.write_str(&line.replace('\n', " "))
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle: inner")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn causes_follow_once_on_one_line() {
        let inner = std::io::Error::other("inner");
        let outer = Outer(Middle(inner));
        assert_eq!(ErrorChain(&outer).to_string(), "outer: middle: inner");
        let multi_line = std::io::Error::other("first\nsecond");
        assert_eq!(ErrorChain(&multi_line).to_string(), "first second");
    }
}
