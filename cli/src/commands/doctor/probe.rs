//! How `doctor` finds things out: the kubeconfig, the API server (its version, its clock, our
//! rights, passport's kinds, the operator's lease), and the local ssh and session-manager-plugin.
//! Every call is bounded in time; every failure becomes a finding, never an early exit.

use std::{future::Future, time::Duration};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::{
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    coordination::v1::Lease,
};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
    client::Body,
};

use super::{
    cluster::{Heartbeat, LeaseRead, RIGHTS, Right},
    judge::{ClusterFindings, OPERATOR_LEASE},
};
use crate::{
    args::Global,
    cluster::{api_errors, session::Session},
    ui::errors::one_line,
};

/// How long any one question to the API server may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
const GROUP_VERSION: &str = "passport.dev/v1alpha1";

/// `call`'s answer, or why there was none within [`ANSWER_WITHIN`].
async fn bounded<T>(what: &str, call: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(ANSWER_WITHIN, call)
        .await
        .unwrap_or_else(|_| Err(format!("{what}: no answer within {}s", ANSWER_WITHIN.as_secs())))
}

/// What the cluster says, or why the kubeconfig gave no context to ask.
pub async fn cluster(global: &Global, operator_namespace: &str) -> Result<ClusterFindings, String> {
    let session = Session::connect(global.selection())
        .await
        .map_err(|err| one_line(&err))?;
    let reached = bounded("the API server", async {
        let version = session.server_version().await.map_err(|err| one_line(&err))?;
        let me = session.whoami().await.map_err(|err| one_line(&err))?;
        Ok((version, me.username.clone()))
    })
    .await;
    let mut found = ClusterFindings {
        context: session.context.clone(),
        namespace: session.namespace.clone(),
        reached,
        skew: None,
        rights: Vec::new(),
        crds: Err("not asked".into()),
        operator_namespace: operator_namespace.to_owned(),
        lease: LeaseRead::Failed("not asked".into()),
    };
    if found.reached.is_err() {
        return Ok(found);
    }
    let client = &session.client;
    let rights = RIGHTS
        .iter()
        .map(|right| bounded("SelfSubjectAccessReview", may(client, &session.namespace, right)));
    let (rights, served, lease) = tokio::join!(
        futures::future::join_all(rights),
        bounded("discovery", served_kinds(client)),
        tokio::time::timeout(ANSWER_WITHIN, operator_lease(client, operator_namespace)),
    );
    found.rights = rights;
    (found.crds, found.skew) = match served {
        Ok((kinds, skew)) => (Ok(kinds), skew),
        Err(why) => (Err(why), None),
    };
    found.lease = lease.unwrap_or_else(|_| LeaseRead::Failed("no answer in time".into()));
    Ok(found)
}

/// Whether the cluster lets us do `right` in `namespace` (SelfSubjectAccessReview).
async fn may(client: &Client, namespace: &str, right: &Right) -> Result<bool, String> {
    let group = match right.resource {
        "events" => "",
        _ => "passport.dev",
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_owned()),
                verb: Some(right.verb.to_owned()),
                group: Some(group.to_owned()),
                resource: Some(right.resource.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await.map_err(|err| {
        one_line(&api_errors::explain(
            err,
            "create",
            "selfsubjectaccessreviews",
            "(cluster)",
        ))
    })?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The resources `passport.dev/v1alpha1` serves (`None`: the group is not served), and the API
/// server's clock against ours from the answer's `Date` header.
async fn served_kinds(client: &Client) -> Result<(Option<Vec<String>>, Option<SignedDuration>), String> {
    let request = kube::core::Request::new(format!("/apis/{GROUP_VERSION}"))
        .list(&ListParams::default())
        .map_err(|err| err.to_string())?;
    let asked = Timestamp::now();
    let response = client
        .send(request.map(Body::from))
        .await
        .map_err(|err| one_line(&api_errors::explain(err, "get", GROUP_VERSION, "(cluster)")))?;
    let answered = Timestamp::now();
    let skew = response
        .headers()
        .get("date")
        .and_then(|date| date.to_str().ok())
        .and_then(|date| http_date_skew(date, asked, answered));
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(|err| err.to_string())?;
    match status {
        404 => Ok((None, skew)),
        200 => {
            let list: k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList =
                serde_json::from_slice(&body)
                    .map_err(|err| format!("discovery of {GROUP_VERSION}: {err}"))?;
            let kinds = list.resources.into_iter().map(|r| r.name).collect();
            Ok((Some(kinds), skew))
        }
        other => Err(format!(
            "discovery of {GROUP_VERSION} answered {other}: {}",
            String::from_utf8_lossy(&body).trim()
        )),
    }
}

/// The server's time (an HTTP `Date`, whole seconds) minus ours halfway through the exchange; the
/// half second the header drops is taken off so a true zero skew reads as zero.
pub fn http_date_skew(date: &str, asked: Timestamp, answered: Timestamp) -> Option<SignedDuration> {
    let server = jiff::fmt::rfc2822::parse(date).ok()?.timestamp() + SignedDuration::from_millis(500);
    let ours = asked + answered.duration_since(asked) / 2;
    Some(server.duration_since(ours))
}

/// The operator's leader lease in `namespace`.
async fn operator_lease(client: &Client, namespace: &str) -> LeaseRead {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    match leases.get_opt(OPERATOR_LEASE).await {
        Ok(lease) => {
            let spec = lease.and_then(|l| l.spec);
            let held = spec.and_then(|s| {
                Some(Heartbeat {
                    holder: s.holder_identity.filter(|h| !h.is_empty())?,
                    renewed: s.renew_time.or(s.acquire_time)?.0,
                    lease_seconds: i64::from(s.lease_duration_seconds?),
                })
            });
            held.map_or(LeaseRead::Absent, LeaseRead::Held)
        }
        Err(err) if api_errors::code(&err) == Some(403) => LeaseRead::Forbidden,
        Err(err) => LeaseRead::Failed(one_line(&api_errors::explain(err, "get", "leases", namespace))),
    }
}

/// What `program args` printed (stdout, else stderr: `ssh -V` writes to stderr), or why it did not run.
pub async fn tool_says(program: &str, args: &[&str]) -> Result<String, String> {
    let run = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(ANSWER_WITHIN, run).await {
        Err(_) => {
            return Err(format!(
                "{program} did not answer within {}s",
                ANSWER_WITHIN.as_secs()
            ));
        }
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{program} is not on PATH"));
        }
        Ok(Err(err)) => return Err(format!("cannot run {program}: {err}")),
        Ok(Ok(out)) => out,
    };
    let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_owned();
    let (stdout, stderr) = (said(&out.stdout), said(&out.stderr));
    match (out.status.success(), stdout.is_empty()) {
        (true, false) => Ok(stdout),
        (true, true) => Ok(stderr),
        (false, _) => Err(format!(
            "{program} {} failed ({}): {stderr}",
            args.join(" "),
            out.status
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_compares_the_date_header_with_the_middle_of_the_exchange() {
        let asked: Timestamp = "2026-11-29T15:00:00.100Z".parse().expect("ts");
        let answered: Timestamp = "2026-11-29T15:00:00.300Z".parse().expect("ts");
        let same = http_date_skew("Sun, 29 Nov 2026 15:00:00 GMT", asked, answered);
        assert_eq!(same, Some(SignedDuration::from_millis(300)));
        let behind = http_date_skew("Sun, 29 Nov 2026 14:59:00 GMT", asked, answered);
        assert_eq!(behind.map(|s| s.as_secs()), Some(-59));
        assert_eq!(http_date_skew("yesterday", asked, answered), None);
    }
}
