//! An Event's fields, encoded by hand exactly as prost encodes them. recorderd writes one
//! Event per syscall, and prost's generic encoder (a call per varint, each key a varint of
//! its own, a message's length computed by walking it) was a fifth of the daemon's work per
//! 64-byte event (`recorder-daemon`'s `pipeline_replay` example under callgrind). The
//! messages are destructured, so a field added to the schema does not compile until it is
//! written here; `tests::events_encode_as_prost_encodes_them` holds every byte to prost's.
//! Fields that are rarely set (an address, argv, new descriptors, redactions, TLS, a
//! resource's socket addresses) are left to prost's own functions.

use prost::encoding;
use recorder_proto::v1::{Event, Payload, Resource};

/// Wire types.
const VARINT: u64 = 0;
const LENGTH_DELIMITED: u64 = 2;

/// Appends `event`'s fields (the message without a key or length of its own).
pub(super) fn encode(event: &Event, buf: &mut Vec<u8>) {
    let Event {
        mono_ns,
        duration_ns,
        pid,
        tid,
        syscall,
        syscall_nr,
        args,
        ret,
        fd,
        resource,
        path,
        path_truncated,
        address,
        payload,
        new_path,
        argv,
        argv_truncated,
        new_fds,
        redactions,
        tls,
        stack_id,
        stack_lost,
    } = event;
    number(buf, 1, *mono_ns);
    number(buf, 2, *duration_ns);
    number(buf, 3, u64::from(*pid));
    number(buf, 4, u64::from(*tid));
    bytes(buf, 5, syscall.as_bytes());
    number(buf, 6, u64::from(*syscall_nr));
    packed(buf, 7, args);
    // int64 is its two's complement, as u64.
    number(buf, 8, *ret as u64);
    number(buf, 9, *fd as u64);
    if let Some(resource) = resource {
        message(buf, 10, |buf| encode_resource(resource, buf));
    }
    bytes(buf, 11, path.as_bytes());
    flag(buf, 12, *path_truncated);
    if let Some(address) = address {
        encoding::message::encode(13, address, buf);
    }
    if let Some(payload) = payload {
        message(buf, 14, |buf| encode_payload(payload, buf));
    }
    bytes(buf, 15, new_path.as_bytes());
    encoding::string::encode_repeated(16, argv, buf);
    flag(buf, 17, *argv_truncated);
    encoding::int64::encode_packed(18, new_fds, buf);
    encoding::message::encode_repeated(19, redactions, buf);
    if let Some(tls) = tls {
        encoding::message::encode(20, tls, buf);
    }
    number(buf, 21, u64::from(*stack_id));
    flag(buf, 22, *stack_lost);
}

fn encode_resource(resource: &Resource, buf: &mut Vec<u8>) {
    let Resource {
        kind,
        name,
        peer,
        local,
        socket_family,
        socket_type,
    } = resource;
    // An enum is an int32: negative values are sign-extended to ten bytes.
    number(buf, 1, i64::from(*kind) as u64);
    bytes(buf, 2, name.as_bytes());
    if let Some(peer) = peer {
        encoding::message::encode(3, peer, buf);
    }
    if let Some(local) = local {
        encoding::message::encode(4, local, buf);
    }
    number(buf, 5, u64::from(*socket_family));
    number(buf, 6, u64::from(*socket_type));
}

fn encode_payload(payload: &Payload, buf: &mut Vec<u8>) {
    let Payload {
        direction,
        data,
        length,
        truncated,
        incomplete,
        redactions,
        lost_bytes,
        capped_bytes,
        shed,
        tls_ciphertext,
        omitted_bytes,
        tls_not_decrypted,
    } = payload;
    number(buf, 1, i64::from(*direction) as u64);
    bytes(buf, 2, data);
    number(buf, 3, *length);
    flag(buf, 4, *truncated);
    flag(buf, 5, *incomplete);
    encoding::message::encode_repeated(6, redactions, buf);
    number(buf, 7, *lost_bytes);
    number(buf, 8, *capped_bytes);
    flag(buf, 9, *shed);
    flag(buf, 10, *tls_ciphertext);
    number(buf, 11, *omitted_bytes);
    flag(buf, 12, *tls_not_decrypted);
}

