//! passport's operator: controllers for the passport.dev kinds, the SSH certificate authority, the
//! scripts it runs on instances through SSM, and the HTTP surface for health and metrics.
#![forbid(unsafe_code)]

pub mod scripts;
pub mod ssh_ca;
