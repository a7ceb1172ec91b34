//! The command line: parse flags, run the pipeline (manifests → graph → observe → plan → apply),
//! print, and map every outcome to an exit code in one place. Errors get their context here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::apply::{self, ApplyOptions, Deadlines, Outcome, Report};
use crate::cloud::Locks;
use crate::cloud::Sharing;
use crate::cloud::aws::{AwsCloud, Connection, Tuning};
use crate::cloud::retry::RetryPolicy;
use crate::events::Events;
use crate::graph::DesiredGraph;
use crate::job;
use crate::lock::{self, LockSite};
use crate::manifest::{self, Invalid};
use crate::model::{self, Stack};
use crate::observe::{self, Observed, RegionScope};
use crate::plan::{self, Action, PLAN_FORMAT, Plan};
use crate::render::{self, Style};
use crate::source::{self, Prepared};

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

#[derive(Debug, Parser)]
#[command(name = "amiplan", version, about = "Declarative AMI builds: plan, apply and destroy AMIs from manifests")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// AWS endpoint (an emulator, for example); `AWS_ENDPOINT_URL` works too.
    #[arg(long, global = true)]
    endpoint_url: Option<String>,
    /// AWS profile from the shared config files; `AWS_PROFILE` works too.
    #[arg(long, global = true)]
    profile: Option<String>,
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// More logging on stderr (-v: progress, -vv: debug). AWS SDK internals stay quiet unless
    /// RUST_LOG asks for them.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// How long one attempt of an AWS call may take before it is abandoned and retried (a
    /// connection that is accepted and never answered).
    #[arg(long, global = true, env = "AMIPLAN_ATTEMPT_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    attempt_timeout: Duration,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check manifests without calling AWS; problems are printed as file:line:col.
    Validate(Paths),
    /// Show what apply (or destroy) would change. Never changes anything.
    Plan(PlanArgs),
    /// Converge AWS to the manifests.
    Apply(ApplyArgs),
    /// Delete every resource the manifests' stacks own, in every region.
    Destroy(DestroyArgs),
    /// AMI IDs per stack, variant and region.
    Output(OutputArgs),
    /// Break the locks of the manifests' stacks (left behind by a killed run).
    Unlock(Paths),
    /// Print the manifest JSON Schema.
    Schema,
}

#[derive(Debug, Args)]
struct Paths {
    /// Manifest files or directories of them.
    #[arg(default_value = "manifests")]
    paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct Discovery {
    /// Regions to look in for owned resources: every enabled region finds copies left in regions
    /// removed from a manifest.
    #[arg(long, value_enum, default_value_t = RegionScope::All)]
    regions: RegionScope,
}

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    paths: Paths,
    #[command(flatten)]
    discovery: Discovery,
    /// Plan the destruction of everything the stacks own.
    #[arg(long)]
    destroy: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
    /// Save the plan for `apply --plan FILE`.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
    /// Also list resources that need no change.
    #[arg(long)]
    show_unchanged: bool,
}

#[derive(Debug, Args)]
struct Execution {
    /// Skip the interactive confirmation (required when stdin is not a terminal).
    #[arg(long)]
    auto_approve: bool,
    /// Operations in flight per region.
    #[arg(long, default_value_t = 4)]
    parallelism: usize,
    /// Deadline for a snapshot to complete (e.g. 90s, 30m, 2h).
    #[arg(long, value_parser = parse_duration, default_value = "60m")]
    snapshot_timeout: Duration,
    /// Deadline for a registered AMI to become available.
    #[arg(long, value_parser = parse_duration, default_value = "40m")]
    image_timeout: Duration,
    /// Deadline for a cross-region copy to become available.
    #[arg(long, value_parser = parse_duration, default_value = "90m")]
    copy_timeout: Duration,
    /// How long a helper or test instance that stopped without its result line on the console
    /// is still polled: EC2 posts a stopped instance's buffered console some time after the stop.
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    console_grace: Duration,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write an event per node as it starts, succeeds, fails or is skipped, as JSON lines, to
    /// FILE (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Keep a failed helper build's instance, volume and network to debug it (`destroy` removes
    /// them later, as does the next apply).
    #[arg(long)]
    keep_on_failure: bool,
    /// How long to wait for another run's lock on a stack (0s: fail at once).
    #[arg(long, value_parser = parse_wait, default_value = "0s")]
    lock_timeout: Duration,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    #[command(flatten)]
    paths: Paths,
    #[command(flatten)]
    discovery: Discovery,
    /// Apply a plan saved by `plan --out`; refused if the manifests or live state changed since.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    #[command(flatten)]
    execution: Execution,
}

