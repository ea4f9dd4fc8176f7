//! The evaluation budget of custom rules (issue 12, item 12).
//!
//! A CEL condition can ask for far more work than its length suggests: eight
//! nested `[0,1,2,3,4,5,6,7,8,9].map(...)` calls are 300 characters and 10⁸
//! iterations. Two guards, as in cel-go and Kubernetes:
//!
//! - **At load time**, [`estimate`] bounds the cost of the expression from its
//!   syntax tree: every comprehension multiplies the cost of its body by the
//!   number of elements its range can have, list and string operations cost
//!   in proportion to the sizes of their operands. Collections of the inputs
//!   are assumed to hold at most [`INPUT_ITEMS`] items (Azure's own limits:
//!   64 data disks, 50 tags per resource) and their strings [`INPUT_BYTES`]
//!   bytes. A condition whose bound exceeds [`MAX_COST`] is refused with
//!   `E_RULE` naming the rule.
//! - **At run time**, [`instrument`] rewrites the expression so that every
//!   comprehension iteration, and the operands of every `+`, comparison for
//!   equality, `in` and string search, charge a shared [`Budget`] by their
//!   size; when it runs out, evaluation stops at once with `E_RULE` naming
//!   the rule. This covers inputs larger than the load-time assumption.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::common::value::{CowVal, Val};
use cel::{ExecutionError, FunctionContext};

/// Most evaluation steps a condition may cost, at load time (estimated) and
/// at run time (counted). Kubernetes uses the same figure per CEL call.
pub const MAX_COST: u64 = 1_000_000;
/// Items assumed in each collection of the inputs, for the estimate.
pub const INPUT_ITEMS: u64 = 64;
/// Bytes assumed in each string of the inputs, for the estimate (Azure
/// names are at most 80 characters).
pub const INPUT_BYTES: u64 = 128;
/// Weight assumed for a whole input document or one of its parts.
const INPUT_WEIGHT: u64 = 1 << 16;

/// Names of the functions [`instrument`] inserts. Rules may not call them.
pub const TICK: &str = "__vmr_tick";
pub const CHARGE: &str = "__vmr_charge";

// --- the estimate ---------------------------------------------------------

/// An upper bound on a value: how many items (or bytes) it has, its total
/// weight (items of items included), and a bound on each item when known.
#[derive(Clone, Debug)]
enum Bound {
    /// A whole input document (`vm`, `request`, ...).
    Input,
    /// A part of one: collections of [`INPUT_ITEMS`], strings of
    /// [`INPUT_BYTES`].
    InputPart,
    Val {
        len: u64,
        weight: u64,
        item: Option<Box<Bound>>,
    },
}

impl Bound {
    fn scalar() -> Bound {
        Bound::Val {
            len: 1,
            weight: 1,
            item: None,
        }
    }
    fn len(&self) -> u64 {
        match self {
            Bound::Input | Bound::InputPart => INPUT_ITEMS.max(INPUT_BYTES),
            Bound::Val { len, .. } => *len,
        }
    }
    /// Items of a collection, for iteration.
    fn items(&self) -> u64 {
        match self {
            Bound::Input | Bound::InputPart => INPUT_ITEMS,
            Bound::Val { len, .. } => *len,
        }
    }
    fn weight(&self) -> u64 {
        match self {
            Bound::Input => INPUT_WEIGHT,
            Bound::InputPart => INPUT_BYTES,
            Bound::Val { weight, .. } => *weight,
        }
    }
    fn item(&self) -> Bound {
        match self {
            Bound::Input | Bound::InputPart => Bound::InputPart,
            Bound::Val { item: Some(i), .. } => (**i).clone(),
            Bound::Val { weight, .. } => Bound::Val {
                len: *weight,
                weight: *weight,
                item: None,
            },
        }
    }
    fn join(a: &Bound, b: &Bound) -> Bound {
        match (a, b) {
            (Bound::Input, _) | (_, Bound::Input) => Bound::Input,
            (Bound::InputPart, _) | (_, Bound::InputPart) => Bound::InputPart,
            (
                Bound::Val {
                    len: l1,
                    weight: w1,
                    item: i1,
                },
                Bound::Val {
                    len: l2,
                    weight: w2,
                    item: i2,
                },
            ) => Bound::Val {
                len: (*l1).max(*l2),
                weight: (*w1).max(*w2),
                item: match (i1, i2) {
                    (Some(x), Some(y)) => Some(Box::new(Bound::join(x, y))),
                    _ => None,
                },
            },
        }
    }
}

