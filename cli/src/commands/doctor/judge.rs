//! What `doctor` concludes from what it found: one [`Check`] per line, each with the fix when
//! something is wrong. Pure: the findings come in as values (see [`super::probe`] for how they are
//! gathered), so every verdict is unit-tested.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// How bad a finding is. Only `Fail` makes `doctor` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One line of `doctor`'s report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(
        check: impl Into<String>,
        status: Status,
        message: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Self {
            check: check.into(),
            status,
            message: message.into(),
            fix,
        }
    }

    fn ok(check: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(check, Status::Ok, message, None)
    }

    /// The line as printed: status, check, message and fix.
    pub fn line(&self) -> String {
        let status = match self.status {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        let fix = self
            .fix
            .as_ref()
            .map(|f| format!("; fix: {f}"))
            .unwrap_or_default();
        format!("{status:<4}  {:<34} {}{fix}", self.check, self.message)
    }
}

/// Whether `checks` leave the plugin usable.
pub fn blocks_use(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Fail)
}

/// The first version `ssh -V` may report for RSA keys' certificates (rsa-sha2 certificate
/// signatures, which servers without SHA-1 demand).
pub const SSH_RSA_SHA2_CERTS: (u32, u32) = (8, 2);
/// The first OpenSSH with certificates of the kind passport issues (Ed25519 keys).
pub const SSH_ED25519_CERTS: (u32, u32) = (6, 5);
/// Clock skew that certificates (valid for minutes) still tolerate unnoticed.
pub const SKEW_OK: Duration = Duration::from_secs(5);
/// Clock skew beyond which the plugin misjudges whether its certificate is still valid.
pub const SKEW_FAIL: Duration = Duration::from_secs(60);

/// `ssh -V`'s version (`OpenSSH_9.2p1 Debian-2, OpenSSL 3.0.15` → 9.2), if it is OpenSSH.
pub fn openssh_version(said: &str) -> Option<(u32, u32)> {
    let rest = said.split("OpenSSH_").nth(1)?;
    let mut numbers = rest.split(|c: char| !c.is_ascii_digit());
    Some((numbers.next()?.parse().ok()?, numbers.next()?.parse().ok()?))
}

/// The ssh client: `said` is what `ssh -V` printed, or why it could not run.
pub fn ssh(said: &Result<String, String>) -> Check {
    let name = "ssh";
    let said = match said {
        Ok(said) => said.trim(),
        Err(why) => {
            let fix = "install the OpenSSH client (e.g. apt-get install openssh-client)";
            return Check::new(
                name,
                Status::Fail,
                format!("no ssh client: {why}"),
                Some(fix.into()),
            );
        }
    };
    let upgrade = || Some("upgrade the OpenSSH client to 8.2 or later".to_owned());
    match openssh_version(said) {
        None => Check::new(
            name,
            Status::Warn,
            format!("{said:?} is not OpenSSH; passport's ssh config is written for OpenSSH"),
            upgrade(),
        ),
        Some(v) if v < SSH_ED25519_CERTS => Check::new(
            name,
            Status::Fail,
            format!("OpenSSH {}.{} cannot use passport's certificates", v.0, v.1),
            upgrade(),
        ),
        Some(v) if v < SSH_RSA_SHA2_CERTS => Check::new(
            name,
            Status::Warn,
            format!(
                "OpenSSH {}.{}: Ed25519 certificates work, RSA ones need rsa-sha2 certificates (8.2)",
                v.0, v.1
            ),
            Some("use --key-type ed25519 (the default), or upgrade OpenSSH to 8.2 or later".into()),
        ),
        Some(v) => Check::ok(
            name,
            format!("OpenSSH {}.{}: Ed25519 and RSA (rsa-sha2) certificates", v.0, v.1),
        ),
    }
}

