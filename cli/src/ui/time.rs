//! Times for people: ages the way `kubectl get` prints them, and timestamps to the second.

use jiff::Timestamp;

/// A span of time the way `kubectl get` prints ages: `45s`, `5m30s`, `42m`, `3h12m`, `20h`, `2d5h`,
/// `40d`, `2y`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (minutes, hours, days) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if minutes < 10 {
        match s % 60 {
            0 => format!("{minutes}m"),
            rest => format!("{minutes}m{rest}s"),
        }
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        match minutes % 60 {
            0 => format!("{hours}h"),
            rest => format!("{hours}h{rest}m"),
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 192 {
        match hours % 24 {
            0 => format!("{days}d"),
            rest => format!("{days}d{rest}h"),
        }
    } else if days < 730 {
        format!("{days}d")
    } else {
        format!("{}y", days / 365)
    }
}

/// How long ago `then` was, as an age.
pub fn age(then: Option<Timestamp>, now: Timestamp) -> String {
    then.map_or_else(
        || "<unknown>".to_owned(),
        |t| human_duration(now.as_second() - t.as_second()),
    )
}

/// `in 42m` for the future, `5m ago` for the past.
pub fn relative(when: Timestamp, now: Timestamp) -> String {
    let delta = when.as_second() - now.as_second();
    if delta >= 0 {
        format!("in {}", human_duration(delta))
    } else {
        format!("{} ago", human_duration(-delta))
    }
}

/// A timestamp for people: RFC 3339 in UTC, to the second.
pub fn timestamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A timestamp with how far it is from now: `2025-03-02T13:00:00Z (in 42m)`.
pub fn timestamp_relative(t: Timestamp, now: Timestamp) -> String {
    format!("{} ({})", timestamp(t), relative(t, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(-5), "0s");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(330), "5m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(42 * 60), "42m");
        assert_eq!(human_duration(3 * 3600 + 12 * 60), "3h12m");
        assert_eq!(human_duration(20 * 3600), "20h");
        assert_eq!(human_duration(53 * 3600), "2d5h");
        assert_eq!(human_duration(40 * 86400), "40d");
        assert_eq!(human_duration(800 * 86400), "2y");
    }

    #[test]
    fn relative_times() {
        let now: Timestamp = "2025-03-02T12:00:00Z".parse().expect("ts");
        let later: Timestamp = "2025-03-02T12:42:00Z".parse().expect("ts");
        assert_eq!(relative(later, now), "in 42m");
        assert_eq!(relative(now, later), "42m ago");
        assert_eq!(timestamp_relative(later, now), "2025-03-02T12:42:00Z (in 42m)");
    }
}
