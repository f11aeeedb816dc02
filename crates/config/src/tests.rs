use super::*;
use std::path::PathBuf;

#[test]
fn empty_file_gives_embedded_defaults() {
    let c = Config::from_toml("").unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.admin_listen.to_string(), "127.0.0.1:8081");
    assert_eq!(c.upstreams.len(), 1);
    assert_eq!(c.upstreams[0].url, "http://127.0.0.1:11434");
    assert_eq!(c.upstreams[0].flavor, Flavor::Ollama);
    assert!(c.upstreams[0].default);
}

#[test]
fn example_config_parses_to_the_defaults() {
    let c = Config::from_toml(EXAMPLE_CONFIG).unwrap();
    let d = Config::default();
    assert_eq!(c.server.max_request_bytes, d.server.max_request_bytes);
    assert_eq!(c.server.max_header_bytes, d.server.max_header_bytes);
    assert_eq!(c.server.first_byte_timeout, d.server.first_byte_timeout);
    assert_eq!(c.server.idle_timeout, d.server.idle_timeout);
    assert_eq!(c.server.request_timeout, d.server.request_timeout);
    assert_eq!(c.upstreams[0].name, d.upstreams[0].name);
}

#[test]
fn unknown_keys_name_their_path() {
    let e = Config::from_toml("[server]\nlisen = \"127.0.0.1:1\"\n").unwrap_err();
    assert_eq!(e.path, "server.lisen");
    assert!(e.message.contains("lisen"), "{e}");
    let e = Config::from_toml("[[upstreams]]\nname='a'\nurl='http://x'\nflavor='vllm'\nmodels=['*']\nbogus=1\n")
        .unwrap_err();
    assert_eq!(e.path, "upstreams[0].bogus");
    assert!(e.message.contains("bogus"), "{e}");
}

#[test]
fn bad_values_name_their_path() {
    let cases = [
        (
            "[[upstreams]]\nname='a'\nurl='http://x'\nflavor='nope'\nmodels=['*']\n",
            "upstreams[0].flavor",
            "unknown flavor",
        ),
        ("[server]\nidle_timeout='soon'\n", "server.idle_timeout", "invalid duration"),
        ("[server]\nmax_request_bytes='12 parsecs'\n", "server.max_request_bytes", "invalid size unit"),
        ("[server]\nlisten='nowhere'\n", "server.listen", "socket address"),
        ("[[upstreams]]\nname='a'\nurl='ftp://x'\nflavor='vllm'\nmodels=['*']\n", "upstreams[0].url", "http://"),
        (
            "[[upstreams]]\nname='a'\nurl='http://x'\nflavor='vllm'\nmodels=['*']\n[[upstreams]]\nname='a'\nurl='http://y'\nflavor='vllm'\nmodels=['*']\n",
            "upstreams[1].name",
            "duplicate",
        ),
        (
            "[[upstreams]]\nname='a'\nurl='http://x'\nflavor='vllm'\ndefault=true\n[[upstreams]]\nname='b'\nurl='http://y'\nflavor='vllm'\ndefault=true\n",
            "upstreams[1].default",
            "only one",
        ),
        (
            "[[upstreams]]\nname='a'\nurl='http://x'\nflavor='triton'\nprefix='triton'\n",
            "upstreams[0].prefix",
            "start with",
        ),
        ("[[upstreams]]\nname='a'\nurl='http://x'\nflavor='vllm'\n", "upstreams[0].models", "needs models"),
        (
            "[[upstreams]]\nname='a'\nurl='http://x'\nflavor='vllm'\nmodels=['*']\napi_key_env='K'\napi_key_file='/k'\n",
            "upstreams[0].api_key_file",
            "not both",
        ),
        ("upstreams = []\n", "upstreams", "at least one"),
    ];
    for (text, path, needle) in cases {
        let e = Config::from_toml(text).unwrap_err();
        assert_eq!(e.path, path, "for {text:?}: {e}");
        assert!(e.message.contains(needle), "for {text:?}: {e}");
    }
}

#[test]
fn sizes_and_durations() {
    assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
    assert_eq!(parse_size("1000").unwrap(), 1000);
    assert_eq!(parse_size("2KB").unwrap(), 2000);
    assert!(parse_size("-1").is_err());
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert!(parse_duration("5 fortnights and a bit").is_err());
}

