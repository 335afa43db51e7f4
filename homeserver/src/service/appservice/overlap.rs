//! Whether two namespace regexes can match the same ID.
//!
//! Two application services claiming the same users exclusively would each be refused the other's
//! users at random, so start-up checks every pair. Comparing pattern strings misses `@irc_.*` versus
//! `@irc_freenode_.*`; instead both patterns become DFAs and a breadth-first search over their
//! product looks for one string both accept, which it then shows in the error.

use std::collections::{HashSet, VecDeque};

use regex_automata::{
    Anchored, Input, MatchKind,
    dfa::{Automaton, StartKind, dense},
    util::primitives::StateID,
};

/// Most product states explored before giving up.
const MAX_STATES: usize = 200_000;
/// Largest DFA built for one pattern, in bytes.
const MAX_DFA_BYTES: usize = 8 << 20;

/// The answer of [`overlap`].
#[derive(Debug, PartialEq, Eq)]
pub enum Overlap {
    /// No ID matches both.
    Disjoint,
    /// This ID matches both.
    Overlapping(String),
    /// The patterns are too large to decide.
    Unknown,
}

/// Whether some ID matches both patterns, with matching anchored at the start of the ID and open
/// at its end (as namespaces are matched).
pub fn overlap(a: &str, b: &str) -> Overlap {
    let (Some(a), Some(b)) = (build(a), build(b)) else { return Overlap::Unknown };
    let (Some(start_a), Some(start_b)) = (start(&a), start(&b)) else { return Overlap::Unknown };
    // `None` stands for "this pattern already matched a prefix": it then matches every extension.
    type Node = (Option<StateID>, Option<StateID>);
    let mut seen: HashSet<Node> = HashSet::new();
    let mut queue: VecDeque<(Node, Vec<u8>)> = VecDeque::new();
    queue.push_back(((Some(start_a), Some(start_b)), Vec::new()));
    while let Some(((sa, sb), path)) = queue.pop_front() {
        let sa = sa.filter(|s| !matches_here(&a, *s));
        let sb = sb.filter(|s| !matches_here(&b, *s));
        if sa.is_none() && sb.is_none() {
            return Overlap::Overlapping(String::from_utf8_lossy(&path).into_owned());
        }
        if !seen.insert((sa, sb)) {
            continue;
        }
        if seen.len() > MAX_STATES {
            return Overlap::Unknown;
        }
        for byte in 0..=u8::MAX {
            let (Some(na), Some(nb)) = (step(&a, sa, byte), step(&b, sb, byte)) else { continue };
            let mut next = path.clone();
            next.push(byte);
            queue.push_back(((na, nb), next));
        }
    }
    Overlap::Disjoint
}

fn build(pattern: &str) -> Option<dense::DFA<Vec<u32>>> {
    dense::Builder::new()
        .configure(
            dense::Config::new()
                .match_kind(MatchKind::All)
                .start_kind(StartKind::Anchored)
                .dfa_size_limit(Some(MAX_DFA_BYTES))
                .determinize_size_limit(Some(MAX_DFA_BYTES)),
        )
        .build(pattern)
        .ok()
}

fn start(dfa: &dense::DFA<Vec<u32>>) -> Option<StateID> {
    dfa.start_state_forward(&Input::new("").anchored(Anchored::Yes)).ok()
}

/// Whether the text read so far is a match (the DFA reports matches one byte late, or at the end).
fn matches_here(dfa: &dense::DFA<Vec<u32>>, state: StateID) -> bool {
    dfa.is_match_state(state) || dfa.is_match_state(dfa.next_eoi_state(state))
}

/// The next product component: `Some(None)` once matched, `None` when the pattern can no longer
/// match.
fn step(dfa: &dense::DFA<Vec<u32>>, state: Option<StateID>, byte: u8) -> Option<Option<StateID>> {
    let Some(state) = state else { return Some(None) };
    let next = dfa.next_state(state, byte);
    if dfa.is_dead_state(next) || dfa.is_quit_state(next) {
        return None;
    }
    Some(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_prefixes_overlap_with_an_example() {
        let Overlap::Overlapping(example) = overlap("@irc_.*", "@irc_libera_.*:example\\.org")
        else {
            panic!("should overlap")
        };
        assert!(example.starts_with("@irc_libera_"), "{example}");
    }

    #[test]
    fn distinct_prefixes_are_disjoint() {
        assert_eq!(overlap("@irc_.*", "@slack_.*"), Overlap::Disjoint);
        assert_eq!(overlap("@a[0-9]+:x", "@a[a-z]+:x"), Overlap::Disjoint);
    }

    #[test]
    fn an_open_ended_pattern_covers_its_extensions() {
        // `@bot` matches `@bot:example.org` from the start, as `@bot.*:example\.org` does.
        assert!(matches!(overlap("@bot", "@bot.*:example\\.org"), Overlap::Overlapping(_)));
        assert!(matches!(overlap("#.*", "#bridge_.*"), Overlap::Overlapping(_)));
    }
}
