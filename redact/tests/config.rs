//! Config parsing and policy compilation through the public API.

use recorder_redact::{
    detector_names, Boundary, CaptureMode, Config, ConfigError, Policy, DEFAULT_HOLD_BACK_BYTES,
};

const FULL: &str = r#"
enabled = true
pii = true
extra_keys = ["internal_ref"]
extra_headers = ["X-Tenant-Key"]
builtin_never_capture = true
never_capture_paths = ["/srv/app/secrets/**", "*.tfstate"]

[detectors]
high-entropy = false
ip-address = false

[[rules]]
name = "ticket-id"
pattern = "TKT-[0-9]{8}"

[capture]
file = "metadata"
network = "full"

[hold_back]
bytes = 131072
millis = 500
"#;

#[test]
fn full_config_parses_and_compiles() {
    let config = Config::from_toml(FULL).unwrap();
    assert!(config.pii);
    assert_eq!(config.rules[0].name, "ticket-id");
    let policy = Policy::new(&config).unwrap();
    let summary = policy.summary();
    assert!(summary.enabled && summary.pii);
    assert!(!summary
        .detectors
        .iter()
        .any(|d| d == "high-entropy" || d == "ip-address"));
    assert!(summary.detectors.iter().any(|d| d == "email"));
    assert_eq!(summary.rules, ["ticket-id"]);
    assert_eq!(policy.capture_mode(Boundary::File), CaptureMode::Metadata);
    assert_eq!(policy.capture_mode(Boundary::Network), CaptureMode::Full);
    assert_eq!(policy.hold_back().bytes, 131_072);
    assert_eq!(policy.hold_back().nanos, 500_000_000);
    assert_eq!(
        policy.never_capture("/srv/app/secrets/db.txt"),
        Some("/srv/app/secrets/**")
    );
    assert_eq!(
        policy.never_capture("/infra/prod.tfstate"),
        Some("*.tfstate")
    );
    assert_eq!(policy.never_capture("/etc/shadow"), Some("/etc/shadow"));
    assert_eq!(policy.never_capture("/etc/hostname"), None);
    let out = policy.redact_buffer(
        b"x-tenant-key: abc\ninternal_ref=r1 TKT-12345678 ann@example.test 10.0.0.1\n",
    );
    assert_eq!(
        String::from_utf8(out.bytes).unwrap(),
        "x-tenant-key: ***\ninternal_ref=** ************ **************** 10.0.0.1\n"
    );
}

#[test]
fn defaults() {
    let config = Config::from_toml("").unwrap();
    assert_eq!(config, Config::default());
    let policy = Policy::new(&config).unwrap();
    let summary = policy.summary();
    assert!(summary.enabled && !summary.pii);
    let pii = recorder_redact::pii_detector_names();
    let expected: Vec<&str> = detector_names()
        .into_iter()
        .filter(|d| !pii.contains(d))
        .collect();
    assert_eq!(summary.detectors, expected);
    assert!(summary.rules.is_empty());
    assert_eq!(policy.hold_back().bytes, DEFAULT_HOLD_BACK_BYTES);
    assert_eq!(policy.hold_back().nanos, 200_000_000);
    assert_eq!(policy.capture_mode(Boundary::File), CaptureMode::Full);
    assert_eq!(
        policy.never_capture("/home/u/.ssh/id_ed25519"),
        Some("id_ed25519")
    );
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let err = Config::from_toml("enabled = true\npi = true\n").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::Parse { line: 2, .. }), "{err:?}");
    assert!(text.contains("`pi`"), "{text}");
    assert!(!text.contains('\n'));
    let err = Config::from_toml("[hold_back]\nbyte = 1\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`byte`"), "{err}");
    let err = Config::from_toml("[capture]\nfile = \"sometimes\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sometimes") || err.contains("variant"),
        "{err}"
    );
}

#[test]
fn unknown_detector_is_an_error() {
    let config = Config::from_toml("[detectors]\njwtt = false\n").unwrap();
    let err = Policy::new(&config).unwrap_err();
    assert!(
        matches!(&err, ConfigError::UnknownDetector { name, .. } if name == "jwtt"),
        "{err:?}"
    );
    assert!(err.to_string().contains("jwtt"));
}

