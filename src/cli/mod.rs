//! The command line: parse flags (`args`), run the pipeline (`crate::pipeline`), print, and map
//! every outcome to an exit code. Errors are reported here, one clear line first.

mod args;
mod distribution;
mod explain;
mod progress;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, anyhow, bail};
use clap::{CommandFactory, Parser};

use crate::apply::{ApplyOptions, Deadlines};
use crate::cloud::Locks;
use crate::cloud::aws::{AwsCloud, Connection, Tuning};
use crate::cloud::needs::Access;
use crate::cloud::retry::RetryPolicy;
use crate::console::{errln, out, outln};
use crate::events::Events;
use crate::manifest::{self, Invalid};
use crate::model::Stack;
use crate::observe::RegionScope;
use crate::pipeline::{self, Converged, Review, Run, SavedPlan, Workspace};
use crate::plan::Plan;
use crate::render::{self, Style};
pub use args::Cli;
use args::{Aws, Building, ColorChoice, Command, Execution, GraphFormat, PlanFormat, SchemaOf};

pub use crate::pipeline::exit;

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
    init_logging(cli.verbose, cli.color);
    let endpoint =
        cli.command.aws().and_then(|aws| aws.endpoint_url.clone()).or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            if let Some(invalid) = error.downcast_ref::<Invalid>() {
                for diagnostic in &invalid.0 {
                    errln!("{diagnostic}");
                }
                errln!("error: {} problem(s) found; nothing was sent to AWS", invalid.0.len());
            } else if let Some((first, more)) = explain::first_line(&error, endpoint.as_deref()) {
                errln!("error: {first}");
                if more {
                    errln!("  cause: {error:#}");
                }
            } else {
                errln!("error: {error:#}");
            }
            ExitCode::from(exit::ERROR)
        }
    }
}

