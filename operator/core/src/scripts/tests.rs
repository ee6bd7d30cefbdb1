//! Runs the Linux scripts for real in a [`Sandbox`] and checks what they did.

use super::sandbox::{self, CONFIG_WITH_INCLUDE, CONFIG_WITHOUT_INCLUDE, Sandbox, exited};
use super::test_support::{ED25519, EXPIRES_AT};
use super::{LinuxProvision, linux_provision_script, linux_revoke_script, parse_host_keys};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub(super) const USER: &str = "rs-5f3a9c21";
pub(super) const HOLDER: &str = "0b9c1f5e-3d2a-4c8b-9e7f-6a5d4c3b2a10";

fn provision_script(request: &str) -> String {
    sandbox::provision_script(USER, HOLDER, request)
}

/// The marker lines of `holder` provisioned for `request` until [`EXPIRES_AT`].
pub(super) fn held(holder: &str, request: &str) -> String {
    format!(
        "holder={holder} {request}\nexpires={holder} {}\n",
        EXPIRES_AT.as_second()
    )
}

pub(super) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(super) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn provision_creates_the_user_and_its_trust() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    let out = sb.run(&provision_script("team-a/cpu-alarm"), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(sb.users(), ["root", USER]);
    assert_eq!(sb.marker(USER), held(HOLDER, "team-a/cpu-alarm"));
    let marker_mode = fs::metadata(sb.path(&format!("state/users/{USER}")))
        .expect("marker")
        .permissions()
        .mode();
    assert_eq!(marker_mode & 0o777, 0o600);
    let ca = sb.read("etc/ssh/passport/ca.pub");
    assert_eq!(ca.lines().count(), 2, "{ca}");
    assert!(
        ca.starts_with("ssh-ed25519 AAAA") && !ca.contains("user@example.com"),
        "{ca}"
    );
    assert_eq!(
        fs::metadata(sb.path("etc/ssh/passport/ca.pub"))
            .expect("ca")
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    // The request's own principal, ending when the request does (sshd 9.2: in UTC).
    assert_eq!(
        sb.read(&format!("etc/ssh/passport/principals/{USER}")),
        format!("expiry-time=\"20300601130030Z\" passport-{HOLDER}\n")
    );
    let dropin = sb.read("etc/ssh/sshd_config.d/50-passport.conf");
    // Certificates are the only way in for passport's users.
    for line in [
        "AuthorizedPrincipalsCommand none",
        "AuthorizedKeysFile none",
        "AuthorizedKeysCommand none",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "HostbasedAuthentication no",
        "GSSAPIAuthentication no",
    ] {
        assert!(dropin.contains(&format!("\n    {line}\n")), "{line}: {dropin}");
    }
    let ssh_dir = sb.path("etc/ssh").display().to_string();
    assert!(dropin.contains("Match User rs-*\n"), "{dropin}");
    assert!(
        dropin.contains(&format!("    TrustedUserCAKeys {ssh_dir}/passport/ca.pub\n")),
        "{dropin}"
    );
    assert!(dropin.contains(&format!(
        "    AuthorizedPrincipalsFile {ssh_dir}/passport/principals/%u\n"
    )));
    // With an Include, sshd_config itself is left alone.
    assert!(!sb.read("etc/ssh/sshd_config").contains("passport"));
    let log = sb.read("log");
    // Its own group and uid, both the first number of passport's range.
    assert!(
        log.contains(&format!("groupadd --gid 2000000000 -- {USER}")),
        "{log}"
    );
    assert!(log.contains(&format!(
        "useradd --create-home --shell /bin/bash --uid 2000000000 --gid 2000000000 --no-log-init \
         --comment passport -- {USER}"
    )));
    assert_eq!(sb.ids(USER), Some((2_000_000_000, 2_000_000_000)));
    assert_eq!(sb.groups(), ["root", USER]);
    assert!(
        log.contains(&format!("usermod --password * --expiredate 2030-06-02 -- {USER}")),
        "{log}"
    );
    assert!(log.contains("sshd -t -f"));
    let keys = parse_host_keys(&stdout(&out));
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter().any(|k| k.starts_with("ssh-ed25519 ")) && keys.iter().any(|k| k.starts_with("ssh-rsa "))
    );
    assert!(sb.leftovers().is_empty(), "{:?}", sb.leftovers());

    // Idempotent: a second run succeeds without creating the user again.
    let again = sb.run(&provision_script("team-a/cpu-alarm"), &[]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(sb.users(), ["root", USER]);
    assert_eq!(sb.read("log").matches("useradd").count(), 1);
    assert_eq!(parse_host_keys(&stdout(&again)), keys);
    assert_eq!(sb.marker(USER), held(HOLDER, "team-a/cpu-alarm"));
}

#[test]
fn provision_never_touches_a_user_passport_did_not_create() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    sb.write(
        "passwd",
        &format!("root:x:0:0::/root:/bin/bash\n{USER}:x:1500:1500::/home/x:/bin/sh\n"),
    );
    let out = sb.run(&provision_script("a/b"), &[]);
    assert_eq!(out.status.code(), Some(super::EXIT_FOREIGN_USER));
    assert!(
        stderr(&out).contains("was not created by passport"),
        "{}",
        stderr(&out)
    );
    assert!(!sb.read("log").contains("usermod") && !sb.exists("etc/ssh/passport/ca.pub"));
}

