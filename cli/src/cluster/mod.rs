//! Talking to the cluster: the kubeconfig and session, passport objects read and written, the
//! CredentialRequest exchange with the operator, and waiting on objects until they change.

pub mod access_request;
pub mod activation;
pub mod api_errors;
pub mod condition_text;
pub mod credential_request;
pub mod kubeconfig;
pub mod names;
pub mod session;
pub mod wait;
