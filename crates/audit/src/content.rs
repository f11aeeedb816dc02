//! Session recording: request and response bodies stored compressed beside the chain.
//!
//! Only a digest goes into the chained event. The digest is salted with 16 random bytes kept in
//! the content row, so that once a body is erased (later: by deleting its subject's key) the
//! digest left in the chain cannot be used to confirm a guessed prompt.
//!
//! `digest = "sha256:" + hex(SHA-256(salt || u64_be(len(body)) || body || timing))`, where
//! `timing` is the row's timing text (`[[offset,ms],...]`, empty when absent).

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::canonical::hex;

/// A body being recorded: the bytes (shared, not copied) and, for streams, when each chunk was
/// sent.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    chunks: Vec<Bytes>,
    timing: Vec<(u64, u64)>,
    size: u64,
    seen: u64,
    cap: u64,
    streamed: bool,
}

impl Recording {
    /// A whole body known at once, kept up to `cap` bytes.
    pub fn whole(body: &Bytes, cap: u64) -> Recording {
        let mut r = Recording { cap, ..Recording::default() };
        r.push(body, None);
        r
    }

    /// A streamed body, recorded chunk by chunk up to `cap` bytes.
    pub fn stream(cap: u64) -> Recording {
        Recording { cap, streamed: true, ..Recording::default() }
    }

    /// Adds a chunk sent `at_ms` after the exchange began.
    pub fn push(&mut self, chunk: &Bytes, at_ms: Option<u64>) {
        if chunk.is_empty() {
            return;
        }
        self.seen += chunk.len() as u64;
        let room = self.cap.saturating_sub(self.size);
        if room == 0 {
            return;
        }
        let take = (chunk.len() as u64).min(room) as usize;
        if let (true, Some(ms)) = (self.streamed, at_ms) {
            self.timing.push((self.size, ms));
        }
        self.chunks.push(chunk.slice(..take));
        self.size += take as u64;
    }

    /// Whether the body went past the cap.
    pub fn truncated(&self) -> bool {
        self.seen > self.size
    }

    /// Bytes seen, recorded or not.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The recorded bytes, joined.
    pub fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size as usize);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out
    }

    /// The chunk timing as stored: `[[offset,ms],...]`, or `None` for whole bodies.
    pub fn timing_text(&self) -> Option<String> {
        if !self.streamed {
            return None;
        }
        let mut s = String::with_capacity(self.timing.len() * 10 + 2);
        s.push('[');
        for (i, (off, ms)) in self.timing.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!("[{off},{ms}]"));
        }
        s.push(']');
        Some(s)
    }
}

/// A recording made ready for storage.
#[derive(Debug)]
pub struct Encoded {
    /// Random salt of the digest.
    pub salt: [u8; 16],
    /// `sha256:<hex>` (see the module docs).
    pub digest: String,
    /// lz4 block with the uncompressed size prepended.
    pub data: Vec<u8>,
    /// Uncompressed length.
    pub size: u64,
    /// Timing text, for streams.
    pub timing: Option<String>,
    /// Whether the cap cut the body.
    pub truncated: bool,
}

/// Compresses and digests a recording.
pub fn encode(r: &Recording) -> Encoded {
    let body = r.body();
    let timing = r.timing_text();
    let salt = fresh_salt();
    let digest = digest(&salt, &body, timing.as_deref());
    Encoded {
        salt,
        digest,
        data: lz4_flex::compress_prepend_size(&body),
        size: body.len() as u64,
        timing,
        truncated: r.truncated(),
    }
}

/// 16 unpredictable bytes: SHA-256 of a per-process secret seed (from the OS RNG, once) and a
/// counter, so a salt costs a hash rather than a `getrandom` syscall per body.
fn fresh_salt() -> [u8; 16] {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: OnceLock<[u8; 32]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = SEED.get_or_init(|| {
        let mut s = [0u8; 32];
        if getrandom::fill(&mut s).is_err() {
            // No OS RNG: unique but guessable salts; the digests still bind the content.
            s[..16].copy_from_slice(uuid::Uuid::now_v7().as_bytes());
        }
        s
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = Sha256::new();
    h.update(seed);
    h.update(n.to_le_bytes());
    let out = h.finalize();
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&out[..16]);
    salt
}

/// The content digest of SPEC section 4's `content.*_digest`.
pub fn digest(salt: &[u8], body: &[u8], timing: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update((body.len() as u64).to_be_bytes());
    h.update(body);
    h.update(timing.unwrap_or("").as_bytes());
    format!("sha256:{}", hex(&h.finalize()))
}

/// Decompresses a stored body.
pub fn decode(codec: &str, data: &[u8]) -> Option<Vec<u8>> {
    match codec {
        "lz4" => lz4_flex::decompress_size_prepended(data).ok(),
        "none" => Some(data.to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_recording_caps_and_times() {
        let mut r = Recording::stream(8);
        r.push(&Bytes::from_static(b"hello"), Some(3));
        r.push(&Bytes::from_static(b"world"), Some(9));
        r.push(&Bytes::from_static(b"!"), Some(12));
        assert_eq!(r.body(), b"hellowor");
        assert!(r.truncated());
        assert_eq!(r.seen(), 11);
        assert_eq!(r.timing_text().as_deref(), Some("[[0,3],[5,9]]"));
        let e = encode(&r);
        assert_eq!(decode("lz4", &e.data).unwrap(), b"hellowor");
        assert_eq!(e.digest, digest(&e.salt, b"hellowor", Some("[[0,3],[5,9]]")));
        assert_ne!(e.digest, digest(&e.salt, b"hellowor", Some("[[0,3],[5,10]]")));
        assert_ne!(encode(&r).digest, e.digest, "salts differ per body");
    }

    #[test]
    fn whole_bodies_have_no_timing() {
        let r = Recording::whole(&Bytes::from_static(b"{\"a\":1}"), 1 << 20);
        assert_eq!(r.timing_text(), None);
        assert!(!r.truncated());
    }
}
