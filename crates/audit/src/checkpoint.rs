//! Signed checkpoints: an Ed25519 signature over the chain head, so that a copy kept off the box
//! proves what the log held at that moment (and detects a truncated tail).
//!
//! Body (RFC 8785 JSON, the signed bytes):
//! `{"gateway_id":…,"hash":"<hex>","key_fingerprint":"SHA256:…","schema":"modelgate.checkpoint.v1","seq":N,"time":…,"writer_id":…}`.
//! Export file: `{"body": <body object>, "public_key": "<base64>", "signature": "<base64>"}`.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The checkpoint body's schema.
pub const CHECKPOINT_SCHEMA: &str = "modelgate.checkpoint.v1";
/// File of the signing key's 32-byte seed in the data dir (mode 0600).
pub const KEY_FILE: &str = "audit-signing.key";
/// File of the public key (base64) in the data dir, for shipping to auditors.
pub const PUBLIC_KEY_FILE: &str = "audit-signing.pub";

/// Key handling failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The file does not hold a key.
    #[error("{0}: not an Ed25519 key")]
    Malformed(PathBuf),
}

/// A checkpoint body: what the signature covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointBody {
    /// Stable gateway id.
    pub gateway_id: String,
    /// Hash of the event at `seq` (hex).
    pub hash: String,
    /// Fingerprint of the signing key.
    pub key_fingerprint: String,
    /// Always [`CHECKPOINT_SCHEMA`].
    pub schema: String,
    /// The last event covered.
    pub seq: u64,
    /// When it was signed.
    pub time: String,
    /// The writer that signed it.
    pub writer_id: String,
}

/// A checkpoint as exported: body, signature and the public key that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    /// What is signed.
    pub body: CheckpointBody,
    /// Base64 Ed25519 public key.
    pub public_key: String,
    /// Base64 signature over the body's canonical bytes.
    pub signature: String,
}

impl CheckpointBody {
    /// The signed bytes (field order is canonical).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The signing key of this data dir.
#[derive(Debug)]
pub struct Keypair {
    key: SigningKey,
}

impl Keypair {
    /// Loads the key from `dir`, creating it (0600) when absent. Returns whether it was created.
    pub fn load_or_create(dir: &Path) -> Result<(Keypair, bool), KeyError> {
        let path = dir.join(KEY_FILE);
        let io = |source| KeyError::Io { path: path.clone(), source };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed(path.clone()))?;
                let kp = Keypair { key: SigningKey::from_bytes(&seed) };
                kp.write_public(dir)?;
                Ok((kp, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| io(std::io::Error::other(e.to_string())))?;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&path).map_err(io)?;
                f.write_all(&seed).map_err(io)?;
                f.sync_all().map_err(io)?;
                let kp = Keypair { key: SigningKey::from_bytes(&seed) };
                kp.write_public(dir)?;
                Ok((kp, true))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Loads an existing key without creating one.
    pub fn load(dir: &Path) -> Result<Keypair, KeyError> {
        let path = dir.join(KEY_FILE);
        let bytes = std::fs::read(&path).map_err(|source| KeyError::Io { path: path.clone(), source })?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed(path))?;
        Ok(Keypair { key: SigningKey::from_bytes(&seed) })
    }

    fn write_public(&self, dir: &Path) -> Result<(), KeyError> {
        let path = dir.join(PUBLIC_KEY_FILE);
        let text = format!("{}\n", self.public_base64());
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).map_err(|source| KeyError::Io { path, source })?;
        }
        Ok(())
    }

    /// The public key, base64.
    pub fn public_base64(&self) -> String {
        STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    /// `SHA256:<base64>` of the public key, as printed at first start.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key.verifying_key())
    }

    /// Signs a body.
    pub fn sign(&self, body: CheckpointBody) -> SignedCheckpoint {
        let sig = self.key.sign(&body.canonical_bytes());
        SignedCheckpoint { body, public_key: self.public_base64(), signature: STANDARD.encode(sig.to_bytes()) }
    }
}

/// `SHA256:<base64, no padding>` of a public key's 32 bytes.
pub fn fingerprint(key: &VerifyingKey) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(key.as_bytes())))
}

/// Parses a base64 public key (as in `audit-signing.pub` or an export).
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes = STANDARD.decode(text.trim()).ok()?;
    let arr: [u8; 32] = bytes.try_into().ok()?;
    VerifyingKey::from_bytes(&arr).ok()
}

/// Why a checkpoint does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// The signature is not base64 of 64 bytes.
    #[error("the signature is malformed")]
    MalformedSignature,
    /// The signature does not match the body under the key.
    #[error("the signature does not verify under key {0}")]
    BadSignature(String),
}

impl SignedCheckpoint {
    /// Checks the signature under `key` (the auditor's, not necessarily the embedded one).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), CheckpointError> {
        let bytes = STANDARD.decode(&self.signature).map_err(|_| CheckpointError::MalformedSignature)?;
        let arr: [u8; 64] = bytes.try_into().map_err(|_| CheckpointError::MalformedSignature)?;
        key.verify(&self.body.canonical_bytes(), &Signature::from_bytes(&arr))
            .map_err(|_| CheckpointError::BadSignature(fingerprint(key)))
    }

    /// Rebuilds a stored checkpoint from its body bytes and raw signature.
    pub fn from_stored(body: &[u8], signature: &[u8], public_key: &str) -> Option<SignedCheckpoint> {
        let body: CheckpointBody = serde_json::from_slice(body).ok()?;
        Some(SignedCheckpoint { body, public_key: public_key.to_string(), signature: STANDARD.encode(signature) })
    }

    /// The raw signature bytes.
    pub fn signature_bytes(&self) -> Vec<u8> {
        STANDARD.decode(&self.signature).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_tamper() {
        let dir = testkit::temp_dir("ckpt");
        let (kp, created) = Keypair::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (again, created) = Keypair::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(kp.fingerprint(), again.fingerprint());
        let body = CheckpointBody {
            gateway_id: "g".into(),
            hash: "ab".into(),
            key_fingerprint: kp.fingerprint(),
            schema: CHECKPOINT_SCHEMA.into(),
            seq: 5,
            time: "t".into(),
            writer_id: "w".into(),
        };
        let signed = kp.sign(body);
        let key = parse_public_key(&std::fs::read_to_string(dir.join(PUBLIC_KEY_FILE)).unwrap()).unwrap();
        signed.verify(&key).unwrap();
        let mut bad = signed.clone();
        bad.body.seq = 6;
        assert!(matches!(bad.verify(&key), Err(CheckpointError::BadSignature(_))));
        let other = Keypair::load_or_create(testkit::temp_dir("ckpt2").path()).unwrap().0;
        let other_key = parse_public_key(&other.public_base64()).unwrap();
        assert!(signed.verify(&other_key).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
