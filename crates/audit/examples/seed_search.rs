//! Seeds a large, realistic audit log and measures search on it (issue 5's benchmark):
//!
//! ```text
//! cargo run --release -p modelgate-audit --example seed_search -- DIR EVENTS [QUERIES] [reindex|reindex-noopt]
//! ```
//!
//! Seeds `EVENTS` events into `DIR` (continuing when it holds fewer; nothing is written when it
//! holds as many): 30 days ending now, 1,000 actors in 20 groups, 10 models, several actions
//! (chat, completions, embeddings, model pulls, adapter loads, model listings, auth failures),
//! request and completion records with recorded bodies whose prompt and answer words are drawn
//! from a Zipf distribution (s = 1) over 20,000 words. Events are appended through
//! `Store::append` in transactions of 20,000 (with signed checkpoints every 10,000), then the
//! search index is built with the indexer's own code and optimised (`reindex`: rebuilt from
//! scratch even when it is current, to measure the indexing rate alone; `reindex-noopt`: without
//! the final merge, as a gateway's index is kept).
//!
//! Then `QUERIES` (default 200) of each kind, each asking for the newest 100, through
//! `search::Searcher` exactly as `audit search` runs them (results re-read and re-checked from the
//! hashed bytes): actor + last 24 h; full text (a word of rank 1,000–20,000) over the 30 days;
//! full text + actor; full text + model; `audit show` of a random exchange. Prints p50/p95/p99,
//! insertion and indexing rates, and disk bytes per event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use modelgate_audit::checkpoint::{CHECKPOINT_SCHEMA, CheckpointBody, Keypair};
use modelgate_audit::content::encode;
use modelgate_audit::event::{Actor, Event, EventType, Family, GenAi, Outcome, Resource, new_event_id, now_rfc3339};
use modelgate_audit::index::Index;
use modelgate_audit::search::{Filter, Order, Query, Searcher};
use modelgate_audit::store::{ContentRow, Store};
use modelgate_audit::{Content, Recording};

const TX_EVENTS: u64 = 20_000;
const CHECKPOINT_EVERY: u64 = 10_000;
const DAYS: u64 = 30;
const ACTORS: usize = 1_000;
const GROUPS: usize = 20;
const WORDS: usize = 20_000;
const MODELS: [&str; 10] = [
    "llama-3.1-8b-instruct",
    "llama-3.1-70b-instruct",
    "mistral-7b-instruct",
    "mixtral-8x7b",
    "qwen2.5-32b",
    "qwen2.5-coder-7b",
    "gemma-2-9b",
    "phi-3-medium",
    "bge-m3",
    "deepseek-r1-distill",
];

/// SplitMix64: deterministic, fast, good enough for workload generation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf over ranks 1..=n by inverse CDF.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf = Vec::with_capacity(n);
        for r in 1..=n {
            acc += 1.0 / (r as f64).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf(cdf)
    }
    /// A rank from 0.
    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.0.partition_point(|c| *c < u).min(self.0.len() - 1)
    }
}

/// Word `i` (rank i + 1): three distinct consonant-vowel syllables, unique for i < 1,000,000.
fn word(i: usize) -> String {
    const C: &[u8] = b"bcdfghjklmnprstvwxyz";
    const V: &[u8] = b"aeiou";
    let syl = |k: usize| -> [u8; 2] { [C[k % 20], V[(k / 20) % 5]] };
    let mut w = Vec::with_capacity(6);
    for k in [i % 100, (i / 100) % 100, (i / 10_000) % 100] {
        w.extend_from_slice(&syl(k));
    }
    String::from_utf8(w).unwrap()
}

fn request_id(exchange: u64) -> String {
    let h = exchange.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "0193{:04x}-{:04x}-7{:03x}-8{:03x}-{:012x}",
        exchange >> 48 & 0xffff,
        exchange >> 32 & 0xffff,
        (exchange >> 20) & 0xfff,
        h & 0xfff,
        exchange & 0xffff_ffff_ffff
    )
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

