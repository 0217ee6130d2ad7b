//! One lookup in the kernel's BTF (`/sys/kernel/btf/vmlinux`): a struct member's byte offset.
//! The BTF fork program reads the child's `task_struct::pid` through it, and that offset
//! depends on the kernel's configuration. aya parses BTF too, but does not expose its types.
//!
//! The format is the kernel's Documentation/bpf/btf.rst: a header, then type records whose
//! length depends on their kind, then a string section.

use thiserror::Error;

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";
const MAGIC: u16 = 0xeb9f;
const HEADER_BYTES: usize = 24;
const TYPE_BYTES: usize = 12;

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;

#[derive(Debug, Error)]
pub enum BtfLookupError {
    #[error("cannot read {VMLINUX}: {0}")]
    Read(#[source] std::io::Error),
    #[error("the kernel's BTF is malformed: {0}")]
    Malformed(&'static str),
    #[error("the kernel's BTF has no struct {0}")]
    NoStruct(String),
    #[error("the kernel's BTF has no member {member} in struct {name}")]
    NoMember { name: String, member: String },
}

/// Byte offsets of `(struct, member)`s in the kernel's BTF, which is read once; each
/// lookup fails on its own.
pub fn vmlinux_member_offsets<const N: usize>(
    wanted: [(&str, &str); N],
) -> Result<[Result<u32, BtfLookupError>; N], BtfLookupError> {
    let data = std::fs::read(VMLINUX).map_err(BtfLookupError::Read)?;
    Ok(wanted.map(|(name, member)| member_offset(&data, name, member)))
}

/// One type record: where it starts in `data`, and its `info` word.
#[derive(Clone, Copy)]
struct Type {
    at: usize,
    info: u32,
}

impl Type {
    fn kind(self) -> u32 {
        (self.info >> 24) & 0x1f
    }

    fn vlen(self) -> usize {
        (self.info & 0xffff) as usize
    }

    fn kind_flag(self) -> bool {
        self.info >> 31 != 0
    }
}

struct Btf<'a> {
    data: &'a [u8],
    strings: &'a [u8],
    /// Indexed by type id; id 0 is `void` and has no record.
    types: Vec<Type>,
}

/// Byte offset of `member` in `struct name`, looking through anonymous structs and unions
/// (task_struct keeps some fields in them on some configurations).
pub fn member_offset(data: &[u8], name: &str, member: &str) -> Result<u32, BtfLookupError> {
    let btf = Btf::parse(data)?;
    let strukt = (1..btf.types.len())
        .find(|&id| {
            let t = btf.types[id];
            t.kind() == KIND_STRUCT && t.vlen() > 0 && btf.name(t) == Some(name.as_bytes())
        })
        .ok_or_else(|| BtfLookupError::NoStruct(name.to_owned()))?;
    let bits = btf
        .find_member(strukt, member.as_bytes(), 0)?
        .ok_or_else(|| BtfLookupError::NoMember {
            name: name.to_owned(),
            member: member.to_owned(),
        })?;
    Ok(bits / 8)
}

impl<'a> Btf<'a> {
    fn parse(data: &'a [u8]) -> Result<Self, BtfLookupError> {
        let header = data
            .get(..HEADER_BYTES)
            .ok_or(BtfLookupError::Malformed("shorter than its header"))?;
        if u16::from_le_bytes([header[0], header[1]]) != MAGIC {
            return Err(BtfLookupError::Malformed(
                "no BTF magic (or not little-endian)",
            ));
        }
        let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap()) as usize;
        let (header_len, type_off, type_len, str_off, str_len) =
            (word(4), word(8), word(12), word(16), word(20));
        let section = |off: usize, len: usize| {
            let start = header_len.checked_add(off)?;
            data.get(start..start.checked_add(len)?)
        };
        let type_section = section(type_off, type_len)
            .ok_or(BtfLookupError::Malformed("type section out of bounds"))?;
        let strings = section(str_off, str_len)
            .ok_or(BtfLookupError::Malformed("string section out of bounds"))?;
        let mut types = vec![Type { at: 0, info: 0 }];
        let mut at = 0;
        while at < type_section.len() {
            let info = read_u32(type_section, at + 4)?;
            let t = Type { at, info };
            at += TYPE_BYTES + extra_bytes(t)?;
            types.push(t);
        }
        Ok(Btf {
            data: type_section,
            strings,
            types,
        })
    }

