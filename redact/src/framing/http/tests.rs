use super::*;

fn run(input: &[u8], split: usize) -> (Vec<(u64, u64)>, Vec<u64>) {
    run_in_pieces(Http::default(), input, &[split])
}

/// Masks and cuts of `input` fed to `h` in pieces of the sizes in `splits`, cycled.
fn feed_in_pieces(mut h: Http, input: &[u8], splits: &[usize]) -> (Vec<Mask>, Vec<u64>) {
    let (mut masks, mut cuts) = (Vec::new(), Vec::new());
    let (mut at, mut k) = (0, 0);
    while at < input.len() {
        let len = splits[k % splits.len()].min(input.len() - at);
        h.feed(&input[at..at + len], at as u64, true, &mut masks, &mut cuts);
        at += len;
        k += 1;
    }
    (masks, cuts)
}

/// `feed_in_pieces`, with the masked bytes as runs, for comparison (a shadow may mask what
/// the tracker does).
fn run_in_pieces(h: Http, input: &[u8], splits: &[usize]) -> (Vec<(u64, u64)>, Vec<u64>) {
    let (mut masks, cuts) = feed_in_pieces(h, input, splits);
    masks.sort_by_key(|m| m.start);
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for m in masks {
        match merged.last_mut() {
            Some(last) if last.1 >= m.start => last.1 = last.1.max(m.end),
            _ => merged.push((m.start, m.end)),
        }
    }
    (merged, cuts)
}

/// A gzip response after `first` on one connection, at every split: the masks of each.
fn masks_with_gzip_after(first: &[u8]) -> impl Iterator<Item = (usize, u64, Vec<(u64, u64)>)> {
    let second = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 30\r\n\r\n";
    let body = b"\x1f\x8b\x08\x00GZIPSECRETPAYLOADVISIBLE\x00\x01";
    let input = [first, second, body].concat();
    let at = (first.len() + second.len()) as u64;
    (1..=input.len()).map(move |split| (split, at, run(&input, split).0))
}

/// ... and its 30-byte body is masked exactly.
fn gzip_body_after(first: &[u8]) {
    for (split, at, masks) in masks_with_gzip_after(first) {
        assert_eq!(masks, [(at, at + 30)], "split {split}");
    }
}

/// ... and its 30-byte body is masked (with more before it).
fn gzip_body_masked_after(first: &[u8]) {
    for (split, at, masks) in masks_with_gzip_after(first) {
        let covered = |b: u64| masks.iter().any(|&(s, e)| s <= b && b < e);
        assert!((at..at + 30).all(covered), "split {split}: {masks:?}");
    }
}

/// Body text that ends like a status line is taken for one, and the real status line after
/// it starts the next response all the same.
#[test]
fn a_status_line_in_body_text_does_not_hide_the_next_response() {
    gzip_body_after(
        b"HTTP/1.1 200 OK\r\nContent-Length: 33\r\n\r\nupstream answered HTTP/1.1 304\r\n",
    );
    gzip_body_after(b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nsaw HTTP/1.1 200\r\n");
}

/// A status line among a message's own headers is a header line, as before: the headers
/// that came before it still count.
#[test]
fn a_status_line_among_headers_is_a_header_line() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n";
    let input = [&head[..], b"SECRET-PAY"].concat();
    for split in 1..=input.len() {
        let (masks, _) = run(&input, split);
        assert_eq!(
            masks,
            [(head.len() as u64, input.len() as u64)],
            "split {split}"
        );
    }
}

/// Garbage that ends like a status line, with header lines and a short length after it:
/// that "body" ends inside the real next status line, which is still found.
#[test]
fn a_length_after_a_status_line_found_in_text_does_not_hide_the_next() {
    let first = b"HTTP/1.1 204 No Content\r\n\r\nxHTTP/1.1 200\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n";
    let next = b"\r\nHTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\nSECRET";
    let input = [&first[..], next].concat();
    for split in 1..=input.len() {
        let (masks, _) = run(&input, split);
        let covered = |b: usize| masks.iter().any(|&(s, e)| s <= b as u64 && (b as u64) < e);
        assert!(
            (input.len() - 6..input.len()).all(covered),
            "split {split}: {masks:?}"
        );
    }
}

