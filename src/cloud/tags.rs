//! The tag keys of amiplan's tag scheme: how it marks what it owns, so that live AWS can be its
//! only state. The cloud finds resources by them; `crate::tags` holds the rules built on them.

/// The stack that owns the resource.
pub const STACK: &str = "amiplan:stack";
/// The desired node the resource realises (e.g. `image/name@region`).
pub const NODE: &str = "amiplan:node";
/// Short hash of the node's immutable attributes when it was created.
pub const SPEC: &str = "amiplan:spec";
/// SHA-256 of the source disk image: a completed snapshot with the same digest is reused.
pub const SOURCE: &str = "amiplan:source";
/// Set once CompleteSnapshot succeeded: a `pending` snapshot without it is an upload that was
/// interrupted and will never complete.
pub const UPLOADED: &str = "amiplan:uploaded";
/// Set on AMIs shared with accounts or organizations: their launch permissions are read back
/// (one call per AMI) while planning, even after the manifest stops sharing them.
pub const SHARED: &str = "amiplan:shared";
/// Set on an AMI whose boot test passed (value: the test job): it is not tested again.
pub const TESTED: &str = "amiplan:tested";
/// The stack version an AMI or snapshot belongs to, for retention.
pub const VERSION: &str = "amiplan:version";
/// The same attributes in readable form (without the source digest), for plan diffs.
pub const ATTRS: &str = "amiplan:attrs";
