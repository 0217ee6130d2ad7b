//! Inputs built to sit on the fast path's edges, for the differential tests.

use proptest::prelude::*;

/// The fifth policy pair's additions. The keys: one of several components, a short one
/// of two (matched anywhere), and the one docs/REDACTION.md's example configures.
pub(super) const CONFIGURED_KEYS: &[&str] = &["x_tenant_ref", "x_id", "internal_ref"];
pub(super) const CONFIGURED_HEADER: &str = "X-Tenant-Ticket";
pub(super) const CONFIGURED_RULE: &str = "TKT-[0-9]{8}";

/// The configured keys as traffic spells them, keys holding them (`x_idx` holds `xid`), and
/// keys that hold only part of one (`tenant_ref`, `internal`).
const CONFIGURED_KEY_SPELLINGS: &[&str] = &[
    "x_tenant_ref",
    "XTenantRef",
    "X-TENANT-REF",
    "xtenantref",
    "tenant_ref",
    "x_id",
    "xId",
    "X_ID",
    "x_idx",
    "internalRef",
    "INTERNAL_REF",
    "internal",
];

/// The configured header and rule in both cases, and near misses (a longer and a shorter
/// name, a ticket a digit short).
const CONFIGURED_OTHERS: &[&str] = &[
    "\nX-Tenant-Ticket: ",
    "\nx-tenant-ticket:",
    "\nX-Tenant-Tickets: ",
    "\nX-Tenant-Ticke:",
    "TKT-12345678",
    "TKT-1234567",
];

/// Fragments that sit on the prefilter's edges: separators with and without spaces and
/// quotes, flags, XML, digit groups with joiners, key stems in every case, trigger
/// literals in the wrong case, padding, and line breaks.
pub(super) fn soup() -> impl Strategy<Value = Vec<u8>> {
    const PARTS: &[&str] = &[
        "password",
        "PassWord",
        "pass",
        "pw",
        "api_key",
        "apiKey",
        "token",
        "secret",
        "client-secret",
        "x",
        "ab",
        "auth",
        "pin",
        "sig",
        "mapping",
        "author",
        "id",
        "=",
        ":",
        "::",
        "://",
        "=>",
        ":=",
        "==",
        "'",
        "\"",
        "`",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\0",
        "-",
        "--",
        ".",
        "<",
        ">",
        "</",
        "{",
        "}",
        "[",
        "]",
        ",",
        ";",
        "&",
        "?",
        "/",
        "@",
        "4111",
        "1111",
        "0",
        "12",
        "123",
        "45",
        "6789",
        "555",
        "9",
        "eyJ",
        "eyj",
        "AKIA",
        "akia",
        "ghp_",
        "xoxb-",
        "sk_live_",
        "AIza",
        "glpat-",
        "hf_",
        "Bearer ",
        "BEARER\t \t",
        "basic ",
        "identified by ",
        "IDENTIFIED WITH caching_sha2_password BY '",
        "hooks.slack.com/services/",
        "hooks.slack.com/triggers/",
        "ASIA",
        "github_pat_",
        "xapp-1-",
        "whsec_",
        "ya29.",
        "GOCSPX-",
        "npm_",
        "sk-proj-",
        "SG.",
        "shpat_",
        "dop_v1_",
        "pypi-AgEIcHlwaS5vcmc",
        "hvs.",
        "gho_",
        "ghs_",
        "rk_test_",
        "xoxp-",
        "shpss_",
        "shpca_",
        "sk-ant-api03-",
        "AROA",
        "ACCA",
        "ABCDEF0123456789",
        "eyJeyJ",
        "eyj-",
        "aws",
        "Zx9Qm2LkP4vR7tW1yB3nC8dF",
        "kJ8sD2fG5hQ9wE1rT7yU3iO6pA4s",
        "abcdefghij",
        "ABCDEFGHIJ",
        "0123456789",
        "-----BEGIN PRIVATE KEY-----",
        "-----END PRIVATE KEY-----",
        "-----BEGIN CERTIFICATE-----",
        "-----END CERTIFICATE-----",
        "Authorization: ",
        "Cookie: ",
        "AUTH ",
        "PASSWORD '",
        "user@example.com",
        "+1 555 123 4567",
        "10.0.0.1",
        "fe80::1",
    ];
    proptest::collection::vec(
        prop_oneof![
            4 => (0..PARTS.len()).prop_map(|i| PARTS[i].as_bytes().to_vec()),
            1 => prop_oneof![pick(CONFIGURED_KEY_SPELLINGS), pick(CONFIGURED_OTHERS)]
                .prop_map(|p| p.as_bytes().to_vec()),
            1 => proptest::collection::vec(any::<u8>(), 0..4),
        ],
        0..80,
    )
    .prop_map(|parts| parts.concat())
}