/// Cost of an operation over `n` items or bytes: one step per ten, as
/// Kubernetes charges string traversal.
fn linear(n: u64) -> u64 {
    1 + n / 10
}

/// The estimated cost of `e`, saturating at `u64::MAX`.
pub fn estimate(e: &IdedExpr) -> u64 {
    let mut scope = Vec::new();
    walk(e, &mut scope).0
}

fn lookup(scope: &[(String, Bound)], name: &str) -> Bound {
    scope
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map_or(Bound::Input, |(_, b)| b.clone())
}

fn walk(e: &IdedExpr, scope: &mut Vec<(String, Bound)>) -> (u64, Bound) {
    match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => {
            let n = s.inner().len() as u64;
            (
                1,
                Bound::Val {
                    len: n,
                    weight: linear(n),
                    item: None,
                },
            )
        }
        Expr::Literal(LiteralValue::Bytes(b)) => {
            let n = b.inner().len() as u64;
            (
                1,
                Bound::Val {
                    len: n,
                    weight: linear(n),
                    item: None,
                },
            )
        }
        Expr::Literal(_) | Expr::Unspecified => (1, Bound::scalar()),
        Expr::Ident(name) => (1, lookup(scope, name)),
        Expr::Select(sel) => {
            let (c, b) = walk(&sel.operand, scope);
            if sel.test {
                return (c.saturating_add(1), Bound::scalar());
            }
            (c.saturating_add(1), b.item())
        }
        Expr::List(l) => {
            let mut cost = 1u64;
            let mut weight = l.elements.len() as u64;
            let mut item: Option<Bound> = None;
            for x in &l.elements {
                let (c, b) = walk(x, scope);
                cost = cost.saturating_add(c);
                weight = weight.saturating_add(b.weight());
                item = Some(match item {
                    Some(i) => Bound::join(&i, &b),
                    None => b,
                });
            }
            (
                cost,
                Bound::Val {
                    len: l.elements.len() as u64,
                    weight,
                    item: item.map(Box::new),
                },
            )
        }
        Expr::Map(m) => {
            let mut cost = 1u64;
            let mut weight = m.entries.len() as u64;
            let mut item: Option<Bound> = None;
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    let (ck, bk) = walk(&me.key, scope);
                    let (cv, bv) = walk(&me.value, scope);
                    cost = cost.saturating_add(ck).saturating_add(cv);
                    weight = weight
                        .saturating_add(bk.weight())
                        .saturating_add(bv.weight());
                    item = Some(match item {
                        Some(i) => Bound::join(&i, &bv),
                        None => bv,
                    });
                }
            }
            (
                cost,
                Bound::Val {
                    len: m.entries.len() as u64,
                    weight,
                    item: item.map(Box::new),
                },
            )
        }
        Expr::Struct(_) => (1, Bound::Input),
        Expr::Call(call) => walk_call(call, scope),
        Expr::Comprehension(c) => {
            let (c_range, range) = walk(&c.iter_range, scope);
            let (c_init, init) = walk(&c.accu_init, scope);
            let n = range.items();
            let item = range.item();
            let depth = scope.len();
            scope.push((c.iter_var.clone(), item.clone()));
            if let Some(v2) = &c.iter_var2 {
                scope.push((v2.clone(), item));
            }
            let (per_iteration, fin) = match append_step(c) {
                Some((guard, items)) => {
                    let (c_guard, _) = match guard {
                        Some(g) => walk(g, scope),
                        None => (0, Bound::scalar()),
                    };
                    let (c_items, b_items) = walk(items, scope);
                    let fin = Bound::Val {
                        len: init.len().saturating_add(n),
                        weight: init
                            .weight()
                            .saturating_add(n.saturating_mul(b_items.weight())),
                        item: Some(Box::new(b_items.item())),
                    };
                    (c_guard.saturating_add(c_items), fin)
                }
                None => {
                    scope.push((c.accu_var.clone(), init.clone()));
                    let (c_cond, _) = walk(&c.loop_cond, scope);
                    let (c_step, b_step) = walk(&c.loop_step, scope);
                    scope.pop();
                    (c_cond.saturating_add(c_step), Bound::join(&init, &b_step))
                }
            };
            scope.push((c.accu_var.clone(), fin));
            let (c_result, b_result) = walk(&c.result, scope);
            scope.truncate(depth);
            let cost = c_range
                .saturating_add(c_init)
                .saturating_add(n.saturating_mul(per_iteration.saturating_add(1)))
                .saturating_add(c_result);
            (cost, b_result)
        }
    }
}

