//! A query is paired with the first later answer of the same id and question that went the
//! other way: the recorded process may be the client (query out, answer in) or the server
//! (query in, answer out), and a forwarding resolver is both, often reusing the id upstream.
//!
//! Unanswered queries have no `response_ns` and are not incomplete (a lost UDP answer is part
//! of what happened). An answer with no query in the recording is an exchange of its own,
//! timed at the answer and marked incomplete. Datagrams that do not parse are skipped.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use simple_dns::rdata::RData;
use simple_dns::{Packet, PacketFlag, Question, QTYPE, RCODE, TYPE};

use crate::exchange::{Detail, Dns, Exchange};

/// Answer records listed per exchange, and characters per record.
const MAX_ANSWERS: usize = 32;
const MAX_RECORD_CHARS: usize = 120;
/// Queries of one id waiting for an answer; older ones stay unanswered.
const MAX_WAITING: usize = 64;

/// One recorded UDP datagram.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    /// When it moved (CLOCK_MONOTONIC ns).
    pub at_ns: u64,
    /// Sent by the recorded process (else received).
    pub outgoing: bool,
    pub bytes: &'a [u8],
}

/// The bytes are a plausible DNS message: a standard header whose counts fit the length, and
/// a first question that reads.
pub fn looks_like_dns(bytes: &[u8]) -> bool {
    let Some(counts) = plausible_counts(bytes) else {
        return false;
    };
    let opcode = (bytes[2] >> 3) & 0x0f;
    if counts[0] != 1 || opcode > 5 {
        return false;
    }
    // The first question: uncompressed labels, then type and class.
    let mut at = 12;
    let mut name_len = 0;
    loop {
        let Some(&len) = bytes.get(at) else {
            return false;
        };
        at += 1;
        if len == 0 {
            break;
        }
        name_len += usize::from(len) + 1;
        if len > 63 || name_len > 255 {
            return false;
        }
        at += usize::from(len);
    }
    let Some(class) = bytes.get(at + 2..at + 4) else {
        return false;
    };
    // IN, CH, HS or ANY, ignoring mDNS's unicast-response bit.
    matches!(
        u16::from_be_bytes([class[0], class[1]]) & 0x7fff,
        1 | 3 | 4 | 255
    )
}

/// The section counts, when each record could fit in the bytes: a question takes 5 bytes at
/// least, a resource record 11. Checked before parsing so that a forged count cannot make the
/// parser reserve room for thousands of records.
fn plausible_counts(bytes: &[u8]) -> Option<[usize; 4]> {
    let header = bytes.get(..12)?;
    let count = |at: usize| usize::from(u16::from_be_bytes([header[at], header[at + 1]]));
    let counts = [count(4), count(6), count(8), count(10)];
    let least = counts[0] * 5 + (counts[1] + counts[2] + counts[3]) * 11;
    (least <= bytes.len() - 12).then_some(counts)
}

/// Exchanges from the datagrams of one socket (or flow), in order of the query.
pub fn parse(datagrams: &[Datagram]) -> Vec<Exchange> {
    let mut out: Vec<Exchange> = Vec::new();
    // (id, query went out) -> indexes in `out` of the queries still waiting, oldest first.
    let mut waiting: HashMap<(u16, bool), Vec<usize>> = HashMap::new();
    for datagram in datagrams {
        if plausible_counts(datagram.bytes).is_none() {
            continue;
        }
        let Ok(packet) = Packet::parse(datagram.bytes) else {
            continue;
        };
        let (name, qtype) = packet.questions.first().map(question).unwrap_or_default();
        if !packet.has_flags(PacketFlag::RESPONSE) {
            let queue = waiting.entry((packet.id(), datagram.outgoing)).or_default();
            if queue.len() == MAX_WAITING {
                queue.remove(0);
            }
            queue.push(out.len());
            out.push(Exchange {
                request_ns: datagram.at_ns,
                response_ns: None,
                request_bytes: datagram.bytes.len() as u64,
                response_bytes: 0,
                incomplete: false,
                detail: Detail::Dns(Dns {
                    id: packet.id(),
                    name,
                    qtype,
                    ..Dns::default()
                }),
            });
            continue;
        }
        let queue = waiting
            .entry((packet.id(), !datagram.outgoing))
            .or_default();
        let matching = queue.iter().position(|&index| {
            matches!(out.get(index).map(|ex| &ex.detail), Some(Detail::Dns(dns))
                if dns.name.eq_ignore_ascii_case(&name) && dns.qtype == qtype)
        });
        let index = match matching {
            Some(position) => queue.remove(position),
            None => {
                out.push(Exchange {
                    request_ns: datagram.at_ns,
                    response_ns: None,
                    request_bytes: 0,
                    response_bytes: 0,
                    incomplete: true,
                    detail: Detail::Dns(Dns {
                        id: packet.id(),
                        name,
                        qtype,
                        ..Dns::default()
                    }),
                });
                out.len() - 1
            }
        };
        let Some(ex) = out.get_mut(index) else {
            continue;
        };
        ex.response_ns = Some(datagram.at_ns);
        ex.response_bytes = datagram.bytes.len() as u64;
        if let Detail::Dns(dns) = &mut ex.detail {
            dns.rcode = Some(rcode_name(packet.rcode(), datagram.bytes));
            dns.answers = packet
                .answers
                .iter()
                .take(MAX_ANSWERS)
                .map(|rr| record(&rr.rdata))
                .collect();
        }
    }
    out
}

