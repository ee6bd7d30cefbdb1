//! The workstation side of credentials: a private directory per request under
//! `$XDG_CACHE_HOME/passport/<context>/<namespace>/<request>/` (mode 0700) holding the SSH key pair,
//! the age identity secrets are sealed to, the certificate, known_hosts and what was last issued.
//! Files are written atomically (temporary file, then rename) with owner-only permissions.

use std::{
    fs::{self, DirBuilder, File, OpenOptions},
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    str::FromStr,
};

use anyhow::{Context, Result, anyhow, bail};
use passport_crds::KeyType;
use ssh_key::{
    LineEnding, PrivateKey, PublicKey,
    private::{Ed25519Keypair, KeypairData, RsaKeypair},
};

use crate::names::path_component;

/// RSA keys are 3072 bits, as `ssh-keygen -t rsa` makes them.
const RSA_BITS: usize = 3072;

/// `$XDG_CACHE_HOME/passport`, else `~/.cache/passport`.
pub fn cache_root() -> Result<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match xdg {
        Some(dir) => dir,
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cache"))
            .ok_or_else(|| anyhow!("neither XDG_CACHE_HOME nor HOME is set: cannot place keys"))?,
    };
    Ok(base.join("passport"))
}

/// Creates `dir` and its missing parents with mode 0700, and makes sure `dir` itself is 0700.
pub fn private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))
}

/// Writes `contents` to `path` atomically with permissions `mode`: a reader sees the old file or the
/// new one, never half of one.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().context("file without a directory")?;
    let name = path.file_name().context("file without a name")?.to_string_lossy();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)
        .with_context(|| format!("writing {}", temp.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::set_permissions(&temp, fs::Permissions::from_mode(mode))?;
    fs::rename(&temp, path).with_context(|| format!("writing {}", path.display()))
}

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
        let dir = cache_root()?
            .join(path_component(context))
            .join(path_component(namespace))
            .join(path_component(request));
        private_dir(&dir)?;
        Ok(Self { dir, key_type })
    }

    fn stem(&self) -> &'static str {
        match self.key_type {
            KeyType::Ed25519 => "id_ed25519",
            KeyType::Rsa => "id_rsa",
        }
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

    /// The key pair, generated on first use. Returns the public key in OpenSSH one-line form.
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
        let _ = fs::remove_file(self.issued());
        Ok(key.public_key().clone())
    }

    /// A fresh age X25519 identity, stored (0600) before anything is sealed to it.
    pub fn new_sealing_identity(&self) -> Result<age::x25519::Identity> {
        use age::secrecy::ExposeSecret;
        let identity = age::x25519::Identity::generate();
        let text = format!("{}\n", identity.to_string().expose_secret());
        write_atomic(&self.sealing_identity(), text.as_bytes(), 0o600)?;
        Ok(identity)
    }

    /// The stored age identity.
    pub fn read_sealing_identity(&self) -> Result<age::x25519::Identity> {
        let path = self.sealing_identity();
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        age::x25519::Identity::from_str(text.trim())
            .map_err(|err| anyhow!("{} is not an age identity: {err}", path.display()))
    }
}

/// Reads a private key and checks it is of the expected type.
pub fn read_private_key(path: &Path, key_type: KeyType) -> Result<PrivateKey> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let key = PrivateKey::from_openssh(text.as_bytes())
        .map_err(|err| anyhow!("{} is not an OpenSSH private key: {err}", path.display()))?;
    if key_type_of(key.public_key()) != Some(key_type) {
        bail!(
            "{} holds a {} key, not {}",
            path.display(),
            key.algorithm(),
            key_type_name(key_type)
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

/// Which key type a public key is, if one passport certifies.
pub fn key_type_of(key: &PublicKey) -> Option<KeyType> {
    match key.algorithm() {
        ssh_key::Algorithm::Ed25519 => Some(KeyType::Ed25519),
        ssh_key::Algorithm::Rsa { .. } => Some(KeyType::Rsa),
        _ => None,
    }
}

pub fn key_type_name(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::Ed25519 => "ed25519",
        KeyType::Rsa => "rsa",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_are_private() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let sub = dir.path().join("a/b");
        private_dir(&sub)?;
        assert_eq!(fs::metadata(&sub)?.permissions().mode() & 0o777, 0o700);
        let file = sub.join("secret");
        write_atomic(&file, b"one", 0o600)?;
        write_atomic(&file, b"two", 0o600)?;
        assert_eq!(fs::read_to_string(&file)?, "two");
        assert_eq!(fs::metadata(&file)?.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(&sub)?.count(), 1, "no temporary file left");
        Ok(())
    }

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

    #[test]
    fn sealing_identities_are_stored_and_read_back() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let keys = KeyDir {
            dir: dir.path().to_owned(),
            key_type: KeyType::Ed25519,
        };
        let identity = keys.new_sealing_identity()?;
        let read = keys.read_sealing_identity()?;
        assert_eq!(identity.to_public().to_string(), read.to_public().to_string());
        assert!(identity.to_public().to_string().starts_with("age1"));
        let mode = fs::metadata(keys.sealing_identity())?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        Ok(())
    }
}