#[derive(Debug, Args)]
struct DestroyArgs {
    #[command(flatten)]
    paths: Paths,
    #[command(flatten)]
    discovery: Discovery,
    #[command(flatten)]
    execution: Execution,
}

#[derive(Debug, Args)]
struct OutputArgs {
    #[command(flatten)]
    paths: Paths,
    #[arg(long)]
    json: bool,
}

/// A plan saved to a file, with what is needed to check it is still valid.
#[derive(Debug, Serialize, Deserialize)]
struct SavedPlan {
    paths: Vec<PathBuf>,
    /// The discovery scope the plan was made with; applying it observes the same regions.
    regions: RegionScope,
    plan: Plan,
}

/// Set by the interrupt handler; the executor starts no new work once it is set.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    init_logging(cli.verbose);
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            if let Some(invalid) = error.downcast_ref::<Invalid>() {
                for diagnostic in &invalid.0 {
                    eprintln!("{diagnostic}");
                }
                eprintln!("error: {} problem(s) found; nothing was sent to AWS", invalid.0.len());
            } else {
                eprintln!("error: {error:#}");
            }
            ExitCode::from(exit::ERROR)
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "amiplan=warn",
        1 => "amiplan=info",
        _ => "amiplan=debug",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    // Defence in depth: the SDK redacts credentials in its own logs (the secrets test checks
    // this at RUST_LOG=trace), and its request-signing internals are never worth showing anyway.
    filter = filter.add_directive("aws_sigv4=off".parse().expect("a valid directive"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let style = Style {
        color: match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        },
    };
    let policy = RetryPolicy { attempt_timeout: cli.attempt_timeout, ..RetryPolicy::default() };
    let tuning = Tuning { retry: policy.clone(), ..Tuning::default() };
    let tuning = || tuning.clone();
    let connection = |stacks: &[Stack]| Connection {
        endpoint_url: cli.endpoint_url.clone(),
        profile: cli.profile.clone(),
        home_region: stacks.first().map(|s| s.build_region.clone()).unwrap_or_else(|| "us-east-1".into()),
    };
    match &cli.command {
        Command::Schema => {
            print!("{}", manifest::raw::json_schema());
            Ok(exit::OK)
        }
        Command::Validate(paths) => {
            let stacks = load_stacks(&paths.paths)?;
            let variants: usize = stacks.iter().map(|s| s.variants.len() * s.regions.len()).sum();
            println!("{} stack(s) valid, {variants} AMI(s) across regions", stacks.len());
            Ok(exit::OK)
        }
        Command::Plan(args) => {
            let workspace = Workspace::load(&args.paths.paths).await?;
            let cloud = AwsCloud::connect(&connection(&workspace.stacks), tuning()).await;
            let observed = workspace.observe(&cloud, args.discovery.regions).await?;
            let plan = workspace.plan(&observed, args.destroy);
            if let Some(out) = &args.out {
                let saved =
                    SavedPlan { paths: args.paths.paths.clone(), regions: args.discovery.regions, plan: plan.clone() };
                let text = serde_json::to_string_pretty(&saved)?;
                std::fs::write(out, text).with_context(|| format!("writing the plan to {}", out.display()))?;
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{}", render::plan(&plan, style, args.show_unchanged));
            }
            Ok(if args.detailed_exitcode && plan.has_changes() { exit::CHANGES } else { exit::OK })
        }
        Command::Apply(args) => {
            let (paths, saved) = match &args.plan {
                Some(file) => {
                    let saved = read_saved_plan(file)?;
                    (saved.paths.clone(), Some(saved))
                }
                None => (args.paths.paths.clone(), None),
            };
            let workspace = Workspace::load(&paths).await?;
            let cloud = AwsCloud::connect(&connection(&workspace.stacks), tuning()).await;
            // A saved plan is checked against the regions it was made from, not this run's flag.
            let regions = saved.as_ref().map_or(args.discovery.regions, |s| s.regions);
            let run = Run { regions, execution: &args.execution, style, destroy: false };
            converge(&cloud, &workspace, run, saved.map(|s| s.plan)).await
        }
        Command::Destroy(args) => {
            let workspace = Workspace::load(&args.paths.paths).await?;
            let cloud = AwsCloud::connect(&connection(&workspace.stacks), tuning()).await;
            let run = Run { regions: args.discovery.regions, execution: &args.execution, style, destroy: true };
            converge(&cloud, &workspace, run, None).await
        }
        Command::Unlock(paths) => {
            let stacks = load_stacks(&paths.paths)?;
            let cloud = AwsCloud::connect(&connection(&stacks), tuning()).await;
            for site in lock_sites(&stacks) {
                cloud
                    .unlock(&site.region, &site.name())
                    .await
                    .with_context(|| format!("unlocking stack {}", site.stack))?;
                println!("stack {} is unlocked ({} in {})", site.stack, site.name(), site.region);
            }
            Ok(exit::OK)
        }
        Command::Output(args) => {
            let workspace = Workspace::load(&args.paths.paths).await?;
            let cloud = AwsCloud::connect(&connection(&workspace.stacks), tuning()).await;
            let observed = workspace.observe(&cloud, RegionScope::Manifest).await?;
            let plan = workspace.plan(&observed, false);
            let outputs = outputs(&workspace, &observed, &plan);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&outputs)?);
            } else {
                for (stack, images) in &outputs.stacks {
                    for (name, regions) in images {
                        for (region, ami) in regions {
                            println!("{stack}\t{name}\t{region}\t{}\t{}", ami.image_id, ami.state);
                        }
                    }
                }
            }
            Ok(exit::OK)
        }
    }
}

