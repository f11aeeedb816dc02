//! Routing: which upstream takes a request (SPEC section 2, `[[upstreams]]`).
//!
//! Order: a path `prefix` claims the request outright; otherwise a named model goes to the first
//! upstream, in config order, that speaks the endpoint's API and whose globs match; a model-less
//! call goes to the `default` upstream, else to the first compatible upstream with a `*` glob.

use std::sync::Arc;

use protocols::{Endpoint, FlavorSet};

use crate::upstream::Upstream;

/// The routing table, built once from the config.
#[derive(Debug)]
pub struct Router {
    upstreams: Vec<Arc<Upstream>>,
}

impl Router {
    /// A router over upstreams in config order.
    pub fn new(upstreams: Vec<Arc<Upstream>>) -> Router {
        Router { upstreams }
    }

    /// All upstreams, in config order.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// The upstream whose prefix starts `path`, with the rest of the path (always starting with '/').
    pub fn by_prefix<'p>(&self, path: &'p str) -> Option<(&Arc<Upstream>, &'p str)> {
        self.upstreams.iter().find_map(|u| {
            let prefix = u.prefix.as_deref()?;
            let rest = path.strip_prefix(prefix)?;
            if rest.is_empty() {
                Some((u, "/"))
            } else if rest.starts_with('/') {
                Some((u, rest))
            } else {
                None
            }
        })
    }

    /// The upstream for a (model, endpoint) pair among the non-prefixed routes.
    pub fn by_model(&self, model: Option<&str>, endpoint: Option<&Endpoint>) -> Option<&Arc<Upstream>> {
        let flavors = endpoint.map_or(FlavorSet::ALL, |e| e.flavors);
        match model {
            Some(m) => self.upstreams.iter().find(|u| flavors.contains(u.flavor) && u.serves(m)),
            None => self
                .upstreams
                .iter()
                .find(|u| u.default)
                .or_else(|| self.upstreams.iter().find(|u| u.wildcard && flavors.contains(u.flavor))),
        }
    }
}

/// [`Router::by_model`] for any endpoint, from the config alone (no keys resolved): what
/// `modelgate policy check` uses offline, so it names the upstream the live gateway would.
pub fn upstream_for_config(config: &config::Config, model: Option<&str>) -> Option<String> {
    let ups = config.upstreams.iter();
    let found = match model {
        Some(m) => {
            ups.clone().find(|u| u.models.iter().any(|g| crate::upstream::glob_match(g.as_bytes(), m.as_bytes())))
        }
        None => ups.clone().find(|u| u.default).or_else(|| ups.clone().find(|u| u.models.iter().any(|g| g == "*"))),
    };
    found.map(|u| u.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::Config;

    fn router(toml: &str) -> Router {
        Router::new(crate::upstream::build_all(&Config::from_toml(toml).unwrap()).unwrap())
    }

    const CFG: &str = r#"
[[upstreams]]
name = "vllm"
url = "http://127.0.0.1:1"
flavor = "vllm"
models = ["llama-3-70b", "qwen*"]
[[upstreams]]
name = "ollama"
url = "http://127.0.0.1:2"
flavor = "ollama"
models = ["*"]
[[upstreams]]
name = "triton"
url = "http://127.0.0.1:3"
flavor = "triton"
prefix = "/triton"
[[upstreams]]
name = "files"
url = "http://127.0.0.1:4"
flavor = "openai"
models = ["gpt-*"]
default = true
"#;

    fn name(u: Option<&Arc<Upstream>>) -> &str {
        u.map_or("-", |u| &*u.name)
    }

    #[test]
    fn routes_by_model_flavor_prefix_and_default() {
        let r = router(CFG);
        let chat = protocols::lookup(&http::Method::POST, "/v1/chat/completions");
        let ollama_chat = protocols::lookup(&http::Method::POST, "/api/chat");
        let load_lora = protocols::lookup(&http::Method::POST, "/v1/load_lora_adapter");
        assert_eq!(name(r.by_model(Some("qwen2.5"), chat)), "vllm");
        assert_eq!(name(r.by_model(Some("llama-3-70b"), chat)), "vllm");
        // Ollama's API is not spoken by vLLM: the `*` upstream that speaks it takes the model.
        assert_eq!(name(r.by_model(Some("qwen2.5"), ollama_chat)), "ollama");
        assert_eq!(name(r.by_model(Some("mistral"), chat)), "ollama");
        assert_eq!(name(r.by_model(Some("my-lora"), load_lora)), "-");
        assert_eq!(name(r.by_model(None, chat)), "files");
        let (u, rest) = r.by_prefix("/triton/v2/models/resnet/infer").unwrap();
        assert_eq!((&*u.name, rest), ("triton", "/v2/models/resnet/infer"));
        assert!(r.by_prefix("/tritonx/v2").is_none());
        assert_eq!(r.by_prefix("/triton").unwrap().1, "/");
    }

    #[test]
    fn without_default_a_wildcard_takes_model_less_calls() {
        let r = router(
            "[[upstreams]]\nname='a'\nurl='http://h:1'\nflavor='vllm'\nmodels=['x']\n[[upstreams]]\nname='b'\nurl='http://h:2'\nflavor='vllm'\nmodels=['*']\n",
        );
        assert_eq!(name(r.by_model(None, protocols::lookup(&http::Method::POST, "/v1/files"))), "b");
        let r = router("[[upstreams]]\nname='a'\nurl='http://h:1'\nflavor='vllm'\nmodels=['x']\n");
        assert_eq!(name(r.by_model(None, None)), "-");
        assert_eq!(name(r.by_model(Some("y"), None)), "-");
    }
}
