//! Helpers shared by the tests of this module: hostile inputs, a syntax check with `bash -n`, a tiny
//! evaluator for the PowerShell string expressions passport generates, and public test keys.

use proptest::prelude::*;
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The expiresAt of the requests the tests provision: 2030-06-01T13:00:30Z.
pub const EXPIRES_AT: jiff::Timestamp = jiff::Timestamp::constant(1_906_549_230, 0);

/// Public test vectors from the `ssh-key` crate (public halves only).
pub const ED25519: &str = concat!(
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti user@ex",
    "ample.com",
);
pub const ECDSA_P256: &str = concat!(
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHwf2HMM5TRXvo2S",
    "QJjsNkiDD5KqiiNjrGVv3UUh+mMT5RHxiRtOnlqvjhQtBq0VpmpCV/PwUdhOig4vkbqAcEc= user@example.co",
    "m",
);
pub const RSA_3072: &str = concat!(
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCmjkeMm8k3JkNrf16eb5pG4bc77B6Mt3VN4saltsRV8vASpyWa",
    "/PlBgdaeldOaNJ5NK0gqU3KyiUNzHbdcc8572e7IUBDJS/rlaWARiSL4aos2VbNX0k56Z5zYp9m/bq5m9/mlb+PQ",
    "kNBjIhimgpYNiq2TwBiYeA6tLb79cPtHA0cX5BLk/a5oUpLsiR4kI/f+Q98vVDKasKXXVh5YLkLobrruDB6er2A9",
    "fOcIUF0O4JCRLh/Dc161gE3fQrYTMQenbppZzfxrZfQ8YwLPvKjnqm+XRX+pbTtaJuj0EgTSzUK+EZxoSw8CNwiZ",
    "pxrjwecTMVQ8w/srQmh4ABGuTqk0wP8HcI7hg+fpBv7kiejh5X/Oehxt+Puu85u9GVXb1a0av/vhJvUCBcuISvCA",
    "/z1wVJ0xdLhb1/ZiTDdTzyNbZQ0OQijzK+e1SlkNhp+3eGVZu3pNZvnTppwIXv3wg6kV1HodkWGgh1ayY7Buc52Z",
    "8okDYqvJat5CzOj5OaQNr/k= user@example.com",
);

/// Strings built from the fragments that break naive quoting, plus arbitrary characters; sometimes
/// very long.
pub fn hostile_string() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        3 => prop::sample::select(vec![
            "'", r"'\''", "''", "$(id)", "`id`", "${IFS}", "\n", "\r\n", ";", "&&", "|", "\"", "\\", "#",
            "\u{2018}", "\u{2019}", "\u{201A}", "\u{201B}", "\t", "--- passport host keys ---\n", "-e",
            "*", "~", "!", "%u", "\u{7f}", "\u{1b}[2J",
        ])
        .prop_map(str::to_owned),
        2 => "[a-zA-Z0-9 /._-]{1,12}",
        1 => any::<char>().prop_filter("NUL is rejected, not quoted", |c| *c != '\0').prop_map(String::from),
    ];
    prop_oneof![
        9 => prop::collection::vec(fragment.clone(), 0..32).prop_map(|v| v.concat()),
        1 => (prop::collection::vec(fragment, 1..4), 100..400usize).prop_map(|(v, n)| v.concat().repeat(n)),
    ]
}

/// The holder rule, written independently of the code under test: `^[0-9a-z-]{1,64}$`.
pub fn holder_is_valid(holder: &str) -> bool {
    (1..=64).contains(&holder.len()) && holder.chars().all(|c| matches!(c, '0'..='9' | 'a'..='z' | '-'))
}

/// Runs `cmd` with `input` on its standard input and its output captured.
pub fn run_with_input(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("write input");
    child.wait_with_output().expect("wait")
}

/// Runs `bash -n` (parse only) on `script`; returns bash's complaint if it does not parse.
pub fn bash_syntax_error(script: &str) -> Option<String> {
    let out = run_with_input(Command::new("bash").arg("-n"), script);
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

/// PowerShell's single-quote characters (see `quote.rs`).
fn is_ps_quote(c: char) -> bool {
    matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}')
}

/// Parses a single-quoted literal at the start of `s` with PowerShell's tokenizer rules; returns its
/// value and the rest of the input.
fn ps_literal(s: &str) -> Option<(String, &str)> {
    let mut chars = s.char_indices();
    let (_, open) = chars.next()?;
    if !is_ps_quote(open) {
        return None;
    }
    let mut value = String::new();
    let mut chars = chars.peekable();
    while let Some((i, c)) = chars.next() {
        if is_ps_quote(c) {
            match chars.peek() {
                // A doubled quote stands for the second one.
                Some(&(_, next)) if is_ps_quote(next) => {
                    value.push(next);
                    chars.next();
                }
                _ => return Some((value, &s[i + c.len_utf8()..])),
            }
        } else {
            value.push(c);
        }
    }
    None // unterminated
}

/// Evaluates the expressions `ps_quote`/`ps_ascii_expr` produce: a single-quoted literal, or
/// `(<literal> + [char]0xHHHH + ...)`. Returns `None` for anything else, including trailing input.
pub fn ps_eval(expr: &str) -> Option<String> {
    if !expr.starts_with('(') {
        return match ps_literal(expr)? {
            (value, "") => Some(value),
            _ => None,
        };
    }
    let mut rest = expr.strip_prefix('(')?.strip_suffix(')')?;
    let mut units: Vec<u16> = Vec::new();
    let mut first = true;
    loop {
        if !first {
            rest = rest.strip_prefix(" + ")?;
        }
        if let Some(after) = rest.strip_prefix("[char]0x") {
            if first {
                return None; // `[char] + [char]` would add numbers in PowerShell
            }
            let unit = u16::from_str_radix(after.get(..4)?, 16).ok()?;
            units.push(unit);
            rest = &after[4..];
        } else {
            let (value, after) = ps_literal(rest)?;
            units.extend(value.encode_utf16());
            rest = after;
        }
        first = false;
        if rest.is_empty() {
            return String::from_utf16(&units).ok();
        }
    }
}
