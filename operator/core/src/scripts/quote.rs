//! Quoting of untrusted values for bash and PowerShell.
//!
//! These are the only way request data enters a script. Both shells have a quoting form in which
//! every character is literal except the quote itself, so escaping comes down to handling that one
//! character; the only value neither can carry is NUL, which is rejected.

use super::ScriptError;

/// Characters PowerShell's tokenizer treats as a single quote: the ASCII apostrophe and the
/// typographic variants U+2018, U+2019, U+201A and U+201B. Any of them ends a single-quoted string,
/// so all of them must be escaped, by doubling, inside one.
const PS_SINGLE_QUOTES: [char; 5] = ['\'', '\u{2018}', '\u{2019}', '\u{201A}', '\u{201B}'];

fn reject_nul(field: &'static str, value: &str) -> Result<(), ScriptError> {
    if value.contains('\0') {
        Err(ScriptError::NulByte { field })
    } else {
        Ok(())
    }
}

/// Quotes `value` as one POSIX shell word: `'...'`, with each `'` written as `'\''` (close the
/// quote, an escaped quote, reopen). Inside single quotes nothing else is special: not `$`, not
/// backticks, not backslashes, not newlines.
///
/// `field` names the value in the error if it contains a NUL byte.
pub fn sh_quote(field: &'static str, value: &str) -> Result<String, ScriptError> {
    reject_nul(field, value)?;
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str(r"'\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Ok(out)
}

/// Quotes `value` as a PowerShell single-quoted string literal, doubling every character PowerShell
/// treats as a single quote (the ASCII one and U+2018, U+2019, U+201A, U+201B).
///
/// The result is only safe in a script that PowerShell decodes as UTF-8. Windows PowerShell 5.1 reads
/// a `.ps1` file without a byte order mark in the ANSI code page, where the UTF-8 bytes of an
/// innocent character can decode to a typographic quote; scripts should therefore use
/// [`ps_ascii_expr`], which is what passport's own scripts do.
pub fn ps_quote(field: &'static str, value: &str) -> Result<String, ScriptError> {
    reject_nul(field, value)?;
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if PS_SINGLE_QUOTES.contains(&c) {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    Ok(out)
}

/// Writes `value` as a PowerShell expression made of ASCII only: printable ASCII in single-quoted
/// literals (see [`ps_quote`]) and every other character as a `[char]0xHHHH` cast (one per UTF-16
/// unit), concatenated, e.g. `('caf' + [char]0x00E9)`. A value of printable ASCII stays a plain
/// literal.
///
/// Because the text is pure ASCII, its meaning does not depend on how the script file is decoded
/// (UTF-8, or the ANSI code page Windows PowerShell 5.1 assumes without a BOM), and every value stays
/// on one line.
pub fn ps_ascii_expr(field: &'static str, value: &str) -> Result<String, ScriptError> {
    reject_nul(field, value)?;
    let printable = |c: char| (' '..='~').contains(&c);
    if value.chars().all(printable) {
        return ps_quote(field, value);
    }
    let mut parts: Vec<String> = Vec::new();
    let mut run = String::new();
    for c in value.chars() {
        if printable(c) {
            run.push(c);
            continue;
        }
        // The first operand must be a string: in PowerShell `[char] + [char]` adds code points.
        if !run.is_empty() || parts.is_empty() {
            parts.push(ps_quote(field, &run)?);
            run.clear();
        }
        let mut units = [0u16; 2];
        parts.extend(
            c.encode_utf16(&mut units)
                .iter()
                .map(|u| format!("[char]0x{u:04X}")),
        );
    }
    if !run.is_empty() {
        parts.push(ps_quote(field, &run)?);
    }
    Ok(format!("({})", parts.join(" + ")))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{hostile_string, ps_eval};
    use super::*;
    use proptest::prelude::*;
    use std::process::Command;

    fn bash_printf(quoted: &str) -> String {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("printf %s {quoted}"))
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "bash failed for {quoted:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("bash prints UTF-8")
    }

    #[test]
    fn sh_quote_examples() {
        assert_eq!(sh_quote("f", "").expect("quotes"), "''");
        assert_eq!(sh_quote("f", "team-a/x").expect("quotes"), "'team-a/x'");
        assert_eq!(sh_quote("f", "it's").expect("quotes"), r"'it'\''s'");
        for tricky in [
            "$(id)",
            "`id`",
            "a'b'c",
            "'",
            "''",
            "\n;rm -rf /\n",
            "\\'",
            "-n",
            "\u{2019}",
        ] {
            assert_eq!(bash_printf(&sh_quote("f", tricky).expect("quotes")), tricky);
        }
    }

    #[test]
    fn nul_is_rejected_and_named() {
        let err = sh_quote("reason", "a\0b").expect_err("NUL rejected");
        assert_eq!(err, ScriptError::NulByte { field: "reason" });
        assert_eq!(err.to_string(), "field reason contains a NUL byte");
        assert!(ps_quote("password", "\0").is_err());
        assert!(ps_ascii_expr("request", "x\0").is_err());
    }

    #[test]
    fn ps_quote_doubles_every_quote_variant() {
        assert_eq!(ps_quote("f", "it's").expect("quotes"), "'it''s'");
        assert_eq!(
            ps_quote("f", "\u{2018}a\u{2019}b\u{201A}c\u{201B}").expect("quotes"),
            "'\u{2018}\u{2018}a\u{2019}\u{2019}b\u{201A}\u{201A}c\u{201B}\u{201B}'"
        );
        // `$` and backticks are literal in single-quoted strings: left alone.
        assert_eq!(ps_quote("f", "$(x)`n\"").expect("quotes"), "'$(x)`n\"'");
    }

    #[test]
    fn ps_ascii_expr_examples() {
        assert_eq!(ps_ascii_expr("f", "plain 'x'").expect("quotes"), "'plain ''x'''");
        assert_eq!(
            ps_ascii_expr("f", "caf\u{e9}").expect("quotes"),
            "('caf' + [char]0x00E9)"
        );
        assert_eq!(
            ps_ascii_expr("f", "\u{2019}x").expect("quotes"),
            "('' + [char]0x2019 + 'x')"
        );
        assert_eq!(
            ps_ascii_expr("f", "a\nb").expect("quotes"),
            "('a' + [char]0x000A + 'b')"
        );
        assert_eq!(
            ps_ascii_expr("f", "\u{1F600}").expect("quotes"),
            "('' + [char]0xD83D + [char]0xDE00)"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The real test of the POSIX quoting: bash itself must give back the exact original.
        #[test]
        fn bash_round_trips_hostile_strings(value in hostile_string()) {
            let quoted = sh_quote("f", &value).expect("no NUL in hostile strings");
            prop_assert_eq!(bash_printf(&quoted), value);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn ps_quote_literal_has_no_unescaped_quote(value in hostile_string()) {
            let quoted = ps_quote("f", &value).expect("no NUL");
            // Evaluating the literal with PowerShell's rules must consume all of it and give the value.
            prop_assert_eq!(ps_eval(&quoted), Some(value));
        }

        #[test]
        fn ps_ascii_expr_is_ascii_and_round_trips(value in hostile_string()) {
            let expr = ps_ascii_expr("f", &value).expect("no NUL");
            prop_assert!(expr.bytes().all(|b| (b' '..=b'~').contains(&b)), "not printable ASCII: {:?}", expr);
            prop_assert_eq!(ps_eval(&expr), Some(value));
        }

        #[test]
        fn any_string_is_either_rejected_or_round_trips(value in any::<String>()) {
            match sh_quote("f", &value) {
                Err(e) => prop_assert!(value.contains('\0'), "unexpected {e}"),
                Ok(q) => prop_assert!(q.starts_with('\'') && q.ends_with('\'')),
            }
            match ps_ascii_expr("f", &value) {
                Err(_) => prop_assert!(value.contains('\0')),
                Ok(e) => prop_assert_eq!(ps_eval(&e), Some(value)),
            }
        }
    }
}
