//! What a run did, for people: by stack and region, in the order it was done, with durations,
//! the resources' IDs, and for failures the reason and what was left behind.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::Style;
use crate::apply::{NodeReport, Outcome, Report};
use crate::plan::Action;

pub fn report(report: &Report, style: Style) -> String {
    let mut out = String::from("\n");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    // Stacks and regions in the order their first node appears (the report is in plan order).
    let mut groups: Vec<((&str, &str), Vec<&NodeReport>)> = Vec::new();
    for node in &report.nodes {
        *counts.entry(word(&node.outcome)).or_default() += 1;
        if node.outcome == Outcome::Unchanged {
            continue;
        }
        let key = (node.stack.as_str(), node.region.as_str());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, nodes)) => nodes.push(node),
            None => groups.push((key, vec![node])),
        }
    }
    groups.sort_by_key(|((stack, _), _)| *stack);
    let mut last_stack = None;
    for ((stack, region), nodes) in groups {
        if last_stack != Some(stack) {
            let _ = writeln!(out, "{}", style.bold(&format!("stack {stack}")));
            last_stack = Some(stack);
        }
        let _ = writeln!(out, "  {region}");
        for node in nodes {
            line(&mut out, node, style);
        }
    }
    let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let counts = counts.join(", ");
    let _ = if report.interrupted {
        writeln!(
            out,
            "\nInterrupted ({counts}). Everything made so far is tagged; run apply again to resume, or destroy to remove it."
        )
    } else if report.succeeded() && report.waiting() {
        writeln!(out, "\nDone as far as AWS allows now: {counts}. What waits needs a run after the time it says.")
    } else if report.succeeded() {
        writeln!(out, "\nDone: {counts}.")
    } else {
        writeln!(out, "\nFinished with failures: {counts}. Everything made is tagged; fix the cause and run again.")
    };
    out
}

fn line(out: &mut String, node: &NodeReport, style: Style) {
    let took = took(node.seconds);
    let id = node.resource.as_deref().map(|id| format!(" {id}")).unwrap_or_default();
    let _ = match &node.outcome {
        Outcome::Created => writeln!(out, "    {} {}{id} ({took})", style.green("created"), node.node),
        Outcome::Updated => writeln!(out, "    {} {}{id} ({took})", style.yellow("updated"), node.node),
        Outcome::Deleted => writeln!(out, "    {} {}{id} ({took})", style.red("deleted"), node.node),
        Outcome::Unchanged => Ok(()),
        Outcome::Failed(why) => {
            let _ = writeln!(out, "    {} {} ({took}): {why}", style.red("FAILED"), node.node);
            match (&node.resource, node.action) {
                (Some(id), Action::Delete) => writeln!(out, "      still there: {id}, tagged; the next run deletes it"),
                (Some(id), _) => {
                    writeln!(
                        out,
                        "      left behind: {id}, tagged; the next apply adopts or replaces it, destroy removes it"
                    )
                }
                (None, _) => writeln!(out, "      nothing was left behind"),
            }
        }
        Outcome::Skipped(why) => writeln!(out, "    {} {}: {why}", style.yellow("skipped"), node.node),
        Outcome::Waiting(why) => writeln!(out, "    {} {}{id}: {why}", style.yellow("waiting"), node.node),
    };
    if let Some(reports) = &node.reports {
        let _ = writeln!(out, "      reports: {}", reports.display());
    }
}

fn word(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Created => "created",
        Outcome::Updated => "updated",
        Outcome::Deleted => "deleted",
        Outcome::Unchanged => "unchanged",
        Outcome::Failed(_) => "failed",
        Outcome::Skipped(_) => "skipped",
        Outcome::Waiting(_) => "waiting",
    }
}

/// A duration as a person reads it: `4.2 s`, `3m 12s`, `1h 5m 0s`.
pub fn took(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    let (hours, minutes, seconds) = (whole / 3600, whole % 3600 / 60, whole % 60);
    if hours > 0 { format!("{hours}h {minutes}m {seconds}s") } else { format!("{minutes}m {seconds}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(stack: &str, node: &str, resource: Option<&str>, outcome: Outcome, seconds: f64) -> NodeReport {
        NodeReport {
            stack: stack.into(),
            node: node.into(),
            region: node.rsplit_once('@').map(|(_, r)| r.to_string()).unwrap_or_default(),
            action: if outcome == Outcome::Deleted { Action::Delete } else { Action::Create },
            resource: resource.map(str::to_string),
            outcome,
            seconds,
            reports: None,
        }
    }

    #[test]
    fn outcomes_by_stack_and_region_in_plan_order_with_what_failures_left() {
        let report = Report {
            nodes: vec![
                node("web", "snapshot/web-root@us-east-1", Some("snap-1"), Outcome::Created, 95.2),
                node("web", "image/web@us-east-1", Some("ami-1"), Outcome::Created, 12.0),
                node("web", "image/web@eu-west-1", Some("ami-2"), Outcome::Failed("CopyImage: quota".into()), 3725.0),
                node("base", "image/old@us-east-1", Some("ami-0"), Outcome::Deleted, 1.5),
                node("base", "image/base@us-east-1", Some("ami-9"), Outcome::Unchanged, 0.0),
                node(
                    "web",
                    "parameter/web@eu-west-1",
                    None,
                    Outcome::Skipped("image/web@eu-west-1 failed".into()),
                    0.0,
                ),
            ],
            interrupted: false,
        };
        insta::assert_snapshot!(super::report(&report, Style { color: false }));
    }
}
