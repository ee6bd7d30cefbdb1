//! Throw-away PKI for the local control plane: one CA that signs the apiserver's serving certificate
//! and every client certificate. The apiserver maps a client certificate's CN to the username and its
//! O entries to groups, which is how tests act as the users they name.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A PEM certificate with its PEM private key.
#[derive(Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

impl Pki {
    /// A fresh CA whose certificate's CN is `ca_name`.
    pub fn new(ca_name: &str) -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, ca_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?).context("self-signing the CA")?;
        Ok(Self { ca })
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The apiserver's serving certificate, valid for loopback.
    pub fn serving(&self) -> Result<CertPair> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "kubernetes.default".to_owned()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate authenticating as `user` in `groups`.
    pub fn client(&self, user: &str, groups: &[&str]) -> Result<CertPair> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, user);
        // rcgen keeps one value per attribute type, so a second O is spelled by its OID (2.5.4.10);
        // the apiserver reads every O attribute as a group either way.
        anyhow::ensure!(
            groups.len() <= 2,
            "a client certificate here carries at most two groups, got {groups:?}"
        );
        let organization_types = [DnType::OrganizationName, DnType::CustomDnType(vec![2, 5, 4, 10])];
        for (ty, group) in organization_types.into_iter().zip(groups) {
            params.distinguished_name.push(ty, *group);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, mut params: CertificateParams) -> Result<CertPair> {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate()?;
        let cert = params
            .signed_by(&key, &self.ca)
            .context("signing a certificate")?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A fresh key pair for signing service-account tokens: (private key PEM, public key PEM).
pub fn service_account_keys() -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}
