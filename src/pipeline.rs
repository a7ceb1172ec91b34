//! The pipeline as the commands run it, over any [`Cloud`]: load manifests into a workspace,
//! observe, plan, check a saved plan, and converge under the stacks' locks. The command line
//! only parses flags, prints and maps [`Converged`] to an exit code; tests drive the same code
//! against an in-process cloud.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::apply::{self, ApplyOptions, Report};
use crate::cloud::{Cloud, Sharing};
use crate::distribution::Catalogue;
use crate::graph::DesiredGraph;
use crate::job::{self, Job};
use crate::lock::{self, LockSite};
use crate::manifest::upstream;
use crate::manifest::{self, LocalFiles};
use crate::model::{self, Stack};
use crate::observe::{self, Observed, RegionScope};
use crate::plan::{self, Action, PLAN_FORMAT, Plan};
use crate::source::{self, Prepared, SourceInfo};
use crate::tags;

/// Exit codes, documented in the README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    /// `plan --detailed-exitcode` only: the plan has changes.
    pub const CHANGES: u8 = 2;
    /// The command line itself was wrong.
    pub const USAGE: u8 = 64;
    /// Stopped by an interrupt; a re-run resumes.
    pub const INTERRUPTED: u8 = 130;
}

/// Validated stacks from manifests.
/// Manifests that track an upstream are validated before it is read, then again with what it
/// named.
pub fn load_stacks(paths: &[PathBuf], local_files: LocalFiles) -> anyhow::Result<Vec<Stack>> {
    load_stacks_with(paths, local_files, Some(&upstream::Http::new()))
}

/// Validated stacks for a command that needs nothing of the source: one that removes or unlocks
/// what is live, found by the stack's tags (destroy, unlock), or writes the IAM policy, which
/// depends on the kinds of resources and where they go, not on what they hold (policy). It
/// reads neither the local files nor what an upstream names now, so that it works when the
/// image is gone from this machine or the upstream from the network. A tracked upstream's URL,
/// digest and derived version keep their stand-ins ([`upstream::prepare`]).
pub fn load_stacks_without_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<Stack>> {
    load_stacks_with(paths, LocalFiles::Unused, None)
}

/// [`load_stacks`] reading upstreams with `fetch`, or none of them.
pub fn load_stacks_with(
    paths: &[PathBuf],
    local_files: LocalFiles,
    fetch: Option<&dyn upstream::Fetch>,
) -> anyhow::Result<Vec<Stack>> {
    let mut loaded = manifest::load(paths)?;
    for manifest in &mut loaded {
        manifest.local_files = local_files;
    }
    let pending = upstream::prepare(&mut loaded)?;
    let Some(fetch) = fetch.filter(|_| !pending.is_empty()) else {
        return Ok(model::validate(&loaded)?);
    };
    model::validate(&loaded)?;
    upstream::resolve(&mut loaded, pending, fetch)?;
    Ok(model::validate(&loaded)?)
}

/// Validated stacks with their desired graph: everything known before the first AWS call.
pub struct Workspace {
    pub stacks: Vec<Stack>,
    pub graph: DesiredGraph,
    /// Each stack's inspected source or helper job, and its test job: what the graph is built of.
    prepared: HashMap<String, Prepared>,
    tests: HashMap<String, Job>,
    /// With [`LocalFiles::Unused`], nothing was read and `prepared` and `tests` only stand for
    /// the sources and scripts, so that the graph has every node a stack may own.
    local_files: LocalFiles,
}

impl Workspace {
    /// Loads and validates the manifests, inspects local sources (or leaves an image for its
    /// upload, see [`source::inspect_or_defer`]) and prepares helper and test jobs, and builds
    /// the desired graph.
    pub async fn load(paths: &[PathBuf]) -> anyhow::Result<Workspace> {
        Workspace::load_with(paths, LocalFiles::Used).await
    }

    /// [`Workspace::load`] for a command that needs none of the files the manifests name: one
    /// that acts on live state only (destroy, output, …) or on the manifests' shape (graph,
    /// policy). The files are neither needed nor read.
    pub async fn load_without_files(paths: &[PathBuf]) -> anyhow::Result<Workspace> {
        Workspace::load_with(paths, LocalFiles::Unused).await
    }

