//! The command line's flags: what each command takes, with its defaults and help.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::observe::RegionScope;

#[derive(Debug, Parser)]
#[command(name = "amiplan", version, about = "Declarative AMI builds: plan, apply and destroy AMIs from manifests")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// When to colour the output: auto (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE
    /// forces it), always or never. Progress bars appear only on a terminal.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, display_order = 900)]
    pub color: ColorChoice,
    /// More logging on stderr (-v: progress, -vv: debug). AWS SDK internals stay quiet unless
    /// RUST_LOG asks for them.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, display_order = 901)]
    pub verbose: u8,
}

/// How to reach AWS: only the commands that call it take these.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "AWS")]
pub struct Aws {
    /// AWS endpoint (an emulator, for example); `AWS_ENDPOINT_URL` works too.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// AWS profile from the shared config files; `AWS_PROFILE` works too.
    #[arg(long)]
    pub profile: Option<String>,
    /// How long one attempt of an AWS call may take before it is abandoned and retried (a
    /// connection that is accepted and never answered).
    #[arg(long, env = "AMIPLAN_ATTEMPT_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    pub attempt_timeout: Duration,
    /// How long one AWS call may take, all its retries (of throttling, dropped connections,
    /// server errors) included, before the run gives up on it.
    #[arg(long, env = "AMIPLAN_CALL_DEADLINE", value_parser = parse_duration, default_value = "10m")]
    pub call_deadline: Duration,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    Unlock(UnlockArgs),
    /// Print a JSON Schema: of manifests (the default) or of the JSON plan.
    Schema(SchemaArgs),
    /// Print the desired dependency graph of the manifests (no AWS call).
    Graph(GraphArgs),
    /// Print the least-privilege IAM policy (JSON) that plan, apply and destroy of the manifests
    /// need: only the actions their features use, creation scoped to their regions, changes and
    /// removal to resources tagged with their stacks (no AWS call).
    Policy(PolicyArgs),
    /// Print a shell completion script: `amiplan completions bash > /etc/bash_completion.d/amiplan`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff): `amiplan man > amiplan.1 && man ./amiplan.1`.
    Man,
    /// Render a plan saved by `plan --out`: for people, as JSON, or as Markdown for a pull
    /// request comment.
    Show(ShowArgs),
    /// Write the catalogue from live state: simplestreams index and products, a stream document
    /// per channel, a record per version and every AMI per region (amis.json).
    Catalog(CatalogArgs),
    /// Which AMI for a region, architecture, variant and channel (or version): prints its ID.
    Resolve(ResolveArgs),
    /// Serve resolve queries and the catalogue files over HTTP, refreshed from AWS.
    Serve(ServeArgs),
}

