//! `audit export`: a range of the log that an auditor can verify offline, with or without
//! modelgate (DURABILITY.md "Verifying an export without modelgate").
//!
//! An export directory holds:
//! - `events.jsonl`: one event per line in the SPEC section 4 shape, `hash` included, for the
//!   contiguous seq range from the first event at or after `--since` to the last event before
//!   `--until` (contiguous so that the chain verifies: an event or two at the edges may lie just
//!   outside the window, since events are chained in commit order and stamped when they happen);
//! - `checkpoints.jsonl`: every stored [`SignedCheckpoint`] whose `seq` lies in `first - 1 ..=
//!   last`, one per line;
//! - `public-key`: the data dir's `audit-signing.pub` (base64);
//! - `VERIFY.md`: how to check it, and `verify.py`, a verifier that needs only Python.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::VerifyingKey;
use rusqlite::OptionalExtension;
use serde_json::Value;

use crate::canonical::{GENESIS, chain_hash, hex, to_jcs, unhex32};
use crate::checkpoint::{PUBLIC_KEY_FILE, SignedCheckpoint, fingerprint, parse_public_key};
use crate::store::{Store, StoreError};
use crate::verify::{Anchor, FailureKind, Found, Report, Stage, Stages, VerifyError, external_anchor, read_public_key};

/// The events of an export.
pub const EVENTS_FILE: &str = "events.jsonl";
/// The checkpoints of an export.
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";
/// The public key of an export.
pub const KEY_FILE: &str = "public-key";
/// The instructions of an export.
pub const VERIFY_FILE: &str = "VERIFY.md";
/// The standalone verifier of an export.
pub const SCRIPT_FILE: &str = "verify.py";

/// A verifier of exports that needs only Python and `cryptography` (also in DURABILITY.md).
pub const PYTHON_VERIFIER: &str = r##"#!/usr/bin/env python3
"""Verifies a modelgate audit export without modelgate.

usage: python3 verify.py EXPORT_DIR PUBLIC_KEY_FILE   (needs: pip install cryptography)
"""
import base64, hashlib, json, sys
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def jcs(v):
    """RFC 8785 for modelgate's JSON (integers only): keys sorted by UTF-16 code units, no spaces."""
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(jcs(k) + ":" + jcs(x) for k, x in items) + "}"
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    if isinstance(v, float):
        raise ValueError("modelgate events hold integers only")
    return json.dumps(v, ensure_ascii=False)  # strings, integers, true, false, null

def chain_hash(prev_hex, canonical):
    return hashlib.sha256(b"modelgate.audit.v1" + bytes.fromhex(prev_hex) + canonical).hexdigest()

