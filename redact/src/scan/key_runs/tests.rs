use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::Anchored;
use proptest::prelude::*;

use super::*;
use crate::scan::blocks::classify;

/// The walk `in_run` took before it had a DFA of its own: aho-corasick's DFA over the
/// run, stopped at the first state that reports an occurrence.
fn walk(dfa: &DFA, run: &[u8]) -> bool {
    let Ok(mut state) = dfa.start_state(Anchored::No) else {
        return true;
    };
    run.iter().any(|&b| {
        state = dfa.next_state(Anchored::No, state, b);
        dfa.is_match(state)
    })
}

/// The runs by their definition: every candidate byte looked for in turn, then
/// sorted.
fn reference(buf: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    for p in memchr::memchr3_iter(b':', b'=', b'\'', buf) {
        runs.extend(run_ending_at(buf, before_separator(buf, p)));
    }
    for p in memchr::memchr_iter(b'>', buf) {
        runs.extend(run_ending_at(buf, p));
    }
    for p in memchr::memchr2_iter(b'-', b'.', buf) {
        if p == 0 || matches!(buf[p - 1], b' ' | b'\t' | b'\0' | b'\n') {
            runs.push((p, run_end(buf, p)));
        }
    }
    runs.sort_unstable();
    runs.dedup();
    runs
}

#[test]
fn a_stem_is_seen_in_a_run_as_the_leftmost_search_sees_it() {
    let stems = KeyStems::new(&[b"pass".to_vec(), b"secr".to_vec(), b"pw".to_vec()]);
    for run in [
        &b"PassWord"[..],
        b"xpw",
        b"db_secret",
        b"name",
        b"pa",
        b"passecret",
    ] {
        for skip in 0..run.len() {
            let want = stems.find_iter(run).any(|m| m.start() >= skip);
            assert_eq!(stems.in_run(run, skip), want, "{run:?} from {skip}");
        }
    }
}

fn fast(buf: &[u8]) -> Vec<(usize, usize)> {
    let (mut masks, mut runs) = (Vec::new(), Vec::new());
    classify(buf, &mut masks);
    for_each_key_run(buf, &masks, &mut SeenKeys::default(), |start, end| {
        runs.push((start, end))
    });
    runs
}

#[test]
fn candidates_at_block_edges() {
    for at in 58..70 {
        for text in [
            &b"key: v"[..],
            b"--pw x",
            b"<pw>x",
            b"'pw' = 'x'",
            b"a\0.x=1",
        ] {
            let mut buf = vec![b'x'; at];
            buf[at - 1] = b' ';
            buf.extend_from_slice(text);
            assert_eq!(fast(&buf), reference(&buf), "at {at}");
            assert_eq!(fast(text), reference(text));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// The stem DFA answers as the leftmost search does, and for `skip == 0` as the
    /// walk it replaced did (aho-corasick's DFA reporting every occurrence; the pair
    /// table before it was exact, so that walk is the old answer): stems that overlap,
    /// nest or repeat, one-letter and non-alphanumeric ones (`extra_keys`), placed at a
    /// run's start, middle or end in either case, among other key bytes.
    #[test]
    fn the_stem_dfa_finds_what_the_searches_find(
        words in proptest::collection::vec(
            proptest::collection::vec(proptest::sample::select(b"abcAB1_\xc3".to_vec()), 1..5),
            1..6,
        ),
        pieces in proptest::collection::vec(
            (
                0..8usize,
                any::<u8>(),
                proptest::collection::vec(
                    proptest::sample::select(b"abcABC1_-.x\xc3".to_vec()),
                    0..4,
                ),
            ),
            0..6,
        ),
    ) {
        let stems = KeyStems::new(&words);
        let every = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&words)
            .unwrap();
        let mut run = Vec::new();
        for (word, case, filler) in pieces {
            if let Some(word) = words.get(word) {
                // Bit i of `case` flips the case of the word's byte i.
                run.extend(word.iter().enumerate().map(|(i, &b)| match case >> i & 1 {
                    1 if b.is_ascii_lowercase() => b.to_ascii_uppercase(),
                    1 => b.to_ascii_lowercase(),
                    _ => b,
                }));
            }
            run.extend(filler);
        }
        prop_assert_eq!(stems.in_run(&run, 0), walk(&every, &run), "{:?}", run);
        for skip in 0..=run.len() {
            let want = stems.find_iter(&run).any(|m| m.start() >= skip);
            prop_assert_eq!(stems.in_run(&run, skip), want, "{:?} from {}", run, skip);
        }
    }

    /// Runs found with the keys remembered from earlier buffers (the same parts in other
    /// orders and at other offsets, so windows repeat with other bytes around them) are
    /// the runs by their definition.
    #[test]
    fn remembered_keys_give_the_runs_by_definition(
        parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "password", "key", "x", "-", ".", ":", "=", "'", "\"", ">", " ", "\t",
                "\n", "=>", "&", "_", "ab", "{\"id\":", "?q=", "  : ",
            ]).prop_map(|s| s.as_bytes().to_vec()),
            1..40,
        ),
        orders in proptest::collection::vec(
            proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
            1..6,
        ),
    ) {
        let mut seen = SeenKeys::default();
        for order in orders {
            let buf: Vec<u8> = order.iter().flat_map(|i| i.get(&parts).clone()).collect();
            let mut masks = Vec::new();
            classify(&buf, &mut masks);
            let mut runs = Vec::new();
            for_each_key_run(&buf, &masks, &mut seen, |start, end| runs.push((start, end)));
            prop_assert_eq!(&runs, &reference(&buf), "{:?}", String::from_utf8_lossy(&buf));
        }
    }

    /// The remembered verdicts are the walk's: runs of every length around the 8-byte
    /// words (and a buffer start too close to read one), met again after other runs
    /// have taken their slots, and runs that differ in one byte or in case only.
    #[test]
    fn remembered_runs_answer_as_the_walk(
        runs in proptest::collection::vec(
            proptest::collection::vec(proptest::sample::select(b"pwPWasx_1-.".to_vec()), 1..12),
            1..200,
        ),
        order in proptest::collection::vec(any::<prop::sample::Index>(), 1..400),
        lead in 0..10usize,
    ) {
        let stems = KeyStems::new(&[b"pass".to_vec(), b"pw".to_vec(), b"ssx".to_vec()]);
        let mut seen = SeenRuns::default();
        for index in order {
            let run = index.get(&runs);
            let mut buf = vec![b' '; lead];
            buf.extend_from_slice(run);
            buf.push(b':');
            let (start, end) = (lead, lead + run.len());
            prop_assert_eq!(
                stems.in_key_run(&buf, start, end, 0, &mut seen),
                stems.in_run(run, 0),
                "{:?} after {} blanks", run, lead
            );
        }
    }

    #[test]
    fn same_runs_as_the_reference(
        parts in proptest::collection::vec(
            prop_oneof![
                6 => proptest::sample::select(vec![
                    "password", "key", "x", "-", "--", ".", ":", "=", "'", "\"", ">", "<",
                    " ", "\t", "\0", "\n", "::", "=>", ":=", "&", "_",
                ]).prop_map(|s| s.as_bytes().to_vec()),
                1 => proptest::collection::vec(any::<u8>(), 0..70),
            ],
            0..60,
        ),
    ) {
        let buf = parts.concat();
        prop_assert_eq!(fast(&buf), reference(&buf));
    }
}
