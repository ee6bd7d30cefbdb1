//! Questions about one AccessRequest that several verbs ask: its phase, whether it can be used now
//! (and if not, what to do), and which of its instances the user means.

use anyhow::{Result, anyhow, bail};
use kube::ResourceExt;
use passport_crds::{
    AccessRequest, Phase,
    access_request::{Platform, TargetStatus},
    common::condition_types::APPROVED,
};

pub fn phase(request: &AccessRequest) -> Phase {
    request.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// The request's instances, as `--instance` flags for a new request.
fn instance_flags(request: &AccessRequest) -> String {
    request
        .spec
        .targets
        .iter()
        .map(|t| format!("--instance {}", t.instance_id))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why `request` cannot be used now and what to do, or None when it is Active.
pub fn not_active(request: &AccessRequest) -> Option<String> {
    let name = request.name_any();
    let status = request.status.clone().unwrap_or_default();
    let again = format!(
        "request access again with kubectl passport request {} --reason …",
        instance_flags(request)
    );
    let said = |fallback: &str| {
        let message = status.message.trim();
        if message.is_empty() {
            fallback.to_owned()
        } else {
            message.to_owned()
        }
    };
    let why = match status.phase {
        Phase::Active => return None,
        Phase::Pending => {
            let approval = status
                .conditions
                .iter()
                .find(|c| c.type_ == APPROVED)
                .map(|c| c.message.trim().to_owned())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "it is not approved yet".to_owned());
            format!("{approval}; follow it with kubectl passport get {name}")
        }
        Phase::Provisioning => format!(
            "the user is still being created on its instances; wait with kubectl wait --for=condition=Ready ar/{name}"
        ),
        Phase::Revoking => format!("access is being revoked; {again}"),
        Phase::Completed | Phase::Expired => format!("access has ended; {again}"),
        Phase::Denied => format!("{}; {again}", said("it was denied")),
        Phase::Failed => format!("{}; {again}", said("it could not be provisioned")),
    };
    Some(format!("AccessRequest {name} is {:?}: {why}", status.phase))
}

pub fn ensure_active(request: &AccessRequest) -> Result<()> {
    match not_active(request) {
        Some(message) => Err(anyhow!(message)),
        None => Ok(()),
    }
}

/// The instance the user means: `wanted` if the request has it; else the only one.
pub fn resolve_instance(request: &AccessRequest, wanted: Option<&str>) -> Result<String> {
    let name = request.name_any();
    let ids: Vec<&str> = request
        .spec
        .targets
        .iter()
        .map(|t| t.instance_id.as_str())
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use passport_crds::{AccessRequestSpec, access_request::AccessRequestStatus};

    fn request(ids: &[&str], phase: Phase, message: &str) -> AccessRequest {
        let mut request = AccessRequest::new("db", AccessRequestSpec::new("alice", "r", ids.iter().copied()));
        request.status = Some(AccessRequestStatus {
            phase,
            message: message.into(),
            ..Default::default()
        });
        request
    }

    #[test]
    fn completed_requests_say_access_has_ended() {
        let r = request(&["i-0123456789abcdef0"], Phase::Completed, "");
        assert_eq!(
            not_active(&r).as_deref(),
            Some(
                "AccessRequest db is Completed: access has ended; request access again with kubectl passport request --instance i-0123456789abcdef0 --reason …"
            )
        );
        let denied = request(
            &["i-0123456789abcdef0"],
            Phase::Denied,
            "denied by carol: not now",
        );
        assert!(not_active(&denied).is_some_and(|m| {
            m.starts_with("AccessRequest db is Denied: denied by carol: not now; request access again")
        }));
        let pending = request(&["i-0123456789abcdef0"], Phase::Pending, "");
        assert!(not_active(&pending).is_some_and(|m| m.contains("is Pending: it is not approved yet")));
        assert!(not_active(&request(&["i-0123456789abcdef0"], Phase::Active, "")).is_none());
    }

    #[test]
    fn instances_resolve_or_are_listed() {
        let one = request(&["i-0123456789abcdef0"], Phase::Active, "");
        assert_eq!(
            resolve_instance(&one, None).ok().as_deref(),
            Some("i-0123456789abcdef0")
        );
        let two = request(&["i-0123456789abcdef0", "i-0fedcba9876543210"], Phase::Active, "");
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
            resolve_instance(&two, Some("i-0fedcba9876543210"))
                .ok()
                .as_deref(),
            Some("i-0fedcba9876543210")
        );
    }
}
