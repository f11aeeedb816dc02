//! Positives and look-alikes for every detector, in plain text and inside JSON strings.
//! All values are synthetic.

use super::*;

const AWS: &str = "AKIAAVYF6RMPAFQFJZCZ";
const AWS_STS: &str = "ASIABTTOFJYU7JSJC3IB";
const GITHUB: &str = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d";
const GITHUB_APP: &str = "ghs_KLzdocJ2isAjIhKtJ0RlgLKOmxgJTeKdNnFR";
const GITHUB_PAT: &str =
    "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";
const GITLAB: &str = "glpat-c7Tvo-hBKqFYY-kv5ZJr";
const SLACK: &str = "xoxb-786843353265-0201462016849-pSscDlkrCaqx9vJupc94tnwl";
const OPENAI: &str = "sk-0B3JrTAwR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NPRVdD5";
const OPENAI_PROJECT: &str = "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";
const OPENAI_HEX: &str = "sk-0ad84173581569969e58b081006f7e3d";
const ANTHROPIC: &str =
    "sk-ant-api03-yJfm5di4PzJ59FHz5r1pY4OjE2jBMptUsGr7CmY_uCu3ZR1zTOlUcR64cXQLioDnkHIfxIq2HZt-PlJhx2jIclHkCiHp6AA";
const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
/// `{"typ":"JWT","alg":"ES256","kid":"k1"}`: `alg` not first.
const JWT_TYP_FIRST: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiI0MiIsImlhdCI6MTcwMDAwMDAwMH0.3Ncqe28_ajY75FnCttn6kfaqDeMqG3omjMyXHCabM6JOF8EFd0Nhcy-1kGD2VD-eR1UYzaLiA-zNyD7CHLn-xC";
const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----
DkdfrUnW5gcF+Ha6ili8GjHEAD6/Wj9KfzjsQGMrb9h+ImB+LK777pzNk8cL6j5I
XAAjlsHUqJoUD/+Ydua+5ZMs1SWOpQaPRYpzbLGViYXjU2JgJngKtFI3OyV2dZAk
g05rK+gqv81RKMGHZEM9YpvujA/C5Q52ryFlwRlOEVHzc0X0AWIRh/JUqBlIFXZ5
-----END RSA PRIVATE KEY-----";
const EMAIL: &str = "jane.doe+billing@mail.example.co.uk";

/// What `scan` finds: each type name with the text it covers.
fn found(body: &str) -> Vec<(&'static str, &str)> {
    let mut out = Vec::new();
    scan(body.as_bytes(), |f| out.push((f.entity.name(), &body[f.start..f.end])));
    out
}

