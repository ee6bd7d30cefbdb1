//! Tests of the Windows script builders: shape, quoting, input validation, and that no password is
//! ever in a script. PowerShell cannot run here: what the scripts do on Windows is not tested.

use super::super::quote::ps_quote;
use super::super::test_support::{EXPIRES_AT, holder_is_valid, hostile_string, ps_eval};
use super::super::windows_secret::{PASSWORD_LINE, PasswordKey, USER_LINE, key_id, public_key_xml};
use super::*;
use proptest::prelude::*;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

const USER: &str = "rs-5f3a9c21";
const HOLDER: &str = "0b9c1f5e-3d2a-4c8b-9e7f-6a5d4c3b2a10";

static KEY: LazyLock<PasswordKey> = LazyLock::new(|| PasswordKey::generate().expect("keygen"));
static OTHER_KEY: LazyLock<PasswordKey> = LazyLock::new(|| PasswordKey::generate().expect("keygen"));

fn provision_with(key: &RsaPublicKey, request: &str) -> Result<String, ScriptError> {
    windows_provision_script(&WindowsProvision {
        username: USER,
        password_key: key,
        request,
        holder: HOLDER,
        expires_at: EXPIRES_AT,
    })
}

fn provision(request: &str) -> Result<String, ScriptError> {
    provision_with(&KEY.public_key(), request)
}

/// The character classes of the passwords the script makes, written independently of it.
const UPPER: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &str = "abcdefghijkmnopqrstuvwxyz";
const DIGITS: &str = "23456789";
const SYMBOLS: &str = "!#%*+,-.:=?@^_~";

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
    let script = provision("team-a/rdp").expect("valid");
    for needle in [
        "$ErrorActionPreference = 'Stop'",
        "$PassportUser = 'rs-5f3a9c21'",
        "$PassportRequest = 'team-a/rdp'",
        "$PassportHolder = '0b9c1f5e-3d2a-4c8b-9e7f-6a5d4c3b2a10'",
        "New-LocalUser",
        "-PasswordNeverExpires",
        "Add-LocalGroupMember -SID $RemoteDesktopUsersSid",
        "S-1-5-32-555",
        "-Description $PassportDescription",
        // Domain controllers are told on the host.
        "$PassportDomainRole = (Get-CimInstance -ClassName Win32_ComputerSystem).DomainRole",
        "$PassportDomainController = ($PassportDomainRole -eq 4 -or $PassportDomainRole -eq 5)",
        "New-ADUser",
        "Set-ADAccountPassword -Identity $account -Reset -NewPassword $PassportPassword",
        "Add-ADGroupMember",
    ] {
        assert!(script.contains(needle), "missing {needle:?}");
    }
    assert!(
        !script.contains("$PassportDomainController = $"),
        "no longer decided by the operator"
    );
    assert!(script.is_ascii());
    check_ps_syntax(&script);
}

