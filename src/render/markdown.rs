//! The plan as Markdown for a pull request comment (`plan --markdown`, `show --markdown`): a
//! summary line, a loud block for what is deleted or replaced, a table per stack and region,
//! the details folded away, and never more than a GitHub comment holds.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::plan::{Action, Change, Plan, Summary};

/// GitHub refuses a comment body longer than this many characters.
pub const GITHUB_COMMENT_LIMIT: usize = 65_535;

/// The first line of every rendered plan: a workflow finds its earlier comment by it and
/// updates that one instead of adding another.
pub const MARKER: &str = "<!-- amiplan plan -->";

/// Renders `plan` within `limit` bytes (so within as many characters). `full` says where the
/// whole plan can be read, for when parts are left out.
pub fn plan(plan: &Plan, limit: usize, full: &str) -> String {
    let mut head = String::new();
    let _ = writeln!(head, "{MARKER}");
    let summary = plan.summary();
    let _ = writeln!(head, "### {}\n", title(plan, &summary));
    if !plan.has_changes() {
        let _ = writeln!(head, "**No changes.** {} resource(s) match the manifests.", summary.unchanged);
    }

    // What every reader must see comes first and is cut last: deletions and replacements.
    let losses: Vec<&Change> =
        plan.changes.iter().filter(|c| matches!(c.action, Action::Delete | Action::Replace)).collect();
    let mut warnings = String::new();
    if !losses.is_empty() {
        let _ = writeln!(warnings, "> [!CAUTION]");
        let _ =
            writeln!(warnings, "> This plan deletes {} and replaces {} resource(s):", summary.delete, summary.replace);
        for change in &losses {
            let _ = writeln!(warnings, "> - {}", loss_line(change));
        }
        warnings.push('\n');
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(warnings, "> [!WARNING]");
        for warning in &plan.warnings {
            let _ = writeln!(warnings, "> - {}", one_line(warning));
        }
        warnings.push('\n');
    }
    let orphaned = super::orphaned_lines(plan);
    if !orphaned.is_empty() {
        let _ = writeln!(warnings, "> [!NOTE]");
        for line in orphaned {
            let _ = writeln!(warnings, "> - {line}");
        }
        warnings.push('\n');
    }

    if let Some(cost) = super::cost_line(plan) {
        let _ = writeln!(warnings, "{cost}\n");
    }
    let groups = groups(plan);
    let mut table = String::new();
    if plan.has_changes() {
        let _ = writeln!(table, "| Stack | Region | Create | Update | Replace | Delete | Unchanged |");
        let _ = writeln!(table, "|---|---|--:|--:|--:|--:|--:|");
        for ((stack, region), changes) in &groups {
            let s = count(changes);
            let _ = writeln!(
                table,
                "| {} | {} | {} | {} | {} | {} | {} |",
                cell(stack),
                cell(region),
                s.create,
                s.update,
                s.replace,
                s.delete,
                s.unchanged
            );
        }
        table.push('\n');
    }

    let sections: Vec<String> = groups
        .iter()
        .filter(|(_, changes)| changes.iter().any(|c| c.action != Action::NoOp))
        .map(|((stack, region), changes)| section(stack, region, changes))
        .collect();

    assemble(&head, &warnings, &table, &sections, limit, full)
}

/// Puts the parts together, leaving out what does not fit and saying so.
fn assemble(head: &str, warnings: &str, table: &str, sections: &[String], limit: usize, full: &str) -> String {
    let omission = |what: &str| format!("\n_{what} left out to stay within GitHub's comment limit; {full}._\n");
    // Room for the longest omission note, so adding it never breaks the limit.
    let reserve = omission("999999 section(s) and the table").len();
    let mut out = head.to_string();
    let budget = limit.saturating_sub(reserve);
    out.push_str(&truncate_lines(warnings, budget.saturating_sub(out.len())));
    let mut left_out = Vec::new();
    if out.len() + table.len() <= budget {
        out.push_str(table);
    } else if !table.is_empty() {
        left_out.push("the table".to_string());
    }
    let mut skipped = 0;
    for section in sections {
        if skipped == 0 && out.len() + section.len() <= budget {
            out.push_str(section);
        } else {
            skipped += 1;
        }
    }
    if skipped > 0 {
        left_out.insert(0, format!("{skipped} section(s)"));
    }
    if !left_out.is_empty() {
        out.push_str(&omission(&left_out.join(" and ")));
    }
    out
}