#[test]
fn provision_appends_one_marked_block_without_include() {
    let sb = Sandbox::new(CONFIG_WITHOUT_INCLUDE);
    for _ in 0..2 {
        assert_eq!(sb.run(&provision_script("a/b"), &[]).status.code(), Some(0));
    }
    let config = sb.read("etc/ssh/sshd_config");
    assert!(config.starts_with(CONFIG_WITHOUT_INCLUDE), "{config}");
    assert_eq!(config.matches("# BEGIN passport").count(), 1, "{config}");
    assert_eq!(config.matches("Match User rs-*").count(), 1, "{config}");
    assert!(config.ends_with("Match all\n# END passport\n"), "{config}");
    assert!(!sb.exists("etc/ssh/sshd_config.d/50-passport.conf"));
    assert!(sb.leftovers().is_empty(), "{:?}", sb.leftovers());
}

#[test]
fn rejected_sshd_config_is_rolled_back() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    let before = sb.read("etc/ssh/sshd_config");
    let out = sb.run(&provision_script("a/b"), &[("FAKE_SSHD", "reject-passport")]);
    assert_eq!(out.status.code(), Some(super::EXIT_SSHD_CONFIG));
    assert!(stderr(&out).contains("rolled back") && stderr(&out).contains("Bad configuration option"));
    assert!(!sb.exists("etc/ssh/sshd_config.d/50-passport.conf"));
    assert_eq!(sb.read("etc/ssh/sshd_config"), before);
    assert!(sb.leftovers().is_empty(), "{:?}", sb.leftovers());
    assert!(!sb.read("log").contains("systemctl reload"));

    // Without Include, the edited sshd_config is restored byte for byte.
    let sb = Sandbox::new(CONFIG_WITHOUT_INCLUDE);
    let out = sb.run(&provision_script("a/b"), &[("FAKE_SSHD", "reject-passport")]);
    assert_eq!(out.status.code(), Some(super::EXIT_SSHD_CONFIG));
    assert_eq!(sb.read("etc/ssh/sshd_config"), CONFIG_WITHOUT_INCLUDE);
    assert!(sb.leftovers().is_empty(), "{:?}", sb.leftovers());
}