/// A response to HEAD whose length ends inside the next status line.
#[test]
fn a_short_length_after_head_still_finds_the_next_response() {
    gzip_body_masked_after(b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 6\r\n\r\n");
}

#[test]
fn a_status_line_after_a_body_without_a_line_break_is_seen() {
    gzip_body_after(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
    gzip_body_after(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
}

/// A response to HEAD has a length and no body: the next response, taken for its body
/// and masked, is still followed, and its own body is masked whole.
#[test]
fn the_response_after_a_response_to_head_is_followed() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 74\r\n\r\n";
    let body = b"GZIPSECRETPAYLOADVISIBLE-0123456789-0123456789-0123456789-0123456789-01234";
    assert_eq!(body.len(), 74);
    let input = [&head[..], head, body, b"HTTP/1.1 200 OK\r\n"].concat();
    let at = (2 * head.len()) as u64;
    for split in 1..=input.len() {
        let (masks, _) = run(&input, split);
        let covered = |b: u64| masks.iter().any(|&(s, e)| s <= b && b < e);
        assert!((at..at + 74).all(covered), "split {split}: {masks:?}");
        // The body's end is known: what follows it is not masked.
        assert!(!covered(at + 74), "split {split}: {masks:?}");
    }
}

/// A 304 (and a 204, a 1xx) has no body whatever its headers say: the next response is
/// found at the start of what was taken for its body.
#[test]
fn responses_without_a_body_are_followed_by_the_next() {
    for status in ["304 Not Modified", "204 No Content", "100 Continue"] {
        let first =
            format!("HTTP/1.1 {status}\r\nContent-Encoding: gzip\r\nContent-Length: 74\r\n\r\n");
        gzip_body_masked_after(first.as_bytes());
    }
}

#[test]
fn cuts_at_the_end_of_a_request_body() {
    let req = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nuser=a&pw=b";
    for split in [1, 5, req.len()] {
        let (masks, cuts) = run(req, split);
        assert_eq!(cuts, [req.len() as u64], "split {split}");
        assert!(masks.is_empty());
    }
}

#[test]
fn lines_around_messages_are_passed_over_wherever_pieces_split() {
    let input = b"{\"not\":\"http\"}\n\nxGET / HTTP/1.1\r\nPOST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n  POST /b HTTP/1.1\r\nContent-Length: 1\r\n\r\nz";
    let ok = input.windows(2).position(|w| w == b"ok").unwrap() as u64;
    for split in 1..input.len() {
        let (masks, cuts) = run(input, split);
        assert!(masks.is_empty(), "split {split}");
        // The second request is cut after its body; the indented one is not a request.
        assert_eq!(cuts, [ok + 2], "split {split}");
    }
}

#[test]
fn a_gap_ends_a_passed_over_line() {
    let mut h = Http::default();
    let (mut masks, mut cuts) = (Vec::new(), Vec::new());
    h.feed(b"{\"partial", 0, true, &mut masks, &mut cuts);
    h.gap(5);
    let request = b"POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nok";
    h.feed(request, 14, true, &mut masks, &mut cuts);
    assert_eq!(cuts, [14 + request.len() as u64]);
}

#[test]
fn responses_and_bodiless_requests_do_not_cut() {
    let (masks, cuts) = run(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        3,
    );
    assert!(cuts.is_empty() && masks.is_empty());
}

#[test]
fn encoded_bodies_are_masked_whole() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 6\r\n\r\n";
    let mut input = head.to_vec();
    input.extend_from_slice(b"\x1f\x8b\n\x00ab");
    input.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
    for split in [1, 4, 100] {
        let (masks, _) = run(&input, split);
        assert_eq!(
            masks,
            [(head.len() as u64, head.len() as u64 + 6)],
            "split {split}"
        );
    }
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: br\r\n\r\n4\r\nab\ncd\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n";
    let body_start = chunked.windows(4).position(|w| w == b"\r\n\r\n").unwrap() as u64 + 4;
    let body_end = chunked
        .windows(7)
        .position(|w| w == b"0\r\n\r\nHT")
        .unwrap() as u64
        + 5;
    for split in [1, 3, 200] {
        assert_eq!(
            run(chunked, split).0,
            [(body_start, body_end)],
            "split {split}"
        );
    }
    let until_close = b"HTTP/1.0 200 OK\r\nContent-Encoding: zstd\r\n\r\nanything at all";
    let body = until_close
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap() as u64
        + 4;
    assert_eq!(run(until_close, 5).0, [(body, until_close.len() as u64)]);
    let identity = b"HTTP/1.1 200 OK\r\nContent-Encoding: identity\r\nContent-Length: 2\r\n\r\nok";
    assert!(run(identity, 2).0.is_empty());
}

/// Lines passed over in one search, and lines turned away by their first bytes, change
/// nothing: fed the same pieces, the tracker masks and cuts what it does reading every
/// line, each decided by its first byte.
mod passed_over {
    use proptest::prelude::*;

    use super::*;

    fn run_split(
        input: &[u8],
        splits: &[usize],
        line_by_line: bool,
    ) -> (Vec<(u64, u64)>, Vec<u64>) {
        let h = Http {
            line_by_line,
            ..Http::default()
        };
        run_in_pieces(h, input, splits)
    }

    fn parts() -> impl Strategy<Value = Vec<&'static str>> {
        proptest::collection::vec(
            proptest::sample::select(vec![
                "POST /a HTTP/1.1\r\n",
                "GET / HTTP/1.1\r\n",
                "HTTP/1.1 200 OK\r\n",
                "Content-Length: 3\r\n",
                "Content-Encoding: gzip\r\n",
                "Host: x\r\n",
                "\r\n",
                "\n",
                "abc",
                "Abc",
                "{\"order\":8841,\"sku\":\"A-1177\",\"qty\":3}\n",
                "a line of body text longer than sixteen bytes\n",
                "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\nP",
                " POST /b HTTP/1.1\r\n",
                "GET",
                "HTTP",
                "DELETE /x HTTP/1.0\r\nContent-Length: 1\r\n\r\nz",
                "HTTP/1.0 204 No Content\r\n",
                "INFO started\n",
                "ABCDEFGHIJK / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok",
                "ABCDEFGHIJ / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok",
                "GET HTTP/1.1\r\nContent-Length: 1\r\n\r\nz",
                "HTTP/1.0 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nGZIP",
            ]),
            0..24,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        #[test]
        fn frames_as_reading_every_line_does(
            parts in parts(),
            splits in proptest::collection::vec(1..80usize, 1..6),
        ) {
            let input = parts.concat().into_bytes();
            prop_assert_eq!(run_split(&input, &splits, false), run_split(&input, &splits, true));
        }
    }
}

/// Where the writes split a stream changes nothing that is masked: fed in pieces of any
/// sizes, the tracker masks every byte it masks fed one byte at a time (it may mask more,
/// as a shadow started on text only adds masks).
mod piece_sizes {
    use proptest::prelude::*;

    use super::*;

    fn masked(input: &[u8], splits: &[usize]) -> Vec<bool> {
        let mut bytes = vec![false; input.len()];
        for m in feed_in_pieces(Http::default(), input, splits).0 {
            bytes[m.start as usize..m.end as usize].fill(true);
        }
        bytes
    }

    /// Bytes masked one at a time that pieces of `splits` leave as they are.
    fn unmasked_in_pieces(input: &[u8], splits: &[usize]) -> usize {
        let (pieces, single) = (masked(input, splits), masked(input, &[1]));
        (0..input.len())
            .filter(|&i| single[i] && !pieces[i])
            .count()
    }

    /// `input` in two pieces, split anywhere, masks every byte it masks one byte at a time.
    fn assert_every_split_masks_what_single_bytes_do(input: &[u8]) {
        for split in 2..input.len() {
            assert_eq!(unmasked_in_pieces(input, &[split]), 0, "split {split}");
        }
    }

    /// A shadow's message ends early in a piece, and the rest of the piece is a body line
    /// that ends with a status line: a shadow between messages gives way to it, though it
    /// read on into that line when it was fed the piece.
    #[test]
    fn a_shadow_between_messages_gives_way_wherever_the_piece_ends() {
        let input = [
            "abcPOST /a HTTP/1.1\r\nHTTP/1.1 200 OK\r\nPOST /a HTTP/1.1\r\n",
            "xHTTP/1.1 200 OK\r\nContent-Length: 3\r\n",
            "HTTP/1.0 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nGZIP",
            "HTTP/1.0 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nGZIP",
            "abcHTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\nPOST /a HTTP/1.1\r\n",
        ]
        .concat()
        .into_bytes();
        assert_every_split_masks_what_single_bytes_do(&input);
    }

    /// A shadow follows a response whose headers run on (a status line in the middle of
    /// a header block is not one); the next status line, found by the tracker at a body
    /// line's end, must replace it, though the shadow, fed the whole piece first, has read
    /// past that line into a body of the length it found first (proptest found it).
    #[test]
    fn a_shadow_that_read_past_the_next_status_line_gives_way() {
        let input = [
            "GET",
            "HTTP/1.1 200 OK\r\n",
            "HTTP/1.0 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nGZIP",
            "abcHTTP/1.0 204 No Content\r\n",
            "Content-Encoding: gzip\r\nContent-Length: 3\r\n",
            "abcHTTP/1.0 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nGZIP",
        ]
        .concat()
        .into_bytes();
        assert_every_split_masks_what_single_bytes_do(&input);
        let status = input.len() - 66;
        assert_eq!(unmasked_in_pieces(&input, &[status, 62]), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

        #[test]
        fn pieces_mask_every_byte_single_bytes_do(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "POST /a HTTP/1.1\r\n",
                    "GET / HTTP/1.1\r\n",
                    "GET",
                    "HTTP/1.1 200 OK\r\n",
                    "xHTTP/1.1 200 OK\r\n",
                    "HTTP/1.0 204 No Content\r\n",
                    "HTTP/1.0 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nGZIP",
                    "Content-Length: 3\r\n",
                    "Content-Encoding: gzip\r\n",
                    "Transfer-Encoding: chunked\r\n",
                    "4\r\nab\ncd\r\n0\r\n\r\n",
                    "\r\n",
                    "\n",
                    "abc",
                    "Abc",
                ]),
                0..24,
            ),
            splits in proptest::collection::vec(1..80usize, 1..6),
        ) {
            let input = parts.concat().into_bytes();
            prop_assert_eq!(unmasked_in_pieces(&input, &splits), 0);
        }
    }
}
