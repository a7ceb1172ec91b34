//! Human rendering of plans and results. JSON comes from the same values through serde.

use std::fmt::Write;

use anstyle::AnsiColor;
use similar::{ChangeTag, TextDiff};

use crate::plan::{Action, AttrDiff, Change, Plan, Reason};
use crate::source::SourceInfo;

pub mod document;
pub mod graph;
pub mod markdown;
pub mod report;

/// ANSI styling, off when the output is not a terminal or the user said so (see the CLI's
/// `--color`, which follows `NO_COLOR` and `CLICOLOR_FORCE` through anstream).
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, style: anstyle::Style, text: &str) -> String {
        if self.color { format!("{style}{text}{style:#}") } else { text.to_string() }
    }
    pub fn green(&self, text: &str) -> String {
        self.paint(AnsiColor::Green.on_default(), text)
    }
    pub fn yellow(&self, text: &str) -> String {
        self.paint(AnsiColor::Yellow.on_default(), text)
    }
    pub fn red(&self, text: &str) -> String {
        self.paint(AnsiColor::Red.on_default(), text)
    }
    pub fn bold(&self, text: &str) -> String {
        self.paint(anstyle::Style::new().bold(), text)
    }
    pub fn dim(&self, text: &str) -> String {
        self.paint(anstyle::Style::new().dimmed(), text)
    }
}

fn marker(action: Action, style: Style) -> String {
    match action {
        Action::Create => style.green("  +"),
        Action::Update => style.yellow("  ~"),
        Action::Replace => style.red("-/+"),
        Action::Delete => style.red("  -"),
        Action::NoOp => style.dim("   "),
    }
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update in place",
        Action::Replace => "replace",
        Action::Delete => "delete",
        Action::NoOp => "no change",
    }
}

/// One line per uploaded source image: what it holds, and whether it was read or remembered
/// (an unchanged file is not read again, see `source::cache`).
pub fn sources<'a>(sources: impl Iterator<Item = (&'a str, &'a SourceInfo)>) -> String {
    let mut sources: Vec<_> = sources.collect();
    sources.sort_by_key(|(stack, _)| *stack);
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let mut out = String::new();
    for (stack, info) in sources {
        let (path, format, size) = (info.path.display(), info.format, mib(info.size_bytes));
        let line = match (info.data_blocks(), info.data_bytes()) {
            (Some(blocks), Some(data)) => {
                let how =
                    if info.from_cache { "unchanged since it was last read, not read again" } else { "read in full" };
                let (data, count) = (mib(data), blocks.len());
                format!(
                    "{path} ({format}, {size:.1} MiB image, {count} blocks with data = {data:.1} MiB to upload), {how}"
                )
            }
            _ => {
                let at_most = match info.data_bytes_at_most() {
                    bytes if bytes < info.size_bytes => format!(", at most {:.1} MiB to upload", mib(bytes)),
                    _ => String::new(),
                };
                format!(
                    "{path} ({format}, {size:.1} MiB image{at_most}), not read yet: nothing exists of it, so the \
                     upload reads it once and computes its content address"
                )
            }
        };
        let _ = writeln!(out, "Source of {stack}: {line}");
    }
    out
}

/// The plan as a person reads it: changes grouped by stack, unchanged nodes only when `verbose`.
pub fn plan(plan: &Plan, style: Style, verbose: bool) -> String {
    let mut out = String::new();
    let mut stacks: Vec<&str> = plan.changes.iter().map(|c| c.stack.as_str()).collect();
    stacks.sort();
    stacks.dedup();
    for stack in stacks {
        let changes: Vec<&Change> = plan.changes.iter().filter(|c| c.stack == stack).collect();
        let shown: Vec<&&Change> = changes.iter().filter(|c| verbose || c.action != Action::NoOp).collect();
        let label = if stack.is_empty() { "(no stack tag)" } else { stack };
        let _ = writeln!(out, "{}", style.bold(&format!("stack {label}")));
        for found in plan.upstream.iter().filter(|u| u.stack == stack) {
            let version = if found.version_derived { format!(", version {}", found.version) } else { String::new() };
            let line = format!(
                "upstream: {} (sha256 {}){version}, from {}",
                found.file,
                found.sha256,
                found.read.join(" and ")
            );
            let _ = writeln!(out, "    {}", style.dim(&line));
        }
        if shown.is_empty() {
            let _ = writeln!(out, "    {}", style.dim("no changes"));
        }
        for change in shown {
            render_change(&mut out, change, style);
        }
        out.push('\n');
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "{} {warning}", style.yellow("warning:"));
    }
    for line in orphaned_lines(plan) {
        let _ = writeln!(out, "{} {line}", style.yellow("not declared:"));
    }
    if let Some(cost) = cost_line(plan) {
        let _ = writeln!(out, "{cost}");
    }
    let _ = writeln!(out, "{}", summary_line(plan));
    out
}

