//! What can go wrong in a reconcile or at the cluster edge, once: the metric label and the Event/condition reason derive
//! from the variant.

use std::time::Duration;

use passport_core::{
    credentials::seal::SealError, logbook::camel_case, scripts::ScriptError, ssh_ca::CaError,
};
use passport_crds::duration::InvalidDuration;

#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// The object changed since it was read; the next reconcile decides on the fresh one.
    #[error("the object changed while it was reconciled; retrying on the current version")]
    Conflict,
    #[error("status write did not finish within {0:?}")]
    StatusTimeout(Duration),
    #[error("object has no {0}")]
    MissingMetadata(&'static str),
    /// A field the schema should have rejected (an older schema, a direct etcd write).
    #[error("{0}; fix the field (the schema normally rejects such values)")]
    InvalidField(#[from] InvalidDuration),
    #[error("cannot build the script: {0}")]
    Script(#[from] ScriptError),
    #[error("cannot sign the certificate: {0}")]
    Sign(#[source] CaError),
    #[error("cannot seal a secret: {0}")]
    Seal(#[from] SealError),
    /// Not a failure of this reconcile: the status says AWS is failing, and it retries.
    #[error("AWS would not issue the session; retrying")]
    AwsUnavailable,
    #[error("cannot read the targets' EC2 tags, which an AccessPolicy selects by: {0}")]
    TargetTags(String),
    #[error("the AccessRequest has Windows targets but no stored Windows password")]
    WindowsPasswordMissing,
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A stable label for the failures metric: the variant in `snake_case`.
    pub fn metric_label(&self) -> &'static str {
        self.into()
    }

    /// The Event and condition reason: the variant in `CamelCase`.
    pub fn reason(&self) -> String {
        camel_case(self.metric_label())
    }

    /// Failures that are part of normal operation and retried at once: not worth a Warning.
    pub fn is_routine(&self) -> bool {
        matches!(self, Error::Conflict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_reasons_derive_from_the_variant() {
        let err = Error::StatusTimeout(Duration::from_secs(10));
        assert_eq!(err.metric_label(), "status_timeout");
        assert_eq!(err.reason(), "StatusTimeout");
        assert_eq!(Error::WindowsPasswordMissing.reason(), "WindowsPasswordMissing");
        assert!(Error::Conflict.is_routine() && !Error::AwsUnavailable.is_routine());
    }
}