fn pick(parts: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    (0..parts.len()).prop_map(move |i| parts[i])
}

/// Keys in every spelling `kv` knows (JSON, form, conninfo, YAML, `=>`, XML, SQL, flags)
/// and some it must not act on, with values of every shape, glued by random joiners.
pub(super) fn key_values() -> impl Strategy<Value = Vec<u8>> {
    const OPEN: &[&str] = &[
        "", "", " ", "\n", "\t", "\0", "<", "\"", "'", "--", "-", ".", "&", "x",
    ];
    const KEY: &[&str] = &[
        "password",
        "PASSWORD",
        "db_password",
        "apiKey",
        "token",
        "token_type",
        "author",
        "pin",
        "pwd",
        "PWD",
        "secret.",
        "-secret",
        "x",
        "auth",
    ];
    const CLOSE: &[&str] = &["", "", "\"", "'", ">", " ", "\t", "-"];
    const SEP: &[&str] = &[
        ":", "=", "=>", ":=", " '", "'", "", " ", "::", "://", "==", ": ", " = ", ":\n",
    ];
    const VALUE: &[&str] = &[
        "x",
        "hunter2",
        "\"v v\"",
        "'v'",
        "`v`",
        "{\"a\": [1]}",
        "[1, 2]",
        "true",
        "/home/u",
        "abc</password>",
        "a&b",
        "",
        "\n  \"later\"",
        "s3cr3t;x",
    ];
    const GLUE: &[&str] = &["", " ", "\n", "&", ";", ", ", "\r\n"];
    proptest::collection::vec(
        (
            pick(OPEN),
            prop_oneof![4 => pick(KEY), 1 => pick(CONFIGURED_KEY_SPELLINGS)],
            pick(CLOSE),
            pick(SEP),
            pick(VALUE),
            pick(GLUE),
        )
            .prop_map(|(o, k, c, s, v, g)| format!("{o}{k}{c}{s}{v}{g}")),
        1..10,
    )
    .prop_map(|items| items.concat().into_bytes())
}

/// Digit groups joined by what does and does not continue a chain (card numbers, SSNs,
/// phone numbers and near misses), at every offset from a 64-byte block edge.
pub(super) fn digit_groups() -> impl Strategy<Value = Vec<u8>> {
    (
        0..70usize,
        proptest::collection::vec(
            (
                prop_oneof![
                    3 => proptest::collection::vec(b'0'..=b'9', 1..7),
                    1 => (100..=999u32, 0..=99u32, 0..=9999u32)
                        .prop_map(|(a, g, s)| format!("{a}-{g:02}-{s:04}").into_bytes()),
                    1 => pick(&["4111 1111 1111 1111", "4111111111111111", "5500-0000-0000-0004"])
                        .prop_map(|c| c.as_bytes().to_vec()),
                ],
                pick(&[" ", "-", "", "  ", "--", "x", ".", "\n", " -"]),
            ),
            1..12,
        ),
    )
        .prop_map(|(pad, groups)| {
            let mut out = vec![b' '; pad];
            out.extend_from_slice(b"a ");
            for (digits, joiner) in groups {
                out.extend(digits);
                out.extend_from_slice(joiner.as_bytes());
            }
            out
        })
}

