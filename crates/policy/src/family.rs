//! Action families: the slicing key and the default-deny rule for sensitive families.

use protocols::Action;

/// An action family (the first word of an action's name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Family {
    Inference,
    Model,
    Adapter,
    Server,
    Data,
    Read,
    Unknown,
}

/// Number of families.
pub(crate) const FAMILIES: usize = 7;

impl Family {
    /// Every family, in index order.
    pub(crate) const ALL: [Family; FAMILIES] = [
        Family::Inference,
        Family::Model,
        Family::Adapter,
        Family::Server,
        Family::Data,
        Family::Read,
        Family::Unknown,
    ];

    /// Families a `permit` with an unconstrained action scope applies to.
    pub(crate) const NON_SENSITIVE: [Family; 2] = [Family::Inference, Family::Read];

    /// The family's name (also its Cedar action group's id, except `unknown`, which has no group).
    pub(crate) fn name(self) -> &'static str {
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

    /// Index into per-family arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Admin, data and unknown actions: only policies that name them (or their family) allow them.
    pub(crate) fn is_sensitive(self) -> bool {
        !Family::NON_SENSITIVE.contains(&self)
    }

    /// The family of an action.
    pub(crate) fn of(action: Action) -> Family {
        Family::from_name(action.family()).unwrap_or(Family::Unknown)
    }

    /// The family of a family name (`inference`) or an action name (`inference.chat`, `unknown`).
    pub(crate) fn from_name(name: &str) -> Option<Family> {
        let first = name.split('.').next().unwrap_or(name);
        let f = Family::ALL.into_iter().find(|f| f.name() == first)?;
        (name == first || Action::from_name(name).is_some()).then_some(f)
    }
}

/// True when an `[[access]]` action name (family or action) is in a sensitive family.
pub(crate) fn is_sensitive_name(name: &str) -> bool {
    Family::from_name(name).is_some_and(Family::is_sensitive)
}
