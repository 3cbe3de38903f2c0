//! Displaying an error with its causes, in logs and in the messages of API errors.

/// Displays an error with its causes (`outer: cause: root cause`), skipping a cause whose
/// text the message already holds (some clients' errors repeat their source).
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the config")]
    struct Outer(#[source] io::Error);

    /// Says its cause itself, like tokio-postgres' errors.
    #[derive(Debug, thiserror::Error)]
    #[error("connecting: {0}")]
    struct Repeats(#[source] io::Error);

    #[test]
    fn causes_are_shown_once() {
        let missing = || io::Error::new(io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            ErrorChain(&Outer(missing())).to_string(),
            "reading the config: no such file"
        );
        assert_eq!(
            ErrorChain(&Repeats(missing())).to_string(),
            "connecting: no such file"
        );
    }
}