#[test]
fn an_already_broken_sshd_config_is_left_alone() {
    let sb = Sandbox::new(CONFIG_WITHOUT_INCLUDE);
    let out = sb.run(&provision_script("a/b"), &[("FAKE_SSHD", "reject-always")]);
    assert_eq!(out.status.code(), Some(super::EXIT_SSHD_CONFIG));
    assert!(
        stderr(&out).contains("invalid before any change"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sb.read("etc/ssh/sshd_config"), CONFIG_WITHOUT_INCLUDE);
    // Checked before anything else changes: no account, no CA file.
    assert_eq!(sb.users(), ["root"]);
    assert!(!sb.exists("etc/ssh/passport/ca.pub"));
}

#[test]
fn sshd_is_reloaded_through_its_pid_file_without_systemd() {
    if Path::new("/run/systemd/system").exists() {
        // With systemd the script reloads the unit instead; the stub systemctl just logs it.
        let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
        sb.write("unit-active", "");
        assert_eq!(sb.run(&provision_script("a/b"), &[]).status.code(), Some(0));
        assert!(sb.read("log").contains("systemctl reload ssh.service"));
        return;
    }
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    // SIGHUP back to its default first: a shell cannot trap a signal ignored when it started, and a
    // test run under nohup hands its children SIGHUP ignored.
    let mut daemon = sb
        .command("env", &[])
        .arg("--default-signal=HUP")
        .arg(sb.path("bin/sshd"))
        .arg("-D")
        .spawn()
        .expect("spawn");
    sb.write("sshd.pid", &format!("{}\n", daemon.id()));
    // Not a fixed sleep: on a loaded machine the stub may take longer to install its trap.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sb.exists("sshd-ready") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = sb.run(&provision_script("a/b"), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("sent SIGHUP to sshd"), "{}", stdout(&out));
    assert!(exited(&mut daemon), "sshd stub did not get SIGHUP");
    assert_eq!(sb.read("hup"), "hup\n");

    // A stale pid file naming some other process: that process is not signalled.
    let mut other = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
    sb.write("sshd.pid", &format!("{}\n", other.id()));
    let out = sb.run(&provision_script("a/b"), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("no running sshd found"), "{}", stdout(&out));
    assert!(
        other.try_wait().expect("poll").is_none(),
        "unrelated process was signalled"
    );
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn revoke_removes_the_user_but_keeps_shared_configuration() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    assert_eq!(sb.run(&provision_script("a/b"), &[]).status.code(), Some(0));
    let revoke = linux_revoke_script(USER, HOLDER).expect("valid");
    let out = sb.run(&revoke, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(sb.users(), ["root"]);
    assert_eq!(sb.groups(), ["root"], "the user's own group goes too");
    assert!(!sb.exists(&format!("state/users/{USER}")));
    assert!(!sb.exists(&format!("etc/ssh/passport/principals/{USER}")));
    assert!(sb.exists("etc/ssh/passport/ca.pub") && sb.exists("etc/ssh/sshd_config.d/50-passport.conf"));
    let log = sb.read("log");
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in log:\n{log}"))
    };
    assert!(at(&format!("usermod --expiredate 1 -- {USER}")) < at(&format!("pkill -KILL -u {USER}")));
    assert!(at("pkill -KILL") < at(&format!("userdel --remove -- {USER}")));

    // Idempotent: the user is gone, so there is nothing to do.
    let again = sb.run(&revoke, &[]);
    assert_eq!(again.status.code(), Some(0));
    assert!(stdout(&again).contains("nothing to revoke"));
}

#[test]
fn revoke_never_touches_a_user_passport_did_not_create() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    sb.write("passwd", &format!("{USER}:x:1500:1500::/home/x:/bin/sh\n"));
    let out = sb.revoke(USER, HOLDER, &[]);
    assert_eq!(out.status.code(), Some(super::EXIT_FOREIGN_USER));
    assert_eq!(sb.users(), [USER]);
    assert!(!sb.read("log").contains("pkill") && !sb.read("log").contains("userdel"));
}

#[test]
fn revoke_fails_rather_than_delete_a_user_with_surviving_processes() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    assert_eq!(sb.run(&provision_script("a/b"), &[]).status.code(), Some(0));
    sb.write("procs", "");
    let out = sb.revoke(USER, HOLDER, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("still running"));
    assert_eq!(sb.read("log").matches("pkill -KILL -u").count(), 10);
    assert_eq!(
        sb.read("log").matches("pkill -KILL -U").count(),
        10,
        "by real uid too"
    );
    assert!(!sb.read("log").contains("userdel"));
}

