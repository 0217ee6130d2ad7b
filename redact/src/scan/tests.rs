//! Per-detector vectors, run through `Policy::redact_buffer` (the whole engine on one
//! complete buffer). Every secret here is fake.

use crate::{Config, Policy, MASK_BYTE};

fn policy(pii: bool) -> Policy {
    Policy::new(&Config {
        pii,
        ..Config::default()
    })
    .unwrap()
}

fn redact_with(p: &Policy, input: &str) -> String {
    let out = p.redact_buffer(input.as_bytes());
    assert_eq!(out.bytes.len(), input.len());
    String::from_utf8(out.bytes).unwrap()
}

fn redact(input: &str) -> String {
    redact_with(&policy(false), input)
}

fn redact_pii(input: &str) -> String {
    redact_with(&policy(true), input)
}

/// `secret` is gone and every byte of it is masked; `kept` survive.
#[track_caller]
fn masks(input: &str, secret: &str, kept: &[&str]) {
    let out = redact(input);
    assert!(!out.contains(secret), "{secret:?} survived in {out:?}");
    let at = input.find(secret).expect("secret is in the input");
    let masked = &out.as_bytes()[at..at + secret.len()];
    assert!(
        masked
            .iter()
            .all(|&b| b == MASK_BYTE || b == b'\n' || b == b'\r'),
        "{out:?}"
    );
    for k in kept {
        assert!(out.contains(k), "{k:?} lost in {out:?}");
    }
}

#[track_caller]
fn untouched(input: &str) {
    assert_eq!(redact(input), input);
}

fn rules(input: &str) -> Vec<String> {
    policy(false)
        .redact_buffer(input.as_bytes())
        .redactions
        .iter()
        .map(|r| r.rule.to_string())
        .collect()
}

#[test]
fn http_header_deny_list() {
    let req = "GET /api/items HTTP/1.1\r\nHost: example.test\r\nAuthorization: Bearer fake-token-value\r\n\
               Cookie: session=abc123; theme=dark\r\nX-Api-Key: fakekey000111\r\nX-Request-Id: 7f3a\r\n\r\n";
    let out = redact(req);
    for secret in [
        "fake-token-value",
        "session=abc123",
        "theme=dark",
        "fakekey000111",
    ] {
        assert!(!out.contains(secret), "{out}");
    }
    for kept in [
        "GET /api/items HTTP/1.1",
        "Host: example.test",
        "Authorization: ",
        "Cookie: ",
        "X-Api-Key: ",
        "X-Request-Id: 7f3a",
    ] {
        assert!(out.contains(kept), "{kept} in {out}");
    }
    assert_eq!(rules(req)[0], "http-header");
    masks(
        "HTTP/1.1 200 OK\r\nset-cookie: sid=s3ss10n; Path=/\r\n\r\n",
        "sid=s3ss10n; Path=/",
        &["set-cookie: "],
    );
    masks(
        "WWW-Authenticate: Basic realm=\"x\"\n",
        "Basic realm=\"x\"",
        &["WWW-Authenticate"],
    );
    untouched(
        "Content-Type: application/json\r\nETag: \"33a64df551425fcc55e4d42a148795d9f25f89d4\"\r\n",
    );
}

#[test]
fn extra_headers_from_config() {
    let p = Policy::new(&Config {
        extra_headers: vec!["X-Tenant-Secret-Ish".into()],
        detectors: [("key-value".to_string(), false)].into(),
        ..Config::default()
    })
    .unwrap();
    let out = redact_with(&p, "x-tenant-secret-ish: value1\r\nX-Other: value2\r\n");
    assert_eq!(out, "x-tenant-secret-ish: ******\r\nX-Other: value2\r\n");
}

