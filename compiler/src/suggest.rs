//! "Did you mean" suggestions.

/// The candidate closest to `word` (case-insensitive), when close enough to
/// be a likely typo: a candidate that `word` abbreviates (a prefix of at
/// least four characters) first, else the nearest by edit distance within a
/// quarter of the word's length (at least one edit). Ties go to the earlier
/// candidate.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    let budget = (word.chars().count() / 4).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    // Ties go to the smallest candidate, so that the answer never depends
    // on the candidates' order (names come from hash maps).
    let mut offer = |distance: usize, candidate: &'a str| {
        if best.is_none_or(|(d, c)| (distance, candidate) < (d, c)) {
            best = Some((distance, candidate));
        }
    };
    for candidate in candidates {
        let candidate_lower = candidate.to_lowercase();
        if word_lower.chars().count() >= 4 && candidate_lower.starts_with(&word_lower) {
            // An abbreviation beats any typo.
            offer(0, candidate);
            continue;
        }
        let distance = levenshtein(&word_lower, &candidate_lower);
        if distance <= budget {
            offer(distance, candidate);
        }
    }
    best.map(|(_, c)| c)
}

/// Edit distance (insertions, deletions, substitutions) between two strings,
/// by characters. O(|a|·|b|) time, O(|b|) space; only ever called on keys
/// and names, which are short.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = i;
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let (Some(&left), Some(&up)) = (row.get(j), row.get(j + 1)) else { break };
            let value = (diagonal + usize::from(ca != *cb)).min(left + 1).min(up + 1);
            diagonal = up;
            if let Some(slot) = row.get_mut(j + 1) {
                *slot = value;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `embedded` fuzz target (issue 13): names come from hash
    /// maps, and a tie went to whichever came first, so that a name
    /// suggested (and so not reported unused) changed from run to run.
    #[test]
    fn ties_do_not_depend_on_the_candidates_order() {
        let names = ["exempt-00002", "exempt-00000", "exempt-00003"];
        let mut reversed = names;
        reversed.reverse();
        assert_eq!(did_you_mean("exempt-00001", names), Some("exempt-00000"));
        assert_eq!(did_you_mean("exempt-00001", reversed), Some("exempt-00000"));
    }

    #[test]
    fn distances() {
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
    }

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["targetFilePath", "operation", "processName"];
        assert_eq!(did_you_mean("targetFilepath", keys), Some("targetFilePath"));
        assert_eq!(did_you_mean("operations", keys), Some("operation"));
        assert_eq!(did_you_mean("Operation", keys), Some("operation"));
        assert_eq!(did_you_mean("banana", keys), None);
        assert_eq!(did_you_mean("etcChanges", ["binChanges"]), None);
        assert_eq!(did_you_mean("createExe", ["createFile", "createExecutable"]), Some("createExecutable"));
    }
}
