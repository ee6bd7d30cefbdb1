//! Per-request secrets the operator must keep between reconciles (the Windows password), in Secrets
//! of the operator's own namespace that only it can read. They go when the request ends.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, PostParams},
};

use passport_core::scripts::generate_password;

const PASSWORD_KEY: &str = "password";

fn name(request_uid: &str) -> String {
    format!("passport-windows-{request_uid}")
}

/// The request's Windows password: the one already stored, or a new one (so a retried provisioning
/// command sets the same password).
pub async fn ensure(client: Client, namespace: &str, request_uid: &str) -> Result<String, kube::Error> {
    if let Some(password) = stored(client.clone(), namespace, request_uid).await? {
        return Ok(password);
    }
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let secret_name = name(request_uid);
    let password = generate_password();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.clone()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            PASSWORD_KEY.to_owned(),
            ByteString(password.clone().into_bytes()),
        )])),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(password),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let stored = api
                .get(&secret_name)
                .await?
                .data
                .and_then(|d| d.get(PASSWORD_KEY).cloned());
            Ok(stored
                .map(|p| String::from_utf8_lossy(&p.0).into_owned())
                .unwrap_or(password))
        }
        Err(err) => Err(err),
    }
}

/// The request's Windows password if one was made; never makes one (a CredentialRequest must hand
/// out the password provisioning set, not a new one).
pub async fn stored(
    client: Client,
    namespace: &str,
    request_uid: &str,
) -> Result<Option<String>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    Ok(api
        .get_opt(&name(request_uid))
        .await?
        .and_then(|secret| secret.data)
        .and_then(|data| data.get(PASSWORD_KEY).cloned())
        .map(|password| String::from_utf8_lossy(&password.0).into_owned()))
}

/// Forgets the request's Windows password once its users are gone.
pub async fn forget(client: Client, namespace: &str, request_uid: &str) -> Result<(), kube::Error> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    match api.delete(&name(request_uid), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err),
    }
}
