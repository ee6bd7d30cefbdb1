//! Runs the Linux scripts for real in a [`Sandbox`] and checks what they did.

use super::sandbox::{self, CONFIG_WITH_INCLUDE, CONFIG_WITHOUT_INCLUDE, Sandbox, exited};
use super::test_support::ED25519;
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
    assert_eq!(sb.marker(USER), format!("holder={HOLDER} team-a/cpu-alarm\n"));
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
    assert_eq!(
        sb.read(&format!("etc/ssh/passport/principals/{USER}")),
        format!("{USER}\n")
    );
    let dropin = sb.read("etc/ssh/sshd_config.d/50-passport.conf");
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
        log.contains(&format!("usermod --password * --expiredate  -- {USER}")),
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
    assert_eq!(sb.marker(USER), format!("holder={HOLDER} team-a/cpu-alarm\n"));
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
    let mut daemon = sb
        .command(&sb.path("bin/sshd").display().to_string(), &[])
        .arg("-D")
        .spawn()
        .expect("spawn");
    sb.write("sshd.pid", &format!("{}\n", daemon.id()));
    std::thread::sleep(Duration::from_millis(100)); // let the stub install its trap
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
    assert_eq!(
        sb.marker(USER),
        format!("holder={HOLDER} {}\n", request.replace('\n', "?"))
    );
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
