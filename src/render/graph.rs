//! The desired dependency graph as Graphviz DOT or a Mermaid flowchart (`amiplan graph`): one
//! box per stack and region, an arrow from each resource to what is made from it.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::graph::{DesiredGraph, Node};

/// Nodes by stack and region, each group in dependency order.
fn groups(graph: &DesiredGraph) -> BTreeMap<(&str, &str), Vec<&Node>> {
    let mut groups: BTreeMap<(&str, &str), Vec<&Node>> = BTreeMap::new();
    for node in graph.topological() {
        groups.entry((node.stack.as_str(), node.region.as_str())).or_default().push(node);
    }
    groups
}

/// Every edge, dependency first, in a stable order.
fn edges(graph: &DesiredGraph) -> Vec<(&str, &str)> {
    let mut edges = Vec::new();
    for node in graph.topological() {
        let mut dependencies = graph.dependencies(&node.id);
        dependencies.sort();
        edges.extend(dependencies.into_iter().map(|d| (d, node.id.as_str())));
    }
    edges
}

/// What a box says: the node's kind and name, without the region its cluster already names.
fn label(node: &Node) -> String {
    let id = node.id.rsplit_once('@').map_or(node.id.as_str(), |(id, _)| id);
    if node.kind().is_transient() { format!("{id}\n(for the build)") } else { id.to_string() }
}

pub fn dot(graph: &DesiredGraph) -> String {
    let quote = |text: &str| format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"));
    let mut out = String::from("digraph amiplan {\n  rankdir=LR;\n  node [shape=box];\n");
    for (i, ((stack, region), nodes)) in groups(graph).into_iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{i} {{\n    label={};", quote(&format!("{stack} @ {region}")));
        for node in nodes {
            let style = if node.kind().is_transient() { " style=dashed" } else { "" };
            let _ = writeln!(out, "    {} [label={}{style}];", quote(&node.id), quote(&label(node)));
        }
        out.push_str("  }\n");
    }
    for (from, to) in edges(graph) {
        let _ = writeln!(out, "  {} -> {};", quote(from), quote(to));
    }
    out.push_str("}\n");
    out
}

pub fn mermaid(graph: &DesiredGraph) -> String {
    // Mermaid IDs are plain words: number the nodes, and put the names in the labels.
    let mut ids: BTreeMap<&str, String> = BTreeMap::new();
    let quote = |text: &str| format!("\"{}\"", text.replace('"', "#quot;").replace('\n', "<br>"));
    let mut out = String::from("flowchart LR\n");
    for (i, ((stack, region), nodes)) in groups(graph).into_iter().enumerate() {
        let _ = writeln!(out, "  subgraph g{i}[{}]", quote(&format!("{stack} @ {region}")));
        for node in nodes {
            let id = format!("n{}", ids.len());
            let _ = writeln!(out, "    {id}[{}]", quote(&label(node)));
            ids.insert(node.id.as_str(), id);
        }
        out.push_str("  end\n");
    }
    for (from, to) in edges(graph) {
        let _ = writeln!(out, "  {} --> {}", ids[from], ids[to]);
    }
    out
}