fn walk_call(call: &CallExpr, scope: &mut Vec<(String, Bound)>) -> (u64, Bound) {
    let mut cost = 1u64;
    let mut bounds = Vec::with_capacity(call.args.len() + 1);
    let mut costs = Vec::with_capacity(call.args.len() + 1);
    for a in call.target.iter().map(|t| &**t).chain(&call.args) {
        let (c, b) = walk(a, scope);
        cost = cost.saturating_add(c);
        costs.push(c);
        bounds.push(b);
    }
    let sum_len = bounds.iter().fold(0u64, |s, b| s.saturating_add(b.len()));
    let sum_weight = bounds
        .iter()
        .fold(0u64, |s, b| s.saturating_add(b.weight()));
    let min_weight = bounds.iter().map(Bound::weight).min().unwrap_or(1);
    match call.func_name.as_str() {
        "_?_:_" => {
            // Only one branch runs, but both were added above: take the
            // dearer one instead.
            let cheaper = costs.iter().skip(1).copied().min().unwrap_or(0);
            let b = match (bounds.get(1), bounds.get(2)) {
                (Some(x), Some(y)) => Bound::join(x, y),
                _ => Bound::Input,
            };
            (cost.saturating_sub(cheaper), b)
        }
        "_&&_" | "_||_" | "!_" | "_<_" | "_<=_" | "_>_" | "_>=_" | "@not_strictly_false" => {
            (cost, Bound::scalar())
        }
        "_==_" | "_!=_" => (cost.saturating_add(linear(min_weight)), Bound::scalar()),
        "@in" | "contains" | "startsWith" | "endsWith" | "matches" => {
            (cost.saturating_add(linear(sum_weight)), Bound::scalar())
        }
        "size" | "int" | "uint" | "double" | "bool" | "type" | "has" => (cost, Bound::scalar()),
        "_+_" => {
            let item = match (bounds.first(), bounds.get(1)) {
                (Some(a), Some(b)) => Some(Box::new(Bound::join(&a.item(), &b.item()))),
                _ => None,
            };
            (
                cost.saturating_add(linear(sum_len)),
                Bound::Val {
                    len: sum_len,
                    weight: sum_weight,
                    item,
                },
            )
        }
        "_[_]" | "_[?_]" => (cost, bounds.first().map_or(Bound::InputPart, Bound::item)),
        _ => (
            cost.saturating_add(linear(sum_weight)),
            Bound::Val {
                len: sum_len.max(1),
                weight: sum_weight.max(1),
                item: None,
            },
        ),
    }
}

/// The parts of a `map`/`filter` comprehension whose step only appends
/// (`@result + [x]`, or `guard ? @result + [x] : @result`): the optional
/// guard and the appended list. The interpreter appends those in place.
fn append_step(c: &cel::common::ast::ComprehensionExpr) -> Option<(Option<&IdedExpr>, &IdedExpr)> {
    let accu = c.accu_var.as_str();
    let is_accu = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if n == accu);
    let items_of = |e: &IdedExpr| -> Option<()> {
        match &e.expr {
            Expr::Call(call) if call.func_name == "_+_" && call.target.is_none() => {
                match call.args.as_slice() {
                    [lhs, rhs] if is_accu(lhs) && matches!(rhs.expr, Expr::List(_)) => Some(()),
                    _ => None,
                }
            }
            _ => None,
        }
    };
    if !is_accu(&c.result) || !matches!(c.loop_cond.expr, Expr::Literal(_)) {
        return None;
    }
    match &c.loop_step.expr {
        Expr::Call(call) if call.func_name == "_?_:_" && call.target.is_none() => {
            match call.args.as_slice() {
                [guard, step, otherwise] if is_accu(otherwise) => {
                    items_of(step)?;
                    let Expr::Call(add) = &step.expr else {
                        return None;
                    };
                    Some((Some(guard), &add.args[1]))
                }
                _ => None,
            }
        }
        Expr::Call(add) => {
            items_of(&c.loop_step)?;
            Some((None, &add.args[1]))
        }
        _ => None,
    }
}

// --- the runtime budget ---------------------------------------------------

/// What one evaluation may still spend. Shared by the functions that
/// [`instrument`] inserts; reset before each rule.
#[derive(Debug)]
pub struct Budget {
    remaining: AtomicU64,
    exceeded: AtomicBool,
}

impl Budget {
    pub fn new() -> Arc<Budget> {
        Arc::new(Budget {
            remaining: AtomicU64::new(MAX_COST),
            exceeded: AtomicBool::new(false),
        })
    }

