//! Tampering with the audit store is detected and the first bad seq named (SPEC section 5):
//! a data dir of real events, written by the audit writer as a gateway writes them, is edited
//! directly with SQLite, then checked by the real binary's `audit verify`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use ::audit::canonical::{chain_hash, hex};
use ::audit::checkpoint::{CHECKPOINT_SCHEMA, CheckpointBody, Keypair};
use ::audit::{Actor, Entry, Event, EventType, Family, GenAi, Outcome, Recording, Resource, WriterConfig};
use bytes::Bytes;
use rusqlite::{Connection, params};

use crate::support::bin;

/// A data dir as two gateway runs leave it (checkpoints at each start and stop: seq 0, 31, 31,
/// 62), then three events of a CLI writer after the last checkpoint (an unsigned tail, 63..=65).
/// In the first run odd seqs are requests (recorded prompt) and even seqs completions (recorded
/// stream); in the second, the other way round.
fn data_dir() -> testkit::TempDir {
    let dir = testkit::temp_dir("tamper");
    for run in 0..2 {
        let (trail, _) = ::audit::Audit::open(WriterConfig::gateway(dir.path())).unwrap();
        for i in 0..15 {
            let request_id = format!("req-{run}-{i}");
            let actor = Arc::new(Actor {
                auth_method: Some("api_key".into()),
                subject: Some(format!("user-{}", i % 4)),
                groups: vec!["users".into()],
                kind: Some("human".into()),
                ..Actor::default()
            });
            let mut req = Event::new(EventType::Request(Family::Inference), Outcome::Success).actor(actor.clone());
            req.request_id = Some(request_id.clone());
            req.action = Some("inference.chat".into());
            req.gen_ai = Some(GenAi { request_model: Some("mock-model".into()), ..GenAi::default() });
            req.resource =
                Some(Resource { id: Some("mock-model".into()), kind: "model".into(), upstream: Some("up".into()) });
            let prompt =
                Bytes::from(format!("{{\"model\":\"mock-model\",\"messages\":[{{\"content\":\"question {i}\"}}]}}"));
            trail.submit(Entry { event: req, input: Some(Recording::whole(&prompt, 1 << 20)), output: None });
            let mut done = Event::new(EventType::Completion(Family::Inference), Outcome::Success).actor(actor);
            done.request_id = Some(request_id);
            done.action = Some("inference.chat".into());
            done.status_code = Some(200);
            done.end = Some("completed".into());
            let mut answer = Recording::stream(1 << 20);
            answer.push(&Bytes::from(format!("data: answer {i}\n\n")), Some(12));
            answer.push(&Bytes::from_static(b"data: [DONE]\n\n"), Some(20));
            trail.submit(Entry { event: done, input: None, output: Some(answer) });
        }
        trail.close(Some(Event::new(EventType::GatewayStop, Outcome::Success).actor(Arc::new(Actor::system()))));
    }
    let tail: Vec<Event> = (0..3).map(|_| Event::new(EventType::TokenCreated, Outcome::Success)).collect();
    ::audit::append_local(dir.path(), tail).unwrap();
    dir
}

/// A fresh copy of a data dir.
fn copy(src: &Path) -> testkit::TempDir {
    let dst = testkit::temp_dir("tamper-copy");
    for f in std::fs::read_dir(src).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            std::fs::copy(f.path(), dst.join(f.file_name().to_str().unwrap())).unwrap();
        }
    }
    dst
}

/// Runs `modelgate audit ARGS --data-dir DIR`: success and everything it printed.
fn cli(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin())
        .arg("audit")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .current_dir(dir)
        .env_remove("MODELGATE_CONFIG")
        .env("USER", "auditor")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[track_caller]
fn assert_bad((ok, text): (bool, String), seq: u64, kind: &str) {
    assert!(!ok, "verify passed but should name seq {seq}:\n{text}");
    assert!(text.contains(&format!("first bad seq {seq} ({kind})")), "expected first bad seq {seq} ({kind}):\n{text}");
}

fn db(dir: &Path) -> Connection {
    Connection::open(dir.join("audit.db")).unwrap()
}

fn canonical(c: &Connection, seq: i64) -> Vec<u8> {
    c.query_row("SELECT canonical FROM events WHERE seq = ?1", [seq], |r| r.get(0)).unwrap()
}