/// AWS's session-manager-plugin: `said` is what `--version` printed, or why it could not run.
/// `direct` says PASSPORT_DIRECT_ENDPOINTS sends tunnels around Session Manager.
pub fn session_manager_plugin(said: &Result<String, String>, direct: bool) -> Check {
    let name = "session-manager-plugin";
    match said {
        Ok(version) => Check::ok(name, format!("version {}", version.trim())),
        Err(why) if direct => Check::ok(
            name,
            format!("not needed: PASSPORT_DIRECT_ENDPOINTS reaches instances directly ({why})"),
        ),
        Err(why) => Check::new(
            name,
            Status::Fail,
            format!("cannot run it ({why}): connect and ssh tunnel through Session Manager"),
            Some(
                "install it: https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html"
                    .into(),
            ),
        ),
    }
}

/// The apiserver's clock against ours: `skew` is the server's time minus ours.
pub fn clock(skew: SignedDuration) -> Check {
    let name = "clock";
    let off = skew.unsigned_abs();
    let side = if skew.is_negative() { "behind" } else { "ahead of" };
    let message = format!("the API server's clock is {}s {side} yours", off.as_secs());
    let fix = || Some("synchronise this machine's clock (e.g. timedatectl set-ntp true)".to_owned());
    if off <= SKEW_OK {
        Check::ok(name, format!("within {}s of the API server's", SKEW_OK.as_secs()))
    } else if off <= SKEW_FAIL {
        Check::new(name, Status::Warn, message, fix())
    } else {
        Check::new(
            name,
            Status::Fail,
            format!("{message}: certificates last minutes, so the plugin misjudges whether they are valid"),
            fix(),
        )
    }
}

/// A right `doctor` asks the cluster about, and who needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Right {
    pub verb: &'static str,
    pub resource: &'static str,
    /// The ClusterRole that grants it.
    pub role: &'static str,
    /// Whether requesting and connecting need it (else only some verbs do).
    pub required: bool,
    /// What it is for, when it is optional.
    pub needed_for: &'static str,
}

const REQUESTER: &str = "passport-requester";
const APPROVER: &str = "passport-approver";

/// A right requesting and connecting need (ClusterRole passport-requester grants it).
const fn needed(verb: &'static str, resource: &'static str) -> Right {
    Right {
        verb,
        resource,
        role: REQUESTER,
        required: true,
        needed_for: "",
    }
}

/// A right only `needed_for` needs, granted by `role`.
const fn optional(
    verb: &'static str,
    resource: &'static str,
    role: &'static str,
    needed_for: &'static str,
) -> Right {
    Right {
        verb,
        resource,
        role,
        required: false,
        needed_for,
    }
}

/// The rights the plugin's verbs use, in the order `doctor` lists them.
pub const RIGHTS: [Right; 10] = [
    needed("create", "accessrequests"),
    needed("get", "accessrequests"),
    needed("list", "accessrequests"),
    needed("watch", "accessrequests"),
    needed("patch", "accessrequests"),
    needed("create", "credentialrequests"),
    needed("get", "credentialrequests"),
    needed("watch", "credentialrequests"),
    optional("list", "events", REQUESTER, "logbook"),
    optional(
        "create",
        "accessreviews",
        APPROVER,
        "approve and deny (approvers only)",
    ),
];

/// One right: `allowed` is the cluster's answer, or why there was none.
pub fn rbac(right: &Right, namespace: &str, allowed: &Result<bool, String>) -> Check {
    let name = format!("rbac {} {}", right.verb, right.resource);
    let bind = format!(
        "ask an administrator to bind ClusterRole {} to you in namespace {namespace}",
        right.role
    );
    match allowed {
        Ok(true) => Check::ok(name, format!("allowed in namespace {namespace}")),
        Ok(false) if right.required => Check::new(
            name,
            Status::Fail,
            format!("not allowed in namespace {namespace}"),
            Some(bind),
        ),
        Ok(false) => Check::new(
            name,
            Status::Warn,
            format!(
                "not allowed in namespace {namespace}: needed for {}",
                right.needed_for
            ),
            Some(bind),
        ),
        Err(why) => Check::new(
            name,
            if right.required {
                Status::Fail
            } else {
                Status::Warn
            },
            format!("cannot tell: {why}"),
            Some("check with kubectl auth can-i".into()),
        ),
    }
}

