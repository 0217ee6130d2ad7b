//! What every object built from this crate needs, shared by its two roots: `main.rs` (the
//! object recorderd loads) and `floor.rs` (the benchmark's floor, which only `cargo xtask
//! bench` loads). It owns reading load-time globals, the panic handler and the license
//! section; programs and maps stay with their root.

/// Reads a load-time global; volatile so the compiler does not fold in the default.
#[inline(always)]
pub fn global<T: Copy>(value: &'static T) -> T {
    // SAFETY: the reference is valid; volatile only stops constant folding.
    unsafe { core::ptr::read_volatile(value) }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
