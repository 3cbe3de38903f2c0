//! One StatsD/DogStatsD line:
//! `<name>:<value>[:<value>...]|<type>[|@<sample rate>][|#<tag>,<tag>...][|c:<container id>][|T<unix seconds>]`,
//! type `c` (counter), `g` (gauge), `ms` (timer), `h` (histogram), `d` (distribution) or `s`
//! (set); tags `key:value` or a bare `key`. Several values (`name:1:2:3|d`, DogStatsD 1.1)
//! make several samples. Unknown `|` sections are ignored (newer DogStatsD fields). Events
//! (`_e{...}`) and service checks (`_sc|...`) are recognised and not mapped.

/// The metric types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// `c`: adds the value.
    Counter,
    /// `g`: the current level.
    Gauge,
    /// `ms`: a duration.
    Timer,
    /// `h`: a sampled value.
    Histogram,
    /// `d`: a value, aggregated globally (DogStatsD).
    Distribution,
    /// `s`: a member of a set (counts distinct values).
    Set,
}

impl Type {
    /// The type as written on the line (the `statsd_type` property).
    pub fn code(self) -> &'static str {
        match self {
            Self::Counter => "c",
            Self::Gauge => "g",
            Self::Timer => "ms",
            Self::Histogram => "h",
            Self::Distribution => "d",
            Self::Set => "s",
        }
    }

    fn of(code: &str) -> Option<Self> {
        Some(match code {
            "c" => Self::Counter,
            "g" => Self::Gauge,
            "ms" => Self::Timer,
            "h" => Self::Histogram,
            "d" => Self::Distribution,
            "s" => Self::Set,
            _ => return None,
        })
    }

    /// Whether a sample rate scales it (a gauge is a level and a set a membership: a sampled
    /// one is still one observation).
    pub fn is_sampled(self) -> bool {
        !matches!(self, Self::Gauge | Self::Set)
    }
}

/// A value: a number, or a set member's text.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// Every type but sets.
    Number(f64),
    /// A set member.
    Member(&'a str),
}

/// A parsed line.
#[derive(Clone, Debug, PartialEq)]
pub struct Line<'a> {
    /// The metric name as sent.
    pub name: &'a str,
    /// One or more values.
    pub values: Vec<Value<'a>>,
    /// The type.
    pub kind: Type,
    /// `@rate`, in (0, 1]; 1 when absent.
    pub rate: f64,
    /// Tags as `(key, value)`; `value` is `None` for a bare tag.
    pub tags: Vec<(&'a str, Option<&'a str>)>,
    /// `|c:` (DogStatsD container id).
    pub container: Option<&'a str>,
    /// `|T` (DogStatsD timestamp), Unix seconds.
    pub timestamp: Option<i64>,
}

/// Why a line was not parsed (the `reason` label of
/// `rtdash_agent_statsd_lines_dropped_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// Not `name:value|type...`, or a value that is not a number.
    Malformed,
    /// A type other than `c g ms h d s`.
    UnknownType,
    /// A gauge value with a leading `+` (or a `-` delta meant relative): etsy StatsD's
    /// relative gauges need the previous level, which the agent does not keep.
    RelativeGauge,
    /// `@rate` not in (0, 1].
    InvalidSampleRate,
    /// A DogStatsD event.
    Event,
    /// A DogStatsD service check.
    ServiceCheck,
}

impl Drop {
    /// The label value.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownType => "unknown_type",
            Self::RelativeGauge => "relative_gauge",
            Self::InvalidSampleRate => "invalid_sample_rate",
            Self::Event => "event",
            Self::ServiceCheck => "service_check",
        }
    }
}