    /// [`Workspace::load_without_files`] that reads no upstream either (see
    /// [`load_stacks_without_sources`]).
    pub async fn load_without_sources(paths: &[PathBuf]) -> anyhow::Result<Workspace> {
        let stacks = load_stacks_without_sources(paths)?;
        Ok(Workspace::unread(stacks))
    }

    async fn load_with(paths: &[PathBuf], local_files: LocalFiles) -> anyhow::Result<Workspace> {
        // Reading an upstream blocks: keep it off the runtime's workers.
        let owned = paths.to_vec();
        let stacks = tokio::task::spawn_blocking(move || load_stacks(&owned, local_files)).await??;
        if local_files == LocalFiles::Unused {
            return Ok(Workspace::unread(stacks));
        }
        let mut prepared = HashMap::new();
        let mut too_small = Vec::new();
        for stack in &stacks {
            let context = || format!("stack {} ({})", stack.name, stack.manifest.display());
            let ready = match stack.local_source() {
                Some((path, expected)) => {
                    let (path, expected) = (path.to_path_buf(), expected.map(str::to_string));
                    let info =
                        tokio::task::spawn_blocking(move || source::inspect_or_defer(&path, expected.as_deref()))
                            .await?
                            .with_context(context)?;
                    let image = format!("the image in {}", info.path.display());
                    too_small.extend(stack.volume_problem(info.size_bytes, &image));
                    Prepared::Upload(std::sync::Arc::new(info))
                }
                None => Prepared::Helper(job::prepare(&stack.name, &stack.source).with_context(context)?),
            };
            prepared.insert(stack.name.clone(), ready);
        }
        // Before any AWS call: on AWS such an upload fails part-way, its blocks past the volume
        // refused (moto takes them, and the AMI would lose them).
        if !too_small.is_empty() {
            return Err(manifest::Invalid(too_small).into());
        }
        let mut tests = HashMap::new();
        for stack in &stacks {
            if let Some(test) = &stack.test {
                let reports = test.reports.as_ref().map(|directory| job::TestReports {
                    directory: directory.clone(),
                    through_bucket: test.reports_bucket.is_some(),
                });
                let job = job::prepare_test(&stack.name, &test.script, reports.as_ref())
                    .with_context(|| format!("the test of stack {} ({})", stack.name, stack.manifest.display()))?;
                tests.insert(stack.name.clone(), job);
            }
        }
        let graph = DesiredGraph::build_with_tests(&stacks, &prepared, &tests);
        Ok(Workspace { stacks, graph, prepared, tests, local_files })
    }

    /// The stacks' graph without reading a file: each source and script is stood for by one
    /// that was not read (see [`SourceInfo::not_read`] and [`Job::not_read`]).
    fn unread(stacks: Vec<Stack>) -> Workspace {
        let prepared: HashMap<String, Prepared> = stacks
            .iter()
            .map(|stack| {
                let stands_for = match stack.local_source() {
                    Some((path, _)) => Prepared::Upload(Arc::new(SourceInfo::not_read(path))),
                    None => Prepared::Helper(Job::not_read()),
                };
                (stack.name.clone(), stands_for)
            })
            .collect();
        let tests: HashMap<String, Job> =
            stacks.iter().filter(|s| s.test.is_some()).map(|s| (s.name.clone(), Job::not_read())).collect();
        let graph = DesiredGraph::build_with_tests(&stacks, &prepared, &tests);
        Workspace { stacks, graph, prepared, tests, local_files: LocalFiles::Unused }
    }

    pub fn lock_sites(&self) -> Vec<LockSite> {
        lock_sites(&self.stacks)
    }

    fn stack_names(&self) -> BTreeSet<String> {
        self.stacks.iter().map(|s| s.name.clone()).collect()
    }

    /// The region calls that are about no manifest region are made in.
    pub fn home_region(&self) -> &str {
        home_region(&self.stacks)
    }

    /// The inspected local images, one per stack that uploads one.
    pub fn sources(&self) -> impl Iterator<Item = (&str, &SourceInfo)> {
        let read = self.local_files == LocalFiles::Used;
        self.prepared.iter().filter(move |_| read).filter_map(|(stack, prepared)| match prepared {
            Prepared::Upload(info) => Some((stack.as_str(), info.as_ref())),
            Prepared::Helper(_) => None,
        })
    }