fn init_logging(verbose: u8, color: ColorChoice) {
    let level = match verbose {
        0 => "amiplan=warn",
        1 => "amiplan=info",
        _ => "amiplan=debug",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    // Defence in depth: the SDK redacts credentials in its own logs (the secrets test checks
    // this at RUST_LOG=trace), and its request-signing internals are never worth showing anyway.
    filter = filter.add_directive("aws_sigv4=off".parse().expect("a valid directive"));
    // Colour only for a person at a terminal: a log written to a file or a pipe gets none,
    // whatever --color says.
    let ansi = std::io::stderr().is_terminal()
        && match color {
            ColorChoice::Never => false,
            ColorChoice::Always => true,
            ColorChoice::Auto => anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never,
        };
    // A closed stderr must not turn a log line into a panic (see `console`).
    tracing_subscriber::fmt()
        .with_ansi(ansi)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .log_internal_errors(false)
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let style = Style {
        color: match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            // A terminal, unless NO_COLOR or a dumb TERM says otherwise (CLICOLOR_FORCE forces it).
            ColorChoice::Auto => anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never,
        },
    };
    let connect = |aws: &Aws, stacks: &[Stack]| {
        let policy = RetryPolicy {
            attempt_timeout: aws.attempt_timeout,
            call_deadline: aws.call_deadline,
            ..RetryPolicy::default()
        };
        let tuning = Tuning { retry: policy, ..Tuning::default() };
        let connection = Connection {
            endpoint_url: aws.endpoint_url.clone(),
            profile: aws.profile.clone(),
            home_region: pipeline::home_region(stacks).to_string(),
        };
        async move { AwsCloud::connect(&connection, tuning).await }
    };
    match &cli.command {
        Command::Schema(args) => {
            out!(
                "{}",
                match args.of {
                    SchemaOf::Manifest => manifest::raw::json_schema(),
                    SchemaOf::Plan => render::document::json_schema(),
                }
            );
            Ok(exit::OK)
        }
        Command::Graph(args) => {
            let workspace = Workspace::load_without_files(&args.paths.paths).await?;
            out!(
                "{}",
                match args.format {
                    GraphFormat::Dot => render::graph::dot(&workspace.graph),
                    GraphFormat::Mermaid => render::graph::mermaid(&workspace.graph),
                }
            );
            Ok(exit::OK)
        }
        Command::Policy(args) => {
            let workspace = Workspace::load_without_sources(&args.paths.paths).await?;
            let access = match (args.read_only, args.prune) {
                (true, _) => Access::ReadOnly,
                (false, true) => Access::ConvergeAndPrune,
                (false, false) => Access::Converge,
            };
            let policy = crate::cloud::aws::iam_policy(&crate::policy::needs(&workspace.graph), access);
            out!("{}", serde_json::to_string_pretty(&policy)?);
            Ok(exit::OK)
        }
        Command::Completions(args) => {
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "amiplan", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
            Ok(exit::OK)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            out!("{}", String::from_utf8_lossy(&page));
            Ok(exit::OK)
        }
        Command::Show(args) => {
            let saved = SavedPlan::read(&args.file)?;
            let whole = format!("`amiplan show {}` shows all of it", args.file.display());
            out!("{}", show_plan(&saved.plan, &args.format, style, &whole));
            Ok(exit::OK)
        }
        Command::Validate(paths) => {
            // The whole workspace, as plan loads it: the images' sizes and the jobs' scripts are
            // checked too, without an AWS call.
            let stacks = Workspace::load(&paths.paths).await?.stacks;
            for notice in stacks.iter().flat_map(|s| &s.notices) {
                errln!("warning: {notice}");
            }
            let variants: usize = stacks.iter().map(|s| s.variants.len() * s.regions.len()).sum();
            outln!("{} stack(s) valid, {variants} AMI(s) across regions", stacks.len());
            Ok(exit::OK)
        }
        Command::Plan(args) => {
            // A destroy plan deletes what is live, whatever the manifests' files and upstreams hold.
            let workspace = if args.destroy {
                Workspace::load_without_sources(&args.paths.paths).await?
            } else {
                Workspace::load(&args.paths.paths).await?
            };
            if args.out.is_some() {
                workspace.read_raw_sources().await?;
            }
            let cloud = connect(&args.aws, &workspace.stacks).await?;
            let observed = workspace.observe(&cloud, args.discovery.regions).await?;
            let plan = workspace.plan_pruning(&observed, args.destroy, args.prune.prune);
            if let Some(out) = &args.out {
                let saved = SavedPlan {
                    paths: args.paths.paths.clone(),
                    regions: args.discovery.regions,
                    prune: args.prune.prune,
                    unread_files: workspace.unread_files().await?,
                    plan: plan.clone(),
                };
                saved.write(out)?;
            }
            if !args.format.json && !args.format.markdown {
                out!("{}", render::sources(workspace.sources()));
            }
            let whole = match &args.out {
                Some(file) => format!("`amiplan show {}` shows all of it", file.display()),
                None => "`amiplan plan` shows all of it".to_string(),
            };
            out!("{}", show_plan(&plan, &args.format, style, &whole));
            Ok(if args.detailed_exitcode && plan.has_changes() { exit::CHANGES } else { exit::OK })
        }
        Command::Apply(args) => {
            let saved = args.plan.as_deref().map(SavedPlan::read).transpose()?;
            let paths = saved.as_ref().map_or(&args.paths.paths, |s| &s.paths);
            let workspace = Workspace::load(paths).await?;
            if let Some(saved) = &saved {
                saved.check_unread_files(&workspace).await?;
            }
            let cloud = connect(&args.aws, &workspace.stacks).await?;
            // A saved plan is checked against the regions it was made from, not this run's flag.
            let regions = saved.as_ref().map_or(args.discovery.regions, |s| s.regions);
            let mut run = run_of(&cloud, &args.execution, Some(&args.building), regions, false)?;
            run.prune = saved.as_ref().map_or(args.prune.prune, |s| s.prune);
            converge(&cloud, &workspace, &run, saved.as_ref().map(|s| &s.plan), &args.execution, style).await
        }
        Command::Destroy(args) => {
            let workspace = Workspace::load_without_sources(&args.paths.paths).await?;
            let cloud = connect(&args.aws, &workspace.stacks).await?;
            let run = run_of(&cloud, &args.execution, None, args.discovery.regions, true)?;
            converge(&cloud, &workspace, &run, None, &args.execution, style).await
        }
        Command::Unlock(args) => {
            let stacks = pipeline::load_stacks_without_sources(&args.paths.paths)?;
            let cloud = connect(&args.aws, &stacks).await?;
            for site in pipeline::lock_sites(&stacks) {
                cloud
                    .unlock(&site.region, &site.name())
                    .await
                    .with_context(|| format!("unlocking stack {}", site.stack))?;
                outln!("stack {} is unlocked ({} in {})", site.stack, site.name(), site.region);
            }
            Ok(exit::OK)
        }
        // The catalogue is what is live, found by the stacks' tags and named by the versions the
        // AMIs were tagged with: nothing of a tracked upstream is needed, so an upstream that is
        // down or broken does not stop the distribution side.
        Command::Catalog(args) => {
            let workspace = Workspace::load_without_sources(&args.paths.paths).await?;
            let cloud = connect(&args.aws, &workspace.stacks).await?;
            distribution::catalog(&cloud, &workspace, args).await
        }
        Command::Resolve(args) => {
            let catalogue = match &args.from {
                Some(from) => distribution::read_catalogue(from).await?,
                None => {
                    let workspace = Workspace::load_without_sources(&args.paths.paths).await?;
                    let cloud = connect(&args.aws, &workspace.stacks).await?;
                    workspace.catalogue(&cloud, std::slice::from_ref(&args.region)).await?
                }
            };
            distribution::resolve(&catalogue, args).await
        }
        Command::Serve(args) => {
            let workspace = Workspace::load_without_sources(&args.paths.paths).await?;
            let cloud = connect(&args.aws, &workspace.stacks).await?;
            distribution::serve(cloud, workspace, args).await
        }
        Command::Output(args) => {
            let workspace = Workspace::load_without_files(&args.paths.paths).await?;
            let cloud = connect(&args.aws, &workspace.stacks).await?;
            let outputs = pipeline::outputs(&cloud, &workspace).await?;
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&outputs)?);
            } else {
                for (stack, images) in &outputs.stacks {
                    for (name, regions) in images {
                        for (region, ami) in regions {
                            outln!("{stack}\t{name}\t{region}\t{}\t{}", ami.image_id, ami.state);
                        }
                    }
                }
            }
            Ok(exit::OK)
        }
    }
}

