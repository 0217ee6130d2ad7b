use proptest::prelude::*;

use super::*;
use crate::scan::blocks::classify;
use crate::scan::tokens::long_token_runs;

/// Each trigger literal, followed by a body of upper-case hex (so `ACCA`'s run is all
/// hex), at every offset from a block edge, is reported where it starts.
#[test]
fn every_trigger_is_found_at_every_offset() {
    let all = Detector::ALL.to_vec();
    let set = Triggers::new(&all);
    let (mut masks, mut runs, mut hits) = (Vec::new(), Vec::new(), Vec::new());
    for &detector in &all {
        for &word in triggers(detector).unwrap_or(&[]) {
            for at in 0..70 {
                let buf = format!("{}{word}{} x", " ".repeat(at), "ABCDEF0123456789".repeat(2));
                let lower = buf.to_ascii_lowercase();
                classify(buf.as_bytes(), &mut masks);
                long_token_runs(buf.len(), &masks, &mut runs);
                let present = set.find(buf.as_bytes(), lower.as_bytes(), &runs, &mut hits);
                let bit = Triggers::bit(detector);
                assert!(present & bit != 0, "{word} at {at}");
                assert!(
                    hits.iter().any(|&(p, bits)| p == at && bits & bit != 0),
                    "{word} at {at}: {hits:?}"
                );
                assert!(hits.is_sorted(), "{word} at {at}: {hits:?}");
            }
        }
    }
}

/// Long runs near each other are searched as one stretch, a hex-only run with a
/// non-hex one for every vendor literal: a token in either is found, at any gap.
#[test]
fn tokens_in_runs_searched_together_are_all_found() {
    let all = Detector::ALL.to_vec();
    let set = Triggers::new(&all);
    let (mut masks, mut runs, mut hits) = (Vec::new(), Vec::new(), Vec::new());
    let hex_id = "ACCA0123456789ABCDEF";
    let github = "ghp_Zx9Qm2LkP4vR7tW1yB3nC8dFkJ8sD2fG5hQ9";
    for gap in [1, 60, 127, 128, 129, 200] {
        for (first, second) in [(hex_id, github), (github, hex_id), (hex_id, hex_id)] {
            let buf = format!("x {first}{}{second} y", " ".repeat(gap));
            let lower = buf.to_ascii_lowercase();
            classify(buf.as_bytes(), &mut masks);
            long_token_runs(buf.len(), &masks, &mut runs);
            set.find(buf.as_bytes(), lower.as_bytes(), &runs, &mut hits);
            for (at, token) in [(2, first), (2 + first.len() + gap, second)] {
                let bit = Triggers::bit(if token == hex_id {
                    Detector::AwsAccessKeyId
                } else {
                    Detector::GithubToken
                });
                assert!(
                    hits.iter().any(|&(p, bits)| p == at && bits & bit != 0),
                    "gap {gap}: {token} at {at} in {hits:?}"
                );
            }
        }
    }
}

/// Every trigger literal as spelled, in lower and in upper case.
fn pieces() -> Vec<Vec<u8>> {
    let mut out: Vec<String> = Vec::new();
    for detector in Detector::ALL {
        for &word in triggers(detector).unwrap_or(&[]) {
            out.extend([
                word.into(),
                word.to_ascii_lowercase(),
                word.to_ascii_uppercase(),
            ]);
        }
    }
    out.into_iter().map(String::into_bytes).collect()
}

/// Literals that overlap or abut.
const JOINED: [&[u8]; 11] = [
    b"desk-sk_",
    b"eyJeyJ",
    b"akiasia",
    b"AKIASIA",
    b"xoxox",
    b"ACCACCA",
    b"sk-sk_",
    b"ghp_ghp_",
    b"hf_hf_",
    b"a@@",
    b"://://",
];

/// Up to `max` bytes: trigger literals spliced between stretches of ASCII, of token
/// bytes (so long runs form around them) and of upper-case hex.
fn text(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let from = |set: &[u8]| proptest::sample::select(set.to_vec());
    let token = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-";
    let ascii = prop_oneof![9 => 0x20u8..0x7f, 1 => from(b"\r\n\t")];
    let piece = prop_oneof![
        3 => proptest::sample::select(pieces()),
        1 => proptest::sample::select(JOINED.map(<[u8]>::to_vec).to_vec()),
        2 => proptest::collection::vec(ascii, 0..40),
        2 => proptest::collection::vec(from(token), 0..40),
        1 => proptest::collection::vec(from(b"0123456789ABCDEF"), 0..40),
    ];
    // Cut anywhere, so a literal (or half of one) ends the text as often as not.
    let pieces = proptest::collection::vec(piece, 0..=max / 8);
    (pieces, 0..=max).prop_map(|(pieces, cut)| {
        let mut text = pieces.concat();
        text.truncate(cut);
        text
    })
}

/// Every detector, the default policy's (all but PII), or any subset.
fn detectors() -> impl Strategy<Value = Vec<Detector>> {
    let subset = |keep: &dyn Fn(usize, Detector) -> bool| -> Vec<Detector> {
        let all = Detector::ALL.into_iter().enumerate();
        all.filter(|&(i, d)| keep(i, d)).map(|(_, d)| d).collect()
    };
    prop_oneof![
        Just(subset(&|_, _| true)),
        Just(subset(&|_, d| !d.pii())),
        any::<u32>().prop_map(move |bits| subset(&|i, _| bits & (1 << i) != 0)),
    ]
}

/// `find` reports what the automaton it replaced did: the same hits in the same
/// order, and the same bits.
fn same_as_reference(detectors: &[Detector], buf: &[u8]) -> Result<(), TestCaseError> {
    let set = Triggers::new(detectors);
    let lower = buf.to_ascii_lowercase();
    let (mut masks, mut runs) = (Vec::new(), Vec::new());
    classify(buf, &mut masks);
    long_token_runs(buf.len(), &masks, &mut runs);
    // `find` clears what `hits` held.
    let (mut hits, mut expected) = (vec![(7, 7)], Vec::new());
    let present = set.find(buf, &lower, &runs, &mut hits);
    let want = set.find_with(buf, &lower, &runs, &mut expected, Literals::find_reference);
    prop_assert_eq!(hits, expected);
    prop_assert_eq!(present, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn find_matches_the_automaton_on_text(detectors in detectors(), buf in text(300)) {
        same_as_reference(&detectors, &buf)?;
    }

    #[test]
    fn find_matches_the_automaton_on_bytes(
        detectors in detectors(),
        buf in proptest::collection::vec(any::<u8>(), 0..=300),
    ) {
        same_as_reference(&detectors, &buf)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn find_matches_the_automaton_on_long_text(detectors in detectors(), buf in text(5000)) {
        same_as_reference(&detectors, &buf)?;
    }

    #[test]
    fn find_matches_the_automaton_on_long_bytes(
        detectors in detectors(),
        buf in proptest::collection::vec(any::<u8>(), 0..=5000),
    ) {
        same_as_reference(&detectors, &buf)?;
    }
}