/// Token runs of every length around the 18/20-byte edges (with and without `=`
/// padding, hex-only, mixed, with non-hex letters) and header lines with names around
/// the 64-byte limit, at every offset from a 64-byte block edge.
pub(super) fn token_runs_and_headers() -> impl Strategy<Value = Vec<u8>> {
    const ALPHABET: &[u8] = b"Zx9Qm2LkP4vR7tW1yB3nC8dFabcdef0123456789+/_-";
    (
        0..70usize,
        proptest::collection::vec(
            (
                prop_oneof![
                    3 => (0..ALPHABET.len(), 14..26usize, 1..7usize).prop_map(|(o, n, step)| {
                        (0..n).map(|i| ALPHABET[(o + i * step) % ALPHABET.len()]).collect()
                    }),
                    1 => (54..66usize, pick(&[": v", ":v", " : v", "x: v"]))
                        .prop_map(|(n, rest)| {
                            let mut line = b"\nX-".to_vec();
                            line.resize(n + 1, b'a');
                            line.extend_from_slice(b"-token");
                            line.extend_from_slice(rest.as_bytes());
                            line
                        }),
                    1 => pick(&["\nAuthorization: x", "\nAUTH pw", "\nCookie:a=b"])
                        .prop_map(|h| h.as_bytes().to_vec()),
                    1 => pick(CONFIGURED_OTHERS).prop_map(|h| h.as_bytes().to_vec()),
                ],
                pick(&["", "=", "==", "===", " ", "\n", ".", ",", "\u{e9}"]),
            ),
            1..10,
        ),
    )
        .prop_map(|(pad, parts)| {
            let mut out = vec![b' '; pad];
            for (part, joiner) in parts {
                out.extend(part);
                out.extend_from_slice(joiner.as_bytes());
            }
            out
        })
}

/// Vendor tokens (most prefixes the detectors know, some in the wrong case) with bodies of
/// every alphabet and of lengths around the patterns' bounds and the 15-byte long-run
/// edge: upper-case hex (an AWS key id can be all hex), lower-case hex, base64, digits,
/// at every offset from a 64-byte block edge, glued so runs merge and split.
pub(super) fn vendor_tokens() -> impl Strategy<Value = Vec<u8>> {
    const PREFIXES: &[&str] = &[
        "AKIA",
        "ASIA",
        "ACCA",
        "ABIA",
        "AROA",
        "akia",
        "ghp_",
        "gho_",
        "ghr_",
        "github_pat_",
        "xoxb-",
        "xoxp-",
        "xapp-1-",
        "sk_live_",
        "rk_test_",
        "whsec_",
        "AIza",
        "aiza",
        "GOCSPX-",
        "ya29.",
        "glpat-",
        "npm_",
        "hf_",
        "sk-",
        "sk-proj-",
        "sk-ant-admin01-",
        "SG.",
        "shpat_",
        "shppa_",
        "dop_v1_",
        "pypi-AgEIcHlwaS5vcmc",
        "hvs.",
        "ghu_",
        "ghs_",
        "xoxa-",
        "xoxs-",
        "sk_test_",
        "rk_live_",
        "AGPA",
        "AIDA",
        "ANPA",
        "APKA",
        "ASCA",
        "shpca_",
        "shpss_",
        "sk-ant-api03-",
        "hooks.slack.com/services/",
        "",
    ];
    const ALPHABETS: &[&[u8]] = &[
        b"0123456789ABCDEF",
        b"0123456789abcdef",
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        b"Zx9Qm2LkP4vR7tW1yB3nC8dF+/_-",
        b"0123456789",
    ];
    (
        0..70usize,
        proptest::collection::vec(
            (
                pick(PREFIXES),
                0..ALPHABETS.len(),
                0..1000usize,
                // The patterns' body lengths, and their neighbours, more often than not.
                prop_oneof![
                    2 => proptest::sample::select(vec![9, 10, 11, 15, 16, 17, 20, 22, 24, 30, 32, 35, 36, 50, 64]),
                    1 => 6..72usize,
                ],
                pick(&["", " ", " ", "\n", "-", ".", "_", "=", "/", ":", "\"", "x"]),
            ),
            1..8,
        ),
    )
        .prop_map(|(pad, parts)| {
            let mut out = vec![b' '; pad];
            for (prefix, alphabet, seed, n, joiner) in parts {
                let alphabet = ALPHABETS[alphabet];
                out.extend_from_slice(prefix.as_bytes());
                out.extend((0..n).map(|i| alphabet[(seed + i * 7) % alphabet.len()]));
                out.extend_from_slice(joiner.as_bytes());
            }
            out
        })
}
