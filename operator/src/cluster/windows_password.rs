//! Per-request Windows secrets, in a Secret of the operator's own namespace that only it can read
//! (`passport-windows-<request UID>`); it goes when the request ends.
//!
//! No password ever crosses AWS or the Kubernetes API in clear: each provisioning command carries a
//! one-time RSA public key, the instance makes the password and prints it encrypted to that key
//! (`passport_core::scripts::windows_secret`), and the operator decrypts it here when it reads the
//! command's output. The Secret holds:
//!
//! - `key-<id>`: the private key of each provisioning command (PKCS#8 DER), written before the
//!   command is sent. Kept here rather than in memory so that an operator restart between sending a
//!   command and reading its output (or a send whose answer was lost and is found again later) still
//!   recovers the password; it reveals nothing the Secret does not hold anyway (the passwords), and
//!   once the Secret is gone the ciphertexts SSM keeps in the command output are useless.
//! - `password-<instance id>`: each instance's password, for the CredentialRequest to seal to the CLI.
//!   (Versions before this one kept one `password` for every instance: still read as a fallback.)

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};

use passport_core::{
    lifecycle::Invocation,
    scripts::windows_secret::{self, PasswordKey},
};

use crate::error::Error;

/// The password every instance of a request got from versions that made it in the operator.
const LEGACY_PASSWORD_KEY: &str = "password";

fn name(request_uid: &str) -> String {
    format!("passport-windows-{request_uid}")
}

fn key_entry(key_id: &str) -> String {
    format!("key-{key_id}")
}

fn password_entry(instance_id: &str) -> String {
    format!("password-{instance_id}")
}

/// Adds `entries` to the request's Secret, creating it if needed; other entries stay.
async fn put(
    client: Client,
    namespace: &str,
    request_uid: &str,
    entries: BTreeMap<String, ByteString>,
) -> Result<(), kube::Error> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let secret_name = name(request_uid);
    let patch = serde_json::json!({ "data": entries });
    match api
        .patch(&secret_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(err) => return Err(err),
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.clone()),
            ..ObjectMeta::default()
        },
        data: Some(entries.clone()),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(()),
        // Created meanwhile: add to it.
        Err(kube::Error::Api(status)) if status.code == 409 => api
            .patch(&secret_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ()),
        Err(err) => Err(err),
    }
}

async fn data(
    client: Client,
    namespace: &str,
    request_uid: &str,
) -> Result<BTreeMap<String, ByteString>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    Ok(api
        .get_opt(&name(request_uid))
        .await?
        .and_then(|secret| secret.data)
        .unwrap_or_default())
}

/// A fresh one-time key for one provisioning command, stored before it is used: whatever happens to
/// the operator after the command is sent, its output can be decrypted.
pub async fn new_key(client: Client, namespace: &str, request_uid: &str) -> Result<PasswordKey, Error> {
    // RSA-3072 generation takes about a second of CPU: not on the async runtime's threads.
    let key = tokio::task::spawn_blocking(PasswordKey::generate)
        .await
        .map_err(|err| Error::Internal(format!("password key generation did not finish: {err}")))?
        .map_err(|err| Error::Internal(err.to_string()))?;
    let der = key.to_der().map_err(|err| Error::Internal(err.to_string()))?;
    let entries = BTreeMap::from([(key_entry(key.id()), ByteString(der))]);
    put(client, namespace, request_uid, entries).await?;
    Ok(key)
}

