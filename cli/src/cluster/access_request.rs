//! AccessRequests in the session's namespace: read and written with errors a person understands,
//! whether one can be used now, and which of its instances the user means.

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::events::v1::Event;
use kube::{
    ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use passport_crds::{
    AccessRequest,
    access_request::{Platform, TargetStatus},
};

use super::{api_errors, session::Session};

/// The message for an AccessRequest that does not exist.
pub fn not_found(name: &str, namespace: &str) -> anyhow::Error {
    anyhow!("AccessRequest {name} not found in namespace {namespace}; list yours with kubectl passport list")
}

/// The AccessRequest `name`.
pub async fn get(session: &Session, name: &str) -> Result<AccessRequest> {
    find(session, name)
        .await?
        .ok_or_else(|| not_found(name, &session.namespace))
}

/// The AccessRequest `name`, if it exists.
pub async fn find(session: &Session, name: &str) -> Result<Option<AccessRequest>> {
    session
        .api::<AccessRequest>()
        .get_opt(name)
        .await
        .map_err(|err| session.failed::<AccessRequest>("get", err))
}

/// Every AccessRequest in the namespace.
pub async fn list(session: &Session) -> Result<Vec<AccessRequest>> {
    Ok(session
        .api::<AccessRequest>()
        .list(&ListParams::default())
        .await
        .map_err(|err| session.failed::<AccessRequest>("list", err))?
        .items)
}

/// Creates `object`; with `dry_run`, only asks the apiserver whether it would (schema and admission
/// run, nothing is stored) and returns the object as it would be.
pub async fn create(session: &Session, object: &AccessRequest, dry_run: bool) -> Result<AccessRequest> {
    let params = PostParams {
        dry_run,
        ..PostParams::default()
    };
    match session.api::<AccessRequest>().create(&params, object).await {
        Ok(created) => Ok(created),
        Err(err) if api_errors::code(&err) == Some(409) => bail!(
            "AccessRequest {} already exists in namespace {}; pick another name, or leave it out for a generated one",
            object.name_any(),
            session.namespace
        ),
        Err(err) => Err(session.failed::<AccessRequest>("create", err)),
    }
}

/// Applies a JSON merge patch to the AccessRequest `name`.
pub async fn patch(session: &Session, name: &str, patch: &serde_json::Value) -> Result<AccessRequest> {
    session
        .api::<AccessRequest>()
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|err| session.failed::<AccessRequest>("patch", err))
}

/// The Events regarding the AccessRequest `name` (events.k8s.io/v1), which outlive it for a while.
pub async fn events(session: &Session, name: &str) -> Result<Vec<Event>> {
    let events = session
        .api::<Event>()
        .list(&ListParams::default().fields(&format!("regarding.name={name}")))
        .await
        .map_err(|err| session.failed::<Event>("list", err))?
        .items;
    Ok(events
        .into_iter()
        .filter(|e| {
            e.regarding
                .as_ref()
                .and_then(|r| r.kind.as_deref())
                .is_none_or(|k| k == "AccessRequest")
        })
        .collect())
}

/// Ok when the request can be used to connect now; else why not and what to do.
pub fn ensure_usable(request: &AccessRequest) -> Result<()> {
    match request.unusable() {
        Some(unusable) => Err(anyhow!("{unusable}")),
        None => Ok(()),
    }
}

/// Ok when `me` is the request's requester: credentials are only ever issued to them, so anyone else
/// is refused at once, in one line, before any key or CredentialRequest is made.
pub fn ensure_mine(request: &AccessRequest, namespace: &str, me: &str) -> Result<()> {
    let owner = &request.spec.requester;
    if owner == me {
        return Ok(());
    }
    bail!(
        "AccessRequest {namespace}/{} belongs to {owner}; you are {me}: refused, you may not use another person's access",
        request.name_any()
    )
}

/// The AccessRequest `name`, refused unless it is the current user's own.
pub async fn get_mine(session: &Session, name: &str) -> Result<AccessRequest> {
    let request = get(session, name).await?;
    let me = session.whoami().await?;
    ensure_mine(&request, &session.namespace, &me.username)?;
    Ok(request)
}

/// The instances the request names, in its order.
pub fn instance_ids(request: &AccessRequest) -> Vec<&str> {
    request
        .spec
        .targets
        .iter()
        .map(|t| t.instance_id.as_str())
        .collect()
}

