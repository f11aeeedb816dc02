//! Upstream server flavors and flavor sets.

/// Upstream server flavors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// A plain OpenAI-compatible server.
    OpenAi = 0,
    /// vLLM (OpenAI-compatible plus vLLM extensions).
    Vllm = 1,
    /// Ollama.
    Ollama = 2,
    /// llama.cpp server.
    LlamaCpp = 3,
    /// Hugging Face Text Generation Inference.
    Tgi = 4,
    /// NVIDIA Triton / KServe v2.
    Triton = 5,
}

impl Flavor {
    /// Every flavor, in declaration order.
    pub const ALL: [Flavor; 6] =
        [Flavor::OpenAi, Flavor::Vllm, Flavor::Ollama, Flavor::LlamaCpp, Flavor::Tgi, Flavor::Triton];

    /// Parses a config name (`openai`, `vllm`, `ollama`, `llamacpp`, `tgi`, `triton`).
    pub fn from_name(s: &str) -> Option<Flavor> {
        Flavor::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The config name of this flavor.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::OpenAi => "openai",
            Flavor::Vllm => "vllm",
            Flavor::Ollama => "ollama",
            Flavor::LlamaCpp => "llamacpp",
            Flavor::Tgi => "tgi",
            Flavor::Triton => "triton",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A small bitset of flavors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlavorSet(pub u8);

impl FlavorSet {
    /// Every flavor.
    pub const ALL: FlavorSet = FlavorSet::of(&Flavor::ALL);
    /// No flavor.
    pub const EMPTY: FlavorSet = FlavorSet(0);

    /// The set holding exactly `flavors`.
    pub const fn of(flavors: &[Flavor]) -> FlavorSet {
        let mut bits = 0u8;
        let mut i = 0;
        while i < flavors.len() {
            bits |= flavors[i].bit();
            i += 1;
        }
        FlavorSet(bits)
    }

    /// Whether `f` is in the set.
    pub fn contains(self, f: Flavor) -> bool {
        self.0 & f.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 & FlavorSet::ALL.0 == 0
    }

    /// The flavors in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Flavor> {
        Flavor::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let names = ["openai", "vllm", "ollama", "llamacpp", "tgi", "triton"];
        for (f, n) in Flavor::ALL.iter().zip(names) {
            assert_eq!(f.name(), n);
            assert_eq!(Flavor::from_name(n), Some(*f));
        }
        assert_eq!(Flavor::from_name("OpenAI"), None);
        assert_eq!(Flavor::from_name(""), None);
        assert_eq!(Flavor::from_name("llama.cpp"), None);
    }

    #[test]
    fn sets() {
        let s = FlavorSet::of(&[Flavor::Vllm, Flavor::Tgi]);
        assert!(s.contains(Flavor::Vllm));
        assert!(s.contains(Flavor::Tgi));
        assert!(!s.contains(Flavor::OpenAi));
        assert!(!s.contains(Flavor::Triton));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![Flavor::Vllm, Flavor::Tgi]);
        assert!(Flavor::ALL.iter().all(|f| FlavorSet::ALL.contains(*f)));
        assert_eq!(FlavorSet::ALL.0, 0b11_1111);
        assert!(FlavorSet::EMPTY.is_empty());
        assert!(!s.is_empty());
    }
}