struct World {
    actors: Vec<Arc<Actor>>,
    words: Vec<String>,
    zipf: Zipf,
    model_zipf: Zipf,
    start_ms: u64,
    span_ms: u64,
}

/// `lo` to `lo + spread - 1` Zipf-drawn words.
fn text(world: &World, rng: &mut Rng, lo: usize, spread: u64) -> String {
    let n = lo + rng.below(spread) as usize;
    let mut s = String::with_capacity(n * 7);
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&world.words[world.zipf.sample(rng)]);
    }
    s
}

type Item = (Event, Option<Recording>, Option<Recording>);

/// The events of exchange `x` (two; one for an auth failure), the `k`-th event overall at time `t`.
fn exchange_events(world: &World, rng: &mut Rng, x: u64, t: u64) -> Vec<Item> {
    let actor = world.actors[rng.below(ACTORS as u64) as usize].clone();
    let roll = rng.below(1000);
    if roll < 8 {
        let mut e = Event::new(EventType::AuthFailure, Outcome::Denied);
        e.time = rfc3339(t);
        e.request_id = Some(request_id(x));
        e.reason = Some("unknown_key".into());
        e.status_code = Some(401);
        e.actor = Some(Arc::new(Actor {
            src_ip: actor.src_ip.clone(),
            user_agent: actor.user_agent.clone(),
            ..Actor::default()
        }));
        return vec![(e, None, None)];
    }
    let model = MODELS[world.model_zipf.sample(rng)];
    let (action, op, body, answer): (&str, &str, String, Option<String>) = match roll {
        8..=707 => {
            let prompt = text(world, rng, 10, 50);
            let body = serde_json::json!({"model": model, "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": prompt}], "stream": true, "max_tokens": 512});
            ("inference.chat", "chat", body.to_string(), Some(text(world, rng, 20, 80)))
        }
        708..=807 => {
            let prompt = text(world, rng, 10, 50);
            let body = serde_json::json!({"model": model, "prompt": prompt, "max_tokens": 256, "stream": true});
            ("inference.completion", "text_completion", body.to_string(), Some(text(world, rng, 20, 80)))
        }
        808..=957 => {
            let input = text(world, rng, 10, 40);
            let body = serde_json::json!({"model": "bge-m3", "input": [input]});
            ("inference.embedding", "embeddings", body.to_string(), None)
        }
        958..=967 => ("model.pull", "pull", serde_json::json!({"model": model, "stream": false}).to_string(), None),
        968..=977 => {
            let name = format!("{}-lora", world.words[rng.below(2_000) as usize]);
            let body = serde_json::json!({"lora_name": name, "lora_path": format!("/adapters/{name}")});
            ("adapter.load", "load_lora_adapter", body.to_string(), None)
        }
        _ => ("read.models", "models", String::new(), None),
    };
    let family = Family::of(action);
    let model = if action == "inference.embedding" { "bge-m3" } else { model };
    let stream = answer.is_some();
    let failed = rng.below(100) < 2;
    let gen_ai = GenAi {
        operation_name: Some(op.into()),
        provider_name: Some("vllm".into()),
        request_model: (action != "read.models" && action != "adapter.load").then(|| model.to_string()),
        request_stream: Some(stream),
        request_max_tokens: stream.then_some(512),
        ..GenAi::default()
    };
    let resource =
        Resource { id: Some(model.into()), kind: "model".into(), upstream: Some(format!("vllm-{}", model.len() % 3)) };
    let mut req = Event::new(EventType::Request(family), Outcome::Success).actor(actor.clone());
    req.time = rfc3339(t);
    req.request_id = Some(request_id(x));
    req.action = Some(action.into());
    req.resource = Some(resource.clone());
    req.gen_ai = Some(gen_ai.clone());
    req.bytes_in = Some(body.len() as u64);
    let input = (!body.is_empty()).then(|| Recording::whole(&Bytes::from(body.clone()), 1 << 20));
    let latency = 200 + rng.below(3000);
    let mut done = Event::new(EventType::Completion(family), if failed { Outcome::Failure } else { Outcome::Success })
        .actor(actor);
    done.time = rfc3339(t + latency);
    done.request_id = req.request_id.clone();
    done.action = req.action.clone();
    done.resource = Some(resource);
    done.latency_ms = Some(latency);
    done.status_code = Some(if failed { 502 } else { 200 });
    done.end = Some(if failed { "upstream_error" } else { "completed" }.into());
    if failed {
        done.reason = Some("upstream_unavailable".into());
    }
    let mut g = gen_ai;
    let output = match (&answer, failed) {
        (Some(a), false) => {
            let ttft = 40 + rng.below(200);
            done.ttft_ms = Some(ttft);
            let mut out = Recording::stream(1 << 20);
            let words: Vec<&str> = a.split(' ').collect();
            for (i, chunk) in words.chunks(5).enumerate() {
                let delta = format!("{} ", chunk.join(" "));
                let frame = format!(
                    "data: {{\"id\":\"chatcmpl-{x:x}\",\"object\":\"chat.completion.chunk\",\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}}}}]}}\n\n",
                    serde_json::Value::String(delta)
                );
                out.push(&Bytes::from(frame), Some(ttft + i as u64 * 40));
            }
            out.push(&Bytes::from_static(b"data: [DONE]\n\n"), Some(ttft + words.len() as u64 * 8));
            g.response_model = Some(model.into());
            g.usage_input_tokens = Some(body.len() as u64 / 5);
            g.usage_output_tokens = Some(words.len() as u64);
            g.response_finish_reasons = vec!["stop".into()];
            done.bytes_out = Some(out.seen());
            Some(out)
        }
        (None, false) if action == "inference.embedding" => {
            let json = Bytes::from_static(b"{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.0123,-0.0456,0.0789]}],\"model\":\"bge-m3\",\"usage\":{\"prompt_tokens\":24,\"total_tokens\":24}}");
            g.usage_input_tokens = Some(24);
            done.bytes_out = Some(json.len() as u64);
            Some(Recording::whole(&json, 1 << 20))
        }
        _ => None,
    };
    done.gen_ai = Some(g);
    vec![(req, input, None), (done, None, output)]
}