    pub fn reset(&self) {
        self.remaining.store(MAX_COST, Ordering::Relaxed);
        self.exceeded.store(false, Ordering::Relaxed);
    }

    /// True when an evaluation since the last reset ran out (even when the
    /// error was absorbed, as `error || true` is `true` in CEL).
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    fn charge(&self, n: u64) -> bool {
        let ok = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(n))
            .is_ok();
        if !ok {
            self.remaining.store(0, Ordering::Relaxed);
            self.exceeded.store(true, Ordering::Relaxed);
        }
        ok
    }
}

/// The weight of a value (items of items counted), stopping at `cap`: values
/// can share parts, so a value can weigh far more than it takes in memory.
fn weight(v: &dyn Val, cap: u64) -> u64 {
    let mut total = 1u64;
    let mut stack: Vec<&dyn Val> = vec![v];
    while let Some(v) = stack.pop() {
        if total >= cap {
            return cap;
        }
        if let Some(s) = v.as_sizer() {
            total = total.saturating_add((*s.size().inner()).max(0) as u64 / 10);
        }
        if let Some(it) = v.as_iterable() {
            let mut items = it.iter();
            while let Some(x) = items.next() {
                total = total.saturating_add(1);
                if total >= cap {
                    return cap;
                }
                stack.push(x);
            }
        }
    }
    total.min(cap)
}

/// The shape of a native CEL function (`cel`'s own alias is private).
type NativeFunction = Box<
    dyn for<'c, 'a> Fn(&mut FunctionContext<'c, 'a>) -> Result<CowVal<'c, 'a>, ExecutionError>
        + Send
        + Sync,
>;

/// Adds the two budget functions to `context`.
pub fn register(context: &mut cel::Context<'static, 'static>, budget: &Arc<Budget>) {
    for name in [TICK, CHARGE] {
        let budget = budget.clone();
        let tick = name == TICK;
        let f: NativeFunction = Box::new(
            move |ftx: &mut FunctionContext| -> Result<CowVal, ExecutionError> {
                if ftx.args.len() != 1 {
                    return Err(ExecutionError::invalid_argument_count(1, ftx.args.len()));
                }
                let v = ftx.args.swap_remove(0);
                let cap = budget.remaining.load(Ordering::Relaxed).saturating_add(1);
                let cost = u64::from(tick) + weight(v.as_ref(), cap);
                if budget.charge(cost) {
                    Ok(v)
                } else {
                    Err(ExecutionError::function_error(
                        "budget",
                        format!("evaluation exceeded the budget of {MAX_COST} steps"),
                    ))
                }
            },
        );
        // The names are ours; a clash would be a bug in this module.
        let _ = context.add_function(name, f);
    }
}

/// Operators and functions whose work grows with the size of their
/// operands: those operands are charged by weight.
const CHARGED: [&str; 8] = [
    "_+_",
    "_==_",
    "_!=_",
    "@in",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
];

fn call(name: &str, arg: IdedExpr) -> IdedExpr {
    IdedExpr {
        id: 0,
        expr: Expr::Call(CallExpr {
            func_name: name.to_string(),
            target: None,
            args: vec![arg],
        }),
    }
}

/// Rewrites `e` so that evaluating it charges the budget: every iteration of
/// a comprehension (through its condition, or through the appended item and
/// guard of a `map`/`filter`, so that the interpreter still appends in
/// place), and both operands of every `+`.
pub fn instrument(e: &IdedExpr) -> IdedExpr {
    let mut out = e.clone();
    rewrite(&mut out);
    out
}