fn question(question: &Question) -> (String, String) {
    let qtype = match question.qtype {
        QTYPE::TYPE(ty) => type_name(ty),
        QTYPE::IXFR => "IXFR".to_string(),
        QTYPE::AXFR => "AXFR".to_string(),
        QTYPE::MAILA => "MAILA".to_string(),
        QTYPE::MAILB => "MAILB".to_string(),
        QTYPE::ANY => "ANY".to_string(),
    };
    (question.qname.to_string(), qtype)
}

fn type_name(ty: TYPE) -> String {
    match ty {
        TYPE::RouteThrough => "RT".to_string(),
        TYPE::NSAP_PTR => "NSAP-PTR".to_string(),
        TYPE::Unknown(code) => format!("TYPE{code}"),
        // The crate names the rest after their mnemonics.
        other => format!("{other:?}"),
    }
}

fn rcode_name(rcode: RCODE, bytes: &[u8]) -> String {
    match rcode {
        RCODE::NoError => "NOERROR".to_string(),
        RCODE::FormatError => "FORMERR".to_string(),
        RCODE::ServerFailure => "SERVFAIL".to_string(),
        RCODE::NameError => "NXDOMAIN".to_string(),
        RCODE::NotImplemented => "NOTIMP".to_string(),
        RCODE::Refused => "REFUSED".to_string(),
        RCODE::YXDOMAIN => "YXDOMAIN".to_string(),
        RCODE::YXRRSET => "YXRRSET".to_string(),
        RCODE::NXRRSET => "NXRRSET".to_string(),
        RCODE::NOTAUTH => "NOTAUTH".to_string(),
        RCODE::NOTZONE => "NOTZONE".to_string(),
        RCODE::BADVERS => "BADVERS".to_string(),
        // The header's four bits; an extended code in OPT is not recovered.
        RCODE::Reserved => format!("RCODE{}", bytes.get(3).map_or(0, |b| b & 0x0f)),
    }
}

