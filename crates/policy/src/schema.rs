//! The Cedar schema every policy is validated against (strict mode).

/// The Cedar schema (cedarschema syntax, no namespace). Principals are `User`s and
/// `ServiceAccount`s in `Group`s (groups nest); resources are `Model`s within an `Upstream`; every
/// classified action of SPEC section 3 is in its family's action group (`Action::"inference"`,
/// …), except `unknown`, which has none.
pub const SCHEMA: &str = r#"entity Group in [Group];
entity User in [Group];
entity ServiceAccount in [Group];
entity Upstream;
entity Model in [Upstream] {
  name: String,
  upstream: String,
};

type Ctx = {
  src_ip?: ipaddr,
  time: Long,
  hour: Long,
  weekday: Long,
  auth_method: String,
  stream: Bool,
  max_tokens?: Long,
  detected: Set<String>,
};

action "inference", "model", "adapter", "server", "data", "read";

action "inference.chat", "inference.completion", "inference.embedding", "inference.rerank", "inference.other"
  in ["inference"]
  appliesTo { principal: [User, ServiceAccount], resource: [Model], context: Ctx };
action "model.load", "model.unload", "model.pull", "model.push", "model.create", "model.copy", "model.delete"
  in ["model"]
  appliesTo { principal: [User, ServiceAccount], resource: [Model], context: Ctx };
action "adapter.load", "adapter.unload"
  in ["adapter"]
  appliesTo { principal: [User, ServiceAccount], resource: [Model], context: Ctx };
action "server.config"
  in ["server"]
  appliesTo { principal: [User, ServiceAccount], resource: [Model], context: Ctx };
action "data.upload", "data.delete", "data.batch", "data.finetune"
  in ["data"]
  appliesTo { principal: [User, ServiceAccount], resource: [Model], context: Ctx };
action "read.models", "read.other"
  in ["read"]
  appliesTo { principal: [User, ServiceAccount], resource: [Model], context: Ctx };
action "unknown"
  appliesTo { principal: [User, ServiceAccount], resource: [Model], context: Ctx };
"#;