/// The plan in the format asked for; `whole` says where to read all of a shortened Markdown plan.
fn show_plan(plan: &Plan, format: &PlanFormat, style: Style, whole: &str) -> String {
    if format.json {
        render::document::json(plan)
    } else if format.markdown {
        render::markdown::plan(plan, render::markdown::GITHUB_COMMENT_LIMIT, whole)
    } else {
        render::plan(plan, style, format.show_unchanged)
    }
}

/// How an apply or destroy runs, from its flags; destroy builds nothing and takes the defaults.
fn run_of(
    cloud: &AwsCloud,
    args: &Execution,
    building: Option<&Building>,
    regions: RegionScope,
    destroy: bool,
) -> anyhow::Result<Run> {
    let events = match &args.events {
        Some(target) => Some(Arc::new(
            Events::open(target).with_context(|| format!("opening the events file {}", target.display()))?,
        )),
        None => None,
    };
    let mut options = ApplyOptions {
        parallelism: args.parallelism,
        policy: cloud.retry_policy().clone(),
        events,
        progress: progress::on_stderr(),
        ..ApplyOptions::default()
    };
    if let Some(building) = building {
        options.deadlines = Deadlines {
            snapshot: building.snapshot_timeout,
            image: building.image_timeout,
            copy: building.copy_timeout,
            console_grace: building.console_grace,
            ..Deadlines::default()
        };
        options.keep_on_failure = building.keep_on_failure;
        options.reports = building.reports_dir.clone();
    }
    Ok(Run { regions, prune: false, destroy, lock_timeout: args.lock_timeout, options })
}

