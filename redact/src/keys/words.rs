//! The key vocabulary: which words make a key name sensitive, and which words after them
//! make it a description of a secret instead.

use super::normalize;

/// Normalized words, each its bytes.
type Words = Vec<Vec<u8>>;

/// The words matched anywhere in a key and those matched as a whole component, normalized:
/// the lists, PII's with `pii`, and the configured `extra` keys (`matched_anywhere`, or
/// as components). Third, the prefilter stems of the configured keys matched anywhere:
/// each one's first letter, since a configured key may be written with its components run
/// together or apart (`XTENANTREF`, `x_tenant_ref`) and only that letter is in every
/// spelling.
pub(super) fn vocabulary(pii: bool, extra: &[String]) -> (Words, Words, Words) {
    let bytes = |words: &[&str]| words.iter().map(|w| w.as_bytes().to_vec()).collect();
    let mut contained: Vec<Vec<u8>> = bytes(CONTAINED);
    let mut component: Vec<Vec<u8>> = bytes(COMPONENT);
    if pii {
        contained.extend(bytes(PII_CONTAINED));
        component.extend(bytes(PII_COMPONENT));
    }
    let mut extra_stems = Vec::new();
    for key in extra {
        let norm = normalize(key.as_bytes());
        if matched_anywhere(key) {
            extra_stems.push(norm[..1].to_vec());
            contained.push(norm);
        } else if !norm.is_empty() {
            component.push(norm);
        }
    }
    (contained, component, extra_stems)
}

/// Whether configured key `key` is matched anywhere in a key rather than as a whole
/// component: a long one, and a short one written as more than one component (`x_id`),
/// which its spellings in text split into components none of which is the whole key.
fn matched_anywhere(key: &str) -> bool {
    let letters = normalize(key.as_bytes()).len();
    // Counted only for two to four letters, well inside what `Components` holds.
    letters >= 5 || (letters > 1 && super::component_count(key.as_bytes()) > 1)
}

/// Matched anywhere in the normalized key.
pub(super) const CONTAINED: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "secret",
    "credential",
    "apikey",
    "apitoken",
    "accesskey",
    "privatekey",
    "secretkey",
    "signingkey",
    "encryptionkey",
    "sessionkey",
    "masterkey",
    "authkey",
    "accountkey",
    "accesstoken",
    "refreshtoken",
    "authtoken",
    "sessiontoken",
    "securitytoken",
    "bearertoken",
    "authorization",
    "csrftoken",
    "xsrftoken",
    "csrfmiddlewaretoken",
    "sessionid",
    "sessid",
    "creditcard",
    "cardnumber",
    "accountnumber",
    "routingnumber",
    "bankaccount",
    "socialsecurity",
];

/// Matched only as a whole component.
pub(super) const COMPONENT: &[&str] = &[
    "pwd",
    "pw",
    "pass",
    "token",
    "auth",
    "otp",
    "totp",
    "mfa",
    "pin",
    "csrf",
    "xsrf",
    "cvv",
    "cvv2",
    "cvc",
    "ssn",
    "bearer",
    "jwt",
    "cookie",
    "iban",
    "sig",
    "signature",
];

/// PII keys: only in PII mode.
pub(super) const PII_CONTAINED: &[&str] = &[
    "email",
    "phonenumber",
    "dateofbirth",
    "birthdate",
    "passport",
    "driverlicense",
    "driverslicense",
    "zipcode",
    "postcode",
    "postalcode",
    "patientid",
    "medicalrecord",
    "diagnosis",
    "insuranceid",
    "policynumber",
    "providerid",
    "cardholder",
];
pub(super) const PII_COMPONENT: &[&str] = &[
    "phone", "mobile", "mail", "address", "dob", "zip", "swift", "expiry",
];

/// Words that, when everything after the sensitive word consists of them, make the key a
/// description of a secret (`token_type`) rather than the secret.
pub(super) const DESCRIPTIVE: &[&str] = &[
    "type",
    "kind",
    "ttl",
    "expiry",
    "expires",
    "expiration",
    "expired",
    "in",
    "at",
    "file",
    "path",
    "dir",
    "name",
    "url",
    "uri",
    "endpoint",
    "length",
    "len",
    "count",
    "size",
    "method",
    "mode",
    "hint",
    "policy",
    "format",
    "scheme",
    "version",
    "required",
    "enabled",
    "header",
    "headers",
    "algorithm",
    "alg",
    "provider",
    "source",
    "field",
    "label",
    "status",
    "strength",
    "min",
    "max",
    "rotation",
    "created",
    "updated",
    "changed",
    "lifetime",
    "duration",
    "age",
    "limit",
    "usage",
    "used",
    "strategy",
    "pattern",
    "prompt",
    "id",
    "ids",
    "sock",
    "socket",
    "env",
    "var",
    "arn",
    "ref",
    "set",
    "is",
    "has",
    "last",
    "next",
    "on",
];