/// Takes what a finished provisioning command printed on one Windows instance: decrypts the password
/// and stores it, then returns the invocation with the encrypted line removed (what the lifecycle,
/// the status and the Events may see). A command that succeeded without a password the operator can
/// decrypt is a failed provisioning: the user would have no usable password. Failing to store it is
/// an error, so the output is read again on the next pass.
pub async fn collect(
    client: Client,
    namespace: &str,
    request_uid: &str,
    instance_id: &str,
    invocation: Invocation,
    shared: Holders,
) -> Result<Invocation, Error> {
    let Invocation::Succeeded { stdout } = invocation else {
        return Ok(scrubbed(invocation));
    };
    let clean = windows_secret::scrub(&stdout);
    let failed = |why: String| {
        Ok(Invocation::Failed {
            message: format!("the provisioning script succeeded but {why}"),
        })
    };
    let stored = data(client.clone(), namespace, request_uid).await?;
    let Some(line) = windows_secret::encrypted_password(&stdout) else {
        // A command of an earlier version, which set the request's one password itself.
        if stored.contains_key(LEGACY_PASSWORD_KEY) {
            return Ok(Invocation::Succeeded { stdout: clean });
        }
        return failed("printed no encrypted password".into());
    };
    let Some(der) = stored.get(&key_entry(&line.key_id)) else {
        return failed(format!(
            "encrypted its password to key {}, which the operator does not hold",
            line.key_id
        ));
    };
    let password = PasswordKey::from_der(&der.0).and_then(|key| key.decrypt(&line.ciphertext));
    let password = match password {
        Ok(password) => password,
        Err(err) => return failed(format!("its password cannot be recovered: {err}")),
    };
    let entry = password_entry(instance_id);
    if stored.get(&entry).map(|p| p.0.as_slice()) != Some(password.as_bytes()) {
        let entries = BTreeMap::from([(entry, ByteString(password.clone().into_bytes()))]);
        put(client.clone(), namespace, request_uid, entries).await?;
    }
    shared
        .share(client, namespace, request_uid, instance_id, &clean, &password)
        .await;
    Ok(Invocation::Succeeded { stdout: clean })
}

/// The other live requests holding the same account on an instance. Several requests of one
/// requester share the local account, and each provisioning sets a new password: the requests that
/// already hold it get the new one too, or their CredentialRequests would hand out a stale one.
/// (Only those already Ready: two provisionings of one account racing each other can still leave one
/// request with the password of the other's run.) Domain controllers give each request its own
/// account, so nothing is shared there.
#[derive(Debug, Clone, Default)]
pub struct Holders {
    /// `(request UID, account on the instance)` of every other live request Ready on the instance.
    pub ready: Vec<(String, String)>,
}

impl Holders {
    async fn share(
        &self,
        client: Client,
        namespace: &str,
        request_uid: &str,
        instance_id: &str,
        stdout: &str,
        password: &str,
    ) {
        let Some(account) = windows_secret::reported_user(stdout) else {
            return;
        };
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let entry = password_entry(instance_id);
        for (uid, _) in self.ready.iter().filter(|(_, held)| *held == account) {
            let patch =
                serde_json::json!({ "data": { entry.clone(): ByteString(password.as_bytes().to_vec()) } });
            // Patched, never created: a request that ended meanwhile keeps no Secret.
            match api
                .patch(&name(uid), &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => tracing::warn!(
                    error = %err, request = request_uid, holder = %uid, instance = instance_id,
                    "cannot give the new Windows password to another request holding the account"
                ),
            }
        }
    }
}

/// The invocation with any encrypted-password line removed from what it says.
pub fn scrubbed(invocation: Invocation) -> Invocation {
    match invocation {
        Invocation::Succeeded { stdout } => Invocation::Succeeded {
            stdout: windows_secret::scrub(&stdout),
        },
        Invocation::Failed { message } => Invocation::Failed {
            message: windows_secret::scrub(&message),
        },
        Invocation::Running => Invocation::Running,
    }
}

/// The instance's Windows password if provisioning reported one; never makes one (a
/// CredentialRequest must hand out the password the instance set).
pub async fn stored(
    client: Client,
    namespace: &str,
    request_uid: &str,
    instance_id: &str,
) -> Result<Option<String>, kube::Error> {
    let data = data(client, namespace, request_uid).await?;
    Ok(data
        .get(&password_entry(instance_id))
        .or_else(|| data.get(LEGACY_PASSWORD_KEY))
        .map(|password| String::from_utf8_lossy(&password.0).into_owned()))
}

/// Forgets the request's Windows passwords and keys once its users are gone.
pub async fn forget(client: Client, namespace: &str, request_uid: &str) -> Result<(), kube::Error> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    match api.delete(&name(request_uid), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err),
    }
}

