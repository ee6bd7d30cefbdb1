//! What revoke removes besides the account when the last holder goes, run for real in a
//! [`Sandbox`]: files in the temporary directories, setuid and setgid files, at jobs and System V
//! IPC objects. Files owned by the test user are made with chown, which needs root; without it those
//! tests are skipped.

use super::sandbox::{CONFIG_WITH_INCLUDE, Sandbox};
use super::tests::{HOLDER, USER, stderr};
use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::process::{Command, Output};

/// Owner of "somebody else's" files.
const OTHER_UID: u32 = 1234;

/// A sandbox with the user provisioned, and its uid; `None` when files cannot be chowned.
fn provisioned() -> Option<(Sandbox, u32)> {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    if lchown(sb.path("passwd"), Some(OTHER_UID), None).is_err() {
        eprintln!("not root: cannot create files of other users; skipped");
        return None;
    }
    ok(&sb.provision(USER, HOLDER, "a/b", &[]));
    let (uid, _) = sb.ids(USER).expect("provisioned");
    Some((sb, uid))
}

fn ok(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
}

/// Creates file (or, with a trailing `/`, directory) `rel` owned by `uid` with `mode`.
fn owned(sb: &Sandbox, rel: &str, uid: u32, mode: u32) {
    let path = sb.path(rel.trim_end_matches('/'));
    fs::create_dir_all(path.parent().expect("parent")).expect("parents");
    if rel.ends_with('/') {
        fs::create_dir_all(&path).expect("dir");
    } else {
        fs::write(&path, "x").expect("file");
    }
    lchown(&path, Some(uid), Some(uid)).expect("chown");
    // After chown, which clears the setuid and setgid bits.
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn gone(sb: &Sandbox, rels: &[&str]) {
    for rel in rels {
        assert!(
            fs::symlink_metadata(sb.path(rel)).is_err(),
            "{rel} is still there"
        );
    }
}

fn kept(sb: &Sandbox, rels: &[&str]) {
    for rel in rels {
        assert!(fs::symlink_metadata(sb.path(rel)).is_ok(), "{rel} was removed");
    }
}

/// Whether the scripts would find `tool` on this host (outside the sandbox's stubs).
fn host_has(tool: &str) -> bool {
    Command::new("bash")
        .args([
            "-c",
            "PATH=\"$PATH:/usr/local/sbin:/usr/sbin:/sbin\" command -v \"$1\"",
            "_",
            tool,
        ])
        .output()
        .is_ok_and(|out| out.status.success())
}

#[test]
fn files_left_in_temporary_directories_go_with_the_last_holder() {
    let Some((sb, uid)) = provisioned() else { return };
    let mine = [
        "tmp/mine",
        "tmp/dir/",
        "tmp/dir/inner",
        "var/tmp/mine",
        "dev/shm/segment",
    ];
    let others = ["tmp/theirs", "tmp/shared/", "tmp/shared/theirs", "fs/target"];
    for rel in mine {
        owned(&sb, rel, uid, 0o700);
    }
    for rel in others {
        owned(&sb, rel, OTHER_UID, 0o700);
    }
    // A directory of the user holding a file of someone else: both stay.
    lchown(sb.path("tmp/shared"), Some(uid), Some(uid)).expect("chown");
    // The user's link to someone else's file: the link goes, never its target.
    symlink(sb.path("fs/target"), sb.path("tmp/link")).expect("symlink");
    lchown(sb.path("tmp/link"), Some(uid), Some(uid)).expect("chown link");
    // The directory searched itself is never removed, whoever owns it.
    lchown(sb.path("var/tmp"), Some(uid), Some(uid)).expect("chown dir");

    // Another request still holds the user: nothing is removed.
    ok(&sb.provision(USER, "0f-second", "a/c", &[]));
    ok(&sb.revoke(USER, HOLDER, &[]));
    kept(&sb, &mine);

    let out = sb.revoke(USER, "0f-second", &[]);
    ok(&out);
    gone(&sb, &mine);
    gone(&sb, &["tmp/link"]);
    kept(&sb, &others);
    kept(&sb, &["var/tmp"]);
    assert!(
        stderr(&out).contains("could not remove every file of rs-5f3a9c21"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sb.users(), ["root"]);
}

#[test]
fn setuid_and_setgid_files_of_the_user_are_removed() {
    let Some((sb, uid)) = provisioned() else { return };
    owned(&sb, "fs/usr/bin/suid", uid, 0o4755);
    owned(&sb, "fs/usr/bin/sgid", uid, 0o2755);
    owned(&sb, "fs/home/plain", uid, 0o755);
    owned(&sb, "fs/usr/bin/root-suid", 0, 0o4755);
    owned(&sb, "fs/usr/bin/other-suid", OTHER_UID, 0o4755);
    ok(&sb.revoke(USER, HOLDER, &[]));
    gone(&sb, &["fs/usr/bin/suid", "fs/usr/bin/sgid"]);
    // Only setuid and setgid files outside the temporary directories.
    kept(
        &sb,
        &["fs/home/plain", "fs/usr/bin/root-suid", "fs/usr/bin/other-suid"],
    );
}

#[test]
fn setuid_files_are_searched_on_the_local_filesystems_of_the_mount_table() {
    let Some((sb, uid)) = provisioned() else { return };
    let fs_dir = sb.path("fs").display().to_string();
    sb.write(
        "mounts",
        &format!(
            "/dev/nvme0n1p1 {fs_dir}/local ext4 rw,relatime 0 0\n\
             tmpfs {fs_dir}/with\\040space tmpfs rw 0 0\n\
             server:/export {fs_dir}/remote nfs4 rw 0 0\n\
             sysfs {fs_dir}/pseudo sysfs rw 0 0\n"
        ),
    );
    for dir in ["local", "with space", "remote", "pseudo"] {
        owned(&sb, &format!("fs/{dir}/suid"), uid, 0o4755);
    }
    ok(&sb.revoke(USER, HOLDER, &[("PASSPORT_SETUID_ROOTS", "")]));
    gone(&sb, &["fs/local/suid", "fs/with space/suid"]);
    kept(&sb, &["fs/remote/suid", "fs/pseudo/suid"]);
}

#[test]
fn at_jobs_of_the_user_are_removed() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    ok(&sb.provision(USER, HOLDER, "a/b", &[]));
    sb.write(
        "atq",
        &format!(
            "12\tSat Nov 29 10:00:00 2025 a {USER}\n\
             14\tSat Nov 29 10:30:00 2025 a alice\n\
             15\tSun Nov 30 08:00:00 2025 b {USER}\n"
        ),
    );
    ok(&sb.revoke(USER, HOLDER, &[]));
    let log = sb.read("log");
    assert!(log.contains("atrm 12\n") && log.contains("atrm 15\n"), "{log}");
    assert!(!log.contains("atrm 14"), "{log}");
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("{needle} not in {log}"))
    };
    assert!(at("pkill") < at("atrm") && at("atrm") < at("userdel"));

    // Without at, the step is skipped.
    if host_has("atq") {
        eprintln!("at is installed on this host; the test without it is skipped");
        return;
    }
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    sb.remove_stub("atq");
    ok(&sb.provision(USER, HOLDER, "a/b", &[]));
    ok(&sb.revoke(USER, HOLDER, &[]));
    assert!(!sb.read("log").contains("atrm"));
    assert_eq!(sb.users(), ["root"]);
}