    pub async fn observe<C: Cloud>(&self, cloud: &C, scope: RegionScope) -> anyhow::Result<Observed> {
        let names: Vec<String> = self.stack_names().into_iter().collect();
        let mut observed = observe::observe(cloud, &self.graph, &names, scope, self.home_region())
            .await
            .context("reading live state")?;
        self.read_compared_sources(&observed).await?;
        observed.older_digests = self.older_digests(&observed).await?;
        Ok(observed)
    }

    /// Reads the sources left for their upload whose address the plan must compare with
    /// something live: a snapshot or AMI (of this image or another) claimed by one of the nodes
    /// made from them. Where nothing is, the plan creates everything and the upload reads the
    /// image once.
    async fn read_compared_sources(&self, observed: &Observed) -> anyhow::Result<()> {
        let claimed = plan::claimed_nodes(&self.graph, observed, &self.stack_names());
        for (stack, info) in self.sources() {
            let compared = self.graph.nodes().any(|node| {
                node.stack == *stack && node.spec.source_digest().is_some() && claimed.contains(node.id.as_str())
            });
            if info.data_blocks().is_some() || !compared {
                continue;
            }
            tracing::info!("{}: reading it, to compare with what exists of stack {stack}", info.path.display());
            read_now(stack, info).await?;
        }
        Ok(())
    }

    /// Reads the raw images left for their upload, for a plan saved to apply later: it then
    /// says exactly what it uploads, and reading a raw image's blocks costs less than the
    /// file's SHA-256 that a saved plan records for an image not read (see [`Self::unread_files`]).
    pub async fn read_raw_sources(&self) -> anyhow::Result<()> {
        for (stack, info) in self.sources() {
            if info.data_blocks().is_none() && info.format == source::Format::Raw {
                read_now(stack, info).await?;
            }
        }
        Ok(())
    }

    /// Snapshots and AMIs that amiplan tagged before content addresses carry the whole file's
    /// SHA-256 instead. Where a stack has such resources, its file is hashed once (then cached)
    /// so that the plan recognises them as made from this image and re-tags them in place.
    async fn older_digests(&self, observed: &Observed) -> anyhow::Result<BTreeMap<String, String>> {
        let mut digests = BTreeMap::new();
        for (stack, info) in self.sources() {
            let older = observed.resources.iter().any(|live| {
                live.stack() == Some(stack)
                    && live.tags.get(tags::SOURCE).is_some_and(|s| !s.starts_with(source::ADDRESS_PREFIX))
            });
            let digest = match (&info.file_sha256, older) {
                (Some(digest), _) => digest.clone(),
                (None, false) => continue,
                (None, true) => {
                    let path = info.path.clone();
                    tracing::info!(
                        "{}: hashing the whole file once, to recognise what older amiplan made of it",
                        path.display()
                    );
                    let cache = source::cache::default_dir();
                    tokio::task::spawn_blocking(move || source::file_sha256(&path, cache.as_deref()))
                        .await?
                        .with_context(|| format!("stack {stack}"))?
                }
            };
            digests.insert(stack.to_string(), digest);
        }
        Ok(digests)
    }

    /// The desired graph again, if it must know whole-file digests that `observe` found a use
    /// for and inspection did not compute.
    fn rebuilt_knowing(&self, digests: &BTreeMap<String, String>) -> Option<DesiredGraph> {
        let unknown = |stack: &str| match self.prepared.get(stack) {
            Some(Prepared::Upload(info)) => info.file_sha256.is_none(),
            _ => false,
        };
        if !digests.keys().any(|stack| unknown(stack)) {
            return None;
        }
        let mut prepared = self.prepared.clone();
        for (stack, digest) in digests {
            if let Some(Prepared::Upload(info)) = prepared.get_mut(stack) {
                Arc::make_mut(info).file_sha256 = Some(digest.clone());
            }
        }
        Some(DesiredGraph::build_with_tests(&self.stacks, &prepared, &self.tests))
    }

    /// The plan towards these manifests (or towards nothing), as of now.
    pub fn plan(&self, observed: &Observed, destroy: bool) -> Plan {
        self.plan_pruning(observed, destroy, false)
    }

