//! Where each key was first seen: the duplicate checks' one tool.
//!
//! Policies are made of small maps and short lists, where a linear scan
//! beats hashing (and allocating a table) by far; past [`LINEAR_LIMIT`]
//! keys it switches to a hash map, so a hostile 200,000-key map stays
//! linear-time overall.

use crate::span::Span;
use std::collections::HashMap;
use std::hash::Hash;

/// Keys held in a vector before switching to a hash map.
const LINEAR_LIMIT: usize = 16;

/// The first span of every key seen so far.
pub struct FirstSeen<K> {
    small: Vec<(K, Span)>,
    large: Option<HashMap<K, Span>>,
}

impl<K: Eq + Hash + Copy> FirstSeen<K> {
    /// Nothing seen yet.
    pub fn new() -> Self {
        FirstSeen { small: Vec::new(), large: None }
    }

    /// Where `key` was first seen, if before; else records it at `span`.
    pub fn first(&mut self, key: K, span: Span) -> Option<Span> {
        if let Some(large) = &mut self.large {
            return match large.get(&key) {
                Some(&at) => Some(at),
                None => {
                    large.insert(key, span);
                    None
                }
            };
        }
        if let Some(&(_, at)) = self.small.iter().find(|(k, _)| *k == key) {
            return Some(at);
        }
        self.small.push((key, span));
        if self.small.len() > LINEAR_LIMIT {
            self.large = Some(self.small.drain(..).collect());
        }
        None
    }
}

impl<K: Eq + Hash + Copy> Default for FirstSeen<K> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_first_span_below_and_above_the_linear_limit() {
        let mut seen = FirstSeen::new();
        for i in 0..100usize {
            assert_eq!(seen.first(i, Span::point(i)), None);
        }
        for i in 0..100usize {
            assert_eq!(seen.first(i, Span::point(1000)), Some(Span::point(i)));
        }
    }
}
