//! The connection to the cluster, made the way kubectl makes it (see [`super::kubeconfig`]), `-n` or
//! the context's namespace; and who the cluster says we are, asked once.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::{Api, Client, Resource, api::PostParams, core::NamespaceResourceScope};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::OnceCell;

use super::{api_errors, kubeconfig};

/// Which kubeconfig, context and namespace to use; `None` for kubectl's defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection<'a> {
    pub kubeconfig: Option<&'a Path>,
    pub context: Option<&'a str>,
    pub namespace: Option<&'a str>,
}

/// The authenticated user, as the apiserver sees them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    pub username: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// The groups to claim on objects for approval by group: every group but
    /// `system:authenticated`, which everyone has and no policy should match on.
    pub fn claimed_groups(&self) -> Vec<String> {
        self.groups
            .iter()
            .filter(|g| g.as_str() != "system:authenticated" && !g.is_empty() && !g.contains(','))
            .cloned()
            .collect()
    }
}

pub struct Session {
    pub client: Client,
    pub namespace: String,
    /// The context in use, by name (passed on to the ProxyCommand, and part of the cache path).
    pub context: String,
    /// A single kubeconfig file to pass on to child invocations, when one was named.
    pub kubeconfig: Option<PathBuf>,
    identity: OnceCell<Identity>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("namespace", &self.namespace)
            .field("context", &self.context)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub async fn connect(selection: Selection<'_>) -> Result<Self> {
        let found = kubeconfig::find(selection.kubeconfig)?;
        let (context, config) = kubeconfig::client_config(found.kubeconfig, selection.context).await?;
        let namespace = selection
            .namespace
            .map_or_else(|| config.default_namespace.clone(), str::to_owned);
        let client = Client::try_from(config).context("cannot set up the Kubernetes client")?;
        // An explicit --kubeconfig is always passed on; a single KUBECONFIG file too, so that the
        // ssh config keeps working from a shell without KUBECONFIG.
        Ok(Self {
            client,
            namespace,
            context,
            kubeconfig: found.file,
            identity: OnceCell::new(),
        })
    }

    /// The cluster's own answer to "who am I" (SelfSubjectReview), asked once per run.
    pub async fn whoami(&self) -> Result<&Identity> {
        self.identity
            .get_or_try_init(|| async {
                let api: Api<SelfSubjectReview> = Api::all(self.client.clone());
                let review = api
                    .create(&PostParams::default(), &SelfSubjectReview::default())
                    .await
                    .map_err(|err| api_errors::explain(err, "create", "selfsubjectreviews", "(cluster)"))?;
                let info = review
                    .status
                    .and_then(|s| s.user_info)
                    .ok_or_else(|| anyhow!("the cluster's SelfSubjectReview names no user"))?;
                Ok(Identity {
                    username: info.username.unwrap_or_default(),
                    groups: info.groups.unwrap_or_default(),
                })
            })
            .await
    }

    /// The apiserver's version, e.g. `v1.34.1`.
    pub async fn server_version(&self) -> Result<String> {
        self.client
            .apiserver_version()
            .await
            .map(|info| info.git_version)
            .map_err(|err| api_errors::explain(err, "get", "version", "(cluster)"))
    }

    /// Objects of kind `K` in the session's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A failed call `verb` on kind `K` in the session's namespace, in a user's words.
    pub fn failed<K>(&self, verb: &str, err: kube::Error) -> anyhow::Error
    where
        K: Resource<DynamicType = ()>,
    {
        api_errors::explain(err, verb, &K::plural(&()), &self.namespace)
    }

    /// Creates `object` in the session's namespace.
    pub async fn create<K>(&self, object: &K) -> Result<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + Serialize
            + DeserializeOwned,
    {
        self.api::<K>()
            .create(&PostParams::default(), object)
            .await
            .map_err(|err| self.failed::<K>("create", err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_groups_leave_out_system_authenticated() {
        let identity = |groups: &[&str]| Identity {
            username: "alice".into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        };
        assert_eq!(
            identity(&["developers", "system:authenticated", "sre"]).claimed_groups(),
            vec!["developers", "sre"]
        );
        assert!(identity(&["system:authenticated"]).claimed_groups().is_empty());
    }
}