#[test]
fn scripts_refuse_bad_environments() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    let out = sb.run(&provision_script("a/b"), &[("FAKE_UID", "1000")]);
    assert_eq!(out.status.code(), Some(super::EXIT_INVALID_INPUT));
    assert!(stderr(&out).contains("must run as root"));
    // The script's own username check, should a bad name ever get past the Rust side.
    let revoke = linux_revoke_script(USER, HOLDER).expect("valid");
    let out = sb.run(&revoke.replace(&format!("'{USER}'"), "'root'"), &[]);
    assert_eq!(out.status.code(), Some(super::EXIT_INVALID_INPUT));
    assert!(stderr(&out).contains("not a passport username"));
    // Likewise the holder, a line key of the marker.
    let out = sb.run(&revoke.replace(&format!("'{HOLDER}'"), "'x y'"), &[]);
    assert_eq!(out.status.code(), Some(super::EXIT_INVALID_INPUT));
    assert!(stderr(&out).contains("not a Kubernetes UID"), "{}", stderr(&out));
    let out = sb.run(
        &provision_script("a/b"),
        &[("PASSPORT_SSHD", "/nonexistent/sshd")],
    );
    assert_eq!(out.status.code(), Some(super::EXIT_INVALID_INPUT));
    assert_eq!(sb.users(), ["root"]);
}

#[test]
fn hostile_request_is_stored_on_one_line_and_never_run() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    let request = "x'; touch \"$FAKE_ROOT/pwned1\"; '$(touch \"$FAKE_ROOT/pwned2\")`touch pwned3`\n\u{2019}";
    let out = sb.run(&provision_script(request), &[]);
    assert_eq!(out.status.code(), Some(0));
    // Verbatim but for control characters, which could otherwise forge a holder line.
    assert_eq!(sb.marker(USER), held(HOLDER, &request.replace('\n', "?")));
    assert!(!sb.exists("pwned1") && !sb.exists("pwned2") && !Path::new("pwned3").exists());
    assert!(
        !stdout(&out).contains("touch"),
        "request text must not reach stdout"
    );
}

#[test]
fn started_by_sh_the_script_reruns_itself_under_bash() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    let out = sb.run_with("sh", &provision_script("a/b"), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(sb.users(), ["root", USER]);
}

#[test]
fn concurrent_provisions_are_serialised_and_all_succeed() {
    let sb = Sandbox::new(CONFIG_WITHOUT_INCLUDE);
    let keys = [ED25519.to_owned()];
    let children: Vec<_> = ["rs-00000001", "rs-00000002", "rs-00000003"]
        .into_iter()
        .map(|username| {
            let p = LinuxProvision {
                username,
                ca_public_keys: &keys,
                request: "a/b",
                holder: HOLDER,
                expires_at: EXPIRES_AT,
            };
            let file = format!("{username}.sh");
            sb.write(&file, &linux_provision_script(&p).expect("valid"));
            let mut cmd = sb.command("bash", &[]);
            cmd.arg(sb.path(&file))
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success());
    }
    assert_eq!(sb.users().len(), 4);
    // Each got a uid of its own.
    let mut uids: Vec<u32> = sb.users()[1..]
        .iter()
        .filter_map(|u| sb.ids(u))
        .map(|(uid, _)| uid)
        .collect();
    uids.sort_unstable();
    assert_eq!(uids, [2_000_000_000, 2_000_000_001, 2_000_000_002]);
    assert_eq!(
        sb.read("etc/ssh/sshd_config").matches("# BEGIN passport").count(),
        1
    );
    assert!(sb.leftovers().is_empty(), "{:?}", sb.leftovers());
}

const SECOND: &str = "7d3e2c1b-0a9f-4e8d-8c7b-6a5f4e3d2c1b";

fn tombstone(holder: &str) -> String {
    format!("state/revoked/{holder}")
}

/// Asserts that `out` is the refusal to provision a revoked `holder`.
fn refused_as_revoked(out: &Output, holder: &str) {
    assert_eq!(out.status.code(), Some(super::EXIT_REVOKED), "{}", stderr(out));
    assert_eq!(
        stderr(out),
        format!(
            "passport: request {holder} was already revoked on this host; refusing to provision it again\n"
        )
    );
    assert!(stdout(out).is_empty(), "{}", stdout(out));
}

