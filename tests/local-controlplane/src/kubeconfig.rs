//! Kubeconfig files for the local control plane, with every certificate embedded so a file works on
//! its own with the real `kubectl`.

use base64::{Engine, engine::general_purpose::STANDARD};
use kube::config::{AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};

use crate::pki::CertPair;

/// A kubeconfig for `user` (authenticated by `cert`) on the cluster `cluster` at `server`: one
/// cluster, one user, one context `<user>@<cluster>` with namespace `default`, selected.
pub fn render(cluster: &str, server: &str, ca_pem: &str, user: &str, cert: &CertPair) -> Kubeconfig {
    let context = format!("{user}@{cluster}");
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: cluster.to_owned(),
            cluster: Some(Cluster {
                server: Some(server.to_owned()),
                certificate_authority_data: Some(STANDARD.encode(ca_pem)),
                ..Cluster::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user.to_owned(),
            auth_info: Some(AuthInfo {
                client_certificate_data: Some(STANDARD.encode(&cert.cert_pem)),
                client_key_data: Some(STANDARD.encode(&cert.key_pem).into()),
                ..AuthInfo::default()
            }),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: context.clone(),
            context: Some(Context {
                cluster: cluster.to_owned(),
                user: Some(user.to_owned()),
                namespace: Some("default".to_owned()),
                ..Context::default()
            }),
            other: Default::default(),
        }],
        current_context: Some(context),
        ..Kubeconfig::default()
    }
}
