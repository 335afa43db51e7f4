//! Email-domain rules: the ordered list that gives a registering user a tier and a unit.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::DirectoryError;
use crate::ids::UnitId;
use crate::tier::Tier;

/// A domain pattern in an email rule.
///
/// Written in configuration as `interieur.gouv.fr` (exactly that domain), `*.gouv.fr` (any
/// subdomain of `gouv.fr`, at any depth, but not `gouv.fr` itself: list it separately if meant)
/// or `*` (any domain, for the final fallback). Matching ignores ASCII case and a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DomainPattern {
    /// `*`: every domain.
    Any,
    /// One domain, lowercase.
    Exact(String),
    /// Every strict subdomain of the given domain, lowercase, without the `*.`.
    Subdomains(String),
}

impl DomainPattern {
    /// Parses a pattern as written in configuration.
    pub fn parse(pattern: &str) -> Result<DomainPattern, DirectoryError> {
        let invalid = || DirectoryError::InvalidDomainPattern { pattern: pattern.to_owned() };
        if pattern == "*" {
            return Ok(DomainPattern::Any);
        }
        let (wildcard, domain) = match pattern.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let domain = normalise_domain(domain).ok_or_else(invalid)?;
        Ok(if wildcard { DomainPattern::Subdomains(domain) } else { DomainPattern::Exact(domain) })
    }

    /// Whether a normalised domain (see [`email_domain`]) matches.
    pub fn matches(&self, domain: &str) -> bool {
        match self {
            DomainPattern::Any => true,
            DomainPattern::Exact(exact) => domain == exact,
            DomainPattern::Subdomains(parent) => domain
                .strip_suffix(parent.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

impl TryFrom<String> for DomainPattern {
    type Error = DirectoryError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        DomainPattern::parse(&value)
    }
}

impl From<DomainPattern> for String {
    fn from(pattern: DomainPattern) -> String {
        pattern.to_string()
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Any => f.write_str("*"),
            DomainPattern::Exact(domain) => f.write_str(domain),
            DomainPattern::Subdomains(domain) => write!(f, "*.{domain}"),
        }
    }
}

/// One line of the ordered email-domain rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailRule {
    /// Which email domains the rule covers.
    pub domain: DomainPattern,
    /// The tier the rule gives.
    pub tier: Tier,
    /// The unit the rule puts the user in. Required for `agent` and `public` rules, since every
    /// local user belongs to a unit; a guest rule may leave it out (the sponsor's unit applies).
    #[serde(default)]
    pub unit: Option<UnitId>,
}

/// What the email rules say about one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainMatch {
    /// The tier the address gets; `guest` when no rule matches or the address is malformed.
    pub tier: Tier,
    /// The unit the address gets, if the matching rule names one.
    pub unit: Option<UnitId>,
    /// The position of the matching rule in the list, `None` for the implicit guest fallback.
    pub rule_index: Option<usize>,
}

impl DomainMatch {
    /// The implicit fallback: an unknown domain is a guest's.
    pub fn fallback() -> DomainMatch {
        DomainMatch { tier: Tier::Guest, unit: None, rule_index: None }
    }
}

/// Applies the rules in order to an email address; the first match wins.
pub fn match_email(rules: &[EmailRule], email: &str) -> DomainMatch {
    let Some(domain) = email_domain(email) else {
        return DomainMatch::fallback();
    };
    rules
        .iter()
        .enumerate()
        .find(|(_, rule)| rule.domain.matches(&domain))
        .map(|(index, rule)| DomainMatch {
            tier: rule.tier,
            unit: rule.unit.clone(),
            rule_index: Some(index),
        })
        .unwrap_or_else(DomainMatch::fallback)
}

/// The normalised domain of an email address, or `None` if the address is malformed.
///
/// The split is at the last `@` so that a quoted local part cannot smuggle in a domain.
pub fn email_domain(email: &str) -> Option<String> {
    let (local, domain) = email.trim().rsplit_once('@')?;
    if local.is_empty() {
        return None;
    }
    normalise_domain(domain)
}