fn load_stacks(paths: &[PathBuf]) -> anyhow::Result<Vec<Stack>> {
    let loaded = manifest::load(paths)?;
    Ok(model::validate(&loaded)?)
}

/// Validated stacks with their desired graph: everything known before the first AWS call.
struct Workspace {
    stacks: Vec<Stack>,
    graph: DesiredGraph,
}

impl Workspace {
    async fn load(paths: &[PathBuf]) -> anyhow::Result<Workspace> {
        let stacks = load_stacks(paths)?;
        let mut prepared = HashMap::new();
        for stack in &stacks {
            let context = || format!("stack {} ({})", stack.name, stack.manifest.display());
            let ready = match stack.local_source() {
                Some((path, expected)) => {
                    let (path, expected) = (path.to_path_buf(), expected.map(str::to_string));
                    let info = tokio::task::spawn_blocking(move || source::inspect(&path, expected.as_deref()))
                        .await?
                        .with_context(context)?;
                    Prepared::Upload(info)
                }
                None => Prepared::Helper(job::prepare(&stack.name, &stack.source).with_context(context)?),
            };
            prepared.insert(stack.name.clone(), ready);
        }
        let mut tests = HashMap::new();
        for stack in &stacks {
            if let Some(test) = &stack.test {
                let job = job::prepare_test(&stack.name, &test.script)
                    .with_context(|| format!("the test of stack {} ({})", stack.name, stack.manifest.display()))?;
                tests.insert(stack.name.clone(), job);
            }
        }
        let graph = DesiredGraph::build_with_tests(&stacks, &prepared, &tests);
        Ok(Workspace { stacks, graph })
    }

