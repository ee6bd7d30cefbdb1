//! API failures in the words a user acts on: which ClusterRole to ask for, whether passport is
//! installed, or the apiserver's own message (schema and admission refusals name the field and the fix).

use anyhow::anyhow;

use crate::ui::errors::fold;

/// Which ClusterRole grants rights on `resource`.
fn role_for(resource: &str) -> &'static str {
    if resource.starts_with("accessreviews") {
        "passport-approver"
    } else {
        "passport-requester"
    }
}

/// An API call's failure. `verb` and `resource` name the call (e.g. `create`, `credentialrequests`);
/// `namespace` is where it went.
pub fn explain(err: kube::Error, verb: &str, resource: &str, namespace: &str) -> anyhow::Error {
    match err {
        kube::Error::Api(status) => {
            let message = fold(&status.message);
            match status.code {
                403 if is_rbac_denial(&message) => anyhow!(
                    "you may not {verb} {resource} in namespace {namespace}: ask an administrator to bind ClusterRole {}",
                    role_for(resource)
                ),
                403 => anyhow!("refused: {message}"),
                401 => anyhow!(
                    "the cluster did not accept your credentials (401 Unauthorized): log in again or check your kubeconfig"
                ),
                404 if message.contains("the server could not find the requested resource") => anyhow!(
                    "the cluster does not serve {resource}.passport.dev: is passport installed? (kubectl get crd {resource}.passport.dev)"
                ),
                _ if message.is_empty() => {
                    anyhow!("{verb} {resource} failed: {} {}", status.code, status.reason)
                }
                _ => anyhow!("{message}"),
            }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            anyhow!(
                "cannot reach the Kubernetes API server: {}",
                fold(&err.to_string())
            )
        }
        other => anyhow!("{verb} {resource}: {}", fold(&other.to_string())),
    }
}

/// RBAC refusals say `User "x" cannot <verb> resource ...`; admission refusals do not.
fn is_rbac_denial(message: &str) -> bool {
    message.contains(" cannot ") && message.contains("resource")
}

/// The status code of an API error, if it is one.
pub fn code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn rbac_denial_names_the_verb_the_namespace_and_the_role() {
        let err = api_error(
            403,
            "Forbidden",
            "accessrequests.passport.dev is forbidden: User \"bob\" cannot create resource \"accessrequests\" in API group \"passport.dev\" in the namespace \"team-a\"",
        );
        assert_eq!(
            explain(err, "create", "accessrequests", "team-a").to_string(),
            "you may not create accessrequests in namespace team-a: ask an administrator to bind ClusterRole passport-requester"
        );
        let err = api_error(
            403,
            "Forbidden",
            "User \"alice\" cannot create resource \"accessreviews\"",
        );
        assert!(
            explain(err, "create", "accessreviews", "y")
                .to_string()
                .ends_with("ClusterRole passport-approver")
        );
    }

    #[test]
    fn admission_denial_keeps_the_apiserver_words() {
        let err = api_error(
            403,
            "Forbidden",
            "accessrequests.passport.dev \"x\" is forbidden: ValidatingAdmissionPolicy 'passport-identity' with binding 'passport-identity' denied request: spec.requester must be your own username (bob)",
        );
        let line = explain(err, "create", "accessrequests", "y").to_string();
        assert!(line.starts_with("refused: "), "{line}");
        assert!(
            line.contains("spec.requester must be your own username (bob)"),
            "{line}"
        );
    }

    #[test]
    fn invalid_objects_show_the_schema_message() {
        let err = api_error(
            422,
            "Invalid",
            "AccessRequest.passport.dev \"r\" is invalid: spec.duration: Invalid value: \"string\": spec.duration may only grow\n(extend the request); it cannot be shortened",
        );
        let line = explain(err, "patch", "accessrequests", "y").to_string();
        assert!(
            line.contains("spec.duration may only grow (extend the request)"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
