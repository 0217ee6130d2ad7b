//! TLS library calls recorded as plaintext: the functions the uprobes attach to, the
//! numbers their records carry in place of a syscall number, and the per-thread call in
//! progress.
//!
//! A plaintext record is a [`crate::SyscallRecord`] whose `nr` is one of [`FUNCTIONS`]'
//! numbers (above every syscall number), with its DATA chunks before it like a syscall's:
//! `args` are `[fd, buf, num, conn, 0, 0]`, where `fd` is the descriptor of the first
//! payload syscall the thread made inside the call (-1 if it made none: the daemon then
//! takes the connection's last known descriptor) and `conn` the library's connection object
//! (`SSL *`, `gnutls_session_t`); `ret` is the plaintext bytes moved, or the call's own
//! result when it moved none.

/// First number of the TLS functions; syscall numbers stay below `MAX_SYSCALL_NR`.
pub const NR_BASE: u32 = 0x1_0000;

/// Where a function's byte count is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// The return value (`int` for OpenSSL, `ssize_t` for GnuTLS): bytes if positive.
    Returned,
    /// `*arg3` (`size_t *`), when the call returns 1 (OpenSSL's `_ex` functions).
    OutArg3,
}

/// One probed function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    pub name: &'static str,
    /// The number its records carry.
    pub nr: u32,
    /// Which library exports it: "openssl" or "gnutls".
    pub library: &'static str,
    /// Plaintext sent (true) or received.
    pub out: bool,
    pub count: Count,
    /// The width of the return value: 4 for `int`, 8 for `ssize_t`.
    pub ret_bytes: u32,
}

const fn function(
    name: &'static str,
    index: u32,
    library: &'static str,
    out: bool,
    count: Count,
) -> Function {
    let ret_bytes = if matches!(library.as_bytes(), b"gnutls") {
        8
    } else {
        4
    };
    Function {
        name,
        nr: NR_BASE + index,
        library,
        out,
        count,
        ret_bytes,
    }
}

/// Every function the probes attach to; a function's index here is `nr - NR_BASE`.
pub const FUNCTIONS: [Function; 6] = [
    function("SSL_write", 0, "openssl", true, Count::Returned),
    function("SSL_read", 1, "openssl", false, Count::Returned),
    function("SSL_write_ex", 2, "openssl", true, Count::OutArg3),
    function("SSL_read_ex", 3, "openssl", false, Count::OutArg3),
    function("gnutls_record_send", 4, "gnutls", true, Count::Returned),
    function("gnutls_record_recv", 5, "gnutls", false, Count::Returned),
];

/// Handshake and shutdown functions, and their library. Their calls make no record: the
/// syscalls inside them are marked as TLS ciphertext (a probed library moved them), so that
/// ciphertext nothing probed moved stands out (`recorded as ciphertext`).
pub const HANDSHAKES: [(&str, &str); 6] = [
    ("SSL_do_handshake", "openssl"),
    ("SSL_connect", "openssl"),
    ("SSL_accept", "openssl"),
    ("SSL_shutdown", "openssl"),
    ("gnutls_handshake", "gnutls"),
    ("gnutls_bye", "gnutls"),
];

/// [`Call::function`] of a handshake call.
pub const HANDSHAKE: u32 = u32::MAX;

/// The function a record's `nr` names, if it is a TLS one.
pub const fn by_nr(nr: u32) -> Option<&'static Function> {
    if nr < NR_BASE || nr - NR_BASE >= FUNCTIONS.len() as u32 {
        return None;
    }
    Some(&FUNCTIONS[(nr - NR_BASE) as usize])
}

/// The TLS call a thread is in, from the entry probe to the return probe.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Call {
    /// The library's connection object (arg0).
    pub conn: u64,
    /// The plaintext buffer (arg1) and its size (arg2).
    pub buf: u64,
    pub num: u64,
    /// `size_t *` the `_ex` functions write the count to (arg3); 0 otherwise.
    pub count_ptr: u64,
    pub enter_ns: u64,
    /// The first payload syscall's descriptor inside the call, -1 until one is made.
    pub fd: i64,
    /// Index into [`FUNCTIONS`], or [`HANDSHAKE`].
    pub function: u32,
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<Call>() == 56);