/// A varint field, left out when zero (proto3).
#[inline]
fn number(buf: &mut Vec<u8>, tag: u64, value: u64) {
    if value != 0 {
        varint(buf, tag << 3 | VARINT);
        varint(buf, value);
    }
}

#[inline]
fn flag(buf: &mut Vec<u8>, tag: u64, value: bool) {
    number(buf, tag, u64::from(value));
}

/// A string or bytes field, left out when empty.
#[inline]
fn bytes(buf: &mut Vec<u8>, tag: u64, value: &[u8]) {
    if !value.is_empty() {
        nested(buf, tag, value.len());
        buf.extend_from_slice(value);
    }
}

/// Packed repeated uint64, left out when empty.
fn packed(buf: &mut Vec<u8>, tag: u64, values: &[u64]) {
    if !values.is_empty() {
        let len = values
            .iter()
            .map(|&v| encoding::encoded_len_varint(v))
            .sum();
        nested(buf, tag, len);
        for &value in values {
            varint(buf, value);
        }
    }
}

/// A message field: its key, its length and the fields `encode` appends. The length is
/// known only once they are written: room for one byte is left, which is enough below 128
/// bytes (a resource, a small payload), and the fields are moved up when it is not. prost
/// walks the message once more to compute it first instead.
fn message(buf: &mut Vec<u8>, tag: u64, encode: impl FnOnce(&mut Vec<u8>)) {
    varint(buf, tag << 3 | LENGTH_DELIMITED);
    let at = buf.len();
    buf.push(0);
    encode(buf);
    let len = buf.len() - at - 1;
    if len < 0x80 {
        buf[at] = len as u8;
        return;
    }
    let (prefix, n) = leb128(len as u64);
    let end = buf.len();
    buf.resize(end + n - 1, 0);
    buf.copy_within(at + 1..end, at + n);
    buf[at..at + n].copy_from_slice(&prefix[..n]);
}

/// The key and length of a length-delimited field of `len` bytes.
#[inline]
fn nested(buf: &mut Vec<u8>, tag: u64, len: usize) {
    varint(buf, tag << 3 | LENGTH_DELIMITED);
    varint(buf, len as u64);
}

/// LEB128. Most are one byte; a longer one is built in a fixed array and appended whole
/// (a copy of constant size), then the vector is cut back to its length: one capacity check
/// instead of one per byte, as pushing each byte would take.
#[inline(always)]
fn varint(buf: &mut Vec<u8>, value: u64) {
    if value < 0x80 {
        buf.push(value as u8);
        return;
    }
    let (bytes, n) = leb128(value);
    let len = buf.len();
    buf.extend_from_slice(&bytes);
    buf.truncate(len + n);
}

