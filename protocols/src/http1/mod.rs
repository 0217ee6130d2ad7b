//! HTTP/1.x exchanges from a connection's two directions: requests are read from the client's
//! stream, then responses from the server's, each paired with the request it answers.
//!
//! Decisions where the protocol leaves the recording's view open:
//! - A request with no response in the recording is `incomplete`: the recording ended (or
//!   lost the bytes) before its answer; `status` is `None` so it can be told from a cut answer.
//! - A response without a length runs to the stream's end and is whole if no gap is in it.
//! - Interim (1xx) responses are skipped but counted in `response_bytes`: they are part of
//!   the answer on the wire. 101 Switching Protocols and a 2xx to CONNECT end HTTP/1 on the
//!   connection: nothing after them is parsed, on either side.
//! - A response no request can be found for (its request was lost) is kept as an exchange
//!   with an empty method and target, timed from its own first byte, and `incomplete`.
//! - Responses pair with requests by count until either side had to resynchronise; from
//!   then on, with the oldest unanswered request that moved before the response, preferring
//!   one that moved after the server's last gap (an older one may have been answered in it).

mod head;
mod reader;
#[cfg(test)]
mod tests;

use crate::exchange::{Body, Detail, Exchange, Http};
use crate::stream::Stream;
use head::{Head, Parsed};
use reader::{Crossing, Framing, Outcome, Reader};

/// The bytes begin with (a prefix of) an HTTP/1.x request line of a known method; at least
/// the method and its following space must be there.
pub fn looks_like_request(bytes: &[u8]) -> bool {
    head::request_line_prefix(bytes)
}

/// The exchanges of an HTTP/1.x connection; `client` carries the requests.
pub fn parse(client: &Stream, server: &Stream) -> Vec<Exchange> {
    let (requests, client_resynced) = read_requests(client);
    let mut pairing = Pairing {
        times: requests
            .iter()
            .map(|request| client.time_at(request.start).unwrap_or(0))
            .collect(),
        requests,
        answers: Vec::new(),
        orphans: Vec::new(),
        next: 0,
        by_time: client_resynced,
        gap_ns: None,
    };
    pairing.answers.resize_with(pairing.requests.len(), || None);
    read_responses(server, &mut pairing);
    pairing.exchanges(client, server)
}

/// A message as read: its head, body, and where it lies in its stream.
#[derive(Debug, Default)]
struct Message {
    head: Head,
    body: Body,
    /// Offsets of its first byte and one past its last recorded byte.
    start: usize,
    end: usize,
    incomplete: bool,
}

impl Message {
    fn new(head: Head, start: usize) -> Self {
        Message {
            start,
            end: start + head.len,
            head,
            ..Message::default()
        }
    }

    fn read_body(&mut self, reader: &mut Reader<'_>, framing: Framing) -> Outcome {
        reader.advance(self.head.len);
        let outcome = reader.body(framing, &mut self.body);
        self.end = reader.pos.max(self.end);
        self.incomplete |= outcome != Outcome::Whole;
        outcome
    }
}

/// Skips blank lines between messages (tolerated by servers, sent by some clients).
fn skip_blank_lines(reader: &mut Reader<'_>) {
    let blank = reader
        .rest()
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    reader.advance(blank);
}

/// Moves past the end of the current run; false at the recording's end.
fn next_run(reader: &mut Reader<'_>) -> bool {
    matches!(reader.cross(), Crossing::Gap { .. })
}

/// Every request in the client's stream, and whether the reader had to resynchronise.
fn read_requests(client: &Stream) -> (Vec<Message>, bool) {
    let mut reader = Reader::new(client);
    let mut requests = Vec::new();
    let mut resynced = reader.starts_after_gap();
    let mut lost = resynced;
    loop {
        if lost && !reader.resync(head::starts_request) {
            break;
        }
        lost = false;
        skip_blank_lines(&mut reader);
        if reader.at_run_end() {
            if !next_run(&mut reader) {
                break;
            }
            lost = true;
            resynced = true;
            continue;
        }
        let start = reader.pos;
        match head::request(reader.rest()) {
            Parsed::Head(head) => {
                let framing = head.request_framing();
                let mut message = Message::new(head, start);
                if message.read_body(&mut reader, framing) == Outcome::Lost {
                    lost = true;
                    resynced = true;
                }
                requests.push(message);
            }
            Parsed::Partial(head) => {
                let mut message = Message::new(head, start);
                message.incomplete = true;
                reader.advance(message.head.len);
                requests.push(message);
                lost = true;
                resynced = true;
            }
            Parsed::Garbage => {
                reader.advance(1);
                lost = true;
                resynced = true;
            }
        }
    }
    (requests, resynced)
}

/// The requests and the responses found for them.
struct Pairing {
    requests: Vec<Message>,
    /// When each request's first byte moved.
    times: Vec<u64>,
    answers: Vec<Option<Message>>,
    orphans: Vec<Message>,
    /// The oldest request not yet answered nor passed over.
    next: usize,
    by_time: bool,
    /// When the server's stream last lost bytes, while no response has been paired since.
    gap_ns: Option<u64>,
}

