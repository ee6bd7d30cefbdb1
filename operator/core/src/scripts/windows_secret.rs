//! The Windows password never travels in clear: the provisioning script makes it on the instance and
//! prints it encrypted to a one-time RSA key of the operator's.
//!
//! For every provisioning command the operator generates an RSA-3072 key pair ([`PasswordKey`]) and
//! puts only the public key in the script (as the `<RSAKeyValue>` XML that .NET's
//! `RSACryptoServiceProvider.FromXmlString` reads) with its id. The script sets a fresh random
//! password and prints one line on stdout:
//!
//! ```text
//! passport-password: <key id> <base64 of RSA-OAEP(SHA-1, MGF1-SHA-1, no label)(UTF-8 password)>
//! ```
//!
//! which is what `RSACryptoServiceProvider.Encrypt($bytes, $true)` produces on every Windows
//! PowerShell (5.1 and earlier, .NET Framework 2.0 onwards) and PowerShell 7. The SSM command's
//! parameters (readable with `ssm:ListCommands`) and the script file SSM leaves on the instance hold
//! only the public key; the command's output only the ciphertext. The operator decrypts the line when
//! it reads the invocation ([`decrypt`]), keeps the password in its per-request Secret, and removes
//! the line from any text that may reach a status, an Event or a log ([`scrub`]).
//!
//! The script also reports the account it set up (`passport-user: <name>`, [`reported_user`]): on a
//! domain controller that is the per-request domain account, not the local name.

use base64ct::{Base64, Encoding};
use rand_core::OsRng;
use rsa::{
    BigUint, Oaep, RsaPrivateKey, RsaPublicKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey},
    traits::PublicKeyParts,
};
use sha2::{Digest, Sha256};
use std::fmt;

use super::is_passport_username;

/// Size of the one-time keys.
pub const PASSWORD_KEY_BITS: usize = 3072;
/// Smallest key a provisioning script accepts.
const MIN_KEY_BITS: usize = 2048;
/// Prefix of the stdout line that carries the encrypted password.
pub const PASSWORD_LINE: &str = "passport-password:";
/// Prefix of the stdout line that names the account the script set up.
pub const USER_LINE: &str = "passport-user:";
/// Length of a key id (hex).
const KEY_ID_LEN: usize = 16;

/// Why a password could not be recovered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowsSecretError {
    #[error("cannot generate an RSA key: {0}")]
    Generate(String),
    #[error("the stored password key is unusable: {0}")]
    BadKey(String),
    #[error("the public key is not usable for the script: {0}")]
    BadPublicKey(&'static str),
    #[error("the encrypted password is not base64")]
    NotBase64,
    #[error("the encrypted password does not decrypt with key {0}")]
    Decrypt(String),
    #[error("the decrypted password is not a usable password")]
    NotAPassword,
}

/// A one-time key pair. `Debug` shows only the id.
#[derive(Clone)]
pub struct PasswordKey {
    id: String,
    private: RsaPrivateKey,
}

impl fmt::Debug for PasswordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl PasswordKey {
    /// A fresh RSA-3072 key from the operating system's CSPRNG. Takes about a second: call it off
    /// the async runtime.
    pub fn generate() -> Result<Self, WindowsSecretError> {
        Self::generate_bits(PASSWORD_KEY_BITS)
    }

    fn generate_bits(bits: usize) -> Result<Self, WindowsSecretError> {
        let private = RsaPrivateKey::new(&mut OsRng, bits)
            .map_err(|err| WindowsSecretError::Generate(err.to_string()))?;
        Ok(Self {
            id: key_id(&private.to_public_key()),
            private,
        })
    }

    /// The key as stored (PKCS#8 DER).
    pub fn to_der(&self) -> Result<Vec<u8>, WindowsSecretError> {
        Ok(self
            .private
            .to_pkcs8_der()
            .map_err(|err| WindowsSecretError::BadKey(err.to_string()))?
            .as_bytes()
            .to_vec())
    }

    /// A key stored with [`PasswordKey::to_der`].
    pub fn from_der(der: &[u8]) -> Result<Self, WindowsSecretError> {
        let private =
            RsaPrivateKey::from_pkcs8_der(der).map_err(|err| WindowsSecretError::BadKey(err.to_string()))?;
        Ok(Self {
            id: key_id(&private.to_public_key()),
            private,
        })
    }

