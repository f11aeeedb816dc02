//! The prompt excerpt shown to approvers (webhooks, `approvals list`): the start of the last
//! user text of a request, with every entity the detector finds replaced by its type, so an
//! approver sees what is asked without the values.

use serde_json::Value;

/// Longest excerpt, in characters.
const MAX_CHARS: usize = 280;

/// The masked excerpt of a JSON request body, when it holds a prompt-like text.
pub fn masked_excerpt(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let text = prompt_text(&v)?;
    let cut: String = text.chars().take(MAX_CHARS).collect();
    let mut out = String::with_capacity(cut.len());
    let mut at = 0;
    masking::scan(cut.as_bytes(), |f| {
        if f.start >= at && cut.is_char_boundary(f.start) && cut.is_char_boundary(f.end) {
            out.push_str(&cut[at..f.start]);
            out.push('[');
            out.push_str(f.entity.name());
            out.push(']');
            at = f.end;
        }
    });
    out.push_str(&cut[at..]);
    if text.chars().count() > MAX_CHARS {
        out.push('…');
    }
    Some(out)
}

/// The last user message's text, or `prompt` / `input` / `inputs`.
fn prompt_text(v: &Value) -> Option<String> {
    if let Some(msgs) = v.get("messages").and_then(Value::as_array) {
        let last = msgs.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")).or(msgs.last())?;
        return match last.get("content")? {
            Value::String(s) => Some(s.clone()),
            Value::Array(parts) => {
                let texts: Vec<&str> = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
                (!texts.is_empty()).then(|| texts.join(" "))
            }
            _ => None,
        };
    }
    for key in ["prompt", "input", "inputs", "text_input"] {
        match v.get(key) {
            Some(Value::String(s)) => return Some(s.clone()),
            Some(Value::Array(a)) => {
                if let Some(s) = a.iter().find_map(Value::as_str) {
                    return Some(s.to_string());
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_excerpt_hides_values_and_keeps_the_question() {
        let body = br#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"mail jane.doe@example.com the key AKIAZ7VQ3X4LRTM2PQ5N please"}]}"#;
        let e = super::masked_excerpt(body).unwrap();
        assert_eq!(e, "mail [EMAIL] the key [SECRET_AWS_ACCESS_KEY] please");
        let long = format!(r#"{{"prompt":"{}"}}"#, "word ".repeat(100));
        let e = super::masked_excerpt(long.as_bytes()).unwrap();
        assert!(e.ends_with('…') && e.chars().count() == 281);
        assert!(super::masked_excerpt(b"not json").is_none());
    }
}