/// `value` in LEB128: the first `n` bytes of the array.
#[inline(always)]
fn leb128(mut value: u64) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut n = 0;
    while value >= 0x80 {
        bytes[n] = value as u8 | 0x80;
        value >>= 7;
        n += 1;
    }
    bytes[n] = value as u8;
    (bytes, n + 1)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;
    use recorder_proto::v1::{Redaction, SocketAddress, Tls};

    use super::*;

    /// Zero, small, one-byte edges, large and negative (as i64) values alike.
    fn number() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            0..300u64,
            Just(127u64),
            Just(128u64),
            any::<u64>(),
            any::<i64>().prop_map(|v| v as u64),
        ]
    }

    /// Lengths whose varints take one, two and three bytes.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => Just(String::new()),
            8 => "[a-z/:.\\[\\]0-9é]{1,20}",
            2 => "x{120,140}",
            1 => (16_370..16_400usize).prop_map(|n| "y".repeat(n)),
        ]
    }

    fn data() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => Just(Vec::new()),
            8 => proptest::collection::vec(any::<u8>(), 1..200),
            1 => (16_370..16_400usize).prop_map(|n| vec![0xa5; n]),
        ]
    }

    fn redaction() -> impl Strategy<Value = Redaction> {
        (text(), any::<u32>(), any::<u32>(), text()).prop_map(|(rule, offset, length, field)| {
            Redaction {
                rule,
                offset,
                length,
                field,
            }
        })
    }

    fn address() -> impl Strategy<Value = Option<SocketAddress>> {
        proptest::option::of((any::<u32>(), data(), any::<u32>(), text()).prop_map(
            |(family, ip, port, unix_path)| SocketAddress {
                family,
                ip,
                port,
                unix_path,
            },
        ))
    }

    fn resource() -> impl Strategy<Value = Option<Box<Resource>>> {
        proptest::option::of(
            (
                any::<i32>(),
                text(),
                address(),
                address(),
                number(),
                number(),
            )
                .prop_map(|(kind, name, peer, local, family, kind_of)| {
                    Box::new(Resource {
                        kind,
                        name,
                        peer,
                        local,
                        socket_family: family as u32,
                        socket_type: kind_of as u32,
                    })
                }),
        )
    }

    fn payload() -> impl Strategy<Value = Option<Payload>> {
        let flags = proptest::collection::vec(any::<bool>(), 5);
        let redactions = proptest::collection::vec(redaction(), 0..3);
        proptest::option::of(
            (
                any::<i32>(),
                data(),
                (number(), number(), number(), number()),
                flags,
                redactions,
            )
                .prop_map(
                    |(direction, data, (length, lost, capped, omitted), f, redactions)| Payload {
                        direction,
                        data,
                        length,
                        truncated: f[0],
                        incomplete: f[1],
                        redactions,
                        lost_bytes: lost,
                        capped_bytes: capped,
                        shed: f[2],
                        tls_ciphertext: f[3],
                        omitted_bytes: omitted,
                        tls_not_decrypted: f[4],
                    },
                ),
        )
    }

    fn event() -> impl Strategy<Value = Event> {
        let numbers = proptest::collection::vec(number(), 8);
        let strings = (
            text(),
            text(),
            text(),
            proptest::collection::vec(text(), 0..3),
        );
        let lists = (
            proptest::collection::vec(number(), 0..7),
            proptest::collection::vec(any::<i64>(), 0..3),
            proptest::collection::vec(redaction(), 0..2),
        );
        let flags = proptest::collection::vec(any::<bool>(), 3);
        let tls = proptest::option::of(text().prop_map(|library| Tls { library }));
        (
            numbers,
            strings,
            lists,
            flags,
            (resource(), address(), payload(), tls),
        )
            .prop_map(
                |(n, (syscall, path, new_path, argv), (args, new_fds, redactions), f, nested)| {
                    let (resource, address, payload, tls) = nested;
                    Event {
                        mono_ns: n[0],
                        duration_ns: n[1],
                        pid: n[2] as u32,
                        tid: n[3] as u32,
                        syscall,
                        syscall_nr: n[4] as u32,
                        args,
                        ret: n[5] as i64,
                        fd: n[6] as i64,
                        resource,
                        path,
                        path_truncated: f[0],
                        address,
                        payload,
                        new_path,
                        argv,
                        argv_truncated: f[1],
                        new_fds,
                        redactions,
                        tls,
                        stack_id: n[7] as u32,
                        stack_lost: f[2],
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

        #[test]
        fn events_encode_as_prost_encodes_them(event in event()) {
            let mut ours = Vec::new();
            encode(&event, &mut ours);
            prop_assert_eq!(ours, event.encode_to_vec());
        }
    }

    #[test]
    fn varints_of_every_length() {
        for shift in 0..64 {
            for value in [1u64 << shift, (1u64 << shift) - 1, u64::MAX >> shift] {
                let mut ours = Vec::new();
                varint(&mut ours, value);
                let mut theirs = Vec::new();
                encoding::encode_varint(value, &mut theirs);
                assert_eq!(ours, theirs, "{value:#x}");
            }
        }
    }
}
