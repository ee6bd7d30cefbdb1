//! Object names: the default AccessRequest name, DNS labels, and `generateName` prefixes.

use jiff::Timestamp;

/// Longest name we generate: a DNS label, so it also fits labels and generated child names.
const MAX_LABEL: usize = 63;

/// `<user>-<yyyymmdd-hhmmss>` (UTC), as a DNS label: `alice@example.com` at noon on 2 March 2025
/// becomes `alice-example-com-20250302-120000`.
pub fn default_request_name(user: &str, now: Timestamp) -> String {
    let stamp = now.strftime("%Y%m%d-%H%M%S").to_string();
    let user = dns_label(user, MAX_LABEL - stamp.len() - 1);
    if user.is_empty() {
        format!("request-{stamp}")
    } else {
        format!("{user}-{stamp}")
    }
}

/// Lowercase ASCII letters, digits and single hyphens, no hyphen at either end, at most `max` long.
pub fn dns_label(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(max);
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A prefix for `metadata.generateName`: the server appends 5 characters, and names must stay DNS
/// subdomains; `<base>-<what>-` trimmed to fit 63.
pub fn generate_name(base: &str, what: &str) -> String {
    let room = MAX_LABEL - 5 - what.len() - 2;
    let base = dns_label(base, room);
    format!("{base}-{what}-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn default_names_are_user_and_utc_time() {
        let now = at("2025-03-02T12:00:09Z");
        assert_eq!(default_request_name("alice", now), "alice-20250302-120009");
        assert_eq!(
            default_request_name("Alice@Example.com", now),
            "alice-example-com-20250302-120009"
        );
        assert_eq!(
            default_request_name("system:serviceaccount:ci:deployer", now),
            "system-serviceaccount-ci-deployer-20250302-120009"
        );
        assert_eq!(default_request_name("@@@", now), "request-20250302-120009");
        assert_eq!(default_request_name("élodie", now), "lodie-20250302-120009");
    }

    #[test]
    fn default_names_fit_a_dns_label() {
        let long = "a-very-long-user-name-that-goes-on-and-on@some.department.example.com";
        let name = default_request_name(long, at("2025-03-02T12:00:09Z"));
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with("-20250302-120009"), "{name}");
        assert!(!name.contains("--"), "{name}");
    }

    #[test]
    fn labels_collapse_and_trim_hyphens() {
        assert_eq!(dns_label("--A__b..c--", 63), "a-b-c");
        assert_eq!(dns_label("abc-def", 4), "abc");
        assert_eq!(dns_label("", 10), "");
    }

    #[test]
    fn generated_name_prefixes_leave_room_for_the_suffix() {
        assert_eq!(generate_name("db-incident", "cred"), "db-incident-cred-");
        let long = "x".repeat(80);
        let prefix = generate_name(&long, "approve");
        assert!(prefix.len() + 5 <= 63, "{prefix}");
        assert!(prefix.ends_with("-approve-"));
    }
}
