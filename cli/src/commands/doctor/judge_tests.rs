use super::*;
use crate::commands::doctor::{cluster::*, workstation::*};

fn at(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

fn healthy_cluster() -> ClusterFindings {
    ClusterFindings {
        context: "dev".into(),
        namespace: "team-a".into(),
        reached: Ok(("v1.34.4".into(), "alice".into())),
        skew: Some(SignedDuration::from_secs(1)),
        rights: RIGHTS.iter().map(|_| Ok(true)).collect(),
        crds: Ok(Some(KINDS.map(str::to_owned).to_vec())),
        operator_namespace: "passport-system".into(),
        lease: LeaseRead::Held(Heartbeat {
            holder: "passport-operator-7c9".into(),
            renewed: at("2026-11-29T15:00:00Z"),
            lease_seconds: 30,
        }),
    }
}

fn findings(cluster: Result<ClusterFindings, String>) -> Findings {
    Findings {
        plugin: "kubectl-passport 0.1.0 (commit 0123456789ab)".into(),
        cluster,
        ssh: Ok("OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15  3 Sep 2024".into()),
        session_manager_plugin: Ok("1.2.707.0\n".into()),
        direct_endpoints: false,
        now: at("2026-11-29T15:00:10Z"),
    }
}

fn lines(checks: &[Check]) -> Vec<String> {
    checks.iter().map(Check::line).collect()
}

#[test]
fn a_healthy_setup_is_all_ok_one_line_per_check() {
    let checks = judge(&findings(Ok(healthy_cluster())));
    assert!(!blocks_use(&checks));
    let lines = lines(&checks);
    assert_eq!(lines.len(), 3 + RIGHTS.len() + 5, "{lines:#?}");
    assert!(lines.iter().all(|l| l.starts_with("ok  ")), "{lines:#?}");
    assert_eq!(
        lines[0],
        "ok    plugin                             kubectl-passport 0.1.0 (commit 0123456789ab)"
    );
    assert!(
        lines.contains(&"ok    rbac create accessrequests         allowed in namespace team-a".to_owned())
    );
    assert!(lines.iter().any(|l| {
        l.ends_with("passport-operator-7c9 renewed lease passport-system/passport-operator 11s ago")
    }));
    assert!(lines.iter().any(|l| l.contains("OpenSSH 9.2: Ed25519 and RSA")));
    assert!(lines.iter().any(|l| l.ends_with("version 1.2.707.0")));
}

#[test]
fn without_a_kubeconfig_only_local_checks_follow_and_use_is_blocked() {
    let checks = judge(&findings(Err(
        "no kubeconfig: set KUBECONFIG or pass --kubeconfig".into(),
    )));
    assert!(blocks_use(&checks));
    let names: Vec<&str> = checks.iter().map(|c| c.check.as_str()).collect();
    assert_eq!(names, ["plugin", "kubeconfig", "ssh", "session-manager-plugin"]);
    assert!(checks[1].line().starts_with("FAIL  kubeconfig"));
    assert!(
        checks[1]
            .line()
            .contains("; fix: point KUBECONFIG (or --kubeconfig) at your cluster's kubeconfig")
    );
}

#[test]
fn an_unreachable_api_server_skips_the_checks_that_need_it() {
    let mut cluster = healthy_cluster();
    cluster.reached = Err("cannot reach the Kubernetes API server: connection refused".into());
    let checks = judge(&findings(Ok(cluster)));
    let names: Vec<&str> = checks.iter().map(|c| c.check.as_str()).collect();
    assert_eq!(
        names,
        [
            "plugin",
            "kubeconfig",
            "api server",
            "ssh",
            "session-manager-plugin"
        ]
    );
    assert_eq!(checks[2].status, Status::Fail);
}

#[test]
fn missing_requester_rights_fail_and_say_which_role_to_bind() {
    let mut cluster = healthy_cluster();
    cluster.rights = RIGHTS
        .iter()
        .map(|r| Ok(r.resource != "credentialrequests" && r.resource != "accessreviews"))
        .collect();
    let checks = judge(&findings(Ok(cluster)));
    assert!(blocks_use(&checks));
    let lines = lines(&checks);
    assert!(lines.contains(&"FAIL  rbac create credentialrequests     not allowed in namespace team-a; fix: ask an administrator to bind ClusterRole passport-requester to you in namespace team-a".to_owned()), "{lines:#?}");
    assert!(lines.contains(&"WARN  rbac create accessreviews          not allowed in namespace team-a: needed for approve and deny (approvers only); fix: ask an administrator to bind ClusterRole passport-approver to you in namespace team-a".to_owned()), "{lines:#?}");
}

#[test]
fn a_lapsed_or_absent_lease_means_no_operator_runs() {
    let beat = Heartbeat {
        holder: "op-1".into(),
        renewed: at("2026-11-29T14:58:00Z"),
        lease_seconds: 30,
    };
    let now = at("2026-11-29T15:00:00Z");
    let lapsed = heartbeat(&LeaseRead::Held(beat), OPERATOR_LEASE, "passport-system", now);
    assert_eq!(lapsed.status, Status::Fail);
    assert!(
        lapsed.message.contains("last renewed 120s ago by op-1"),
        "{}",
        lapsed.message
    );
    let absent = heartbeat(&LeaseRead::Absent, OPERATOR_LEASE, "passport-system", now);
    assert_eq!(absent.status, Status::Fail);
    assert!(absent.line().contains("fix: kubectl -n passport-system get pods"));
    let forbidden = heartbeat(&LeaseRead::Forbidden, OPERATOR_LEASE, "passport-system", now);
    assert_eq!(forbidden.status, Status::Warn);
}

#[test]
fn crds_missing_or_partial_fail() {
    assert_eq!(crds(&Ok(None)).status, Status::Fail);
    let partial = crds(&Ok(Some(vec!["accessrequests".into()])));
    assert_eq!(partial.status, Status::Fail);
    assert!(
        partial
            .message
            .contains("lacks accessreviews, credentialrequests"),
        "{}",
        partial.message
    );
}

#[test]
fn ssh_versions_are_judged_for_certificate_support() {
    assert_eq!(
        openssh_version("OpenSSH_8.2p1 Ubuntu-4ubuntu0.11, OpenSSL 1.1.1f"),
        Some((8, 2))
    );
    assert_eq!(openssh_version("OpenSSH_for_Windows_9.5p1, LibreSSL 3.8.2"), None);
    assert_eq!(openssh_version("OpenSSH_10.0p2"), Some((10, 0)));
    assert_eq!(ssh(&Ok("OpenSSH_8.2p1".into())).status, Status::Ok);
    let old = ssh(&Ok("OpenSSH_7.4p1, OpenSSL 1.0.2k-fips".into()));
    assert_eq!(old.status, Status::Warn);
    assert!(old.line().contains("fix: use --key-type ed25519"));
    assert_eq!(ssh(&Ok("OpenSSH_6.4p1".into())).status, Status::Fail);
    assert_eq!(ssh(&Err("not found on PATH".into())).status, Status::Fail);
}

#[test]
fn session_manager_plugin_is_needed_unless_tunnels_go_direct() {
    let missing = Err("not found on PATH".to_owned());
    assert_eq!(session_manager_plugin(&missing, false).status, Status::Fail);
    assert_eq!(session_manager_plugin(&missing, true).status, Status::Ok);
}

#[test]
fn clock_skew_warns_then_fails() {
    assert_eq!(clock(SignedDuration::from_secs(-4)).status, Status::Ok);
    let warn = clock(SignedDuration::from_secs(-30));
    assert_eq!(warn.status, Status::Warn);
    assert_eq!(warn.message, "the API server's clock is 30s behind yours");
    assert_eq!(clock(SignedDuration::from_secs(300)).status, Status::Fail);
}
