//! Recognising the frame that completes a streamed answer, before the body itself ends.
//!
//! `strict` durability must not let a caller hold a whole answer before its completion record is
//! durable. Stream clients consider an answer whole at the end marker of their API, not at the
//! end of the HTTP body, so the relay holds the frame that carries it.

use crate::Framing;

/// Whether `chunk` carries the end marker of a streamed answer: `data: [DONE]` (OpenAI-style
/// SSE), a final event with `"stop":true` (llama.cpp) or a non-null `"generated_text"` (TGI),
/// or an NDJSON line with `"done":true` (Ollama).
///
/// Quoted patterns cannot occur inside a JSON string value (its quotes would be escaped), and
/// `[DONE]` is only matched at the start of a line, where raw content cannot begin (newlines
/// inside JSON strings are escaped too).
pub fn ends_answer(framing: Framing, chunk: &[u8]) -> bool {
    match framing {
        Framing::Sse => {
            starts_line(chunk, b"data: [DONE]")
                || starts_line(chunk, b"data:[DONE]")
                || contains(chunk, b"\"stop\":true")
                || contains(chunk, b"\"stop\": true")
                || contains(chunk, b"\"generated_text\":\"")
                || contains(chunk, b"\"generated_text\": \"")
        }
        Framing::Ndjson => contains(chunk, b"\"done\":true") || contains(chunk, b"\"done\": true"),
        Framing::None => false,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

fn starts_line(hay: &[u8], needle: &[u8]) -> bool {
    hay.starts_with(needle) || memchr::memmem::find_iter(hay, needle).any(|i| i > 0 && hay[i - 1] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_markers_of_each_flavor() {
        assert!(ends_answer(Framing::Sse, b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n"));
        assert!(ends_answer(Framing::Sse, b"data: [DONE]\n\n"));
        assert!(!ends_answer(Framing::Sse, b"data: {\"choices\":[{\"delta\":{\"content\":\"data: [DONE]\"}}]}\n\n"));
        assert!(ends_answer(Framing::Sse, b"data: {\"content\":\"\",\"stop\":true}\n\n"));
        assert!(!ends_answer(Framing::Sse, b"data: {\"content\":\"x\",\"stop\":false}\n\n"));
        assert!(ends_answer(Framing::Sse, b"data:{\"token\":{},\"generated_text\":\"Deep learning\"}\n\n"));
        assert!(!ends_answer(Framing::Sse, b"data:{\"token\":{},\"generated_text\":null}\n\n"));
        assert!(!ends_answer(Framing::Sse, b"data: {\"content\":\"say \\\"stop\\\":true\"}\n\n"));
        assert!(ends_answer(Framing::Ndjson, b"{\"model\":\"m\",\"done\":true,\"eval_count\":3}\n"));
        assert!(!ends_answer(Framing::Ndjson, b"{\"message\":{\"content\":\"\\\"done\\\":true\"},\"done\":false}\n"));
        assert!(!ends_answer(Framing::None, b"data: [DONE]\n\n"));
    }
}
