//! How bytes reach an instance: a Session Manager session handed to AWS's session-manager-plugin,
//! or plain TCP to a direct endpoint; and the ssh command lines that use them.

pub mod direct;
pub mod session_manager;
pub mod ssh_command;
pub mod tcp;
