//! The CA Secret in the operator's namespace, which only the operator can read: loaded at start,
//! created with fresh keys on the first start. Every replica and every restart uses the same keys.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use passport_core::ssh_ca::{Authority, CaError};

/// The Secret's name; the operator's Role grants get/update on exactly this name.
pub const SECRET_NAME: &str = "passport-ssh-ca";

#[derive(Debug, thiserror::Error)]
pub enum CaSecretError {
    #[error("cannot read or write Secret {namespace}/{SECRET_NAME}: {source}")]
    Api { namespace: String, source: kube::Error },
    #[error(
        "Secret {namespace}/{SECRET_NAME} does not hold a usable SSH CA ({source}); delete it to generate a new CA"
    )]
    Corrupt { namespace: String, source: CaError },
}

/// Loads the authority from its Secret, creating the Secret with fresh keys if there is none.
pub async fn load_or_create(client: Client, namespace: &str) -> Result<Authority, CaSecretError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let api_error = |source| CaSecretError::Api {
        namespace: namespace.to_owned(),
        source,
    };
    let corrupt = |source| CaSecretError::Corrupt {
        namespace: namespace.to_owned(),
        source,
    };
    if let Some(secret) = api.get_opt(SECRET_NAME).await.map_err(api_error)? {
        return Authority::from_secret_data(&data_of(&secret)).map_err(corrupt);
    }
    let authority = Authority::generate().map_err(corrupt)?;
    let data = authority.to_secret_data().map_err(corrupt)?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_owned(),
                "passport".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(namespace, "generated a new SSH CA in Secret {SECRET_NAME}");
            Ok(authority)
        }
        // Another replica won the race: use its keys.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let secret = api.get(SECRET_NAME).await.map_err(api_error)?;
            Authority::from_secret_data(&data_of(&secret)).map_err(corrupt)
        }
        Err(err) => Err(api_error(err)),
    }
}

fn data_of(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}
