use super::*;

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
