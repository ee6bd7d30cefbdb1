//! RSA CA signatures made with the `rsa` crate directly.
//!
//! ssh-key 0.6.7's own RSA signer converts the key with prime `p` passed twice (fixed upstream in
//! RustCrypto/SSH#217, unreleased for 0.6), which `rsa` ≥ 0.9.7 rightly refuses; it also only does
//! SHA-512 and signs without blinding. This signer builds the `rsa` key from the right primes once,
//! signs with blinding, and does SHA-256 too.

use rand_core::OsRng;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::{BigUint, RsaPrivateKey};
use sha2::{Sha256, Sha512};
use ssh_key::private::RsaKeypair;
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, HashAlg, Mpint, Signature};

/// An RSA CA key ready to sign certificates with one hash; usable with `certificate::Builder::sign`.
#[derive(Clone)]
pub(super) struct RsaCaSigner {
    key: RsaPrivateKey,
    hash: HashAlg,
    public: KeyData,
}

impl RsaCaSigner {
    pub(super) fn new(keypair: &RsaKeypair, hash: HashAlg) -> Result<Self, rsa::Error> {
        let int = |m: &Mpint| BigUint::from_bytes_be(m.as_positive_bytes().unwrap_or_default());
        let key = RsaPrivateKey::from_components(
            int(&keypair.public.n),
            int(&keypair.public.e),
            int(&keypair.private.d),
            vec![int(&keypair.private.p), int(&keypair.private.q)],
        )?;
        Ok(Self {
            key,
            hash,
            public: KeyData::Rsa(keypair.public.clone()),
        })
    }
}

impl RsaCaSigner {
    /// The `rsa` private key, for signatures ssh-key cannot represent (`ssh-rsa`, SHA-1).
    pub(super) fn private_key(&self) -> &RsaPrivateKey {
        &self.key
    }
}

impl rsa::signature::Signer<Signature> for RsaCaSigner {
    fn try_sign(&self, message: &[u8]) -> rsa::signature::Result<Signature> {
        let data = match self.hash {
            HashAlg::Sha256 => SigningKey::<Sha256>::new(self.key.clone())
                .try_sign_with_rng(&mut OsRng, message)?
                .to_vec(),
            HashAlg::Sha512 => SigningKey::<Sha512>::new(self.key.clone())
                .try_sign_with_rng(&mut OsRng, message)?
                .to_vec(),
            _ => return Err(rsa::signature::Error::new()),
        };
        Signature::new(
            Algorithm::Rsa {
                hash: Some(self.hash),
            },
            data,
        )
        .map_err(rsa::signature::Error::from_source)
    }
}

impl From<&RsaCaSigner> for KeyData {
    fn from(signer: &RsaCaSigner) -> KeyData {
        signer.public.clone()
    }
}