#[test]
fn upstream_urls_split() {
    let u = parse_upstream_url("https://10.0.0.5:8000/base/").unwrap();
    assert_eq!(u, UpstreamUrl { scheme: "https", authority: "10.0.0.5:8000".into(), base_path: "/base".into() });
    assert!(parse_upstream_url("http://user:pw@h").is_err());
    assert!(parse_upstream_url("http://h/?q").is_err());
}

#[test]
fn oidc_issuers_validate() {
    let ok = "[[identity.oidc]]\nissuer = 'http://127.0.0.1:9000'\naudiences = ['modelgate']\ngroups_claim = '/realm_access/roles'\n";
    let c = Config::from_toml(ok).unwrap();
    let o = &c.identity.oidc[0];
    assert_eq!(o.leeway, Duration::from_secs(30));
    assert_eq!(o.groups_claim, "/realm_access/roles");
    assert_eq!(o.kind, IdentityKind::Human);
    assert!(o.algorithms.iter().all(|a| a != "HS256"));
    let cases = [
        (
            "[[identity.oidc]]\nissuer = 'http://login.example.com'\naudiences = ['a']\n",
            "identity.oidc[0].issuer",
            "https",
        ),
        (
            "[[identity.oidc]]\nissuer = 'http://localhost.evil.com'\naudiences = ['a']\n",
            "identity.oidc[0].issuer",
            "https",
        ),
        ("[[identity.oidc]]\nissuer = 'https://x'\naudiences = []\n", "identity.oidc[0].audiences", "at least one"),
        (
            "[[identity.oidc]]\nissuer = 'https://x'\naudiences = ['a']\nalgorithms = ['RS256', 'HS256']\n",
            "identity.oidc[0].algorithms[1]",
            "not allowed",
        ),
        (
            "[[identity.oidc]]\nissuer = 'https://x'\naudiences = ['a']\nkind = 'robot'\n",
            "identity.oidc[0].kind",
            "unknown variant",
        ),
        (
            "[[identity.oidc]]\nissuer = 'https://x'\naudiences = ['a']\n[[identity.oidc]]\nissuer = 'https://x'\naudiences = ['b']\n",
            "identity.oidc[1].issuer",
            "twice",
        ),
        ("[roles]\nadmins = ['x']\n", "roles.admins", "unknown field"),
    ];
    for (text, path, needle) in cases {
        let e = Config::from_toml(text).unwrap_err();
        assert_eq!(e.path, path, "for {text:?}: {e}");
        assert!(e.message.contains(needle), "for {text:?}: {e}");
    }
}

#[test]
fn example_config_has_access_rules_and_a_profile() {
    let c = Config::from_toml(EXAMPLE_CONFIG).unwrap();
    assert_eq!(c.access.len(), 4);
    let first = &c.access[0];
    assert_eq!(
        (first.groups.as_slice(), first.actions.as_slice()),
        (&["users".to_string()][..], &["inference".to_string()][..])
    );
    assert_eq!(first.models, ["*"]);
    assert_eq!(c.access[1].id.as_deref(), Some("ml-llama"));
    let a = c.access[2].require_approval.as_ref().unwrap();
    assert_eq!((a.grant, a.ttl, a.count), (GrantKind::Window, Some(Duration::from_secs(3600)), 1));
    assert_eq!(a.pending_ttl, Duration::from_secs(3600));
    assert_eq!(a.hold_timeout, Duration::from_secs(300));
    assert_eq!(a.mode, ApprovalMode::Hold);
    assert_eq!(c.access[3].effect, Effect::Deny);
    let f = &c.masking.profiles["finance"];
    assert_eq!(f.mode, MaskMode::Tokenize);
    assert_eq!(f.directions, [Direction::Request, Direction::Response, Direction::Recording]);
    assert!(c.masking.profile("default").is_some());
}