/// Keeps whole lines of `text` within `budget` bytes, ending with how many were cut.
fn truncate_lines(text: &str, budget: usize) -> String {
    if text.len() <= budget {
        return text.to_string();
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let note = format!("> - … and {} more line(s)\n\n", lines.len() - i);
        if out.len() + line.len() + 1 + note.len() > budget {
            out.push_str(&note);
            return out;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn title(plan: &Plan, s: &Summary) -> String {
    let what = if plan.destroy { "amiplan destroy plan" } else { "amiplan plan" };
    if !plan.has_changes() {
        return format!("{what}: no changes");
    }
    format!("{what}: {} to create, {} to update, {} to replace, {} to delete", s.create, s.update, s.replace, s.delete)
}

/// Changes by stack and region, each group in plan order.
fn groups(plan: &Plan) -> BTreeMap<(&str, &str), Vec<&Change>> {
    let mut groups: BTreeMap<(&str, &str), Vec<&Change>> = BTreeMap::new();
    for change in &plan.changes {
        groups.entry((change.stack.as_str(), change.region.as_str())).or_default().push(change);
    }
    groups
}

fn count(changes: &[&Change]) -> Summary {
    Summary::of(changes.iter().copied())
}

fn loss_line(change: &Change) -> String {
    let id = change.live_id.as_deref().map(|id| format!(" (`{id}`)")).unwrap_or_default();
    let verb = if change.action == Action::Replace { "replace" } else { "delete" };
    format!("**{verb}** `{}`{id}{}", change.node, reasons(change).map(|r| format!(": {r}")).unwrap_or_default())
}

/// One stack and region's changes, folded: a line per change, then its attributes as a diff.
fn section(stack: &str, region: &str, changes: &[&Change]) -> String {
    let s = count(changes);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<details><summary><code>{}</code> in {}: {} to create, {} to update, {} to replace, {} to delete</summary>\n",
        html(stack),
        html(region),
        s.create,
        s.update,
        s.replace,
        s.delete
    );
    let _ = writeln!(out, "| | Resource | Action | Why |");
    let _ = writeln!(out, "|---|---|---|---|");
    let shown: Vec<&&Change> = changes.iter().filter(|c| c.action != Action::NoOp).collect();
    for change in &shown {
        let id = change.live_id.as_deref().map(|id| format!(" `{id}`")).unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | `{}`{id} | {} | {} |",
            symbol(change.action),
            cell(&change.node),
            verb(change),
            cell(&reasons(change).unwrap_or_default())
        );
    }
    let details: String = shown.iter().map(|c| attributes(c)).collect();
    if !details.is_empty() {
        let _ = writeln!(out, "\n```diff\n{details}```");
    }
    let _ = writeln!(out, "</details>\n");
    out
}

/// The attributes of a create and the before/after of an update or replace, as diff lines.
fn attributes(change: &Change) -> String {
    let mut out = String::new();
    let planned = change.action == Action::Create && !change.planned.is_empty();
    if !planned && change.diffs.is_empty() {
        return out;
    }
    let _ = writeln!(out, "# {}", code(&change.node));
    if planned {
        for (attribute, value) in &change.planned {
            let _ = writeln!(out, "+ {attribute} = {:?}", code(value));
        }
    }
    for diff in &change.diffs {
        if let Some(before) = &diff.before {
            let _ = writeln!(out, "- {} = {:?}", diff.attribute, code(before));
        }
        if let Some(after) = &diff.after {
            let _ = writeln!(out, "+ {} = {:?}", diff.attribute, code(after));
        }
    }
    out
}

fn symbol(action: Action) -> &'static str {
    match action {
        Action::Create => "➕",
        Action::Update => "🔄",
        Action::Replace => "⚠️ ♻️",
        Action::Delete => "⚠️ ➖",
        Action::NoOp => "",
    }
}

fn verb(change: &Change) -> &'static str {
    match change.action {
        Action::Create if change.transient => "create (for the build)",
        Action::Create if change.until_copied => "create (the copies' source, removed once copied)",
        Action::Create => "create",
        Action::Update => "update in place",
        Action::Replace => "**replace**",
        Action::Delete if change.retire => "**delete** (once the new version is published)",
        Action::Delete => "**delete**",
        Action::NoOp => "no change",
    }
}

fn reasons(change: &Change) -> Option<String> {
    (!change.reasons.is_empty()).then(|| change.reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
}

/// Text for a table cell: one line, no column breaks.
fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Text inside a fenced block: a fence in a value must not end the block.
fn code(text: &str) -> String {
    text.replace("```", "'''")
}

fn html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
