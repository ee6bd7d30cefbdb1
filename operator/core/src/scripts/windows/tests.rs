//! Tests of the Windows script builders: shape, quoting, input validation, passwords.

use super::super::quote::ps_quote;
use super::super::test_support::{EXPIRES_AT, holder_is_valid, hostile_string, ps_eval};
use super::*;
use proptest::prelude::*;

const USER: &str = "rs-5f3a9c21";
const PASSWORD: &str = "Xy7#pQ2!mN4%kL9=wR3?tV6@";
const HOLDER: &str = "0b9c1f5e-3d2a-4c8b-9e7f-6a5d4c3b2a10";

fn provision(domain_controller: bool, password: &str, request: &str) -> Result<String, ScriptError> {
    let username = if domain_controller { "rs-5f3a9c21-dc" } else { USER };
    windows_provision_script(&WindowsProvision {
        username,
        password,
        request,
        holder: HOLDER,
        domain_controller,
        expires_at: EXPIRES_AT,
    })
}

/// A coarse syntax check: outside strings and comments, brackets must balance. Also rejects
/// `"$name:"` inside double-quoted strings, which PowerShell parses as a scoped variable.
fn check_ps_syntax(script: &str) {
    let mut stack = Vec::new();
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            '\'' => while chars.next().is_some_and(|c| c != '\'') {},
            '"' => {
                let mut text = String::new();
                while let Some(c) = chars.next_if(|&c| c != '"') {
                    text.push(c);
                }
                chars.next();
                let scoped = text.split('$').skip(1).any(|after| {
                    let name: String = after
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    !name.is_empty() && after[name.len()..].starts_with(':')
                });
                assert!(!scoped, "scoped-variable trap in {text:?}");
            }
            '(' | '{' | '[' => stack.push(c),
            ')' | '}' | ']' => {
                let expected = match c {
                    ')' => '(',
                    '}' => '{',
                    _ => '[',
                };
                assert_eq!(stack.pop(), Some(expected), "unbalanced {c}");
            }
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
}

#[test]
fn provision_scripts_use_the_expected_cmdlets() {
    let local = provision(false, PASSWORD, "team-a/rdp").expect("valid");
    for needle in [
        "$ErrorActionPreference = 'Stop'",
        "$PassportUser = 'rs-5f3a9c21'",
        "$PassportRequest = 'team-a/rdp'",
        "$PassportHolder = '0b9c1f5e-3d2a-4c8b-9e7f-6a5d4c3b2a10'",
        "$PassportDomainController = $false",
        "ConvertTo-SecureString -String 'Xy7#pQ2!mN4%kL9=wR3?tV6@' -AsPlainText -Force",
        "New-LocalUser",
        "-PasswordNeverExpires",
        "Add-LocalGroupMember -SID $RemoteDesktopUsersSid",
        "S-1-5-32-555",
        "-Description $PassportDescription",
    ] {
        assert!(local.contains(needle), "missing {needle:?}");
    }
    let dc = provision(true, PASSWORD, "team-a/rdp").expect("valid");
    for needle in [
        "$PassportDomainController = $true",
        "New-ADUser",
        "Add-ADGroupMember",
        "rs-5f3a9c21-dc",
    ] {
        assert!(dc.contains(needle), "missing {needle:?}");
    }
    for script in [&local, &dc] {
        assert_eq!(
            script.matches(PASSWORD).count(),
            1,
            "the password appears once, quoted"
        );
        assert!(script.is_ascii());
        check_ps_syntax(script);
    }
}

#[test]
fn revoke_scripts_log_off_and_remove_only_passport_accounts() {
    for dc in [false, true] {
        let script =
            windows_revoke_script(if dc { "rs-5f3a9c21-dc" } else { USER }, HOLDER, dc).expect("valid");
        for needle in ["quser", "logoff.exe", "Assert-PassportOwned $account", "exit 0"] {
            assert!(script.contains(needle), "missing {needle:?}");
        }
        assert!(script.contains(if dc { "Remove-ADUser" } else { "Remove-LocalUser" }));
        // Ownership is checked before anything is disabled, logged off or removed.
        let check = script
            .rfind("Assert-PassportOwned $account")
            .expect("ownership check");
        assert!(check < script.rfind("Stop-PassportSessions\n").expect("logoff"));
        check_ps_syntax(&script);
    }
    assert!(windows_revoke_script("Administrator", HOLDER, false).is_err());
}

