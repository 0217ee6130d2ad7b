//! False-positive rate on ordinary payloads: `tests/corpus/*` holds UUIDs, git SHAs,
//! sha256 sums, base64 PNG data, JSON API responses, HTML, logs, Go and Rust source,
//! ordinary HTTP traffic, config and CSV — none of it secret. Every masked byte there is
//! a false positive. Measured both on whole files and on files streamed in small pieces.
//!
//! `cargo test -p recorder-redact --test false_positives -- --nocapture` prints the table.

use std::path::Path;
use std::sync::Arc;

use recorder_redact::{Config, Policy, StreamRedactor};

/// Masked bytes / total bytes over the whole corpus must stay under this.
const MAX_BYTE_RATE: f64 = 0.005;
/// Lines with any masked byte / all lines must stay under this.
const MAX_LINE_RATE: f64 = 0.02;

struct Measure {
    bytes: usize,
    masked: usize,
    lines: usize,
    masked_lines: usize,
}

fn measure(input: &[u8], output: &[u8]) -> (Measure, Vec<String>) {
    let mut m = Measure {
        bytes: input.len(),
        masked: input.iter().zip(output).filter(|(a, b)| a != b).count(),
        lines: 0,
        masked_lines: 0,
    };
    let mut hits = Vec::new();
    let mut start = 0;
    for (i, _) in input
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .chain(std::iter::once((input.len(), &b'\n')))
    {
        if i <= start && i == input.len() {
            break;
        }
        m.lines += 1;
        if input[start..i] != output[start..i] {
            m.masked_lines += 1;
            hits.push(String::from_utf8_lossy(&output[start..i]).into_owned());
        }
        start = i + 1;
    }
    (m, hits)
}

fn stream(policy: &Arc<Policy>, input: &[u8]) -> Vec<u8> {
    let mut s = StreamRedactor::new(policy.clone());
    let mut tickets = Vec::new();
    let (mut at, mut seed) = (0usize, 0x2545_f491u32);
    while at < input.len() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let size = (1 + seed % 64) as usize;
        let end = (at + size).min(input.len());
        tickets.push(s.push(&input[at..end], 0));
        at = end;
    }
    s.close();
    tickets
        .into_iter()
        .flat_map(|t| s.take(t).unwrap().bytes)
        .collect()
}

#[test]
fn false_positive_rate_on_ordinary_payloads() {
    let policy = Arc::new(Policy::new(&Config::default()).unwrap());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "corpus missing");
    let (mut bytes, mut masked, mut lines, mut masked_lines) = (0, 0, 0, 0);
    println!(
        "{:<22} {:>8} {:>7} {:>6} {:>6}",
        "file", "bytes", "masked", "lines", "hit"
    );
    for path in &files {
        let input = std::fs::read(path).unwrap();
        let whole = policy.redact_buffer(&input).bytes;
        let streamed = stream(&policy, &input);
        assert_eq!(
            whole,
            streamed,
            "{}: streaming changed the result",
            path.display()
        );
        let (m, hits) = measure(&input, &whole);
        println!(
            "{:<22} {:>8} {:>7} {:>6} {:>6}",
            path.file_name().unwrap().to_string_lossy(),
            m.bytes,
            m.masked,
            m.lines,
            m.masked_lines
        );
        for hit in hits {
            println!("    {}", hit.chars().take(160).collect::<String>());
        }
        bytes += m.bytes;
        masked += m.masked;
        lines += m.lines;
        masked_lines += m.masked_lines;
    }
    let byte_rate = masked as f64 / bytes as f64;
    let line_rate = masked_lines as f64 / lines as f64;
    println!(
        "total: {masked} of {bytes} bytes masked ({:.3} %), {masked_lines} of {lines} lines ({:.2} %)",
        byte_rate * 100.0,
        line_rate * 100.0
    );
    assert!(
        byte_rate < MAX_BYTE_RATE,
        "byte false-positive rate {byte_rate}"
    );
    assert!(
        line_rate < MAX_LINE_RATE,
        "line false-positive rate {line_rate}"
    );
}