#[test]
fn json_keys() {
    masks(
        r#"{"user":"alice","password":"hunter2!"}"#,
        "hunter2!",
        &["alice", "\"password\":\""],
    );
    masks(
        r#"{"clientSecret": "cs-1234"}"#,
        "cs-1234",
        &["clientSecret"],
    );
    masks(r#"{"pin": 4321, "n": 1}"#, "4321", &["\"n\": 1"]);
    masks(r#"{"api_key": "k\"ey\\"}"#, r#"k\"ey\\"#, &["api_key"]);
    masks(
        "{\n  \"refresh_token\":\n    \"rt-abc\"\n}",
        "rt-abc",
        &["refresh_token"],
    );
    masks(
        r#"{"credentials": {"user": "u1", "x": [1, 2]}, "ok": true}"#,
        r#""user": "u1", "x": [1, 2]"#,
        &["\"ok\": true"],
    );
    masks(r#"{'password': 'py-repr'}"#, "py-repr", &[]);
    masks(r#"{:password => "rb-hash"}"#, "rb-hash", &[]);
    masks(
        "<Password>xml-secret</Password>",
        "xml-secret",
        &["<Password>", "</Password>"],
    );
    untouched(
        r#"{"password_required": true, "token_type": "Bearer", "author": "Ann", "prompt_tokens": 12}"#,
    );
    untouched(r#"{"password": null, "secret": false}"#);
}

#[test]
fn form_query_conninfo_env() {
    masks(
        "POST /login HTTP/1.1\r\n\r\nuser=bob&password=p%40ss&next=/home",
        "p%40ss",
        &["user=bob", "next=/home"],
    );
    masks(
        "GET /cb?code=1&access_token=at-999&state=s HTTP/1.1\r\n",
        "at-999",
        &["state=s", "HTTP/1.1"],
    );
    masks(
        "host=db.internal port=5432 user=app password=conn-pw dbname=app",
        "conn-pw",
        &["user=app", "dbname=app"],
    );
    masks(
        "Server=db;User Id=sa;Password=SqlPw123;Encrypt=true",
        "SqlPw123",
        &["Encrypt=true"],
    );
    masks(
        "export AWS_SECRET_ACCESS_KEY=wJalrFAKEKEYEXAMPLE\nHOME=/root\n",
        "wJalrFAKEKEYEXAMPLE",
        &["HOME=/root"],
    );
    masks("DB_PASSWORD=\"two words\"\n", "two words", &["DB_PASSWORD"]);
    masks(
        "password: yaml secret value\nuser: x\n",
        "yaml secret value",
        &["user: x"],
    );
    masks(
        "mysql --user=root --password s3cretflag -h db",
        "s3cretflag",
        &["-h db"],
    );
    masks(
        "ALTER ROLE app WITH PASSWORD 'sql-pw';",
        "sql-pw",
        &["ALTER ROLE app"],
    );
    masks(
        "CREATE USER 'u'@'%' IDENTIFIED BY 'my-pw';",
        "my-pw",
        &["CREATE USER"],
    );
    untouched("PWD=/home/alice/src\nOLDPWD=/tmp\nPATH=/usr/bin\n");
    untouched("if a == token { return }\nlet x = password_len;\n");
    untouched("see https://example.test/path?q=1&page=2\n");
}

#[test]
fn jwt() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlIn0.ZmFrZS1zaWduYXR1cmU";
    masks(&format!("id={jwt} next"), jwt, &["next"]);
    assert!(rules(&format!("x {jwt}")).contains(&"jwt".to_string()));
    untouched("eyJ is how base64 JSON starts.");
}

#[test]
fn cloud_and_vendor_tokens() {
    masks(
        "key AKIAIOSFODNN7EXAMPLE used",
        "AKIAIOSFODNN7EXAMPLE",
        &["key ", " used"],
    );
    masks(
        "aws secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        &[],
    );
    masks(
        "token ghp_FAKEfakeFAKEfakeFAKEfakeFAKEfake0123 ok",
        "ghp_FAKEfakeFAKEfakeFAKEfakeFAKEfake0123",
        &[" ok"],
    );
    masks(
        "github_pat_11FAKE0000000000000000_fakefakefake",
        "github_pat_11FAKE0000000000000000_fakefakefake",
        &[],
    );
    masks(
        "slack xoxb-0000000000-FAKEFAKEFAKE",
        "xoxb-0000000000-FAKEFAKEFAKE",
        &[],
    );
    masks(
        "url https://hooks.slack.com/services/T000/B000/FAKEFAKEFAKE ok",
        "T000/B000/FAKEFAKEFAKE",
        &["https://hooks.slack.com/services/", " ok"],
    );
    masks(
        "stripe sk_live_FAKE0000000000000000 x",
        "sk_live_FAKE0000000000000000",
        &[" x"],
    );
    masks(
        "rk_test_FAKE0000000000000000",
        "rk_test_FAKE0000000000000000",
        &[],
    );
    masks(
        "google AIzaSyFAKE-FAKE_FAKE0000000000000000000 x",
        "AIzaSyFAKE-FAKE_FAKE0000000000000000000",
        &[],
    );
    masks(
        "gitlab glpat-FAKEfake00000000FAKE",
        "glpat-FAKEfake00000000FAKE",
        &[],
    );
    untouched("ghp_short sk_live_ AIza xoxb- akia");
}

#[test]
fn private_key_blocks() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEfakeFAKEfake\nFAKEfakeFAKE==\n-----END RSA PRIVATE KEY-----\n";
    masks(
        pem,
        "MIIEfakeFAKEfake",
        &[
            "-----BEGIN RSA PRIVATE KEY-----",
            "-----END RSA PRIVATE KEY-----",
        ],
    );
    masks(&format!("x{pem}y"), "FAKEfakeFAKE==", &[]);
    let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEfake\n-----END OPENSSH PRIVATE KEY-----";
    masks(openssh, "b3BlbnNzaC1rZXktdjEfake", &[]);
    let cert = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUFakeCertBody0123456789abcXYZ\n-----END CERTIFICATE-----\n";
    untouched(cert);
}

#[test]
fn url_userinfo_bearer_basic() {
    masks(
        "postgres://app:db-pass-1@db:5432/app",
        "db-pass-1",
        &["postgres://app:", "@db:5432/app"],
    );
    masks("redis://:r3dis@cache:6379", "r3dis", &["@cache"]);
    untouched("see https://example.test:8443/path and mailto:x@example.test");
    masks(
        "curl -H 'x: Bearer abc.def-123'",
        "abc.def-123",
        &["Bearer "],
    );
    masks(
        "auth = basic dXNlcjpwYXNzd29yZA==;",
        "dXNlcjpwYXNzd29yZA==",
        &[],
    );
    untouched("Basic information for the bearer of this document.");
}

#[test]
fn card_numbers() {
    masks(
        "card 4111 1111 1111 1111 exp",
        "4111 1111 1111 1111",
        &["card ", " exp"],
    );
    masks(
        "pan=4111-1111-1111-1111&x=1",
        "4111-1111-1111-1111",
        &["&x=1"],
    );
    masks("amex 378282246310005.", "378282246310005", &[]);
    masks(
        "order 12345 4111111111111111 2024",
        "4111111111111111",
        &["order 12345", "2024"],
    );
    untouched("card 4111 1111 1111 1112 (fails Luhn)");
    untouched("ts 1716212345678901234 id 0000000000000000");
    untouched("v1.4111111111111111");
}

#[test]
fn ssn() {
    masks("ssn 123-45-6789.", "123-45-6789", &["ssn "]);
    untouched("000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000");
    untouched("id 2024-01-15 phone 555-123-4567 and 1-123-45-6789-0");
}

#[test]
fn high_entropy_tokens() {
    masks(
        "token: Zx9Qm2LkP4vR7tW1yB3nC8dF",
        "Zx9Qm2LkP4vR7tW1yB3nC8dF",
        &[],
    );
    masks(
        "X-Custom: kJ8sD2fG5hQ9wE1rT7yU3iO6pA4sZ0xC\r\n",
        "kJ8sD2fG5hQ9wE1rT7yU3iO6pA4sZ0xC",
        &["X-Custom: "],
    );
    untouched("id 550e8400-e29b-41d4-a716-446655440000 sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    untouched("commit e83c5163316f89bfbde7d9ab23ca2e25604af290 ThisIsMyVeryLongVariableName2");
}

#[test]
fn redis_inline_and_resp() {
    masks("AUTH inline-pw\r\n", "inline-pw", &["AUTH "]);
    masks(
        "auth default inline-pw2\r\nGET k\r\n",
        "default inline-pw2",
        &["GET k"],
    );
    let resp = "*2\r\n$4\r\nAUTH\r\n$9\r\nresp-pass\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    masks(resp, "resp-pass", &["AUTH", "GET", "key"]);
    untouched("Auth is required for this endpoint, see docs\n");
}

#[test]
fn postgres_password_message() {
    let body = b"user\0app\0database\0app\0\0";
    let mut s = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    s.extend_from_slice(&196_608u32.to_be_bytes());
    s.extend_from_slice(body);
    s.push(b'p');
    s.extend_from_slice(&12u32.to_be_bytes());
    s.extend_from_slice(b"pg-pass\0");
    s.push(b'Q');
    s.extend_from_slice(&13u32.to_be_bytes());
    s.extend_from_slice(b"SELECT 1;\0");
    let out = policy(false).redact_buffer(&s);
    let text = String::from_utf8_lossy(&out.bytes);
    assert!(!text.contains("pg-pass") && text.contains("SELECT 1;") && text.contains("user\0app"));
    assert_eq!(&*out.redactions[0].rule, "postgres-password");
}

#[test]
fn pii_mode() {
    let input = "mail ann@example.test call +1 555-123-4567 from 192.0.2.10 or 2001:db8::1 email=x";
    assert_eq!(redact(input), input);
    let out = redact_pii(input);
    for pii in [
        "ann@example.test",
        "555-123-4567",
        "192.0.2.10",
        "2001:db8::1",
    ] {
        assert!(!out.contains(pii), "{pii} in {out}");
    }
    assert!(out.contains("mail ") && out.contains(" call ") && out.contains("email="));
    for ok in [
        "version 1.2.3 and 10.0",
        "time 12:30:45",
        "Vec::new() and Self::add",
        "mac aa:bb:cc:dd:ee:ff",
    ] {
        assert_eq!(redact_pii(ok), ok);
    }
}

#[test]
fn user_rules_and_switches() {
    let p = Policy::new(&Config {
        rules: vec![
            crate::RuleConfig {
                name: "ticket".into(),
                pattern: "TKT-[0-9]{6}".into(),
            },
            crate::RuleConfig {
                name: "emp".into(),
                pattern: "emp:(?P<secret>[a-z]+)".into(),
            },
        ],
        detectors: [
            ("jwt".to_string(), false),
            ("high-entropy".to_string(), false),
        ]
        .into(),
        ..Config::default()
    })
    .unwrap();
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlIn0.ZmFrZS1zaWduYXR1cmU";
    let out = p.redact_buffer(format!("TKT-123456 emp:alice {jwt}").as_bytes());
    let text = String::from_utf8(out.bytes).unwrap();
    assert_eq!(text, format!("********** emp:***** {jwt}"));
    assert_eq!(&*out.redactions[0].rule, "ticket");
    assert_eq!(&*out.redactions[1].rule, "emp");
}

#[test]
fn disabled_policy_changes_nothing() {
    let p = Policy::new(&Config {
        enabled: false,
        ..Config::default()
    })
    .unwrap();
    let input = "Authorization: Bearer abc123def\npassword=x\n";
    assert_eq!(redact_with(&p, input), input);
    assert!(p.summary().detectors.is_empty());
}

#[test]
fn annotations_are_relative_and_merged() {
    let input = "a\nAuthorization: Bearer tok3n-value\n";
    let out = policy(false).redact_buffer(input.as_bytes());
    assert_eq!(out.redactions.len(), 1);
    let r = &out.redactions[0];
    assert_eq!(&*r.rule, "http-header");
    assert_eq!(
        &input[r.offset as usize..(r.offset + r.length) as usize],
        "Bearer tok3n-value"
    );
}

/// An unquoted value ends at the first byte of its separator's end set, and only there:
/// every ASCII byte after `abc`, for each kind of separator.
#[test]
fn unquoted_values_end_exactly_at_their_end_bytes() {
    let p = policy(false);
    let cases: [(&str, &[u8], &str); 5] = [
        ("{\"password\": ", b",}] \t\r\n", "}"),
        ("password: ", b"\r\n", "\n"),
        ("password=", b" \t\r\n&;\"'\0", " "),
        ("password => ", b" \t\r\n,;\"'<>)]}", " "),
        ("--password ", b" \t\r\n\0", " "),
    ];
    for (key, ends, close) in cases {
        for x in 0u8..0x80 {
            let input = format!("{key}abc{}zz{close}", x as char);
            let out = p.redact_buffer(input.as_bytes()).bytes;
            let value = key.len();
            let masked_to = if ends.contains(&x) {
                value + 3
            } else {
                value + 6
            };
            let masked = out[value..masked_to].iter().all(|&b| b == MASK_BYTE);
            assert!(
                masked && out[masked_to..] == input.as_bytes()[masked_to..],
                "{key:?} then {x:#04x}: {:?}",
                String::from_utf8_lossy(&out)
            );
        }
    }
}
