//! Holders (several requests sharing one user), the upgrade from markers written before holders
//! existed, and uid allocation, run for real in a [`Sandbox`].

use super::sandbox::{CONFIG_WITH_INCLUDE, Sandbox};
use super::tests::{HOLDER, USER, held, stderr, stdout};
use std::fs;

const OTHER: &str = "7d3e2c1b-0a9f-4e8d-8c7b-6a5f4e3d2c1b";
const PRINCIPALS: &str = "etc/ssh/passport/principals/rs-5f3a9c21";

fn ok(out: &std::process::Output) {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
}

/// Asserts that nothing changed or ended the user since the log was `log_before`.
fn untouched(sb: &Sandbox, log_before: &str) {
    let log = sb.read("log");
    let since = &log[log_before.len()..];
    for command in [
        "usermod", "pkill", "setpriv", "userdel", "groupdel", "crontab", "atrm", "ipcrm",
    ] {
        assert!(!since.contains(command), "{command} ran:\n{since}");
    }
}

#[test]
fn two_holders_share_the_user_until_the_last_one_goes() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    ok(&sb.provision(USER, HOLDER, "team-a/one", &[]));
    ok(&sb.provision(USER, OTHER, "team-a/two", &[]));
    assert_eq!(sb.read("log").matches("useradd").count(), 1);
    assert_eq!(
        sb.marker(USER),
        held(HOLDER, "team-a/one") + &held(OTHER, "team-a/two")
    );

    let line = |holder: &str| format!("expiry-time=\"20300601130030Z\" passport-{holder}\n");
    assert_eq!(sb.read(PRINCIPALS), line(HOLDER) + &line(OTHER));
    let log = sb.read("log");
    let out = sb.revoke(USER, HOLDER, &[]);
    ok(&out);
    assert!(
        stdout(&out).contains("passport: user rs-5f3a9c21 kept: still held by 1 other request(s)"),
        "{}",
        stdout(&out)
    );
    // The other request still logs in: account and CA untouched, its principal line kept; the
    // revoked request's certificates no longer log in.
    assert_eq!(sb.users(), ["root", USER]);
    assert_eq!(sb.read(PRINCIPALS), line(OTHER));
    assert!(sb.exists("etc/ssh/passport/ca.pub"));
    untouched(&sb, &log);
    assert_eq!(sb.marker(USER), held(OTHER, "team-a/two"));

    ok(&sb.revoke(USER, OTHER, &[]));
    assert_eq!(sb.users(), ["root"]);
    assert!(!sb.exists(PRINCIPALS) && !sb.exists(&format!("state/users/{USER}")));
}

#[test]
fn provisioning_twice_lists_the_holder_once() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    ok(&sb.provision(USER, HOLDER, "team-a/one", &[]));
    ok(&sb.provision(USER, OTHER, "team-a/two", &[]));
    ok(&sb.provision(USER, HOLDER, "team-a/one", &[]));
    assert_eq!(
        sb.marker(USER),
        held(OTHER, "team-a/two") + &held(HOLDER, "team-a/one")
    );
}

#[test]
fn revoking_a_holder_that_is_not_listed_changes_nothing() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    ok(&sb.provision(USER, HOLDER, "team-a/one", &[]));
    ok(&sb.provision(USER, OTHER, "team-a/two", &[]));
    let marker = sb.marker(USER);
    let log = sb.read("log");
    let out = sb.revoke(USER, "ffffffff-0000-4000-8000-000000000000", &[]);
    ok(&out);
    assert!(stdout(&out).contains("still held by 2 other request(s)"));
    assert_eq!(sb.marker(USER), marker);
    untouched(&sb, &log);

    // A retried revoke: the holder is gone already, the other one stays.
    ok(&sb.revoke(USER, OTHER, &[]));
    let log = sb.read("log");
    let out = sb.revoke(USER, OTHER, &[]);
    ok(&out);
    assert!(stdout(&out).contains("still held by 1 other request(s)"));
    assert_eq!(sb.marker(USER), held(HOLDER, "team-a/one"));
    untouched(&sb, &log);
    ok(&sb.revoke(USER, HOLDER, &[]));
    assert_eq!(sb.users(), ["root"]);
}

/// A user as an older passport version left it: default uid and group, marker `request=...`.
fn old_version_user(sb: &Sandbox) {
    sb.write(
        "passwd",
        &format!("root:x:0:0::/root:/bin/bash\n{USER}:x:1001:1001:passport:/home/{USER}:/bin/bash\n"),
    );
    sb.write("group", &format!("root:x:0:\n{USER}:x:1001:\n"));
    for dir in ["state/users", "etc/ssh/passport/principals"] {
        fs::create_dir_all(sb.path(dir)).expect("sandbox dir");
    }
    sb.write(&format!("state/users/{USER}"), "request=team-a/old\n");
    sb.write(PRINCIPALS, USER);
}

