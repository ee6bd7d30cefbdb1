//! One principal per request, with its expiry, and the account's expiry as a backstop: run for real
//! in a [`Sandbox`].

use super::sandbox::{CONFIG_WITH_INCLUDE, CONFIG_WITHOUT_INCLUDE, Sandbox, provision_script_until};
use super::test_support::EXPIRES_AT;
use super::tests::{HOLDER, USER, stderr};
use crate::ssh_ca::request_principal;
use jiff::{SignedDuration, Timestamp};
use std::process::{Command, Output};

const OTHER: &str = "7d3e2c1b-0a9f-4e8d-8c7b-6a5f4e3d2c1b";
const PRINCIPALS: &str = "etc/ssh/passport/principals/rs-5f3a9c21";

fn ok(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
}

fn provision_until(sb: &Sandbox, holder: &str, expires_at: Timestamp, env: &[(&str, &str)]) {
    ok(&sb.run(&provision_script_until(USER, holder, "team-a/r", expires_at), env));
}

/// The principals line of `holder` as sshd 9.1 and later read it (UTC).
fn utc_line(holder: &str, expires_at: Timestamp) -> String {
    let when = expires_at.strftime("%Y%m%d%H%M%SZ");
    format!("expiry-time=\"{when}\" {}\n", request_principal(holder))
}

/// The expiry dates usermod was given, in order.
fn account_expiries(sb: &Sandbox) -> Vec<String> {
    sb.read("log")
        .lines()
        .filter_map(|l| l.strip_prefix("usermod --password * --expiredate "))
        .map(|rest| rest.split(' ').next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn each_holder_has_its_own_line_and_revoking_one_keeps_the_others() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    let later = EXPIRES_AT + SignedDuration::from_hours(30);
    provision_until(&sb, HOLDER, EXPIRES_AT, &[]);
    provision_until(&sb, OTHER, later, &[]);
    assert_eq!(
        sb.read(PRINCIPALS),
        utc_line(HOLDER, EXPIRES_AT) + &utc_line(OTHER, later)
    );
    // The account lasts as long as the latest holder, to the end of that (UTC) day.
    assert_eq!(account_expiries(&sb), ["2030-06-02", "2030-06-03"]);

    // The later holder goes first: the earlier one keeps its line and its expiry.
    ok(&sb.revoke(USER, OTHER, &[]));
    assert_eq!(sb.read(PRINCIPALS), utc_line(HOLDER, EXPIRES_AT));
    // A retried revoke changes nothing.
    ok(&sb.revoke(USER, OTHER, &[]));
    assert_eq!(sb.read(PRINCIPALS), utc_line(HOLDER, EXPIRES_AT));
    assert_eq!(sb.users(), ["root", USER]);

    ok(&sb.revoke(USER, HOLDER, &[]));
    assert!(!sb.exists(PRINCIPALS));
    assert_eq!(sb.users(), ["root"]);
}

#[test]
fn provisioning_again_with_a_later_expiry_moves_it_and_never_back() {
    let sb = Sandbox::new(CONFIG_WITHOUT_INCLUDE);
    provision_until(&sb, OTHER, EXPIRES_AT, &[]);
    provision_until(&sb, HOLDER, EXPIRES_AT, &[]);
    // An extension: the holder's line moves, the other one's stays; the order of holders too.
    let extended = EXPIRES_AT + SignedDuration::from_hours(11);
    provision_until(&sb, HOLDER, extended, &[]);
    assert_eq!(
        sb.read(PRINCIPALS),
        utc_line(OTHER, EXPIRES_AT) + &utc_line(HOLDER, extended)
    );
    assert_eq!(
        sb.read(&format!("state/users/{USER}"))
            .matches(&format!("expires={HOLDER} "))
            .count(),
        1
    );
    // A provisioning command delivered late, with the expiry from before the extension.
    provision_until(&sb, HOLDER, EXPIRES_AT, &[]);
    assert_eq!(
        sb.read(PRINCIPALS),
        utc_line(OTHER, EXPIRES_AT) + &utc_line(HOLDER, extended)
    );
    assert_eq!(
        account_expiries(&sb),
        ["2030-06-02", "2030-06-02", "2030-06-03", "2030-06-03"]
    );
}

#[test]
fn the_expiry_is_written_the_way_this_sshd_reads_it() {
    // OpenSSH 7.7 to 9.0 read expiry-time in the system time zone (not a TZ the script inherited).
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    provision_until(
        &sb,
        HOLDER,
        EXPIRES_AT,
        &[("FAKE_SSHD_VERSION", "8.7p1"), ("TZ", "Pacific/Kiritimati")],
    );
    let local = Command::new("env")
        .args(["-u", "TZ", "date", "-d"])
        .arg(format!("@{}", EXPIRES_AT.as_second()))
        .arg("+%Y%m%d%H%M%S")
        .output()
        .expect("date");
    let local = String::from_utf8_lossy(&local.stdout).trim().to_owned();
    assert_eq!(
        sb.read(PRINCIPALS),
        format!("expiry-time=\"{local}\" passport-{HOLDER}\n")
    );

    // Before 7.7 sshd rejects the option and with it the line: principal only.
    let sb = Sandbox::new(CONFIG_WITHOUT_INCLUDE);
    provision_until(&sb, HOLDER, EXPIRES_AT, &[("FAKE_SSHD_VERSION", "7.4p1")]);
    assert_eq!(sb.read(PRINCIPALS), format!("passport-{HOLDER}\n"));
    assert_eq!(account_expiries(&sb), ["2030-06-02"]);
}

#[test]
fn holders_from_before_expiries_keep_their_principal_and_the_account_its_life() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    provision_until(&sb, HOLDER, EXPIRES_AT, &[]);
    // As the previous version left it: a holder without expiry, the username as the principal.
    sb.write(
        &format!("state/users/{USER}"),
        &format!("holder={OTHER} team-a/old\n"),
    );
    sb.write(PRINCIPALS, &format!("{USER}\n"));
    provision_until(&sb, HOLDER, EXPIRES_AT, &[]);
    assert_eq!(
        sb.read(PRINCIPALS),
        format!("passport-{OTHER}\n{}", utc_line(HOLDER, EXPIRES_AT))
    );
    // The old holder's end is unknown: the account does not expire.
    assert_eq!(account_expiries(&sb), ["2030-06-02", ""]);
}

