//! Writer tests against real SQLite files.

use std::sync::Arc;

use bytes::Bytes;

use crate::canonical::{GENESIS, chain_hash, hex};
use crate::event::{Actor, Event, EventType, Family, Outcome};
use crate::store::Store;
use crate::writer::{Audit, Entry, WriterConfig};
use crate::{Recording, Resource};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn request(id: &str) -> Entry {
    let mut e = Event::new(EventType::Request(Family::Inference), Outcome::Success)
        .actor(Arc::new(Actor { subject: Some("alice".into()), ..Actor::default() }));
    e.request_id = Some(id.into());
    e.action = Some("inference.chat".into());
    e.resource = Some(Resource { id: Some("m1".into()), kind: "model".into(), upstream: None });
    Entry {
        event: e,
        input: Some(Recording::whole(&Bytes::from_static(b"{\"prompt\":\"hi\"}"), 1 << 20)),
        output: None,
    }
}

type Row = (u64, Vec<u8>, Vec<u8>, Vec<u8>, String, String);

fn all(dir: &std::path::Path) -> Vec<Row> {
    let s = Store::open_reader(dir).unwrap();
    let mut st = s
        .conn()
        .prepare("SELECT seq, hash, prev_hash, canonical, event_type, writer_id FROM events ORDER BY seq")
        .unwrap();
    st.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn durable_records_chain_across_processes_and_recovery_finds_cut_offs() {
    let dir = testkit::temp_dir("audit-writer");
    let rt = runtime();
    let (audit, opened) = Audit::open(WriterConfig::gateway(dir.path())).unwrap();
    assert!(opened.key_created);
    assert!(opened.cut_off.is_empty());
    rt.block_on(async {
        let t1 = audit.durable(request("r1")).await.unwrap();
        let t2 = audit.durable(request("r2")).await.unwrap();
        t1.await.unwrap();
        t2.await.unwrap();
    });
    let mut done = Event::new(EventType::Completion(Family::Inference), Outcome::Success);
    done.request_id = Some("r1".into());
    let mut out = Recording::stream(1 << 20);
    out.push(&Bytes::from_static(b"data: a\n\n"), Some(1));
    out.push(&Bytes::from_static(b"data: b\n\n"), Some(5));
    rt.block_on(audit.submit_waiting(Entry { event: done, input: None, output: Some(out) })).unwrap();
    let first_writer = audit.writer_id().to_string();
    // A crash: the writer thread is left running, the handle forgotten, no stop event, and the
    // writers table still says "running".
    std::mem::forget(audit);

    let (audit2, opened2) = Audit::open(WriterConfig::gateway(dir.path())).unwrap();
    assert!(!opened2.key_created);
    assert_eq!(opened2.cut_off.len(), 1, "{:?}", opened2.cut_off);
    assert_eq!(opened2.cut_off[0].request_id, "r2");
    assert_eq!(opened2.cut_off[0].writer_id, first_writer);
    rt.block_on(async { audit2.durable(request("r3")).await.unwrap().await }).unwrap();
    audit2.close(Some(Event::new(EventType::GatewayStop, Outcome::Success)));

    let rows = all(dir.path());
    assert_eq!(rows.len(), 5);
    let mut prev = GENESIS.to_vec();
    for (i, (seq, hash, prev_hash, canonical, _, _)) in rows.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(prev_hash, &prev);
        let p: [u8; 32] = prev.clone().try_into().unwrap();
        assert_eq!(hash.as_slice(), chain_hash(&p, canonical).as_slice());
        let e: Event = serde_json::from_slice(canonical).unwrap();
        assert_eq!(e.seq, *seq);
        assert_eq!(e.prev_hash, hex(&p));
        assert!(e.hash.is_none());
        prev = hash.clone();
    }
    assert_eq!(rows[3].5, rows[4].5, "the second process wrote both of its events");
    assert_ne!(rows[0].5, rows[3].5, "each process is its own writer");
    let completion: Event = serde_json::from_slice(&rows[2].3).unwrap();
    let c = completion.content.unwrap();
    assert!(c.output_digest.unwrap().starts_with("sha256:"));
    let store = Store::open_reader(dir.path()).unwrap();
    let id: i64 = c.output_ref.unwrap().trim_start_matches("content:").parse().unwrap();
    let (codec, data, timing): (String, Vec<u8>, Option<String>) = store
        .conn()
        .query_row("SELECT codec, data, timing FROM content WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(crate::content::decode(&codec, &data).unwrap(), b"data: a\n\ndata: b\n\n");
    assert_eq!(timing.as_deref(), Some("[[0,1],[9,5]]"));
    let checkpoints: i64 = store.conn().query_row("SELECT count(*) FROM checkpoints", [], |r| r.get(0)).unwrap();
    assert!(checkpoints >= 3, "start of both processes and the clean stop: {checkpoints}");
}

#[test]
fn async_drops_are_counted_in_a_gap_event() {
    let dir = testkit::temp_dir("audit-gap");
    let mut cfg = WriterConfig::gateway(dir.path());
    cfg.queue_limit = 4;
    let (audit, _) = Audit::open(cfg).unwrap();
    // Hold the queue's lock-free path busy by filling faster than the thread drains: push many
    // in one go while the store is locked by a reader's write transaction.
    let blocker = rusqlite::Connection::open(dir.join("audit.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut sent = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while audit.metrics().gap.get() == 0 && std::time::Instant::now() < deadline {
        audit.best_effort(request(&format!("a{sent}")));
        sent += 1;
    }
    blocker.execute_batch("COMMIT").unwrap();
    let dropped = audit.metrics().gap.get();
    assert!(dropped > 0);
    audit.close(None);
    let rows = all(dir.path());
    let gap: Vec<Event> =
        rows.iter().filter(|r| r.4 == "audit.gap").map(|r| serde_json::from_slice(&r.3).unwrap()).collect();
    let reported: u64 = gap.iter().map(|e| e.details.as_ref().unwrap()["dropped"].as_u64().unwrap()).sum();
    assert_eq!(reported, dropped);
    let written = rows.iter().filter(|r| r.4 == "inference.request").count() as u64;
    assert_eq!(written + dropped, sent);
}

#[test]
fn free_form_fields_serialize_canonically_whatever_the_map_order() {
    // Insertion order "z", "a", "m": with serde_json's `preserve_order` on (a dependency turns
    // it on), a plain Value would keep it; the event must still be RFC 8785 canonical.
    let mut details = serde_json::Map::new();
    details.insert("z".into(), serde_json::json!(1));
    details.insert("a".into(), serde_json::json!({"y": [{"b": 1, "a": 2}], "x": "é"}));
    details.insert("m".into(), serde_json::json!(null));
    let mut e = crate::Event::new(crate::EventType::GatewayStart, crate::Outcome::Success);
    e.details = Some(serde_json::Value::Object(details));
    let bytes = serde_json::to_vec(&e).unwrap();
    let reparsed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(crate::canonical::to_jcs(&reparsed).unwrap(), bytes);
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains(r#""details":{"a":{"x":"é","y":[{"a":2,"b":1}]},"m":null,"z":1}"#), "{text}");
}

/// Commits the writer made so far (from its metrics).
fn commits(audit: &Audit) -> u64 {
    let mut reg = prometheus_client::registry::Registry::default();
    audit.metrics().register(&mut reg);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("audit_batch_events_count "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

#[test]
fn records_nobody_waits_for_share_one_commit_and_a_waiter_ends_the_linger() {
    let dir = testkit::temp_dir("audit-linger");
    let rt = runtime();
    let (audit, _) = Audit::open(WriterConfig::gateway(dir.path())).unwrap();
    let before = commits(&audit);
    let start = std::time::Instant::now();
    for i in 0..200 {
        audit.best_effort(request(&format!("a{i}")));
    }
    let queued_in = start.elapsed();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while audit.metrics().events.get() < 200 {
        assert!(std::time::Instant::now() < deadline, "the lingering batch was never committed");
        std::thread::yield_now();
    }
    // All 200 were queued well inside one linger, so one commit took them all.
    if queued_in < crate::writer::LINGER / 2 {
        assert_eq!(commits(&audit) - before, 1, "200 records queued in {queued_in:?}");
    }
    // A record someone waits for is committed at once, with what lingers beside it.
    let before = commits(&audit);
    audit.best_effort(request("b1"));
    rt.block_on(async {
        let t = audit.durable(request("b2")).await.unwrap();
        t.await.unwrap();
    });
    assert_eq!(audit.metrics().events.get(), 202);
    assert_eq!(commits(&audit) - before, 1);
    audit.close(None);
}