    /// The plan, and with `prune` the deletion of everything the stacks no manifest declares
    /// own (found by `observe`, otherwise only reported).
    pub fn plan_pruning(&self, observed: &Observed, destroy: bool, prune: bool) -> Plan {
        let rebuilt = self.rebuilt_knowing(&observed.older_digests);
        let mut stacks = self.stack_names();
        let pruning;
        let observed = if prune && !observed.foreign.is_empty() {
            stacks.extend(observed.foreign.iter().filter_map(|live| live.stack().map(str::to_string)));
            let mut all = observed.clone();
            all.resources.append(&mut all.foreign);
            all.resources.sort();
            pruning = all;
            &pruning
        } else {
            observed
        };
        let mut plan =
            plan::plan(rebuilt.as_ref().unwrap_or(&self.graph), observed, &stacks, destroy, crate::deprecation::now());
        plan.orphaned = plan::orphaned_stacks(&observed.foreign);
        if !destroy {
            plan.upstream = self.stacks.iter().filter_map(|s| s.upstream.clone()).collect();
            plan.warnings.extend(self.stacks.iter().flat_map(|s| s.notices.iter().map(ToString::to_string)));
        }
        plan
    }
}

impl Workspace {
    /// The SHA-256 of each file whose image is not read yet (by stack): its address is not in
    /// the plan, so a saved plan records the file itself. Hashing the file as it is on disk
    /// costs a fraction of decoding it, and holds wherever the same file is (another checkout,
    /// another machine).
    pub async fn unread_files(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut files = BTreeMap::new();
        for (stack, info) in self.sources().filter(|(_, info)| info.data_blocks().is_none()) {
            files.insert(stack.to_string(), file_digest(stack, &info.path).await?);
        }
        Ok(files)
    }
}

/// Reads a source left for its upload now, off the runtime's workers.
async fn read_now(stack: &str, info: &SourceInfo) -> anyhow::Result<()> {
    let reading = info.clone();
    tokio::task::spawn_blocking(move || reading.read_now()).await?.with_context(|| format!("stack {stack}"))
}

/// The SHA-256 of a stack's source file as it is on disk, off the runtime's workers.
async fn file_digest(stack: &str, path: &Path) -> anyhow::Result<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || source::hash_file(&path)).await?.with_context(|| format!("stack {stack}"))
}

impl Workspace {
    /// The catalogue of these stacks as AWS shows it now, in `regions` (every region of the
    /// manifests when empty).
    pub async fn catalogue<C: Cloud>(&self, cloud: &C, regions: &[String]) -> anyhow::Result<Catalogue> {
        let names: Vec<String> = self.stack_names().into_iter().collect();
        let found =
            observe::catalogue_state(cloud, &self.graph, &names, regions).await.context("reading the catalogue")?;
        Ok(Catalogue::from_live(&self.graph, &found))
    }
}

/// The first stack's build region, or us-east-1 without stacks.
pub fn home_region(stacks: &[Stack]) -> &str {
    stacks.first().map(|s| s.build_region.as_str()).unwrap_or("us-east-1")
}

/// Where each stack's lock lives: its build region.
pub fn lock_sites(stacks: &[Stack]) -> Vec<LockSite> {
    stacks.iter().map(|s| LockSite { stack: s.name.clone(), region: s.build_region.clone() }).collect()
}

/// A plan saved to a file, with what is needed to check it is still valid.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    pub paths: Vec<PathBuf>,
    /// The discovery scope the plan was made with; applying it observes the same regions.
    pub regions: RegionScope,
    /// Whether the plan deletes what undeclared stacks own (`--prune`); applying it does too.
    #[serde(default)]
    pub prune: bool,
    /// The files of sources not read before planning, by stack: see
    /// [`Workspace::unread_files`].
    #[serde(default)]
    pub unread_files: BTreeMap<String, String>,
    pub plan: Plan,
}

/// Why a saved plan is not applied.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("reading the plan {}: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{} is not a saved amiplan plan: {source}", file.display())]
    Format { file: PathBuf, source: serde_json::Error },
    #[error("{} has plan format {found}, this amiplan reads {PLAN_FORMAT}", file.display())]
    Version { file: PathBuf, found: u32 },
    #[error("{} is a destroy plan; run `amiplan destroy` instead", file.display())]
    Destroy { file: PathBuf },
    #[error("the manifests or source images changed since the plan was made; run `amiplan plan` again")]
    DesiredChanged,
    #[error("source image {file} of stack {stack} changed since the plan was made; run `amiplan plan` again")]
    SourceChanged { stack: String, file: PathBuf },
    #[error(
        "source image {file} of stack {stack} was read by another run since the plan was made, which may have \
         uploaded it; run `amiplan plan` again"
    )]
    SourceReadSince { stack: String, file: PathBuf },
    #[error("live state changed since the plan was made; run `amiplan plan` again")]
    LiveChanged,
}

