//! Turning failures into the one line a person reads: API errors with what to do about them,
//! error chains flattened, clap's multi-line usage errors condensed.

use anyhow::anyhow;

/// Prefix of every error line, as kubectl plugins conventionally print them.
pub const PREFIX: &str = "kubectl-passport: error: ";

pub const NO_KUBECONFIG: &str = "no kubeconfig: set KUBECONFIG or pass --kubeconfig";

/// An error chain as one line: causes joined by ": ", newlines folded, repeated causes dropped.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = fold(&cause.to_string());
        if text.is_empty() || parts.iter().any(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// Collapses whitespace runs (newlines included) into single spaces.
pub fn fold(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// clap's rendered error (several lines, with usage) as one line.
pub fn clap_line(rendered: &str) -> String {
    let mut parts = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        parts.push(line.strip_prefix("error: ").unwrap_or(line).to_owned());
    }
    format!("{}; see kubectl passport --help", parts.join(" "))
}

/// Which ClusterRole grants rights on `resource`.
fn role_for(resource: &str) -> &'static str {
    if resource.starts_with("accessreviews") {
        "passport-approver"
    } else {
        "passport-requester"
    }
}

/// An API call's failure in the words a user acts on. `verb` and `resource` name the call (e.g.
/// `create`, `credentialrequests`); `namespace` is where it went.
pub fn api(err: kube::Error, verb: &str, resource: &str, namespace: &str) -> anyhow::Error {
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

/// The message for an AccessRequest that does not exist.
pub fn request_not_found(name: &str, namespace: &str) -> anyhow::Error {
    anyhow!("AccessRequest {name} not found in namespace {namespace}; list yours with kubectl passport list")
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
            api(err, "create", "accessrequests", "team-a").to_string(),
            "you may not create accessrequests in namespace team-a: ask an administrator to bind ClusterRole passport-requester"
        );
        let err = api_error(
            403,
            "Forbidden",
            "User \"alice\" cannot create resource \"accessreviews\"",
        );
        assert!(
            api(err, "create", "accessreviews", "y")
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
        let line = api(err, "create", "accessrequests", "y").to_string();
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
        let line = api(err, "patch", "accessrequests", "y").to_string();
        assert!(
            line.contains("spec.duration may only grow (extend the request)"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn not_found_and_no_kubeconfig_lines() {
        assert_eq!(
            request_not_found("x", "y").to_string(),
            "AccessRequest x not found in namespace y; list yours with kubectl passport list"
        );
        assert_eq!(
            NO_KUBECONFIG,
            "no kubeconfig: set KUBECONFIG or pass --kubeconfig"
        );
    }

    #[test]
    fn chains_become_one_line_without_repeats() {
        let err = anyhow!("inner\nproblem").context("middle").context("outer");
        assert_eq!(one_line(&err), "outer: middle: inner problem");
        let err = anyhow!("same").context("same");
        assert_eq!(one_line(&err), "same");
    }

    #[test]
    fn clap_errors_become_one_line() {
        let rendered = "error: invalid value 'dsa' for '--key-type <KEY_TYPE>'\n  [possible values: ed25519, rsa]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_line(rendered),
            "invalid value 'dsa' for '--key-type <KEY_TYPE>' [possible values: ed25519, rsa]; see kubectl passport --help"
        );
        let rendered = "error: the following required arguments were not provided:\n  --reason <REASON>\n\nUsage: kubectl passport request --instance <INSTANCE_ID> --reason <REASON> [NAME]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_line(rendered),
            "the following required arguments were not provided: --reason <REASON>; see kubectl passport --help"
        );
    }
}