#[test]
fn system_v_ipc_objects_of_the_user_are_removed() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    ok(&sb.provision(USER, HOLDER, "a/b", &[]));
    let (uid, _) = sb.ids(USER).expect("provisioned");
    // The layout of /proc/sysvipc; the objects of another uid, even one the user created, stay.
    sb.write(
        "sysvipc/shm",
        &format!(
            "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
             \x20        0      32769  1600                  4096  4242  4242      0 {uid} {uid} {uid} {uid}          0          0 1700000000                     0                     0\n\
             \x20        0      32770  1600                  4096  4242  4242      0  1234  1234 {uid} {uid}          0          0 1700000000                     0                     0\n"
        ),
    );
    sb.write(
        "sysvipc/sem",
        &format!(
            "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n\
             \x20 12345678          5   600          1 {uid} {uid} {uid} {uid}          0 1700000000\n"
        ),
    );
    sb.write(
        "sysvipc/msg",
        &format!(
            "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n\
             \x20        0          7   666           0          0     0     0 {uid} {uid} {uid} {uid}          0          0 1700000000\n\
             \x20        0          8   666           0          0     0     0     0     0     0     0          0          0 1700000000\n"
        ),
    );
    ok(&sb.revoke(USER, HOLDER, &[]));
    let log = sb.read("log");
    let removed: Vec<&str> = log.lines().filter(|l| l.starts_with("ipcrm")).collect();
    assert_eq!(removed, ["ipcrm -m 32769", "ipcrm -s 5", "ipcrm -q 7"]);

    // Without a System V IPC listing (or without ipcrm), the step is skipped.
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    ok(&sb.provision(USER, HOLDER, "a/b", &[]));
    let missing = sb.path("no-sysvipc").display().to_string();
    ok(&sb.revoke(USER, HOLDER, &[("PASSPORT_SYSVIPC_DIR", &missing)]));
    assert!(!sb.read("log").contains("ipcrm"));
}

#[test]
fn a_uid_shared_with_another_account_is_never_used_for_cleanup() {
    let sb = Sandbox::new(CONFIG_WITH_INCLUDE);
    ok(&sb.provision(USER, HOLDER, "a/b", &[]));
    let (uid, _) = sb.ids(USER).expect("provisioned");
    let passwd = sb.read("passwd");
    sb.write("passwd", &format!("{passwd}intruder:x:{uid}:0::/:/bin/sh\n"));
    let out = sb.revoke(USER, HOLDER, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("also the uid of intruder"),
        "{}",
        stderr(&out)
    );
    // Logins are refused already; nothing is killed or removed by uid.
    assert!(!sb.exists(&format!("etc/ssh/passport/principals/{USER}")));
    let log = sb.read("log");
    assert!(!log.contains("pkill") && !log.contains("ipcrm") && !log.contains("userdel"));
    assert!(!log.contains("setpriv"), "{log}");
}
