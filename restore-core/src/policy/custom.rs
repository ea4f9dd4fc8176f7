//! Custom rules: conditions written in CEL, loaded from TOML or JSON, checked
//! at load time.
//!
//! ```toml
//! name = "acme"
//!
//! [[rules]]
//! id = "ACME-01"
//! when = "vm.domain_controller != null && request.placement == 'in_place'"
//! outcome = "block"
//! message = "never restore a domain controller in place"
//! source = "ACME DR policy, section 3"
//! path = "$.request.placement"
//! ```
//!
//! Variables: `restore_point`, `vm`, `request`, `destination` and `facts`
//! (see [`super::RuleInput`] and [`super::Facts`]); field names and enum
//! values are those of the JSON model. Outcomes: `block`, `warn`, `info`,
//! `post`, and `transform` with `transform` naming one of
//! [`named_transforms`]. A syntax error, a field that does not exist, an
//! unknown outcome or transformation, or a duplicate or reserved ID is an
//! error when the rules are loaded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::{Program, Value};
use serde::Deserialize;
use serde_json::Value as Json;

use super::cel_budget::{self, Budget};
use super::{Ctx, Decisions, Eval, Profile, Rule, RuleInput};
use crate::error::{Error, Result};
use crate::plan::types::{OutcomeKind, TransformKind};

/// Transformations a custom rule may name: those that need no argument.
pub fn named_transforms() -> impl Iterator<Item = TransformKind> {
    TransformKind::ALL
        .into_iter()
        .filter(|k| !k.needs_argument())
}

/// Largest rules document accepted (1 MiB) and most rules in one.
const MAX_RULES_BYTES: usize = 1 << 20;
const MAX_RULES: usize = 1000;
const MAX_EXPRESSION: usize = 4096;

/// A compiled CEL condition with what it does when true.
pub(crate) struct CustomCondition {
    pub expression: String,
    /// The parsed expression, rewritten to charge the evaluation budget.
    program: IdedExpr,
    outcome: OutcomeKind,
    transform: Option<TransformKind>,
    message: String,
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    when: String,
    outcome: String,
    message: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    transform: Option<String>,
    #[serde(default)]
    summary: Option<String>,
}

/// Loads custom rules from a TOML or JSON document (JSON when it starts with
/// `{`). `default_name` names the rule set when the document does not.
pub fn load(text: &str, default_name: &str) -> Result<Profile> {
    if text.len() > MAX_RULES_BYTES {
        return Err(rule_err(
            "(document)",
            format!(
                "rules document of {} bytes exceeds the limit of {MAX_RULES_BYTES}",
                text.len()
            ),
        ));
    }
    let file: RuleFile = if text.trim_start().starts_with('{') {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| Error::Parse {
            path: format!("$.{}", e.path()),
            message: e.inner().to_string(),
        })?
    } else {
        toml::from_str(text).map_err(|e| Error::Parse {
            path: "$".into(),
            message: e.to_string(),
        })?
    };
    if file.rules.len() > MAX_RULES {
        return Err(rule_err(
            "(document)",
            format!(
                "{} rules is more than the limit of {MAX_RULES}",
                file.rules.len()
            ),
        ));
    }
    let name = file.name.unwrap_or_else(|| default_name.to_string());
    let mut seen = HashSet::new();
    let mut rules = Vec::with_capacity(file.rules.len());
    for (i, spec) in file.rules.into_iter().enumerate() {
        let label = if spec.id.is_empty() {
            format!("#{}", i + 1)
        } else {
            spec.id.clone()
        };
        let rule = compile(spec, &name).map_err(|m| rule_err(&label, m))?;
        if !seen.insert(rule.id.clone()) {
            return Err(rule_err(&label, "the ID is used twice".into()));
        }
        rules.push(rule);
    }
    let mut profile = Profile::custom(&name, rules);
    profile.source = Some(text.to_string());
    Ok(profile)
}

/// Loads custom rules from a file (TOML, or JSON for `.json`).
pub fn load_file(path: &std::path::Path) -> Result<Profile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Rule {
        rule: "(file)".into(),
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("custom");
    load(&text, stem)
}

fn rule_err(rule: &str, message: String) -> Error {
    Error::Rule {
        rule: rule.chars().take(64).collect(),
        message,
    }
}

