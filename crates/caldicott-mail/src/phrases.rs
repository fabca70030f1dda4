//! Weighted phrase lists matched case-insensitively at word boundaries.

use aho_corasick::AhoCorasick;

/// A fixed list of phrases with weights.
pub(crate) struct PhraseList {
    ac: AhoCorasick,
    list: &'static [(&'static str, f64)],
}

impl PhraseList {
    pub(crate) fn new(list: &'static [(&'static str, f64)]) -> Self {
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(list.iter().map(|(p, _)| p))
            // Fixed, small literal lists cannot fail to build; an empty matcher is the fallback.
            .or_else(|_| AhoCorasick::new(Vec::<&str>::new()))
            .unwrap_or_else(|_| unreachable!());
        Self { ac, list }
    }

    /// The distinct phrases found in any of `hays` as whole words (`cialis` does not match
    /// inside `socialist`), in list order.
    pub(crate) fn hits(&self, hays: &[&str]) -> Vec<(&'static str, f64)> {
        let mut seen = vec![false; self.list.len()];
        for hay in hays {
            for m in self.ac.find_overlapping_iter(*hay) {
                let (phrase, _) = self.list[m.pattern().as_usize()];
                let starts_word = phrase.starts_with(|c: char| c.is_alphanumeric());
                let ends_word = phrase.ends_with(|c: char| c.is_alphanumeric());
                let before = hay[..m.start()].chars().next_back();
                let after = hay[m.end()..].chars().next();
                if (starts_word && before.is_some_and(char::is_alphanumeric))
                    || (ends_word && after.is_some_and(char::is_alphanumeric))
                {
                    continue;
                }
                seen[m.pattern().as_usize()] = true;
            }
        }
        self.list
            .iter()
            .zip(seen)
            .filter(|(_, s)| *s)
            .map(|(p, _)| *p)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_only() {
        static L: &[(&str, f64)] = &[
            ("cialis", 2.0),
            ("click here", 0.5),
            ("$$$", 1.0),
            ("earn $", 1.5),
        ];
        let p = PhraseList::new(L);
        assert_eq!(p.hits(&["a socialist party"]), vec![]);
        assert_eq!(
            p.hits(&["Buy CIALIS now", "CLICK HERE!"]),
            vec![("cialis", 2.0), ("click here", 0.5)]
        );
        assert_eq!(
            p.hits(&["make $$$$ and earn $500"]),
            vec![("$$$", 1.0), ("earn $", 1.5)]
        );
    }
}