#[test]
fn a_bad_expiry_never_reaches_a_script() {
    use super::{LinuxProvision, ScriptError, linux_provision_script};
    let keys = [super::test_support::ED25519.to_owned()];
    let before_1970 = Timestamp::UNIX_EPOCH - SignedDuration::from_secs(1);
    for bad in [Timestamp::UNIX_EPOCH, before_1970, Timestamp::MIN] {
        let p = LinuxProvision {
            username: USER,
            ca_public_keys: &keys,
            request: "a/b",
            holder: HOLDER,
            expires_at: bad,
        };
        assert!(
            matches!(linux_provision_script(&p), Err(ScriptError::InvalidExpiry(t)) if t == bad),
            "{bad}"
        );
    }
    // What the script gets is digits, and it refuses anything else (the header is the only input).
    let script = provision_script_until(USER, HOLDER, "a/b", EXPIRES_AT);
    assert!(
        script.contains("\nPASSPORT_EXPIRES_AT='1906549230'\n"),
        "{script}"
    );
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    for forged in ["''", "'1e9'", "'$(id)'", "' 1906549230'", "'0'"] {
        let out = sb.run(
            &script.replace(
                "PASSPORT_EXPIRES_AT='1906549230'",
                &format!("PASSPORT_EXPIRES_AT={forged}"),
            ),
            &[],
        );
        assert_eq!(out.status.code(), Some(super::EXIT_INVALID_INPUT), "{forged}");
    }
    assert_eq!(sb.users(), ["root"]);
}
