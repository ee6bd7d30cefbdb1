//! State on this workstation, under `$XDG_CACHE_HOME/passport/<context>/<namespace>/<request>/`: the
//! SSH key pair, the age identity secrets are sealed to, the certificate, known_hosts and the record
//! of what was last issued. Nothing here talks to the cluster.

pub mod cache;
pub mod issued;
pub mod key_dir;
pub mod known_hosts;
pub mod sealing;