/// Parses one line (without its newline).
pub fn parse_line(line: &str) -> Result<Line<'_>, Drop> {
    if line.starts_with("_e{") {
        return Err(Drop::Event);
    }
    if line.starts_with("_sc|") {
        return Err(Drop::ServiceCheck);
    }
    let mut sections = line.split('|');
    let head = sections.next().ok_or(Drop::Malformed)?;
    let (name, values) = head.split_once(':').ok_or(Drop::Malformed)?;
    if name.is_empty() || values.is_empty() {
        return Err(Drop::Malformed);
    }
    let kind = Type::of(sections.next().ok_or(Drop::Malformed)?).ok_or(Drop::UnknownType)?;
    let mut parsed = Line {
        name,
        values: Vec::with_capacity(1),
        kind,
        rate: 1.0,
        tags: Vec::new(),
        container: None,
        timestamp: None,
    };
    for value in values.split(':') {
        parsed.values.push(match kind {
            Type::Set if !value.is_empty() => Value::Member(value),
            Type::Set => return Err(Drop::Malformed),
            Type::Gauge if value.starts_with('+') => return Err(Drop::RelativeGauge),
            _ => Value::Number(number(value).ok_or(Drop::Malformed)?),
        });
    }
    for section in sections {
        if let Some(rate) = section.strip_prefix('@') {
            let rate: f64 = rate.parse().map_err(|_| Drop::InvalidSampleRate)?;
            if !(rate > 0.0 && rate <= 1.0) {
                return Err(Drop::InvalidSampleRate);
            }
            parsed.rate = rate;
        } else if let Some(tags) = section.strip_prefix('#') {
            for tag in tags.split(',').filter(|t| !t.is_empty()) {
                parsed.tags.push(match tag.split_once(':') {
                    Some((key, value)) => (key, Some(value)),
                    None => (tag, None),
                });
            }
        } else if let Some(container) = section.strip_prefix("c:") {
            parsed.container = Some(container);
        } else if let Some(seconds) = section.strip_prefix('T') {
            parsed.timestamp = Some(seconds.parse().map_err(|_| Drop::Malformed)?);
        }
    }
    Ok(parsed)
}

/// A finite decimal number (`f64` syntax without `inf`/`nan`).
fn number(text: &str) -> Option<f64> {
    let value: f64 = text.parse().ok()?;
    value.is_finite().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_with_rate_tags_and_extensions() {
        let line = parse_line("api.latency:12.5|ms|@0.1|#env:prod,canary|c:abc|T1700000000")
            .expect("valid");
        assert_eq!(
            line,
            Line {
                name: "api.latency",
                values: vec![Value::Number(12.5)],
                kind: Type::Timer,
                rate: 0.1,
                tags: vec![("env", Some("prod")), ("canary", None)],
                container: Some("abc"),
                timestamp: Some(1_700_000_000),
            }
        );
        for (text, kind) in [
            ("x:1|c", Type::Counter),
            ("x:-3|g", Type::Gauge),
            ("x:1|h", Type::Histogram),
            ("x:1|d", Type::Distribution),
            ("x:u1|s", Type::Set),
        ] {
            assert_eq!(parse_line(text).expect(text).kind, kind);
        }
        assert_eq!(
            parse_line("x:1:2:3|d").expect("multi").values,
            vec![Value::Number(1.0), Value::Number(2.0), Value::Number(3.0)]
        );
        assert_eq!(
            parse_line("x:1|c|e:future-field")
                .expect("unknown section")
                .kind,
            Type::Counter
        );
    }

    #[test]
    fn bad_lines_say_why() {
        for (text, drop) in [
            ("", Drop::Malformed),
            ("novalue", Drop::Malformed),
            ("x:|c", Drop::Malformed),
            ("x:abc|c", Drop::Malformed),
            ("x:1", Drop::Malformed),
            ("x:nan|g", Drop::Malformed),
            ("x:1|q", Drop::UnknownType),
            ("x:+1|g", Drop::RelativeGauge),
            ("x:1|c|@0", Drop::InvalidSampleRate),
            ("x:1|c|@1.5", Drop::InvalidSampleRate),
            ("x:1|c|@x", Drop::InvalidSampleRate),
            ("_e{5,4}:title|text", Drop::Event),
            ("_sc|db|0", Drop::ServiceCheck),
        ] {
            assert_eq!(parse_line(text), Err(drop), "{text:?}");
        }
    }
}
