//! Failures as the one line a person reads: error chains flattened, clap's multi-line usage errors
//! condensed, every line with the prefix kubectl plugins conventionally print.

/// Prefix of every error line.
pub const PREFIX: &str = "kubectl-passport: error: ";

/// An error chain as one line: causes joined by ": ", newlines folded, repeated causes dropped.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = fold(&cause.to_string());
        if text.is_empty() || parts.iter().any(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// Collapses whitespace runs (newlines included) into single spaces.
pub fn fold(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// clap's rendered error (several lines, with usage) as one line.
pub fn clap_line(rendered: &str) -> String {
    let mut parts = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        parts.push(line.strip_prefix("error: ").unwrap_or(line).to_owned());
    }
    format!("{}; see kubectl passport --help", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use anyhow::anyhow;

    use super::*;

    #[test]
    fn chains_become_one_line_without_repeats() {
        let err = anyhow!("inner\nproblem").context("middle").context("outer");
        assert_eq!(one_line(&err), "outer: middle: inner problem");
        let err = anyhow!("same").context("same");
        assert_eq!(one_line(&err), "same");
    }

    #[test]
    fn clap_errors_become_one_line() {
        let rendered = "error: invalid value 'dsa' for '--key-type <KEY_TYPE>'\n  [possible values: ed25519, rsa]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_line(rendered),
            "invalid value 'dsa' for '--key-type <KEY_TYPE>' [possible values: ed25519, rsa]; see kubectl passport --help"
        );
        let rendered = "error: the following required arguments were not provided:\n  --reason <REASON>\n\nUsage: kubectl passport request --instance <INSTANCE_ID> --reason <REASON> [NAME]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_line(rendered),
            "the following required arguments were not provided: --reason <REASON>; see kubectl passport --help"
        );
    }
}