/// Moves the rows above `seq` by `by` (two steps: seq is the primary key).
fn renumber_above(c: &Connection, seq: i64, by: i64) {
    c.execute("UPDATE events SET seq = -(seq + ?2) WHERE seq > ?1", params![seq, by]).unwrap();
    c.execute("UPDATE events SET seq = -seq WHERE seq < 0", []).unwrap();
}

#[test]
fn an_untouched_log_verifies_and_its_own_events_do_not_break_it() {
    let base = data_dir();
    let dir = copy(base.path());
    let (ok, text) = cli(dir.path(), &["verify"]);
    assert!(ok, "{text}");
    assert!(text.contains("OK:"), "{text}");
    assert!(text.contains("65 checked"), "{text}");
    assert!(text.contains("unsigned tail: the 3 events after seq 62"), "{text}");
    // The audit.verify event (seq 66) is chained like any other.
    let (ok, text) = cli(dir.path(), &["verify", "--content", "--json"]);
    assert!(ok, "{text}");
    let report: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["events"], 66);
    assert_eq!(report["content_checked"], 60);
    let verify: Event = serde_json::from_slice(&canonical(&db(dir.path()), 66)).unwrap();
    assert_eq!(verify.event_type, "audit.verify");
    assert_eq!(verify.actor.as_ref().unwrap().subject.as_deref(), Some("auditor"));
    assert_eq!(verify.actor.as_ref().unwrap().auth_method.as_deref(), Some("local"));
}

#[test]
fn a_changed_field_in_the_hashed_bytes_is_named() {
    let base = data_dir();
    let dir = copy(base.path());
    let c = db(dir.path());
    let bytes = String::from_utf8(canonical(&c, 10)).unwrap();
    let changed = bytes.replace("\"status_code\":200", "\"status_code\":403");
    assert_ne!(bytes, changed);
    c.execute("UPDATE events SET canonical = ?1 WHERE seq = 10", [changed.as_bytes()]).unwrap();
    assert_bad(cli(dir.path(), &["verify"]), 10, "modified");

    // Changed and its own hash recomputed: the next event still names it.
    let dir = copy(base.path());
    let c = db(dir.path());
    let bytes = String::from_utf8(canonical(&c, 12)).unwrap().replace("\"status_code\":200", "\"status_code\":403");
    let prev: Vec<u8> = c.query_row("SELECT prev_hash FROM events WHERE seq = 12", [], |r| r.get(0)).unwrap();
    let hash = chain_hash(&prev.try_into().unwrap(), bytes.as_bytes());
    c.execute("UPDATE events SET canonical = ?1, hash = ?2 WHERE seq = 12", params![bytes.as_bytes(), &hash[..]])
        .unwrap();
    assert_bad(cli(dir.path(), &["verify"]), 12, "modified");
}

#[test]
fn a_changed_index_column_is_named() {
    let base = data_dir();
    let dir = copy(base.path());
    db(dir.path()).execute("UPDATE events SET subject = 'someone-else' WHERE seq = 20", []).unwrap();
    let (ok, text) = cli(dir.path(), &["verify"]);
    assert!(text.contains("column subject"), "{text}");
    assert_bad((ok, text), 20, "index mismatch");
    // Only the field check sees it: the chain itself is intact.
    assert!(cli(dir.path(), &["verify", "--no-fields"]).0);
}

#[test]
fn a_deleted_row_is_named() {
    let base = data_dir();
    let dir = copy(base.path());
    db(dir.path()).execute("DELETE FROM events WHERE seq = 15", []).unwrap();
    assert_bad(cli(dir.path(), &["verify"]), 15, "deleted");

    // Deleted and the rows after it renumbered to close the gap.
    let dir = copy(base.path());
    let c = db(dir.path());
    c.execute("DELETE FROM events WHERE seq = 15", []).unwrap();
    renumber_above(&c, 15, -1);
    assert_bad(cli(dir.path(), &["verify"]), 15, "deleted");
}

