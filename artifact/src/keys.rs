//! Ed25519 keys: generation, key ids, and PEM files that OpenSSL also reads
//! and writes.
//!
//! Secret keys are PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), public keys
//! SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`): the formats of
//! `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout`.

use std::fs;
use std::io::Write;
use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes};
use ed25519_dalek::{SigningKey, VerifyingKey, SECRET_KEY_LENGTH};
use zeroize::{Zeroize, Zeroizing};

use crate::error::ArtifactError;
use crate::sha256;

const SECRET: &str = "the secret key";
const PUBLIC: &str = "the public key";

/// A new secret key from the operating system's random source.
pub fn generate() -> Result<SigningKey, ArtifactError> {
    let mut seed = Zeroizing::new([0u8; SECRET_KEY_LENGTH]);
    getrandom::fill(seed.as_mut_slice()).map_err(|e| ArtifactError::Random { detail: e.to_string() })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The key id of a public key: the first 8 bytes of SHA-256 of its 32
/// bytes. Signature blocks are found by it.
pub fn key_id(key: &VerifyingKey) -> [u8; 8] {
    let digest = sha256(key.as_bytes());
    let mut id = [0; 8];
    for (d, s) in id.iter_mut().zip(digest) {
        *d = s;
    }
    id
}

/// Reads a secret key from PKCS#8 PEM text (with or without the public key
/// in it: OpenSSL writes it without).
pub fn secret_key_from_pem(pem: &str) -> Result<SigningKey, ArtifactError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|e| ArtifactError::Key { what: SECRET, detail: e.to_string() })
}

/// Writes a secret key as PKCS#8 PEM text, version 1 (without the public
/// key), as OpenSSL does: OpenSSL 3.0 cannot read the version 2 document
/// that `ed25519-dalek` writes by default.
pub fn secret_key_to_pem(key: &SigningKey) -> Result<Zeroizing<String>, ArtifactError> {
    let mut document = KeypairBytes { secret_key: key.to_bytes(), public_key: None };
    let pem = document.to_pkcs8_pem(LineEnding::LF);
    document.secret_key.zeroize();
    pem.map_err(|e| ArtifactError::Key { what: SECRET, detail: e.to_string() })
}

/// Reads a public key from SubjectPublicKeyInfo PEM text.
pub fn public_key_from_pem(pem: &str) -> Result<VerifyingKey, ArtifactError> {
    VerifyingKey::from_public_key_pem(pem).map_err(|e| ArtifactError::Key { what: PUBLIC, detail: e.to_string() })
}

/// Writes a public key as SubjectPublicKeyInfo PEM text.
pub fn public_key_to_pem(key: &VerifyingKey) -> Result<String, ArtifactError> {
    key.to_public_key_pem(LineEnding::LF).map_err(|e| ArtifactError::Key { what: PUBLIC, detail: e.to_string() })
}

/// Reads a secret key from a PKCS#8 PEM file.
pub fn read_secret_key(path: &Path) -> Result<SigningKey, ArtifactError> {
    let text = Zeroizing::new(read(path)?);
    secret_key_from_pem(&text)
}

/// Reads a public key from a SubjectPublicKeyInfo PEM file.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, ArtifactError> {
    public_key_from_pem(&read(path)?)
}

/// Writes a secret key to a new PKCS#8 PEM file, readable by its owner
/// only (mode 0600 on Unix). An existing file is not overwritten.
pub fn write_secret_key(path: &Path, key: &SigningKey) -> Result<(), ArtifactError> {
    write_new(path, secret_key_to_pem(key)?.as_bytes(), 0o600)
}

/// Writes a public key to a new SubjectPublicKeyInfo PEM file. An existing
/// file is not overwritten.
pub fn write_public_key(path: &Path, key: &VerifyingKey) -> Result<(), ArtifactError> {
    write_new(path, public_key_to_pem(key)?.as_bytes(), 0o644)
}

fn read(path: &Path) -> Result<String, ArtifactError> {
    crate::input::read_regular_text(path, crate::MAX_KEY_BYTES).map_err(|source| ArtifactError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ArtifactError> {
    let io = |action, source| ArtifactError::Io { action, path: path.to_path_buf(), source };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| io("create", e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| io("write", e))
}