impl SavedPlan {
    /// Refuses the plan if a source it was made without reading is not the same file now, or
    /// is the same file but has been read since: the plan did not know its address, and the
    /// run that read it may have uploaded it (a run reads it only to upload it or to compare it
    /// with something live), so the plan's view of what exists is no longer to be trusted.
    pub async fn check_unread_files(&self, workspace: &Workspace) -> anyhow::Result<()> {
        for (stack, info) in workspace.sources() {
            let Some(was) = self.unread_files.get(stack) else { continue };
            let is = file_digest(stack, &info.path).await?;
            let (stack, file) = (stack.to_string(), info.path.clone());
            if is != *was {
                return Err(SavedPlanError::SourceChanged { stack, file }.into());
            }
            if info.data_blocks().is_some() {
                return Err(SavedPlanError::SourceReadSince { stack, file }.into());
            }
        }
        Ok(())
    }

    pub fn write(&self, file: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(file, text).with_context(|| format!("writing the plan to {}", file.display()))
    }

    pub fn read(file: &Path) -> Result<SavedPlan, SavedPlanError> {
        let text =
            std::fs::read_to_string(file).map_err(|source| SavedPlanError::Read { file: file.into(), source })?;
        let saved: SavedPlan =
            serde_json::from_str(&text).map_err(|source| SavedPlanError::Format { file: file.into(), source })?;
        if saved.plan.format != PLAN_FORMAT {
            return Err(SavedPlanError::Version { file: file.into(), found: saved.plan.format });
        }
        if saved.plan.destroy {
            return Err(SavedPlanError::Destroy { file: file.into() });
        }
        Ok(saved)
    }
}

/// A saved plan is applied only if it is exactly what planning now would produce, as written
/// (a saved plan's reasons are read back as their text).
pub fn check_saved(saved: &Plan, now: &Plan) -> Result<(), SavedPlanError> {
    if saved.desired != now.desired {
        return Err(SavedPlanError::DesiredChanged);
    }
    if saved.observed != now.observed || saved.binding() != now.binding() {
        return Err(SavedPlanError::LiveChanged);
    }
    Ok(())
}

/// Where a converge shows its plan and asks whether to go ahead: a terminal, or a test.
pub trait Review {
    /// Shows a plan with changes and says whether to carry it out (`verb`: apply or destroy);
    /// an error says why not, and nothing is changed.
    fn approve(&self, plan: &Plan, verb: &str) -> anyhow::Result<()>;
}

/// How one apply or destroy runs.
pub struct Run {
    pub regions: RegionScope,
    /// Delete what stacks no manifest declares own (`--prune`).
    pub prune: bool,
    pub destroy: bool,
    /// How long to wait for another run's lock on a stack.
    pub lock_timeout: Duration,
    pub options: ApplyOptions,
}

/// What a converge came to.
#[derive(Debug)]
pub enum Converged {
    /// The plan had no changes: nothing was done.
    NoChanges(Plan),
    /// The plan was carried out (in full or not: see the report).
    Applied { plan: Plan, report: Report },
    /// Interrupted while waiting for a lock: nothing was changed.
    InterruptedWaiting(String),
}

impl Converged {
    pub fn exit_code(&self) -> u8 {
        match self {
            Converged::NoChanges(_) => exit::OK,
            Converged::Applied { report, .. } if report.interrupted => exit::INTERRUPTED,
            // A destroy's promise is that nothing is left.
            Converged::Applied { plan, report } if plan.destroy && report.waiting() => exit::ERROR,
            Converged::Applied { report, .. } if report.succeeded() => exit::OK,
            Converged::Applied { .. } => exit::ERROR,
            Converged::InterruptedWaiting(_) => exit::INTERRUPTED,
        }
    }
}

