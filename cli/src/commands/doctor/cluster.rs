//! Checks of the cluster: the kubeconfig's context, the API server, your rights for each verb,
//! passport's kinds, and the operator's heartbeat.

use jiff::Timestamp;

use super::check::{Check, Status};

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
                "point KUBECONFIG (or --kubeconfig) at your cluster's kubeconfig; --context picks a context other than the current one"
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