fn compile(spec: RuleSpec, set: &str) -> std::result::Result<Rule, String> {
    let id = spec.id.trim().to_string();
    if id.is_empty()
        || id.len() > 32
        || !id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err("the ID must be 1-32 letters, digits, '-', '_' or '.'".into());
    }
    if let Some(p) =
        super::reserved_rule_prefixes().find(|p| id.to_ascii_uppercase().starts_with(p))
    {
        return Err(format!(
            "IDs starting with '{p}' are reserved for built-in rules"
        ));
    }
    if spec.message.trim().is_empty() {
        return Err("'message' is empty".into());
    }
    if spec.when.len() > MAX_EXPRESSION {
        return Err(format!("'when' is longer than {MAX_EXPRESSION} characters"));
    }
    let outcome = match spec.outcome.as_str() {
        "block" => OutcomeKind::Block,
        "warn" => OutcomeKind::Warn,
        "info" => OutcomeKind::Info,
        "post" => OutcomeKind::Post,
        "transform" => OutcomeKind::Transform,
        other => {
            return Err(format!(
                "unknown outcome '{other}' (block, warn, info, post or transform)"
            ));
        }
    };
    let transform = match (&outcome, spec.transform.as_deref()) {
        (OutcomeKind::Transform, None) => {
            return Err(
                "outcome 'transform' needs 'transform' naming one of the transformations".into(),
            );
        }
        (OutcomeKind::Transform, Some(t)) => Some(parse_transform(t)?),
        (_, Some(_)) => return Err("'transform' is only allowed with outcome 'transform'".into()),
        (_, None) => None,
    };
    let path = spec.path.unwrap_or_else(|| "$".into());
    if !path.starts_with('$') {
        return Err(format!(
            "path '{path}' must be a JSON path starting with '$'"
        ));
    }
    let program = std::panic::catch_unwind(|| Program::compile(&spec.when))
        .map_err(|_| "the CEL parser failed on this expression".to_string())?
        .map_err(|e| format!("syntax error in 'when': {e}"))?;
    check_fields(program.expression(), &mut scope(), 0)?;
    let cost = cel_budget::estimate(program.expression());
    if cost > cel_budget::MAX_COST {
        return Err(format!(
            "'when' may cost up to {} evaluation steps, more than the limit of {} \
             (estimated with {} items in each collection of the inputs; \
             nested map/filter/all/exists calls multiply)",
            if cost == u64::MAX {
                "an unbounded number of".to_string()
            } else {
                cost.to_string()
            },
            cel_budget::MAX_COST,
            cel_budget::INPUT_ITEMS,
        ));
    }
    let program = cel_budget::instrument(program.expression());
    Ok(Rule {
        id,
        kinds: vec![outcome],
        summary: spec.summary.unwrap_or_else(|| spec.message.clone()),
        source: spec
            .source
            .unwrap_or_else(|| format!("custom rules '{set}'")),
        eval: Eval::Custom(Arc::new(CustomCondition {
            expression: spec.when,
            program,
            outcome,
            transform,
            message: spec.message,
            path,
        })),
    })
}

fn parse_transform(t: &str) -> std::result::Result<TransformKind, String> {
    let names: Vec<String> = named_transforms().map(transform_name).collect();
    named_transforms()
        .zip(&names)
        .find(|(_, n)| n.as_str() == t)
        .map(|(k, _)| k)
        .ok_or_else(|| {
            format!(
                "unknown transformation '{t}' (one of: {})",
                names.join(", ")
            )
        })
}

fn transform_name(k: TransformKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

// --- field checking -------------------------------------------------------

/// The shape of a value as far as field access is concerned, derived from
/// the JSON Schema of [`RuleInput`].
#[derive(Clone, Debug)]
enum Shape {
    Any,
    Leaf,
    Object {
        fields: BTreeMap<String, Shape>,
        values: Option<Box<Shape>>,
    },
    Array(Box<Shape>),
}

fn input_shape() -> &'static Shape {
    static SHAPE: OnceLock<Shape> = OnceLock::new();
    SHAPE.get_or_init(|| {
        let schema = schemars::schema_for!(RuleInput<'static>);
        let root = schema.as_value();
        let defs = root.get("$defs").cloned().unwrap_or(Json::Null);
        shape_of_schema(root, &defs, 0)
    })
}

fn shape_of_schema(s: &Json, defs: &Json, depth: u32) -> Shape {
    if depth > 32 {
        return Shape::Any;
    }
    if let Some(r) = s.get("$ref").and_then(Json::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        return defs
            .get(name)
            .map_or(Shape::Any, |d| shape_of_schema(d, defs, depth + 1));
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = s.get(key).and_then(Json::as_array) {
            let mut merged = Shape::Leaf;
            for b in branches {
                merged = merge(merged, shape_of_schema(b, defs, depth + 1));
            }
            // A schema can have both properties and oneOf (tagged enums).
            if s.get("properties").is_some() {
                let own = object_shape(s, defs, depth);
                merged = merge(merged, own);
            }
            return merged;
        }
    }
    let types: Vec<&str> = match s.get("type") {
        Some(Json::String(t)) => vec![t.as_str()],
        Some(Json::Array(a)) => a.iter().filter_map(Json::as_str).collect(),
        _ => vec![],
    };
    if types.contains(&"object") || s.get("properties").is_some() {
        object_shape(s, defs, depth)
    } else if types.contains(&"array") {
        Shape::Array(Box::new(
            s.get("items")
                .map_or(Shape::Any, |i| shape_of_schema(i, defs, depth + 1)),
        ))
    } else if types.is_empty() && s.as_object().is_some_and(|o| o.is_empty()) {
        Shape::Any
    } else {
        Shape::Leaf
    }
}

fn object_shape(s: &Json, defs: &Json, depth: u32) -> Shape {
    let fields = s
        .get("properties")
        .and_then(Json::as_object)
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.clone(), shape_of_schema(v, defs, depth + 1)))
                .collect()
        })
        .unwrap_or_default();
    let values = match s.get("additionalProperties") {
        Some(Json::Bool(false)) | None => None,
        Some(Json::Bool(true)) => Some(Box::new(Shape::Any)),
        Some(v) => Some(Box::new(shape_of_schema(v, defs, depth + 1))),
    };
    Shape::Object { fields, values }
}

