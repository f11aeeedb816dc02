//! Generates a large, valid audit log for measuring `audit verify`:
//! `cargo run --release -p modelgate-audit --example gen_log -- DIR EVENTS`.
//!
//! Exchanges as the gateway records them (a request event with the recorded prompt, a
//! completion event with the streamed answer and its chunk timing), an occasional auth failure,
//! and a signed checkpoint every 10,000 events, appended through `Store::append` in large
//! transactions, so the log is the same shape as a gateway's, only written faster.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use modelgate_audit::checkpoint::{CHECKPOINT_SCHEMA, CheckpointBody, Keypair};
use modelgate_audit::content::encode;
use modelgate_audit::event::{Actor, Event, EventType, Family, GenAi, Outcome, Resource, new_event_id, now_rfc3339};
use modelgate_audit::store::{ContentRow, Store};
use modelgate_audit::{Content, Recording};

const TX_EVENTS: u64 = 20_000;
const CHECKPOINT_EVERY: u64 = 10_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: gen_log DIR EVENTS"));
    let total: u64 = args.next().and_then(|n| n.parse().ok()).expect("usage: gen_log DIR EVENTS");
    std::fs::create_dir_all(&dir).unwrap();
    let mut store = Store::open_writer(&dir).unwrap();
    let (key, _) = Keypair::load_or_create(&dir).unwrap();
    let gateway_id = store.meta_or_init("gateway_id", new_event_id).unwrap();
    let writer_id = new_event_id();
    store.register_writer(&writer_id, "gateway", store.head().unwrap().seq, &now_rfc3339()).unwrap();
    let users: Vec<Arc<Actor>> = (0..50)
        .map(|i| {
            Arc::new(Actor {
                auth_method: Some("api_key".into()),
                credential_id: Some(format!("mgk_{i:08x}")),
                display: Some(format!("User {i}")),
                groups: vec!["ml".into(), "users".into()],
                issuer: Some("modelgate".into()),
                kind: Some("human".into()),
                src_ip: Some(format!("10.0.{}.{}", i / 250, i % 250)),
                subject: Some(format!("user{i}@example.com")),
                user_agent: Some("OpenAI/Python 1.40.0".into()),
            })
        })
        .collect();
    let prompt = Bytes::from(format!(
        "{{\"model\":\"llama-3-8b\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}],\"stream\":true}}",
        "Summarise the quarterly report in three bullet points. ".repeat(5)
    ));
    let chunk = Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"content\":\"word \"}}]}\n\n");
    let started = Instant::now();
    let mut written = store.head().unwrap().seq;
    let target = written + total;
    let mut bytes = 0u64;
    let mut since_checkpoint = 0u64;
    while written < target {
        let n = TX_EVENTS.min(target - written);
        let mut events: Vec<(Event, Option<Recording>, Option<Recording>)> = (0..n)
            .map(|i| {
                let k = written + i;
                let exchange = k / 2;
                let actor = users[(exchange % users.len() as u64) as usize].clone();
                if k % 97 == 96 {
                    let mut e = Event::new(EventType::AuthFailure, Outcome::Denied);
                    e.reason = Some("unknown_key".into());
                    e.status_code = Some(401);
                    return (e, None, None);
                }
                let completion = k % 2 == 1;
                let kind = if completion {
                    EventType::Completion(Family::Inference)
                } else {
                    EventType::Request(Family::Inference)
                };
                let mut e = Event::new(kind, Outcome::Success).actor(actor);
                e.request_id = Some(format!("0192{exchange:028x}"));
                e.action = Some("inference.chat".into());
                e.resource = Some(Resource {
                    id: Some("llama-3-8b".into()),
                    kind: "model".into(),
                    upstream: Some("vllm-a".into()),
                });
                let mut gen_ai = GenAi {
                    operation_name: Some("chat".into()),
                    provider_name: Some("vllm".into()),
                    request_model: Some("llama-3-8b".into()),
                    request_stream: Some(true),
                    ..GenAi::default()
                };
                if completion {
                    gen_ai.response_model = Some("llama-3-8b".into());
                    gen_ai.usage_input_tokens = Some(120);
                    gen_ai.usage_output_tokens = Some(24);
                    gen_ai.response_finish_reasons = vec!["stop".into()];
                    e.latency_ms = Some(812);
                    e.ttft_ms = Some(95);
                    e.bytes_in = Some(prompt.len() as u64);
                    e.bytes_out = Some(24 * chunk.len() as u64);
                    e.status_code = Some(200);
                    e.end = Some("completed".into());
                    let mut out = Recording::stream(1 << 20);
                    for c in 0..24u64 {
                        out.push(&chunk, Some(95 + c * 30));
                    }
                    e.gen_ai = Some(gen_ai);
                    (e, None, Some(out))
                } else {
                    e.bytes_in = Some(prompt.len() as u64);
                    e.gen_ai = Some(gen_ai);
                    (e, Some(Recording::whole(&prompt, 1 << 20)), None)
                }
            })
            .collect();
        let recorded = now_rfc3339();
        let mut idx = 0usize;
        let recs: Vec<(Option<Recording>, Option<Recording>)> =
            events.iter_mut().map(|(_, i, o)| (i.take(), o.take())).collect();
        let appended = store
            .append(
                events.iter_mut().map(|(e, _, _)| e),
                |e, content| {
                    let (input, output) = &recs[idx];
                    idx += 1;
                    e.recorded_time = recorded.clone();
                    e.gateway_id = gateway_id.clone();
                    e.writer_id = writer_id.clone();
                    for (rec, direction) in [(input, "input"), (output, "output")] {
                        let Some(r) = rec else { continue };
                        let enc = encode(r);
                        let reference = content.insert(&ContentRow {
                            request_id: e.request_id.as_deref(),
                            direction,
                            codec: "lz4",
                            salt: &enc.salt,
                            size: enc.size,
                            truncated: enc.truncated,
                            data: &enc.data,
                            timing: enc.timing.as_deref(),
                        })?;
                        let c = e.content.get_or_insert_with(Content::default);
                        if direction == "input" {
                            c.input_ref = Some(reference);
                            c.input_digest = Some(enc.digest);
                        } else {
                            c.output_ref = Some(reference);
                            c.output_digest = Some(enc.digest);
                        }
                    }
                    Ok(())
                },
                None,
            )
            .unwrap();
        bytes += events.iter().map(|(e, _, _)| e.canonical_bytes().len() as u64).sum::<u64>();
        written += n;
        since_checkpoint += n;
        if since_checkpoint >= CHECKPOINT_EVERY || written == target {
            let head = appended.head;
            let signed = key.sign(CheckpointBody {
                gateway_id: gateway_id.clone(),
                hash: modelgate_audit::canonical::hex(&head.hash),
                key_fingerprint: key.fingerprint(),
                schema: CHECKPOINT_SCHEMA.into(),
                seq: head.seq,
                time: now_rfc3339(),
                writer_id: writer_id.clone(),
            });
            store.insert_checkpoint(head.seq, &signed.body.canonical_bytes(), &signed.signature_bytes()).unwrap();
            since_checkpoint = 0;
        }
        eprint!("\r{written}/{target} events");
    }
    store.mark_stopped(&writer_id).unwrap();
    store.conn().query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    eprintln!(
        "\r{target} events in {:.1} s, canonical bytes {:.0} per event on average; key {}",
        started.elapsed().as_secs_f64(),
        bytes as f64 / total.max(1) as f64,
        key.fingerprint()
    );
}