/// Lowercases a domain and drops a trailing dot; `None` unless it is dot-separated labels of
/// ASCII letters, digits and hyphens.
fn normalise_domain(domain: &str) -> Option<String> {
    let domain = domain.strip_suffix('.').unwrap_or(domain).to_ascii_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    (domain.len() <= 253 && domain.split('.').all(label_ok)).then_some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(domain: &str, tier: Tier, unit: Option<&str>) -> EmailRule {
        EmailRule {
            domain: DomainPattern::parse(domain).expect("valid pattern"),
            tier,
            unit: unit.map(UnitId::from),
        }
    }

    fn rules() -> Vec<EmailRule> {
        vec![
            rule("creuse.gouv.fr", Tier::Agent, Some("prefecture-creuse")),
            rule("*.gouv.fr", Tier::Agent, Some("state")),
            rule("*.chu-limoges.fr", Tier::Public, Some("hospitals")),
            rule("*", Tier::Guest, Some("externals")),
        ]
    }

    #[test]
    fn exact_domains_win_when_listed_first() {
        let m = match_email(&rules(), "marie@creuse.gouv.fr");
        assert_eq!(
            (m.tier, m.unit, m.rule_index),
            (Tier::Agent, Some("prefecture-creuse".into()), Some(0))
        );
    }

    #[test]
    fn wildcards_match_subdomains_at_any_depth() {
        assert_eq!(match_email(&rules(), "a@interieur.gouv.fr").rule_index, Some(1));
        assert_eq!(match_email(&rules(), "a@x.y.gouv.fr").rule_index, Some(1));
        assert_eq!(match_email(&rules(), "a@urgences.chu-limoges.fr").tier, Tier::Public);
    }

    #[test]
    fn wildcards_do_not_match_the_bare_domain_or_lookalikes() {
        let pattern = DomainPattern::parse("*.gouv.fr").expect("valid");
        assert!(!pattern.matches("gouv.fr"));
        assert!(!pattern.matches("evilgouv.fr"));
        assert!(!pattern.matches("gouv.fr.evil.com"));
        assert_eq!(match_email(&rules(), "a@evilgouv.fr").tier, Tier::Guest);
    }

    #[test]
    fn matching_ignores_case_and_trailing_dot() {
        assert_eq!(match_email(&rules(), "A@Creuse.GOUV.fr.").rule_index, Some(0));
    }

    #[test]
    fn the_last_rule_is_the_fallback_and_no_rule_means_guest() {
        assert_eq!(match_email(&rules(), "a@example.com").rule_index, Some(3));
        assert_eq!(match_email(&[], "a@interieur.gouv.fr"), DomainMatch::fallback());
    }

    #[test]
    fn malformed_addresses_are_guests_without_a_rule() {
        for email in ["", "no-at-sign", "@gouv.fr", "a@", "a@bad domain.fr", "a@x..gouv.fr"] {
            assert_eq!(match_email(&rules(), email), DomainMatch::fallback(), "{email}");
        }
    }

    #[test]
    fn the_last_at_sign_splits_the_address() {
        assert_eq!(
            email_domain("\"x@interieur.gouv.fr\"@example.com").as_deref(),
            Some("example.com")
        );
    }

    #[test]
    fn invalid_patterns_are_refused() {
        for pattern in ["", "*gouv.fr", "gouv.*", "a b.fr", "*.", "**.fr"] {
            assert!(DomainPattern::parse(pattern).is_err(), "{pattern}");
        }
    }

    #[test]
    fn patterns_round_trip_through_strings() {
        for pattern in ["*", "gouv.fr", "*.gouv.fr"] {
            assert_eq!(DomainPattern::parse(pattern).expect("valid").to_string(), pattern);
        }
    }
}
