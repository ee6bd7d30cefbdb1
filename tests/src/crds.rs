//! Installing passport's CRDs the way a user would, and waiting until the apiserver serves them.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    runtime::wait::conditions,
};
use local_controlplane::wait;

/// Server-side applies every passport CRD and waits for each to be Established.
pub async fn install(client: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("passport-tests").force();
    for crd in passport_crds::all_crds() {
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("applying CRD {name}"))?;
        wait::object(
            &api,
            &name,
            Duration::from_secs(30),
            conditions::is_crd_established(),
        )
        .await
        .with_context(|| format!("CRD {name} was not Established"))?;
    }
    Ok(())
}