/// Runs the pipeline's converge from the terminal: warns, watches for interrupts, shows the plan
/// and asks, then prints the report.
async fn converge(
    cloud: &AwsCloud,
    workspace: &Workspace,
    run: &Run,
    saved: Option<&Plan>,
    args: &Execution,
    style: Style,
) -> anyhow::Result<u8> {
    // Watch from here on: an interrupt while planning or confirming must still release the lock.
    tokio::spawn(watch_for_interrupts());
    if let Some(warning) = credentials_warning(|name| std::env::var_os(name).is_some()) {
        errln!("warning: {warning}");
    }
    let terminal = Terminal { style, json: args.json, auto_approve: args.auto_approve };
    let converged = pipeline::converge(cloud, workspace, run, saved, &terminal, &INTERRUPTED).await?;
    match &converged {
        Converged::NoChanges(plan) => outln!("{}", render::summary_line(plan)),
        Converged::Applied { report, .. } if args.json => outln!("{}", serde_json::to_string_pretty(report)?),
        Converged::Applied { report, .. } => out!("{}", render::report::report(report, style)),
        Converged::InterruptedWaiting(why) => errln!("{why}: nothing was changed"),
    }
    Ok(converged.exit_code())
}

/// The terminal as a [`Review`]: shows the plan (unless the report is JSON) and asks.
struct Terminal {
    style: Style,
    json: bool,
    auto_approve: bool,
}

impl Review for Terminal {
    fn approve(&self, plan: &Plan, verb: &str) -> anyhow::Result<()> {
        if !self.json {
            out!("{}", render::plan(plan, self.style, false));
        }
        if self.auto_approve {
            return Ok(());
        }
        confirm(verb)
    }
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
    errln!("interrupted: finishing work in flight and starting nothing new (interrupt again to quit now)");
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    errln!("quitting now: everything made so far is tagged; run apply again to resume, or destroy to remove it");
    std::process::exit(i32::from(exit::INTERRUPTED));
}

fn confirm(verb: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("stdin is not a terminal, so {verb} cannot ask for confirmation; pass --auto-approve");
    }
    out!("\nDo you want to {verb} these changes? Only 'yes' is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        return Err(anyhow!("{verb} cancelled; nothing was changed"));
    }
    Ok(())
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
    fn each_command_offers_only_the_flags_that_mean_something_to_it() {
        let parse = |line: &str| Cli::try_parse_from(line.split(' ')).map_err(|e| e.kind());
        assert!(parse("amiplan apply m.yaml --snapshot-timeout 5m --keep-on-failure --parallelism 2").is_ok());
        for builds_only in ["--snapshot-timeout 5m", "--image-timeout 5m", "--keep-on-failure", "--reports-dir r"] {
            let line = format!("amiplan destroy m.yaml {builds_only}");
            assert_eq!(parse(&line).err(), Some(clap::error::ErrorKind::UnknownArgument), "{line}");
        }
        assert!(parse("amiplan destroy m.yaml --parallelism 2 --lock-timeout 1m").is_ok());
        assert_eq!(parse("amiplan apply --parallelism 0").err(), Some(clap::error::ErrorKind::ValueValidation));
        assert_eq!(parse("amiplan destroy --parallelism 0").err(), Some(clap::error::ErrorKind::ValueValidation));
        // Commands that never call AWS do not offer its flags; those that do, do.
        for offline in ["validate m.yaml", "graph m.yaml", "show p.json", "schema", "man", "completions bash"] {
            for aws in ["--endpoint-url http://x", "--profile p", "--attempt-timeout 5s", "--call-deadline 1m"] {
                let line = format!("amiplan {offline} {aws}");
                assert_eq!(parse(&line).err(), Some(clap::error::ErrorKind::UnknownArgument), "{line}");
            }
        }
        for online in ["plan", "apply", "destroy", "output", "unlock", "catalog --out d", "serve"] {
            let line = format!("amiplan {online} m.yaml --endpoint-url http://x --profile p --call-deadline 1m");
            assert!(parse(&line).is_ok(), "{line}");
        }
        // A saved plan names its manifests and pruning: giving them again is refused.
        assert_eq!(parse("amiplan apply m.yaml --plan p.json").err(), Some(clap::error::ErrorKind::ArgumentConflict));
        assert_eq!(parse("amiplan apply --plan p.json --prune").err(), Some(clap::error::ErrorKind::ArgumentConflict));
    }

    #[test]
    fn durations_parse() {
        use super::args::{parse_duration, parse_wait};
        use std::time::Duration;
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