#[test]
fn an_old_marker_is_one_unknown_holder_released_by_a_revoke() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    old_version_user(&sb);
    ok(&sb.revoke(USER, HOLDER, &[]));
    assert_eq!(sb.users(), ["root"]);
    assert_eq!(sb.groups(), ["root"]);
    assert!(!sb.exists(PRINCIPALS));
}

#[test]
fn an_old_marker_is_adopted_by_provisioning_the_request_it_names() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    old_version_user(&sb);
    ok(&sb.provision(USER, HOLDER, "team-a/old", &[]));
    assert_eq!(sb.marker(USER), held(HOLDER, "team-a/old"));
    // The existing account keeps its uid.
    assert!(!sb.read("log").contains("useradd"));
    assert_eq!(sb.ids(USER), Some((1001, 1001)));
    ok(&sb.revoke(USER, HOLDER, &[]));
    assert_eq!(sb.users(), ["root"]);
}

#[test]
fn an_old_marker_outlives_newer_holders_until_its_request_ends() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    old_version_user(&sb);
    ok(&sb.provision(USER, OTHER, "team-a/new", &[]));
    assert_eq!(
        sb.marker(USER),
        format!("request=team-a/old\n{}", held(OTHER, "team-a/new"))
    );
    // The new request ends, twice (a retry): the request from before the upgrade still holds.
    for _ in 0..2 {
        let out = sb.revoke(USER, OTHER, &[]);
        ok(&out);
        assert!(stdout(&out).contains("still held by 1 other request(s)"));
        assert_eq!(sb.users(), ["root", USER]);
    }
    assert_eq!(sb.marker(USER), format!("request=team-a/old\nreleased={OTHER}\n"));
    // A holder the marker never saw is the request from before the upgrade.
    ok(&sb.revoke(USER, HOLDER, &[]));
    assert_eq!(sb.users(), ["root"]);
}

#[test]
fn uids_are_never_handed_out_twice() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    let second = "rs-0000abcd";
    ok(&sb.provision(USER, HOLDER, "a/b", &[]));
    assert_eq!(sb.ids(USER), Some((2_000_000_000, 2_000_000_000)));
    ok(&sb.revoke(USER, HOLDER, &[]));
    ok(&sb.provision(second, OTHER, "a/c", &[]));
    assert_eq!(sb.ids(second), Some((2_000_000_001, 2_000_000_001)));
    // Provisioning an existing user keeps its uid; a new account of the first name gets a new one.
    ok(&sb.provision(second, OTHER, "a/c", &[]));
    assert_eq!(sb.ids(second), Some((2_000_000_001, 2_000_000_001)));
    // (A new request: the revoked one is never provisioned again.)
    ok(&sb.provision(USER, "0f-third", "a/b", &[]));
    assert_eq!(sb.ids(USER), Some((2_000_000_002, 2_000_000_002)));
    assert_eq!(sb.read("state/next-uid"), "2000000003\n");
}

#[test]
fn uid_allocation_skips_numbers_in_use() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    sb.write(
        "passwd",
        "root:x:0:0::/root:/bin/bash\nsvc:x:5000:5000::/:/bin/false\n",
    );
    sb.write("group", "root:x:0:\nsvc:x:5000:\ndevs:x:5001:\n");
    // A mark below the range start counts for nothing.
    sb.write("state/next-uid", "42\n");
    ok(&sb.provision(USER, HOLDER, "a/b", &[("PASSPORT_UID_MIN", "5000")]));
    assert_eq!(sb.ids(USER), Some((5002, 5002)));
    assert_eq!(sb.read("state/next-uid"), "5003\n");
}

#[test]
fn uid_allocation_refuses_to_guess() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    sb.write("state/next-uid", "garbage\n");
    let out = sb.provision(USER, HOLDER, "a/b", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is corrupt"), "{}", stderr(&out));
    assert_eq!(sb.users(), ["root"]);
    assert!(!sb.exists(&format!("state/users/{USER}")));

    let out = sb.provision(USER, HOLDER, "a/b", &[("PASSPORT_UID_MIN", "12")]);
    assert_eq!(out.status.code(), Some(super::EXIT_INVALID_INPUT));

    // A group of the user's name (not passport's to take over): nothing is created, but the number
    // is used up all the same.
    sb.write("state/next-uid", "2000000000\n");
    sb.write("group", &format!("root:x:0:\n{USER}:x:777:\n"));
    let out = sb.provision(USER, HOLDER, "a/b", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("groupadd failed"), "{}", stderr(&out));
    assert_eq!(sb.users(), ["root"]);
    assert!(!sb.exists(&format!("state/users/{USER}")));
    assert_eq!(sb.read("state/next-uid"), "2000000001\n");
}