/// Apply or destroy under the stacks' locks: observe, plan (checked against a saved plan when
/// given), review and execute; the locks are released whatever happens. `interrupted` is
/// polled: once set, no lock is waited for and no new work starts.
pub async fn converge<C: Cloud>(
    cloud: &C,
    workspace: &Workspace,
    run: &Run,
    saved: Option<&Plan>,
    review: &impl Review,
    interrupted: &AtomicBool,
) -> anyhow::Result<Converged> {
    // Its sources only stand for the images: it can delete what they made, never make more.
    anyhow::ensure!(
        run.destroy || workspace.local_files == LocalFiles::Used,
        "a workspace loaded without its files can only destroy"
    );
    let progress = run.options.progress.as_ref();
    let sites = workspace.lock_sites();
    progress.phase(&format!("taking the lock of {} stack(s)", sites.len()));
    let locks = match lock::acquire(cloud, &sites, run.lock_timeout, interrupted).await {
        Ok(locks) => locks,
        Err(error @ lock::LockError::Interrupted { .. }) => {
            return Ok(Converged::InterruptedWaiting(error.to_string()));
        }
        Err(error) => return Err(error.into()),
    };
    let work = async {
        progress.phase("reading live state");
        let observed = workspace.observe(cloud, run.regions).await?;
        let plan = workspace.plan_pruning(&observed, run.destroy, run.prune);
        if let Some(saved) = saved {
            check_saved(saved, &plan)?;
        }
        if !plan.has_changes() {
            return Ok(Converged::NoChanges(plan));
        }
        review.approve(&plan, if run.destroy { "destroy" } else { "apply" })?;
        let report = apply::apply(cloud, &plan, &workspace.graph, &run.options, interrupted).await;
        Ok(Converged::Applied { plan, report })
    };
    // The leases are renewed for as long as the work runs (keep_alive never ends by itself).
    let result = tokio::select! {
        result = work => result,
        () = locks.keep_alive(cloud) => unreachable!("keep_alive runs until the work ends"),
    };
    locks.release(cloud).await;
    result
}

/// `amiplan output`: the AMIs that exist for each stack, variant and region.
#[derive(Debug, Serialize)]
pub struct Outputs {
    pub account: String,
    pub stacks: BTreeMap<String, BTreeMap<String, BTreeMap<String, AmiOutput>>>,
}

#[derive(Debug, Serialize)]
pub struct AmiOutput {
    pub image_id: String,
    pub state: String,
    pub public: bool,
    /// Accounts, organizations and OUs that may launch it, where amiplan read them (AMIs that
    /// are or were shared beyond `public`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_with: Option<Sharing>,
    /// When AWS deprecates it (RFC 3339).
    pub deprecation: Option<String>,
    /// Its deregistration protection: `off`, `with-cooldown`, `without-cooldown`, or lifted and
    /// cooling down.
    pub deregistration_protection: String,
    /// Whether the AMI matches the manifest (false when a plan would replace it).
    pub current: bool,
}

/// What `amiplan output` lists, read from live state in the manifests' regions.
pub async fn outputs<C: Cloud>(cloud: &C, workspace: &Workspace) -> anyhow::Result<Outputs> {
    let observed = workspace.observe(cloud, RegionScope::Manifest).await?;
    let plan = workspace.plan(&observed, false);
    Ok(outputs_of(workspace, &observed, &plan))
}

fn outputs_of(workspace: &Workspace, observed: &Observed, plan: &Plan) -> Outputs {
    let live: HashMap<(&str, &str), _> =
        observed.resources.iter().map(|r| ((r.region.as_str(), r.id.as_str()), r)).collect();
    let mut stacks: BTreeMap<String, BTreeMap<String, BTreeMap<String, AmiOutput>>> = BTreeMap::new();
    for stack in &workspace.stacks {
        stacks.entry(stack.name.clone()).or_default();
    }
    for change in &plan.changes {
        let Some(node) = workspace.graph.get(&change.node).filter(|n| n.kind().is_image()) else {
            continue;
        };
        // The copies' source that is not kept is nobody's output.
        let Some(id) = change.live_id.as_deref().filter(|_| change.action != Action::Delete && !change.until_copied)
        else {
            continue;
        };
        let Some(resource) = live.get(&(change.region.as_str(), id)) else {
            continue;
        };
        let ami = AmiOutput {
            image_id: id.to_string(),
            state: resource.state.to_string(),
            public: resource.public,
            shared_with: resource.sharing.clone(),
            deprecation: resource.deprecation.clone(),
            deregistration_protection: resource.protection.to_string(),
            current: change.action != Action::Replace,
        };
        let name = node.name.clone().unwrap_or_default();
        stacks.entry(node.stack.clone()).or_default().entry(name).or_default().insert(node.region.clone(), ami);
    }
    Outputs { account: observed.account.clone(), stacks }
}