def main(export, key_file):
    export = Path(export)
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(Path(key_file).read_text().strip()))
    hashes, first, last = {}, None, None
    for line in (export / "events.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        e = json.loads(line)
        claimed = e.pop("hash")
        seq = e["seq"]
        if last is None:
            first = (seq, e["prev_hash"])
            if seq == 1 and e["prev_hash"] != "0" * 64:
                sys.exit("FAILED at seq 1: not chained to the genesis value")
        elif seq != last[0] + 1 or e["prev_hash"] != last[1]:
            sys.exit(f"FAILED at seq {seq}: does not follow seq {last[0]} (deleted, inserted or reordered)")
        if chain_hash(e["prev_hash"], jcs(e).encode("utf-8")) != claimed:
            sys.exit(f"FAILED at seq {seq}: the event does not hash to its hash (modified)")
        hashes[seq] = claimed
        last = (seq, claimed)
    signed = 0
    for line in (export / "checkpoints.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        cp = json.loads(line)
        body = cp["body"]
        try:
            key.verify(base64.b64decode(cp["signature"]), jcs(body).encode("utf-8"))
        except Exception:
            sys.exit(f"FAILED: the checkpoint of seq {body['seq']} does not verify under this key")
        seq = body["seq"]
        if seq in hashes:
            ok = hashes[seq] == body["hash"]
        elif first and seq == first[0] - 1:
            ok = first[1] == body["hash"]  # a checkpoint just before the range signs its first prev_hash
        else:
            sys.exit(f"FAILED: the checkpoint of seq {seq} is beyond the export's last event (truncated)")
        if not ok:
            sys.exit(f"FAILED at seq {seq}: the export differs from the signed checkpoint")
        signed = max(signed, seq)
    n = len(hashes)
    print(f"OK: {n} events verified" + (f", seq {first[0]}..{last[0]}" if n else "")
          + f"; signed up to seq {signed}" + ("" if not n or signed >= last[0] else f" ({last[0] - signed} unsigned after it)"))

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
"##;

/// Exporting failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the export failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The directory already holds an export.
    #[error("{0} already holds an export; choose an empty directory")]
    Exists(PathBuf),
    /// A stored value is not what it should be.
    #[error("{0}")]
    Malformed(String),
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ExportSummary {
    /// Events written.
    pub events: u64,
    /// The first exported seq.
    pub first_seq: Option<u64>,
    /// The last exported seq.
    pub last_seq: Option<u64>,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// The directory.
    pub out_dir: PathBuf,
}

/// Parses a point in time: RFC 3339 (`2025-01-31T12:00:00Z`), `now`, or a duration before
/// `now` (`24h`, `7d`, `90m`).
pub fn parse_time(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let t = text.trim();
    if t == "now" {
        return Ok(now);
    }
    if let Ok(at) = humantime::parse_rfc3339_weak(t) {
        return Ok(at);
    }
    match humantime::parse_duration(t) {
        Ok(d) => now.checked_sub(d).ok_or_else(|| format!("\"{text}\" reaches before 1970")),
        Err(_) => Err(format!("\"{text}\" is neither an RFC 3339 time nor a duration like 24h or 7d")),
    }
}

/// A time as events hold it: RFC 3339, UTC, milliseconds.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Writes the events of `since..until` (either end open) and their checkpoints to `out_dir`.
pub fn export(
    data_dir: &Path,
    since: Option<SystemTime>,
    until: Option<SystemTime>,
    out_dir: &Path,
) -> Result<ExportSummary, ExportError> {
    let store = Store::open_reader(data_dir)?;
    let err = |source| ExportError::Store(StoreError::Sqlite { path: store.path().to_path_buf(), source });
    let key_path = data_dir.join(PUBLIC_KEY_FILE);
    let public =
        std::fs::read_to_string(&key_path).map_err(|source| ExportError::Io { path: key_path.clone(), source })?;
    if parse_public_key(&public).is_none() {
        return Err(ExportError::Malformed(format!("{}: not a base64 Ed25519 public key", key_path.display())));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let events_path = out_dir.join(EVENTS_FILE);
    if events_path.exists() {
        return Err(ExportError::Exists(out_dir.to_path_buf()));
    }
    let tx = store.conn().unchecked_transaction().map_err(err)?;
    let lo: Option<i64> = match since {
        Some(t) => tx.query_row("SELECT min(seq) FROM events WHERE time_ms >= ?1", [millis(t)], |r| r.get(0)),
        None => tx.query_row("SELECT min(seq) FROM events", [], |r| r.get(0)),
    }
    .map_err(err)?;
    let hi: Option<i64> = match until {
        Some(t) => tx.query_row("SELECT max(seq) FROM events WHERE time_ms < ?1", [millis(t)], |r| r.get(0)),
        None => tx.query_row("SELECT max(seq) FROM events", [], |r| r.get(0)),
    }
    .map_err(err)?;
    let range = match (lo, hi) {
        (Some(lo), Some(hi)) if lo <= hi => Some((lo, hi)),
        _ => None,
    };

    let mut events = 0u64;
    let file = std::fs::File::create(&events_path).map_err(io(&events_path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    if let Some((lo, hi)) = range {
        let mut st = tx
            .prepare("SELECT seq, hash, canonical FROM events WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq")
            .map_err(err)?;
        let mut rows = st.query([lo, hi]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let seq: i64 = r.get(0).map_err(err)?;
            let hash: Vec<u8> = r.get(1).map_err(err)?;
            let canonical: Vec<u8> = r.get(2).map_err(err)?;
            let mut v: serde_json::Map<String, Value> = serde_json::from_slice(&canonical)
                .map_err(|e| ExportError::Malformed(format!("seq {seq}: the stored event is not JSON: {e}")))?;
            v.insert("hash".into(), Value::String(hex(&hash)));
            serde_json::to_writer(&mut out, &v)
                .map_err(|e| ExportError::Io { path: events_path.clone(), source: e.into() })?;
            out.write_all(b"\n").map_err(io(&events_path))?;
            events += 1;
        }
    }
    let file = out.into_inner().map_err(|e| ExportError::Io { path: events_path.clone(), source: e.into_error() })?;
    file.sync_all().map_err(io(&events_path))?;

    let cp_path = out_dir.join(CHECKPOINTS_FILE);
    let mut cps = Vec::new();
    if let Some((lo, hi)) = range {
        let mut st = tx
            .prepare("SELECT body, signature FROM checkpoints WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq, id")
            .map_err(err)?;
        let mut rows = st.query([lo - 1, hi]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let body: Vec<u8> = r.get(0).map_err(err)?;
            let sig: Vec<u8> = r.get(1).map_err(err)?;
            let cp = SignedCheckpoint::from_stored(&body, &sig, public.trim())
                .ok_or_else(|| ExportError::Malformed("a stored checkpoint is not readable".into()))?;
            let mut line = serde_json::to_vec(&cp).map_err(|e| ExportError::Malformed(e.to_string()))?;
            line.push(b'\n');
            cps.extend_from_slice(&line);
        }
    }
    let checkpoints = cps.iter().filter(|b| **b == b'\n').count() as u64;
    write_synced(&cp_path, &cps)?;
    write_synced(&out_dir.join(KEY_FILE), format!("{}\n", public.trim()).as_bytes())?;
    let fp = parse_public_key(&public).map(|k| fingerprint(&k)).unwrap_or_default();
    write_synced(&out_dir.join(VERIFY_FILE), verify_text(&fp, range, events).as_bytes())?;
    write_synced(&out_dir.join(SCRIPT_FILE), PYTHON_VERIFIER.as_bytes())?;
    Ok(ExportSummary {
        events,
        first_seq: range.map(|r| r.0 as u64),
        last_seq: range.map(|r| r.1 as u64),
        checkpoints,
        out_dir: out_dir.to_path_buf(),
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let io = |source| ExportError::Io { path: path.to_path_buf(), source };
    let mut f = std::fs::File::create(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

fn verify_text(fingerprint: &str, range: Option<(i64, i64)>, events: u64) -> String {
    let range = range.map_or_else(|| "no events".to_string(), |(lo, hi)| format!("seq {lo}..={hi}, {events} events"));
    format!(
        "# modelgate audit export\n\n\
         Range: {range}. Signing key: ed25519 {fingerprint} (compare it with the fingerprint the gateway printed at\n\
         its first start, or with the key you were given; the `public-key` file here came with the export).\n\n\
         With modelgate: `modelgate audit verify --export . --public-key KEY_YOU_TRUST`.\n\n\
         Without modelgate, for each line of `events.jsonl`, in order:\n\n\
         1. remove `hash`; canonical bytes = RFC 8785 (JCS) serialisation of the rest (UTF-8; all numbers are\n   \
            integers, so Python's `json.dumps(e, sort_keys=True, separators=(\",\", \":\"), ensure_ascii=False)` is JCS here);\n\
         2. `hash` must equal hex(SHA-256(b\"modelgate.audit.v1\" + bytes.fromhex(prev_hash) + canonical));\n\
         3. `seq` must be the previous line's `seq` + 1 and `prev_hash` the previous line's `hash` (the first\n   \
            event of a log, seq 1, has `prev_hash` = 64 zeros).\n\n\
         Each line of `checkpoints.jsonl` is `{{\"body\": {{...}}, \"public_key\": ..., \"signature\": ...}}`: the Ed25519\n\
         signature (base64) is over the JCS bytes of `body`, and `body.hash` must equal the `hash` of the event\n\
         whose `seq` is `body.seq`. Events after the last checkpoint are not signed. `verify.py` here does\n\
         all of this: `pip install cryptography; python3 verify.py . KEY_YOU_TRUST`.\n"
    )
}

/// Verifies an export directory offline: every line re-hashed from its RFC 8785 form with
/// [`to_jcs`], the chain linked line to line, every checkpoint signature checked and matched to
/// its event. Without `public_key`, the export's own `public-key` is used, with a warning.
pub fn verify_export(
    dir: &Path,
    public_key: Option<&VerifyingKey>,
    checkpoint: Option<&SignedCheckpoint>,
) -> Result<Report, VerifyError> {
    let started = Instant::now();
    let mut warnings = Vec::new();
    let (key, key_source) = match public_key {
        Some(k) => (*k, "--public-key".to_string()),
        None => {
            let path = dir.join(KEY_FILE);
            if !path.exists() {
                return Err(VerifyError::NoKey(path.display().to_string()));
            }
            warnings.push(
                "the signing key was taken from the export itself: this shows the export is intact under that key, \
                 not that the key is the gateway's; pass --public-key with the key you trust"
                    .to_string(),
            );
            (read_public_key(&path)?, format!("{} (the export's own key)", path.display()))
        }
    };
    let found = Found::new();
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| VerifyError::Io { path, source }
    };

    let mut anchors: Vec<Anchor> = Vec::new();
    let mut verified = 0u64;
    let cp_path = dir.join(CHECKPOINTS_FILE);
    if cp_path.exists() {
        let text = std::fs::read_to_string(&cp_path).map_err(io(&cp_path))?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let cp: SignedCheckpoint = serde_json::from_str(line).map_err(|e| {
                VerifyError::Malformed(format!("{} line {}: not a signed checkpoint: {e}", cp_path.display(), i + 1))
            })?;
            let seq = cp.body.seq;
            if let Err(e) = cp.verify(&key) {
                found.add(3, seq, FailureKind::BadSignature, format!("checkpoint on line {} (seq {seq}): {e}", i + 1));
                continue;
            }
            let Some(hash) = unhex32(&cp.body.hash) else {
                found.add(
                    3,
                    seq,
                    FailureKind::BadSignature,
                    format!("checkpoint on line {} signs a malformed hash", i + 1),
                );
                continue;
            };
            verified += 1;
            anchors.push(Anchor { seq, hash, what: format!("the checkpoint on line {}", i + 1), stored: true });
        }
    } else {
        warnings.push(format!("{} is missing: nothing in the export is signed", cp_path.display()));
    }
    let external = checkpoint.and_then(|cp| external_anchor(cp, &key, public_key.is_some(), &found));
    anchors.sort_by_key(|a| a.seq);

    let ev_path = dir.join(EVENTS_FILE);
    let file = std::fs::File::open(&ev_path).map_err(io(&ev_path))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(4096);
    let mut events = 0u64;
    let mut first: Option<(u64, [u8; 32])> = None;
    let mut last: Option<(u64, [u8; 32])> = None;
    let mut a = 0usize;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io(&ev_path))?;
        if n == 0 {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at = last.map_or(1, |l| l.0 + 1);
        let (seq, prev, hash) = match check_line(&line) {
            Ok(x) => x,
            Err(why) => {
                found.add(0, at, FailureKind::Modified, format!("the line after seq {}: {why}", at.saturating_sub(1)));
                break;
            }
        };
        events += 1;
        match last {
            None => {
                if seq == 1 && prev != GENESIS {
                    found.add(0, 1, FailureKind::Modified, "seq 1 is not chained to the genesis value".into());
                    break;
                }
                first = Some((seq, prev));
            }
            Some((lseq, lhash)) => {
                if seq != lseq + 1 {
                    let (kind, what) = if seq > lseq + 1 {
                        (FailureKind::Deleted, format!("seq {}..={} are missing", lseq + 1, seq - 1))
                    } else {
                        (FailureKind::Reordered, format!("seq {seq} follows seq {lseq}"))
                    };
                    found.add(0, lseq + 1, kind, what);
                    break;
                }
                if prev != lhash {
                    found.add(
                        0,
                        lseq,
                        FailureKind::Modified,
                        format!(
                            "seq {seq} is chained to hash {}, not to seq {lseq}'s hash {}: the event at seq {lseq} was \
                             replaced and its hash recomputed",
                            hex(&prev),
                            hex(&lhash)
                        ),
                    );
                    break;
                }
            }
        }
        while let Some(anchor) = anchors.get(a).filter(|x| x.seq <= seq) {
            let matches = if anchor.seq == seq {
                anchor.hash == hash
            } else {
                // A checkpoint just before the range signs the first event's prev_hash.
                anchor.seq + 1 != first.map_or(0, |f| f.0) || anchor.hash == first.map_or(GENESIS, |f| f.1)
            };
            if !matches {
                found.add(
                    3,
                    anchor.seq.max(1),
                    FailureKind::Modified,
                    format!(
                        "{} signed seq {} with hash {}, the export differs",
                        anchor.what,
                        anchor.seq,
                        hex(&anchor.hash)
                    ),
                );
            }
            a += 1;
        }
        last = Some((seq, hash));
        if found.stop_at() < seq {
            break;
        }
    }
    let last_seq = last.map_or(0, |l| l.0);
    for x in anchors.iter().filter(|x| x.seq > last_seq) {
        found.add(
            3,
            last_seq + 1,
            FailureKind::Truncated,
            format!("the export ends at seq {last_seq} but {} signed seq {}: events were removed", x.what, x.seq),
        );
    }
    if let Some(x) = external {
        let (lo, hi) = (first.map_or(1, |f| f.0), last_seq);
        if x.seq < lo || x.seq > hi {
            warnings.push(format!(
                "the checkpoint file signs seq {}, outside the exported range {lo}..={hi}: it was not compared",
                x.seq
            ));
        } else if let Some(h) = hash_at(&ev_path, x.seq)?
            && h != x.hash
        {
            found.add(
                3,
                x.seq,
                FailureKind::Modified,
                format!("the checkpoint file signed seq {} with hash {}, the export differs", x.seq, hex(&x.hash)),
            );
        }
    }
    let failure = found.first();
    let last_signed_seq = anchors.iter().filter(|x| x.seq <= last_seq && x.seq > 0).map(|x| x.seq).max();
    if failure.is_none() {
        match last_signed_seq {
            Some(s) if s < last_seq => warnings.push(format!(
                "unsigned tail: the {} events after seq {s} (the last checkpoint in the export) are not signed",
                last_seq - s
            )),
            None if events > 0 => warnings.push("no checkpoint in the export covers its events".into()),
            _ => {}
        }
    }
    let elapsed = started.elapsed();
    let secs = elapsed.as_secs_f64();
    Ok(Report {
        ok: failure.is_none(),
        source: dir.display().to_string(),
        export: true,
        events,
        last_seq,
        head_hash: hex(&last.map_or(GENESIS, |l| l.1)),
        checkpoints: verified,
        last_signed_seq,
        key_fingerprint: fingerprint(&key),
        key_source,
        fields_checked: false,
        content_checked: None,
        failure,
        warnings,
        elapsed_ms: secs * 1e3,
        events_per_second: if secs > 0.0 { events as f64 / secs } else { 0.0 },
        stages: Stages {
            hash: Stage { items: events, busy_ms: secs * 1e3, per_second: 0.0, threads: 1 },
            ..Stages::default()
        },
    })
}

/// Re-hashes one exported line: `(seq, prev_hash, hash)` when its `hash` matches.
fn check_line(line: &[u8]) -> Result<(u64, [u8; 32], [u8; 32]), String> {
    let mut v: serde_json::Map<String, Value> =
        serde_json::from_slice(line).map_err(|e| format!("not an event: {e}"))?;
    let hash = v.remove("hash").and_then(|h| h.as_str().and_then(unhex32)).ok_or("no hash")?;
    let seq = v.get("seq").and_then(Value::as_u64).ok_or("no seq")?;
    let prev = v.get("prev_hash").and_then(Value::as_str).and_then(unhex32).ok_or("no prev_hash")?;
    let canonical = to_jcs(&Value::Object(v)).map_err(|e| format!("seq {seq}: {e}"))?;
    if chain_hash(&prev, &canonical) != hash {
        return Err(format!("seq {seq} does not hash to its hash {} (the event was changed)", hex(&hash)));
    }
    Ok((seq, prev, hash))
}

/// The exported hash at `seq` (a second pass; only for a checkpoint file inside the range).
fn hash_at(path: &Path, seq: u64) -> Result<Option<[u8; 32]>, VerifyError> {
    let file =
        std::fs::File::open(path).map_err(|source| VerifyError::Io { path: path.display().to_string(), source })?;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|source| VerifyError::Io { path: path.display().to_string(), source })?;
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["seq"].as_u64() == Some(seq)
        {
            return Ok(v["hash"].as_str().and_then(unhex32));
        }
    }
    Ok(None)
}

/// The latest stored checkpoint with its public key, for `audit checkpoint` and the admin API.
pub fn latest_checkpoint(data_dir: &Path) -> Result<Option<SignedCheckpoint>, ExportError> {
    let store = Store::open_reader(data_dir)?;
    let key_path = data_dir.join(PUBLIC_KEY_FILE);
    let public = std::fs::read_to_string(&key_path).map_err(|source| ExportError::Io { path: key_path, source })?;
    let row: Option<(Vec<u8>, Vec<u8>)> = store
        .conn()
        .query_row("SELECT body, signature FROM checkpoints ORDER BY id DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(|source| StoreError::Sqlite { path: store.path().to_path_buf(), source })?;
    Ok(row.and_then(|(b, s)| SignedCheckpoint::from_stored(&b, &s, public.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventType, Outcome};
    use crate::writer::{Audit, Entry, WriterConfig};

    fn log(n: usize) -> testkit::TempDir {
        let dir = testkit::temp_dir("export");
        let (audit, _) = Audit::open(WriterConfig::gateway(dir.path())).unwrap();
        for i in 0..n {
            let mut e = Event::new(EventType::AuditSearch, Outcome::Success);
            e.details = Some(serde_json::json!({"i": i, "text": "é \"q\" \u{1}"}));
            audit.submit(Entry::event(e));
        }
        audit.close(None);
        dir
    }

    #[test]
    fn an_export_verifies_offline_and_tampering_is_named() {
        let dir = log(20);
        let out = dir.join("out");
        let s = export(dir.path(), None, None, &out).unwrap();
        assert_eq!((s.events, s.first_seq, s.last_seq), (20, Some(1), Some(20)));
        assert!(s.checkpoints >= 2);
        assert!(matches!(export(dir.path(), None, None, &out), Err(ExportError::Exists(_))));
        let key = read_public_key(&dir.join(PUBLIC_KEY_FILE)).unwrap();
        let r = verify_export(&out, Some(&key), None).unwrap();
        assert!(r.ok, "{}", r.to_text());
        assert_eq!(r.events, 20);
        assert_eq!(r.last_signed_seq, Some(20));
        let r = verify_export(&out, None, None).unwrap();
        assert!(r.ok && r.warnings.iter().any(|w| w.contains("export itself")));

        let text = std::fs::read_to_string(out.join(EVENTS_FILE)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut bad = lines.clone();
        let changed = lines[6].replace("\"i\":6", "\"i\":60");
        bad[6] = &changed;
        std::fs::write(out.join(EVENTS_FILE), bad.join("\n")).unwrap();
        let r = verify_export(&out, Some(&key), None).unwrap();
        assert_eq!(r.failure.as_ref().map(|f| (f.seq, f.kind)), Some((7, FailureKind::Modified)), "{}", r.to_text());

        let mut bad = lines.clone();
        bad.remove(9);
        std::fs::write(out.join(EVENTS_FILE), bad.join("\n")).unwrap();
        let r = verify_export(&out, Some(&key), None).unwrap();
        assert_eq!(r.failure.as_ref().map(|f| (f.seq, f.kind)), Some((10, FailureKind::Deleted)));

        std::fs::write(out.join(EVENTS_FILE), lines[..15].join("\n")).unwrap();
        let r = verify_export(&out, Some(&key), None).unwrap();
        assert_eq!(r.failure.as_ref().map(|f| (f.seq, f.kind)), Some((16, FailureKind::Truncated)));
    }

    #[test]
    fn the_python_verifier_is_the_documented_one_and_agrees() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../DURABILITY.md")).unwrap();
        assert!(doc.contains(PYTHON_VERIFIER), "DURABILITY.md and export::PYTHON_VERIFIER differ");
        let has_python = std::process::Command::new("python3")
            .args(["-c", "import cryptography"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_python {
            eprintln!("python3 with cryptography not found: the script itself is not run");
            return;
        }
        let dir = log(12);
        let out = dir.join("out");
        export(dir.path(), None, None, &out).unwrap();
        let run = || {
            std::process::Command::new("python3")
                .arg(out.join(SCRIPT_FILE))
                .arg(&out)
                .arg(dir.join(PUBLIC_KEY_FILE))
                .output()
                .unwrap()
        };
        let ok = run();
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        assert!(String::from_utf8_lossy(&ok.stdout).starts_with("OK: 12 events verified"));
        let text = std::fs::read_to_string(out.join(EVENTS_FILE)).unwrap();
        std::fs::write(out.join(EVENTS_FILE), text.replace("\"i\":4", "\"i\":40")).unwrap();
        let bad = run();
        assert!(!bad.status.success());
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("FAILED at seq 5"),
            "{}",
            String::from_utf8_lossy(&bad.stderr)
        );
    }

    #[test]
    fn time_windows() {
        let now = SystemTime::now();
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("24h", now), Ok(now - std::time::Duration::from_secs(86_400)));
        assert_eq!(parse_time("7d", now), Ok(now - std::time::Duration::from_secs(7 * 86_400)));
        assert_eq!(
            parse_time("2025-01-31T12:00:00Z", now).unwrap(),
            UNIX_EPOCH + std::time::Duration::from_secs(1_738_324_800)
        );
        assert!(parse_time("yesterday", now).is_err());

        let dir = log(5);
        let out = dir.join("empty");
        let s = export(dir.path(), Some(now + std::time::Duration::from_secs(3600)), None, &out).unwrap();
        assert_eq!(s.events, 0);
        let r = verify_export(&out, None, None).unwrap();
        assert!(r.ok && r.events == 0);
    }
}
