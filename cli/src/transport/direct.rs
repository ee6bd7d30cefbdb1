//! Direct endpoints: `INSTANCE=HOST:PORT` to reach an instance over plain TCP instead of Session
//! Manager (a test sshd, a VPN, a bastion forward), from `--direct` flags or
//! `PASSPORT_DIRECT_ENDPOINTS`.

use std::{fmt, str::FromStr};

use anyhow::{Result, anyhow};

/// Comma-separated `INSTANCE=HOST:PORT` entries, used when no flag names the instance.
pub const DIRECT_ENV: &str = "PASSPORT_DIRECT_ENDPOINTS";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectEndpoint {
    pub instance: String,
    pub address: String,
}

impl FromStr for DirectEndpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!("{text:?} is not INSTANCE=HOST:PORT ({why}), e.g. i-0123456789abcdef0=127.0.0.1:2222")
        };
        let (instance, address) = text.trim().split_once('=').ok_or_else(|| bad("no '='"))?;
        let (instance, address) = (instance.trim(), address.trim());
        if instance.is_empty() {
            return Err(bad("no instance id"));
        }
        let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        if host.is_empty() || host.trim_start_matches('[').trim_end_matches(']').is_empty() {
            return Err(bad("no host"));
        }
        if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
            return Err(bad("write IPv6 addresses in brackets, as [::1]:22"));
        }
        match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(Self {
                instance: instance.to_owned(),
                address: address.to_owned(),
            }),
            _ => Err(bad("the port must be 1 to 65535")),
        }
    }
}

impl fmt::Display for DirectEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.instance, self.address)
    }
}

/// Parses the value of [`DIRECT_ENV`].
pub fn parse_list(text: &str) -> Result<Vec<DirectEndpoint>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| entry.parse().map_err(|err| format!("{DIRECT_ENV}: {err}")))
        .collect()
}

/// The direct endpoint for `instance`: the flags first, then `env` (the value of [`DIRECT_ENV`]).
pub fn lookup(flags: &[DirectEndpoint], env: Option<&str>, instance: &str) -> Result<Option<String>, String> {
    if let Some(found) = flags.iter().find(|d| d.instance == instance) {
        return Ok(Some(found.address.clone()));
    }
    let from_env = env.map(parse_list).transpose()?.unwrap_or_default();
    Ok(from_env
        .into_iter()
        .find(|d| d.instance == instance)
        .map(|d| d.address))
}

/// The direct endpoint for `instance`, from `flags` or this process's environment.
pub fn for_instance(flags: &[DirectEndpoint], instance: &str) -> Result<Option<String>> {
    let env = std::env::var(DIRECT_ENV).ok();
    lookup(flags, env.as_deref(), instance).map_err(|err| anyhow!(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_endpoints_parse() {
        let d: DirectEndpoint = "i-0123456789abcdef0=127.0.0.1:2222".parse().expect("ok");
        assert_eq!(
            (d.instance.as_str(), d.address.as_str()),
            ("i-0123456789abcdef0", "127.0.0.1:2222")
        );
        assert_eq!(d.to_string(), "i-0123456789abcdef0=127.0.0.1:2222");
        let v6: DirectEndpoint = "i-1=[::1]:22".parse().expect("ipv6");
        assert_eq!(v6.address, "[::1]:22");
        for bad in [
            "i-1",
            "=h:22",
            "i-1=h",
            "i-1=:22",
            "i-1=h:0",
            "i-1=h:99999",
            "i-1=::1:22",
        ] {
            assert!(bad.parse::<DirectEndpoint>().is_err(), "{bad} should not parse");
        }
        let list = parse_list(" i-a=127.0.0.1:2222, i-b=10.0.0.5:22 ,").expect("list");
        assert_eq!(list.len(), 2);
        assert!(parse_list("i-a=127.0.0.1").is_err_and(|e| e.starts_with("PASSPORT_DIRECT_ENDPOINTS: ")));
        let flags = vec!["i-a=127.0.0.1:1".parse().expect("flag")];
        let env = Some("i-a=127.0.0.1:2,i-b=127.0.0.1:3");
        assert_eq!(
            lookup(&flags, env, "i-a"),
            Ok(Some("127.0.0.1:1".to_owned())),
            "flags win"
        );
        assert_eq!(lookup(&flags, env, "i-b"), Ok(Some("127.0.0.1:3".to_owned())));
        assert_eq!(lookup(&flags, env, "i-c"), Ok(None));
        assert_eq!(lookup(&[], None, "i-a"), Ok(None));
    }
}
