//! Tests of the Linux script builders: shape, parsing with bash and shellcheck, input validation.

use super::super::test_support::{
    ECDSA_P256, ED25519, EXPIRES_AT, RSA_3072, bash_syntax_error, holder_is_valid, hostile_string,
    run_with_input,
};
use super::*;
use proptest::prelude::*;
use std::process::Command;

const USER: &str = "rs-5f3a9c21";
const HOLDER: &str = "0b9c1f5e-3d2a-4c8b-9e7f-6a5d4c3b2a10";

fn keys() -> Vec<String> {
    vec![ED25519.to_owned(), RSA_3072.to_owned()]
}

fn provision(username: &str, keys: &[String], request: &str) -> Result<String, ScriptError> {
    linux_provision_script(&LinuxProvision {
        username,
        ca_public_keys: keys,
        request,
        holder: HOLDER,
        expires_at: EXPIRES_AT,
    })
}

#[test]
fn scripts_parse_with_bash() {
    let one = vec![ED25519.to_owned()];
    let rotation = vec![
        ED25519.to_owned(),
        RSA_3072.to_owned(),
        ECDSA_P256.to_owned(),
        ED25519.to_owned(),
    ];
    for (user, keys, request) in [
        (USER, &one, "team-a/cpu-alarm"),
        ("rs-00000000-dc1", &rotation, "ns/name"),
        (USER, &keys(), ""),
        (USER, &keys(), "it's $(rm -rf /) `x` \n; \u{2019}"),
    ] {
        let script = provision(user, keys, request).expect("valid input");
        assert!(script.starts_with("#!/bin/bash\n"));
        assert_eq!(bash_syntax_error(&script), None, "{script}");
    }
    let revoke = linux_revoke_script("rs-0123abcd-x", HOLDER).expect("valid");
    assert_eq!(bash_syntax_error(&revoke), None, "{revoke}");
}

#[test]
fn script_shape() {
    let script = provision(USER, &keys(), "team-a/cpu-alarm").expect("valid input");
    assert!(script.contains("set -euo pipefail\n"));
    assert!(script.contains("\nPASSPORT_USER='rs-5f3a9c21'\n"));
    assert!(script.contains("\nPASSPORT_REQUEST='team-a/cpu-alarm'\n"));
    assert!(script.contains("\nPASSPORT_HOLDER='0b9c1f5e-3d2a-4c8b-9e7f-6a5d4c3b2a10'\n"));
    // Comments of the CA keys are dropped.
    assert!(!script.contains("user@example.com"));
    assert!(script.contains(
        "    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti'\n"
    ));
    for needle in [
        HOST_KEYS_BEGIN,
        HOST_KEYS_END,
        "useradd --create-home --shell /bin/bash",
        "Match User rs-*",
        "TrustedUserCAKeys $CA_FILE",
        "AuthorizedPrincipalsFile $PRINCIPALS_DIR/%u",
        "DROPIN_DIR=\"$SSH_DIR/sshd_config.d\"",
        "DROPIN=\"$DROPIN_DIR/50-passport.conf\"",
        "-t -f \"$SSHD_CONFIG\"",
        "${PASSPORT_SSHD:-/usr/sbin/sshd}",
        "${PASSPORT_SSHD_PID:-/run/sshd.pid}",
        "--uid \"$1\" --gid \"$1\"",
        "update_marker add \"$PASSPORT_REQUEST\"",
    ] {
        assert!(script.contains(needle), "missing {needle:?}");
    }
    let revoke = linux_revoke_script(USER, HOLDER).expect("valid");
    for needle in [
        "userdel --remove",
        "pkill -KILL -u",
        "loginctl terminate-user",
        "rm -f -- \"$PRINCIPALS_FILE\"",
        "update_marker remove",
        "still held by $holders other request(s)",
        "-perm /6000",
        "atrm",
        "ipcrm",
    ] {
        assert!(revoke.contains(needle), "missing {needle:?}");
    }
    // Other holders are checked before anything about the user changes.
    let kept = revoke.find("still held by").expect("kept");
    assert!(
        kept < revoke
            .find("rm -f -- \"$PRINCIPALS_FILE\"\nusermod")
            .expect("principals")
    );
    // The principals file goes before anything is killed or removed.
    let principals = revoke
        .find("rm -f -- \"$PRINCIPALS_FILE\"\nusermod")
        .expect("principals removal");
    assert!(principals < revoke.find("pkill").expect("pkill"));
}

