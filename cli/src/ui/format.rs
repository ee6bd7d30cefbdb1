//! Output: `-o json|yaml` prints objects as the API returns them; tables and ages for people.

use anyhow::Result;
use jiff::Timestamp;
use serde::Serialize;

use crate::args::Output;

/// Prints `value` as JSON or YAML. Returns false for `-o table`, for the caller to print its own way.
pub fn structured<T: Serialize>(format: Output, value: &T) -> Result<bool> {
    match format {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Yaml => print!("{}", serde_yaml::to_string(value)?),
        Output::Table => return Ok(false),
    }
    Ok(true)
}

/// A list of objects the way kubectl prints one: `kind: List` with `items`.
pub fn list<T: Serialize>(items: &[T]) -> serde_json::Value {
    serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items, "metadata": {} })
}

/// Left-aligned columns separated by three spaces, kubectl style; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

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
    fn tables_align_columns() {
        let rows = vec![
            vec!["a-long-name".to_owned(), "alice".to_owned(), "Active".to_owned()],
            vec!["b".to_owned(), "bob".to_owned(), "".to_owned()],
        ];
        assert_eq!(
            table(&["NAME", "REQUESTER", "PHASE"], &rows),
            "NAME          REQUESTER   PHASE\na-long-name   alice       Active\nb             bob\n"
        );
    }

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
