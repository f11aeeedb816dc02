//! Measures the writer's CPU per exchange (a request record with a 1 KiB body and a completion
//! with a 1 KiB response): `cargo run --release -p modelgate-audit --example append_rate [N] [BATCH]`
//! (BATCH exchanges per group commit; 0, the default, lets the writer batch freely).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use modelgate_audit::{
    Actor, Audit, Entry, Event, EventType, Family, GenAi, Outcome, Recording, Resource, WriterConfig,
};

fn cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // utime, stime are fields 14 and 15 of the whole line: 12th and 13th after the comm.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) * 10_000.0
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    // Exchanges per group commit: 0 lets the writer batch freely; N waits for every N-th commit.
    let batch: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let rt = tokio::runtime::Builder::new_current_thread().build();
    let dir = std::env::temp_dir().join(format!("mg-append-rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_default();
    let (audit, _) = match Audit::open(WriterConfig::gateway(&dir)) {
        Ok(a) => a,
        Err(e) => return eprintln!("{e}"),
    };
    let actor = Arc::new(Actor {
        subject: Some("bench".into()),
        auth_method: Some("api_key".into()),
        kind: Some("human".into()),
        groups: vec!["users".into()],
        ..Actor::default()
    });
    let body = Bytes::from(vec![b'a'; 1024]);
    let t = Instant::now();
    let c0 = cpu_us();
    for i in 0..n {
        let mut e = Event::new(EventType::Request(Family::Inference), Outcome::Success).actor(actor.clone());
        e.request_id = Some(format!("req-{i}"));
        e.action = Some("inference.chat".into());
        e.resource = Some(Resource { id: Some("m".into()), kind: "model".into(), upstream: Some("u".into()) });
        e.gen_ai = Some(GenAi { request_model: Some("m".into()), ..GenAi::default() });
        let mut done = e.clone();
        audit.submit(Entry { event: e, input: Some(Recording::whole(&body, 1 << 20)), output: None });
        done.event_type = "inference.completion".into();
        let done = Entry { event: done, input: None, output: Some(Recording::whole(&body, 1 << 20)) };
        if batch > 0 && (i + 1) % batch == 0 {
            let ticket = audit.submit_waiting(done);
            if let Ok(rt) = &rt {
                let _ = rt.block_on(ticket);
            }
        } else {
            audit.submit(done);
        }
    }
    audit.close(None);
    let wall = t.elapsed();
    let cpu = cpu_us() - c0;
    println!(
        "{n} exchanges in {:.2} s: {:.1} µs CPU per exchange ({:.0} exchanges/s)",
        wall.as_secs_f64(),
        cpu / n as f64,
        n as f64 / wall.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
