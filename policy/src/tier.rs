//! Member tiers: who a user is, as far as access is concerned.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A user's tier. Ordered by trust: `Guest < Public < Agent`, so `max`/`<=` read naturally in
/// rules such as "never above their own tier".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Everyone else: companies, associations, citizens, and anyone whose tier is unknown.
    Guest,
    /// Public-sector agents: local authorities, hospitals, public bodies.
    Public,
    /// State agents: ministries, prefectures, state services.
    Agent,
}

impl Tier {
    /// Every tier, least trusted first (handy for tests and configuration checks).
    pub const ALL: [Tier; 3] = [Tier::Guest, Tier::Public, Tier::Agent];

    /// The lowercase name used in configuration, events and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Guest => "guest",
            Tier::Public => "public",
            Tier::Agent => "agent",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string was not one of `agent`, `public`, `guest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier `{0}`: expected `agent`, `public` or `guest`")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|tier| tier.as_str() == s)
            .ok_or_else(|| UnknownTier(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_ordered_by_trust() {
        assert!(Tier::Guest < Tier::Public && Tier::Public < Tier::Agent);
    }

    #[test]
    fn tiers_serialise_as_lowercase_strings() {
        for tier in Tier::ALL {
            let json = serde_json::to_string(&tier).expect("serialise");
            assert_eq!(json, format!("\"{tier}\""));
            assert_eq!(serde_json::from_str::<Tier>(&json).expect("parse"), tier);
            assert_eq!(tier.as_str().parse::<Tier>(), Ok(tier));
        }
        assert!("Agent".parse::<Tier>().is_err());
    }
}