#[test]
fn holders_decide_whether_the_account_goes() {
    let provision = provision(false, PASSWORD, "team-a/rdp").expect("valid");
    // The holder is recorded after the ownership check and before the account is created.
    let owned = provision.find("Assert-PassportOwned $account").expect("check");
    let recorded = provision
        .find("Set-Holders ($others + $otherExpiries + $holder + $expires)")
        .expect("holder recorded");
    assert!(owned < recorded && recorded < provision.rfind("New-LocalUser").expect("create"));
    assert!(provision.contains("Mutex($false, 'Global\\passport')"));
    for dc in [false, true] {
        let revoke = windows_revoke_script(USER, HOLDER, dc).expect("valid");
        assert!(revoke.contains("$PassportHolder = '0b9c1f5e-3d2a-4c8b-9e7f-6a5d4c3b2a10'"));
        // Other holders keep the account: the script stops before touching it.
        let kept = revoke.find("still held by").expect("kept message");
        let disable = if dc {
            "Disable-ADAccount"
        } else {
            "Disable-LocalUser"
        };
        assert!(revoke.rfind("Assert-PassportOwned $account").expect("check") < kept);
        assert!(kept < revoke.rfind(disable).expect("disable"));
        assert!(
            revoke
                .rfind("Remove-Item -LiteralPath $PassportHoldersFile")
                .expect("cleared")
                > kept
        );
    }
}

#[test]
fn revoked_holders_are_never_provisioned_again() {
    for dc in [false, true] {
        let username = if dc { "rs-5f3a9c21-dc" } else { USER };
        let provision = provision(dc, PASSWORD, "team-a/rdp").expect("valid");
        let revoke = windows_revoke_script(username, HOLDER, dc).expect("valid");
        for script in [&provision, &revoke] {
            assert!(script.contains(&format!("$PassportExitRevoked = {EXIT_REVOKED}\n")));
            assert!(script.contains("$PassportRevokedDir = Join-Path $env:ProgramData 'passport\\revoked'"));
            assert!(script.contains("$PassportTombstone = Join-Path $PassportRevokedDir $PassportHolder"));
            // Under the lock.
            let lock = script.find("WaitOne(60000)").expect("lock");
            assert!(lock < script.rfind("$PassportTombstone").expect("tombstone"));
            assert!(script.is_ascii());
            check_ps_syntax(script);
        }
        // Provisioning checks the tombstone before it looks at or changes anything.
        let refused = provision
            .find("if (Test-Path -LiteralPath $PassportTombstone) {\n    Exit-Passport $PassportExitRevoked")
            .expect("tombstone check");
        assert!(provision.contains(
            "(\"request $PassportHolder was already revoked on this host; \" +\n        'refusing to provision it again')"
        ));
        let account = provision
            .rfind("$account = Get-PassportAccount")
            .expect("account");
        assert!(refused < account && account < provision.find("Set-Holders ($others").expect("holders"));
        // Revoking writes it first: also for a missing account, a foreign one or an unlisted holder.
        let written = revoke
            .find("[System.IO.File]::WriteAllText($PassportTombstone, $PassportUser + \"`r`n\")")
            .expect("tombstone written");
        assert!(written < revoke.rfind("$account = Get-PassportAccount").expect("account"));
        assert!(
            written
                < revoke
                    .find("does not exist; nothing to revoke")
                    .expect("missing account")
        );
        let pruned = revoke
            .find("Where-Object { $_.LastWriteTimeUtc -lt $cutoff }")
            .expect("pruning");
        assert!(revoke.contains("$cutoff = (Get-Date).ToUniversalTime().AddDays(-7)"));
        assert!(
            written < pruned && pruned < revoke.rfind("$account = Get-PassportAccount").expect("account")
        );
    }
}

#[test]
fn holders_are_validated() {
    for bad in ["", "ABC", "a b", "a/../b", &"a".repeat(65), "x'; exit 0; '"] {
        let p = WindowsProvision {
            username: USER,
            password: PASSWORD,
            request: "a/b",
            holder: bad,
            domain_controller: false,
            expires_at: EXPIRES_AT,
        };
        let shown: String = bad.chars().take(64).collect();
        assert_eq!(
            windows_provision_script(&p),
            Err(ScriptError::InvalidHolder(shown.clone()))
        );
        assert_eq!(
            windows_revoke_script(USER, bad, false),
            Err(ScriptError::InvalidHolder(shown))
        );
    }
    assert!(windows_revoke_script(USER, &"a".repeat(64), false).is_ok());
}

#[test]
fn debug_redacts_the_password() {
    let p = WindowsProvision {
        username: USER,
        password: PASSWORD,
        request: "a/b",
        holder: HOLDER,
        domain_controller: false,
        expires_at: EXPIRES_AT,
    };
    let shown = format!("{p:?} {p:#?}");
    assert!(!shown.contains(PASSWORD) && !shown.contains("Xy7#"), "{shown}");
    assert!(shown.contains("<redacted>") && shown.contains(USER) && shown.contains(HOLDER));
}