/// `body` as the content of a chat message in a JSON request, escaped as serde_json does.
fn in_json(body: &str) -> String {
    let content = serde_json::to_string(body).unwrap();
    format!(r#"{{"model":"llama-3-70b","messages":[{{"role":"user","content":{content}}}],"stream":true}}"#)
}

#[track_caller]
fn assert_finds(entity: &str, value: &str) {
    let texts = [
        value.to_string(),
        format!("here it is: {value}"),
        format!("key={value}\nnext line"),
        format!("\"{value}\","),
        format!("({value})."),
        format!("line one\n{value}\nline three"),
        format!("tab\t{value}\ttab"),
    ];
    for text in &texts {
        assert_eq!(found(text), [(entity, value)], "in {text:?}");
        // Inside a JSON string: newlines and tabs become `\n`, `\t` right against the value.
        let json = in_json(text);
        let hits = found(&json);
        assert_eq!(hits.len(), 1, "in {json}");
        assert_eq!(hits[0].0, entity, "in {json}");
        if !value.contains('\n') {
            assert_eq!(hits[0].1, value, "in {json}");
        }
        let d = detect(json.as_bytes());
        assert_eq!(d.names(), [entity]);
        assert!(d.contains(entity) && !d.is_empty());
    }
}

#[track_caller]
fn assert_nothing(text: &str) {
    assert_eq!(found(text), [], "in {text:?}");
    assert!(detect(in_json(text).as_bytes()).is_empty(), "in JSON of {text:?}");
}

#[test]
fn finds_each_secret_type() {
    assert_finds("SECRET_AWS_ACCESS_KEY", AWS);
    assert_finds("SECRET_AWS_ACCESS_KEY", AWS_STS);
    assert_finds("SECRET_GITHUB_TOKEN", GITHUB);
    assert_finds("SECRET_GITHUB_TOKEN", GITHUB_APP);
    assert_finds("SECRET_GITHUB_TOKEN", GITHUB_PAT);
    assert_finds("SECRET_GITLAB_TOKEN", GITLAB);
    assert_finds("SECRET_SLACK_TOKEN", SLACK);
    assert_finds("SECRET_OPENAI_KEY", OPENAI);
    assert_finds("SECRET_OPENAI_KEY", OPENAI_PROJECT);
    assert_finds("SECRET_OPENAI_KEY", OPENAI_HEX);
    assert_finds("SECRET_ANTHROPIC_KEY", ANTHROPIC);
    assert_finds("SECRET_JWT", JWT);
    assert_finds("SECRET_JWT", JWT_TYP_FIRST);
    assert_finds("SECRET_PRIVATE_KEY", PEM);
    assert_finds("EMAIL", EMAIL);
    assert_finds("EMAIL", "bob@example.com");
    assert_finds("EMAIL", "neil_x%y@sub-domain.example.travel");
}

#[test]
fn private_key_variants() {
    for (label, lines) in [
        ("PRIVATE KEY", ""),
        ("EC PRIVATE KEY", ""),
        ("OPENSSH PRIVATE KEY", ""),
        ("ENCRYPTED PRIVATE KEY", ""),
        ("RSA PRIVATE KEY", "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,5E3B1C0D9A7F4E2B8C6D0A1F3E5B7C9D\n\n"),
        ("PGP PRIVATE KEY BLOCK", "Version: GnuPG v2\n\n"),
    ] {
        let key = format!(
            "-----BEGIN {label}-----\n{lines}DkdfrUnW5gcF+Ha6ili8GjHEAD6/Wj9KfzjsQGMrb9h+ImB+LK777pzNk8cL6j5I\n\
             XAAjlsHUq==\n-----END {label}-----"
        );
        assert_finds("SECRET_PRIVATE_KEY", &key);
    }
    // CRLF line ends, and `/` escaped as `\/` (PHP's json_encode does it).
    let crlf = PEM.replace('\n', "\r\n");
    assert_finds("SECRET_PRIVATE_KEY", &crlf);
    let json = in_json(PEM).replace('/', "\\/");
    let hits = found(&json);
    assert_eq!(hits.len(), 1, "{json}");
    assert!(hits[0].1.starts_with("-----BEGIN RSA") && hits[0].1.ends_with("-----END RSA PRIVATE KEY-----"));
    // Slashes every few bytes: only counting `\/` as key material finds it.
    let slashed = "-----BEGIN PRIVATE KEY-----\nq8Zr1Kd/Xw3Lp9T/mB4vNc7/Hs2Gf6Y/jR5tW0e/==\n-----END PRIVATE KEY-----";
    assert_eq!(found(slashed).len(), 1);
    let escaped = in_json(slashed).replace('/', "\\/");
    assert_eq!(found(&escaped).len(), 1, "{escaped}");
    // Truncated: no END line, still a key; the value runs to the end of the key material.
    let truncated = &PEM[..PEM.find("-----END").unwrap()];
    assert_eq!(found(&format!("{truncated}\" more")), [("SECRET_PRIVATE_KEY", truncated.trim_end())]);
}

#[test]
fn look_alikes_are_left_alone() {
    for text in [
        // AWS: the documented placeholder, wrong lengths, lowercase, glued to a word, low entropy.
        "AKIAIOSFODNN7EXAMPLE",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "ASIAXXXXXXXXXXEXAMPLE",
        "AKIAAVYF6RMPAFQFJZC",
        "AKIAAVYF6RMPAFQFJZCZA",
        "AKIAAVYF6RMPAFQFJZCz",
        "xAKIAAVYF6RMPAFQFJZCZ",
        "AKIAAVYF6RMPAFQFJZCZ_x",
        "AKIAXXXXXXXXXXXXXXXX",
        "AKIA0000000000000000",
        "AKIA1234567890ABCDEF",
        "ASIAPACIFICREGION",
        // GitHub: truncated, placeholders, glued.
        "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8",
        "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "ghp_1234567890abcdefghijklmnopqrstuvwxyz",
        "ghp_abababababababababababababababababab",
        "AKIA0101010101010101",
        "sk-AbC1AbC1AbC1AbC1AbC1AbC1AbC1",
        "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d_v2",
        "xghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d",
        "ghp_...",
        "github_pat_IBXuDL7DxtpYlSXpfKtHF4_vUCsMehGAkWvj7FAc9QeWJKY40",
        "github_pat_<your token>",
        // GitLab, Slack.
        "glpat-c7Tvo-hBKqFYY",
        "glpat-xxxxxxxxxxxxxxxxxxxx",
        "xoxb-your-bot-token-goes-right-here",
        "xoxb-xxxxxxxxxxxx-xxxxxxxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx",
        "xoxb-123456789012-1234567890123-",
        "xoxb-12345",
        // `sk-` keys: ellipses, placeholders, slugs, words ending in `sk`.
        "sk-...",
        "OPENAI_API_KEY=sk-...",
        "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "sk-proj-xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "sk-YOUR_API_KEY_HERE_REPLACE_ME",
        "sk-hynix-memory-prices-rise-in-2024",
        "task-0B3JrTAwR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NPRVdD5",
        "desk-lamp-with-usb-charging-port-v2",
        "sk-1234567890abcdef1234567890abcdef",
        "sk-0B3JrTAwR4y9oj",
        // JWTs: no `alg`, two segments, short segments, payload not JSON.
        "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiI0MiIsImlhdCI6MTcwMDAwMDAwMH0.3Ncqe28_ajY75FnCttn6kfaqDeMq",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIi.SflKxwRJ",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.aGVsbG8gd29ybGQsIG5vdCBqc29u.SflKxwRJSMeKKF2QT4fwpMeJf36POk6y",
        "xeyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6y",
        "eyJ...",
        // PEM: public keys, certificates, headers without key material.
        "-----BEGIN PUBLIC KEY-----\nDkdfrUnW5gcF+Ha6ili8GjHEAD6/Wj9KfzjsQGMrb9h+ImB+LK777pzNk8cL6j5I\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nDkdfrUnW5gcF+Ha6ili8GjHEAD6/Wj9KfzjsQGMrb9h+ImB+LK777pzNk8cL6j5I\n-----END CERTIFICATE-----",
        "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\n<your key here>\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n-----END RSA PRIVATE KEY-----",
        "what does -----BEGIN OPENSSH PRIVATE KEY----- mean in my id_ed25519 file?",
        // Email look-alikes.
        "@channel please review",
        "ping @jane.doe about it",
        "root@localhost",
        "user@server01",
        "icon@2x.png and logo@3x.webp",
        "npm i lodash@4.17.21",
        "git clone git@github.com:org/repo.git",
        "a..b@example.com",
        ".@example.com",
        "user@example.c",
        "user@example.123",
        "user@-example.com",
        "user@example-.com",
        "@Override public String toString()",
        // Common look-alikes of the corpus and real prompts.
        "request 71227cb2-ee28-4c1e-a8f5-1ac557afaba6",
        "commit 2bbac26d77987d98bcb21769c82c1ca6622d4e88",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "version v3.12.25 released 2016-06-01T16:02:57.969833",
        "order ORD-46130597, card 9533312321461668",
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    ] {
        assert_nothing(text);
    }
}

#[test]
fn json_escapes_are_boundaries() {
    // `\n` right before the value: the `n` belongs to the escape, not the token.
    let json = format!(r#"{{"content":"keys:\n{AWS}\n{GITHUB}\t{OPENAI}\u00e9{JWT}\/{SLACK}\r\n{EMAIL}"}}"#);
    let names: Vec<_> = found(&json).into_iter().map(|(n, v)| (n, v.to_string())).collect();
    assert_eq!(
        names,
        [
            ("SECRET_AWS_ACCESS_KEY", AWS.to_string()),
            ("SECRET_GITHUB_TOKEN", GITHUB.to_string()),
            ("SECRET_OPENAI_KEY", OPENAI.to_string()),
            ("SECRET_JWT", JWT.to_string()),
            ("SECRET_SLACK_TOKEN", SLACK.to_string()),
            ("EMAIL", EMAIL.to_string()),
        ]
    );
    // An escaped backslash before `n` leaves a literal `n`, glued to the token: no boundary.
    assert_eq!(found(&format!(r#""C:\\n{AWS}""#)), []);
    // The email's local part stops at the escape.
    assert_eq!(found(r#""to:\nbob@example.com""#), [("EMAIL", "bob@example.com")]);
    assert_eq!(found(r#""\u00e9bob@example.com""#), [("EMAIL", "bob@example.com")]);
}

#[test]
fn scan_reports_every_value_in_order_without_overlap() {
    let body = format!("{EMAIL} then {AWS} and {JWT}, {PEM} and again {AWS} to a@b.io.");
    let mut spans = Vec::new();
    scan(body.as_bytes(), |f| spans.push(f));
    let names: Vec<_> = spans.iter().map(|f| f.entity.name()).collect();
    assert_eq!(
        names,
        ["EMAIL", "SECRET_AWS_ACCESS_KEY", "SECRET_JWT", "SECRET_PRIVATE_KEY", "SECRET_AWS_ACCESS_KEY", "EMAIL"]
    );
    assert!(spans.windows(2).all(|w| w[0].end <= w[1].start));
    // A value is never read again by a later candidate: no email made of a token's bytes.
    assert_eq!(found(&format!("{AWS}@example.com")), [("SECRET_AWS_ACCESS_KEY", AWS)]);
    assert_eq!(&body[spans[3].start..spans[3].end], PEM);
    assert_eq!(&body[spans[5].start..spans[5].end], "a@b.io");
    let d = detect(body.as_bytes());
    assert_eq!(d.names(), ["EMAIL", "SECRET_AWS_ACCESS_KEY", "SECRET_JWT", "SECRET_PRIVATE_KEY"]);
    assert!(d.has(Entity::SecretJwt) && !d.has(Entity::SecretGithubToken));
    assert!(!d.contains("SECRET_GITHUB_TOKEN") && !d.contains("email"));
    assert_eq!(format!("{d:?}"), r#"{"EMAIL", "SECRET_AWS_ACCESS_KEY", "SECRET_JWT", "SECRET_PRIVATE_KEY"}"#);
}

#[test]
fn detected_names_are_sorted_and_unique() {
    let names: Vec<_> = Entity::ALL.iter().map(|e| e.name()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted, "Entity::ALL must be in name order");
    assert!(Entity::ALL.windows(2).all(|w| w[0] < w[1]), "variants must be declared in name order");
    for e in Entity::ALL {
        assert_eq!(Entity::from_name(e.name()), Some(e));
    }
    assert_eq!(Entity::from_name("PHONE"), Some(Entity::Phone));
    assert_eq!(Entity::from_name("NOPE"), None);

    let all: Detected = Entity::ALL.into_iter().rev().chain(Entity::ALL).collect();
    assert_eq!(all.names(), names);
    assert_eq!(all.entities().collect::<Vec<_>>(), Entity::ALL);
    let none = detect(b"");
    assert!(none.is_empty() && none.names().is_empty() && none == Detected::default());
    let twice = detect(format!("{AWS} {AWS_STS} {GITHUB} {GITHUB_PAT}").as_bytes());
    assert_eq!(twice.names(), ["SECRET_AWS_ACCESS_KEY", "SECRET_GITHUB_TOKEN"]);
}

#[test]
fn values_at_the_edges_of_the_body() {
    for value in [AWS, GITHUB, GITHUB_PAT, GITLAB, SLACK, OPENAI, ANTHROPIC, JWT, PEM, EMAIL] {
        assert_eq!(found(value).len(), 1, "{value}");
        // Every strict prefix is either nothing or shorter than the value (truncated values).
        for cut in [1, 5, 12, value.len() / 2, value.len() - 1] {
            let prefix = &value[..cut];
            assert!(found(prefix).iter().all(|(_, v)| v.len() < value.len()), "{prefix}");
        }
    }
}

#[test]
fn adversarial_bodies_stay_linear() {
    // Each of these would be quadratic if a rejected candidate re-read its neighbours' runs.
    let n = 64 * 1024;
    for unit in
        ["sk-", "eyJ", "eyJhbGciOiJIUzI1NiJ9.", "@a", "a@", "ghp_", "AKIA", "-----BEGIN PRIVATE KEY-----", "x.@"]
    {
        let body = unit.repeat(n / unit.len());
        let start = std::time::Instant::now();
        let _ = detect(body.as_bytes());
        let _ = detect(in_json(&body).as_bytes());
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "{unit}: {:?}", start.elapsed());
    }
}

/// Each value alone in a sentence is found whole, with the given type.
#[track_caller]
fn assert_each(entity: &str, values: &[&str]) {
    for v in values {
        let text = format!("see {v} now");
        assert_eq!(found(&text), [(entity, *v)], "in {text:?}");
    }
}

#[test]
fn structured_types() {
    assert_each(
        "PHONE",
        &[
            "+33 1 56 75 79 38",
            "+49 (0) 5393 979837",
            "+31(0)630-494032",
            "+1-541-754-3010",
            "(415) 555-0100",
            "415-555-0100",
            "538.399.2352x59533",
            "(613)862-7993x732",
            "001-428-970-5685x67025",
            "03 73 80 39 27",
            "049 3520233",
            "(0808)1570334",
            "+44 20 7946 0958",
        ],
    );
    assert_each("CREDIT_CARD", &["4111 1111 1111 1111", "3565-3058-2832-4255", "378282246310005", "6011111111111117"]);
    assert_each("US_SSN", &["342-24-4364", "807-93-2322"]);
    assert_each("IBAN", &["GB82WEST12345698765432", "DE89 3704 0044 0532 0130 00", "NL91ABNA0417164300"]);
    assert_each("IP_ADDRESS", &["177.128.141.178", "10.0.0.1", "2001:db8::8a2e:370:7334", "fe80::1ff:fe23:4567:890a"]);
    // Bare digits need a phone word before them.
    assert_eq!(found("Call me at 0783583030."), [("PHONE", "0783583030")]);
    assert_eq!(found(r#"{"phone": "082421297"}"#), [("PHONE", "082421297")]);
    assert_eq!(found("ssn 123456789 on file"), [("US_SSN", "123456789")]);
    // A port after an address stays out of it.
    assert_eq!(found("http://116.234.35.237:8000/v1"), [("IP_ADDRESS", "116.234.35.237")]);
}

#[test]
fn generic_secrets() {
    for (text, value) in [
        (r#"api_key="q_oDxsonGHixeRGS6Ab2z_JEj""#, "q_oDxsonGHixeRGS6Ab2z_JEj"),
        ("DB_PASSWORD=Zx8#kq2LmP9wTr4v", "Zx8#kq2LmP9wTr4v"),
        (r#"{"client_secret": "9f86d081884c7d659a2feaa0c55ad015"}"#, "9f86d081884c7d659a2feaa0c55ad015"),
        ("Authorization: Bearer aGVsbG8gd29ybGQgdGhpcyBpcyBh", "aGVsbG8gd29ybGQgdGhpcyBpcyBh"),
        ("token := 'tZQ-RwXvIbgDQk5FroteDZJ2L'", "tZQ-RwXvIbgDQk5FroteDZJ2L"),
    ] {
        assert_eq!(found(text), [("SECRET_GENERIC", value)], "in {text:?}");
    }
    // A provider key after a key word keeps its own type.
    assert_eq!(found(&format!("token = {GITHUB}")), [("SECRET_GITHUB_TOKEN", GITHUB)]);
    for text in [
        "password = get_password()",
        "api_key = os.environ['API_KEY']",
        "API_KEY=${API_KEY}",
        "password: <your password here>",
        r#""max_tokens": 4096"#,
        r#""token_type": "bearer_token_abc""#,
        "secret = your_api_key_here",
        "password: changeme123",
        "token = self.config.token",
        "the author: Jane, key: value",
    ] {
        assert_nothing(text);
    }
}

#[test]
fn structured_look_alikes_are_left_alone() {
    for text in [
        "released 2016-06-01T16:02:57.969833 as v3.12.25",
        "order ORD-46130597 shipped",
        "Test card number 9533312321461668 is rejected",
        "version 1.2.3.4 is out, build 10.0.19045.3693",
        "at 12:30:45 on 01/06/2016 or 2016.06.01",
        "pi is 3.14159265358979 and e is 2.718281828",
        "MAC 00:1a:2b:3c:4d:5e and std::vector<int>",
        "commit 2bbac26d77987d98bcb21769c82c1ca6622d4e88 and uuid 71227cb2-ee28-4c1e-a8f5-1ac557afaba6",
        "ISBN 978-3-16-148410-0 and the year 2024",
        "page 12 of 300, 1,234,567 rows, $45,000.00",
        "the port is 8080 and the pid 123456",
        "SSN 000-12-3456 or 666-12-3456 or 912-12-3456 is invalid",
        "GB83WEST12345698765432 fails its checksum",
    ] {
        assert_nothing(text);
    }
}

#[test]
fn detector_with_custom_types() {
    let d = Detector::new(&[
        CustomSpec {
            name: "project_code".into(),
            patterns: vec![r"PRJ-\d{4}".into()],
            words: vec!["Project Falcon".into()],
            case_sensitive: false,
        },
        CustomSpec {
            name: "customer_id".into(),
            patterns: vec![r"CUST-[0-9]{6}".into()],
            case_sensitive: true,
            ..CustomSpec::default()
        },
    ])
    .unwrap();
    let text = "prj-1234 and project falcon for CUST-123456, not cust-654321; mail bob@example.com";
    let mut got = Vec::new();
    d.scan(text.as_bytes(), |f| got.push((f.entity.name(), &text[f.start..f.end])));
    assert_eq!(
        got,
        [
            ("PROJECT_CODE", "prj-1234"),
            ("PROJECT_CODE", "project falcon"),
            ("CUSTOMER_ID", "CUST-123456"),
            ("EMAIL", "bob@example.com")
        ]
    );
    let det = d.detect(text.as_bytes());
    assert_eq!(det.names(), ["CUSTOMER_ID", "EMAIL", "PROJECT_CODE"]);
    assert!(det.has(Entity::Custom("PROJECT_CODE")) && det.has(Entity::Email));
    assert_eq!(d.hold_from(b"see PRJ-12"), 4);
    assert_eq!(Detector::builtin().hold_from(b"see PRJ-12"), 4);
    assert!(
        Detector::new(&[CustomSpec { name: "x".into(), patterns: vec!["(".into()], ..CustomSpec::default() }]).is_err()
    );
}

#[test]
fn recognizer_extension_point() {
    struct Upper;
    impl Recognizer for Upper {
        fn recognize(&self, text: &[u8], on_found: &mut dyn FnMut(Found)) {
            if let Some(i) = text.windows(4).position(|w| w == b"ACME") {
                on_found(Found { entity: Entity::Person, start: i, end: i + 4 });
            }
        }
    }
    let d = Detector::builtin().with_recognizer(Box::new(Upper));
    let text = "ACME wrote to bob@example.com";
    let mut got = Vec::new();
    d.scan(text.as_bytes(), |f| got.push((f.entity.name(), &text[f.start..f.end])));
    assert_eq!(got, [("PERSON", "ACME"), ("EMAIL", "bob@example.com")]);
}