#[test]
fn access_defaults_and_the_embedded_rule() {
    let c = Config::from_toml("").unwrap();
    assert!(c.access.is_empty());
    assert_eq!(c.effective_access().as_ref(), [AccessRule::embedded_default()]);
    let c = Config::from_toml("[[access]]\nactions = ['inference.chat']\n").unwrap();
    let r = &c.access[0];
    assert_eq!(r.models, ["*"]);
    assert_eq!(r.effect, Effect::Allow);
    assert!(r.groups.is_empty() && r.subjects.is_empty() && r.id.is_none());
    assert_eq!(c.effective_access().len(), 1);
    assert_eq!(c.effective_access()[0], *r);
    // Raw files alone replace the embedded rule too.
    let c = Config::from_toml("[policy]\nfiles = ['x.cedar']\n").unwrap();
    assert!(c.effective_access().is_empty());
}

#[test]
fn access_rules_parse_every_key() {
    let text = r#"
[[upstreams]]
name = "vllm"
url = "http://10.0.0.5:8000"
flavor = "vllm"
models = ["*"]

[[access]]
id = "finance-chat"
description = "finance may chat"
groups = ["finance"]
subjects = ["ci-bot"]
actions = ["inference.chat", "model", "*"]
models = ["llama-*", "qwen"]
upstreams = ["vllm"]
source_ips = ["10.0.0.0/8", "192.168.1.7", "fd00::/8"]
detected = ["SECRET_*", "EMAIL", "*"]
mask = "finance"
recording = "metadata"
durability = "balanced"
require_approval = { approvers = ["security", "leads"], count = 2, grant = "request", pending_ttl = "2h", mode = "ticket", hold_timeout = "1m" }

[policy]
files = ["extra.cedar"]
group_parents = { ml-team = ["users"], interns = ["ml-team"] }

[masking.profiles.finance]
entities = ["EMAIL", "IBAN", "SECRET_*", "PROJECT_CODE"]

[masking.custom.project_code]
patterns = ['PRJ-\d{4}', '(?i)falcon-\d+']
words = ["Project Falcon", "bluebird"]

[masking.custom.customer_id]
patterns = ['CUST-[0-9]{6}']
case_sensitive = true
"#;
    let c = Config::from_toml(text).unwrap();
    let r = &c.access[0];
    assert_eq!(r.recording, Some(Recording::Metadata));
    assert_eq!(r.durability, Some(Durability::Balanced));
    let a = r.require_approval.as_ref().unwrap();
    assert_eq!(a.approvers, ["security", "leads"]);
    assert_eq!((a.count, a.grant, a.ttl, a.mode), (2, GrantKind::Request, None, ApprovalMode::Ticket));
    assert_eq!((a.pending_ttl, a.hold_timeout), (Duration::from_secs(7200), Duration::from_secs(60)));
    assert_eq!(c.policy.files, [PathBuf::from("extra.cedar")]);
    assert_eq!(c.policy.group_parents["interns"], ["ml-team"]);
    let f = &c.masking.profiles["finance"];
    assert_eq!((f.mode, f.directions.len()), (MaskMode::Redact, 3));
    assert_eq!(c.masking.profile_names(), ["default", "finance"]);
    let pc = &c.masking.custom["project_code"];
    assert_eq!((pc.patterns.len(), pc.words.len(), pc.case_sensitive), (2, 2, false));
    assert!(c.masking.custom["customer_id"].case_sensitive);
}