fn merge(a: Shape, b: Shape) -> Shape {
    match (a, b) {
        (Shape::Any, _) | (_, Shape::Any) => Shape::Any,
        (Shape::Leaf, x) | (x, Shape::Leaf) => x,
        (
            Shape::Object {
                fields: mut f1,
                values: v1,
            },
            Shape::Object {
                fields: f2,
                values: v2,
            },
        ) => {
            for (k, v) in f2 {
                let merged = match f1.remove(&k) {
                    Some(old) => merge(old, v),
                    None => v,
                };
                f1.insert(k, merged);
            }
            Shape::Object {
                fields: f1,
                values: v1.or(v2),
            }
        }
        (Shape::Array(a), Shape::Array(b)) => Shape::Array(Box::new(merge(*a, *b))),
        _ => Shape::Any,
    }
}

fn scope() -> HashMap<String, (Shape, String)> {
    let Shape::Object { fields, .. } = input_shape() else {
        return HashMap::new();
    };
    fields
        .iter()
        .map(|(k, v)| (k.clone(), (v.clone(), k.clone())))
        .collect()
}

/// Walks the expression and checks every field selection against the shape
/// of the input; returns the shape of the expression's value and its name.
fn check_fields(
    e: &IdedExpr,
    scope: &mut HashMap<String, (Shape, String)>,
    depth: u32,
) -> std::result::Result<(Shape, String), String> {
    if depth > 200 {
        return Err("the expression is nested too deeply".into());
    }
    match &e.expr {
        Expr::Ident(name) => match scope.get(name) {
            Some(s) => Ok(s.clone()),
            None => {
                let known: Vec<&str> =
                    ["restore_point", "vm", "request", "destination", "facts"].to_vec();
                Err(format!(
                    "unknown variable '{name}' (variables: {})",
                    known.join(", ")
                ))
            }
        },
        Expr::Select(sel) => {
            let (shape, name) = check_fields(&sel.operand, scope, depth + 1)?;
            let path = format!("{name}.{}", sel.field);
            match shape {
                Shape::Any => Ok((Shape::Any, path)),
                Shape::Object { fields, values } => match fields.get(&sel.field) {
                    Some(s) => Ok((s.clone(), path)),
                    None => match values {
                        Some(v) => Ok((*v, path)),
                        None => {
                            let hint = crate::model::suggest(
                                &sel.field,
                                fields.keys().map(String::as_str),
                            )
                            .map(|s| format!(" (did you mean '{s}'?)"))
                            .unwrap_or_default();
                            Err(format!("unknown field '{}' in '{name}'{hint}", sel.field))
                        }
                    },
                },
                Shape::Leaf | Shape::Array(_) => {
                    Err(format!("'{name}' has no field '{}'", sel.field))
                }
            }
        }
        Expr::Call(call) => {
            if call.func_name.starts_with("__vmr") {
                return Err(format!("'{}' is reserved", call.func_name));
            }
            let mut arg_shapes = Vec::new();
            if let Some(t) = &call.target {
                arg_shapes.push(check_fields(t, scope, depth + 1)?);
            }
            for a in &call.args {
                arg_shapes.push(check_fields(a, scope, depth + 1)?);
            }
            if call.func_name == "_[_]" {
                if let Some((Shape::Array(item), name)) = arg_shapes.first() {
                    return Ok(((**item).clone(), format!("{name}[]")));
                }
                if let Some((
                    Shape::Object {
                        values: Some(v), ..
                    },
                    name,
                )) = arg_shapes.first()
                {
                    return Ok(((**v).clone(), format!("{name}[]")));
                }
            }
            Ok((Shape::Any, call.func_name.clone()))
        }
        Expr::Comprehension(c) => {
            let (range, name) = check_fields(&c.iter_range, scope, depth + 1)?;
            let item = match range {
                Shape::Array(item) => (*item, format!("{name}[]")),
                Shape::Object { .. } => (Shape::Leaf, format!("{name} key")),
                _ => (Shape::Any, c.iter_var.clone()),
            };
            let saved: Vec<(String, Option<(Shape, String)>)> = [&c.iter_var, &c.accu_var]
                .into_iter()
                .chain(c.iter_var2.as_ref())
                .map(|v| (v.clone(), scope.get(v).cloned()))
                .collect();
            scope.insert(c.iter_var.clone(), item);
            if let Some(v2) = &c.iter_var2 {
                scope.insert(v2.clone(), (Shape::Any, v2.clone()));
            }
            scope.insert(c.accu_var.clone(), (Shape::Any, c.accu_var.clone()));
            let r = (|| {
                check_fields(&c.accu_init, scope, depth + 1)?;
                check_fields(&c.loop_cond, scope, depth + 1)?;
                check_fields(&c.loop_step, scope, depth + 1)?;
                check_fields(&c.result, scope, depth + 1)
            })();
            for (k, v) in saved {
                match v {
                    Some(v) => scope.insert(k, v),
                    None => scope.remove(&k),
                };
            }
            r.map(|_| (Shape::Any, "comprehension".into()))
        }
        Expr::List(l) => {
            for x in &l.elements {
                check_fields(x, scope, depth + 1)?;
            }
            Ok((Shape::Any, "list".into()))
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    check_fields(&me.key, scope, depth + 1)?;
                    check_fields(&me.value, scope, depth + 1)?;
                }
            }
            Ok((Shape::Any, "map".into()))
        }
        Expr::Literal(_) => Ok((Shape::Leaf, "literal".into())),
        Expr::Struct(_) | Expr::Unspecified => Ok((Shape::Any, "value".into())),
    }
}

