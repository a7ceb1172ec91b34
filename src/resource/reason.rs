//! Why the plan does what it does with a resource, typed: made by the comparison and the plan's
//! steps, shown to people through `Display`, and written into plans as that text.

use serde::{Deserialize, Serialize};

use crate::cloud::{LiveProtection, Protection};

/// One reason of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Reason {
    // Deletes.
    Destroy,
    NoLongerWanted,
    BuildFinished,
    /// The copies' source of a stack that does not keep it, every copy being made.
    CopiesExist,
    DuplicateOf {
        kept: String,
    },
    // Replacements.
    /// The live resource can never become usable.
    Failed {
        id: String,
        state: String,
    },
    /// A direct upload that never reached CompleteSnapshot.
    UploadInterrupted {
        id: String,
    },
    /// A helper that is no longer running has run its job already.
    JobEnded {
        id: String,
        state: String,
    },
    /// A gateway or route table a run made but never attached or routed.
    HalfMade {
        id: String,
        state: String,
    },
    /// Attributes AWS cannot change differ (named when the live tags say which).
    CannotChangeInPlace {
        attributes: Vec<String>,
    },
    SpecChanged {
        live: String,
        wanted: String,
    },
    // Updates.
    Adopt {
        id: String,
    },
    StillPending {
        id: String,
    },
    /// An AMI to be deregistered that is protected from it: protection is lifted first.
    Protected(LiveProtection),
    /// A snapshot kept while the AMI in front of it waits for its protection's cooldown.
    BehindProtected {
        image: String,
    },
    /// Something the manifest asks for that AWS would refuse: left as it is.
    Refused(String),
    /// An AMI its owner disabled: left disabled, and left as it is.
    Disabled {
        id: String,
    },
    /// Not made, or not run: it would be made or run from a disabled AMI.
    BehindDisabled {
        image: String,
    },
    // Builds and tests.
    ForTheBuild,
    /// The copies' source of a stack that does not keep it: removed once the copies are done.
    UntilCopied,
    NoHelperAmi {
        owner: String,
        name: String,
        region: String,
    },
    Boots {
        image: String,
    },
    NoRouteOut {
        subnet: String,
    },
    /// How the helper reaches its image's URL.
    ReachesOut {
        through: String,
        public_address: bool,
    },
    NoZoneOffers {
        region: String,
        instance_type: String,
    },
    SubnetZoneLacks {
        subnet: String,
        zone: String,
        instance_type: String,
    },
    InZone {
        zone: String,
        instance_type: String,
    },
    InDefaultSubnet {
        zones: Vec<String>,
        instance_type: String,
    },
    BootTest {
        of: Option<String>,
    },
    // Retention.
    KeptByRetention {
        version: String,
        keep: u32,
    },
    Retired {
        version: String,
        keep: u32,
        current: String,
    },
    KeptForLaunchTemplate {
        template: String,
    },
    // Catalogues.
    /// A channel stays where it is: the version it is to point at is not out everywhere.
    HeldBack {
        channel: String,
        version: String,
        why: String,
    },
    /// A channel moves once this run has made, tested and published every AMI of the version.
    MovesAfterApply {
        channel: String,
        version: String,
    },
    /// The catalogue files are rendered from AWS once this run's AMIs and parameters are done.
    RenderedAfterApply,
    /// A parameter of that name exists and amiplan does not own it.
    NotOwned {
        value: String,
    },
    /// A parameter amiplan does not own, taken over as the manifest says.
    TakeOver,
    /// An AMI a channel points at: kept whatever retention says.
    KeptForChannel {
        channel: String,
    },
    /// A reason read back from a saved plan: its text.
    Read(String),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Destroy => f.write_str("destroy"),
            Reason::NoLongerWanted => f.write_str("no longer in the manifests"),
            Reason::BuildFinished => f.write_str("transient: the build it served is finished"),
            Reason::CopiesExist => f.write_str("every copy exists and `build.keep_image` is false"),
            Reason::DuplicateOf { kept } => write!(f, "duplicate of {kept}"),
            Reason::Failed { id, state } => write!(f, "{id} is in state `{state}`"),
            Reason::UploadInterrupted { id } => write!(f, "{id} is an upload that never completed"),
            Reason::JobEnded { id, state } => write!(f, "{id} is {state}: its job already ended"),
            Reason::HalfMade { id, state } => write!(f, "{id} is {state}: a run stopped half-way through making it"),
            Reason::CannotChangeInPlace { attributes } => write!(f, "{} cannot change in place", attributes.join(", ")),
            Reason::SpecChanged { live, wanted } => write!(f, "attributes changed (spec {live} → {wanted})"),
            Reason::Adopt { id } => write!(f, "adopt {id} found by its name without amiplan tags"),
            Reason::StillPending { id } => write!(f, "{id} is still pending: apply waits for it"),
            Reason::Protected(LiveProtection::On(Protection::WithoutCooldown)) => {
                f.write_str("deregistration protection is lifted first")
            }
            Reason::Protected(LiveProtection::On(Protection::WithCooldown)) => f.write_str(
                "deregistration protection is lifted first; with its cooldown AWS keeps the AMI 24 hours more: run again after that",
            ),
            Reason::Protected(LiveProtection::CoolingDown { until }) => write!(
                f,
                "deregistration protection was lifted; AWS keeps the AMI until its cooldown ends ({}): run again after that",
                until.as_deref().unwrap_or("24 hours after it was lifted")
            ),
            Reason::Protected(LiveProtection::Off) => f.write_str("not protected"),
            Reason::BehindProtected { image } => write!(
                f,
                "kept while {image} in front of it waits for its deregistration protection's cooldown: a later run removes both"
            ),
            Reason::Refused(why) => f.write_str(why),
            Reason::BehindDisabled { image } => {
                write!(f, "not made or run: it would start from {image}, which is disabled, until it is enabled again")
            }
            Reason::Disabled { id } => write!(
                f,
                "{id} is disabled: amiplan leaves it as it is (AWS neither launches nor shares a disabled AMI) until it is enabled again (`aws ec2 enable-image`); destroy and retention still remove it"
            ),
            Reason::ForTheBuild => f.write_str("transient: created for the build, removed after"),
            Reason::UntilCopied => {
                f.write_str("the copies' source: removed once they are done (`build.keep_image: false`)")
            }
            Reason::NoHelperAmi { owner, name, region } => {
                write!(f, "no AMI owned by {owner} matches `{name}` in {region}: the helper cannot start")
            }
            Reason::Boots { image } => write!(f, "boots {image}"),
            Reason::NoRouteOut { subnet } => {
                write!(f, "{subnet} has no route out: the helper cannot download its image")
            }
            Reason::ReachesOut { through, public_address: true } => {
                write!(f, "reaches the image URL with a public address through {through}")
            }
            Reason::ReachesOut { through, public_address: false } => {
                write!(f, "reaches the image URL through {through}")
            }
            Reason::NoZoneOffers { region, instance_type } => {
                write!(f, "no Availability Zone of {region} offers {instance_type}")
            }
            Reason::SubnetZoneLacks { subnet, zone, instance_type } => {
                write!(f, "{subnet} is in {zone}, which does not offer {instance_type}")
            }
            Reason::InZone { zone, instance_type } => write!(f, "in {zone}, which offers {instance_type}"),
            Reason::InDefaultSubnet { zones, instance_type } => {
                write!(f, "in a default subnet of a zone that offers {instance_type} ({})", zones.join(", "))
            }
            Reason::BootTest { of } => write!(
                f,
                "boot test of {}: copies and publication wait for it to pass",
                of.as_deref().unwrap_or("the new AMI")
            ),
            Reason::KeptByRetention { version, keep } => {
                write!(f, "kept by retention: version {version} is one of the {keep} newest")
            }
            Reason::Retired { version, keep, current } => {
                write!(f, "retention keeps {keep} version(s): {version} goes once {current} is available and published")
            }
            Reason::KeptForLaunchTemplate { template } => write!(f, "kept: launch template `{template}` still uses it"),
            Reason::HeldBack { channel, version, why } => {
                write!(f, "channel {channel} held back: {version} is not out everywhere ({why})")
            }
            Reason::MovesAfterApply { channel, version } => write!(
                f,
                "channel {channel} moves to {version} once its AMIs are available, tested and published in every region"
            ),
            Reason::RenderedAfterApply => {
                f.write_str("rewritten from the catalogue once this run's AMIs and parameters are done")
            }
            Reason::NotOwned { value } => write!(
                f,
                "exists (naming {value}) and is not amiplan's: left as it is (catalog.ssm.overwrite takes it over)"
            ),
            Reason::TakeOver => f.write_str("not amiplan's: taken over as catalog.ssm.overwrite says"),
            Reason::KeptForChannel { channel } => write!(f, "kept: channel {channel} points at it"),
            Reason::Read(text) => f.write_str(text),
        }
    }
}

impl From<Reason> for String {
    fn from(reason: Reason) -> String {
        reason.to_string()
    }
}

impl From<String> for Reason {
    fn from(text: String) -> Reason {
        Reason::Read(text)
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, text: &&str) -> bool {
        *text == self.to_string().as_str()
    }
}