/// The estimated change in the monthly bill for snapshot storage, per region, with its price's
/// source; `None` when the plan changes no storage.
pub fn cost_line(plan: &Plan) -> Option<String> {
    if plan.cost.is_empty() {
        return None;
    }
    let total: f64 = plan.cost.iter().map(|c| c.usd_per_month()).sum();
    let regions: Vec<String> = plan
        .cost
        .iter()
        .map(|c| {
            let bound = if c.at_most { "at most " } else { "" };
            let mut parts = Vec::new();
            if c.added_bytes > 0 {
                parts.push(format!("+{:.2} GB", c.added_bytes as f64 / 1e9));
            }
            if c.removed_bytes > 0 {
                parts.push(format!("-{:.2} GB", c.removed_bytes as f64 / 1e9));
            }
            format!("{} {bound}{} ({})", c.region, money(c.usd_per_month()), parts.join(", "))
        })
        .collect();
    Some(format!(
        "Estimated monthly storage cost: {} ({}). {}.",
        money(total),
        regions.join("; "),
        crate::plan::cost::PRICE_SOURCE
    ))
}

fn money(usd: f64) -> String {
    let sign = if usd < 0.0 { "-" } else { "+" };
    format!("{sign}${:.2}/month", usd.abs())
}

/// One line per stack that owns resources but that no manifest given declares.
pub fn orphaned_lines(plan: &Plan) -> Vec<String> {
    plan.orphaned
        .iter()
        .map(|orphan| {
            let total: usize = orphan.regions.values().sum();
            let regions: Vec<String> = orphan.regions.iter().map(|(r, n)| format!("{n} in {r}")).collect();
            let kinds: Vec<String> = orphan.kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            format!(
                "stack {} owns {total} resource(s) ({}: {}) and no manifest given declares it; `--prune` plans their deletion",
                orphan.stack,
                regions.join(", "),
                kinds.join(", ")
            )
        })
        .collect()
}

fn render_change(out: &mut String, change: &Change, style: Style) {
    let live = change.live_id.as_deref().map(|id| format!(" ({id})")).unwrap_or_default();
    let reasons = if change.reasons.is_empty() {
        String::new()
    } else {
        format!(": {}", change.reasons.iter().map(Reason::to_string).collect::<Vec<_>>().join("; "))
    };
    let _ = writeln!(
        out,
        "{} {}{} {}{}",
        marker(change.action, style),
        change.node,
        style.dim(&live),
        verb(change.action),
        reasons
    );
    if change.action == Action::Create {
        for (attribute, value) in &change.planned {
            let _ = writeln!(out, "        {}", style.green(&format!("+ {attribute} = {value:?}")));
        }
    }
    if !change.diffs.is_empty() {
        out.push_str(&render_diffs(&change.diffs, style));
    }
    if !change.with_snapshots.is_empty() {
        let _ = writeln!(out, "        with snapshot(s) {}", change.with_snapshots.join(", "));
    }
}

/// Attribute changes as a line diff of `name = value` listings, so additions, removals and
/// modifications read the same way for tags and attributes.
fn render_diffs(diffs: &[AttrDiff], style: Style) -> String {
    let listing = |pick: fn(&AttrDiff) -> Option<&String>| {
        diffs.iter().filter_map(|d| pick(d).map(|v| format!("{} = {:?}\n", d.attribute, v))).collect::<String>()
    };
    let before = listing(|d| d.before.as_ref());
    let after = listing(|d| d.after.as_ref());
    let mut out = String::new();
    for change in TextDiff::from_lines(&before, &after).iter_all_changes() {
        let line = change.value().trim_end();
        let _ = match change.tag() {
            ChangeTag::Delete => writeln!(out, "        {}", style.red(&format!("- {line}"))),
            ChangeTag::Insert => writeln!(out, "        {}", style.green(&format!("+ {line}"))),
            ChangeTag::Equal => writeln!(out, "          {line}"),
        };
    }
    out
}

pub fn summary_line(plan: &Plan) -> String {
    let s = plan.summary();
    if !plan.has_changes() {
        return format!("No changes. {} resource(s) match the manifests.", s.unchanged);
    }
    format!(
        "Plan: {} to create, {} to update in place, {} to replace, {} to delete ({} unchanged).",
        s.create, s.update, s.replace, s.delete, s.unchanged
    )
}

#[cfg(test)]
mod tests;