/// "TYPE data" for one answer record.
fn record(rdata: &RData) -> String {
    let ty = type_name(rdata.type_code());
    let data = match rdata {
        RData::A(a) => Ipv4Addr::from(a.address).to_string(),
        RData::AAAA(aaaa) => Ipv6Addr::from(aaaa.address).to_string(),
        RData::CNAME(name) => format!("{}.", name.0),
        RData::NS(name) => format!("{}.", name.0),
        RData::PTR(name) => format!("{}.", name.0),
        RData::MX(mx) => format!("{} {}.", mx.preference, mx.exchange),
        RData::SRV(srv) => format!(
            "{} {} {} {}.",
            srv.priority, srv.weight, srv.port, srv.target
        ),
        RData::SOA(soa) => format!("{}. {}. {}", soa.mname, soa.rname, soa.serial),
        RData::TXT(txt) => {
            let text = String::try_from(txt.clone()).unwrap_or_else(|_| "<binary>".to_string());
            format!("{text:?}")
        }
        RData::Empty(_) => String::new(),
        // Others by their debug form, cut short.
        other => format!("{other:?}"),
    };
    let mut line = if data.is_empty() {
        ty
    } else {
        format!("{ty} {data}")
    };
    if let Some((cut, _)) = line.char_indices().nth(MAX_RECORD_CHARS) {
        line.truncate(cut);
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(out: &mut Vec<u8>, name: &str) {
        for label in name.split('.') {
            out.push(label.len() as u8);
            out.extend(label.as_bytes());
        }
        out.push(0);
    }

    /// A message with one question and `answers` as (type, rdata) records pointing at it.
    fn message(
        id: u16,
        flags: u16,
        qname: &str,
        qtype: u16,
        answers: &[(u16, Vec<u8>)],
    ) -> Vec<u8> {
        let mut out = id.to_be_bytes().to_vec();
        out.extend(flags.to_be_bytes());
        out.extend(1u16.to_be_bytes());
        out.extend((answers.len() as u16).to_be_bytes());
        out.extend([0, 0, 0, 0]);
        name(&mut out, qname);
        out.extend(qtype.to_be_bytes());
        out.extend(1u16.to_be_bytes());
        for (ty, rdata) in answers {
            out.extend([0xc0, 12]);
            out.extend(ty.to_be_bytes());
            out.extend(1u16.to_be_bytes());
            out.extend(300u32.to_be_bytes());
            out.extend((rdata.len() as u16).to_be_bytes());
            out.extend(rdata);
        }
        out
    }

    fn detail(ex: &Exchange) -> &Dns {
        match &ex.detail {
            Detail::Dns(dns) => dns,
            other => panic!("not dns: {other:?}"),
        }
    }

    #[test]
    fn a_query_and_its_answer() {
        let query = message(0x1234, 0x0100, "example.com", 1, &[]);
        let answer = message(0x1234, 0x8180, "example.com", 1, &[(1, vec![127, 0, 0, 1])]);
        assert!(looks_like_dns(&query) && looks_like_dns(&answer));
        let out = parse(&[
            Datagram {
                at_ns: 10,
                outgoing: true,
                bytes: &query,
            },
            Datagram {
                at_ns: 25,
                outgoing: false,
                bytes: &answer,
            },
        ]);
        assert_eq!(out.len(), 1);
        let dns = detail(&out[0]);
        assert_eq!(
            (dns.id, dns.name.as_str(), dns.qtype.as_str()),
            (0x1234, "example.com", "A")
        );
        assert_eq!(dns.rcode.as_deref(), Some("NOERROR"));
        assert_eq!(dns.answers, ["A 127.0.0.1"]);
        assert_eq!((out[0].request_ns, out[0].response_ns), (10, Some(25)));
        assert_eq!(out[0].latency_ns(), Some(15));
        assert!(!out[0].is_error());
    }

    #[test]
    fn nxdomain_answer_is_an_error() {
        let query = message(7, 0x0100, "nope.example", 1, &[]);
        let answer = message(7, 0x8183, "nope.example", 1, &[]);
        // The recorded process is the server here: the query comes in.
        let out = parse(&[
            Datagram {
                at_ns: 1,
                outgoing: false,
                bytes: &query,
            },
            Datagram {
                at_ns: 2,
                outgoing: true,
                bytes: &answer,
            },
        ]);
        assert_eq!(detail(&out[0]).rcode.as_deref(), Some("NXDOMAIN"));
        assert!(out[0].is_error());
    }

    #[test]
    fn unanswered_query_and_stray_answer() {
        let query = message(1, 0x0100, "a.example", 1, &[]);
        let other = message(2, 0x8180, "b.example", 1, &[]);
        let out = parse(&[
            Datagram {
                at_ns: 1,
                outgoing: true,
                bytes: &query,
            },
            Datagram {
                at_ns: 2,
                outgoing: false,
                bytes: &other,
            },
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].response_ns, None);
        assert!(!out[0].incomplete);
        assert_eq!(detail(&out[1]).name, "b.example");
        assert!(out[1].incomplete);
    }

    #[test]
    fn aaaa_and_cname_answers() {
        let mut cname = Vec::new();
        name(&mut cname, "a.example");
        let mut ipv6 = vec![0; 15];
        ipv6.push(1);
        let query = message(9, 0x0100, "www.example", 28, &[]);
        let answer = message(9, 0x8180, "www.example", 28, &[(5, cname), (28, ipv6)]);
        let out = parse(&[
            Datagram {
                at_ns: 1,
                outgoing: true,
                bytes: &query,
            },
            Datagram {
                at_ns: 2,
                outgoing: false,
                bytes: &answer,
            },
        ]);
        assert_eq!(detail(&out[0]).qtype, "AAAA");
        assert_eq!(detail(&out[0]).answers, ["CNAME a.example.", "AAAA ::1"]);
    }

    #[test]
    fn forged_counts_and_garbage_are_skipped() {
        let mut forged = message(3, 0x8180, "x.example", 1, &[]);
        forged[6] = 0xff;
        forged[7] = 0xff;
        assert!(!looks_like_dns(&forged));
        assert!(!looks_like_dns(b"GET / HTTP/1.1\r\n"));
        let garbage: Vec<u8> = (0..=255u8).collect();
        let out = parse(&[
            Datagram {
                at_ns: 1,
                outgoing: false,
                bytes: &forged,
            },
            Datagram {
                at_ns: 1,
                outgoing: false,
                bytes: &garbage,
            },
            Datagram {
                at_ns: 1,
                outgoing: false,
                bytes: &[],
            },
        ]);
        assert!(out.is_empty());
    }
}