#[test]
fn an_inserted_row_is_named() {
    let base = data_dir();
    let dir = copy(base.path());
    let c = db(dir.path());
    // A forged event, correctly chained to seq 40 and hashed, slipped in as seq 41.
    renumber_above(&c, 40, 1);
    let prev: Vec<u8> = c.query_row("SELECT hash FROM events WHERE seq = 40", [], |r| r.get(0)).unwrap();
    let mut forged: Event = serde_json::from_slice(&canonical(&c, 40)).unwrap();
    forged.seq = 41;
    forged.prev_hash = hex(&prev);
    forged.event_id = ::audit::event::new_event_id();
    let bytes = forged.canonical_bytes();
    let hash = chain_hash(&prev.clone().try_into().unwrap(), &bytes);
    c.execute(
        "INSERT INTO events SELECT 41, ?1, ?2, time_ms, event_type, outcome, request_id, subject, action, model, \
         writer_id, ?3 FROM events WHERE seq = 40",
        params![&hash[..], prev, bytes],
    )
    .unwrap();
    assert_bad(cli(dir.path(), &["verify"]), 41, "inserted");
}

#[test]
fn swapped_rows_are_named() {
    let base = data_dir();
    let dir = copy(base.path());
    let c = db(dir.path());
    c.execute("UPDATE events SET seq = 1000 WHERE seq = 44", []).unwrap();
    c.execute("UPDATE events SET seq = 44 WHERE seq = 48", []).unwrap();
    c.execute("UPDATE events SET seq = 48 WHERE seq = 1000", []).unwrap();
    assert_bad(cli(dir.path(), &["verify"]), 44, "reordered");
}

#[test]
fn a_truncated_tail_is_caught_by_an_exported_checkpoint() {
    let base = data_dir();
    let dir = copy(base.path());
    let cp = dir.join("exported-checkpoint.json");
    let (ok, text) = cli(dir.path(), &["checkpoint", "--out", cp.to_str().unwrap()]);
    assert!(ok, "{text}");
    // The checkpoint covers its own audit.checkpoint event (seq 66).
    assert!(text.contains("checkpoint of seq 66"), "{text}");
    let (ok, text) = cli(dir.path(), &["verify", "--checkpoint", cp.to_str().unwrap()]);
    assert!(ok, "{text}");

    // The tail is cut, with the stored checkpoints that would betray it.
    let c = db(dir.path());
    c.execute("DELETE FROM events WHERE seq > 55", []).unwrap();
    c.execute("DELETE FROM checkpoints WHERE seq > 55", []).unwrap();
    assert_bad(cli(dir.path(), &["verify", "--checkpoint", cp.to_str().unwrap()]), 56, "truncated");
    // Without the exported checkpoint nothing shows it: the log reads as a shorter, intact one.
    // (That verify appended its audit.verify event as seq 56, after the first one's.)
    let (ok, text) = cli(dir.path(), &["verify"]);
    assert!(ok, "{text}");
}

