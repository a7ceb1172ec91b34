//! Who may launch an AMI (launch permissions) and create volumes from its snapshots
//! (createVolumePermission): the same value for what the manifest wants and what AWS has.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sharing {
    /// Everyone (the `all` group).
    #[serde(default)]
    pub public: bool,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub accounts: BTreeSet<String>,
    /// Organization ARNs.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub organizations: BTreeSet<String>,
    /// Organizational unit ARNs.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub organizational_units: BTreeSet<String>,
}

impl Sharing {
    /// How many entities AWS lets one AMI be shared with unless the account's "AMI sharing"
    /// quota was raised (it cannot be lowered): "AMI quotas" in the Amazon EC2 User Guide.
    pub const DEFAULT_ENTITY_QUOTA: usize = 1_000;

    pub fn is_private(&self) -> bool {
        *self == Sharing::default()
    }

    /// Shared with anyone but everyone: only then must launch permissions be read back one AMI
    /// at a time (DescribeImages reports the public flag for every AMI at once).
    pub fn names_anyone(&self) -> bool {
        !(self.accounts.is_empty() && self.organizations.is_empty() && self.organizational_units.is_empty())
    }

    /// The entities the AMI quota "AMI sharing" counts: accounts, organizations and OUs, each
    /// one whatever the number of accounts in it (everyone is the public AMI quota's).
    pub fn entities(&self) -> usize {
        self.accounts.len() + self.organizations.len() + self.organizational_units.len()
    }

    /// What the snapshots behind the AMIs get: createVolumePermission takes accounts and `all`,
    /// not organizations.
    pub fn for_snapshots(&self) -> Sharing {
        Sharing { public: self.public, accounts: self.accounts.clone(), ..Sharing::default() }
    }

    /// What `self` grants that `other` does not.
    pub fn minus(&self, other: &Sharing) -> Sharing {
        let less = |a: &BTreeSet<String>, b: &BTreeSet<String>| a.difference(b).cloned().collect();
        Sharing {
            public: self.public && !other.public,
            accounts: less(&self.accounts, &other.accounts),
            organizations: less(&self.organizations, &other.organizations),
            organizational_units: less(&self.organizational_units, &other.organizational_units),
        }
    }

    /// `private`, or the grants in a stable order, for plans and reports.
    pub fn describe(&self) -> String {
        if self.is_private() {
            return "private".into();
        }
        let mut parts = Vec::new();
        if self.public {
            parts.push("public".to_string());
        }
        parts.extend(self.accounts.iter().map(|a| format!("account {a}")));
        parts.extend(self.organizations.iter().map(|o| format!("organization {o}")));
        parts.extend(self.organizational_units.iter().map(|o| format!("ou {o}")));
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sharing(public: bool, accounts: &[&str], organizations: &[&str]) -> Sharing {
        Sharing {
            public,
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            organizations: organizations.iter().map(|o| o.to_string()).collect(),
            organizational_units: BTreeSet::new(),
        }
    }

    #[test]
    fn differences_in_both_directions() {
        let want = sharing(true, &["1", "2"], &["o"]);
        let have = sharing(false, &["2", "3"], &[]);
        assert_eq!(want.minus(&have), sharing(true, &["1"], &["o"]));
        assert_eq!(have.minus(&want), sharing(false, &["3"], &[]));
        assert!(want.minus(&want).is_private());
        assert_eq!(want.for_snapshots(), sharing(true, &["1", "2"], &[]));
        assert_eq!(want.describe(), "public, account 1, account 2, organization o");
        assert_eq!(Sharing::default().describe(), "private");
    }
}