#[test]
fn bad_regex_names_the_rule_and_not_much_else() {
    let config = Config::from_toml("[[rules]]\nname = \"ok\"\npattern = \"a+\"\n[[rules]]\nname = \"broken-rule\"\npattern = \"(unclosed\"\n").unwrap();
    let err = Policy::new(&config).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, ConfigError::BadRulePattern { name, .. } if name == "broken-rule"),
        "{err:?}"
    );
    assert!(
        text.contains("broken-rule") && !text.contains('\n'),
        "{text}"
    );
}

#[test]
fn rule_names_are_checked() {
    for (name, pattern) in [
        ("", "x"),
        ("jwt", "x"),
        ("has space", "x"),
        ("fail-closed", "x"),
    ] {
        let config = Config {
            rules: vec![recorder_redact::RuleConfig {
                name: name.into(),
                pattern: pattern.into(),
            }],
            ..Config::default()
        };
        assert!(
            matches!(Policy::new(&config), Err(ConfigError::BadRuleName { .. })),
            "{name}"
        );
    }
    let twice = Config::from_toml(
        "[[rules]]\nname = \"a\"\npattern = \"x\"\n[[rules]]\nname = \"a\"\npattern = \"y\"\n",
    )
    .unwrap();
    assert!(matches!(
        Policy::new(&twice),
        Err(ConfigError::BadRuleName { .. })
    ));
}

#[test]
fn bounds_and_entries_are_validated() {
    let err = Policy::new(&Config::from_toml("[hold_back]\nbytes = 10\n").unwrap()).unwrap_err();
    assert!(
        matches!(err, ConfigError::HoldBack { field: "bytes", .. }),
        "{err:?}"
    );
    let err =
        Policy::new(&Config::from_toml("[hold_back]\nmillis = 999999\n").unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::HoldBack {
                field: "millis",
                ..
            }
        ),
        "{err:?}"
    );
    let err = Policy::new(&Config::from_toml("[hold_back]\nmemory = 4096\n").unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "redaction config: hold_back.memory = 4096 is outside 1048576..=17179869184"
    );
    let err =
        Policy::new(&Config::from_toml("extra_headers = [\"bad header\"]\n").unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::BadEntry {
                field: "extra_headers",
                ..
            }
        ),
        "{err:?}"
    );
    let err = Policy::new(&Config::from_toml("extra_keys = [\"__\"]\n").unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::BadEntry {
                field: "extra_keys",
                ..
            }
        ),
        "{err:?}"
    );
    let err =
        Policy::new(&Config::from_toml("never_capture_paths = [\"relative/path\"]\n").unwrap())
            .unwrap_err();
    assert!(
        matches!(&err, ConfigError::BadPath { pattern, .. } if pattern == "relative/path"),
        "{err:?}"
    );
}

#[test]
fn switching_a_detector_off_disables_it() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlIn0.ZmFrZXNpZ25hdHVyZQ";
    let input = format!("a {jwt} b\nAuthorization: x\n");
    let on = Policy::new(&Config::default()).unwrap();
    assert!(!String::from_utf8(on.redact_buffer(input.as_bytes()).bytes)
        .unwrap()
        .contains(jwt));
    // JWTs are also high-entropy-ish: switch both off to see the JWT pass.
    let off = Policy::new(
        &Config::from_toml("[detectors]\njwt = false\nhigh-entropy = false\n").unwrap(),
    )
    .unwrap();
    let out = String::from_utf8(off.redact_buffer(input.as_bytes()).bytes).unwrap();
    assert!(out.contains(jwt), "{out}");
    assert!(
        out.contains("Authorization: *"),
        "other detectors stay on: {out}"
    );
    assert!(!off.summary().detectors.iter().any(|d| d == "jwt"));
    let headers_off = Policy::new(
        &Config::from_toml("[detectors]\nhttp-header = false\nkey-value = false\n").unwrap(),
    )
    .unwrap();
    assert_eq!(
        headers_off.redact_buffer(b"Cookie: a=b\n").bytes,
        b"Cookie: a=b\n"
    );
}

#[test]
fn policy_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Policy>();
    check::<recorder_redact::StreamRedactor>();
}

/// The policy of config text `toml` (which must parse), or why it was refused.
fn policy_from(toml: &str) -> Result<Policy, ConfigError> {
    Policy::new(&Config::from_toml(toml).unwrap())
}

/// Why the policy `toml` describes is refused.
fn refusal(toml: &str) -> String {
    policy_from(toml).unwrap_err().to_string()
}

