//! The classified actions of SPEC section 3.

/// The classified actions of SPEC section 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `inference.chat`
    InferenceChat,
    /// `inference.completion`
    InferenceCompletion,
    /// `inference.embedding`
    InferenceEmbedding,
    /// `inference.rerank`
    InferenceRerank,
    /// `inference.other`
    InferenceOther,
    /// `model.load`
    ModelLoad,
    /// `model.unload`
    ModelUnload,
    /// `model.pull`
    ModelPull,
    /// `model.push`
    ModelPush,
    /// `model.create`
    ModelCreate,
    /// `model.copy`
    ModelCopy,
    /// `model.delete`
    ModelDelete,
    /// `adapter.load`
    AdapterLoad,
    /// `adapter.unload`
    AdapterUnload,
    /// `server.config`
    ServerConfig,
    /// `data.upload`
    DataUpload,
    /// `data.delete`
    DataDelete,
    /// `data.batch`
    DataBatch,
    /// `data.finetune`
    DataFinetune,
    /// `read.models`
    ReadModels,
    /// `read.other`
    ReadOther,
    /// `unknown`
    Unknown,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 22] = [
        Action::InferenceChat,
        Action::InferenceCompletion,
        Action::InferenceEmbedding,
        Action::InferenceRerank,
        Action::InferenceOther,
        Action::ModelLoad,
        Action::ModelUnload,
        Action::ModelPull,
        Action::ModelPush,
        Action::ModelCreate,
        Action::ModelCopy,
        Action::ModelDelete,
        Action::AdapterLoad,
        Action::AdapterUnload,
        Action::ServerConfig,
        Action::DataUpload,
        Action::DataDelete,
        Action::DataBatch,
        Action::DataFinetune,
        Action::ReadModels,
        Action::ReadOther,
        Action::Unknown,
    ];

    /// The dotted name, e.g. `inference.chat`, or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::InferenceChat => "inference.chat",
            Action::InferenceCompletion => "inference.completion",
            Action::InferenceEmbedding => "inference.embedding",
            Action::InferenceRerank => "inference.rerank",
            Action::InferenceOther => "inference.other",
            Action::ModelLoad => "model.load",
            Action::ModelUnload => "model.unload",
            Action::ModelPull => "model.pull",
            Action::ModelPush => "model.push",
            Action::ModelCreate => "model.create",
            Action::ModelCopy => "model.copy",
            Action::ModelDelete => "model.delete",
            Action::AdapterLoad => "adapter.load",
            Action::AdapterUnload => "adapter.unload",
            Action::ServerConfig => "server.config",
            Action::DataUpload => "data.upload",
            Action::DataDelete => "data.delete",
            Action::DataBatch => "data.batch",
            Action::DataFinetune => "data.finetune",
            Action::ReadModels => "read.models",
            Action::ReadOther => "read.other",
            Action::Unknown => "unknown",
        }
    }

    /// The family (the name's first word): `inference`, `model`, `adapter`, `server`, `data`, `read`, `unknown`.
    pub fn family(self) -> &'static str {
        match self {
            Action::InferenceChat
            | Action::InferenceCompletion
            | Action::InferenceEmbedding
            | Action::InferenceRerank
            | Action::InferenceOther => "inference",
            Action::ModelLoad
            | Action::ModelUnload
            | Action::ModelPull
            | Action::ModelPush
            | Action::ModelCreate
            | Action::ModelCopy
            | Action::ModelDelete => "model",
            Action::AdapterLoad | Action::AdapterUnload => "adapter",
            Action::ServerConfig => "server",
            Action::DataUpload | Action::DataDelete | Action::DataBatch | Action::DataFinetune => "data",
            Action::ReadModels | Action::ReadOther => "read",
            Action::Unknown => "unknown",
        }
    }

    /// Parses a dotted action name (exact, as produced by [`Action::as_str`]).
    pub fn from_name(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_families() {
        let mut seen = std::collections::HashSet::new();
        for a in Action::ALL {
            let name = a.as_str();
            assert!(seen.insert(name), "duplicate name {name}");
            assert_eq!(Action::from_name(name), Some(a));
            let expected_family = name.split('.').next().unwrap_or_default();
            assert_eq!(a.family(), expected_family, "{name}");
            assert_eq!(a.to_string(), name);
        }
        assert_eq!(seen.len(), 22);
        assert_eq!(Action::from_name("inference"), None);
        assert_eq!(Action::from_name("Inference.chat"), None);
        assert_eq!(Action::InferenceChat.as_str(), "inference.chat");
        assert_eq!(Action::DataFinetune.as_str(), "data.finetune");
        assert_eq!(Action::ServerConfig.family(), "server");
        assert_eq!(Action::Unknown.family(), "unknown");
    }
}
