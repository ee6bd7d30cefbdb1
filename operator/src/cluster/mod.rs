//! The operator's edge to the Kubernetes API beyond watching: status writes, the finalizer, Events,
//! and the Secrets only the operator reads (the CA, Windows passwords).

pub mod ca_secret;
pub mod cache;
pub mod events;
pub mod finalizer;
pub mod holders;
pub mod status;
pub mod windows_password;