fn dir_bytes(dir: &Path, prefix: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn seed(dir: &Path, total: u64, world: &World) {
    let mut store = Store::open_writer(dir).unwrap();
    let (key, _) = Keypair::load_or_create(dir).unwrap();
    let gateway_id = store.meta_or_init("gateway_id", new_event_id).unwrap();
    let writer_id = new_event_id();
    let have = store.head().unwrap().seq;
    if have >= total {
        eprintln!("{} already holds {have} events", dir.display());
        return;
    }
    store.register_writer(&writer_id, "gateway", have, &now_rfc3339()).unwrap();
    // Resume: the exchange counter and the RNG are derived from where the log stands.
    let mut rng = Rng(0x5eed ^ have);
    let mut x = have / 2;
    let mut written = have;
    let started = Instant::now();
    let mut since_checkpoint = 0;
    while written < total {
        let mut batch: Vec<Item> = Vec::with_capacity(TX_EVENTS as usize + 2);
        while (batch.len() as u64) < TX_EVENTS && written + (batch.len() as u64) < total {
            let k = written + batch.len() as u64;
            // Spread evenly over 30 days ending now, with a few ms of jitter (events are chained in
            // commit order but stamped when they happen).
            let t = world.start_ms + k * world.span_ms / total.max(1) + rng.below(20);
            batch.extend(exchange_events(world, &mut rng, x, t));
            x += 1;
        }
        batch.truncate((total - written) as usize);
        let n = batch.len() as u64;
        let recorded = now_rfc3339();
        let recs: Vec<(Option<Recording>, Option<Recording>)> =
            batch.iter_mut().map(|(_, i, o)| (i.take(), o.take())).collect();
        let mut idx = 0usize;
        let appended = store
            .append(
                batch.iter_mut().map(|(e, _, _)| e),
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
        written += n;
        since_checkpoint += n;
        if since_checkpoint >= CHECKPOINT_EVERY || written == total {
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
        let secs = started.elapsed().as_secs_f64();
        eprint!("\r  seeding: {written}/{total} events, {:.0} events/s   ", (written - have) as f64 / secs);
    }
    store.mark_stopped(&writer_id).unwrap();
    store.conn().query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    let secs = started.elapsed().as_secs_f64();
    eprintln!();
    println!(
        "seeded {} events in {secs:.1} s: {:.0} events/s appended (Store::append, transactions of {TX_EVENTS}, with bodies)",
        total - have,
        (total - have) as f64 / secs
    );
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn report(name: &str, mut times: Vec<f64>, rows: &[usize]) {
    let avg_rows = rows.iter().sum::<usize>() as f64 / rows.len().max(1) as f64;
    let full = rows.iter().filter(|r| **r >= 100).count();
    println!(
        "{name:<34} p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (avg rows {avg_rows:.0}, {full}/{} full pages)",
        pct(&mut times, 0.5),
        pct(&mut times, 0.95),
        pct(&mut times, 0.99),
        pct(&mut times, 1.0),
        rows.len()
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: seed_search DIR EVENTS [QUERIES]"));
    let total: u64 = args.next().and_then(|n| n.parse().ok()).expect("usage: seed_search DIR EVENTS [QUERIES]");
    let queries: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(200);
    let mode = args.next().unwrap_or_default();
    let reindex = mode.starts_with("reindex");
    let optimize = !mode.ends_with("noopt");
    std::fs::create_dir_all(&dir).unwrap();

    // The 30-day window ends at the seeding's start, remembered in the data dir so that a resumed
    // or re-measured run uses the same one.
    let anchor = dir.join("seed-window-end");
    let end_ms: u64 = std::fs::read_to_string(&anchor).ok().and_then(|s| s.trim().parse().ok()).unwrap_or_else(|| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        std::fs::write(&anchor, now.to_string()).unwrap();
        now
    });
    let span_ms = DAYS * 86_400_000;
    let words: Vec<String> = (0..WORDS).map(word).collect();
    let actors: Vec<Arc<Actor>> = (0..ACTORS)
        .map(|i| {
            let mut groups = vec![format!("team-{:02}", i % GROUPS)];
            if i % 3 == 0 {
                groups.push("ml-platform".into());
            }
            Arc::new(Actor {
                auth_method: Some(if i % 4 == 0 { "oidc" } else { "api_key" }.into()),
                credential_id: Some(format!("k{:010x}", i * 7919)),
                display: Some(format!("User {}", word(i))),
                groups,
                issuer: Some(if i % 4 == 0 { "https://idp.example.com" } else { "modelgate" }.into()),
                kind: Some(if i % 10 == 9 { "service" } else { "human" }.into()),
                src_ip: Some(format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256)),
                subject: Some(format!("user{i:04}@example.com")),
                user_agent: Some("OpenAI/Python 1.51.0".into()),
            })
        })
        .collect();
    let world = World {
        actors,
        words,
        zipf: Zipf::new(WORDS, 1.0),
        model_zipf: Zipf::new(MODELS.len(), 1.0),
        start_ms: end_ms - span_ms,
        span_ms,
    };

    seed(&dir, total, &world);

    let t = Instant::now();
    let mut index = Index::open(&dir).unwrap();
    if reindex {
        index.reset().unwrap();
    }
    let before = index.progress().unwrap();
    let mut last = Instant::now();
    let p = index
        .catch_up(None, |p| {
            if last.elapsed() > Duration::from_secs(1) {
                last = Instant::now();
                let rate = (p.seq - before.seq) as f64 / t.elapsed().as_secs_f64();
                eprint!("\r  indexing: {}/{} events, {rate:.0} events/s   ", p.seq, p.head);
            }
        })
        .unwrap();
    let indexed = p.seq - before.seq;
    let secs = t.elapsed().as_secs_f64();
    eprintln!();
    if indexed > 0 {
        println!(
            "indexed {indexed} events in {secs:.1} s: {:.0} events/s (batches of {})",
            indexed as f64 / secs,
            modelgate_audit::index::BATCH
        );
    }
    if indexed > 0 && optimize {
        let t = Instant::now();
        index.optimize().unwrap();
        println!("optimised the full-text index in {:.1} s", t.elapsed().as_secs_f64());
    }
    drop(index);

    let events = Store::open_reader(&dir).unwrap().head().unwrap().seq;
    let audit_bytes = dir_bytes(&dir, "audit.db");
    let index_bytes = dir_bytes(&dir, "search.db");
    println!(
        "{events} events: audit.db {:.2} GB = {:.0} bytes/event (events, bodies, checkpoints); search.db {:.2} GB = {:.0} bytes/event; total {:.0} bytes/event",
        audit_bytes as f64 / 1e9,
        audit_bytes as f64 / events as f64,
        index_bytes as f64 / 1e9,
        index_bytes as f64 / events as f64,
        (audit_bytes + index_bytes) as f64 / events as f64
    );

    let mut searcher = Searcher::open(&dir).unwrap();
    let mut rng = Rng(0x000b_e4c4);
    let day = 86_400_000i64;
    let end = end_ms as i64;
    let month = Filter { since_ms: end - span_ms as i64 - day, ..Filter::default() };
    let last_day = Filter { since_ms: end - day, ..Filter::default() };
    let mut run = |name: &str, make: &mut dyn FnMut(&mut Rng) -> Filter, searcher: &mut Searcher| {
        let mut times = Vec::with_capacity(queries);
        let mut rows = Vec::with_capacity(queries);
        for i in 0..queries + queries / 10 {
            let f = make(&mut rng);
            let q = Query { filter: &f, order: Order::Desc, position: None, limit: 100, exclude_session: None };
            let t = Instant::now();
            let page = searcher.search(&q).unwrap();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            // The first tenth warms connections and statements up.
            if i >= queries / 10 {
                times.push(ms);
                rows.push(page.events.len());
            }
        }
        report(name, times, &rows);
    };
    let actor = |rng: &mut Rng| format!("user{:04}@example.com", rng.below(ACTORS as u64));
    let rare = |rng: &mut Rng| word(999 + rng.below((WORDS - 999) as u64) as usize);
    let model = |rng: &mut Rng| MODELS[rng.below(MODELS.len() as u64) as usize].to_string();
    println!("queries: newest 100, {queries} each (after {} warm-up), through search::Searcher:", queries / 10);
    run("actor + last 24h", &mut |r| Filter { actor: Some(actor(r)), ..last_day.clone() }, &mut searcher);
    run("last 24h, no other filter", &mut |_| last_day.clone(), &mut searcher);
    run("full text (rank 1k-20k), 30 days", &mut |r| Filter { text: Some(rare(r)), ..month.clone() }, &mut searcher);
    run(
        "full text + actor, 30 days",
        &mut |r| Filter { text: Some(rare(r)), actor: Some(actor(r)), ..month.clone() },
        &mut searcher,
    );
    run(
        "full text + model, 30 days",
        &mut |r| Filter { text: Some(rare(r)), model: Some(model(r)), ..month.clone() },
        &mut searcher,
    );
    run(
        "full text + actor, last 24h",
        &mut |r| Filter { text: Some(rare(r)), actor: Some(actor(r)), ..last_day.clone() },
        &mut searcher,
    );
    run(
        "model + outcome=failure, 30 days",
        &mut |r| Filter { model: Some(model(r)), outcome: Some("failure".into()), ..month.clone() },
        &mut searcher,
    );
    run(
        "action family adapter, 30 days",
        &mut |_| Filter { action: Some("adapter".into()), ..month.clone() },
        &mut searcher,
    );

    let exchanges = events / 2;
    let mut times = Vec::with_capacity(queries);
    let mut rows = Vec::with_capacity(queries);
    for i in 0..queries + queries / 10 {
        let id = request_id(rng.below(exchanges.max(1)));
        let t = Instant::now();
        let x = searcher.exchange(&id).unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if i >= queries / 10 {
            times.push(ms);
            rows.push(x.map_or(0, |v| v["events"].as_array().map_or(0, Vec::len)));
        }
    }
    report("audit show (exchange, verified)", times, &rows);
}
