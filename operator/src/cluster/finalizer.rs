//! Adding and removing passport's finalizer explicitly, each guarded by a JSON patch `test` so that a
//! concurrent change to the finalizer list fails the patch (409/422) instead of being overwritten.

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::de::DeserializeOwned;

use crate::error::Error;

/// Whether `object` carries `finalizer`.
pub fn has<K: Resource>(object: &K, finalizer: &str) -> bool {
    object.finalizers().iter().any(|f| f == finalizer)
}

/// Adds `finalizer`; returns the object as the apiserver now has it.
pub async fn add<K>(api: &Api<K>, object: &K, finalizer: &str) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let operations = if object.finalizers().is_empty() {
        serde_json::json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": [finalizer] },
        ])
    } else {
        serde_json::json!([
            { "op": "test", "path": "/metadata/finalizers", "value": object.finalizers() },
            { "op": "add", "path": "/metadata/finalizers/-", "value": finalizer },
        ])
    };
    patch(api, object, operations).await
}

/// Removes `finalizer`, letting a deletion complete. Nothing to do if it is not there.
pub async fn remove<K>(api: &Api<K>, object: &K, finalizer: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(index) = object.finalizers().iter().position(|f| f == finalizer) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let operations = serde_json::json!([
        { "op": "test", "path": path, "value": finalizer },
        { "op": "remove", "path": path },
    ]);
    match patch(api, object, operations).await {
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}

async fn patch<K>(api: &Api<K>, object: &K, operations: serde_json::Value) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().ok_or(Error::MissingMetadata("name"))?;
    let operations: json_patch::Patch =
        serde_json::from_value(operations).map_err(|err| Error::Internal(err.to_string()))?;
    match api
        .patch(&name, &PatchParams::default(), &Patch::Json::<()>(operations))
        .await
    {
        // A failed `test`: someone changed the finalizers meanwhile; decide again on the new object.
        Err(kube::Error::Api(status)) if status.code == 422 || status.code == 409 => Err(Error::Conflict),
        result => result.map_err(Error::from),
    }
}
