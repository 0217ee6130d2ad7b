use super::*;
use proptest::prelude::{any, prop, prop_oneof, Strategy};

fn split(key: &str) -> Vec<String> {
    let key = Components::of(key.as_bytes());
    let (norm, comps) = (key.norm(), key.comps());
    comps
        .map(|(s, e)| String::from_utf8(norm[s..e].to_vec()).unwrap())
        .collect()
}

#[test]
fn splits_every_spelling() {
    assert_eq!(split("clientSecret"), ["client", "secret"]);
    assert_eq!(split("client-secret"), ["client", "secret"]);
    assert_eq!(split("CLIENT_SECRET"), ["client", "secret"]);
    assert_eq!(split("APIKey"), ["api", "key"]);
    assert_eq!(split("x.api.key2"), ["x", "api", "key", "2"]);
}

#[test]
fn sensitive_keys() {
    let m = KeyMatcher::new(false, &[]);
    for key in [
        "password",
        "Password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "apiKey",
        "X-Api-Key",
        "access_token",
        "refresh_token",
        "client_secret",
        "clientSecret",
        "client-secret",
        "CLIENT_SECRET",
        "private_key",
        "credentials",
        "session_token",
        "auth",
        "AWS_SECRET_ACCESS_KEY",
        "DB_PASSWORD",
        "PGPASSWORD",
        "password_hash",
        "passwordConfirmation",
        "secret_key_base",
        "user.password",
        "sessionid",
        "JSESSIONID",
        "csrfmiddlewaretoken",
        "authenticity_token",
        "pin",
        "cvv",
        "card_number",
    ] {
        assert!(m.is_sensitive(key.as_bytes()), "{key} should be sensitive");
    }
}

#[test]
fn ordinary_keys() {
    let m = KeyMatcher::new(false, &[]);
    for key in [
        "author",
        "username",
        "shipping",
        "mapping",
        "prompt_tokens",
        "max_tokens",
        "tokenizer",
        "token_type",
        "expires_in",
        "password_file",
        "secret_name",
        "AWS_ACCESS_KEY_ID",
        "private_key_id",
        // After the longest sensitive word (`secretkey`, not `secret`), only descriptions.
        "secretKeyId",
        "secret_key_id",
        "secretkey_hint",
        "bypass",
        "key",
        "id",
        "email",
        "SSH_AUTH_SOCK",
        "",
        "--",
    ] {
        assert!(
            !m.is_sensitive(key.as_bytes()),
            "{key} should not be sensitive"
        );
    }
}

#[test]
fn pii_keys_only_in_pii_mode() {
    let off = KeyMatcher::new(false, &[]);
    let on = KeyMatcher::new(true, &[]);
    for key in ["email", "phone_number", "date_of_birth", "homeAddress"] {
        assert!(!off.is_sensitive(key.as_bytes()), "{key}");
        assert!(on.is_sensitive(key.as_bytes()), "{key}");
    }
}

#[test]
fn extra_keys_follow_the_same_rules() {
    let m = KeyMatcher::new(false, &["internal_ref".into(), "sek".into()]);
    assert!(m.is_sensitive(b"my_internal_ref"));
    assert!(m.is_sensitive(b"INTERNAL-REF"));
    assert!(m.is_sensitive(b"sek"));
    assert!(!m.is_sensitive(b"seek"));
}

#[test]
fn prefilter_covers_every_spelling() {
    let m = KeyMatcher::new(true, &[]);
    let words = m.prefilter_words();
    for key in [
        "api_key",
        "API-KEY",
        "x_access_token",
        "id_token",
        "date_of_birth",
    ] {
        let lower = key.to_ascii_lowercase();
        assert!(
            words
                .iter()
                .any(|w| lower.as_bytes().windows(w.len()).any(|x| x == &w[..])),
            "{key}"
        );
    }
}

/// Every word the matcher knows, and a few it does not, to build keys from.
fn vocabulary() -> Vec<&'static str> {
    let mut words = [
        CONTAINED,
        COMPONENT,
        PII_CONTAINED,
        PII_COMPONENT,
        DESCRIPTIVE,
    ]
    .concat();
    words.extend(EXTRA_POOL);
    words.extend([
        "key", "api", "user", "x", "a", "2", "v2", "ship", "ping", "ssh", "or",
    ]);
    words
}

/// Extra keys: short ones become components, long ones contained words.
const EXTRA_POOL: &[&str] = &[
    "sek",
    "k",
    "Zq",
    "x-tra",
    "internal_ref",
    "abcde",
    "apiKEY2",
    "my.Value",
    "ID9",
    "-",
    "",
];