/// The kinds the operator serves (`passport.dev/v1alpha1`).
pub const KINDS: [&str; 5] = [
    "accessrequests",
    "accessreviews",
    "credentialrequests",
    "accesspolicies",
    "awsaccounts",
];

/// passport's CRDs: the resources `passport.dev/v1alpha1` serves, `None` when it serves none.
pub fn crds(served: &Result<Option<Vec<String>>, String>) -> Check {
    let name = "operator crds";
    let install = || {
        Some("install passport (helm install passport charts/passport, or kubectl apply -f deploy/)".into())
    };
    match served {
        Ok(Some(served)) => {
            let missing: Vec<&str> = KINDS
                .into_iter()
                .filter(|kind| !served.iter().any(|s| s == kind))
                .collect();
            if missing.is_empty() {
                Check::ok(name, "passport.dev/v1alpha1 serves every passport kind")
            } else {
                Check::new(
                    name,
                    Status::Fail,
                    format!("passport.dev/v1alpha1 lacks {}", missing.join(", ")),
                    install(),
                )
            }
        }
        Ok(None) => Check::new(
            name,
            Status::Fail,
            "the cluster does not serve passport.dev/v1alpha1: passport is not installed",
            install(),
        ),
        Err(why) => Check::new(name, Status::Fail, format!("cannot tell: {why}"), None),
    }
}

/// The operator's leader Lease as read: who holds it, when it was renewed, for how long it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub holder: String,
    pub renewed: Timestamp,
    pub lease_seconds: i64,
}

/// What reading the operator's lease gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseRead {
    Held(Heartbeat),
    /// No lease, or nobody holds it.
    Absent,
    /// The user may not read it.
    Forbidden,
    Failed(String),
}

/// The operator's heartbeat: its leader lease in `namespace` (`lease` by name), as of `now` (the
/// API server's time, so the comparison does not depend on this machine's clock).
pub fn heartbeat(read: &LeaseRead, lease: &str, namespace: &str, now: Timestamp) -> Check {
    let name = "operator heartbeat";
    let look =
        format!("kubectl -n {namespace} get pods; kubectl -n {namespace} logs deploy/passport-operator");
    match read {
        LeaseRead::Held(beat) => {
            let ago = now.duration_since(beat.renewed).as_secs().max(0);
            if ago <= beat.lease_seconds {
                Check::ok(
                    name,
                    format!("{} renewed lease {namespace}/{lease} {ago}s ago", beat.holder),
                )
            } else {
                Check::new(
                    name,
                    Status::Fail,
                    format!(
                        "lease {namespace}/{lease} was last renewed {ago}s ago by {} (it holds {}s): no operator is running",
                        beat.holder, beat.lease_seconds
                    ),
                    Some(look),
                )
            }
        }
        LeaseRead::Absent => Check::new(
            name,
            Status::Fail,
            format!("no operator holds lease {namespace}/{lease}: none has started"),
            Some(look),
        ),
        LeaseRead::Forbidden => Check::new(
            name,
            Status::Warn,
            format!("you may not read lease {namespace}/{lease}, so the operator's heartbeat is unknown"),
            Some(format!(
                "ask an administrator to run kubectl -n {namespace} get lease {lease}, or pass --operator-namespace"
            )),
        ),
        LeaseRead::Failed(why) => Check::new(
            name,
            Status::Warn,
            format!("cannot read lease {namespace}/{lease}: {why}"),
            None,
        ),
    }
}

