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

    /// The family (the name's first word).
    pub fn family(self) -> Family {
        match self {
            Action::InferenceChat
            | Action::InferenceCompletion
            | Action::InferenceEmbedding
            | Action::InferenceRerank
            | Action::InferenceOther => Family::Inference,
            Action::ModelLoad
            | Action::ModelUnload
            | Action::ModelPull
            | Action::ModelPush
            | Action::ModelCreate
            | Action::ModelCopy
            | Action::ModelDelete => Family::Model,
            Action::AdapterLoad | Action::AdapterUnload => Family::Adapter,
            Action::ServerConfig => Family::Server,
            Action::DataUpload | Action::DataDelete | Action::DataBatch | Action::DataFinetune => Family::Data,
            Action::ReadModels | Action::ReadOther => Family::Read,
            Action::Unknown => Family::Unknown,
        }
    }

    /// Parses a dotted action name (exact, as produced by [`Action::as_str`]).
    pub fn from_name(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// An action family: the first word of an action's name, what policies name as a group
/// (`inference`), and the first word of the audit event types (`inference.request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `inference.*`
    Inference,
    /// `model.*`
    Model,
    /// `adapter.*`
    Adapter,
    /// `server.*`
    Server,
    /// `data.*`
    Data,
    /// `read.*`
    Read,
    /// `unknown`
    Unknown,
}

impl Family {
    /// Every family, in declaration order (`Family::X as usize` indexes it).
    pub const ALL: [Family; 7] = [
        Family::Inference,
        Family::Model,
        Family::Adapter,
        Family::Server,
        Family::Data,
        Family::Read,
        Family::Unknown,
    ];

    /// The family's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Inference => "inference",
            Family::Model => "model",
            Family::Adapter => "adapter",
            Family::Server => "server",
            Family::Data => "data",
            Family::Read => "read",
            Family::Unknown => "unknown",
        }
    }

    /// The family of any dotted name by its first word (`inference.chat`, `model.request`),
    /// `Unknown` when the word names none.
    pub fn of(name: &str) -> Family {
        let first = name.split('.').next().unwrap_or(name);
        Family::ALL.into_iter().find(|f| f.as_str() == first).unwrap_or(Family::Unknown)
    }

    /// A family name (`inference`) or an action name (`inference.chat`, `unknown`), strictly.
    pub fn from_name(name: &str) -> Option<Family> {
        let first = name.split('.').next().unwrap_or(name);
        let f = Family::ALL.into_iter().find(|f| f.as_str() == first)?;
        (name == first || Action::from_name(name).is_some()).then_some(f)
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
    fn all_lists_in_declaration_order() {
        // Per-action and per-family tables elsewhere index by `as usize`.
        for (i, a) in Action::ALL.into_iter().enumerate() {
            assert_eq!(a as usize, i, "{a}");
        }
        for (i, f) in Family::ALL.into_iter().enumerate() {
            assert_eq!(f as usize, i, "{f}");
        }
    }

    #[test]
    fn names_round_trip_and_families() {
        let mut seen = std::collections::HashSet::new();
        for a in Action::ALL {
            let name = a.as_str();
            assert!(seen.insert(name), "duplicate name {name}");
            assert_eq!(Action::from_name(name), Some(a));
            let expected_family = name.split('.').next().unwrap_or_default();
            assert_eq!(a.family().as_str(), expected_family, "{name}");
            assert_eq!(Family::of(name), a.family());
            assert_eq!(Family::from_name(name), Some(a.family()));
            assert_eq!(a.to_string(), name);
        }
        assert_eq!(seen.len(), 22);
        assert_eq!(Action::from_name("inference"), None);
        assert_eq!(Action::from_name("Inference.chat"), None);
        assert_eq!(Action::InferenceChat.as_str(), "inference.chat");
        assert_eq!(Action::DataFinetune.as_str(), "data.finetune");
        assert_eq!(Action::ServerConfig.family(), Family::Server);
        assert_eq!(Action::Unknown.family(), Family::Unknown);
        assert_eq!(Family::from_name("model"), Some(Family::Model));
        assert_eq!(Family::from_name("model.nothing"), None);
        assert_eq!(Family::of("nothing.request"), Family::Unknown);
    }
}
