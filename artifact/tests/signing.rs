//! Signatures and keys: signing, verifying, re-signing, tampering, and PEM
//! files interchangeable with OpenSSL's.

// Test code: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use d4c_artifact::keys::{
    generate, key_id, public_key_from_pem, public_key_to_pem, read_public_key, read_secret_key, secret_key_from_pem,
    secret_key_to_pem, write_public_key, write_secret_key,
};
use d4c_artifact::{sign, to_hex, Artifact, ArtifactError, SIGNATURE_BLOCK_SIZE};
use ed25519_dalek::{Signature, Signer, Verifier};

#[test]
fn sign_then_verify() {
    let bytes = sample();
    let key = fixture_key();
    let signed = sign(&bytes, &key).unwrap();
    assert_eq!(signed.len(), bytes.len() + SIGNATURE_BLOCK_SIZE);
    assert_eq!(&signed[..bytes.len()], &bytes[..], "signing never changes the content");
    let a = Artifact::parse(&signed).unwrap();
    assert_eq!(a.content(), &bytes[..]);
    assert_eq!(a.header().content_digest, Artifact::parse(&bytes).unwrap().header().content_digest);
    assert_eq!(a.signatures().len(), 1);
    assert_eq!(a.signatures()[0].key_id, key_id(&key.verifying_key()));
    a.verify_signature(&key.verifying_key()).unwrap();
}

#[test]
fn an_unsigned_artifact_has_no_signature() {
    let bytes = sample();
    let key = fixture_key().verifying_key();
    let e = Artifact::parse(&bytes).unwrap().verify_signature(&key).unwrap_err();
    assert_eq!(e.to_string(), "no signature by key 868929f8e4c443df");
}

#[test]
fn another_key_does_not_verify() {
    let signed = sign(&sample(), &fixture_key()).unwrap();
    let a = Artifact::parse(&signed).unwrap();
    let other = other_key().verifying_key();
    let e = a.verify_signature(&other).unwrap_err();
    assert!(matches!(e, ArtifactError::NoSignature { key_id } if key_id == d4c_artifact::keys::key_id(&other)));
    assert_eq!(e.to_string(), format!("no signature by key {}", to_hex(&key_id(&other))));
}

#[test]
fn a_forged_block_with_the_right_key_id_does_not_verify() {
    let key = fixture_key();
    let mut signed = sign(&sample(), &key).unwrap();
    let last = signed.len() - 1;
    signed[last] ^= 1;
    let e = Artifact::parse(&signed).unwrap().verify_signature(&key.verifying_key()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the signature by key 868929f8e4c443df does not verify: the artifact was altered after it was signed"
    );
    // A valid signature by another key, under this key's id.
    let mut forged = sign(&sample(), &other_key()).unwrap();
    let at = sample().len() + 8;
    forged[at..at + 8].copy_from_slice(&key_id(&key.verifying_key()));
    let e = Artifact::parse(&forged).unwrap().verify_signature(&key.verifying_key()).unwrap_err();
    assert!(matches!(e, ArtifactError::BadSignature { .. }), "{e}");
}

#[test]
fn re_signing_is_idempotent() {
    let key = fixture_key();
    let once = sign(&sample(), &key).unwrap();
    let twice = sign(&once, &key).unwrap();
    assert_eq!(once, twice);
}

#[test]
fn two_keys_two_blocks() {
    let (k1, k2) = (fixture_key(), other_key());
    let both = sign(&sign(&sample(), &k1).unwrap(), &k2).unwrap();
    let a = Artifact::parse(&both).unwrap();
    assert_eq!(a.signatures().len(), 2);
    a.verify_signature(&k1.verifying_key()).unwrap();
    a.verify_signature(&k2.verifying_key()).unwrap();
    // Re-signing by the first key replaces its block in place.
    assert_eq!(sign(&both, &k1).unwrap(), both);
    // Order of signing is kept.
    let other_order = sign(&sign(&sample(), &k2).unwrap(), &k1).unwrap();
    assert_ne!(other_order, both);
    assert_eq!(other_order.len(), both.len());
    // Two blocks with one key id are refused.
    let mut dup = both.clone();
    let first = sample().len();
    let block = dup[first..first + SIGNATURE_BLOCK_SIZE].to_vec();
    dup[first + SIGNATURE_BLOCK_SIZE..].copy_from_slice(&block);
    let e = Artifact::parse(&dup).unwrap_err();
    assert_eq!(e.to_string(), "two signature blocks are by key 868929f8e4c443df");
}

#[test]
fn sign_refuses_a_corrupt_artifact() {
    let mut bytes = sample();
    let at = entry(&bytes, 2).offset as usize;
    bytes[at] ^= 1;
    assert!(matches!(sign(&bytes, &fixture_key()), Err(ArtifactError::SectionDigest { .. })));
    assert!(matches!(sign(b"hello", &fixture_key()), Err(ArtifactError::NotAnArtifact)));
}