#[test]
fn a_late_provisioning_after_its_revoke_changes_nothing() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    assert_eq!(sb.provision(USER, HOLDER, "a/b", &[]).status.code(), Some(0));
    assert_eq!(sb.revoke(USER, HOLDER, &[]).status.code(), Some(0));
    assert_eq!(sb.read(&tombstone(HOLDER)), format!("{USER}\n"));
    let mode = fs::metadata(sb.path(&tombstone(HOLDER)))
        .expect("tombstone")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (config, log) = (sb.read("etc/ssh/sshd_config"), sb.read("log"));

    refused_as_revoked(&sb.provision(USER, HOLDER, "a/b", &[]), HOLDER);
    assert_eq!(sb.users(), ["root"], "the user is not created again");
    assert_eq!(sb.groups(), ["root"]);
    assert!(
        !sb.exists(&format!("state/users/{USER}")),
        "no marker, no holder line"
    );
    assert!(!sb.exists(&format!("etc/ssh/passport/principals/{USER}")));
    assert_eq!(sb.read("etc/ssh/sshd_config"), config);
    // Nothing but the script's check that it runs as root (not even sshd -t).
    assert_eq!(sb.read("log"), format!("{log}id -u\n"));
    assert_eq!(sb.read("state/next-uid"), "2000000001\n", "no uid used up");
    assert!(sb.leftovers().is_empty(), "{:?}", sb.leftovers());
}

#[test]
fn a_late_provisioning_adds_no_holder_to_a_user_others_still_hold() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    assert_eq!(sb.provision(USER, HOLDER, "a/one", &[]).status.code(), Some(0));
    assert_eq!(sb.provision(USER, SECOND, "a/two", &[]).status.code(), Some(0));
    assert_eq!(sb.revoke(USER, HOLDER, &[]).status.code(), Some(0));
    let marker = sb.marker(USER);
    assert_eq!(marker, held(SECOND, "a/two"));
    let log = sb.read("log");

    refused_as_revoked(&sb.provision(USER, HOLDER, "a/one", &[]), HOLDER);
    assert_eq!(sb.marker(USER), marker, "no holder line added");
    assert_eq!(sb.read("log"), format!("{log}id -u\n"));
    // The last holder still removes the user; nothing holds it any more.
    assert_eq!(sb.revoke(USER, SECOND, &[]).status.code(), Some(0));
    assert_eq!(sb.users(), ["root"]);
}

#[test]
fn a_revoke_leaves_a_tombstone_even_with_nothing_to_revoke() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    // The revoke overtakes its provisioning command: there is no user yet.
    let out = sb.revoke(USER, HOLDER, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("nothing to revoke"), "{}", stdout(&out));
    assert_eq!(sb.read(&tombstone(HOLDER)), format!("{USER}\n"));

    refused_as_revoked(&sb.provision(USER, HOLDER, "a/b", &[]), HOLDER);
    assert_eq!(sb.users(), ["root"]);
    assert!(!sb.read("log").contains("useradd") && !sb.read("log").contains("groupadd"));

    // Another request of the same user is not affected by that tombstone.
    assert_eq!(sb.provision(USER, SECOND, "a/c", &[]).status.code(), Some(0));
    assert_eq!(sb.users(), ["root", USER]);
    assert_eq!(sb.marker(USER), held(SECOND, "a/c"));
    // A holder the marker does not list leaves its tombstone too, and the user stays.
    let third = "0f-not-listed";
    assert_eq!(sb.revoke(USER, third, &[]).status.code(), Some(0));
    assert!(sb.exists(&tombstone(third)));
    assert_eq!(sb.users(), ["root", USER]);
    refused_as_revoked(&sb.provision(USER, third, "a/d", &[]), third);
    assert_eq!(sb.marker(USER), held(SECOND, "a/c"));
}

