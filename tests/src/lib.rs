//! Test harness for passport: a real local Kubernetes control plane, and helpers the end-to-end suite
//! and the local demo share.
#![forbid(unsafe_code)]

pub mod binaries;
pub mod controlplane;
pub mod crds;
pub mod kubeconfig;
pub mod kubectl;
pub mod pki;

pub use controlplane::{ControlPlane, USERS};