fn spell(word: &str, case: u8) -> String {
    match case {
        0 => word.to_string(),
        1 => word.to_ascii_uppercase(),
        _ => word.get(..1).unwrap_or("").to_ascii_uppercase() + word.get(1..).unwrap_or(""),
    }
}

/// A vocabulary word, mostly whole but sometimes cut (a key's components need not be
/// whole words), spelled lower, upper or capitalized.
fn spelled_word() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vocabulary());
    (word, any::<prop::sample::Index>(), 0..6u8, 0..3u8).prop_map(|(word, at, cut, case)| {
        let at = at.index(word.len() + 1);
        let word = match cut {
            0 => &word[..at],
            1 => &word[at..],
            _ => word,
        };
        spell(word, case)
    })
}

/// A key built from vocabulary words joined by separators (or none, for camelCase and
/// run-together words).
fn word_key() -> impl Strategy<Value = Vec<u8>> {
    let sep = prop::sample::select(vec!["", "", "_", "-", ".", " ", "é", "9"]);
    prop::collection::vec((spelled_word(), sep), 0..12).prop_map(|parts| {
        parts
            .iter()
            .flat_map(|(w, s)| [w.as_bytes(), s.as_bytes()].concat())
            .collect()
    })
}

/// A sensitive word whose last letters begin a descriptive word spelled as the next
/// component (`secreTtl`: `secret`, then `ttl`), so a component straddles the word's end.
fn straddling(word: &str, descriptive: &str) -> Option<String> {
    let overlap = (1..=word.len().min(descriptive.len()))
        .rev()
        .find(|&k| word.ends_with(&descriptive[..k]))?;
    Some(word[..word.len() - overlap].to_string() + &spell(descriptive, 2))
}

fn straddling_key() -> impl Strategy<Value = Vec<u8>> {
    let sensitive = [CONTAINED, COMPONENT, PII_CONTAINED, PII_COMPONENT].concat();
    let descriptive = prop::sample::select(DESCRIPTIVE);
    (prop::sample::select(sensitive), descriptive, word_key()).prop_map(|(w, d, rest)| {
        let key = straddling(w, d).unwrap_or_else(|| w.to_string() + &spell(d, 2));
        [key.as_bytes(), &rest].concat()
    })
}

/// Arbitrary bytes weighted toward what keys are made of, around `MAX_KEY_LEN` long.
fn byte_key() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => b'a'..=b'z',
        3 => b'A'..=b'Z',
        2 => b'0'..=b'9',
        2 => prop::sample::select(b"_-. ".to_vec()),
        1 => 0x80..=0xffu8,
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..=MAX_KEY_LEN + 12)
}

fn extras() -> impl Strategy<Value = Vec<String>> {
    let extra = prop_oneof![
        prop::sample::select(EXTRA_POOL).prop_map(String::from),
        "[a-zA-Z0-9_.-]{0,8}",
    ];
    prop::collection::vec(extra, 0..3)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

    #[test]
    fn same_answers_as_the_reference(
        pii in any::<bool>(),
        extra in extras(),
        keys in prop::collection::vec(
            prop_oneof![word_key(), byte_key(), straddling_key()],
            1..24,
        ),
    ) {
        let fast = KeyMatcher::new(pii, &extra);
        let old = reference::KeyMatcher::new(pii, &extra);
        for key in &keys {
            proptest::prop_assert_eq!(
                fast.is_sensitive(key),
                old.is_sensitive(key),
                "key {:?}, pii {}, extra {:?}",
                String::from_utf8_lossy(key),
                pii,
                extra
            );
        }
    }
}

#[test]
fn same_answers_as_the_reference_for_every_listed_spelling() {
    let words = vocabulary();
    let extra = ["sek".to_string(), "internal_ref".to_string()];
    for pii in [false, true] {
        let fast = KeyMatcher::new(pii, &extra);
        let old = reference::KeyMatcher::new(pii, &extra);
        let same = |key: &str| {
            assert_eq!(
                fast.is_sensitive(key.as_bytes()),
                old.is_sensitive(key.as_bytes()),
                "{key}, pii {pii}"
            );
        };
        // Each word alone, and before and after a few others, in every case and spelling.
        for a in &words {
            for b in ["", "type", "value", "Key", "ID", "2", "x"] {
                for sep in ["", "_", "."] {
                    for key in [format!("{a}{sep}{b}"), format!("{b}{sep}{a}")] {
                        same(&key);
                        same(&key.to_ascii_uppercase());
                    }
                }
            }
        }
        // Each word's end shared with each descriptive word's start.
        for a in &words {
            for d in DESCRIPTIVE {
                if let Some(key) = straddling(a, d) {
                    same(&key);
                    same(&format!("{key}_id"));
                }
            }
        }
    }
}
