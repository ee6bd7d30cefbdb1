//! One request's key directory (mode 0700) for one key type: the SSH key pair, made on first use,
//! the paths of everything kept beside it, and a lock so that concurrent ssh runs share one
//! certificate.

use std::{
    fs::{self, File, OpenOptions},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, anyhow, bail};
use passport_crds::KeyType;
use ssh_key::{
    LineEnding, PrivateKey, PublicKey,
    private::{Ed25519Keypair, KeypairData, RsaKeypair},
};

use super::cache::{namespace_dir, path_component, private_dir, write_atomic};

/// RSA keys are 3072 bits, as `ssh-keygen -t rsa` makes them.
const RSA_BITS: usize = 3072;

/// The directory of one request's credentials, for one key type.
#[derive(Debug, Clone)]
pub struct KeyDir {
    pub dir: PathBuf,
    pub key_type: KeyType,
}

/// An exclusive lock on a key directory, released when dropped: concurrent ssh invocations (scp,
/// Ansible forks) then share one certificate instead of each asking for its own.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl KeyDir {
    /// The directory for `request` in `namespace` of `context`, created 0700.
    pub fn open(context: &str, namespace: &str, request: &str, key_type: KeyType) -> Result<Self> {
        let dir = namespace_dir(context, namespace)?.join(path_component(request));
        private_dir(&dir)?;
        Ok(Self { dir, key_type })
    }

    /// `id_ed25519` or `id_rsa`, as ssh-keygen names keys.
    fn stem(&self) -> String {
        format!("id_{}", self.key_type)
    }

    pub fn private_key(&self) -> PathBuf {
        self.dir.join(self.stem())
    }

    pub fn public_key(&self) -> PathBuf {
        self.dir.join(format!("{}.pub", self.stem()))
    }

    /// Where OpenSSH looks for the key's certificate by default: `<key>-cert.pub`.
    pub fn certificate(&self) -> PathBuf {
        self.dir.join(format!("{}-cert.pub", self.stem()))
    }

    /// The RSA key's second certificate, the one whose CA signature is `ssh-rsa` (SHA-1), for
    /// servers older than OpenSSH 7.2: `<key>-sha1-cert.pub`. ssh does not look for it by itself;
    /// the ssh config and `connect` name it after [`Self::certificate`].
    pub fn certificate_sha1(&self) -> PathBuf {
        self.dir.join(format!("{}-sha1-cert.pub", self.stem()))
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// The age identity the last CredentialRequest's secrets were sealed to.
    pub fn sealing_identity(&self) -> PathBuf {
        self.dir.join(format!("{}.age", self.stem()))
    }

    /// What was last issued for this key (JSON, secrets still sealed).
    pub fn issued(&self) -> PathBuf {
        self.dir.join(format!("{}.issued.json", self.stem()))
    }

    /// Waits for and takes the directory's lock.
    pub fn lock(&self) -> Result<DirLock> {
        let path = self.dir.join(".lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(DirLock { _file: file })
    }

    /// The key pair, generated on first use. Returns the public key.
    pub fn ensure_key_pair(&self, comment: &str) -> Result<PublicKey> {
        let path = self.private_key();
        if path.exists() {
            match read_private_key(&path, self.key_type) {
                Ok(key) => return Ok(key.public_key().clone()),
                Err(err) => tracing::warn!("replacing unusable key {}: {err:#}", path.display()),
            }
        }
        let key = generate(self.key_type, comment)?;
        let private = key
            .to_openssh(LineEnding::LF)
            .context("encoding the private key")?;
        let public = key.public_key().to_openssh().context("encoding the public key")?;
        write_atomic(&path, private.as_bytes(), 0o600)?;
        write_atomic(&self.public_key(), format!("{public}\n").as_bytes(), 0o644)?;
        // A certificate for the old key is useless now.
        let _ = fs::remove_file(self.certificate());
        let _ = fs::remove_file(self.certificate_sha1());
        let _ = fs::remove_file(self.issued());
        Ok(key.public_key().clone())
    }
}

/// Reads a private key and checks it is of the expected type.
pub fn read_private_key(path: &Path, key_type: KeyType) -> Result<PrivateKey> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let key = PrivateKey::from_openssh(text.as_bytes())
        .map_err(|err| anyhow!("{} is not an OpenSSH private key: {err}", path.display()))?;
    if KeyType::from_ssh_name(key.algorithm().as_str()) != Some(key_type) {
        bail!(
            "{} holds a {} key, not {key_type}",
            path.display(),
            key.algorithm()
        );
    }
    Ok(key)
}

/// A new key pair of `key_type`.
pub fn generate(key_type: KeyType, comment: &str) -> Result<PrivateKey> {
    let mut rng = rand_core::OsRng;
    let data = match key_type {
        KeyType::Ed25519 => KeypairData::from(Ed25519Keypair::random(&mut rng)),
        KeyType::Rsa => KeypairData::from(
            RsaKeypair::random(&mut rng, RSA_BITS).map_err(|err| anyhow!("generating an RSA key: {err}"))?,
        ),
    };
    PrivateKey::new(data, comment).map_err(|err| anyhow!("building the key pair: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_and_have_the_right_type() -> Result<()> {
        let key = generate(KeyType::Ed25519, "test")?;
        let text = key.to_openssh(LineEnding::LF)?;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("id");
        fs::write(&path, text.as_bytes())?;
        let read = read_private_key(&path, KeyType::Ed25519)?;
        assert_eq!(read.public_key(), key.public_key());
        assert!(key.public_key().to_openssh()?.starts_with("ssh-ed25519 "));
        let err = read_private_key(&path, KeyType::Rsa).expect_err("wrong type");
        assert!(err.to_string().contains("not rsa"), "{err}");
        Ok(())
    }
}