// --- evaluation -----------------------------------------------------------

/// The CEL variables for one planning run, built once and shared by all
/// custom rules of the run.
pub(crate) struct CelInput {
    context: cel::Context<'static, 'static>,
    budget: Arc<Budget>,
}

impl CelInput {
    pub fn new(ctx: &Ctx) -> Result<Self> {
        let mut context = cel::Context::default();
        let conv = |e: cel::SerializationError| Error::RuleEvaluation {
            rule: "(input)".into(),
            message: e.to_string(),
        };
        context.add_variable_from_value("restore_point", cel::to_value(ctx.rp).map_err(conv)?);
        context.add_variable_from_value("vm", cel::to_value(ctx.vm).map_err(conv)?);
        context.add_variable_from_value("request", cel::to_value(ctx.req).map_err(conv)?);
        context.add_variable_from_value("destination", cel::to_value(ctx.dest).map_err(conv)?);
        context.add_variable_from_value("facts", cel::to_value(&ctx.facts).map_err(conv)?);
        let budget = Budget::new();
        cel_budget::register(&mut context, &budget);
        Ok(CelInput { context, budget })
    }
}

pub(crate) fn evaluate(
    rule: &Rule,
    cond: &CustomCondition,
    input: &CelInput,
    ctx: &Ctx,
    d: &mut Decisions,
) -> Result<()> {
    input.budget.reset();
    let result = input.context.resolve(&cond.program);
    if input.budget.exceeded() {
        return Err(Error::Rule {
            rule: rule.id.clone(),
            message: format!(
                "evaluation stopped: 'when' exceeded the budget of {} steps on these inputs",
                cel_budget::MAX_COST
            ),
        });
    }
    let fired = match result {
        Ok(Value::Bool(b)) => b,
        Ok(other) => {
            return Err(Error::RuleEvaluation {
                rule: rule.id.clone(),
                message: format!("'when' must give true or false, not {:?}", other.type_of()),
            });
        }
        Err(e) => {
            return Err(Error::RuleEvaluation {
                rule: rule.id.clone(),
                message: e.to_string(),
            });
        }
    };
    if !fired {
        return Ok(());
    }
    let (p, m) = (cond.path.as_str(), cond.message.as_str());
    match cond.outcome {
        OutcomeKind::Block => d.block(rule, p, m),
        OutcomeKind::Warn => d.warn(rule, p, m),
        OutcomeKind::Info | OutcomeKind::Step => d.info(rule, p, m),
        OutcomeKind::Post => d.post(rule, m),
        OutcomeKind::Transform => {
            if let Some(k) = cond.transform {
                d.apply_named(k, rule, ctx, m);
            }
        }
    }
    Ok(())
}