/// Passes every observed invocation through [`collect`] (Windows targets being provisioned) or
/// [`scrubbed`] (all others) before the lifecycle sees it. An invocation whose password cannot be
/// stored now is left out and noted as an observation error: it is read again on the next pass.
pub async fn take_outputs<F: crate::aws::Fleet>(
    ctx: &crate::controller::Context<F>,
    request_uid: &str,
    status: &passport_crds::AccessRequestStatus,
    observations: &mut passport_core::lifecycle::Observations,
) {
    use passport_crds::access_request::{Platform, TargetState};
    let invocations = std::mem::take(&mut observations.invocations);
    for (instance_id, invocation) in invocations {
        let provisioning_windows = status.targets.iter().any(|t| {
            t.instance_id == instance_id
                && t.platform == Some(Platform::Windows)
                && t.state == TargetState::Provisioning
        });
        if !provisioning_windows {
            observations.invocations.insert(instance_id, scrubbed(invocation));
            continue;
        }
        let holders = ctx.holders.ready_on(&instance_id, request_uid);
        let taken = collect(
            ctx.client.clone(),
            &ctx.namespace,
            request_uid,
            &instance_id,
            invocation,
            holders,
        )
        .await;
        match taken {
            Ok(invocation) => {
                observations.invocations.insert(instance_id, invocation);
            }
            Err(err) => {
                let why = format!("cannot keep the instance's Windows password: {err}");
                observations.errors.insert(instance_id, why);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Method, Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};
    use tower_test::mock::Handle;

    use super::*;

    /// A 3072-bit key and the ciphertext of this password, made by OpenSSL as the script's
    /// `RSACryptoServiceProvider.Encrypt($bytes, $true)` makes it (see passport-core's tests).
    const VECTOR_KEY: &str = include_str!("../../core/src/scripts/windows_secret/vector_key.der.b64");
    const VECTOR_CIPHERTEXT: &str =
        include_str!("../../core/src/scripts/windows_secret/vector_ciphertext.txt");
    const VECTOR_PASSWORD: &str = "Xy7#pQ2!mN4%kL9=wR3?tV6@Ab8^";
    const SECRET_PATH: &str = "/api/v1/namespaces/passport/secrets/passport-windows-uid-1";
    const INSTANCE: &str = "i-0123456789abcdef0";

    /// Base64, as a Secret's data holds it.
    fn b64(bytes: &[u8]) -> Value {
        serde_json::to_value(ByteString(bytes.to_vec())).expect("json")
    }

    fn vector_key() -> PasswordKey {
        let der: ByteString = serde_json::from_value(json!(VECTOR_KEY.trim())).expect("base64");
        PasswordKey::from_der(&der.0).expect("key")
    }

    fn secret(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "passport-windows-uid-1"}, "data": data})
    }

    async fn next(
        handle: &mut Handle<Request<Body>, Response<Body>>,
        method: Method,
    ) -> (Value, tower_test::mock::SendResponse<Response<Body>>) {
        next_at(handle, method, SECRET_PATH).await
    }

    async fn next_at(
        handle: &mut Handle<Request<Body>, Response<Body>>,
        method: Method,
        path: &str,
    ) -> (Value, tower_test::mock::SendResponse<Response<Body>>) {
        let (request, respond) = tokio::time::timeout(Duration::from_secs(30), handle.next_request())
            .await
            .expect("a request came")
            .expect("client alive");
        assert_eq!(request.method(), method);
        assert_eq!(request.uri().path(), path);
        let bytes = request.into_body().collect_bytes().await.expect("body");
        (serde_json::from_slice(&bytes).unwrap_or(Value::Null), respond)
    }

    fn reply(respond: tower_test::mock::SendResponse<Response<Body>>, body: &Value) {
        let bytes = serde_json::to_vec(body).expect("json");
        respond.send_response(Response::builder().body(Body::from(bytes)).expect("response"));
    }

    type Collecting = tokio::task::JoinHandle<Result<Invocation, Error>>;

    /// Starts [`collect`] on a provisioning's `stdout` against a mock apiserver, and answers its read
    /// of the request's Secret, which holds `key`.
    async fn collecting(
        stdout: String,
        holders: Holders,
        key: &PasswordKey,
    ) -> (Collecting, Handle<Request<Body>, Response<Body>>) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let invocation = Invocation::Succeeded { stdout };
        let collected = tokio::spawn(collect(
            client, "passport", "uid-1", INSTANCE, invocation, holders,
        ));
        let (_, respond) = next(&mut handle, Method::GET).await;
        let stored_key = key.to_der().expect("der");
        reply(
            respond,
            &secret(json!({ format!("key-{}", key.id()): b64(&stored_key) })),
        );
        (collected, handle)
    }

    #[tokio::test]
    async fn the_password_is_decrypted_stored_and_scrubbed() {
        let key = vector_key();
        let stdout = format!(
            "passport: created local user rs-5f3a9c21\r\npassport-user: rs-5f3a9c21\r\npassport-password: {} {}\r\npassport: user rs-5f3a9c21 is ready\r\n",
            key.id(),
            VECTOR_CIPHERTEXT.trim()
        );
        let holders = Holders {
            ready: vec![
                ("uid-2".into(), "rs-5f3a9c21".into()),
                ("uid-3".into(), "rs-5f3a9c21-0a1b2c".into()),
            ],
        };
        let (collected, mut handle) = collecting(stdout, holders, &key).await;
        let (patch, respond) = next(&mut handle, Method::PATCH).await;
        let entry = format!("password-{INSTANCE}");
        assert_eq!(
            patch,
            json!({"data": {entry.clone(): b64(VECTOR_PASSWORD.as_bytes())}})
        );
        reply(respond, &secret(json!({})));
        // The other request holding the same account gets the new password too; the one holding
        // another account (a domain controller's) does not.
        let other = "/api/v1/namespaces/passport/secrets/passport-windows-uid-2";
        let (patch, respond) = next_at(&mut handle, Method::PATCH, other).await;
        assert_eq!(
            patch,
            json!({"data": {entry.clone(): b64(VECTOR_PASSWORD.as_bytes())}})
        );
        reply(respond, &secret(json!({})));
        let Invocation::Succeeded { stdout } = collected.await.expect("task").expect("collected") else {
            panic!("not a success")
        };
        assert!(!stdout.contains("passport-password") && !stdout.contains(&VECTOR_CIPHERTEXT[..32]));
        assert!(stdout.contains("passport-user: rs-5f3a9c21") && stdout.contains("is ready"));
    }

    #[tokio::test]
    async fn without_a_password_it_could_decrypt_the_provisioning_failed() {
        let key = vector_key();
        for (stdout, why) in [
            (
                "passport: user rs-5f3a9c21 is ready\n".to_owned(),
                "printed no encrypted password",
            ),
            (
                format!(
                    "passport-password: 0123456789abcdef {}\n",
                    VECTOR_CIPHERTEXT.trim()
                ),
                "to key 0123456789abcdef, which the operator does not hold",
            ),
            (
                format!("passport-password: {} QUJD\n", key.id()),
                "its password cannot be recovered",
            ),
        ] {
            let (collected, _handle) = collecting(stdout, Holders::default(), &key).await;
            let Invocation::Failed { message } = collected.await.expect("task").expect("collected") else {
                panic!("not a failure")
            };
            assert!(message.contains(why), "{message}");
            assert!(!message.contains(&VECTOR_CIPHERTEXT[..32]));
        }
    }

    #[tokio::test]
    async fn each_instance_has_its_own_password_and_older_requests_their_one() {
        for (data, expected) in [
            (
                json!({ format!("password-{INSTANCE}"): b64(b"mine"), "password": b64(b"old") }),
                Some("mine"),
            ),
            (json!({ "password": b64(b"old") }), Some("old")),
            (json!({ "password-i-0000000000000000f": b64(b"other") }), None),
        ] {
            let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let client = Client::new(service, "default");
            let read = tokio::spawn(stored(client, "passport", "uid-1", INSTANCE));
            let (_, respond) = next(&mut handle, Method::GET).await;
            reply(respond, &secret(data));
            assert_eq!(read.await.expect("task").expect("read").as_deref(), expected);
        }
    }

    #[test]
    fn other_outputs_are_scrubbed() {
        let line = format!("passport-password: 0123456789abcdef {}", VECTOR_CIPHERTEXT.trim());
        let Invocation::Failed { message } = scrubbed(Invocation::Failed {
            message: format!("Failed (exit code 1): {line}\nboom"),
        }) else {
            panic!("still a failure")
        };
        assert_eq!(message, "boom");
        assert_eq!(scrubbed(Invocation::Running), Invocation::Running);
    }
}
