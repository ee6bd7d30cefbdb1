//! The status writers: every controller writes status through [`write`] (fenced by
//! resourceVersion) or [`write_if`] (fenced by the values a decision read).

use std::time::Duration;

use kube::{
    Api, Resource,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::Error;

/// How long a status write may take before the reconcile gives up on it (and retries).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes `status` with a deadline, so a slow apiserver cannot stall a reconcile forever. With
/// `resource_version`, the write applies only to the object the decision was made on: a decision
/// from a stale cache is refused ([`Error::Conflict`]) instead of overwriting newer status.
/// Returns the object's new resourceVersion.
pub async fn write<K>(
    api: &Api<K>,
    name: &str,
    resource_version: Option<&str>,
    status: &impl Serialize,
) -> Result<Option<String>, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut body = serde_json::json!({ "status": status });
    if let Some(version) = resource_version {
        body["metadata"] = serde_json::json!({ "resourceVersion": version });
    }
    let (params, patch) = (PatchParams::default(), Patch::Merge(body));
    let write = api.patch_status(name, &params, &patch);
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(Err(kube::Error::Api(status))) if status.code == 409 => Err(Error::Conflict),
        Ok(result) => result
            .map(|written| written.meta().resource_version.clone())
            .map_err(Error::from),
        Err(_) => Err(Error::StatusTimeout(WRITE_TIMEOUT)),
    }
}

/// Writes `status` only if the object still holds each `(JSON pointer, value)` of `expected` (a
/// missing member counts as null), with a deadline. Unlike a resourceVersion fence, changes
/// elsewhere (labels, annotations) do not refuse the write, so metadata churn cannot starve it; a
/// change to anything expected is refused ([`Error::Conflict`]).
pub async fn write_if<K>(
    api: &Api<K>,
    name: &str,
    expected: &[(&str, serde_json::Value)],
    status: &impl Serialize,
) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    write_at_if(api, name, expected, "/status", status).await
}

/// Like [`write_if`], for one member of the status (`path`, e.g. `/status/targets`): the rest of the
/// status, which others may have changed meanwhile (a Logbook entry appended, `delivered` advanced),
/// is left as it is.
pub async fn write_at_if<K>(
    api: &Api<K>,
    name: &str,
    expected: &[(&str, serde_json::Value)],
    path: &str,
    value: &impl Serialize,
) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut operations: Vec<serde_json::Value> = expected
        .iter()
        .map(|(path, value)| serde_json::json!({ "op": "test", "path": path, "value": value }))
        .collect();
    operations.push(serde_json::json!({ "op": "add", "path": path, "value": value }));
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(operations))
        .map_err(|err| Error::Internal(err.to_string()))?;
    let (params, patch) = (PatchParams::default(), Patch::Json::<()>(patch));
    let write = api.patch_status(name, &params, &patch);
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        // A failed `test` (422), or a conflicting write racing this one (409).
        Ok(Err(kube::Error::Api(status))) if status.code == 409 || status.code == 422 => Err(Error::Conflict),
        Ok(result) => result.map(|_| ()).map_err(Error::from),
        Err(_) => Err(Error::StatusTimeout(WRITE_TIMEOUT)),
    }
}
