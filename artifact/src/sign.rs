//! Signing: appending (or replacing) one signature block per key.

use ed25519_dalek::{Signer, SigningKey};
use zerocopy::IntoBytes;

use crate::error::ArtifactError;
use crate::format::{SignatureBlock, SIGNATURE_MAGIC};
use crate::keys::key_id;
use crate::reader::Artifact;

/// Signs an artifact with `key`: checks it (a corrupt artifact is refused),
/// then returns its bytes with a signature block of `key` over the content
/// area. An existing block of the same key is replaced in place (Ed25519 is
/// deterministic, so re-signing gives the same bytes); blocks of other keys
/// are kept. The content, and so its digest, never changes.
pub fn sign(artifact_bytes: &[u8], key: &SigningKey) -> Result<Vec<u8>, ArtifactError> {
    let artifact = Artifact::parse(artifact_bytes)?;
    let block = SignatureBlock {
        magic: SIGNATURE_MAGIC,
        key_id: key_id(&key.verifying_key()),
        reserved: [0; 8],
        signature: key.sign(artifact.content()).to_bytes(),
    };
    let mut out = artifact.content().to_vec();
    let mut replaced = false;
    for existing in artifact.signatures() {
        if existing.key_id == block.key_id {
            out.extend_from_slice(block.as_bytes());
            replaced = true;
        } else {
            out.extend_from_slice(existing.as_bytes());
        }
    }
    if !replaced {
        out.extend_from_slice(block.as_bytes());
    }
    Ok(out)
}