    fn lock_sites(&self) -> Vec<LockSite> {
        lock_sites(&self.stacks)
    }

    fn stack_names(&self) -> BTreeSet<String> {
        self.stacks.iter().map(|s| s.name.clone()).collect()
    }

    async fn observe(&self, cloud: &AwsCloud, scope: RegionScope) -> anyhow::Result<Observed> {
        let names: Vec<String> = self.stack_names().into_iter().collect();
        let via = self.stacks.first().map(|s| s.build_region.as_str()).unwrap_or("us-east-1");
        observe::observe(cloud, &self.graph, &names, scope, via).await.context("reading live state")
    }

    fn plan(&self, observed: &Observed, destroy: bool) -> Plan {
        plan::plan(&self.graph, observed, &self.stack_names(), destroy)
    }
}

fn lock_sites(stacks: &[Stack]) -> Vec<LockSite> {
    stacks.iter().map(|s| LockSite { stack: s.name.clone(), region: s.build_region.clone() }).collect()
}

fn read_saved_plan(file: &PathBuf) -> anyhow::Result<SavedPlan> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading the plan {}", file.display()))?;
    let saved: SavedPlan =
        serde_json::from_str(&text).with_context(|| format!("{} is not a saved amiplan plan", file.display()))?;
    if saved.plan.format != PLAN_FORMAT {
        bail!("{} has plan format {}, this amiplan reads {PLAN_FORMAT}", file.display(), saved.plan.format);
    }
    if saved.plan.destroy {
        bail!("{} is a destroy plan; run `amiplan destroy` instead", file.display());
    }
    Ok(saved)
}

/// A saved plan is applied only if it is exactly what planning now would produce.
fn check_saved(saved: &Plan, now: &Plan) -> anyhow::Result<()> {
    if saved.desired != now.desired {
        bail!("the manifests or source images changed since the plan was made; run `amiplan plan` again");
    }
    if saved.observed != now.observed || saved.changes != now.changes {
        bail!("live state changed since the plan was made; run `amiplan plan` again");
    }
    Ok(())
}

/// How one apply or destroy runs.
struct Run<'a> {
    regions: RegionScope,
    execution: &'a Execution,
    style: Style,
    destroy: bool,
}

/// Apply or destroy under the stacks' locks: observe, plan (checked against a saved plan when
/// given), confirm and execute; the locks are released whatever happens.
async fn converge(cloud: &AwsCloud, workspace: &Workspace, run: Run<'_>, saved: Option<Plan>) -> anyhow::Result<u8> {
    // Watch from here on: an interrupt while planning or confirming must still release the lock.
    tokio::spawn(watch_for_interrupts());
    if let Some(warning) = credentials_warning(|name| std::env::var_os(name).is_some()) {
        eprintln!("warning: {warning}");
    }
    let locks = match lock::acquire(cloud, &workspace.lock_sites(), run.execution.lock_timeout, &INTERRUPTED).await {
        Ok(locks) => locks,
        Err(error @ lock::LockError::Interrupted { .. }) => {
            eprintln!("{error}: nothing was changed");
            return Ok(exit::INTERRUPTED);
        }
        Err(error) => return Err(error.into()),
    };
    let work = async {
        let observed = workspace.observe(cloud, run.regions).await?;
        let plan = workspace.plan(&observed, run.destroy);
        if let Some(saved) = saved {
            check_saved(&saved, &plan)?;
        }
        let verb = if run.destroy { "destroy" } else { "apply" };
        execute(cloud, workspace, &plan, run.execution, run.style, verb).await
    };
    // The leases are renewed for as long as the work runs (keep_alive never ends by itself).
    let result = tokio::select! {
        result = work => result,
        () = locks.keep_alive(cloud) => unreachable!("keep_alive runs until the work ends"),
    };
    locks.release(cloud).await;
    result
}