/// Every byte of a signed artifact matters: flipping any bit of any byte
/// makes it unreadable or its signature invalid.
#[test]
fn flipping_any_byte_of_a_signed_artifact_is_caught() {
    let key = fixture_key();
    let vk = key.verifying_key();
    let signed = sign(&sample(), &key).unwrap();
    for at in 0..signed.len() {
        for bit in [0x01, 0x80] {
            let mut bad = signed.clone();
            bad[at] ^= bit;
            let caught = match Artifact::parse(&bad) {
                Err(_) => true,
                Ok(a) => a.verify_signature(&vk).is_err(),
            };
            assert!(caught, "flipping bit {bit:#x} of byte {at} went unnoticed");
        }
    }
}

/// Truncating a signed artifact either fails to parse or drops signatures
/// (cutting at a block boundary is the one way to remove a signature, which
/// is why a cluster names the keys it requires).
#[test]
fn truncating_a_signed_artifact() {
    let (k1, k2) = (fixture_key(), other_key());
    let both = sign(&sign(&sample(), &k1).unwrap(), &k2).unwrap();
    for len in 0..both.len() {
        if let Ok(a) = Artifact::parse(&both[..len]) {
            assert!(a.signatures().len() < 2, "{len}");
            assert!(a.verify_signature(&k2.verifying_key()).is_err());
        }
    }
}

// ---- keys ----

#[test]
fn pem_round_trip() {
    let key = generate().unwrap();
    let pem = secret_key_to_pem(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{}", &*pem);
    assert_eq!(secret_key_from_pem(&pem).unwrap().to_bytes(), key.to_bytes());
    let public = public_key_to_pem(&key.verifying_key()).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{public}");
    assert_eq!(public_key_from_pem(&public).unwrap(), key.verifying_key());
    assert_ne!(generate().unwrap().to_bytes(), key.to_bytes());
}

#[test]
fn openssl_keys() {
    let dir = fixtures();
    let key = read_secret_key(&dir.join("test-signing-key.pem")).unwrap();
    let public = read_public_key(&dir.join("test-signing-key.pub.pem")).unwrap();
    assert_eq!(key.verifying_key(), public);
    // `openssl pkey -pubout -outform DER | tail -c 32 | sha256sum | cut -c1-16`
    assert_eq!(to_hex(&key_id(&public)), "868929f8e4c443df");
    // OpenSSL's signature (`openssl pkeyutl -sign -rawin`) of the message is
    // ours: Ed25519 is deterministic.
    let message = std::fs::read(dir.join("message.txt")).unwrap();
    let theirs = std::fs::read(dir.join("message.txt.sig")).unwrap();
    let theirs = Signature::from_slice(&theirs).unwrap();
    public.verify(&message, &theirs).unwrap();
    assert_eq!(key.sign(&message), theirs);
    // Our PEM files are OpenSSL's, byte for byte (PKCS#8 version 1: OpenSSL
    // 3.0 cannot read version 2).
    let openssl_secret = std::fs::read_to_string(dir.join("test-signing-key.pem")).unwrap();
    assert_eq!(*secret_key_to_pem(&key).unwrap(), openssl_secret);
    let openssl_public = std::fs::read_to_string(dir.join("test-signing-key.pub.pem")).unwrap();
    assert_eq!(public_key_to_pem(&public).unwrap(), openssl_public);
}

#[test]
fn key_files() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = generate().unwrap();
    let (secret, public) = (dir.join("ci.pem"), dir.join("ci.pub.pem"));
    write_secret_key(&secret, &key).unwrap();
    write_public_key(&public, &key.verifying_key()).unwrap();
    assert_eq!(read_secret_key(&secret).unwrap().to_bytes(), key.to_bytes());
    assert_eq!(read_public_key(&public).unwrap(), key.verifying_key());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // A key file is never overwritten.
    let e = write_secret_key(&secret, &generate().unwrap()).unwrap_err();
    assert!(e.to_string().starts_with(&format!("cannot create `{}`: ", secret.display())), "{e}");
    assert_eq!(read_secret_key(&secret).unwrap().to_bytes(), key.to_bytes());
    let e = read_public_key(&dir.join("missing.pem")).unwrap_err();
    assert!(matches!(e, ArtifactError::Io { action: "read", .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_pem_is_refused() {
    let e = secret_key_from_pem("hello").unwrap_err();
    assert!(e.to_string().starts_with("the secret key is not a usable Ed25519 key: "), "{e}");
    let public = std::fs::read_to_string(fixtures().join("test-signing-key.pub.pem")).unwrap();
    assert!(matches!(secret_key_from_pem(&public), Err(ArtifactError::Key { what: "the secret key", .. })));
    let secret = std::fs::read_to_string(fixtures().join("test-signing-key.pem")).unwrap();
    assert!(matches!(public_key_from_pem(&secret), Err(ArtifactError::Key { what: "the public key", .. })));
}
