//! known_hosts pinned by instance id: lines `<instance-id> <type> <base64>` for ssh's
//! `HostKeyAlias=<instance-id>`, so host keys are checked whatever address the tunnel ends up at.
//! Nothing is trusted on first use.

use anyhow::Result;
use passport_crds::{AccessRequest, credential_request::InstanceHostKeys};

use super::{cache::write_atomic, key_dir::KeyDir};

/// Writes known_hosts: `host_keys` when given, else the AccessRequest's own record of them.
pub fn write(keys: &KeyDir, request: &AccessRequest, host_keys: &[InstanceHostKeys]) -> Result<()> {
    let entries: Vec<(&str, &[String])> = if host_keys.iter().any(|h| !h.host_keys.is_empty()) {
        host_keys
            .iter()
            .map(|h| (h.instance_id.as_str(), h.host_keys.as_slice()))
            .collect()
    } else {
        request
            .status
            .iter()
            .flat_map(|s| s.targets.iter())
            .map(|t| (t.instance_id.as_str(), t.host_keys.as_slice()))
            .collect()
    };
    write_atomic(&keys.known_hosts(), render(&entries).as_bytes(), 0o644)
}

/// The file's text. Comments are dropped and anything that is not a public key line is skipped.
pub fn render(entries: &[(&str, &[String])]) -> String {
    let mut out = String::new();
    for (instance, keys) in entries {
        for key in keys.iter() {
            let mut fields = key.split_whitespace();
            let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
                continue;
            };
            let plausible =
                (kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-"))
                    && blob
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
            if plausible && !instance.is_empty() && !instance.contains(char::is_whitespace) {
                out.push_str(&format!("{instance} {kind} {blob}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_pin_keys_by_instance_id() {
        let keys = vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA root@host".to_owned(),
            "ecdsa-sha2-nistp256 AAAAE2VjZHNh".to_owned(),
            "garbage".to_owned(),
            "ssh-rsa not/base64!".to_owned(),
        ];
        let other = vec!["ssh-rsa AAAAB3NzaC1yc2E=".to_owned()];
        let text = render(&[("i-0123456789abcdef0", &keys), ("i-0fedcba9876543210", &other)]);
        assert_eq!(
            text,
            "i-0123456789abcdef0 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n\
             i-0123456789abcdef0 ecdsa-sha2-nistp256 AAAAE2VjZHNh\n\
             i-0fedcba9876543210 ssh-rsa AAAAB3NzaC1yc2E=\n"
        );
    }
}
