//! Renderings of a plan: text in the style of `terraform plan`, stable JSON,
//! and the step graph as Mermaid and Graphviz DOT.

use std::fmt::Write;

use super::*;
use crate::units::human_bytes;

/// Stable, pretty JSON of the plan (field order is the struct's; no maps
/// with unordered keys), ending with a newline.
pub fn to_json(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).unwrap_or_default();
    s.push('\n');
    s
}

fn severity_symbol(s: Severity) -> &'static str {
    match s {
        Severity::Block => "x",
        Severity::Warning => "!",
        Severity::Info => "i",
    }
}

fn brief(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "none".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A human rendering in the style of `terraform plan`: symbols per step
/// (`+` create, `~` change, `-` delete, `?` read), findings with rule IDs,
/// transformations, post-restore actions and a summary line.
pub fn render_text(plan: &Plan) -> String {
    let t = &plan.target;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "vmrestore plan: restore VM '{}' from restore point '{}' under {}",
        t.source_vm,
        t.restore_point_id,
        plan.profiles.join(" + ")
    );
    let zone = t
        .zone
        .map_or("no zone".to_string(), |z| format!("zone {z}"));
    let _ = writeln!(
        o,
        "  target: {} in {}/{} ({}), {}, {}",
        t.vm_name, t.subscription_id, t.resource_group, t.region, t.vm_size, zone
    );
    let _ = writeln!(o);
    match plan.verdict {
        Verdict::Ready => {
            let _ = writeln!(o, "vmrestore will perform the following actions:");
            let mut stage = "";
            for s in &plan.steps {
                if *s.stage != *stage {
                    stage = &s.stage;
                    let _ = writeln!(o, "\n  # {stage}");
                }
                let rules = if s.rule_ids.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", s.rule_ids.join(", "))
                };
                let _ = writeln!(
                    o,
                    "  {} {}.{}{}",
                    s.action.symbol(),
                    s.kind.resource_type(),
                    s.resource,
                    rules
                );
                let _ = writeln!(o, "      {}", s.detail);
            }
        }
        Verdict::Blocked => {
            let n = plan.blocking().count();
            let ids: Vec<&str> = plan.blocking().map(|f| f.rule_id.as_ref()).collect();
            let _ = writeln!(
                o,
                "The restore is blocked by {n} finding{}: {}. Nothing will be changed.",
                if n == 1 { "" } else { "s" },
                ids.join(", ")
            );
        }
    }
    if !plan.transformations.is_empty() {
        let _ = writeln!(
            o,
            "\nTransformations (the restored VM differs from the source):"
        );
        for tr in &plan.transformations {
            let _ = writeln!(
                o,
                "  ~ {} {:?}: {} -> {}",
                tr.rule_id,
                tr.kind,
                brief(&tr.before),
                brief(&tr.after)
            );
            let _ = writeln!(o, "      {}", tr.message);
        }
    }
    if !plan.findings.is_empty() {
        let _ = writeln!(o, "\nFindings:");
        let mut sorted: Vec<&Finding> = plan.findings.iter().collect();
        sorted.sort_by_key(|f| std::cmp::Reverse(f.severity));
        for f in sorted {
            let _ = writeln!(
                o,
                "  {} {} [{}] {}",
                severity_symbol(f.severity),
                f.rule_id,
                format!("{:?}", f.severity).to_lowercase(),
                f.message
            );
            let _ = writeln!(o, "      at {} (source: {})", f.path, f.source);
        }
    }
    if !plan.post_actions.is_empty() {
        let _ = writeln!(o, "\nPost-restore actions:");
        for p in &plan.post_actions {
            let _ = writeln!(o, "  * {} {}", p.rule_id, p.message);
        }
    }
    let e = &plan.estimates;
    let _ = writeln!(o);
    match plan.verdict {
        Verdict::Ready => {
            let _ = writeln!(
                o,
                "Plan: {} to create, {} to change, {} to delete. {} to move, {} of storage, about {} s of transfer.",
                e.to_create,
                e.to_change,
                e.to_delete,
                human_bytes(e.bytes_to_move),
                human_bytes(e.storage_bytes),
                e.transfer_seconds
            );
        }
        Verdict::Blocked => {
            let _ = writeln!(o, "Plan: blocked.");
        }
    }
    o
}

fn label(s: &Step) -> String {
    format!(
        "{} {} {}",
        s.action.symbol(),
        s.kind.resource_type(),
        s.resource
    )
    .replace('"', "'")
}

/// How a graph syntax writes a stage's group, a node and an edge.
struct GraphSyntax {
    open_stage: fn(&mut String, usize, &str),
    close_stage: &'static str,
    node: fn(&mut String, usize, &str),
    edge: fn(&mut String, usize, usize),
}

/// Writes the steps, grouped by stage in plan order, then the edges.
fn write_graph(o: &mut String, plan: &Plan, g: &GraphSyntax) {
    let ids: std::collections::HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_ref(), i))
        .collect();
    let mut stage = None;
    let mut n_stage = 0;
    for (i, s) in plan.steps.iter().enumerate() {
        if stage != Some(s.stage.as_ref()) {
            if stage.is_some() {
                o.push_str(g.close_stage);
            }
            stage = Some(s.stage.as_ref());
            (g.open_stage)(o, n_stage, &s.stage.replace('"', "'"));
            n_stage += 1;
        }
        (g.node)(o, i, &label(s));
    }
    if stage.is_some() {
        o.push_str(g.close_stage);
    }
    for (i, s) in plan.steps.iter().enumerate() {
        for d in &s.depends_on {
            if let Some(j) = ids.get(d.as_ref()) {
                (g.edge)(o, *j, i);
            }
        }
    }
}

/// The step graph as a Mermaid flowchart, one subgraph per stage.
pub fn to_mermaid(plan: &Plan) -> String {
    let mut o = String::from("flowchart TD\n");
    write_graph(
        &mut o,
        plan,
        &GraphSyntax {
            open_stage: |o, n, name| {
                let _ = writeln!(o, "  subgraph stage{n}[\"{name}\"]");
            },
            close_stage: "  end\n",
            node: |o, i, label| {
                let _ = writeln!(o, "    s{i}[\"{label}\"]");
            },
            edge: |o, j, i| {
                let _ = writeln!(o, "  s{j} --> s{i}");
            },
        },
    );
    o
}

/// The step graph in Graphviz DOT, one cluster per stage.
pub fn to_dot(plan: &Plan) -> String {
    let mut o = String::from(
        "digraph plan {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n",
    );
    write_graph(
        &mut o,
        plan,
        &GraphSyntax {
            open_stage: |o, n, name| {
                let _ = writeln!(o, "  subgraph cluster_{n} {{\n    label=\"{name}\";");
            },
            close_stage: "  }\n",
            node: |o, i, label| {
                let _ = writeln!(o, "    s{i} [label=\"{label}\"];");
            },
            edge: |o, j, i| {
                let _ = writeln!(o, "  s{j} -> s{i};");
            },
        },
    );
    o.push_str("}\n");
    o
}
