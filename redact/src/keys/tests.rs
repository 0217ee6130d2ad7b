use super::*;

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