/// The instance the user means: `wanted` if the request has it; else the only one.
pub fn resolve_instance(request: &AccessRequest, wanted: Option<&str>) -> Result<String> {
    let name = request.name_any();
    let ids = instance_ids(request);
    match (wanted, ids.as_slice()) {
        (Some(wanted), _) if ids.contains(&wanted) => Ok(wanted.to_owned()),
        (Some(wanted), _) => bail!(
            "instance {wanted} is not in AccessRequest {name}; its instances: {}",
            ids.join(", ")
        ),
        (None, [only]) => Ok((*only).to_owned()),
        (None, []) => bail!("AccessRequest {name} names no instance"),
        (None, _) => bail!(
            "AccessRequest {name} has {} instances; name one: kubectl passport connect {name} INSTANCE (one of {})",
            ids.len(),
            ids.join(", ")
        ),
    }
}

/// The status of one target.
pub fn target_status<'a>(request: &'a AccessRequest, instance: &str) -> Option<&'a TargetStatus> {
    request
        .status
        .as_ref()?
        .targets
        .iter()
        .find(|t| t.instance_id == instance)
}

pub fn is_windows(request: &AccessRequest, instance: &str) -> bool {
    target_status(request, instance).is_some_and(|t| t.platform == Some(Platform::Windows))
}

/// The OS user on `instance` as its provisioning reported it (on a Windows domain controller, the
/// request's own domain account), if it did.
pub fn target_username<'a>(request: &'a AccessRequest, instance: &str) -> Option<&'a str> {
    target_status(request, instance).and_then(|t| t.username.as_deref())
}

#[cfg(test)]
mod tests {
    use passport_crds::Phase;

    use super::*;
    use crate::fixtures::{INSTANCE, OTHER_INSTANCE, in_phase};

    #[test]
    fn a_target_may_name_its_own_account() {
        let mut request = crate::fixtures::provisioned_request();
        assert_eq!(target_username(&request, INSTANCE), None);
        if let Some(status) = request.status.as_mut() {
            status.targets[0].username = Some("rs-5f3a9c21-0a1b2c".into());
        }
        assert_eq!(target_username(&request, INSTANCE), Some("rs-5f3a9c21-0a1b2c"));
        assert_eq!(target_username(&request, OTHER_INSTANCE), None);
    }

    #[test]
    fn unusable_requests_say_why_and_what_to_do() {
        let completed = in_phase(&[INSTANCE], Phase::Completed, "");
        assert_eq!(
            ensure_usable(&completed).expect_err("ended").to_string(),
            "AccessRequest db is Completed: access has ended; request access again with `kubectl passport request`"
        );
        let denied = in_phase(&[INSTANCE], Phase::Denied, "denied by carol: not now");
        assert!(ensure_usable(&denied).is_err_and(|e| {
            e.to_string()
                .starts_with("AccessRequest db is Denied: denied by carol: not now; request access again")
        }));
        let pending = in_phase(&[INSTANCE], Phase::Pending, "");
        assert!(
            ensure_usable(&pending)
                .is_err_and(|e| e.to_string().contains("is Pending: it is not approved yet"))
        );
        assert!(ensure_usable(&in_phase(&[INSTANCE], Phase::Active, "")).is_ok());
    }

    #[test]
    fn instances_resolve_or_are_listed() {
        let one = in_phase(&[INSTANCE], Phase::Active, "");
        assert_eq!(resolve_instance(&one, None).ok().as_deref(), Some(INSTANCE));
        let two = in_phase(&[INSTANCE, OTHER_INSTANCE], Phase::Active, "");
        let err = resolve_instance(&two, None).expect_err("ambiguous").to_string();
        assert_eq!(
            err,
            "AccessRequest db has 2 instances; name one: kubectl passport connect db INSTANCE (one of i-0123456789abcdef0, i-0fedcba9876543210)"
        );
        let err = resolve_instance(&two, Some("i-00000000"))
            .expect_err("absent")
            .to_string();
        assert_eq!(
            err,
            "instance i-00000000 is not in AccessRequest db; its instances: i-0123456789abcdef0, i-0fedcba9876543210"
        );
        assert_eq!(
            resolve_instance(&two, Some(OTHER_INSTANCE)).ok().as_deref(),
            Some(OTHER_INSTANCE)
        );
    }

    #[test]
    fn someone_elses_request_is_refused_in_one_line() {
        let request = in_phase(&[INSTANCE], Phase::Active, "");
        assert!(ensure_mine(&request, "team-a", "alice").is_ok());
        assert_eq!(
            ensure_mine(&request, "team-a", "bob")
                .expect_err("not bob's")
                .to_string(),
            "AccessRequest team-a/db belongs to alice; you are bob: refused, you may not use another person's access"
        );
    }

    #[test]
    fn missing_requests_point_to_the_list() {
        assert_eq!(
            not_found("x", "y").to_string(),
            "AccessRequest x not found in namespace y; list yours with kubectl passport list"
        );
    }
}
