//! The detector against the labelled corpus of `shared/pii-eval` (`dev.jsonl`), for the types it
//! covers. Scored as the corpus's `score.py` scores overlap: a prediction matches a gold span of
//! its type when their intersection over union is at least 0.5. Also scored per sample, which is
//! what the policy layer sees: the set of types `detect` reports against the set labelled.
//!
//! The corpus path is `$MODELGATE_PII_EVAL`, else `../shared/pii-eval/dev.jsonl` beside the
//! workspace. Set `MODELGATE_PII_EVAL_PREDICTIONS` to a path to also write predictions in the
//! format `score.py` reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use masking::{Entity, detect, scan};
use serde_json::Value;

/// Gold types the detector covers fully, and must be precise on.
const COVERED: [&str; 5] =
    ["EMAIL", "SECRET_AWS_ACCESS_KEY", "SECRET_GITHUB_TOKEN", "SECRET_JWT", "SECRET_PRIVATE_KEY"];

/// The corpus type a detected entity counts as: the provider-specific keys it has no name for
/// are `SECRET_GENERIC` there.
fn gold_type(e: Entity) -> &'static str {
    match e.name() {
        "SECRET_GITLAB_TOKEN" | "SECRET_SLACK_TOKEN" | "SECRET_OPENAI_KEY" | "SECRET_ANTHROPIC_KEY" => "SECRET_GENERIC",
        name => name,
    }
}

fn iou(a: (usize, usize), b: (usize, usize)) -> f64 {
    let inter = a.1.min(b.1).saturating_sub(a.0.max(b.0));
    let union = a.1.max(b.1) - a.0.min(b.0);
    if union == 0 { 0.0 } else { inter as f64 / union as f64 }
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Counts {
    fn precision(self) -> f64 {
        if self.tp + self.fp == 0 { 1.0 } else { self.tp as f64 / (self.tp + self.fp) as f64 }
    }
    fn recall(self) -> f64 {
        if self.tp + self.fn_ == 0 { 1.0 } else { self.tp as f64 / (self.tp + self.fn_) as f64 }
    }
}

fn corpus_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MODELGATE_PII_EVAL") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pii-eval/dev.jsonl");
    p.exists().then_some(p)
}

fn span(v: &Value) -> (usize, usize) {
    (v["start"].as_u64().unwrap() as usize, v["end"].as_u64().unwrap() as usize)
}

#[test]
fn corpus_precision_and_recall_on_covered_types() {
    let Some(path) = corpus_path() else {
        eprintln!("shared/pii-eval/dev.jsonl not found: corpus check skipped (set MODELGATE_PII_EVAL)");
        return;
    };
    let corpus = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut spans: BTreeMap<String, Counts> = BTreeMap::new();
    let mut samples: BTreeMap<String, Counts> = BTreeMap::new();
    let (mut negatives, mut negatives_touched) = (0, BTreeMap::<String, usize>::new());
    let mut predictions = String::new();
    let mut rows = 0;
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).unwrap();
        let text = row["text"].as_str().unwrap();
        rows += 1;

        // Predictions, byte offsets turned into the corpus's character offsets.
        let mut predicted = Vec::new();
        scan(text.as_bytes(), |f| {
            let start = text[..f.start].chars().count();
            let end = start + text[f.start..f.end].chars().count();
            predicted.push((gold_type(f.entity), start, end));
        });
        let json_spans: Vec<String> =
            predicted.iter().map(|(t, s, e)| format!(r#"{{"type":"{t}","start":{s},"end":{e}}}"#)).collect();
        predictions.push_str(&format!("{{\"id\":{},\"spans\":[{}]}}\n", row["id"], json_spans.join(",")));

        // Span level, greedy as score.py does.
        let gold: Vec<(&str, (usize, usize))> =
            row["spans"].as_array().unwrap().iter().map(|s| (s["type"].as_str().unwrap(), span(s))).collect();
        let mut used = vec![false; predicted.len()];
        for &(t, g) in &gold {
            let hit =
                predicted.iter().enumerate().position(|(k, &(pt, s, e))| !used[k] && pt == t && iou(g, (s, e)) >= 0.5);
            let c = spans.entry(t.to_string()).or_default();
            match hit {
                Some(k) => {
                    used[k] = true;
                    c.tp += 1;
                }
                None => c.fn_ += 1,
            }
        }
        for (k, &(t, _, _)) in predicted.iter().enumerate() {
            if !used[k] {
                spans.entry(t.to_string()).or_default().fp += 1;
            }
        }

        // Sample level: what `detect` reports for the sample.
        let found: BTreeSet<&str> = detect(text.as_bytes()).entities().map(gold_type).collect();
        let labelled: BTreeSet<&str> = gold.iter().map(|(t, _)| *t).collect();
        for t in found.union(&labelled) {
            let c = samples.entry(t.to_string()).or_default();
            match (found.contains(t), labelled.contains(t)) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                _ => c.fn_ += 1,
            }
        }

        for n in row["negatives"].as_array().unwrap() {
            negatives += 1;
            let (ns, ne) = span(n);
            if predicted.iter().any(|&(_, s, e)| s < ne && ns < e) {
                *negatives_touched.entry(n["kind"].as_str().unwrap().to_string()).or_default() += 1;
            }
        }
    }
    if let Some(out) = std::env::var_os("MODELGATE_PII_EVAL_PREDICTIONS") {
        std::fs::write(out, &predictions).unwrap();
    }

    eprintln!("{rows} samples from {}", path.display());
    eprintln!(
        "{:<24} {:>5} {:>4} {:>4} {:>6} {:>6} | per sample: {:>4} {:>4} {:>4}",
        "type", "tp", "fp", "fn", "P", "R", "tp", "fp", "fn"
    );
    for (t, c) in spans.iter().filter(|(t, _)| COVERED.contains(&t.as_str()) || *t == "SECRET_GENERIC") {
        let s = samples.get(t).copied().unwrap_or_default();
        eprintln!(
            "{t:<24} {:>5} {:>4} {:>4} {:>6.3} {:>6.3} | {:>15} {:>4} {:>4}",
            c.tp,
            c.fp,
            c.fn_,
            c.precision(),
            c.recall(),
            s.tp,
            s.fp,
            s.fn_
        );
    }
    let touched: usize = negatives_touched.values().sum();
    eprintln!("look-alikes touched: {touched}/{negatives} {negatives_touched:?}");

    assert!(rows >= 100, "corpus too small: {rows} rows");
    for t in COVERED {
        let c = spans.get(t).copied().unwrap_or_default();
        let s = samples.get(t).copied().unwrap_or_default();
        assert!(c.tp + c.fn_ > 0, "{t}: no labelled spans in the corpus");
        assert!(c.precision() >= 0.95, "{t}: span precision {:.3} ({c:?})", c.precision());
        assert!(s.precision() >= 0.95, "{t}: sample precision {:.3} ({s:?})", s.precision());
        assert!(c.recall() >= 0.95, "{t}: span recall {:.3} ({c:?})", c.recall());
    }
    // Provider keys reported as SECRET_GENERIC must be real secrets where the corpus has labels.
    let generic = spans.get("SECRET_GENERIC").copied().unwrap_or_default();
    assert!(generic.fp == 0 || generic.precision() >= 0.95, "SECRET_GENERIC: {generic:?}");
    assert_eq!(touched, 0, "look-alikes touched: {negatives_touched:?}");
}
