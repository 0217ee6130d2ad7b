//! From ring-buffer bytes to recorded events: `decode` parses one record, `assemble` joins a
//! syscall with its payload chunks, `sockaddr` reads raw socket addresses.

pub mod assemble;
pub mod decode;
pub mod sockaddr;

pub use assemble::Assembler;
pub use decode::{decode, DecodeError, RawRecord};