#[test]
fn a_revoke_refused_for_a_foreign_user_still_leaves_its_tombstone() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    sb.write(
        "passwd",
        &format!("root:x:0:0::/root:/bin/bash\n{USER}:x:1500:1500::/home/x:/bin/sh\n"),
    );
    let out = sb.revoke(USER, HOLDER, &[]);
    assert_eq!(out.status.code(), Some(super::EXIT_FOREIGN_USER));
    assert!(sb.exists(&tombstone(HOLDER)));
}

#[test]
fn old_tombstones_are_pruned_by_any_revoke() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    // Written by a revoke, so the directory exists as a revoke makes it.
    assert_eq!(sb.revoke(USER, "0f-recent", &[]).status.code(), Some(0));
    let age = |rel: &str, days: u64| {
        let file = fs::File::options()
            .write(true)
            .open(sb.path(rel))
            .expect("open tombstone");
        let when = std::time::SystemTime::now() - Duration::from_secs(days * 24 * 3600);
        file.set_modified(when).expect("set mtime");
    };
    for (holder, days) in [("0f-old", 30), ("0f-week", 6), ("0f-recent", 0)] {
        sb.write(&tombstone(holder), "x\n");
        age(&tombstone(holder), days);
    }
    // A retried revoke renews its own tombstone however old it was.
    sb.write(&tombstone(HOLDER), "x\n");
    age(&tombstone(HOLDER), 30);
    // The user does not exist: pruning happens all the same.
    assert_eq!(sb.revoke(USER, HOLDER, &[]).status.code(), Some(0));
    assert!(!sb.exists(&tombstone("0f-old")));
    for holder in ["0f-week", "0f-recent", HOLDER] {
        assert!(sb.exists(&tombstone(holder)), "{holder} pruned");
    }
    assert_eq!(sb.read(&tombstone(HOLDER)), format!("{USER}\n"));
}

#[test]
fn revoke_kills_every_process_of_the_user_in_one_call_made_as_the_user() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    assert_eq!(sb.provision(USER, HOLDER, "a/b", &[]).status.code(), Some(0));
    assert_eq!(sb.revoke(USER, HOLDER, &[]).status.code(), Some(0));
    let log = sb.read("log");
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in log:\n{log}"))
    };
    // The numeric uid and gid of the account (the stub setpriv only logs its arguments).
    let setpriv = "setpriv --reuid=2000000000 --regid=2000000000 --clear-groups -- ";
    assert_eq!(log.matches(setpriv).count(), 1, "{log}");
    assert!(at(&format!("usermod --expiredate 1 -- {USER}")) < at(setpriv));
    assert!(at(setpriv) < at("pkill -KILL -u") && at("pkill -KILL -U") < at("userdel"));
    assert!(
        log.contains("\nkill -KILL -1 passport-kill 2000000000\n"),
        "{log}"
    );

    // Each of the attempts starts with it.
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    assert_eq!(sb.provision(USER, HOLDER, "a/b", &[]).status.code(), Some(0));
    sb.write("procs", "");
    assert_eq!(sb.revoke(USER, HOLDER, &[]).status.code(), Some(1));
    assert_eq!(sb.read("log").matches(setpriv).count(), 10);
}

/// A user of the given uid (as the passwd field reads), created by passport as far as the marker goes.
fn user_with_uid(uid: &str) -> Sandbox {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    sb.write(
        "passwd",
        &format!("root:x:0:0::/root:/bin/bash\n{USER}:x:{uid}:{uid}:passport:/home/{USER}:/bin/bash\n"),
    );
    fs::create_dir_all(sb.path("state/users")).expect("sandbox dir");
    sb.write(&format!("state/users/{USER}"), &format!("holder={HOLDER} a/b\n"));
    sb
}

