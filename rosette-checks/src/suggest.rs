//! "Did you mean": the known name closest to a misspelt one.
//!
//! The distance is the optimal-string-alignment distance (Levenshtein plus the swap of two neighbours,
//! the commonest typing slip: `wnidow`). It is a `const fn` because the compile-time param checker of
//! `rosette` runs in const evaluation; it therefore works on bytes, in fixed-size rows, and gives up on
//! names longer than [`MAX_LEN`] (declared names are identifiers, far shorter).

/// The longest name the distance is computed for; longer ones get no suggestion.
pub const MAX_LEN: usize = 64;

/// The edit distance between `a` and `b`: insertions, deletions, substitutions and swaps of two
/// neighbouring bytes, each counting 1. `usize::MAX` when either is longer than [`MAX_LEN`].
pub const fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() > MAX_LEN || b.len() > MAX_LEN {
        return usize::MAX;
    }
    // Rows i-2, i-1 and i of the (a.len()+1) x (b.len()+1) table.
    let mut before = [0usize; MAX_LEN + 1];
    let mut prev = [0usize; MAX_LEN + 1];
    let mut cur = [0usize; MAX_LEN + 1];
    let mut j = 0;
    while j <= b.len() {
        prev[j] = j;
        j += 1;
    }
    let mut i = 1;
    while i <= a.len() {
        cur[0] = i;
        let mut j = 1;
        while j <= b.len() {
            let cost = if a[i - 1] == b[j - 1] { 0 } else { 1 };
            let mut best = prev[j] + 1; // delete a[i-1]
            if cur[j - 1] + 1 < best {
                best = cur[j - 1] + 1; // insert b[j-1]
            }
            if prev[j - 1] + cost < best {
                best = prev[j - 1] + cost; // substitute (or keep)
            }
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && before[j - 2] + 1 < best {
                best = before[j - 2] + 1; // swap two neighbours
            }
            cur[j] = best;
            j += 1;
        }
        before = prev;
        prev = cur;
        i += 1;
    }
    prev[b.len()]
}

/// The largest distance still worth suggesting for `word`: one edit per three letters (at least one),
/// so `windw` suggests `window` but `ip` does not suggest `mss`.
pub const fn max_distance(word: &str) -> usize {
    let third = word.len() / 3;
    if third == 0 {
        1
    } else {
        third
    }
}

/// The candidate closest to `word` within [`max_distance`], the first of equally close ones; `None`
/// when nothing is close (then a suggestion would mislead more than help).
pub const fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = max_distance(word);
    let mut best: Option<&'a str> = None;
    let mut best_distance = usize::MAX;
    let mut i = 0;
    while i < candidates.len() {
        let d = edit_distance(word, candidates[i]);
        if d <= limit && d < best_distance {
            best = Some(candidates[i]);
            best_distance = d;
        }
        i += 1;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("window", "window"), 0);
        assert_eq!(edit_distance("windw", "window"), 1);
        assert_eq!(edit_distance("window", "windw"), 1);
        assert_eq!(edit_distance("wnidow", "window"), 1, "a swap of neighbours is one edit");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        let long = "x".repeat(MAX_LEN + 1);
        assert_eq!(edit_distance(&long, "x"), usize::MAX);
    }

    #[test]
    fn suggestions() {
        let params = ["endpoint", "ip", "port", "mac", "peer", "window", "mss", "max_message"];
        assert_eq!(closest("windw", &params), Some("window"));
        assert_eq!(closest("portt", &params), Some("port"));
        assert_eq!(closest("max_mesage", &params), Some("max_message"));
        assert_eq!(closest("ipp", &params), Some("ip"));
        assert_eq!(closest("congestion", &params), None, "nothing close: no suggestion");
        assert_eq!(closest("x", &[]), None);
        // Equally close candidates: the first one.
        assert_eq!(closest("pier", &["peer", "pie"]), Some("peer"));
    }

    // Usable in const evaluation, where rosette's param checker calls it.
    const _: () = assert!(edit_distance("lcors", "lcores") == 1);
}
