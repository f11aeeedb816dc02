//! Name globs, the one matcher of model names (upstream routing, `[[access]]` rules) and entity
//! types (masking profiles): `*` matches any run of bytes, possibly empty; case-sensitive,
//! bytewise (a literal run of UTF-8 can only match at character boundaries); no allocation.

/// Whether `text` matches `pattern`, where `*` matches any run of bytes and every other byte
/// matches itself (`?` too): Cedar's `like` without escapes, for `[[access]]` model globs and
/// masking entity globs.
pub fn matches(pattern: &str, text: &str) -> bool {
    glob(pattern.as_bytes(), text.as_bytes(), false)
}

/// Whether `text` matches `pattern`, where `*` matches any run of bytes, `?` any one byte and
/// every other byte itself: upstream model globs.
pub fn matches_with_question(pattern: &str, text: &str) -> bool {
    glob(pattern.as_bytes(), text.as_bytes(), true)
}

/// The matcher: on a mismatch, the last `*` takes one more byte of `text`.
fn glob(pattern: &[u8], text: &[u8], question: bool) -> bool {
    let (mut p, mut t) = (0, 0);
    // The last `*` seen and the text offset its run currently ends at.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = text.get(t) {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&b'?') if question => {
                p += 1;
                t += 1;
            }
            Some(&x) if x == c => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_globs() {
        let cases = [
            ("*", "anything", true),
            ("*", "", true),
            ("qwen*", "qwen2.5:7b", true),
            ("qwen*", "llama", false),
            ("llama-3-70b", "llama-3-70b", true),
            ("llama-3-70b", "llama-3-70b-instruct", false),
            ("*-instruct", "llama-3-8b-instruct", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("", "", true),
            ("", "x", false),
            ("Qwen*", "qwen2", false),
            // A `*` in the text is no wildcard: the pattern's `*` still matches a run.
            ("*b", "*xb", true),
            ("a*", "a*", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(matches(p, t), want, "{p} vs {t}");
            assert_eq!(matches_with_question(p, t), want, "{p} vs {t}");
        }
    }

    #[test]
    fn question_marks() {
        assert!(matches_with_question("llama-?-8b", "llama-3-8b"));
        assert!(!matches_with_question("llama-?-8b", "llama-31-8b"));
        assert!(!matches_with_question("llama-?-8b", "llama--8b"));
        assert!(matches_with_question("?*", "x"));
        assert!(!matches_with_question("?*", ""));
        // Without `?` as a wildcard it is literal.
        assert!(!matches("llama-?-8b", "llama-3-8b"));
        assert!(matches("llama-?-8b", "llama-?-8b"));
    }

    #[test]
    fn entity_globs() {
        assert!(matches("*", "EMAIL"));
        assert!(matches("SECRET_*", "SECRET_JWT"));
        assert!(!matches("SECRET_*", "EMAIL"));
        assert!(matches("EMAIL", "EMAIL"));
        assert!(!matches("EMAIL", "EMAILS"));
        assert!(matches("*_KEY", "SECRET_AWS_ACCESS_KEY"));
        assert!(matches("S*T*Y", "SECRET_KEY"));
        assert!(!matches("", "EMAIL"));
    }

    #[test]
    fn bytewise_utf8() {
        assert!(matches("modèle-*", "modèle-7b"));
        assert!(!matches("modèle-*", "modele-7b"));
        assert!(matches("*è*", "modèle"));
    }
}
