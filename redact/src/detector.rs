//! The built-in detectors: their stable names (used in config, annotations and the
//! recording Header) and which of them belong to PII mode.

/// A built-in detector. The discriminant indexes the rule-name table in `Policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Detector {
    HttpHeader,
    KeyValue,
    PrivateKey,
    Jwt,
    AwsAccessKeyId,
    AwsSecretAccessKey,
    GithubToken,
    SlackToken,
    StripeKey,
    GoogleApiKey,
    VendorToken,
    UrlPassword,
    Bearer,
    BasicAuth,
    CardNumber,
    Ssn,
    HighEntropy,
    PostgresPassword,
    RedisAuth,
    CompressedBody,
    Email,
    Phone,
    IpAddress,
}

impl Detector {
    pub(crate) const ALL: [Detector; 23] = [
        Detector::HttpHeader,
        Detector::KeyValue,
        Detector::PrivateKey,
        Detector::Jwt,
        Detector::AwsAccessKeyId,
        Detector::AwsSecretAccessKey,
        Detector::GithubToken,
        Detector::SlackToken,
        Detector::StripeKey,
        Detector::GoogleApiKey,
        Detector::VendorToken,
        Detector::UrlPassword,
        Detector::Bearer,
        Detector::BasicAuth,
        Detector::CardNumber,
        Detector::Ssn,
        Detector::HighEntropy,
        Detector::PostgresPassword,
        Detector::RedisAuth,
        Detector::CompressedBody,
        Detector::Email,
        Detector::Phone,
        Detector::IpAddress,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Detector::HttpHeader => "http-header",
            Detector::KeyValue => "key-value",
            Detector::PrivateKey => "private-key",
            Detector::Jwt => "jwt",
            Detector::AwsAccessKeyId => "aws-access-key-id",
            Detector::AwsSecretAccessKey => "aws-secret-access-key",
            Detector::GithubToken => "github-token",
            Detector::SlackToken => "slack-token",
            Detector::StripeKey => "stripe-key",
            Detector::GoogleApiKey => "google-api-key",
            Detector::VendorToken => "vendor-token",
            Detector::UrlPassword => "url-password",
            Detector::Bearer => "bearer",
            Detector::BasicAuth => "basic-auth",
            Detector::CardNumber => "card-number",
            Detector::Ssn => "ssn",
            Detector::HighEntropy => "high-entropy",
            Detector::PostgresPassword => "postgres-password",
            Detector::RedisAuth => "redis-auth",
            Detector::CompressedBody => "compressed-body",
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::IpAddress => "ip-address",
        }
    }

    /// PII detectors run only when PII mode is on (and their own switch is not off).
    pub(crate) fn pii(self) -> bool {
        matches!(
            self,
            Detector::Email | Detector::Phone | Detector::IpAddress
        )
    }

    pub(crate) fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL.into_iter().find(|d| d.name() == name)
    }

    pub(crate) fn rule(self) -> Rule {
        Rule(self as u16)
    }
}

/// Index into the policy's rule-name table: built-in detectors first, then
/// [`FAIL_CLOSED`], then user rules in config order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Rule(pub(crate) u16);

/// Masks made because a hold-back bound was hit (or bytes were lost) while something
/// could still have been part of a secret.
pub(crate) const FAIL_CLOSED: Rule = Rule(Detector::ALL.len() as u16);
pub(crate) const FAIL_CLOSED_NAME: &str = "fail-closed";

/// First user rule index.
pub(crate) const FIRST_USER_RULE: u16 = FAIL_CLOSED.0 + 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_indexes_are_dense() {
        for (i, d) in Detector::ALL.into_iter().enumerate() {
            assert_eq!(d as usize, i);
            assert_eq!(Detector::from_name(d.name()), Some(d));
        }
        assert_eq!(Detector::from_name("nope"), None);
    }
}