#[test]
fn bad_passwords_are_rejected_without_echo() {
    for bad in [
        "Zq9",
        &"a".repeat(128),
        "line\nbreak-password",
        "nul\0-in-password-x",
    ] {
        let err = provision(false, bad, "a/b").expect_err("rejected");
        assert!(!err.to_string().contains(bad), "{err}");
    }
}

#[test]
fn generated_passwords_are_strong_and_distinct() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let pw = generate_password();
        assert_eq!(pw.len(), PASSWORD_LEN);
        for class in [UPPER, LOWER, DIGITS, SYMBOLS] {
            assert!(pw.bytes().any(|b| class.contains(&b)), "{pw} lacks a class");
        }
        // Safe in any PowerShell string: quoting changes nothing.
        assert_eq!(ps_quote("p", &pw).expect("no NUL"), format!("'{pw}'"));
        assert!(!pw.contains(['\'', '"', '`', '$']));
        assert!(seen.insert(pw));
    }
}

/// Any string, made into a password Windows would accept (no control characters, 14..=127).
fn hostile_password() -> impl Strategy<Value = String> {
    hostile_string().prop_map(|s| {
        let s: String = s.chars().filter(|c| !c.is_control()).collect();
        format!("{s}'\u{2019}Aa1!aaaaaaaaaaaa")
            .chars()
            .take(MAX_PASSWORD_LEN)
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the password and request, they appear only as quoted expressions that evaluate
    /// back to them, and the script stays ASCII.
    #[test]
    fn hostile_values_stay_quoted(
        password in hostile_password(),
        request in hostile_string(),
        dc in any::<bool>(),
    ) {
        let result = provision(dc, &password, &request);
        if request.len() > super::super::MAX_REQUEST_LEN {
            let too_long = matches!(result, Err(ScriptError::TooLong { field: "request", .. }));
            prop_assert!(too_long, "{:?}", result);
            return Ok(());
        }
        let script = result.expect("valid input");
        prop_assert!(script.is_ascii());
        let value_of = |prefix: &str| {
            let line = script.lines().find(|l| l.starts_with(prefix)).expect("assignment present");
            line[prefix.len()..].to_owned()
        };
        let pw = value_of("$PassportPassword = ConvertTo-SecureString -String ");
        let pw = pw.strip_suffix(" -AsPlainText -Force").expect("password line shape");
        prop_assert_eq!(ps_eval(pw), Some(password));
        prop_assert_eq!(ps_eval(&value_of("$PassportRequest = ")), Some(request));
        prop_assert_eq!(value_of("$PassportExpiresAt = [long] "), EXPIRES_AT.as_second().to_string());
        check_ps_syntax(&script);
    }

    #[test]
    fn hostile_holders_are_rejected(holder in hostile_string(), dc in any::<bool>()) {
        prop_assume!(!holder_is_valid(&holder));
        let rejected = |r: Result<String, ScriptError>| matches!(r, Err(ScriptError::InvalidHolder(_)));
        let p = WindowsProvision {
            username: USER,
            password: PASSWORD,
            request: "a/b",
            holder: &holder,
            domain_controller: dc,
            expires_at: EXPIRES_AT,
        };
        prop_assert!(rejected(windows_provision_script(&p)));
        prop_assert!(rejected(windows_revoke_script(USER, &holder, dc)));
    }
}

#[test]
fn the_account_expires_with_its_last_holder() {
    let local = provision(false, PASSWORD, "team-a/rdp").expect("valid");
    assert!(local.contains(&format!(
        "\n$PassportExpiresAt = [long] {}\n",
        EXPIRES_AT.as_second()
    )));
    // The holder's expiry is recorded with it, and only ever moves later.
    assert!(local.contains("$expires = 'expires=' + $PassportHolder + ' ' + $expiresAt"));
    assert!(local.contains("if ($null -ne $recorded -and $recorded -gt $expiresAt)"));
    assert!(local.contains("Set-LocalUser -InputObject $account -AccountExpires $accountExpires"));
    assert!(local.contains("Set-LocalUser -InputObject $account -AccountNeverExpires"));
    let dc = provision(true, PASSWORD, "team-a/rdp").expect("valid");
    assert!(dc.contains("Set-ADAccountExpiration -Identity $account -DateTime $accountExpires"));
    assert!(dc.contains("Clear-ADAccountExpiration -Identity $account"));
    // A revoke keeps the other holders' expiries.
    let revoke = windows_revoke_script(USER, HOLDER, false).expect("valid");
    assert!(revoke.contains("Set-Holders ($others + @(Get-HolderLines 'expires' $false))"));
}