async fn execute(
    cloud: &AwsCloud,
    workspace: &Workspace,
    plan: &Plan,
    args: &Execution,
    style: Style,
    verb: &str,
) -> anyhow::Result<u8> {
    if !plan.has_changes() {
        println!("{}", render::summary_line(plan));
        return Ok(exit::OK);
    }
    if !args.json {
        print!("{}", render::plan(plan, style, false));
    }
    if !args.auto_approve {
        confirm(verb)?;
    }
    let options = ApplyOptions {
        parallelism: args.parallelism,
        deadlines: Deadlines {
            snapshot: args.snapshot_timeout,
            image: args.image_timeout,
            copy: args.copy_timeout,
            console_grace: args.console_grace,
            ..Deadlines::default()
        },
        policy: cloud.retry_policy().clone(),
        keep_on_failure: args.keep_on_failure,
        events: match &args.events {
            Some(target) => Some(Arc::new(
                Events::open(target).with_context(|| format!("opening the events file {}", target.display()))?,
            )),
            None => None,
        },
    };
    let report = apply::apply(cloud, plan, &workspace.graph, &options, &INTERRUPTED).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_report(&report, style));
    }
    Ok(if report.interrupted {
        exit::INTERRUPTED
    } else if report.succeeded() {
        exit::OK
    } else {
        exit::ERROR
    })
}

/// Builds, copies and boot tests run for an hour or more. The SDK refreshes credentials from
/// profiles (SSO, assume-role), instance roles and container roles as they near expiry; session
/// credentials given in the environment it cannot refresh, so a long run fails midway. Said
/// before anything changes. `set` tells whether an environment variable is set.
fn credentials_warning(set: impl Fn(&str) -> bool) -> Option<&'static str> {
    (set("AWS_ACCESS_KEY_ID") && set("AWS_SESSION_TOKEN")).then_some(
        "the credentials are session credentials from the environment (AWS_ACCESS_KEY_ID with AWS_SESSION_TOKEN), which cannot be refreshed: a run longer than their lifetime fails midway (the next apply resumes). A profile (SSO or a role) or an instance role is refreshed during long waits.",
    )
}

/// SIGINT or SIGTERM: stop starting work, let work in flight finish (so that nothing is left
/// half-made and untracked), then report. A second signal quits at once.
async fn watch_for_interrupts() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    INTERRUPTED.store(true, Ordering::SeqCst);
    eprintln!("interrupted: finishing work in flight and starting nothing new (interrupt again to quit now)");
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("quitting now: everything made so far is tagged; run apply again to resume, or destroy to remove it");
    std::process::exit(i32::from(exit::INTERRUPTED));
}

fn confirm(verb: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("stdin is not a terminal, so {verb} cannot ask for confirmation; pass --auto-approve");
    }
    print!("\nDo you want to {verb} these changes? Only 'yes' is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        return Err(anyhow!("{verb} cancelled; nothing was changed"));
    }
    Ok(())
}

fn render_report(report: &Report, style: Style) -> String {
    let mut out = String::from("\n");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for node in &report.nodes {
        let id = node.resource.as_deref().unwrap_or("-");
        let (label, detail) = match &node.outcome {
            Outcome::Created => (style.green("created"), String::new()),
            Outcome::Updated => (style.yellow("updated"), String::new()),
            Outcome::Deleted => (style.red("deleted"), String::new()),
            Outcome::Unchanged => ("unchanged".to_string(), String::new()),
            Outcome::Failed(why) => (style.red("FAILED"), format!("\n      {why}")),
            Outcome::Skipped(why) => (style.yellow("skipped"), format!(": {why}")),
        };
        let key = match node.outcome {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Deleted => "deleted",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped(_) => "skipped",
        };
        *counts.entry(key).or_default() += 1;
        if node.outcome == Outcome::Unchanged {
            continue;
        }
        out.push_str(&format!("  {label} {} {id} ({:.1}s){detail}\n", node.node, node.seconds));
    }
    let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    if report.interrupted {
        out.push_str(&format!("\nInterrupted ({}). Everything made so far is tagged; run apply again to resume, or destroy to remove it.\n", counts.join(", ")));
    } else if report.succeeded() {
        out.push_str(&format!("\nDone: {}.\n", counts.join(", ")));
    } else {
        out.push_str(&format!(
            "\nFinished with failures: {}. Everything made is tagged; fix the cause and run again.\n",
            counts.join(", ")
        ));
    }
    out
}