/// shellcheck catches what `bash -n` cannot (quoting, unused or unset variables). It is optional:
/// skipped where it is not installed.
#[test]
fn shellcheck_is_clean_when_available() {
    if Command::new("shellcheck").arg("--version").output().is_err() {
        eprintln!("shellcheck not installed; skipped");
        return;
    }
    let provision = provision(USER, &keys(), "it's \"$(x)\"").expect("valid input");
    for script in [provision, linux_revoke_script(USER, HOLDER).expect("valid")] {
        // SC2034: the header assigns exit codes not every action uses. Info-level notes ("does not
        // expand in single quotes") describe exactly what quoting is for.
        let mut shellcheck = Command::new("shellcheck");
        shellcheck.args(["--shell=bash", "--severity=warning", "--exclude=SC2034", "-"]);
        let out = run_with_input(&mut shellcheck, &script);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn request_data_only_in_the_header() {
    // Static parts must not reference anything the operator did not assign in the header.
    for body in [COMMON, HOLDERS, PROVISION, REVOKE] {
        for variable in ["PASSPORT_REQUEST=", "PASSPORT_USER=", "PASSPORT_HOLDER="] {
            assert!(!body.contains(variable), "{variable}");
        }
    }
    let script = provision(USER, &keys(), "x'; touch /tmp/pwned; '").expect("valid input");
    assert!(script.contains(r"PASSPORT_REQUEST='x'\''; touch /tmp/pwned; '\'''"));
    assert_eq!(script.matches("touch /tmp/pwned").count(), 1);
}

#[test]
fn invalid_inputs_are_rejected_with_clear_messages() {
    let err = provision("root", &keys(), "a/b").expect_err("bad username");
    assert_eq!(
        err.to_string(),
        "username \"root\" is not a passport username (rs-<8 hex>[-<suffix>])"
    );
    assert_eq!(provision(USER, &[], "a/b"), Err(ScriptError::NoCaKeys));
    let bad = vec![ED25519.to_owned(), "ssh-ed25519 not-base64".to_owned()];
    let err = provision(USER, &bad, "a/b").expect_err("bad key");
    assert_eq!(
        err.to_string(),
        "CA public key 2 is not an OpenSSH public key line"
    );
    for junk in [
        "",
        "garbage",
        "cert-authority ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti",
        &format!("{ED25519}\n{RSA_3072}"),
        &format!("{ED25519} '$(id)'\nrm -rf /"),
        &ED25519.replace("ssh-ed25519", "ssh-rsa"),
    ] {
        assert_eq!(
            provision(USER, &[junk.to_owned()], "a/b"),
            Err(ScriptError::InvalidCaKey { index: 1 })
        );
    }
    let err = provision(USER, &keys(), "a\0b").expect_err("NUL");
    assert_eq!(err.to_string(), "field request contains a NUL byte");
    let long = "x".repeat(super::super::MAX_REQUEST_LEN + 1);
    assert!(matches!(
        provision(USER, &keys(), &long),
        Err(ScriptError::TooLong { field: "request", .. })
    ));
    assert!(linux_revoke_script("rs-5f3a9c21; reboot", HOLDER).is_err());
    let err = linux_revoke_script(USER, "A-B").expect_err("upper case");
    assert_eq!(
        err.to_string(),
        "field holder \"A-B\" is not a Kubernetes UID (1 to 64 characters of 0-9, a-z and -)"
    );
}

#[test]
fn host_keys_are_extracted_and_junk_ignored() {
    let stdout = format!(
        "passport: created user rs-5f3a9c21\n\
         {ED25519}\n\
         {HOST_KEYS_BEGIN}\n\
         {ED25519}\n\
         {ECDSA_P256}\r\n\
         \n\
         not a key\n\
         ssh-ed25519 AAAAtruncated\n\
         ssh-ed25519\n\
         foo-bar AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti\n\
         {ED25519}\n\
         {RSA_3072}\n\
         {HOST_KEYS_END}\n\
         {RSA_3072}\n\
         passport: user rs-5f3a9c21 is ready\n"
    );
    let keys = parse_host_keys(&stdout);
    let strip = |k: &str| algorithm_and_data(k).expect("two fields");
    assert_eq!(keys, vec![strip(ED25519), strip(ECDSA_P256), strip(RSA_3072)]);
    assert!(parse_host_keys("no markers here\n").is_empty());
    assert!(parse_host_keys(&format!("{HOST_KEYS_BEGIN}\n{HOST_KEYS_END}\n")).is_empty());
    // Truncated output: keys before the cut still count, a cut line does not.
    let truncated = format!("{HOST_KEYS_BEGIN}\n{ED25519}\n{}", &RSA_3072[..200]);
    assert_eq!(parse_host_keys(&truncated), vec![strip(ED25519)]);
    // A later section wins over one printed earlier (e.g. by something else on the host).
    let two = format!(
        "{HOST_KEYS_BEGIN}\n{RSA_3072}\n{HOST_KEYS_END}\n{HOST_KEYS_BEGIN}\n{ED25519}\n{HOST_KEYS_END}\n"
    );
    assert_eq!(parse_host_keys(&two), vec![strip(ED25519)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Hostile request text is quoted, so the script still parses, and the text appears only
    /// in the PASSPORT_REQUEST assignment.
    #[test]
    fn hostile_requests_stay_data(request in hostile_string()) {
        match provision(USER, &keys(), &request) {
            Err(err) => prop_assert!(matches!(err, ScriptError::TooLong { .. }), "{}", err),
            Ok(script) => {
                let quoted = sh_quote("r", &request).expect("no NUL");
                let assignment = format!("\nPASSPORT_REQUEST={quoted}\n");
                prop_assert!(script.contains(&assignment));
                prop_assert_eq!(bash_syntax_error(&script), None);
            }
        }
    }

    #[test]
    fn hostile_usernames_and_keys_are_rejected(user in hostile_string(), key in hostile_string()) {
        prop_assume!(!super::super::is_passport_username(&user));
        prop_assert!(provision(&user, &keys(), "a/b").is_err());
        prop_assert!(linux_revoke_script(&user, HOLDER).is_err());
        prop_assert_eq!(provision(USER, &[key], "a/b"), Err(ScriptError::InvalidCaKey { index: 1 }));
    }

    /// A holder is a line key in the marker: anything but a Kubernetes UID is refused, and the
    /// error shows at most 64 characters of it.
    #[test]
    fn hostile_holders_are_rejected(holder in hostile_string()) {
        prop_assume!(!holder_is_valid(&holder));
        let shown: String = holder.chars().take(64).collect();
        let expected = Err(ScriptError::InvalidHolder(shown));
        let p = LinuxProvision {
            username: USER,
            ca_public_keys: &keys(),
            request: "a/b",
            holder: &holder,
            expires_at: EXPIRES_AT,
        };
        prop_assert_eq!(linux_provision_script(&p), expected.clone());
        prop_assert_eq!(linux_revoke_script(USER, &holder), expected);
    }

    /// Any expiry is refused or enters as one quoted assignment of digits: the whole seconds,
    /// never later than the request's expiry.
    #[test]
    fn any_expiry_enters_as_digits_or_is_refused(secs in any::<i64>(), nanos in 0..1_000_000_000i32) {
        let Ok(expires_at) = jiff::Timestamp::new(secs, nanos) else { return Ok(()) };
        let p = LinuxProvision {
            username: USER,
            ca_public_keys: &keys(),
            request: "a/b",
            holder: HOLDER,
            expires_at,
        };
        match linux_provision_script(&p) {
            Err(err) => prop_assert_eq!(err, ScriptError::InvalidExpiry(expires_at)),
            Ok(script) => {
                prop_assert!(expires_at.as_second() > 0);
                let assignment = format!("\nPASSPORT_EXPIRES_AT='{}'\n", expires_at.as_second());
                prop_assert!(script.contains(&assignment));
                prop_assert_eq!(script.matches("PASSPORT_EXPIRES_AT=").count(), 1);
            }
        }
    }

    #[test]
    fn valid_holders_enter_only_as_a_quoted_assignment(holder in "[0-9a-z-]{1,64}") {
        let script = linux_revoke_script(USER, &holder).expect("valid holder");
        let assignment = format!("\nPASSPORT_HOLDER='{holder}'\n");
        prop_assert!(script.contains(&assignment));
    }
}