/// The kubeconfig and the context in it: `chosen` is (context, namespace), or why none could be used.
pub fn kubeconfig(chosen: &Result<(String, String), String>) -> Check {
    match chosen {
        Ok((context, namespace)) => {
            Check::ok("kubeconfig", format!("context {context}, namespace {namespace}"))
        }
        Err(why) => Check::new(
            "kubeconfig",
            Status::Fail,
            why.clone(),
            Some(
                "set KUBECONFIG or pass --kubeconfig, and --context for a context other than the current one"
                    .into(),
            ),
        ),
    }
}

/// The API server: (its version, who it says we are), or why it did not answer.
pub fn api_server(reached: &Result<(String, String), String>) -> Check {
    match reached {
        Ok((version, user)) => Check::ok("api server", format!("Kubernetes {version}; you are {user}")),
        Err(why) => Check::new(
            "api server",
            Status::Fail,
            why.clone(),
            Some("check the kubeconfig's server address and your network or VPN, then log in again".into()),
        ),
    }
}

/// Everything `doctor` found out about the cluster, once its kubeconfig gave a context.
#[derive(Debug, Clone)]
pub struct ClusterFindings {
    pub context: String,
    pub namespace: String,
    /// The API server's version and our username.
    pub reached: Result<(String, String), String>,
    /// The API server's time minus ours, from its `Date` header.
    pub skew: Option<SignedDuration>,
    /// The answer for each of [`RIGHTS`], in order.
    pub rights: Vec<Result<bool, String>>,
    pub crds: Result<Option<Vec<String>>, String>,
    pub operator_namespace: String,
    pub lease: LeaseRead,
}

/// Everything `doctor` found out.
#[derive(Debug, Clone)]
pub struct Findings {
    pub plugin: String,
    /// The cluster's findings, or why the kubeconfig gave no context.
    pub cluster: Result<ClusterFindings, String>,
    pub ssh: Result<String, String>,
    pub session_manager_plugin: Result<String, String>,
    pub direct_endpoints: bool,
    /// This machine's time when the findings were made.
    pub now: Timestamp,
}

/// The operator's Lease name (operator/src/leader.rs, `LEASE_NAME`).
pub const OPERATOR_LEASE: &str = "passport-operator";

/// The report: one line per check, in the order a person fixes things.
pub fn judge(findings: &Findings) -> Vec<Check> {
    let mut checks = vec![Check::ok("plugin", findings.plugin.clone())];
    match &findings.cluster {
        Err(why) => checks.push(kubeconfig(&Err(why.clone()))),
        Ok(cluster) => {
            checks.push(kubeconfig(&Ok((
                cluster.context.clone(),
                cluster.namespace.clone(),
            ))));
            checks.push(api_server(&cluster.reached));
            if cluster.reached.is_ok() {
                checks.extend(cluster_checks(cluster, findings.now));
            }
        }
    }
    checks.push(ssh(&findings.ssh));
    checks.push(session_manager_plugin(
        &findings.session_manager_plugin,
        findings.direct_endpoints,
    ));
    checks
}

/// The checks that need an API server that answers.
fn cluster_checks(cluster: &ClusterFindings, now: Timestamp) -> Vec<Check> {
    let mut checks: Vec<Check> = RIGHTS
        .iter()
        .zip(&cluster.rights)
        .map(|(right, allowed)| rbac(right, &cluster.namespace, allowed))
        .collect();
    checks.push(crds(&cluster.crds));
    let server_now = now + cluster.skew.unwrap_or_default();
    checks.push(heartbeat(
        &cluster.lease,
        OPERATOR_LEASE,
        &cluster.operator_namespace,
        server_now,
    ));
    checks.push(match cluster.skew {
        Some(skew) => clock(skew),
        None => Check::new(
            "clock",
            Status::Warn,
            "the API server sent no Date header to compare with",
            None,
        ),
    });
    checks
}

#[cfg(test)]
#[path = "judge_tests.rs"]
mod tests;
