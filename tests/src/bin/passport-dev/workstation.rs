//! What a person needs to keep using the demo from a plain shell once the walkthrough is over: a
//! sourceable `env.sh` (PATH with kubectl-passport and AWS's session-manager-plugin, the AWS endpoint
//! the CLI starts sessions at, the demo instance) and one `<user>.env` per user (their kubeconfig, whose
//! context's namespace is team-a). `check_from_plain_shell` proves it: a shell with an empty
//! environment sources alice's file, requests access, waits, and logs in by instance id.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::{Result, ensure};
use passport_tests::kubectl;

pub const NAMESPACE: &str = "team-a";

/// How the workstation reaches the instance.
#[derive(Debug)]
pub struct Reach {
    /// Directories to put first on PATH: kubectl-passport's, the plugin's.
    pub path: Vec<PathBuf>,
    /// The AWS endpoint (the emulator) the CLI starts Session Manager sessions at.
    pub aws_endpoint: String,
    /// `PASSPORT_DIRECT_ENDPOINTS` in direct mode; None through Session Manager.
    pub direct: Option<String>,
    pub instance: String,
}

impl Reach {
    /// The environment the CLI and the ssh it runs need, as name and value.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let path = std::env::var("PATH").unwrap_or_default();
        let mut dirs: Vec<String> = self.path.iter().map(|d| d.display().to_string()).collect();
        dirs.push(path);
        let mut env = vec![
            ("PATH", dirs.join(":")),
            ("AWS_ENDPOINT_URL", self.aws_endpoint.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ];
        if let Some(direct) = &self.direct {
            env.push(("PASSPORT_DIRECT_ENDPOINTS", direct.clone()));
        }
        env
    }
}

/// A word for a POSIX shell, single-quoted.
fn quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Writes `env.sh` and `<user>.env` into `state` (which holds `<user>.kubeconfig`, given namespace
/// team-a here); returns the text of `env.sh`.
pub fn write(state: &Path, reach: &Reach, users: &[&str]) -> Result<String> {
    let path: Vec<String> = reach.path.iter().map(|d| d.display().to_string()).collect();
    let mut text = format!(
        "# passport's demo ({}): source a user's file instead, e.g. `. {}`.\n\
         export PATH={}:\"$PATH\"\n\
         # The demo's AWS (moto): kubectl passport starts its Session Manager sessions there.\n\
         export AWS_ENDPOINT_URL={}\n\
         export AWS_EC2_METADATA_DISABLED=true\n\
         export PASSPORT_DEMO_INSTANCE={}\n",
        if reach.direct.is_some() {
            "direct mode"
        } else {
            "through Session Manager"
        },
        state.join("alice.env").display(),
        quoted(&path.join(":")),
        quoted(&reach.aws_endpoint),
        quoted(&reach.instance),
    );
    match &reach.direct {
        Some(direct) => text += &format!("export PASSPORT_DIRECT_ENDPOINTS={}\n", quoted(direct)),
        None => text += "unset PASSPORT_DIRECT_ENDPOINTS\n",
    }
    fs::write(state.join("env.sh"), &text)?;
    for user in users {
        let kubeconfig = state.join(format!("{user}.kubeconfig"));
        let set = ["config", "set-context", "--current", "--namespace", NAMESPACE];
        kubectl::run(&kubeconfig, &set, None)?.ok()?;
        let file = format!(
            "# As {user} in passport's demo: kubectl passport request … --wait; ssh -F \"$(kubectl passport ssh-config)\" \"$PASSPORT_DEMO_INSTANCE\"\n\
             . {}\nexport KUBECONFIG={}\n",
            quoted(&state.join("env.sh").display().to_string()),
            quoted(&kubeconfig.display().to_string()),
        );
        fs::write(state.join(format!("{user}.env")), file)?;
    }
    Ok(text)
}

/// Runs, in a shell with an empty environment (HOME and a system PATH only), what a newcomer types
/// as alice: source `alice.env`, request access with --wait, log in by instance id, complete.
/// Returns what the shell printed.
pub async fn check_from_plain_shell(state: &Path, request: &str) -> Result<String> {
    let script = format!(
        "set -e\nexec 2>&1\n. {}\n\
         kubectl passport request {request} --instance \"$PASSPORT_DEMO_INSTANCE\" --reason 'from a plain shell' --wait\n\
         ssh -F \"$(kubectl passport ssh-config)\" -o BatchMode=yes \"$PASSPORT_DEMO_INSTANCE\" 'echo \"logged in as $(whoami)\"'\n\
         kubectl passport complete {request}\n",
        quoted(&state.join("alice.env").display().to_string())
    );
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".to_owned());
    let output = tokio::process::Command::new("/usr/bin/env")
        .args(["-i", &format!("HOME={home}"), "PATH=/usr/local/bin:/usr/bin:/bin"])
        .args(["bash", "--noprofile", "--norc", "-c", &script])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    let shown = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "the plain shell could not continue as alice:\n{shown}"
    );
    Ok(shown)
}