/// `amiplan output`: the AMIs that exist for each stack, variant and region.
#[derive(Debug, Serialize)]
struct Outputs {
    account: String,
    stacks: BTreeMap<String, BTreeMap<String, BTreeMap<String, AmiOutput>>>,
}

#[derive(Debug, Serialize)]
struct AmiOutput {
    image_id: String,
    state: String,
    public: bool,
    /// Accounts, organizations and OUs that may launch it, where amiplan read them (AMIs that
    /// are or were shared beyond `public`).
    #[serde(skip_serializing_if = "Option::is_none")]
    shared_with: Option<Sharing>,
    /// When AWS deprecates it (RFC 3339).
    deprecation: Option<String>,
    /// Whether the AMI matches the manifest (false when a plan would replace it).
    current: bool,
}

fn outputs(workspace: &Workspace, observed: &Observed, plan: &Plan) -> Outputs {
    let live: HashMap<(&str, &str), _> =
        observed.resources.iter().map(|r| ((r.region.as_str(), r.id.as_str()), r)).collect();
    let mut stacks: BTreeMap<String, BTreeMap<String, BTreeMap<String, AmiOutput>>> = BTreeMap::new();
    for stack in &workspace.stacks {
        stacks.entry(stack.name.clone()).or_default();
    }
    for change in &plan.changes {
        let Some(node) = workspace.graph.get(&change.node).filter(|n| n.kind.is_image()) else {
            continue;
        };
        let Some(id) = change.live_id.as_deref().filter(|_| change.action != Action::Delete) else {
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
            current: change.action != Action::Replace,
        };
        let name = node.name.clone().unwrap_or_default();
        stacks.entry(node.stack.clone()).or_default().entry(name).or_default().insert(node.region.clone(), ami);
    }
    Outputs { account: observed.account.clone(), stacks }
}

/// Like [`parse_duration`], but zero is allowed (do not wait at all).
fn parse_wait(text: &str) -> Result<Duration, String> {
    if !text.is_empty() && text.trim_end_matches(['s', 'm', 'h']).chars().all(|c| c == '0') {
        return Ok(Duration::ZERO);
    }
    parse_duration(text)
}

/// `90s`, `30m`, `2h`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(split) => text.split_at(split),
        None => (text, "s"),
    };
    let value: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration like 90s, 30m or 2h"))?;
    let seconds = match unit {
        "s" => value,
        "m" => value * 60,
        "h" => value * 3600,
        _ => return Err(format!("`{text}`: the unit must be s, m or h")),
    };
    if seconds == 0 {
        return Err("a timeout must be longer than zero".into());
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_credentials_from_the_environment_are_warned_about() {
        let env = |names: &'static [&'static str]| move |name: &str| names.contains(&name);
        assert!(credentials_warning(env(&["AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"])).is_some());
        assert!(credentials_warning(env(&["AWS_ACCESS_KEY_ID"])).is_none(), "long-term keys do not expire");
        assert!(credentials_warning(env(&["AWS_PROFILE"])).is_none(), "profiles are refreshed");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("2d").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_wait("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_wait("5m"), Ok(Duration::from_secs(300)));
    }
}
