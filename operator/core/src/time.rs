//! Arithmetic on timestamps and durations that never panics: deadlines in the past become zero
//! waits, sums past the representable range saturate.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// Time from `from` to `to`, zero if `to` is earlier.
pub fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or_default()
}

/// `t + duration`, or `Timestamp::MAX` past the representable range.
pub fn add(t: Timestamp, duration: Duration) -> Timestamp {
    SignedDuration::try_from(duration)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// `t` truncated to the whole second, as Kubernetes stores times.
pub fn whole_second(t: Timestamp) -> Timestamp {
    let round = jiff::TimestampRound::new()
        .smallest(jiff::Unit::Second)
        .mode(jiff::RoundMode::Trunc);
    t.round(round).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_instead_of_panicking() {
        let t = Timestamp::from_second(100).expect("valid");
        assert_eq!(
            elapsed(t, Timestamp::from_second(50).expect("valid")),
            Duration::ZERO
        );
        assert_eq!(add(Timestamp::MAX, Duration::from_secs(1)), Timestamp::MAX);
        let fractional = Timestamp::from_millisecond(100_999).expect("valid");
        assert_eq!(whole_second(fractional), t);
    }
}
