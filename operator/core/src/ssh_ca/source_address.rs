//! The `source-address` critical option: the addresses a certificate may log in from.

use std::net::IpAddr;

use super::error::CaError;

/// What every restricted certificate also allows: the instance's own loopback. A Session Manager
/// tunnel (passport's `Passport-SSH` session document, the way `kubectl passport connect` reaches an instance) is opened
/// by the SSM agent on the instance, which connects to sshd on localhost: sshd sees the connection
/// come from 127.0.0.1 (or ::1), never from the workstation's address. The workstation's address is
/// what the AWS session's `aws:SourceIp` condition checks when the tunnel is opened; the loopback
/// entries keep the tunnel usable, while the certificate stays useless from anywhere else on the
/// network.
pub const LOOPBACK: [&str; 2] = ["127.0.0.1/32", "::1/128"];

/// The `source-address` list for `cidrs` (the AccessRequest's `spec.sourceCidrs`): each CIDR in
/// canonical form (host bits cleared, so sshd reads it as the network meant), then [`LOOPBACK`],
/// without duplicates. `None` when `cidrs` is empty: no restriction. A bare address counts as a
/// single host (`/32` or `/128`).
pub fn source_addresses(cidrs: &[String]) -> Result<Option<Vec<String>>, CaError> {
    if cidrs.is_empty() {
        return Ok(None);
    }
    let mut list: Vec<String> = Vec::with_capacity(cidrs.len() + LOOPBACK.len());
    for cidr in cidrs.iter().map(String::as_str).chain(LOOPBACK) {
        let canonical = canonical_cidr(cidr)?;
        if !list.contains(&canonical) {
            list.push(canonical);
        }
    }
    Ok(Some(list))
}

/// `cidr` as `<network address>/<prefix length>`, or why not.
pub fn canonical_cidr(cidr: &str) -> Result<String, CaError> {
    let invalid = || CaError::InvalidSourceAddress(cidr.chars().take(64).collect());
    let (address, prefix) = match cidr.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (cidr, None),
    };
    let address: IpAddr = address.parse().map_err(|_| invalid())?;
    let bits: u8 = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => bits,
        // Digits only: u8's parser would also take a leading '+'.
        Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().map_err(|_| invalid())?
        }
        Some(_) => return Err(invalid()),
    };
    if prefix > bits {
        return Err(invalid());
    }
    let network = match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(u32::from(32 - prefix)).unwrap_or(0);
            IpAddr::from((u32::from(v4) & mask).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(u32::from(128 - prefix)).unwrap_or(0);
            IpAddr::from((u128::from(v6) & mask).to_be_bytes())
        }
    };
    Ok(format!("{network}/{prefix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn no_cidrs_no_restriction() {
        assert_eq!(source_addresses(&[]).expect("valid"), None);
    }

    #[test]
    fn cidrs_come_first_then_loopback() {
        let list = source_addresses(&strings(&["203.0.113.7/32", "2001:db8::/64"])).expect("valid");
        assert_eq!(
            list,
            Some(strings(&[
                "203.0.113.7/32",
                "2001:db8::/64",
                "127.0.0.1/32",
                "::1/128"
            ]))
        );
        // Loopback given explicitly is not repeated.
        let list = source_addresses(&strings(&["127.0.0.1/32"])).expect("valid");
        assert_eq!(list, Some(strings(&["127.0.0.1/32", "::1/128"])));
    }

    #[test]
    fn cidrs_are_canonical() {
        for (given, canonical) in [
            ("203.0.113.7/24", "203.0.113.0/24"),
            ("203.0.113.7", "203.0.113.7/32"),
            ("10.1.2.3/0", "0.0.0.0/0"),
            ("2001:db8::1/64", "2001:db8::/64"),
            ("2001:DB8::1", "2001:db8::1/128"),
            ("::/0", "::/0"),
        ] {
            assert_eq!(canonical_cidr(given).expect(given), canonical, "{given}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "/32",
            "203.0.113.7/",
            "203.0.113.7/33",
            "2001:db8::/129",
            "203.0.113.7/+8",
            "host.example",
            "203.0.113.7/32,10.0.0.0/8",
            "203.0.113.7 /32",
            "1.2.3.4/0032",
            "*",
        ] {
            assert!(
                matches!(canonical_cidr(bad), Err(CaError::InvalidSourceAddress(_))),
                "{bad:?}"
            );
        }
    }
}