/// The script is a function of public values only: two scripts made with different keys differ in
/// the key lines and nowhere else, so no password (nor anything secret) can be in one.
#[test]
fn no_password_is_in_the_script() {
    let one = provision("team-a/rdp").expect("valid");
    let two = provision_with(&OTHER_KEY.public_key(), "team-a/rdp").expect("valid");
    let without_key = |script: &str| -> Vec<String> {
        script
            .lines()
            .filter(|l| !l.starts_with("$PassportPasswordKey"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(without_key(&one), without_key(&two));
    assert_ne!(one, two);
    for (script, key) in [(&one, &*KEY), (&two, &*OTHER_KEY)] {
        let xml = public_key_xml(&key.public_key()).expect("xml");
        assert!(script.contains(&format!("\n$PassportPasswordKeyId = '{}'\n", key.id())));
        assert!(script.contains(&format!("\n$PassportPasswordKey = '{xml}'\n")));
        assert_eq!(key.id(), key_id(&key.public_key()));
        // Nothing is passed through a cmdlet that logging could record.
        assert!(!script.contains("ConvertTo-SecureString"));
        assert!(!script.contains("-AsPlainText"));
    }
}

#[test]
fn the_password_is_made_set_and_reported_encrypted() {
    let script = provision("team-a/rdp").expect("valid");
    for needle in [
        "New-Object System.Security.Cryptography.RNGCryptoServiceProvider",
        "$limit = 256 - (256 % $PassportAlphabet.Length)",
        "$PassportPasswordLength = 28",
        "$PassportPassword.AppendChar($c)",
        "$rsa = New-Object System.Security.Cryptography.RSACryptoServiceProvider",
        "$rsa.FromXmlString($PassportPasswordKey)",
        "$plain = [System.Text.Encoding]::UTF8.GetBytes($passwordChars)",
        // fOAEP = $true: OAEP with SHA-1, what windows_secret decrypts.
        "$PassportSealedPassword = [Convert]::ToBase64String($rsa.Encrypt($plain, $true))",
    ] {
        assert!(script.contains(needle), "missing {needle:?}");
    }
    assert_eq!(PASSWORD_LEN, 28);
    // The alphabet: the four classes, no look-alikes, nothing a PowerShell string or shell treats
    // specially.
    let alphabet = script
        .lines()
        .find_map(|l| l.strip_prefix("$PassportAlphabet = "))
        .expect("alphabet");
    assert_eq!(
        alphabet,
        ps_quote("a", &[UPPER, LOWER, DIGITS, SYMBOLS].concat()).expect("quoted")
    );
    assert!(!alphabet[1..alphabet.len() - 1].contains(['\'', '"', '`', '$', 'I', 'O', 'l', '0', '1']));
    // 72 characters: 256 % 72 = 40 byte values are rejected, so every character is equally likely.
    assert_eq!(alphabet.len() - 2, 72);
    // Encrypted before anything changes; reported after the account has it.
    let sealed = script.find("$PassportSealedPassword = ").expect("sealed");
    let changed = script.find("Set-Holders ($others").expect("first change");
    assert!(sealed < changed);
    let user_line = format!("[Console]::Out.WriteLine('{USER_LINE} ' + $PassportUser)");
    let password_line = format!(
        "[Console]::Out.WriteLine('{PASSWORD_LINE} ' + $PassportPasswordKeyId + ' ' + $PassportSealedPassword)"
    );
    let reported = script.find(&password_line).expect("password line");
    assert!(script.find(&user_line).expect("user line") < reported);
    for set in [
        "New-LocalUser -Name $PassportUser -Password $PassportPassword",
        "Set-LocalUser -InputObject $account -Password $PassportPassword",
        "-AccountPassword $PassportPassword",
        "Set-ADAccountPassword",
        "Add-LocalGroupMember",
    ] {
        assert!(script.find(set).expect(set) < reported, "{set} after the report");
    }
    // The plaintext is wiped once encrypted.
    assert!(script.contains("[Array]::Clear($passwordChars, 0, $passwordChars.Length)"));
    assert!(script.contains("[Array]::Clear($plain, 0, $plain.Length)"));
}

/// The domain account's name as the script computes it, in Rust: `rs-<id>-` and the first 6 hex
/// characters of SHA-256("<holder>/<computer name, lower case>").
fn domain_account(holder: &str, computer: &str) -> String {
    let digest = Sha256::digest(format!("{holder}/{}", computer.to_lowercase()));
    format!("{USER}-{}", &hex::encode(digest)[..6])
}

#[test]
fn domain_controllers_get_one_account_per_request_and_controller() {
    for script in [
        provision("team-a/rdp").expect("valid"),
        windows_revoke_script(USER, HOLDER).expect("valid"),
    ] {
        for needle in [
            "$seed = $PassportHolder + '/' + $env:COMPUTERNAME.ToLowerInvariant()",
            "$digest = $sha256.ComputeHash([System.Text.Encoding]::UTF8.GetBytes($seed))",
            "$PassportUser = $PassportUser + '-' + (-join ($digest[0..2] | ForEach-Object { $_.ToString('x2') }))",
        ] {
            assert!(script.contains(needle), "missing {needle:?}");
        }
        // The name is settled before it is checked and before anything uses it.
        let named = script.find("$PassportUser = $PassportUser + '-'").expect("named");
        assert!(named < script.find("$PassportUser -cnotmatch").expect("checked"));
        assert!(named < script.find("$PassportHoldersFile = ").expect("holders file"));
        assert!(named < script.find("Import-Module ActiveDirectory").expect("AD"));
        check_ps_syntax(&script);
    }
    // The names it makes are passport names of at most 20 characters (sAMAccountName), and differ
    // between controllers and between requests.
    let a = domain_account(HOLDER, "DC01");
    let b = domain_account(HOLDER, "DC02");
    let c = domain_account("1b9c1f5e-3d2a-4c8b-9e7f-6a5d4c3b2a10", "DC01");
    for name in [&a, &b, &c] {
        assert!(
            super::super::is_passport_username(name) && name.len() <= 20,
            "{name}"
        );
    }
    assert!(a != b && a != c && b != c);
    // The operator gives the base name only.
    assert!(matches!(
        windows_revoke_script("rs-5f3a9c21-dc", HOLDER),
        Err(ScriptError::InvalidUsername(_))
    ));
    assert!(matches!(
        windows_provision_script(&WindowsProvision {
            username: "rs-5f3a9c21-dc",
            password_key: &KEY.public_key(),
            request: "a/b",
            holder: HOLDER,
            expires_at: EXPIRES_AT,
        }),
        Err(ScriptError::InvalidUsername(_))
    ));
}

#[test]
fn weak_keys_are_refused() {
    let small = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).expect("keygen");
    assert_eq!(
        provision_with(&small.to_public_key(), "a/b"),
        Err(ScriptError::InvalidPasswordKey)
    );
    assert_eq!(KEY.public_key().size(), 384);
}

#[test]
fn revoke_scripts_log_off_and_remove_only_passport_accounts() {
    {
        let script = windows_revoke_script(USER, HOLDER).expect("valid");
        for needle in [
            "quser",
            "logoff.exe",
            "Assert-PassportOwned $account",
            "exit 0",
            "Remove-ADUser",
            "Remove-LocalUser",
        ] {
            assert!(script.contains(needle), "missing {needle:?}");
        }
        // Ownership is checked before anything is disabled, logged off or removed.
        let check = script
            .rfind("Assert-PassportOwned $account")
            .expect("ownership check");
        assert!(check < script.rfind("Stop-PassportSessions\n").expect("logoff"));
        check_ps_syntax(&script);
    }
    assert!(windows_revoke_script("Administrator", HOLDER).is_err());
}

#[test]
fn holders_decide_whether_the_account_goes() {
    let provision = provision("team-a/rdp").expect("valid");
    // The holder is recorded after the ownership check and before the account is created.
    let owned = provision.find("Assert-PassportOwned $account").expect("check");
    let recorded = provision
        .find("Set-Holders ($others + $otherExpiries + $holder + $expires)")
        .expect("holder recorded");
    assert!(owned < recorded && recorded < provision.rfind("New-LocalUser").expect("create"));
    assert!(provision.contains("Mutex($false, 'Global\\passport')"));
    for dc in [false, true] {
        let revoke = windows_revoke_script(USER, HOLDER).expect("valid");
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
    {
        let provision = provision("team-a/rdp").expect("valid");
        let revoke = windows_revoke_script(USER, HOLDER).expect("valid");
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
        let key = KEY.public_key();
        let p = WindowsProvision {
            username: USER,
            password_key: &key,
            request: "a/b",
            holder: bad,
            expires_at: EXPIRES_AT,
        };
        let shown: String = bad.chars().take(64).collect();
        assert_eq!(
            windows_provision_script(&p),
            Err(ScriptError::InvalidHolder(shown.clone()))
        );
        assert_eq!(
            windows_revoke_script(USER, bad),
            Err(ScriptError::InvalidHolder(shown))
        );
    }
    assert!(windows_revoke_script(USER, &"a".repeat(64)).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the request, it appears only as a quoted expression that evaluates back to it, and
    /// the script stays ASCII.
    #[test]
    fn hostile_values_stay_quoted(request in hostile_string()) {
        let result = provision(&request);
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
        let xml = public_key_xml(&KEY.public_key()).expect("xml");
        prop_assert_eq!(ps_eval(&value_of("$PassportPasswordKey = ")), Some(xml));
        prop_assert_eq!(ps_eval(&value_of("$PassportPasswordKeyId = ")), Some(KEY.id().to_owned()));
        prop_assert_eq!(ps_eval(&value_of("$PassportRequest = ")), Some(request));
        prop_assert_eq!(value_of("$PassportExpiresAt = [long] "), EXPIRES_AT.as_second().to_string());
        check_ps_syntax(&script);
    }

    #[test]
    fn hostile_holders_are_rejected(holder in hostile_string()) {
        prop_assume!(!holder_is_valid(&holder));
        let rejected = |r: Result<String, ScriptError>| matches!(r, Err(ScriptError::InvalidHolder(_)));
        let key = KEY.public_key();
        let p = WindowsProvision {
            username: USER,
            password_key: &key,
            request: "a/b",
            holder: &holder,
            expires_at: EXPIRES_AT,
        };
        prop_assert!(rejected(windows_provision_script(&p)));
        prop_assert!(rejected(windows_revoke_script(USER, &holder)));
        prop_assert!(rejected(windows_extend_script(USER, &holder, EXPIRES_AT)));
    }
}

#[test]
fn the_account_expires_with_its_last_holder() {
    let local = provision("team-a/rdp").expect("valid");
    assert!(local.contains(&format!(
        "\n$PassportExpiresAt = [long] {}\n",
        EXPIRES_AT.as_second()
    )));
    // The holder's expiry is recorded with it, and only ever moves later.
    assert!(local.contains("$expires = 'expires=' + $PassportHolder + ' ' + $expiresAt"));
    assert!(local.contains("if ($null -ne $recorded -and $recorded -gt $expiresAt)"));
    assert!(local.contains("Set-LocalUser -InputObject $Account -AccountExpires $Expires"));
    assert!(local.contains("Set-LocalUser -InputObject $Account -AccountNeverExpires"));
    let dc = &local;
    assert!(dc.contains("Set-ADAccountExpiration -Identity $Account -DateTime $Expires"));
    assert!(dc.contains("Clear-ADAccountExpiration -Identity $Account"));
    assert!(local.contains("$accountExpires = Get-PassportAccountExpires $expiresAt $others $otherExpiries"));
    assert!(local.contains("Set-PassportAccountExpires $account $accountExpires"));
    // A revoke keeps the other holders' expiries.
    let revoke = windows_revoke_script(USER, HOLDER).expect("valid");
    assert!(revoke.contains("Set-Holders ($others + @(Get-HolderLines 'expires' $false))"));
}

#[test]
fn an_extension_moves_the_holders_expiry_and_the_accounts_later_only() {
    let later = Timestamp::from_second(EXPIRES_AT.as_second() + 7200).expect("time");
    let script = windows_extend_script(USER, HOLDER, later).expect("valid");
    check_ps_syntax(&script);
    assert!(script.starts_with("# passport: extend a just-in-time user."));
    assert!(script.contains(&format!("\n$PassportExpiresAt = [long] {}\n", later.as_second())));
    // Only a passport account this request still holds, and only later.
    assert!(script.contains("Assert-PassportOwned $account"));
    assert!(script.contains("$holder = @(Get-HolderLines 'holder' $true)"));
    assert!(script.contains("if ($null -ne $recorded -and $recorded -ge $expiresAt)"));
    // The other holders' lines stay; the account follows the latest holder.
    assert!(script.contains(
        "Set-Holders ($others + $otherExpiries + $holder + ('expires=' + $PassportHolder + ' ' + $expiresAt))"
    ));
    assert!(script.contains(
        "Set-PassportAccountExpires $account (Get-PassportAccountExpires $expiresAt $others $otherExpiries)"
    ));
    // No password and nothing about creating or removing accounts.
    for absent in ["Password", "New-LocalUser", "New-ADUser", "Remove-LocalUser"] {
        assert!(
            !script[script.find("# ---- passport: extend").expect("body")..].contains(absent),
            "{absent}"
        );
    }
    assert!(matches!(
        windows_extend_script("alice; rm", HOLDER, later),
        Err(ScriptError::InvalidUsername(_))
    ));
    assert!(matches!(
        windows_extend_script(USER, "../x", later),
        Err(ScriptError::InvalidHolder(_))
    ));
}
