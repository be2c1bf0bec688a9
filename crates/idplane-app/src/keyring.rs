//! The keyring: a root key that seals every secret at rest (envelope
//! encryption), and the Ed25519 key that signs audit checkpoints.
//!
//! The root key lives outside the database (a file in the data directory,
//! mode 0600, or `IDPLANE_ROOT_KEY`), so a copy of the database alone
//! reveals no private key.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use aws_lc_rs::{hkdf, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};

use crate::{AppError, Result};

/// Length of the root key in bytes.
pub const ROOT_KEY_LEN: usize = 32;

/// Holds the root key. Debug output never shows it.
pub struct Keyring {
    root: LessSafeKey,
    /// HMAC-SHA256 key derived from the root key with HKDF, for [`Keyring::mac`].
    mac_key: hmac::Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring { .. }")
    }
}

impl Keyring {
    /// A keyring over raw root key bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| AppError::Internal("the root key must be 32 bytes".into()))?;
        let mac_key: hmac::Key = hkdf::Salt::new(hkdf::HKDF_SHA256, b"idplane keyring")
            .extract(bytes)
            .expand(&[b"mac v1"], hmac::HMAC_SHA256)
            .map_err(|_| AppError::Internal("key derivation failed".into()))?
            .into();
        Ok(Self {
            root: LessSafeKey::new(key),
            mac_key,
            rng: SystemRandom::new(),
        })
    }

    /// A keyring with a fresh random root key (dev mode, tests).
    pub fn ephemeral() -> Result<Self> {
        Self::from_bytes(&random_bytes::<ROOT_KEY_LEN>()?)
    }

    /// A keyring from base64url text (the `IDPLANE_ROOT_KEY` form).
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| AppError::Internal("the root key is not base64url".into()))?;
        Self::from_bytes(&bytes)
    }

    /// Loads the root key from `path`, creating it (mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = B64.encode(random_bytes::<ROOT_KEY_LEN>()?);
                write_private_file(path, &text).map_err(|e| {
                    AppError::Internal(format!("cannot write {}: {e}", path.display()))
                })?;
                Self::from_base64(&text)
            }
            Err(e) => Err(AppError::Internal(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. the key id): the
    /// ciphertext cannot be moved to another context undetected.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| AppError::Internal("no randomness".into()))?;
        let mut data = plaintext.to_vec();
        self.root
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .map_err(|_| AppError::Internal("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(B64.encode(out))
    }

    /// Decrypts what [`Keyring::seal`] produced for the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>> {
        let bytes = B64
            .decode(sealed)
            .map_err(|_| AppError::Internal("sealed data is not base64url".into()))?;
        let (nonce, ciphertext) = bytes
            .split_at_checked(NONCE_LEN)
            .ok_or_else(|| AppError::Internal("sealed data is too short".into()))?;
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| AppError::Internal("bad nonce".into()))?;
        let mut data = ciphertext.to_vec();
        let plain = self
            .root
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| {
                AppError::Internal("cannot unseal: wrong root key or altered data".into())
            })?;
        Ok(plain.to_vec())
    }

    /// A keyed hash (HMAC-SHA256, base64url) of `data` under a key derived
    /// from the root key, bound to `context`: for high-entropy secrets
    /// (client secrets) that need a fast lookup hash a database copy alone
    /// cannot test guesses against. Compare results in constant time.
    pub fn mac(&self, context: &str, data: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.mac_key);
        // Length-prefixed, so that (context, data) pairs never collide.
        ctx.update(&(context.len() as u64).to_be_bytes());
        ctx.update(context.as_bytes());
        ctx.update(data);
        B64.encode(ctx.sign().as_ref())
    }

    /// A new Ed25519 key pair: (key id, public key base64url, PKCS#8 v1).
    pub fn generate_ed25519(&self) -> Result<(String, String, Vec<u8>)> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8v1(&self.rng)
            .map_err(|_| AppError::Internal("key generation failed".into()))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| AppError::Internal("key generation failed".into()))?;
        let public = pair.public_key().as_ref();
        let key_id = hex::encode(Sha256::digest(public).get(..8).unwrap_or_default());
        Ok((key_id, B64.encode(public), pkcs8.as_ref().to_vec()))
    }
}

/// Signs `message` with an Ed25519 PKCS#8 key; base64url signature.
pub fn ed25519_sign(pkcs8: &[u8], message: &[u8]) -> Result<String> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
        .map_err(|_| AppError::Internal("bad signing key".into()))?;
    Ok(B64.encode(pair.sign(message).as_ref()))
}

/// Checks a base64url Ed25519 signature against a base64url public key.
pub fn ed25519_verify(public_key: &str, message: &[u8], signature: &str) -> bool {
    let (Ok(public), Ok(signature)) = (B64.decode(public_key), B64.decode(signature)) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, public)
        .verify(message, &signature)
        .is_ok()
}

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AppError::Internal("no randomness".into()))?;
    Ok(bytes)
}

fn write_private_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_in_its_context() {
        let keyring = Keyring::ephemeral().unwrap();
        let sealed = keyring.seal("key-1", b"secret").unwrap();
        assert_eq!(keyring.open("key-1", &sealed).unwrap(), b"secret");
        assert!(keyring.open("key-2", &sealed).is_err());
        assert!(
            Keyring::ephemeral()
                .unwrap()
                .open("key-1", &sealed)
                .is_err()
        );
    }

    #[test]
    fn signatures_verify_only_for_their_message() {
        let keyring = Keyring::ephemeral().unwrap();
        let (_, public, pkcs8) = keyring.generate_ed25519().unwrap();
        let sig = ed25519_sign(&pkcs8, b"head").unwrap();
        assert!(ed25519_verify(&public, b"head", &sig));
        assert!(!ed25519_verify(&public, b"other", &sig));
    }

    #[test]
    fn macs_depend_on_root_key_context_and_data() {
        let bytes = random_bytes::<ROOT_KEY_LEN>().unwrap();
        let a = Keyring::from_bytes(&bytes).unwrap();
        let mac = a.mac("client-secret", b"s3cret");
        assert_eq!(mac.len(), 43, "32 bytes, base64url");
        assert_eq!(
            Keyring::from_bytes(&bytes)
                .unwrap()
                .mac("client-secret", b"s3cret"),
            mac
        );
        assert_ne!(a.mac("client-secret", b"s3cret!"), mac);
        assert_ne!(a.mac("client-secret2", b"s3cret"), mac);
        assert_ne!(
            a.mac("client-secret:", b"3cret"),
            a.mac("client-secret:3", b"cret")
        );
        assert_ne!(
            Keyring::ephemeral()
                .unwrap()
                .mac("client-secret", b"s3cret"),
            mac
        );
    }

    #[test]
    fn root_key_file_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        let a = Keyring::load_or_create(&path).unwrap();
        let sealed = a.seal("c", b"x").unwrap();
        let b = Keyring::load_or_create(&path).unwrap();
        assert_eq!(b.open("c", &sealed).unwrap(), b"x");
    }
}
