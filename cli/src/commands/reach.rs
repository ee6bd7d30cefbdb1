//! What `connect` and ssh's ProxyCommand both start from: a request that can be used now, the
//! instance meant, how to reach it, and credentials that last long enough.

use std::time::Duration;

use anyhow::Result;
use passport_crds::AccessRequest;

use crate::{
    args::TunnelArgs,
    cluster::{access_request, credential_request, session::Session},
    transport::{direct, session_manager},
    workstation::{
        issued::{Issued, Need},
        key_dir::KeyDir,
    },
};

/// A certificate must last this much longer to be used as it is.
const MIN_VALIDITY: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Reach {
    pub request: AccessRequest,
    pub instance: String,
    /// `HOST:PORT` to reach the instance over plain TCP; `None` for Session Manager.
    pub direct: Option<String>,
    pub keys: KeyDir,
    pub issued: Issued,
}

/// Gets ready to reach `instance` (default: the only one) of the AccessRequest `name`.
pub async fn reach(
    session: &Session,
    name: &str,
    instance: Option<&str>,
    tunnel: &TunnelArgs,
) -> Result<Reach> {
    let request = access_request::get_mine(session, name).await?;
    access_request::ensure_usable(&request)?;
    let instance = access_request::resolve_instance(&request, instance)?;
    let direct = direct::for_instance(&tunnel.direct, &instance)?;
    if direct.is_none() {
        session_manager::find_plugin()?;
    }
    let keys = KeyDir::open(&session.context, &session.namespace, name, tunnel.key_type.0)?;
    let need = Need {
        min_validity: MIN_VALIDITY,
        aws_session: direct.is_none(),
    };
    let issued = credential_request::credentials(session, &request, &keys, need).await?;
    Ok(Reach {
        request,
        instance,
        direct,
        keys,
        issued,
    })
}