#[test]
fn forged_checkpoint_signatures_and_a_wrong_key_fail() {
    let base = data_dir();
    let dir = copy(base.path());
    let c = db(dir.path());
    // A checkpoint of seq 31 re-signed by another key (the hash it signs is the true one).
    let other_dir = testkit::temp_dir("tamper-key");
    let (other, _) = Keypair::load_or_create(other_dir.path()).unwrap();
    let (id, body): (i64, Vec<u8>) = c
        .query_row("SELECT id, body FROM checkpoints WHERE seq = 31 ORDER BY id LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let mut body: CheckpointBody = serde_json::from_slice(&body).unwrap();
    assert_eq!(body.schema, CHECKPOINT_SCHEMA);
    body.key_fingerprint = other.fingerprint();
    let forged = other.sign(body);
    c.execute(
        "UPDATE checkpoints SET body = ?1, signature = ?2 WHERE id = ?3",
        params![forged.body.canonical_bytes(), forged.signature_bytes(), id],
    )
    .unwrap();
    assert_bad(cli(dir.path(), &["verify"]), 31, "bad signature");

    // The log is intact, but the auditor's key is not the one that signed it.
    let dir = copy(base.path());
    let wrong = other_dir.join("audit-signing.pub");
    assert_bad(cli(dir.path(), &["verify", "--public-key", wrong.to_str().unwrap()]), 0, "bad signature");
    // The right key, given explicitly.
    let right = base.join("audit-signing.pub");
    assert!(cli(dir.path(), &["verify", "--public-key", right.to_str().unwrap()]).0);
}

#[test]
fn a_changed_recorded_body_fails_the_content_check() {
    let base = data_dir();
    let dir = copy(base.path());
    let c = db(dir.path());
    let done: Event = serde_json::from_slice(&canonical(&c, 35)).unwrap();
    let reference = done.content.unwrap().output_ref.unwrap();
    let id: i64 = reference.trim_start_matches("content:").parse().unwrap();
    let (data, codec): (Vec<u8>, String) =
        c.query_row("SELECT data, codec FROM content WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    let body = ::audit::content::decode(&codec, &data).unwrap();
    let changed = String::from_utf8(body).unwrap().replace("answer", "ANSWER");
    c.execute("UPDATE content SET data = ?1 WHERE id = ?2", params![lz4_compress(changed.as_bytes()), id]).unwrap();
    let (ok, text) = cli(dir.path(), &["verify"]);
    assert!(ok, "bodies are only re-digested with --content:\n{text}");
    assert_bad(cli(dir.path(), &["verify", "--content"]), 35, "content mismatch");
}

/// lz4 with the size prepended, as the store's `lz4` codec (the recorded body of a content row).
fn lz4_compress(body: &[u8]) -> Vec<u8> {
    let r = Recording::whole(&Bytes::copy_from_slice(body), 1 << 20);
    ::audit::content::encode(&r).data
}

#[test]
fn an_export_verifies_offline_and_a_changed_line_is_named() {
    let base = data_dir();
    let dir = copy(base.path());
    let out = dir.join("export");
    let (ok, text) = cli(dir.path(), &["export", "--since", "1h", "--until", "now", "--out", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("exported 65 events (seq 1..=65)"), "{text}");
    let key = base.join("audit-signing.pub");
    let (ok, text) =
        cli(dir.path(), &["verify", "--export", out.to_str().unwrap(), "--public-key", key.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("65 checked"), "{text}");
    // The export was recorded.
    let last: Event = serde_json::from_slice(&canonical(&db(dir.path()), 66)).unwrap();
    assert_eq!(last.event_type, "audit.export");
    assert_eq!(last.details.as_ref().unwrap()["events"], 65);

    let events = out.join("events.jsonl");
    let text = std::fs::read_to_string(&events).unwrap();
    let changed: Vec<String> =
        text.lines()
            .map(|l| {
                if l.contains("\"seq\":24,") {
                    l.replace("\"status_code\":200", "\"status_code\":500")
                } else {
                    l.into()
                }
            })
            .collect();
    std::fs::write(&events, changed.join("\n")).unwrap();
    assert_bad(
        cli(dir.path(), &["verify", "--export", out.to_str().unwrap(), "--public-key", key.to_str().unwrap()]),
        24,
        "modified",
    );
}

#[tokio::test]
async fn a_running_gateway_is_verified_and_its_checkpoint_fetched_by_an_auditor() {
    let mock = crate::support::mock(testkit::Flavor::OpenAi).await;
    let data = testkit::temp_dir("tamper-live");
    let up = crate::support::upstream("up", &mock.url(), mock.flavor().name(), &["*"], "");
    let gw = crate::support::start(&crate::support::config(&format!("data_dir = \"{}\"", data.path().display()), &up));
    let url = format!("{}/v1/chat/completions", gw.data_url);
    for stream in [false, true] {
        let (status, _, _) =
            crate::support::call(crate::support::json_req("POST", &url, &crate::support::chat("m", stream), &[])).await;
        assert_eq!(status, 200);
    }
    // The gateway's latest checkpoint, fetched as an auditor would, to keep off the box.
    let admin = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let cp = data.join("shipped-checkpoint.json");
    let out = Command::new(bin())
        .args([
            "audit",
            "checkpoint",
            "--out",
            cp.to_str().unwrap(),
            "--server",
            &gw.admin_url,
            "--token",
            admin.trim(),
        ])
        .env_remove("MODELGATE_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shipped: ::audit::checkpoint::SignedCheckpoint = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    // While the gateway keeps writing, the data dir verifies against it, with the content.
    let (ok, text) = cli(data.path(), &["verify", "--content", "--checkpoint", cp.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("OK:"), "{text}");
    // A checkpoint signed by the CLI on the live data dir covers the gateway's events too.
    let local = data.join("local-checkpoint.json");
    let (ok, text) = cli(data.path(), &["checkpoint", "--out", local.to_str().unwrap()]);
    assert!(ok, "{text}");
    let local: ::audit::checkpoint::SignedCheckpoint = serde_json::from_slice(&std::fs::read(&local).unwrap()).unwrap();
    assert!(local.body.seq > shipped.body.seq);
    assert_eq!(local.public_key, shipped.public_key);
}
