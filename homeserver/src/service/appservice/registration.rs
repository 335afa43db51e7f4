//! Registration files: parsing, validation and the compiled namespaces of each application
//! service.
//!
//! The files are the YAML that Synapse and the other homeservers read, so that a bridge's
//! generated registration works unchanged. Everything that would make the server behave
//! ambiguously (two services with one token, two exclusive claims on the same user) stops start-up
//! instead of being resolved silently.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use regex::Regex;
use ruma::{OwnedUserId, ServerName, UserId, api::appservice::Registration};
use sha2::{Digest, Sha256};

use super::overlap::{Overlap, overlap};

/// Why the registrations cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The file cannot be read.
    #[error("application service registration {path}: cannot read the file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid registration.
    #[error("application service registration {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        reason: String,
    },
    /// Two registrations conflict.
    #[error("application service registrations {first} and {second}: {reason}")]
    Conflict {
        /// One file.
        first: PathBuf,
        /// The other file.
        second: PathBuf,
        /// What conflicts.
        reason: String,
    },
}

/// One namespace: a regular expression matched from the start of the ID, as Synapse does, and
/// whether the service claims it exclusively.
#[derive(Debug)]
pub struct Namespace {
    /// The pattern as written in the file.
    pub pattern: String,
    /// The compiled pattern, anchored at the start.
    regex: Regex,
    /// Whether no one else may use IDs in it.
    pub exclusive: bool,
}

impl Namespace {
    fn is_match(&self, id: &str) -> bool {
        self.regex.is_match(id)
    }
}

/// The namespaces of one kind (users, aliases or rooms).
#[derive(Debug, Default)]
pub struct Namespaces(Vec<Namespace>);

impl Namespaces {
    /// Whether any namespace matches `id`.
    pub fn matches(&self, id: &str) -> bool {
        self.0.iter().any(|ns| ns.is_match(id))
    }

    /// Whether an exclusive namespace matches `id`.
    pub fn matches_exclusive(&self, id: &str) -> bool {
        self.0.iter().any(|ns| ns.exclusive && ns.is_match(id))
    }

    /// The exclusive namespaces.
    fn exclusive(&self) -> impl Iterator<Item = &Namespace> {
        self.0.iter().filter(|ns| ns.exclusive)
    }
}

/// Flags of unstable features a registration may opt in to, under the keys bridges write.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    /// MSC4190: the service manages the devices of its users itself (`PUT`/`DELETE
    /// /devices/{deviceId}` without user-interactive auth).
    pub device_management: bool,
    /// MSC2409/MSC3202: to-device messages and device lists of its users in transactions.
    pub device_events: bool,
}

/// A registered application service, ready to match IDs.
#[derive(Debug)]
pub struct Appservice {
    /// The registration as written in the file.
    pub registration: Registration,
    /// Where it was read from, for messages.
    pub path: PathBuf,
    /// The service's own user (`sender_localpart`).
    pub sender: OwnedUserId,
    /// User namespaces.
    pub users: Namespaces,
    /// Room alias namespaces.
    pub aliases: Namespaces,
    /// Room ID namespaces.
    pub rooms: Namespaces,
    /// Unstable features it asked for.
    pub features: Features,
    /// SHA-256 of `as_token`: requests are matched on the hash, so comparing a guess against it
    /// tells an attacker nothing about the token.
    pub(super) as_token_hash: [u8; 32],
}

impl Appservice {
    /// The service's ID.
    pub fn id(&self) -> &str {
        &self.registration.id
    }

    /// Whether `user` is the service's own user or in one of its user namespaces: the users it may
    /// act as.
    pub fn is_user_in_namespace(&self, user: &UserId) -> bool {
        user == self.sender || self.users.matches(user.as_str())
    }

    /// Whether requests from its users are rate-limited (the default).
    pub fn rate_limited(&self) -> bool {
        self.registration.rate_limited.unwrap_or(true)
    }
}

/// SHA-256 of a token.
pub(super) fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Reads, validates and cross-checks the registration files.
pub fn load(
    paths: &[PathBuf],
    server_name: &ServerName,
) -> Result<Vec<Appservice>, RegistrationError> {
    let mut services = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|source| RegistrationError::Read { path: path.clone(), source })?;
        services.push(parse(path, &text, server_name)?);
    }
    check_conflicts(&services)?;
    Ok(services)
}

