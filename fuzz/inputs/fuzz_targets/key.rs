// The identity the sealed fuzz target opens segments with, and `make_seed` seals them to: a
// key made for fuzzing (`recorder keygen`), public on purpose, sealing nothing real.
pub const IDENTITY: &str =
    "AGE-SECRET-KEY-1Z0CY0UNE5GE9E8H4CXN5AX0NY29RKWEZ2CX02XTL5T0X62LV487QCHM638";