impl Command {
    /// How the command reaches AWS, if it calls AWS at all.
    pub fn aws(&self) -> Option<&Aws> {
        match self {
            Command::Plan(args) => Some(&args.aws),
            Command::Apply(args) => Some(&args.aws),
            Command::Destroy(args) => Some(&args.aws),
            Command::Output(args) => Some(&args.aws),
            Command::Unlock(args) => Some(&args.aws),
            Command::Catalog(args) => Some(&args.aws),
            Command::Resolve(args) => Some(&args.aws),
            Command::Serve(args) => Some(&args.aws),
            Command::Validate(_)
            | Command::Schema(_)
            | Command::Show(_)
            | Command::Graph(_)
            | Command::Policy(_)
            | Command::Completions(_)
            | Command::Man => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    #[command(flatten)]
    pub paths: Paths,
    #[command(flatten)]
    pub aws: Aws,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub paths: Paths,
    /// Graphviz DOT (`| dot -Tsvg`) or a Mermaid flowchart (renders in GitHub Markdown).
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub paths: Paths,
    /// Only what plan, output, catalog, resolve and serve need: reads, no change (a role for
    /// pull requests).
    #[arg(long, conflicts_with = "prune")]
    pub read_only: bool,
    /// Also what `apply --prune` needs: removing the resources of any stack (anything tagged
    /// `amiplan:stack`), not only of these manifests' stacks.
    #[arg(long)]
    pub prune: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which document's schema.
    #[arg(value_enum, default_value_t = SchemaOf::Manifest)]
    pub of: SchemaOf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaOf {
    /// The manifests' (schema/amiplan.schema.json).
    Manifest,
    /// The JSON plan's, from `plan --json` and `show --json` (schema/plan.schema.json).
    Plan,
}

/// How a plan is printed.
#[derive(Debug, Args)]
pub struct PlanFormat {
    /// Print the plan as JSON (format in docs/plan-format.md).
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print the plan as Markdown for a pull request comment (at most 65,535 characters).
    #[arg(long)]
    pub markdown: bool,
    /// Also list resources that need no change.
    #[arg(long)]
    pub show_unchanged: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A plan saved by `plan --out`.
    #[arg(value_name = "PLANFILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub format: PlanFormat,
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[command(flatten)]
    pub paths: Paths,
    /// Directory to write the catalogue tree into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub aws: Aws,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub paths: Paths,
    #[arg(long)]
    pub region: String,
    /// x86_64 or arm64.
    #[arg(long)]
    pub arch: String,
    /// A variant axis: volume_type=gp3, encryption=encrypted, virtualization=hvm, boot_mode=uefi.
    #[arg(long = "variant", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub variants: Vec<(String, String)>,
    /// The channel whose AMI to give.
    #[arg(long, conflicts_with = "version")]
    pub channel: Option<String>,
    /// The version whose AMI to give (default: the newest).
    #[arg(long)]
    pub version: Option<String>,
    /// Only this stack's AMIs.
    #[arg(long)]
    pub stack: Option<String>,
    /// Read a catalogue (amis.json) from a file or an http(s) URL instead of AWS.
    #[arg(long, value_name = "FILE|URL")]
    pub from: Option<String>,
    /// Print the AMI with its name, version, channel and deprecation as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub aws: Aws,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub paths: Paths,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// How often the view is read from AWS again.
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub refresh: Duration,
    #[command(flatten)]
    pub aws: Aws,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    Ok((key.to_string(), value.to_string()))
}

#[derive(Debug, Args)]
pub struct Paths {
    /// Manifest files or directories of them.
    #[arg(default_value = "manifests")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct Discovery {
    /// Regions to look in for owned resources: every enabled region finds copies left in regions
    /// removed from a manifest.
    #[arg(long, value_enum, default_value_t = RegionScope::All)]
    pub regions: RegionScope,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub paths: Paths,
    #[command(flatten)]
    pub discovery: Discovery,
    /// Plan the destruction of everything the stacks own.
    #[arg(long)]
    pub destroy: bool,
    #[command(flatten)]
    pub format: PlanFormat,
    /// Save the plan for `apply --plan FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub prune: Prune,
    #[command(flatten)]
    pub aws: Aws,
}

/// The deletion of what stacks no manifest declares own.
#[derive(Debug, Args)]
pub struct Prune {
    /// Also delete the resources of stacks no manifest given declares (reported by every plan):
    /// a stack whose manifest was removed. Only with this flag.
    #[arg(long)]
    pub prune: bool,
}

/// What apply and destroy both take.
#[derive(Debug, Args)]
pub struct Execution {
    /// Skip the interactive confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Operations in flight per region (at least 1).
    #[arg(long, default_value_t = 4, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub parallelism: usize,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write an event per node as it starts, succeeds, fails or is skipped, as JSON lines, to
    /// FILE (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// How long to wait for another run's lock on a stack (0s: fail at once).
    #[arg(long, value_parser = parse_wait, default_value = "0s")]
    pub lock_timeout: Duration,
}

/// What only apply takes: the deadlines and choices of building, testing and copying.
#[derive(Debug, Args)]
pub struct Building {
    /// Deadline for a snapshot to complete (e.g. 90s, 30m, 2h).
    #[arg(long, value_parser = parse_duration, default_value = "60m")]
    pub snapshot_timeout: Duration,
    /// Deadline for a registered AMI to become available.
    #[arg(long, value_parser = parse_duration, default_value = "40m")]
    pub image_timeout: Duration,
    /// Deadline for a cross-region copy to become available.
    #[arg(long, value_parser = parse_duration, default_value = "90m")]
    pub copy_timeout: Duration,
    /// How long a helper or test instance that stopped without its result line on the console
    /// is still polled: EC2 posts a stopped instance's buffered console some time after the stop.
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub console_grace: Duration,
    /// Keep a failed helper build's instance, volume and network to debug it (`destroy` removes
    /// them later, as does the next apply).
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Where boot tests' collected reports (`test.reports`) are stored, as
    /// DIR/<stack>/<node>/<run>/.
    #[arg(long, value_name = "DIR", default_value = "amiplan-reports")]
    pub reports_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub paths: Paths,
    #[command(flatten)]
    pub discovery: Discovery,
    /// Apply a plan saved by `plan --out`; refused if the manifests or live state changed since.
    /// It names its manifests, discovery scope and pruning itself.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["paths", "prune"])]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub prune: Prune,
    #[command(flatten)]
    pub execution: Execution,
    #[command(flatten)]
    pub building: Building,
    #[command(flatten)]
    pub aws: Aws,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub paths: Paths,
    #[command(flatten)]
    pub discovery: Discovery,
    #[command(flatten)]
    pub execution: Execution,
    #[command(flatten)]
    pub aws: Aws,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    #[command(flatten)]
    pub paths: Paths,
    /// Print every AMI with its stack, node, region and state as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub aws: Aws,
}

/// Like [`parse_duration`], but zero is allowed (do not wait at all).
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text)
}

/// A timeout: `90s`, `30m`, `2h`, `1h30m`, or plain seconds; longer than zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match crate::duration::parse(text)? {
        Duration::ZERO => Err("a timeout must be longer than zero".into()),
        duration => Ok(duration),
    }
}
