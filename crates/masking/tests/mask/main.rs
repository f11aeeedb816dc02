//! Integration tests of the masking transforms, through the public API: request and response
//! shapes per flavor, modes, directions, streams (SSE, NDJSON, raw) and random chunkings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod props;
mod shapes;
mod streams;

use std::sync::Arc;

use masking::{Masker, Mode, Plan};

/// An email address. The test values' first five bytes appear nowhere else in the test texts.
pub const EMAIL: &str = "zq.k9x@example.com";
/// An AWS access key id.
pub const AWS: &str = "AKIAZ7VQ3X4LRTM2PQ5N";
/// A GitHub token.
pub const GITHUB: &str = "ghp_R8fK2mQ9xV4tL7wZ1nB6cJ3hY5pD0sG2aE8uW";
/// A JWT.
pub const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
/// A PEM private key.
pub const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx7Qd9kQ2c8F+Ha6ili8GjHEAD6/Wj9KfzjsQGMrb9h\n-----END RSA PRIVATE KEY-----";

/// The test values and their types.
pub const VALUES: [(&str, &str); 5] = [
    (EMAIL, "EMAIL"),
    (AWS, "SECRET_AWS_ACCESS_KEY"),
    (GITHUB, "SECRET_GITHUB_TOKEN"),
    (JWT, "SECRET_JWT"),
    (PEM, "SECRET_PRIVATE_KEY"),
];

/// The pseudonym key of the tests.
pub fn key() -> Arc<[u8; 32]> {
    Arc::new([7u8; 32])
}

/// A plan masking every type in every direction.
pub fn plan(mode: Mode) -> Plan {
    Plan { entities: vec!["*".into()], mode, request: true, response: true, recording: true }
}

/// A masker of [`plan`].
pub fn masker(mode: Mode) -> Masker {
    Masker::new(plan(mode), key())
}

/// A small deterministic generator (xorshift64*), so failures reproduce from the seed.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }
}

/// Bytes as UTF-8 text.
pub fn s(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

/// Parses JSON, failing the test on invalid JSON.
pub fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(b)))
}

/// Asserts that no prefix of at least five bytes of any test value appears in `out`.
pub fn assert_no_value(out: &[u8]) {
    assert_no_value_unless(out, "");
}

/// Asserts that no prefix of at least five bytes of a test value appears in `out`, unless it
/// also appears in `reference` (a value the detector rightly does not see, such as one glued to
/// a word).
pub fn assert_no_value_unless(out: &[u8], reference: &str) {
    let out = String::from_utf8_lossy(out);
    for (v, _) in VALUES {
        let probe = &v[..5];
        assert!(!out.contains(probe) || reference.contains(probe), "{probe:?} (from {v:?}) leaked in {out}");
    }
}

#[test]
fn test_values_are_detected() {
    for (v, name) in VALUES {
        let text = format!("see {v} here");
        let mut found = Vec::new();
        masking::scan(text.as_bytes(), |f| found.push((f.entity.name(), &text[f.start..f.end])));
        assert_eq!(found, [(name, v)], "{v}");
    }
}
