//! A sandbox for running the Linux scripts for real: the `PASSPORT_*` variables point them at a
//! temporary directory and stub commands on `PATH` stand in for useradd, sshd, systemctl and friends,
//! keeping a fake user and group database and a log of every call. Nothing outside the sandbox is
//! touched, and it works whether or not the tests run as root. The leftover searches of revoke (temp
//! directories, setuid roots, mount table, System V IPC listing) point into the sandbox too; atq,
//! atrm and ipcrm are stubs, so no real at job or IPC object is ever looked at or removed, and pkill
//! and setpriv are stubs, so no real process is ever signalled.

use super::test_support::{ED25519, EXPIRES_AT, RSA_3072};
use super::{LinuxProvision, linux_provision_script, linux_revoke_script};
use jiff::Timestamp;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// userdel and groupdel: remove the entry named by the last argument from passwd or group. Like
/// userdel with USERGROUPS_ENAB=no, userdel leaves the user's group alone.
const DELETE_ENTRY: &str = r#"db="$FAKE_ROOT/passwd"; [ "${0##*/}" = userdel ] || db="$FAKE_ROOT/group"
grep -v "^${*: -1}:" "$db" >"$db.new" || true
mv "$db.new" "$db""#;

/// Stub commands. Each logs its call to `$FAKE_ROOT/log`; the user database is `$FAKE_ROOT/passwd`,
/// the group database `$FAKE_ROOT/group`.
const STUBS: &[(&str, &str)] = &[
    (
        "id",
        r#"if [ "$*" = -u ]; then echo "${FAKE_UID:-0}"; else exec /usr/bin/id "$@"; fi"#,
    ),
    (
        "getent",
        r#"[ $# -ge 2 ] || exec cat "$FAKE_ROOT/$1"
awk -F: -v k="$2" '$1 == k || $3 == k { print; found = 1; exit } END { exit found ? 0 : 2 }' "$FAKE_ROOT/$1""#,
    ),
    (
        "useradd",
        r#"uid=1001 gid=1001
while [ $# -gt 1 ]; do case "$1" in --uid) uid="$2"; shift ;; --gid) gid="$2"; shift ;; esac; shift; done
echo "$1:x:$uid:$gid:passport:/home/$1:/bin/bash" >>"$FAKE_ROOT/passwd""#,
    ),
    (
        "groupadd",
        r#"gid=1001
while [ $# -gt 1 ]; do case "$1" in --gid) gid="$2"; shift ;; esac; shift; done
! grep -q "^$1:" "$FAKE_ROOT/group" || exit 9
echo "$1:x:$gid:" >>"$FAKE_ROOT/group""#,
    ),
    ("usermod", ":"),
    ("userdel", DELETE_ENTRY),
    ("groupdel", DELETE_ENTRY),
    ("atq", r#"cat "$FAKE_ROOT/atq" 2>/dev/null || true"#),
    ("atrm", ":"),
    ("ipcrm", ":"),
    ("pkill", ":"),
    // Never the real one: kill(-1) as a uid of the fake user database could reach real processes.
    ("setpriv", ":"),
    ("pgrep", r#"[ -e "$FAKE_ROOT/procs" ]"#),
    ("loginctl", ":"),
    (
        "systemctl",
        r#"[ "$1" != is-active ] || [ -e "$FAKE_ROOT/unit-active" ]"#,
    ),
    ("crontab", ":"),
    ("chown", ":"),
    ("sleep", ":"),
    (
        "sshd",
        r#"case "$1" in
  -t) case "${FAKE_SSHD:-ok}" in
        ok) exit 0 ;;
        reject-passport)
          if grep -rqs passport "$FAKE_ROOT/etc/ssh/sshd_config" "$FAKE_ROOT/etc/ssh/sshd_config.d"; then
            echo 'line 3: Bad configuration option' >&2
            exit 255
          fi ;;
        reject-always) echo 'line 1: Bad configuration option' >&2; exit 255 ;;
      esac ;;
  -V) echo "OpenSSH_${FAKE_SSHD_VERSION:-9.2p1} Debian-2, OpenSSL 3.0.11 19 Sep 2023" >&2 ;;
  -D) trap 'echo hup >>"$FAKE_ROOT/hup"; exit 0' HUP; : >"$FAKE_ROOT/sshd-ready"; while :; do /bin/sleep 0.02; done ;;
esac"#,
    ),
];

pub(super) const CONFIG_WITH_INCLUDE: &str =
    "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\n";
pub(super) const CONFIG_WITHOUT_INCLUDE: &str = "PasswordAuthentication no\nSubsystem sftp internal-sftp\n";

