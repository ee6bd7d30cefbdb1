//! Start-up checks that turn a misconfigured cluster into one clear message instead of a crash loop
//! of watch errors.

use kube::Client;

/// What the operator needs the cluster to serve: `(plural, kind)` in passport.dev/v1alpha1.
const REQUIRED: [(&str, &str); 5] = [
    ("accessrequests", "AccessRequest"),
    ("awsaccounts", "AwsAccount"),
    ("accesspolicies", "AccessPolicy"),
    ("accessreviews", "AccessReview"),
    ("credentialrequests", "CredentialRequest"),
];

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "CRD {plural}.{group} ({kind}) is not installed in this cluster; install passport's CRDs with \
         `kubectl apply -f deploy/crds.yaml` (or `helm install passport charts/passport`) and start the operator again"
    )]
    MissingCrd {
        plural: &'static str,
        kind: &'static str,
        group: &'static str,
    },
    #[error("cannot reach the Kubernetes API to look for passport's CRDs: {0}")]
    Api(#[source] kube::Error),
}

/// Checks, through discovery (which every authenticated identity may read), that each passport CRD
/// is served at the version this operator speaks.
pub async fn check_crds(client: &Client) -> Result<(), PreflightError> {
    let group = passport_crds::GROUP;
    let version = format!("{group}/{}", passport_crds::VERSION);
    let served = match client.list_api_group_resources(&version).await {
        Ok(list) => list.resources.into_iter().map(|r| r.name).collect::<Vec<_>>(),
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(err) => return Err(PreflightError::Api(err)),
    };
    match REQUIRED
        .iter()
        .find(|(plural, _)| !served.iter().any(|s| s == plural))
    {
        Some(&(plural, kind)) => Err(PreflightError::MissingCrd { plural, kind, group }),
        None => Ok(()),
    }
}