impl Pairing {
    /// The request a response whose first byte moved at `at_ns` answers.
    fn pick(&self, at_ns: u64) -> Option<usize> {
        let unanswered = self.times.get(self.next..).unwrap_or(&[]);
        if !self.by_time {
            return (!unanswered.is_empty()).then_some(self.next);
        }
        // Requests are in the order they moved: binary searches keep this linear overall.
        let before = unanswered.partition_point(|&t| t <= at_ns);
        let after_gap = self.gap_ns.and_then(|gap| {
            let i = unanswered[..before].partition_point(|&t| t < gap);
            (i < before).then_some(i)
        });
        after_gap
            .or((before > 0).then_some(0))
            .map(|i| self.next + i)
    }

    fn exchanges(self, client: &Stream, server: &Stream) -> Vec<Exchange> {
        let mut exchanges = Vec::with_capacity(self.requests.len() + self.orphans.len());
        for (request, response) in self.requests.into_iter().zip(self.answers) {
            exchanges.push(exchange(client, server, Some(request), response));
        }
        for orphan in self.orphans {
            exchanges.push(exchange(client, server, None, Some(orphan)));
        }
        exchanges.sort_by_key(|exchange| exchange.request_ns);
        exchanges
    }
}

fn read_responses(server: &Stream, pairing: &mut Pairing) {
    let mut reader = Reader::new(server);
    let mut lost = reader.starts_after_gap();
    pairing.by_time |= lost;
    // Where the first interim response before the final one began.
    let mut interim: Option<usize> = None;
    loop {
        if lost && !reader.resync(head::starts_response) {
            break;
        }
        lost = false;
        skip_blank_lines(&mut reader);
        if reader.at_run_end() {
            match reader.cross() {
                Crossing::Gap { at_ns, .. } => {
                    pairing.gap_ns = Some(at_ns);
                    pairing.by_time = true;
                    lost = true;
                    interim = None;
                    continue;
                }
                Crossing::End { .. } => break,
            }
        }
        let start = reader.pos;
        let (head, partial) = match head::response(reader.rest()) {
            Parsed::Head(head) => (head, false),
            Parsed::Partial(head) => (head, true),
            Parsed::Garbage => {
                reader.advance(1);
                pairing.by_time = true;
                lost = true;
                continue;
            }
        };
        let status = head.status.unwrap_or(0);
        if !partial && (100..200).contains(&status) && status != 101 {
            interim.get_or_insert(start);
            reader.advance(head.len);
            continue;
        }
        let first = interim.take().unwrap_or(start);
        let at_ns = server.time_at(first).unwrap_or(0);
        let answers = pairing.pick(at_ns);
        let method = answers
            .and_then(|i| pairing.requests.get(i))
            .map_or("", |request| request.head.method.as_str())
            .to_string();
        let mut message = Message::new(head, start);
        message.start = first;
        if partial {
            message.incomplete = true;
            reader.advance(message.head.len);
            lost = true;
        } else {
            let framing = message.head.response_framing(&method);
            if message.read_body(&mut reader, framing) == Outcome::Lost {
                lost = true;
            }
        }
        if lost {
            pairing.by_time = true;
            let cut_by = server
                .gaps()
                .iter()
                .rfind(|gap| gap.offset > start && gap.offset <= reader.pos);
            if let Some(gap) = cut_by {
                pairing.gap_ns = Some(gap.at_ns);
            }
        }
        let upgraded =
            !partial && (status == 101 || (method == "CONNECT" && (200..300).contains(&status)));
        match answers {
            Some(i) => {
                pairing.answers[i] = Some(message);
                pairing.next = i + 1;
                if !lost {
                    pairing.gap_ns = None;
                }
                if upgraded {
                    // The rest of the connection is another protocol.
                    pairing.requests.truncate(i + 1);
                    pairing.times.truncate(i + 1);
                    pairing.answers.truncate(i + 1);
                    return;
                }
            }
            None => pairing.orphans.push(message),
        }
        if upgraded {
            return;
        }
    }
}

/// One exchange from a request, its response, or both.
fn exchange(
    client: &Stream,
    server: &Stream,
    request: Option<Message>,
    response: Option<Message>,
) -> Exchange {
    let response_ns = response
        .as_ref()
        .and_then(|response| server.time_at(response.end.saturating_sub(1)));
    let request_ns = match &request {
        Some(request) => client.time_at(request.start),
        None => response
            .as_ref()
            .and_then(|response| server.time_at(response.start)),
    }
    .unwrap_or(0);
    let request_end_ns = request
        .as_ref()
        .and_then(|request| client.time_at(request.end.saturating_sub(1)))
        .unwrap_or(request_ns);
    let response_start_ns = response
        .as_ref()
        .and_then(|response| server.time_at(response.start));
    let incomplete = request.as_ref().is_none_or(|m| m.incomplete)
        || response.as_ref().is_none_or(|m| m.incomplete);
    let request = request.unwrap_or_default();
    let response = response.unwrap_or_default();
    let authority = request.head.header("host").map(str::to_string);
    let version = if request.head.version.is_empty() {
        response.head.version.clone()
    } else {
        request.head.version.clone()
    };
    Exchange {
        request_ns,
        response_ns,
        request_bytes: span(&request),
        response_bytes: span(&response),
        incomplete,
        detail: Detail::Http(Http {
            version,
            stream_id: 0,
            method: request.head.method,
            target: request.head.target,
            authority,
            request_headers: request.head.headers,
            request_body: request.body,
            status: response.head.status,
            reason: response.head.reason,
            response_headers: response.head.headers,
            response_body: response.body,
            request_end_ns,
            response_start_ns,
        }),
    }
}

fn span(message: &Message) -> u64 {
    message.end.saturating_sub(message.start) as u64
}
