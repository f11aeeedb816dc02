//! The commented example written by `modelgate init`.

/// A commented example configuration; it parses as written.
pub const EXAMPLE_CONFIG: &str = r#"# modelgate configuration. Every key below is optional; the values shown are the defaults
# unless marked "example". Reference: docs/CONFIG.md.

[server]
listen = "127.0.0.1:8080"          # data path: HTTP/1.1 and h2c (TLS when [server.tls] is set)
admin_listen = "127.0.0.1:8081"    # /healthz, /readyz, /metrics (keep it off the public network)
data_dir = "./modelgate-data"      # created on start
# public_url = "https://gateway.example.com"   # base of links the gateway hands out
max_request_bytes = "16MiB"        # larger request bodies get 413
max_upload_bytes = "64GiB"         # streamed uploads (files, Ollama blobs), relayed unbuffered
max_header_bytes = "96KiB"         # request line + headers
connect_timeout = "5s"             # TCP connect to an upstream (502 upstream_unavailable)
first_byte_timeout = "5m"          # until the upstream's first response byte (504 upstream_timeout)
idle_timeout = "2m"                # longest silence between two streamed chunks
request_timeout = "1h"             # a whole exchange, start to last byte
shutdown_grace = "30s"             # on SIGTERM/SIGINT, how long running streams may finish

# [server.tls]                     # example: serve the data path over TLS (ALPN h2 + http/1.1)
# cert_file = "/etc/modelgate/tls/cert.pem"
# key_file = "/etc/modelgate/tls/key.pem"

# Upstreams are tried in order: the first whose `models` globs match the request's model wins.
# Model-less calls (files, batches, TGI /generate) go to the upstream whose `prefix` starts the
# path (the prefix is removed), else to the one with `default = true`, else to one with "*".
[[upstreams]]
name = "ollama"
url = "http://127.0.0.1:11434"
flavor = "ollama"                  # openai | vllm | ollama | llamacpp | tgi | triton
models = ["*"]
default = true

# [[upstreams]]                    # example: a vLLM server with an API key
# name = "vllm-prod"
# url = "http://10.0.0.5:8000"
# flavor = "vllm"
# models = ["llama-3-70b", "qwen*"]
# api_key_env = "VLLM_API_KEY"     # or api_key_file = "/run/secrets/vllm"; never inline
# stream_usage = true              # ask for usage on streams; the extra chunk is dropped if unasked
# durability = "balanced"          # overrides [audit] durability for this upstream
# recording = "metadata"           # overrides [audit] recording for this upstream

# [[upstreams]]                    # example: Triton reached under a path prefix
# name = "triton"
# url = "http://10.0.0.7:8000"
# flavor = "triton"
# prefix = "/triton"

# The audit trail (SPEC sections 4 and 5; DURABILITY.md). Every call is recorded in
# data_dir/audit.db, hash-chained and signed; `modelgate audit verify` checks it.
[audit]
durability = "strict"              # strict: request record fsync'd before forwarding, completion
                                   #   before the final response byte | balanced: no response byte
                                   #   before the request record is fsync'd | async: best effort
recording = "full"                 # full: request and response bodies stored (compressed) | metadata
max_recorded_bytes = "1MiB"        # per body and direction; longer bodies are cut and marked
queue_limit = 65536                # records waiting for the writer before callers wait (async: drops)
checkpoint_every = 10000           # a signed checkpoint after this many events...
checkpoint_interval = "30s"        # ...or this long, whichever comes first
search_index = "background"        # background: index events for search as they arrive |
                                   #   on_demand: only when a search needs them (no CPU under load)

# Who may do what (SPEC section 2). Each [[access]] rule compiles to Cedar policies; without any
# rule and without [policy] files, the first rule below is built in. A call is allowed when a rule
# allows it and no rule denies it; when several rules allow, their obligations merge (the
# strictest wins, masked entity types add up). Admin and data actions (model.*, adapter.*,
# server.*, data.*) and unknown calls are denied unless a rule names them or their family:
# actions = ["*"] covers only inference and read.
[[access]]
groups = ["users"]                 # caller groups (OIDC groups or key groups); or subjects = [...]
actions = ["inference"]            # actions (inference.chat), families (inference, model, ...) or "*"
models = ["*"]                     # model globs; "*" also matches calls that name no model

[[access]]                         # example: the ML team's chats with llama models are masked
id = "ml-llama"                    # reported in decisions and audit events (default "access[N]")
groups = ["ml-team"]
actions = ["inference", "read"]
models = ["llama-*"]
mask = "default"                   # masking profile: "default" or one of [masking.profiles]
# upstreams = ["vllm-prod"]        # only calls routed to these upstreams
# source_ips = ["10.0.0.0/8"]      # only callers from these networks
# recording = "metadata"           # keep no bodies for these calls (the merge keeps the least data)
# durability = "strict"            # the merge keeps the strictest

[[access]]                         # example: contractors need an approval, valid for an hour
groups = ["contractors"]
actions = ["inference"]
models = ["*"]
require_approval = { approvers = ["security"], count = 1, grant = "window", ttl = "1h" }
# pending_ttl = "1h", mode = "hold" (or "ticket"), hold_timeout = "5m" are the other keys

[[access]]                         # example: no call with a secret in the prompt goes out
id = "no-secrets"
actions = ["*", "model", "adapter", "server", "data", "unknown"]
detected = ["SECRET_*"]            # entity types found by detection (globs: PREFIX_*, *)
effect = "deny"                    # allow (the default) | deny; deny wins over every allow

# [policy]                         # example: raw Cedar beside the rules, and group inheritance
# files = ["policies/extra.cedar"] # relative to this file's directory
# group_parents = { ml-team = ["users"] }   # ml-team members are also users

[masking.profiles.finance]         # example: a custom profile ("default" is built in)
entities = ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "SECRET_*"]
mode = "tokenize"                  # redact | pseudonymize | tokenize
directions = ["request", "response", "recording"]
"#;