/// Parses one registration file.
pub fn parse(
    path: &Path,
    text: &str,
    server_name: &ServerName,
) -> Result<Appservice, RegistrationError> {
    let invalid = |reason: String| RegistrationError::Invalid { path: path.to_owned(), reason };
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| invalid(format!("not valid YAML: {e}")))?;
    let features = Features {
        device_management: flag(&value, &["io.element.msc4190", "org.matrix.msc4190"]),
        device_events: flag(&value, &["org.matrix.msc3202"]),
    };
    let mut registration: Registration = serde_yaml_ng::from_value(value.clone())
        .map_err(|e| invalid(format!("not a registration: {e}")))?;
    // Bridges written before ephemeral events were stable ask for them under MSC2409's key.
    if flag(&value, &["de.sorunome.msc2409.push_ephemeral", "push_ephemeral"]) {
        registration.receive_ephemeral = true;
    }
    for (key, token) in [("as_token", &registration.as_token), ("hs_token", &registration.hs_token)]
    {
        if token.trim().is_empty() {
            return Err(invalid(format!("`{key}` must not be empty")));
        }
    }
    if registration.id.trim().is_empty() {
        return Err(invalid("`id` must not be empty".into()));
    }
    if registration.as_token == registration.hs_token {
        return Err(invalid("`as_token` and `hs_token` must differ".into()));
    }
    if let Some(url) = &registration.url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(invalid(format!("`url` must be an http(s) URL or null, not {url:?}")));
    }
    let sender = OwnedUserId::try_from(format!("@{}:{server_name}", registration.sender_localpart))
        .map_err(|e| invalid(format!("`sender_localpart` does not make a user ID: {e}")))?;
    let compile = |kind: &str, list: &[ruma::api::appservice::Namespace]| {
        list.iter()
            .map(|ns| {
                Regex::new(&format!("^(?:{})", ns.regex))
                    .map(|regex| Namespace {
                        pattern: ns.regex.clone(),
                        regex,
                        exclusive: ns.exclusive,
                    })
                    .map_err(|e| {
                        invalid(format!("`namespaces.{kind}`: bad regex {:?}: {e}", ns.regex))
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Namespaces)
    };
    let users = compile("users", &registration.namespaces.users)?;
    let aliases = compile("aliases", &registration.namespaces.aliases)?;
    let rooms = compile("rooms", &registration.namespaces.rooms)?;
    Ok(Appservice {
        as_token_hash: token_hash(&registration.as_token),
        registration,
        path: path.to_owned(),
        sender,
        users,
        aliases,
        rooms,
        features,
    })
}

/// Whether any of `keys` is set to `true` at the top level of the file.
fn flag(value: &serde_yaml_ng::Value, keys: &[&str]) -> bool {
    keys.iter().any(|key| value.get(key).and_then(serde_yaml_ng::Value::as_bool) == Some(true))
}

/// Duplicate IDs or tokens, and exclusive namespaces that two services both claim.
fn check_conflicts(services: &[Appservice]) -> Result<(), RegistrationError> {
    let conflict = |a: &Appservice, b: &Appservice, reason: String| RegistrationError::Conflict {
        first: a.path.clone(),
        second: b.path.clone(),
        reason,
    };
    let mut seen: HashMap<String, &Appservice> = HashMap::new();
    for service in services {
        let reg = &service.registration;
        for (what, value) in [
            ("id", format!("id:{}", reg.id)),
            ("token", format!("token:{}", reg.as_token)),
            ("token", format!("token:{}", reg.hs_token)),
            ("sender_localpart", format!("sender:{}", reg.sender_localpart)),
        ] {
            if let Some(other) = seen.insert(value, service) {
                // Never print a token, even in a start-up error.
                return Err(conflict(other, service, format!("both use the same {what}")));
            }
        }
    }
    for (i, a) in services.iter().enumerate() {
        for b in &services[i + 1..] {
            for (kind, ours, theirs) in [
                ("users", &a.users, &b.users),
                ("aliases", &a.aliases, &b.aliases),
                ("rooms", &a.rooms, &b.rooms),
            ] {
                for x in ours.exclusive() {
                    for y in theirs.exclusive() {
                        match overlap(&x.pattern, &y.pattern) {
                            Overlap::Disjoint => {}
                            Overlap::Overlapping(example) => {
                                return Err(conflict(
                                    a,
                                    b,
                                    format!(
                                        "exclusive `namespaces.{kind}` {:?} and {:?} overlap \
                                         (both match {example:?})",
                                        x.pattern, y.pattern
                                    ),
                                ));
                            }
                            Overlap::Unknown => tracing::warn!(
                                first = %a.path.display(),
                                second = %b.path.display(),
                                "could not prove that exclusive namespaces {:?} and {:?} do not \
                                 overlap; the first registration wins where they do",
                                x.pattern,
                                y.pattern,
                            ),
                        }
                    }
                }
            }
            // A service's own user belongs to it alone.
            for (owner, other) in [(a, b), (b, a)] {
                if other.users.matches_exclusive(owner.sender.as_str()) {
                    return Err(conflict(
                        a,
                        b,
                        format!(
                            "{}'s user {} is in an exclusive namespace of {}",
                            owner.id(),
                            owner.sender,
                            other.id()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ruma::server_name;

    use super::*;

    fn yaml(id: &str, token: &str, users: &str, exclusive: bool) -> String {
        format!(
            "id: {id}\nurl: http://localhost:9000\nas_token: as_{token}\nhs_token: hs_{token}\n\
             sender_localpart: {id}_bot\nnamespaces:\n  users:\n    - exclusive: {exclusive}\n      \
             regex: '{users}'\n  aliases: []\n  rooms: []\nrate_limited: false\n"
        )
    }

    fn parse_all(files: &[String]) -> Result<Vec<Appservice>, RegistrationError> {
        let services = files
            .iter()
            .enumerate()
            .map(|(i, text)| {
                parse(Path::new(&format!("{i}.yaml")), text, server_name!("example.org"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_conflicts(&services)?;
        Ok(services)
    }

    #[test]
    fn a_bridge_registration_parses_and_matches_from_the_start() {
        let services =
            parse_all(&[yaml("irc", "a", "@irc_.*:example\\.org", true)]).expect("valid");
        let irc = &services[0];
        assert_eq!(irc.sender, "@irc_bot:example.org");
        assert!(irc.users.matches("@irc_alice:example.org"));
        assert!(!irc.users.matches("@alice_irc_x:example.org"), "anchored at the start");
        assert!(!irc.rate_limited());
        assert!(irc.is_user_in_namespace(&irc.sender));
    }

    #[test]
    fn msc2409_key_turns_on_ephemeral_events() {
        let text = yaml("b", "a", "@b_.*", true) + "de.sorunome.msc2409.push_ephemeral: true\n";
        let services = parse_all(&[text]).expect("valid");
        assert!(services[0].registration.receive_ephemeral);
    }

    #[test]
    fn bad_regex_names_the_key() {
        let err = parse_all(&[yaml("x", "a", "@x_(.*", true)]).expect_err("refused");
        assert!(err.to_string().contains("namespaces.users"), "{err}");
    }

    #[test]
    fn duplicate_ids_and_tokens_are_refused_without_printing_tokens() {
        let err = parse_all(&[yaml("x", "a", "@x_.*", true), yaml("y", "a", "@y_.*", true)])
            .expect_err("refused");
        assert!(err.to_string().contains("same token"), "{err}");
        assert!(!err.to_string().contains("as_a"), "{err}");
        let err = parse_all(&[yaml("x", "a", "@x_.*", true), yaml("x", "b", "@y_.*", true)])
            .expect_err("refused");
        assert!(err.to_string().contains("same id"), "{err}");
    }

    #[test]
    fn overlapping_exclusive_namespaces_are_refused() {
        let err = parse_all(&[
            yaml("x", "a", "@bridge_.*:example\\.org", true),
            yaml("y", "b", "@bridge_irc_.*", true),
        ])
        .expect_err("refused");
        assert!(err.to_string().contains("overlap"), "{err}");
        // Disjoint prefixes, and non-exclusive claims, are fine.
        parse_all(&[yaml("x", "a", "@irc_.*", true), yaml("y", "b", "@slack_.*", true)])
            .expect("disjoint");
        parse_all(&[yaml("x", "a", "@irc_.*", false), yaml("y", "b", "@irc_.*", true)])
            .expect("only one is exclusive");
    }

    #[test]
    fn tokens_must_differ_and_not_be_empty() {
        let text = yaml("x", "a", "@x_.*", true).replace("hs_a", "as_a");
        assert!(parse_all(&[text]).is_err());
        let text = yaml("x", "a", "@x_.*", true).replace("as_token: as_a", "as_token: ''");
        assert!(parse_all(&[text]).is_err());
    }
}