    fn name(&self, t: Type) -> Option<&'a [u8]> {
        let offset = read_u32(self.data, t.at).ok()? as usize;
        let rest = self.strings.get(offset..)?;
        Some(&rest[..rest.iter().position(|&b| b == 0)?])
    }

    /// Bit offset of `member` in struct or union `id`, plus `base`.
    fn find_member(
        &self,
        id: usize,
        member: &[u8],
        base: u32,
    ) -> Result<Option<u32>, BtfLookupError> {
        let t = self.types[id];
        for i in 0..t.vlen() {
            let at = t.at + TYPE_BYTES + i * 12;
            let name_off = read_u32(self.data, at)? as usize;
            let type_id = read_u32(self.data, at + 4)? as usize;
            let raw = read_u32(self.data, at + 8)?;
            // With kind_flag set the top byte is a bitfield's size.
            let bits = base
                + if t.kind_flag() {
                    raw & 0x00ff_ffff
                } else {
                    raw
                };
            if name_off == 0 {
                if let Some(inner) = self.struct_or_union(type_id) {
                    if let Some(found) = self.find_member(inner, member, bits)? {
                        return Ok(Some(found));
                    }
                }
                continue;
            }
            let name = self.strings.get(name_off..).unwrap_or_default();
            if name
                .strip_prefix(member)
                .is_some_and(|rest| rest.first() == Some(&0))
            {
                return Ok(Some(bits));
            }
        }
        Ok(None)
    }

    /// The struct or union type `id` names, through typedefs and qualifiers.
    fn struct_or_union(&self, mut id: usize) -> Option<usize> {
        for _ in 0..16 {
            let t = *self.types.get(id)?;
            match t.kind() {
                KIND_STRUCT | KIND_UNION => return Some(id),
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST => {
                    id = read_u32(self.data, t.at + 8).ok()? as usize
                }
                _ => return None,
            }
        }
        None
    }
}

/// Bytes that follow a type's 12-byte record, by kind (btf.rst, "Type encoding").
fn extra_bytes(t: Type) -> Result<usize, BtfLookupError> {
    Ok(match t.kind() {
        // INT, VAR, DECL_TAG: one word.
        1 | 14 | 17 => 4,
        // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG: nothing.
        2 | 7..=12 | 16 | 18 => 0,
        // ARRAY: one btf_array.
        3 => 12,
        // STRUCT, UNION, DATASEC, ENUM64: 12 bytes an entry.
        4 | 5 | 15 | 19 => 12 * t.vlen(),
        // ENUM, FUNC_PROTO: 8 bytes an entry.
        6 | 13 => 8 * t.vlen(),
        _ => return Err(BtfLookupError::Malformed("a type of unknown kind")),
    })
}

fn read_u32(data: &[u8], at: usize) -> Result<u32, BtfLookupError> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .ok_or(BtfLookupError::Malformed(
            "a type record runs past its section",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob: `int`, then `struct task { int a; union { int x; int pid; }; }` with the
    /// union anonymous at byte 8, and a forward declaration of the same name before it.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0task\0a\0x\0pid\0".to_vec();
        let (int, task, a, x, pid) = (1u32, 5u32, 10u32, 12u32, 14u32);
        let mut types = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                types.extend_from_slice(&w.to_le_bytes());
            }
        };
        // [1] int: INT, size 4, encoding word.
        push(&[int, 1 << 24, 4, 32]);
        // [2] fwd task.
        push(&[task, 7 << 24, 0]);
        // [3] anonymous union { x at 0; pid at 0 }.
        push(&[0, (5 << 24) | 2, 4, x, 1, 0, pid, 1, 0]);
        // [4] struct task { a at 0; <anon union> at bit 64 }.
        push(&[task, (4 << 24) | 2, 12, a, 1, 0, 0, 3, 64]);
        let mut data = Vec::new();
        for w in [
            u32::from(MAGIC) | (1 << 16),
            HEADER_BYTES as u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            data.extend_from_slice(&w.to_le_bytes());
        }
        data.extend_from_slice(&types);
        data.extend_from_slice(&strings);
        data
    }

    #[test]
    fn finds_a_member_inside_an_anonymous_union() {
        assert_eq!(member_offset(&blob(), "task", "pid").unwrap(), 8);
        assert_eq!(member_offset(&blob(), "task", "a").unwrap(), 0);
    }

    #[test]
    fn names_what_is_missing() {
        let missing = member_offset(&blob(), "task", "tgid").unwrap_err();
        assert_eq!(
            missing.to_string(),
            "the kernel's BTF has no member tgid in struct task"
        );
        assert!(matches!(
            member_offset(&blob(), "cred", "uid"),
            Err(BtfLookupError::NoStruct(_))
        ));
    }

    #[test]
    fn refuses_truncated_or_foreign_data() {
        let data = blob();
        for len in [0, 10, HEADER_BYTES, data.len() - 1] {
            assert!(matches!(
                member_offset(&data[..len], "task", "pid"),
                Err(BtfLookupError::Malformed(_))
            ));
        }
        let mut big_endian = data.clone();
        big_endian.swap(0, 1);
        assert!(member_offset(&big_endian, "task", "pid").is_err());
    }

    /// `task_struct` has `pid` and `tgid` side by side (pid_t each). The machines recorderd
    /// is built and tested on have BTF (the syscall programs' default needs it).
    #[test]
    fn the_running_kernels_task_struct_has_pid_before_tgid() {
        let data =
            std::fs::read(VMLINUX).expect("this kernel has no BTF at /sys/kernel/btf/vmlinux");
        let pid = member_offset(&data, "task_struct", "pid").unwrap();
        let tgid = member_offset(&data, "task_struct", "tgid").unwrap();
        assert_eq!(tgid, pid + 4);
    }
}
