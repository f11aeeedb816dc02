//! Action families in policy: the slicing key (`protocols::Family`, indexed by `as usize`) and
//! the default-deny rule for sensitive families.

pub(crate) use protocols::Family;

/// Families a `permit` with an unconstrained action scope applies to.
pub(crate) const NON_SENSITIVE: [Family; 2] = [Family::Inference, Family::Read];

/// Admin, data and unknown actions: only policies that name them (or their family) allow them.
pub(crate) fn is_sensitive(f: Family) -> bool {
    !NON_SENSITIVE.contains(&f)
}

/// True when an `[[access]]` action name (family or action) is in a sensitive family.
pub(crate) fn is_sensitive_name(name: &str) -> bool {
    Family::from_name(name).is_some_and(is_sensitive)
}