#[test]
fn access_errors_name_their_path() {
    let up = "[[upstreams]]\nname='vllm'\nurl='http://x'\nflavor='vllm'\nmodels=['*']\n";
    let cases = [
        ("[[access]]\ngroups=['a']\n", "access[0]", "missing field `actions`"),
        ("[[access]]\nactions=[]\n", "access[0].actions", "at least one"),
        (
            "[[access]]\nactions=['inference']\n[[access]]\nactions=['inference', 'infrence.chat']\n",
            "access[1].actions[1]",
            "unknown action",
        ),
        ("[[access]]\nactions=['inference']\nmodels=[]\n", "access[0].models", "at least one"),
        ("[[access]]\nactions=['inference']\nmodels=['llama-?b']\n", "access[0].models[0]", "'?'"),
        ("[[access]]\nactions=['inference']\nupstreams=['nope']\n", "access[0].upstreams[0]", "no upstream"),
        ("[[access]]\nactions=['inference']\nsource_ips=['10.0.0.0/33']\n", "access[0].source_ips[0]", "prefix length"),
        (
            "[[access]]\nactions=['inference']\nsource_ips=['10.0.0.0/8', 'intranet']\n",
            "access[0].source_ips[1]",
            "not an IP",
        ),
        ("[[access]]\nactions=['inference']\ndetected=['secret_*']\n", "access[0].detected[0]", "not an entity type"),
        ("[[access]]\nactions=['inference']\ndetected=['SECRET_AW*']\n", "access[0].detected[0]", "not an entity type"),
        ("[[access]]\nactions=['inference']\nmask='finance'\n", "access[0].mask", "no masking profile"),
        ("[[access]]\nactions=['inference']\neffect='deny'\nmask='default'\n", "access[0].mask", "deny rule"),
        (
            "[[access]]\nactions=['inference']\neffect='deny'\ndurability='strict'\n",
            "access[0].durability",
            "deny rule",
        ),
        ("[[access]]\nactions=['inference']\neffect='maybe'\n", "access[0].effect", "unknown variant"),
        ("[[access]]\nactions=['inference']\nrecording='some'\n", "access[0].recording", "unknown variant"),
        ("[[access]]\nactions=['inference']\ngroup=['a']\n", "access[0].group", "unknown field"),
        ("[[access]]\nactions=['inference']\ngroups=['']\n", "access[0].groups[0]", "non-empty"),
        (
            "[[access]]\nid='x'\nactions=['inference']\n[[access]]\nid='x'\nactions=['read']\n",
            "access[1].id",
            "duplicate",
        ),
        ("[[access]]\nid='access[3]'\nactions=['inference']\n", "access[0].id", "reserved"),
        ("[[access]]\nid='a#b'\nactions=['inference']\n", "access[0].id", "'#'"),
        (
            "[[access]]\nactions=['inference']\nrequire_approval={approvers=[]}\n",
            "access[0].require_approval.approvers",
            "at least one",
        ),
        (
            "[[access]]\nactions=['inference']\nrequire_approval={approvers=['s'], count=0}\n",
            "access[0].require_approval.count",
            "at least 1",
        ),
        (
            "[[access]]\nactions=['inference']\nrequire_approval={approvers=['s'], grant='window'}\n",
            "access[0].require_approval.ttl",
            "needs a ttl",
        ),
        (
            "[[access]]\nactions=['inference']\nrequire_approval={approvers=['s'], ttl='1h'}\n",
            "access[0].require_approval.ttl",
            "only to grant",
        ),
        (
            "[[access]]\nactions=['inference']\nrequire_approval={approvers=['s'], grant='window', ttl='soon'}\n",
            "access[0].require_approval.ttl",
            "invalid duration",
        ),
        (
            "[[access]]\nactions=['inference']\nrequire_approval={approvers=['s'], pending_ttl='0s'}\n",
            "access[0].require_approval.pending_ttl",
            "greater than 0",
        ),
        (
            "[[access]]\nactions=['inference']\nrequire_approval={approvers=['s'], mode='wait'}\n",
            "access[0].require_approval.mode",
            "unknown variant",
        ),
        (
            "[[access]]\nactions=['inference']\nrequire_approval={approvers=['s'], cnt=1}\n",
            "access[0].require_approval.cnt",
            "unknown field",
        ),
        ("[policy]\nfile=['a.cedar']\n", "policy.file", "unknown field"),
        ("[policy]\nfiles=['']\n", "policy.files[0]", "must not be empty"),
        ("[policy]\ngroup_parents={a=['b'], b=['c'], c=['a']}\n", "policy.group_parents.a", "a -> b -> c -> a"),
        ("[policy]\ngroup_parents={a=['a']}\n", "policy.group_parents.a", "a -> a"),
        ("[policy]\ngroup_parents={a=['']}\n", "policy.group_parents.a[0]", "non-empty"),
        ("[masking.profiles.default]\nentities=['EMAIL']\n", "masking.profiles.default", "built in"),
        ("[masking.profiles.p]\nentities=[]\n", "masking.profiles.p.entities", "at least one"),
        (
            "[masking.profiles.p]\nentities=['EMAIL', 'e-mail']\n",
            "masking.profiles.p.entities[1]",
            "not an entity type",
        ),
        ("[masking.profiles.p]\nentities=['EMAIL']\nmode='scramble'\n", "masking.profiles.p.mode", "unknown variant"),
        (
            "[masking.profiles.p]\nentities=['EMAIL']\ndirections=['sideways']\n",
            "masking.profiles.p.directions[0]",
            "unknown variant",
        ),
        ("[masking.profiles.p]\nentities=['EMAIL']\ndirections=[]\n", "masking.profiles.p.directions", "at least one"),
        ("[masking]\nprofile={}\n", "masking.profile", "unknown field"),
        ("[masking.custom.ids]\npatterns=['CUST-(\\d{6}']\n", "masking.custom.ids.patterns[0]", "not a valid regex"),
        ("[masking.custom.ids]\npatterns=['x', 'a*']\n", "masking.custom.ids.patterns[1]", "empty string"),
        ("[masking.custom.ids]\ncase_sensitive=true\n", "masking.custom.ids", "at least one"),
        ("[masking.custom.ids]\nwords=['']\n", "masking.custom.ids.words[0]", "must not be empty"),
        ("[masking.custom.email]\nwords=['x']\n", "masking.custom.email", "built-in"),
        ("[masking.custom.'a-b']\nwords=['x']\n", "masking.custom.a-b", "letters, digits"),
        ("[masking.custom.ids]\nword=['x']\n", "masking.custom.ids.word", "unknown field"),
    ];
    for (text, path, needle) in cases {
        let text = format!("{up}{text}");
        let e = Config::from_toml(&text).unwrap_err();
        assert_eq!(e.path, path, "for {text:?}: {e}");
        assert!(e.message.contains(needle), "for {text:?}: {e}");
    }
}