pub(super) struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    pub(super) fn new(sshd_config: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("pp-script-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for dir in [
            "bin", "etc/ssh", "state", "tmp", "var/tmp", "dev/shm", "fs", "sysvipc",
        ] {
            fs::create_dir_all(root.join(dir)).expect("create sandbox");
        }
        let sandbox = Self { root };
        // The script looks for the Include of its own drop-in directory, wherever PASSPORT_SSH_DIR is.
        let config = sshd_config.replace("/etc/ssh", &sandbox.path("etc/ssh").display().to_string());
        sandbox.write("etc/ssh/sshd_config", &config);
        sandbox.write("etc/ssh/ssh_host_ed25519_key.pub", &format!("{ED25519}\n"));
        sandbox.write("etc/ssh/ssh_host_rsa_key.pub", RSA_3072); // no final newline
        sandbox.write("passwd", "root:x:0:0:root:/root:/bin/bash\n");
        sandbox.write("group", "root:x:0:\n");
        sandbox.write("mounts", "");
        for (name, body) in STUBS {
            let path = sandbox.path("bin").join(name);
            let log = format!("echo \"{name} $*\" >>\"$FAKE_ROOT/log\"\n");
            fs::write(&path, format!("#!/bin/bash\n{log}{body}\n")).expect("write stub");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod stub");
        }
        sandbox
    }

    pub(super) fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub(super) fn write(&self, rel: &str, content: &str) {
        fs::write(self.path(rel), content).expect("write sandbox file");
    }

    pub(super) fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    pub(super) fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Removes a stub, for tests of a host without that tool.
    pub(super) fn remove_stub(&self, name: &str) {
        fs::remove_file(self.path("bin").join(name)).expect("remove stub");
    }

    pub(super) fn command(&self, program: &str, env: &[(&str, &str)]) -> Command {
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let in_sandbox = |dirs: &[&str]| {
            let paths: Vec<String> = dirs.iter().map(|d| self.path(d).display().to_string()).collect();
            paths.join(":")
        };
        let mut cmd = Command::new(program);
        cmd.env("PATH", path)
            .env("FAKE_ROOT", &self.root)
            .env("PASSPORT_SSH_DIR", self.path("etc/ssh"))
            .env("PASSPORT_STATE_DIR", self.path("state"))
            .env("PASSPORT_SSHD", self.path("bin/sshd"))
            .env("PASSPORT_SSHD_PID", self.path("sshd.pid"))
            // Revoke must never search the host's own directories: every root is overridden.
            .env("PASSPORT_TMP_DIRS", in_sandbox(&["tmp", "var/tmp", "dev/shm"]))
            .env("PASSPORT_SETUID_ROOTS", in_sandbox(&["fs"]))
            .env("PASSPORT_MOUNTS", self.path("mounts"))
            .env("PASSPORT_SYSVIPC_DIR", self.path("sysvipc"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    pub(super) fn run_with(&self, shell: &str, script: &str, env: &[(&str, &str)]) -> Output {
        self.write("script.sh", script);
        let out = self
            .command(shell, env)
            .arg(self.path("script.sh"))
            .output()
            .expect("run script");
        eprintln!(
            "--- exit {:?}\n--- stdout\n{}--- stderr\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub(super) fn run(&self, script: &str, env: &[(&str, &str)]) -> Output {
        self.run_with("bash", script, env)
    }

    /// Runs the provisioning script for `user`, with `holder` and `request`.
    pub(super) fn provision(&self, user: &str, holder: &str, request: &str, env: &[(&str, &str)]) -> Output {
        self.run(&provision_script(user, holder, request), env)
    }

    /// Runs the revoke script for `user` and `holder`.
    pub(super) fn revoke(&self, user: &str, holder: &str, env: &[(&str, &str)]) -> Output {
        self.run(&linux_revoke_script(user, holder).expect("valid"), env)
    }

    pub(super) fn users(&self) -> Vec<String> {
        names(&self.read("passwd"))
    }

    pub(super) fn groups(&self) -> Vec<String> {
        names(&self.read("group"))
    }

    /// The uid and gid of `user` in the fake user database.
    pub(super) fn ids(&self, user: &str) -> Option<(u32, u32)> {
        let passwd = self.read("passwd");
        let fields: Vec<&str> = passwd
            .lines()
            .find(|l| l.starts_with(&format!("{user}:")))?
            .split(':')
            .collect();
        Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
    }

    /// The marker of `user`.
    pub(super) fn marker(&self, user: &str) -> String {
        self.read(&format!("state/users/{user}"))
    }

    pub(super) fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for dir in [
            "etc/ssh",
            "etc/ssh/sshd_config.d",
            "etc/ssh/passport",
            "state/users",
            "state/revoked",
        ] {
            for entry in fs::read_dir(self.path(dir)).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.contains(".passport") {
                    found.push(name);
                }
            }
        }
        found
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// The provisioning script for `user`, `holder` and `request`, with the test CA keys, expiring at
/// [`EXPIRES_AT`].
pub(super) fn provision_script(user: &str, holder: &str, request: &str) -> String {
    provision_script_until(user, holder, request, EXPIRES_AT)
}

/// The provisioning script for `user`, `holder` and `request`, expiring at `expires_at`.
pub(super) fn provision_script_until(
    user: &str,
    holder: &str,
    request: &str,
    expires_at: Timestamp,
) -> String {
    let keys = [ED25519.to_owned(), RSA_3072.to_owned()];
    let p = LinuxProvision {
        username: user,
        ca_public_keys: &keys,
        request,
        holder,
        expires_at,
    };
    linux_provision_script(&p).expect("valid")
}

/// The first field of each line of a passwd or group file.
fn names(db: &str) -> Vec<String> {
    db.lines()
        .filter_map(|l| l.split(':').next())
        .map(str::to_owned)
        .collect()
}

/// Waits for `child` to exit, up to a few seconds; kills it if it does not.
pub(super) fn exited(child: &mut std::process::Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().expect("poll child").is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}
