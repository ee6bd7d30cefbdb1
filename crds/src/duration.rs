//! Go duration syntax (`90s`, `1h30m`, `1.5h`), the form `spec.duration` uses, and the bounds passport
//! puts on it. The apiserver checks the same rules with CEL; this parser lets the operator and the CLI
//! compute deadlines without a second opinion on what a duration means.

use std::time::Duration;

/// The shortest access a request may ask for.
pub const MIN_ACCESS: Duration = Duration::from_secs(60);
/// The longest access a request may ever reach, extensions included.
pub const MAX_ACCESS: Duration = Duration::from_secs(12 * 3600);
/// What a request gets when it does not say.
pub const DEFAULT_ACCESS: &str = "1h";

/// Regular expression for Go duration syntax, shared by the CEL rules and the parser's tests.
pub const GO_DURATION_PATTERN: &str = "^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration; use Go syntax such as 30m, 1h or 1h30m")]
    Syntax(String),
    #[error("{0:?} is too long to represent")]
    Overflow(String),
    #[error("{value:?} is outside {min} to {max}")]
    OutOfRange {
        value: String,
        min: &'static str,
        max: &'static str,
    },
}

/// A duration field of an object that does not hold a usable duration. The schema normally
/// rejects such values at admission; this is what is said when one gets through anyway (an older
/// schema, a direct etcd write), instead of guessing a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {source}")]
pub struct InvalidDuration {
    pub field: &'static str,
    pub source: DurationError,
}

/// Parses `text`, the value of `field`, as a Go duration between `min` and `max` (Go syntax).
pub fn parse_field(
    field: &'static str,
    text: &str,
    (min, max): (&'static str, &'static str),
) -> Result<Duration, InvalidDuration> {
    let invalid = |source| InvalidDuration { field, source };
    let value = parse_go_duration(text).map_err(invalid)?;
    let (low, high) = (parse_go_duration(min), parse_go_duration(max));
    if low.is_ok_and(|low| value < low) || high.is_ok_and(|high| value > high) {
        return Err(invalid(DurationError::OutOfRange {
            value: text.to_owned(),
            min,
            max,
        }));
    }
    Ok(value)
}

/// The bounds of an access duration (`spec.duration`, policy maxima), in Go syntax.
pub const ACCESS_BOUNDS: (&str, &str) = ("1m", "12h");
/// The bounds of `pendingTimeout`, in Go syntax.
pub const PENDING_TIMEOUT_BOUNDS: (&str, &str) = ("1m", "168h");

/// Parses a non-negative Go duration such as `1h30m` or `1.5h`.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax(text.to_owned());
    if text.is_empty() {
        return Err(syntax());
    }
    let mut rest = text;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(syntax)?;
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(syntax()),
        };
        total_nanos = total_nanos
            .checked_add(scaled(number, unit_nanos).ok_or_else(syntax)?)
            .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
        rest = tail;
    }
    let secs =
        u64::try_from(total_nanos / 1_000_000_000).map_err(|_| DurationError::Overflow(text.to_owned()))?;
    let nanos = u32::try_from(total_nanos % 1_000_000_000).unwrap_or_default();
    Ok(Duration::new(secs, nanos))
}

/// `number` (digits with an optional fraction) times `unit_nanos`, truncated to whole nanoseconds.
fn scaled(number: &str, unit_nanos: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    let mut value = whole.checked_mul(unit_nanos)?;
    let mut scale = unit_nanos;
    for digit in fraction.chars() {
        scale /= 10;
        value = value.checked_add(u128::from(digit.to_digit(10)?) * scale)?;
    }
    Some(value)
}

/// Formats a duration the way Go would print it, e.g. `1h30m0s`, trimmed to `1h30m`.
pub fn format_go_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    let (hours, minutes, seconds) = (total / 3600, (total % 3600) / 60, total % 60);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 || out.is_empty() {
        out.push_str(&format!("{seconds}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        assert_eq!(parse_go_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("2µs"), Ok(Duration::from_micros(2)));
        assert_eq!(parse_go_duration("12h0m0s"), Ok(MAX_ACCESS));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "", "abc", "1", "h", "1d", "1.h", ".5h", "-1h", "1h-5m", "1 h", "1.2.3h",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn overflow_is_reported() {
        assert!(matches!(
            parse_go_duration("99999999999999999999999999999h"),
            Err(DurationError::Syntax(_) | DurationError::Overflow(_))
        ));
    }

    #[test]
    fn fields_are_bounded_and_named() {
        assert_eq!(
            parse_field("spec.duration", "2h", ACCESS_BOUNDS),
            Ok(Duration::from_secs(7200))
        );
        let err = parse_field("spec.duration", "13h", ACCESS_BOUNDS).expect_err("too long");
        assert_eq!(err.to_string(), "spec.duration: \"13h\" is outside 1m to 12h");
        let err = parse_field("spec.duration", "soon", ACCESS_BOUNDS).expect_err("not a duration");
        assert!(
            err.to_string()
                .starts_with("spec.duration: \"soon\" is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn formats_round_trip() {
        for text in ["1h", "1h30m", "45m", "1m30s", "12h"] {
            let parsed = parse_go_duration(text).expect("valid");
            assert_eq!(format_go_duration(parsed), text);
        }
    }
}