fn rewrite(e: &mut IdedExpr) {
    match &mut e.expr {
        Expr::Call(c) => {
            if let Some(t) = &mut c.target {
                rewrite(t);
            }
            for a in &mut c.args {
                rewrite(a);
            }
            if CHARGED.contains(&c.func_name.as_str()) {
                for a in c.target.iter_mut().map(|t| &mut **t).chain(&mut c.args) {
                    let inner = std::mem::take(a);
                    *a = call(CHARGE, inner);
                }
            }
        }
        Expr::Select(s) => rewrite(&mut s.operand),
        Expr::List(l) => l.elements.iter_mut().for_each(rewrite),
        Expr::Map(m) => {
            for entry in &mut m.entries {
                if let EntryExpr::MapEntry(me) = &mut entry.expr {
                    rewrite(&mut me.key);
                    rewrite(&mut me.value);
                }
            }
        }
        Expr::Struct(_) | Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        Expr::Comprehension(c) => {
            rewrite(&mut c.iter_range);
            rewrite(&mut c.accu_init);
            rewrite(&mut c.result);
            if append_step(c).is_some() {
                // Keep the shape the interpreter appends in place: tick the
                // guard and the appended item, not the step.
                let step = &mut c.loop_step;
                let (guard, add) = match &mut step.expr {
                    Expr::Call(t) if t.func_name == "_?_:_" => {
                        let (g, rest) = t.args.split_at_mut(1);
                        (Some(&mut g[0]), &mut rest[0])
                    }
                    _ => (None, step),
                };
                if let Some(g) = guard {
                    rewrite(g);
                    let inner = std::mem::take(g);
                    *g = call(TICK, inner);
                }
                if let Expr::Call(add) = &mut add.expr
                    && let Some(list) = add.args.get_mut(1)
                    && let Expr::List(l) = &mut list.expr
                {
                    for x in &mut l.elements {
                        rewrite(x);
                        let inner = std::mem::take(x);
                        *x = call(TICK, inner);
                    }
                }
            } else {
                rewrite(&mut c.loop_step);
                rewrite(&mut c.loop_cond);
                let inner = std::mem::take(&mut c.loop_cond);
                c.loop_cond = call(TICK, inner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cel::{Context, Program, Value};

    fn context(budget: &Arc<Budget>) -> Context<'static, 'static> {
        let mut c = Context::default();
        c.add_variable_from_value(
            "xs",
            Value::List(Arc::new((0..20).map(Value::Int).collect())),
        );
        c.add_variable_from_value("s", Value::String(Arc::new("hello world".into())));
        register(&mut c, budget);
        c
    }

    /// The rewritten expression means what the written one means.
    #[test]
    fn instrumenting_keeps_the_meaning() {
        let exprs = [
            "xs.map(x, x * 2)[3] == 6",
            "xs.filter(x, x % 2 == 0).size() == 10",
            "xs.map(x, x > 5, x).size() == 14",
            "xs.all(x, x < 20) && !xs.exists(x, x > 30)",
            "xs.exists_one(x, x == 7)",
            "[1, 2] + [3] == [1, 2, 3] && s + '!' == 'hello world!'",
            "s.contains('lo w') && s.startsWith('he') && s.endsWith('ld') && s.matches('^h.*d$')",
            "3 in xs && !(40 in xs)",
            "xs.all(x, xs.exists(y, y == x))",
            "xs.map(x, 1 / (x - 3)).size() > 0 || true",
            "xs.exists(x, 1 / (x - x) == 1) || true",
            "{'a': xs.map(x, x)}['a'].size() == 20",
        ];
        let budget = Budget::new();
        let ctx = context(&budget);
        for e in exprs {
            let p = Program::compile(e).unwrap();
            budget.reset();
            let plain = p.execute(&ctx);
            let charged = ctx.resolve(&instrument(p.expression()));
            assert_eq!(format!("{plain:?}"), format!("{charged:?}"), "{e}");
            assert!(!budget.exceeded(), "{e}");
            assert!(estimate(p.expression()) < MAX_COST, "{e}");
        }
    }

    /// Work the estimate allows but the inputs make large is stopped by the
    /// runtime budget, even where CEL would absorb the error.
    #[test]
    fn the_runtime_budget_stops_evaluation_and_cannot_be_absorbed() {
        let budget = Budget::new();
        let mut ctx = context(&budget);
        ctx.add_variable_from_value(
            "big",
            Value::List(Arc::new((0..2000).map(Value::Int).collect())),
        );
        for e in [
            "big.all(x, big.all(y, true))",
            "big.exists(x, big.exists(y, false)) || true",
            "big.map(x, big.map(y, y)).size() > 0",
        ] {
            let p = Program::compile(e).unwrap();
            budget.reset();
            let _ = ctx.resolve(&instrument(p.expression()));
            assert!(budget.exceeded(), "{e}");
        }
    }

    #[test]
    fn nesting_and_doubling_multiply_the_estimate() {
        let cost = |e: &str| estimate(Program::compile(e).unwrap().expression());
        let one = cost("[0,1,2,3,4,5,6,7,8,9].map(x, x)");
        let two = cost("[0,1,2,3,4,5,6,7,8,9].map(x, [0,1,2,3,4,5,6,7,8,9].map(y, y))");
        assert!(two > 5 * one, "{one} {two}");
        let mut doubling = "[1]".to_string();
        for i in 0..25 {
            doubling = format!("[{doubling}].map(a{i}, a{i} + a{i})[0]");
        }
        assert!(cost(&doubling) > MAX_COST);
        assert!(cost("vm.disks.exists(d, d.size_bytes > 1000)") < 10_000);
    }
}
