//! Routing: which upstream takes a request (SPEC section 2, `[[upstreams]]`).
//!
//! Order: a path `prefix` claims the request outright; otherwise a named model goes to the first
//! upstream, in config order, that speaks the endpoint's API and whose globs match; a model-less
//! call goes to the `default` upstream, else to the first compatible upstream with a `*` glob.

use std::sync::Arc;

use protocols::{Endpoint, Flavor, FlavorSet};

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

    /// The upstream for a (model, endpoint) pair, by model globs (or `default`), in config order.
    pub fn by_model(&self, model: Option<&str>, endpoint: Option<&Endpoint>) -> Option<&Arc<Upstream>> {
        select(&self.upstreams, model, endpoint.map_or(FlavorSet::ALL, |e| e.flavors))
    }
}

/// [`Router::by_model`] for any endpoint, from the config alone (no keys resolved): what
/// `modelgate policy check` uses offline, so it names the upstream the live gateway would.
pub fn upstream_for_config(config: &config::Config, model: Option<&str>) -> Option<String> {
    select(&config.upstreams, model, FlavorSet::ALL).map(|u| u.name.clone())
}

/// What routing reads of an upstream, resolved ([`Upstream`]) or as configured.
trait Route {
    /// The wire flavor.
    fn flavor(&self) -> Flavor;
    /// Whether one of its model globs matches `model`.
    fn serves(&self, model: &str) -> bool;
    /// Whether it takes model-less calls (`default = true`).
    fn is_default(&self) -> bool;
    /// Whether one of its globs is `*`.
    fn is_wildcard(&self) -> bool;
}

impl Route for Arc<Upstream> {
    fn flavor(&self) -> Flavor {
        self.flavor
    }
    fn serves(&self, model: &str) -> bool {
        Upstream::serves(self, model)
    }
    fn is_default(&self) -> bool {
        self.default
    }
    fn is_wildcard(&self) -> bool {
        self.wildcard
    }
}

impl Route for config::UpstreamConfig {
    fn flavor(&self) -> Flavor {
        self.flavor
    }
    fn serves(&self, model: &str) -> bool {
        self.models.iter().any(|g| protocols::glob::matches_with_question(g, model))
    }
    fn is_default(&self) -> bool {
        self.default
    }
    fn is_wildcard(&self) -> bool {
        self.models.iter().any(|g| g == "*")
    }
}

/// The one routing rule, in config order: a named model goes to the first upstream that speaks
/// one of `flavors` and serves it; a model-less call to the `default` upstream, else to the first
/// `*` upstream that speaks one of `flavors`.
fn select<'a, U: Route>(upstreams: &'a [U], model: Option<&str>, flavors: FlavorSet) -> Option<&'a U> {
    match model {
        Some(m) => upstreams.iter().find(|u| flavors.contains(u.flavor()) && u.serves(m)),
        None => upstreams
            .iter()
            .find(|u| u.is_default())
            .or_else(|| upstreams.iter().find(|u| u.is_wildcard() && flavors.contains(u.flavor()))),
    }
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
    fn the_config_alone_routes_like_the_router() {
        let config = Config::from_toml(CFG).unwrap();
        let r = router(CFG);
        for model in [Some("qwen2.5"), Some("llama-3-70b"), Some("mistral"), Some("gpt-4o"), None] {
            assert_eq!(upstream_for_config(&config, model).as_deref(), r.by_model(model, None).map(|u| &*u.name));
        }
        let toml = "[[upstreams]]\nname='a'\nurl='http://h:1'\nflavor='vllm'\nmodels=['x']\n[[upstreams]]\nname='b'\nurl='http://h:2'\nflavor='tgi'\nmodels=['*']\n";
        let config = Config::from_toml(toml).unwrap();
        assert_eq!(upstream_for_config(&config, None).as_deref(), Some("b"));
        assert_eq!(upstream_for_config(&config, Some("x")).as_deref(), Some("a"));
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
