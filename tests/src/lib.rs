//! Test harness for passport: a real local Kubernetes control plane, and helpers the end-to-end suite
//! and the local demo share.
#![forbid(unsafe_code)]

pub mod aws;
pub mod binaries;
pub mod controlplane;
pub mod crds;
pub mod instance;
pub mod kubeconfig;
pub mod kubectl;
pub mod operator;
pub mod pki;
pub mod process;
pub mod requests;
pub mod ssh;

pub use controlplane::{ControlPlane, USERS};