    /// Names the key in the script and in the line it prints: 16 hex characters of the SHA-256 of
    /// the modulus.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn public_key(&self) -> RsaPublicKey {
        self.private.to_public_key()
    }

    /// Decrypts the base64 ciphertext of a [`PASSWORD_LINE`] made with this key.
    pub fn decrypt(&self, ciphertext: &str) -> Result<String, WindowsSecretError> {
        let bytes = Base64::decode_vec(ciphertext.trim()).map_err(|_| WindowsSecretError::NotBase64)?;
        let plain = self
            .private
            .decrypt(Oaep::new::<sha1::Sha1>(), &bytes)
            .map_err(|_| WindowsSecretError::Decrypt(self.id.clone()))?;
        let password = String::from_utf8(plain).map_err(|_| WindowsSecretError::NotAPassword)?;
        if password.is_empty() || password.len() > 127 || password.chars().any(char::is_control) {
            return Err(WindowsSecretError::NotAPassword);
        }
        Ok(password)
    }
}

/// The id of a public key: 16 hex characters of SHA-256 over the big-endian modulus.
pub fn key_id(key: &RsaPublicKey) -> String {
    let digest = Sha256::digest(key.n().to_bytes_be());
    hex::encode(digest)[..KEY_ID_LEN].to_owned()
}

/// The public key as .NET's `RSACryptoServiceProvider.FromXmlString` reads it. Only base64 and the
/// element names: safe as a single-quoted PowerShell string.
pub fn public_key_xml(key: &RsaPublicKey) -> Result<String, WindowsSecretError> {
    if key.size() * 8 < MIN_KEY_BITS {
        return Err(WindowsSecretError::BadPublicKey("shorter than 2048 bits"));
    }
    let b64 = |n: &BigUint| Base64::encode_string(&n.to_bytes_be());
    Ok(format!(
        "<RSAKeyValue><Modulus>{}</Modulus><Exponent>{}</Exponent></RSAKeyValue>",
        b64(key.n()),
        b64(key.e())
    ))
}

/// What a [`PASSWORD_LINE`] says: which key, and the base64 ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedPassword {
    pub key_id: String,
    pub ciphertext: String,
}

/// The last [`PASSWORD_LINE`] of a script's stdout, if it printed one.
pub fn encrypted_password(stdout: &str) -> Option<EncryptedPassword> {
    stdout.lines().rev().find_map(|line| {
        let rest = line.trim().strip_prefix(PASSWORD_LINE)?;
        let mut fields = rest.split_whitespace();
        let (key_id, ciphertext) = (fields.next()?, fields.next()?);
        let is_id = key_id.len() == KEY_ID_LEN && key_id.bytes().all(|b| b.is_ascii_hexdigit());
        (is_id && fields.next().is_none()).then(|| EncryptedPassword {
            key_id: key_id.to_ascii_lowercase(),
            ciphertext: ciphertext.to_owned(),
        })
    })
}

/// Decrypts the password a script printed with `key`; `None` if it printed none.
pub fn decrypt(stdout: &str, key: &PasswordKey) -> Option<Result<String, WindowsSecretError>> {
    let line = encrypted_password(stdout)?;
    if line.key_id != key.id() {
        return Some(Err(WindowsSecretError::Decrypt(line.key_id)));
    }
    Some(key.decrypt(&line.ciphertext))
}

/// The account a script reports it set up ([`USER_LINE`]), if it is a passport username.
pub fn reported_user(stdout: &str) -> Option<String> {
    stdout.lines().rev().find_map(|line| {
        let name = line.trim().strip_prefix(USER_LINE)?.trim();
        is_passport_username(name).then(|| name.to_owned())
    })
}

/// `text` without any line that contains the encrypted-password marker, wherever it starts: what may
/// be shown in a status, an Event or a log.
pub fn scrub(text: &str) -> String {
    if !text.contains(PASSWORD_LINE) {
        return text.to_owned();
    }
    text.split_inclusive('\n')
        .filter(|line| !line.contains(PASSWORD_LINE))
        .collect()
}

#[cfg(test)]
#[path = "windows_secret/tests.rs"]
mod tests;