#[test]
fn group_parents_accept_diamonds() {
    let c = Config::from_toml("[policy]\ngroup_parents={a=['b', 'c'], b=['d'], c=['d'], d=[]}\n").unwrap();
    assert_eq!(c.policy.group_parents.len(), 4);
}

#[test]
fn cidrs_and_entity_patterns() {
    assert_eq!(parse_cidr("10.0.0.0/8").unwrap(), ("10.0.0.0".parse().unwrap(), 8));
    assert_eq!(parse_cidr("::1").unwrap(), ("::1".parse().unwrap(), 128));
    assert_eq!(parse_cidr("1.2.3.4").unwrap().1, 32);
    assert!(parse_cidr("1.2.3.4/+8").is_err());
    assert!(parse_cidr("1.2.3/8").is_err());
    assert!(is_entity_pattern("SECRET_*") && is_entity_pattern("*") && is_entity_pattern("EMAIL"));
    assert!(!is_entity_pattern("") && !is_entity_pattern("**") && !is_entity_pattern("Email"));
}

#[test]
fn the_table_comes_from_the_same_parse() {
    let (c, table) = Config::from_toml_with_table(EXAMPLE_CONFIG).unwrap();
    assert_eq!(c.upstreams[0].name, Config::from_toml(EXAMPLE_CONFIG).unwrap().upstreams[0].name);
    assert_eq!(table, Some(toml::from_str::<toml::Table>(EXAMPLE_CONFIG).unwrap()));
    // As written: no defaults filled in.
    let (_, table) = Config::from_toml_with_table("[server]\nidle_timeout = '5s'\n").unwrap();
    assert_eq!(table.unwrap().to_string(), "[server]\nidle_timeout = \"5s\"\n");
    // A u64 setting takes an integer beyond i64, which no TOML table holds.
    let (c, table) = Config::from_toml_with_table("[audit]\ncheckpoint_every = 18446744073709551615\n").unwrap();
    assert_eq!((c.audit.checkpoint_every, table), (u64::MAX, None));
    // Errors are from_toml's, word for word.
    for text in ["[server\n", "[audit]\ndurability = 5\n", "[server]\nlisen = 1\n", "[server]\nmax_request_bytes = 0\n"]
    {
        let want = Config::from_toml(text).unwrap_err();
        let got = Config::from_toml_with_table(text).unwrap_err();
        assert_eq!((got.path, got.message), (want.path, want.message), "{text}");
    }
    // And the key path they name, as written.
    let e = Config::from_toml_with_table("[server]\nlisen = 1\n").unwrap_err();
    assert_eq!(e.path, "server.lisen");
    assert!(e.message.contains("unknown field `lisen`"), "{}", e.message);
}
