//! What a set of manifests asks of the cloud, by capability: the input of the least-privilege
//! policy ([`aws::iam_policy`](super::aws::iam_policy)), which alone knows the cloud's action names.

use std::collections::BTreeSet;

/// The capabilities, places and names a set of stacks needs for `plan`, `apply` and `destroy`.
/// Every stack needs the base ones (discovery, the lock, registering, tagging, removing its own
/// images and snapshots, undoing sharing and deprecation); the rest follow its resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// The stacks, as tagged (`amiplan:stack`): what their resources may be removed by.
    pub stacks: BTreeSet<String>,
    /// Regions where the stacks make resources (build regions and copy regions).
    pub regions: BTreeSet<String>,
    pub capabilities: BTreeSet<Capability>,
    /// Encryption keys named by the manifests (IDs, aliases or ARNs).
    pub keys: BTreeSet<String>,
    /// Object stores written and read: catalogue files and test reports.
    pub objects: BTreeSet<ObjectPlace>,
    /// Where the stacks' Parameter Store parameters are named (`/prefix/`): every one of their
    /// names, past versions' included, starts with one of these.
    pub parameter_prefixes: BTreeSet<String>,
}

/// One thing a stack's resources need beyond the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, strum::EnumIter)]
pub enum Capability {
    /// The source image is uploaded as a snapshot (EBS direct APIs).
    Upload,
    /// A helper instance writes the image to a volume that is then snapshotted.
    HelperBuild,
    /// The helper's own network (VPC, subnet, gateway, routes), made and removed with it.
    OwnNetwork,
    /// A plain snapshot is copied encrypted.
    EncryptSnapshot,
    /// AMIs copied to other regions.
    Copies,
    /// AMIs shared with accounts, organizations or everyone (and their snapshots' permissions).
    Sharing,
    /// Public AMIs: the account's block public access settings are read.
    PublicImages,
    /// AMIs shared with more accounts, organizations and OUs than AWS allows by default: the
    /// account's quota is read.
    WideSharing,
    /// AMIs deprecated at a time.
    Deprecation,
    /// AMIs protected from deregistration.
    Protection,
    /// Boot tests on instances of the new AMIs.
    BootTest,
}

/// A bucket and key prefix, and what amiplan does there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectPlace {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
    pub purpose: ObjectPurpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectPurpose {
    /// Catalogue files: listed, written with tags, read back, removed.
    Catalogue,
    /// Boot test reports: uploaded by the instance through a presigned URL signed with amiplan's
    /// credentials, read and removed by amiplan.
    TestReports,
}

/// Which runs a policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `apply`, `destroy` and `unlock`, and everything that reads.
    Converge,
    /// As `Converge`, and `--prune`: removing what any stack owns (anything tagged
    /// `amiplan:stack`), whatever the stack and whatever it was built with.
    ConvergeAndPrune,
    /// Only what reads: `plan`, `output`, `catalog`, `resolve`, `serve` (a pull request's role).
    ReadOnly,
}