#[test]
fn the_kill_as_the_user_never_runs_as_root() {
    for uid in ["0", "00", "0000000000", "-1", "4294967295", "", "1e3", " 7"] {
        let sb = user_with_uid(uid);
        let out = sb.revoke(USER, HOLDER, &[]);
        assert_eq!(out.status.code(), Some(1), "uid {uid:?}");
        assert!(stderr(&out).contains("unusable uid"), "{}", stderr(&out));
        let log = sb.read("log");
        assert!(
            !log.contains("setpriv") && !log.contains("pkill"),
            "uid {uid:?}: {log}"
        );
        assert_eq!(sb.users(), ["root", USER]);
    }
    // In the script text: the uid checks come first, and the step is skipped without setpriv.
    let revoke = linux_revoke_script(USER, HOLDER).expect("valid");
    let check = revoke
        .find("[[ $USER_UID =~ ^[1-9][0-9]{0,9}$ && $USER_GID =~ ^[0-9]{1,10}$ ]] && ((USER_UID < 4294967295)) ||")
        .expect("uid check");
    let sharing = revoke.find("is also the uid of").expect("shared uid check");
    let line = "setpriv --reuid=\"$USER_UID\" --regid=\"$USER_GID\" --clear-groups -- \\\n        \"$BASH\" -c \"$KILL_AS_USER\" passport-kill \"$USER_UID\"";
    let setpriv = revoke.find(line).expect("setpriv line");
    let call = revoke
        .find("do\n    kill_as_user\n")
        .expect("called in the kill loop");
    assert!(check < sharing && sharing < call && call < revoke.find("pkill -KILL -u").expect("pkill"));
    let guarded = &revoke[revoke.find("kill_as_user() {").expect("function")..setpriv];
    assert!(
        guarded.contains("command -v setpriv >/dev/null 2>&1 || return 0"),
        "{guarded}"
    );
    assert!(guarded.contains("((USER_UID > 0)) || return 0"), "{guarded}");
}

/// The body the user's shell runs, with the kill replaced by a harmless echo.
fn kill_as_user_dry_run() -> String {
    let revoke = linux_revoke_script(USER, HOLDER).expect("valid");
    let start = revoke.find("KILL_AS_USER='").expect("body") + "KILL_AS_USER='".len();
    let body = &revoke[start..];
    let body = &body[..body.find('\'').expect("end of body")];
    assert!(body.ends_with("\nkill -KILL -1"), "{body}");
    body.replace("kill -KILL -1", "echo would-kill")
}

#[test]
fn the_shell_run_as_the_user_checks_who_it_is_before_it_kills() {
    let body = kill_as_user_dry_run();
    let run = |cmd: &mut Command| cmd.output().expect("run");
    // Run as root (these tests usually are), or as whoever runs them, for somebody else's uid: refused.
    let me = String::from_utf8(run(Command::new("id").arg("-u")).stdout).expect("uid");
    for uid in ["0", "2000000000", me.trim()] {
        if uid == me.trim() && uid != "0" {
            continue;
        }
        let out = run(Command::new("bash").args(["-c", &body, "passport-kill", uid]));
        assert_eq!(out.status.code(), Some(1), "uid {uid}");
        assert!(out.stdout.is_empty(), "uid {uid}");
    }
    // As a throwaway uid, through the real setpriv with the script's options, it would kill. (Only
    // the dry run is ever started; it signals nothing.)
    if me.trim() != "0" || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("not root or no setpriv: the run as another uid is skipped");
        return;
    }
    let uid = "2147000123";
    let out = run(Command::new("setpriv").args([
        &format!("--reuid={uid}"),
        &format!("--regid={uid}"),
        "--clear-groups",
        "--",
        "bash",
        "-c",
        &body,
        "passport-kill",
        uid,
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "would-kill\n", "{out:?}");
}

#[test]
fn without_setpriv_the_kill_loop_runs_as_before() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    sb.remove_stub("setpriv");
    let host = Command::new("bash")
        .args([
            "-c",
            "PATH=\"$PATH:/usr/local/sbin:/usr/sbin:/sbin\" command -v setpriv",
        ])
        .output()
        .is_ok_and(|out| out.status.success());
    if host {
        // The script would find the host's setpriv, and the sandbox never runs it.
        eprintln!("setpriv is installed on this host; the test without it is skipped");
        return;
    }
    assert_eq!(sb.provision(USER, HOLDER, "a/b", &[]).status.code(), Some(0));
    assert_eq!(sb.revoke(USER, HOLDER, &[]).status.code(), Some(0));
    assert!(sb.read("log").contains("pkill -KILL -u"));
    assert_eq!(sb.users(), ["root"]);
}
