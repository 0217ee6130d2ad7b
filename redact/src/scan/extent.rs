//! What a built-in pattern's parse says about its matches, for the anchored search
//! (`anchored`): every byte a match can hold, and the open run after a leading literal.

use regex_syntax::hir::{Class, ClassBytes, Hir, HirKind};

/// A pattern as the regex crate parses it (bytes, not UTF-8); `None` if it does not parse.
pub(super) fn parse(pattern: &str) -> Option<Hir> {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()
}

/// Every byte a match of `pattern` can hold, read from the parsed pattern. Were it not
/// parsed (built-in patterns are), every byte.
pub(super) fn match_bytes(pattern: Option<&Hir>) -> [bool; 256] {
    let mut set = [false; 256];
    match pattern {
        Some(hir) => mark(hir, &mut set),
        None => set = [true; 256],
    }
    set
}

/// Marks in `set` every byte a match of `hir` can hold: the bytes of its literals and
/// classes (with `(?i)`, a letter's cases are a class).
pub(super) fn mark(hir: &Hir, set: &mut [bool; 256]) {
    match hir.kind() {
        HirKind::Literal(literal) => literal.0.iter().for_each(|&b| set[usize::from(b)] = true),
        HirKind::Class(Class::Bytes(class)) => mark_class(class, set),
        // Any byte of a UTF-8 encoding: patterns are `(?-u)`, so this is only caution.
        HirKind::Class(Class::Unicode(_)) => *set = [true; 256],
        HirKind::Repetition(repetition) => mark(&repetition.sub, set),
        HirKind::Capture(capture) => mark(&capture.sub, set),
        HirKind::Concat(hirs) | HirKind::Alternation(hirs) => {
            hirs.iter().for_each(|hir| mark(hir, set))
        }
        HirKind::Empty | HirKind::Look(_) => {}
    }
}

/// Marks in `set` every byte of `class`.
fn mark_class(class: &ClassBytes, set: &mut [bool; 256]) {
    for range in class.ranges() {
        (range.start()..=range.end()).for_each(|b| set[usize::from(b)] = true);
    }
}

/// Where the run of `run`'s bytes from `at` ends.
pub(super) fn run_end(buf: &[u8], at: usize, run: &[bool; 256]) -> usize {
    buf[at..]
        .iter()
        .position(|&b| !run[usize::from(b)])
        .map_or(buf.len(), |p| at + p)
}

/// A pattern's leading literal, and the bytes of the open repetition after it.
pub(super) struct OpenRun {
    pub(super) literal: Vec<u8>,
    pub(super) bytes: [bool; 256],
}

/// `L` and the bytes of `C` when `hir` is a literal `L` followed by `C{n,}` (unbounded),
/// every byte of `L` in `C`, then anything. For such a pattern, a search that fails at an
/// `h` where `L` occurs fails at every later `h'` inside the run of `C` bytes from `h`: a
/// match from `h'` is `L C{k} rest` with `k >= n`, and from `h` the same bytes read as
/// `L C{k + h' - h} rest` (every byte between is in `C`, those of `L` at `h'` too), a match
/// from `h`. Where `L` is not at `h`, the search fails whatever follows, so nothing is
/// learnt.
pub(super) fn open_run(hir: &Hir) -> Option<OpenRun> {
    let HirKind::Concat(parts) = hir.kind() else {
        return None;
    };
    let [first, second, ..] = &parts[..] else {
        return None;
    };
    let (HirKind::Literal(literal), HirKind::Repetition(repetition)) =
        (first.kind(), second.kind())
    else {
        return None;
    };
    let HirKind::Class(Class::Bytes(class)) = repetition.sub.kind() else {
        return None;
    };
    if repetition.max.is_some() {
        return None;
    }
    let mut set = [false; 256];
    mark_class(class, &mut set);
    literal
        .0
        .iter()
        .all(|&b| set[usize::from(b)])
        .then(|| OpenRun {
            literal: literal.0.to_vec(),
            bytes: set,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::Detector;
    use crate::scan::value::builtin;

    /// The JWT is the pattern the failed-run skip is for; patterns that start with `\b`, a
    /// bounded repetition, or a literal outside their class have no run.
    #[test]
    fn only_open_runs_after_their_literal_are_runs() {
        let run = |pattern: &str| open_run(&parse(pattern).unwrap()).is_some();
        assert!(run(builtin(Detector::Jwt)[0].0));
        assert!(run(r"(?-u)ab[a-c]{2,}x"));
        assert!(!run(r"(?-u)\bab[a-c]{2,}x"), "a look before the literal");
        assert!(!run(r"(?-u)ab[a-c]{2,9}x"), "bounded");
        assert!(!run(r"(?-u)ab[b-c]{2,}x"), "`a` is not in the class");
        assert!(!run(builtin(Detector::Bearer)[0].0));
        assert!(!run(builtin(Detector::GithubToken)[0].0));
    }
}
