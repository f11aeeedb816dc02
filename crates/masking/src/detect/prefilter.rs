//! The trigger substrings that open a secret candidate, found with one Aho-Corasick automaton.
//!
//! Every trigger is at least three bytes long, so the automaton runs its vectorised (Teddy)
//! prefilter with three-byte fingerprints; `@` (email) is left to `memchr`, since a one-byte
//! pattern would degrade the fingerprints to single bytes.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, Input, MatchKind};

/// Which detector a trigger opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Trigger {
    Aws,
    GithubClassic,
    GithubFineGrained,
    Gitlab,
    Slack,
    SkKey,
    Jwt,
    PemBegin,
    /// A lowercase street type (`rue`, `boulevard`, …) that may open an address.
    Street,
}

/// Trigger substrings, each with its detector. The trigger is the start of the value.
pub(super) const TRIGGERS: &[(&str, Trigger)] = &[
    ("AKIA", Trigger::Aws),
    ("ASIA", Trigger::Aws),
    ("ghp_", Trigger::GithubClassic),
    ("gho_", Trigger::GithubClassic),
    ("ghu_", Trigger::GithubClassic),
    ("ghs_", Trigger::GithubClassic),
    ("ghr_", Trigger::GithubClassic),
    ("github_pat_", Trigger::GithubFineGrained),
    ("glpat-", Trigger::Gitlab),
    ("xoxb-", Trigger::Slack),
    ("xoxa-", Trigger::Slack),
    ("xoxp-", Trigger::Slack),
    ("xoxr-", Trigger::Slack),
    ("xoxs-", Trigger::Slack),
    ("sk-", Trigger::SkKey),
    ("eyJ", Trigger::Jwt),
    ("-----BEGIN ", Trigger::PemBegin),
    ("rue ", Trigger::Street),
    ("boulevard ", Trigger::Street),
    ("chemin ", Trigger::Street),
    ("avenue ", Trigger::Street),
    ("allée ", Trigger::Street),
    ("impasse ", Trigger::Street),
    ("quai ", Trigger::Street),
];

/// The trigger finder.
pub(super) enum Triggers {
    /// The automaton.
    Automaton(AhoCorasick),
    /// A byte-by-byte search, used only if the automaton could not be built (it always can for
    /// these patterns, but detection must not silently stop if it ever could not).
    Naive,
}

static TRIGGER_FINDER: LazyLock<Triggers> = LazyLock::new(|| {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostFirst)
        .build(TRIGGERS.iter().map(|(p, _)| p))
        .map_or(Triggers::Naive, Triggers::Automaton)
});

/// The process-wide trigger finder.
pub(super) fn get() -> &'static Triggers {
    &TRIGGER_FINDER
}

impl Triggers {
    /// The first trigger starting at or after `from`: its offset and detector.
    pub(super) fn find(&self, body: &[u8], from: usize) -> Option<(usize, Trigger)> {
        if from >= body.len() {
            return None;
        }
        match self {
            Triggers::Automaton(ac) => {
                let m = ac.find(Input::new(body).range(from..))?;
                let (_, trigger) = TRIGGERS.get(m.pattern().as_usize())?;
                Some((m.start(), *trigger))
            }
            Triggers::Naive => (from..body.len()).find_map(|i| {
                let rest = body.get(i..)?;
                TRIGGERS.iter().find(|(p, _)| rest.starts_with(p.as_bytes())).map(|(_, t)| (i, *t))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automaton_builds_and_agrees_with_the_naive_search() {
        assert!(matches!(get(), Triggers::Automaton(_)));
        let body = b"x AKIA y ghp_ z github_pat_ glpat- xoxs- sk- eyJ -----BEGIN ASIA";
        let mut from = 0;
        let mut seen = Vec::new();
        while let Some((at, t)) = get().find(body, from) {
            assert_eq!(Triggers::Naive.find(body, from), Some((at, t)));
            seen.push(t);
            from = at + 1;
        }
        assert_eq!(Triggers::Naive.find(body, from), None);
        assert_eq!(seen.len(), 9);
        assert_eq!(get().find(b"12 rue Thomas", 0), Some((3, Trigger::Street)));
    }

    #[test]
    fn triggers_are_at_least_three_bytes() {
        assert!(TRIGGERS.iter().all(|(p, _)| p.len() >= 3));
    }
}
