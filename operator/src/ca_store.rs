//! The SSH CA and the username key, kept in one Secret in the operator's namespace that only the
//! operator can read. Generated on first start; every replica and every restart uses the same keys.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use rand_core::{OsRng, RngCore};

use crate::ssh_ca::{CaError, CaKeys};

/// The Secret's name; the operator's Role grants get/update on exactly this name.
pub const SECRET_NAME: &str = "passport-ssh-ca";
/// The data key of the HMAC key that masks requester names into `rs-…` usernames.
const USERNAME_KEY: &str = "username-key";

/// What the Secret holds.
#[derive(Debug)]
pub struct Authority {
    pub ca: CaKeys,
    /// Never logged: with it, usernames could be linked back to requesters by brute force.
    pub username_key: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaStoreError {
    #[error("cannot read or write Secret {namespace}/{SECRET_NAME}: {source}")]
    Api { namespace: String, source: kube::Error },
    #[error(
        "Secret {namespace}/{SECRET_NAME} does not hold a usable SSH CA ({source}); delete it to generate a new CA"
    )]
    Corrupt { namespace: String, source: CaError },
}

/// Loads the CA from its Secret, creating the Secret with fresh keys if there is none.
pub async fn load_or_create(client: Client, namespace: &str) -> Result<Authority, CaStoreError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let api_error = |source| CaStoreError::Api {
        namespace: namespace.to_owned(),
        source,
    };
    if let Some(secret) = api.get_opt(SECRET_NAME).await.map_err(api_error)? {
        return parse(&secret, namespace);
    }
    let authority = Authority {
        ca: generate(namespace)?,
        username_key: random_key(),
    };
    let mut data = authority
        .ca
        .to_secret_data()
        .map_err(|source| CaStoreError::Corrupt {
            namespace: namespace.to_owned(),
            source,
        })?;
    data.insert(USERNAME_KEY.to_owned(), authority.username_key.clone());
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
            parse(&api.get(SECRET_NAME).await.map_err(api_error)?, namespace)
        }
        Err(err) => Err(api_error(err)),
    }
}

fn parse(secret: &Secret, namespace: &str) -> Result<Authority, CaStoreError> {
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let corrupt = |source| CaStoreError::Corrupt {
        namespace: namespace.to_owned(),
        source,
    };
    let ca = CaKeys::from_secret_data(&data).map_err(corrupt)?;
    let username_key = data
        .get(USERNAME_KEY)
        .filter(|k| k.len() >= 32)
        .cloned()
        .ok_or_else(|| corrupt(CaError::MissingCaKey { entry: USERNAME_KEY }))?;
    Ok(Authority { ca, username_key })
}

fn generate(namespace: &str) -> Result<CaKeys, CaStoreError> {
    CaKeys::generate().map_err(|source| CaStoreError::Corrupt {
        namespace: namespace.to_owned(),
        source,
    })
}

fn random_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    OsRng.fill_bytes(&mut key);
    key
}
