//! `ssh-rsa` (SHA-1) CA signatures on certificates, for servers older than OpenSSH 7.2 (they know
//! no other RSA certificate signature; OpenSSH 8.2+ in turn refuses it unless `CASignatureAlgorithms`
//! lists it).
//!
//! ssh-key 0.6 cannot represent such a signature (`Signature::new` rejects `Algorithm::Rsa { hash:
//! None }`), so this module works on the certificate's wire form: the signature is the last field
//! (`string(string("ssh-rsa") string(s))`), and everything before it is what the CA signs. A
//! certificate is built and signed by ssh-key as usual (rsa-sha2-512), then its signature is replaced
//! by a PKCS#1 v1.5 SHA-1 one over the same bytes ([`resign_sha1`]). Reading such a certificate
//! back ([`Sha1Certificate::parse`]) relabels the signature so ssh-key can decode the fields.

use base64ct::{Base64, Encoding};
use rand_core::OsRng;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha1::{Digest, Sha1};
use ssh_key::Certificate;
use ssh_key::public::KeyData;

use super::error::CaError;

/// The certificate type name of an RSA user certificate (whatever its CA signature).
pub const RSA_CERT_TYPE: &str = "ssh-rsa-cert-v01@openssh.com";
/// The SSH name of the SHA-1 RSA signature.
pub const SSH_RSA: &str = "ssh-rsa";
/// What the signature is relabeled to so that ssh-key decodes the certificate's fields.
const RELABEL: &str = "rsa-sha2-512";

fn invalid(reason: &str) -> CaError {
    CaError::InvalidCertificate {
        reason: reason.to_owned(),
    }
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths here are a signature's (≤ 2 KiB) and an algorithm name's.
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The signature field (`string(string(algorithm) string(data))`) for `data`.
fn signature_field(algorithm: &str, data: &[u8]) -> Vec<u8> {
    let mut inner = Vec::with_capacity(8 + algorithm.len() + data.len());
    put_string(&mut inner, algorithm.as_bytes());
    put_string(&mut inner, data);
    let mut field = Vec::with_capacity(4 + inner.len());
    put_string(&mut field, &inner);
    field
}

/// The certificate `cert` (signed by the RSA CA `ca` with any hash) with its CA signature replaced
/// by an `ssh-rsa` (SHA-1) one over the same to-be-signed bytes, in OpenSSH one-line form.
pub(super) fn resign_sha1(cert: &Certificate, ca: &RsaPrivateKey) -> Result<String, CaError> {
    let failed = |source| CaError::Signing {
        algorithm: SSH_RSA,
        source,
    };
    if cert.signature_key().rsa().is_none() {
        return Err(failed(ssh_key::Error::AlgorithmUnknown));
    }
    let bytes = cert.to_bytes().map_err(failed)?;
    let old = cert.signature();
    let old_signature = 4 + 4 + old.algorithm().as_str().len() + 4 + old.as_bytes().len();
    let tbs = bytes
        .get(..bytes.len().saturating_sub(old_signature))
        .ok_or_else(|| failed(ssh_key::Error::Crypto))?;
    let digest = Sha1::digest(tbs);
    let data = ca
        .sign_with_rng(&mut OsRng, Pkcs1v15Sign::new::<Sha1>(), &digest)
        .map_err(|_| failed(ssh_key::Error::Crypto))?;
    let mut out = tbs.to_vec();
    out.extend_from_slice(&signature_field(SSH_RSA, &data));
    let comment = cert.comment();
    let mut line = format!("{RSA_CERT_TYPE} {}", Base64::encode_string(&out));
    if !comment.is_empty() {
        line.push(' ');
        line.push_str(comment);
    }
    Ok(line)
}

/// An `ssh-rsa`-signed RSA certificate read back: its fields, to-be-signed bytes and signature.
#[derive(Clone, Debug)]
pub struct Sha1Certificate {
    fields: Certificate,
    tbs: Vec<u8>,
    signature: Vec<u8>,
}

impl Sha1Certificate {
    /// Reads an OpenSSH certificate line whose CA signature is `ssh-rsa`. Does not verify the
    /// signature (see [`Self::verify`]).
    pub fn parse(line: &str) -> Result<Self, CaError> {
        let mut words = line.split_ascii_whitespace();
        if words.next() != Some(RSA_CERT_TYPE) {
            return Err(invalid("it is not an ssh-rsa-cert-v01@openssh.com certificate"));
        }
        let bytes = Base64::decode_vec(words.next().unwrap_or_default())
            .map_err(|_| invalid("its body is not base64"))?;
        let (tbs, signature) = split_ssh_rsa_signature(&bytes)
            .ok_or_else(|| invalid("its CA signature is not an ssh-rsa (SHA-1) one"))?;
        let mut relabeled = tbs.to_vec();
        relabeled.extend_from_slice(&signature_field(RELABEL, signature));
        let fields = Certificate::from_bytes(&relabeled).map_err(|e| CaError::InvalidCertificate {
            reason: e.to_string(),
        })?;
        Ok(Self {
            fields,
            tbs: tbs.to_vec(),
            signature: signature.to_vec(),
        })
    }

    /// The certificate's fields. Its signature is labeled rsa-sha2-512 so that ssh-key can hold it:
    /// never validate it as is, use [`Self::verify`].
    pub fn fields(&self) -> &Certificate {
        &self.fields
    }

    /// Checks the `ssh-rsa` signature against the RSA CA public key `ca` (and that the certificate
    /// names `ca` as its signer).
    pub fn verify(&self, ca: &KeyData) -> Result<(), CaError> {
        let bad = || invalid("its ssh-rsa signature does not verify against the CA key");
        if self.fields.signature_key() != ca {
            return Err(bad());
        }
        let rsa = ca.rsa().ok_or_else(bad)?;
        let int = |m: &ssh_key::Mpint| rsa::BigUint::from_bytes_be(m.as_positive_bytes().unwrap_or_default());
        let public = RsaPublicKey::new(int(&rsa.n), int(&rsa.e)).map_err(|_| bad())?;
        public
            .verify(
                Pkcs1v15Sign::new::<Sha1>(),
                &Sha1::digest(&self.tbs),
                &self.signature,
            )
            .map_err(|_| bad())
    }
}

/// Splits a certificate's wire form into the to-be-signed bytes and the `ssh-rsa` signature data,
/// if it ends in `u32(L) u32(7) "ssh-rsa" u32(k) data[k]` with `L = 15 + k`.
fn split_ssh_rsa_signature(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let be = |at: usize| -> Option<usize> {
        let word: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(u32::from_be_bytes(word)).ok()
    };
    let overhead = 4 + 4 + SSH_RSA.len() + 4;
    // The data is at most the largest RSA modulus OpenSSH takes (16384 bits).
    (1..=2048usize).find_map(|k| {
        let start = bytes.len().checked_sub(overhead + k)?;
        let ok = be(start)? == overhead - 4 + k
            && be(start + 4)? == SSH_RSA.len()
            && bytes.get(start + 8..start + 8 + SSH_RSA.len())? == SSH_RSA.as_bytes()
            && be(start + 8 + SSH_RSA.len())? == k;
        ok.then(|| (&bytes[..start], &bytes[start + overhead..]))
    })
}