/// `text` through `policy`, as text.
fn redacted(policy: &Policy, text: &str) -> String {
    String::from_utf8(policy.redact_buffer(text.as_bytes()).bytes).unwrap()
}

/// A configured header name of 64 bytes, the longest the HTTP/1 scan reads, is masked; a
/// longer one, which would never match, is refused with the reason. (One once loaded and
/// never matched: its value was written unmasked.)
#[test]
fn extra_headers_are_masked_up_to_the_longest_name_read() {
    let name = format!("X-Tenant-{}", "R".repeat(55));
    let policy = policy_from(&format!(
        "extra_headers = [\"{name}\"]\n[detectors]\nkey-value = false\n"
    ))
    .unwrap();
    let input = format!("GET / HTTP/1.1\r\n{name}: eu-west\r\n\r\n");
    assert_eq!(
        redacted(&policy, &input),
        format!("GET / HTTP/1.1\r\n{name}: *******\r\n\r\n")
    );

    let longer = format!("{name}S");
    assert_eq!(
        refusal(&format!("extra_headers = [\"{longer}\"]\n")),
        format!(
            "redaction config: extra_headers entry `{longer}` is longer than 64 bytes, the \
             longest header name redaction reads"
        )
    );
}

/// A configured key of 128 bytes, the longest key the key-value detector reads, masks its
/// value as written; a longer one, which would never match as written, is refused with the
/// reason.
#[test]
fn extra_keys_are_masked_up_to_the_longest_key_read() {
    let key = format!("tenant_{}", "r".repeat(121));
    let policy = policy_from(&format!("extra_keys = [\"{key}\"]\n")).unwrap();
    assert_eq!(
        redacted(&policy, &format!("{key}=eu-west\n")),
        format!("{key}=*******\n")
    );

    let longer = format!("{key}s");
    assert_eq!(
        refusal(&format!("extra_keys = [\"{longer}\"]\n")),
        format!(
            "redaction config: extra_keys entry `{longer}` is longer than 128 bytes, the \
             longest key redaction reads"
        )
    );
}

/// A configured key is found in every spelling of its letters, as the built-in ones are,
/// however it was written: with its components apart or run together, and a short one of
/// two components too. (`x_tenant_ref`, `XTENANTREF` and `x_id` each once let a spelling
/// through to disk unmasked.)
#[test]
fn an_extra_key_is_masked_in_every_spelling() {
    let tenant = [
        "x_tenant_ref",
        "xTenantRef",
        "X-TENANT-REF",
        "xtenantref",
        "db.x_tenant_ref",
    ];
    let cases = [
        ("x_tenant_ref", &tenant[..]),
        ("XTENANTREF", &tenant[..]),
        ("xTenantRef", &tenant[..]),
        ("x_id", &["x_id", "xId", "X-ID", "xid"][..]),
    ];
    for (written, spellings) in cases {
        let policy = policy_from(&format!("extra_keys = [\"{written}\"]\n")).unwrap();
        for key in spellings {
            assert_eq!(
                redacted(&policy, &format!("{key}=eu-west\n")),
                format!("{key}=*******\n"),
                "{key}, configured as {written}"
            );
        }
    }
}

/// Where a configured key is matched inside a longer key, as docs/REDACTION.md says: a
/// short one written as two components anywhere (so `x_id` masks `box_id` too), a short
/// one-component one only as a whole component.
#[test]
fn a_short_extra_key_is_matched_as_its_components_say() {
    let policy = policy_from("extra_keys = [\"x_id\", \"xref\"]\n").unwrap();
    assert_eq!(
        redacted(
            &policy,
            "box_id=1 tax_id=2 max_idle=3 x_id=4 xref=5 my_xref=6 xrefs=7 a.xref=8\n"
        ),
        "box_id=* tax_id=* max_idle=* x_id=* xref=* my_xref=* xrefs=7 a.xref=*\n"
    );
}

/// A configured key with a character that is not ASCII is refused: a key in traffic is read
/// as a run of ASCII letters, digits, `_`, `-` and `.`, so `naïve_key=x` is read as the key
/// `ve_key`, and no spelling of the entry was ever matched.
#[test]
fn an_extra_key_that_is_not_ascii_is_refused() {
    assert_eq!(
        refusal("extra_keys = [\"naïve_key\"]\n"),
        "redaction config: extra_keys entry `naïve_key` holds a character that is not ASCII; \
         keys are read as ASCII letters, digits, `_`, `-` and `.`"
    );
}
