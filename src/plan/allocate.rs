//! Choosing a type per tensor under a size budget from measured damage.
//!
//! The problem is a multiple-choice knapsack: every free tensor `i` takes
//! exactly one candidate `c` with a cost (its bytes in the file, padded to
//! the alignment) and a damage (the ΔKLD `quantmix sensitivity` measured for
//! that tensor alone in that type); minimise the summed damage with the
//! summed cost at most the budget. Damage is assumed additive over tensors
//! (the usual first-order assumption; `quantmix eval` measures the real
//! result).
//!
//! [`allocate`] solves it exactly by dynamic programming over costs rounded
//! *up* to a unit (so the real bytes never exceed the budget), with the unit
//! chosen so the table stays small (≤ [`MAX_UNITS`] columns); the bytes the
//! rounding leaves unused are then spent by a greedy pass of upgrades in
//! order of damage saved per extra byte. Candidates that are dominated (more
//! bytes and no less damage than another) are dropped first; a Lagrangian
//! relaxation over the remaining convex hull gives the lower bound reported
//! with the result.

use std::fmt;

/// One choice for a tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// What the caller wants back (e.g. the index into its candidate list).
    pub id: usize,
    /// Bytes this choice occupies in the output file.
    pub bytes: u64,
    /// Predicted damage (≥ 0; lower is better).
    pub damage: f64,
}

/// A tensor the allocator chooses for.
#[derive(Clone, Debug)]
pub struct Item {
    pub name: String,
    pub choices: Vec<Choice>,
}

/// The allocator's answer.
#[derive(Clone, Debug)]
pub struct Allocation {
    /// For every item, the `id` of its chosen [`Choice`].
    pub chosen: Vec<usize>,
    pub bytes: u64,
    pub damage: f64,
    /// The Lagrangian lower bound on the damage at this budget (the optimum
    /// of the continuous relaxation); `damage - bound` bounds the gap.
    pub lower_bound: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AllocError {
    #[error("tensor `{0}` has no candidate types")]
    NoChoices(String),
    #[error("tensor `{name}`: candidate damage {damage} is not a finite number ≥ 0")]
    BadDamage { name: String, damage: f64 },
    #[error(
        "the budget of {budget} bytes is too small: even the smallest type for every tensor needs {minimum} bytes"
    )]
    Infeasible { budget: u64, minimum: u64 },
}

/// The largest number of cost units the dynamic programme uses.
pub const MAX_UNITS: u64 = 200_000;

/// Drop dominated choices and sort the rest by bytes (damage then falls).
fn frontier(choices: &[Choice]) -> Vec<Choice> {
    let mut c: Vec<Choice> = choices.to_vec();
    c.sort_by(|a, b| a.bytes.cmp(&b.bytes).then(a.damage.total_cmp(&b.damage)));
    let mut out: Vec<Choice> = Vec::with_capacity(c.len());
    for x in c {
        if out.last().is_none_or(|l| x.damage < l.damage) {
            out.push(x);
        }
    }
    out
}

/// Choose one candidate per item, minimising the summed damage with the
/// summed bytes at most `budget`.
pub fn allocate(items: &[Item], budget: u64) -> Result<Allocation, AllocError> {
    let mut fronts = Vec::with_capacity(items.len());
    for it in items {
        if it.choices.is_empty() {
            return Err(AllocError::NoChoices(it.name.clone()));
        }
        if let Some(c) = it.choices.iter().find(|c| !c.damage.is_finite() || c.damage < 0.0) {
            return Err(AllocError::BadDamage { name: it.name.clone(), damage: c.damage });
        }
        fronts.push(frontier(&it.choices));
    }
    let minimum: u64 = fronts.iter().map(|f| f[0].bytes).sum();
    if minimum > budget {
        return Err(AllocError::Infeasible { budget, minimum });
    }
    // Everything at its best choice fits: nothing to trade.
    let maximum: u64 = fronts.iter().map(|f| f.last().map_or(0, |c| c.bytes)).sum();
    let picks: Vec<usize> = if maximum <= budget {
        fronts.iter().map(|f| f.len() - 1).collect()
    } else {
        knapsack(&fronts, budget, minimum)
    };
    let mut picks = picks;
    greedy_fill(&fronts, &mut picks, budget);
    let bytes = picks.iter().zip(&fronts).map(|(&p, f)| f[p].bytes).sum();
    let damage = picks.iter().zip(&fronts).map(|(&p, f)| f[p].damage).sum();
    Ok(Allocation {
        chosen: picks.iter().zip(&fronts).map(|(&p, f)| f[p].id).collect(),
        bytes,
        damage,
        lower_bound: lagrangian_bound(&fronts, budget),
    })
}

/// Exact DP over costs counted in `unit`-byte units (rounded up), only the
/// part above each item's cheapest choice (so the table spans the slack,
/// not the whole budget).
fn knapsack(fronts: &[Vec<Choice>], budget: u64, minimum: u64) -> Vec<usize> {
    let slack = budget - minimum;
    let unit = slack.div_ceil(MAX_UNITS).max(1);
    let cap = (slack / unit) as usize;
    let n = fronts.len();
    // best[u] = least damage with extra cost exactly ≤ u units, over the items so far.
    let mut best = vec![0f64; cap + 1];
    let base: f64 = fronts.iter().map(|f| f[0].damage).sum();
    best.iter_mut().for_each(|b| *b = base);
    // choice[i][u] = which choice item i took in the optimum for capacity u.
    let mut choice: Vec<Vec<u8>> = Vec::with_capacity(n);
    let mut next = vec![0f64; cap + 1];
    for f in fronts {
        let extra: Vec<(usize, f64)> =
            f.iter().map(|c| ((c.bytes - f[0].bytes).div_ceil(unit) as usize, c.damage - f[0].damage)).collect();
        let mut ch = vec![0u8; cap + 1];
        for u in 0..=cap {
            let mut v = best[u];
            let mut k = 0u8;
            for (j, &(cost, dd)) in extra.iter().enumerate().skip(1) {
                if cost <= u {
                    let w = best[u - cost] + dd;
                    if w < v {
                        v = w;
                        k = j as u8;
                    }
                }
            }
            next[u] = v;
            ch[u] = k;
        }
        std::mem::swap(&mut best, &mut next);
        choice.push(ch);
    }
    let mut picks = vec![0usize; n];
    let mut u = cap;
    for i in (0..n).rev() {
        let k = choice[i][u] as usize;
        picks[i] = k;
        u -= (fronts[i][k].bytes - fronts[i][0].bytes).div_ceil(unit) as usize;
    }
    picks
}

/// Spend what rounding left: repeatedly take the upgrade (to a later
/// frontier choice of one item) with the most damage saved per extra byte
/// that still fits.
fn greedy_fill(fronts: &[Vec<Choice>], picks: &mut [usize], budget: u64) {
    let mut used: u64 = picks.iter().zip(fronts).map(|(&p, f)| f[p].bytes).sum();
    loop {
        let mut best: Option<(f64, usize, usize)> = None;
        for (i, f) in fronts.iter().enumerate() {
            let cur = &f[picks[i]];
            for (j, c) in f.iter().enumerate().skip(picks[i] + 1) {
                let extra = c.bytes - cur.bytes;
                if used + extra > budget {
                    continue;
                }
                let gain = (cur.damage - c.damage) / extra.max(1) as f64;
                if best.is_none_or(|b| gain > b.0) {
                    best = Some((gain, i, j));
                }
            }
        }
        let Some((_, i, j)) = best else { break };
        used += fronts[i][j].bytes - fronts[i][picks[i]].bytes;
        picks[i] = j;
    }
}

/// The optimum of the relaxation in which each item may take a convex
/// combination of its choices: the Lagrangian dual, found by walking the
/// lower convex hulls' segments in order of slope.
fn lagrangian_bound(fronts: &[Vec<Choice>], budget: u64) -> f64 {
    let mut damage: f64 = 0.0;
    let mut used: u64 = 0;
    // (damage saved per byte, extra bytes, damage saved) of every hull segment.
    let mut segs: Vec<(f64, u64, f64)> = Vec::new();
    for f in fronts {
        let hull = lower_hull(f);
        damage += hull[0].damage;
        used += hull[0].bytes;
        for w in hull.windows(2) {
            let (db, dd) = (w[1].bytes - w[0].bytes, w[0].damage - w[1].damage);
            segs.push((dd / db as f64, db, dd));
        }
    }
    segs.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (slope, db, dd) in segs {
        if used >= budget {
            break;
        }
        let take = db.min(budget - used);
        damage -= if take == db { dd } else { slope * take as f64 };
        used += take;
    }
    damage.max(0.0)
}

/// The lower convex hull of a frontier (bytes increasing, damage falling).
fn lower_hull(f: &[Choice]) -> Vec<&Choice> {
    let mut h: Vec<&Choice> = Vec::new();
    for c in f {
        while h.len() >= 2 {
            let (a, b) = (h[h.len() - 2], h[h.len() - 1]);
            // Remove b when it lies on or above the segment a–c.
            let lhs = (b.damage - a.damage) * (c.bytes - a.bytes) as f64;
            let rhs = (c.damage - a.damage) * (b.bytes - a.bytes) as f64;
            if lhs >= rhs {
                h.pop();
            } else {
                break;
            }
        }
        h.push(c);
    }
    h
}

impl fmt::Display for Allocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes, predicted damage {:.6} (relaxation bound {:.6})",
            self.bytes, self.damage, self.lower_bound
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, c: &[(u64, f64)]) -> Item {
        Item {
            name: name.into(),
            choices: c.iter().enumerate().map(|(id, &(bytes, damage))| Choice { id, bytes, damage }).collect(),
        }
    }

    /// Exhaustive search for tiny problems.
    fn brute(items: &[Item], budget: u64) -> Option<f64> {
        fn go(items: &[Item], budget: u64, used: u64, dmg: f64, best: &mut Option<f64>) {
            match items.split_first() {
                None => {
                    if used <= budget && best.is_none_or(|b| dmg < b) {
                        *best = Some(dmg);
                    }
                }
                Some((it, rest)) => {
                    for c in &it.choices {
                        go(rest, budget, used + c.bytes, dmg + c.damage, best);
                    }
                }
            }
        }
        let mut best = None;
        go(items, budget, 0, 0.0, &mut best);
        best
    }

    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn matches_exhaustive_search_on_random_problems() {
        let mut s = 0x9e3779b97f4a7c15u64;
        for case in 0..300 {
            let n = 1 + (rng(&mut s) % 6) as usize;
            let items: Vec<Item> = (0..n)
                .map(|i| {
                    let k = 1 + (rng(&mut s) % 5) as usize;
                    let c: Vec<(u64, f64)> =
                        (0..k).map(|_| (1 + rng(&mut s) % 1000, (rng(&mut s) % 10_000) as f64 / 1e4)).collect();
                    item(&format!("t{i}"), &c)
                })
                .collect();
            let lo: u64 = items.iter().map(|it| it.choices.iter().map(|c| c.bytes).min().unwrap()).sum();
            let budget = lo + rng(&mut s) % 2000;
            let want = brute(&items, budget).unwrap();
            let got = allocate(&items, budget).unwrap();
            assert!(got.bytes <= budget, "case {case}: over budget");
            assert!((got.damage - want).abs() < 1e-9, "case {case}: damage {} vs optimum {want}", got.damage);
            assert!(got.lower_bound <= got.damage + 1e-9, "case {case}: bound above the optimum");
            // The ids and totals agree.
            let bytes: u64 = got.chosen.iter().zip(&items).map(|(&id, it)| it.choices[id].bytes).sum();
            assert_eq!(bytes, got.bytes);
        }
    }

    #[test]
    fn large_budgets_use_rounded_units_and_stay_within_budget() {
        // 300 tensors, costs in the megabytes: the DP works in units > 1 byte.
        let mut s = 12345u64;
        let items: Vec<Item> = (0..300)
            .map(|i| {
                let base = 1_000_000 + rng(&mut s) % 3_000_000;
                let c: Vec<(u64, f64)> = [2.6, 3.4, 4.5, 5.5, 6.6, 8.5]
                    .iter()
                    .map(|bpw| ((base as f64 * bpw / 8.0) as u64, (0.5f64).powf(*bpw) * (1 + rng(&mut s) % 100) as f64))
                    .collect();
                item(&format!("t{i}"), &c)
            })
            .collect();
        let lo: u64 = items.iter().map(|it| it.choices[0].bytes).sum();
        let hi: u64 = items.iter().map(|it| it.choices[5].bytes).sum();
        for frac in [0.1, 0.3, 0.5, 0.9] {
            let budget = lo + ((hi - lo) as f64 * frac) as u64;
            let a = allocate(&items, budget).unwrap();
            assert!(a.bytes <= budget);
            // Near the relaxation's bound: the rounding costs little.
            assert!(a.damage <= a.lower_bound * 1.01 + 1e-12, "{frac}: {a}");
            // Not much budget left unused.
            assert!(budget - a.bytes < (hi - lo) / 100, "{frac}: {} unused", budget - a.bytes);
        }
    }

    #[test]
    fn errors() {
        assert_eq!(allocate(&[item("a", &[])], 10).unwrap_err(), AllocError::NoChoices("a".into()));
        assert!(matches!(allocate(&[item("a", &[(5, f64::NAN)])], 10), Err(AllocError::BadDamage { .. })));
        assert_eq!(
            allocate(&[item("a", &[(5, 0.1), (9, 0.0)]), item("b", &[(7, 0.0)])], 11).unwrap_err(),
            AllocError::Infeasible { budget: 11, minimum: 12 }
        );
    }

    #[test]
    fn ample_budget_takes_the_least_damage_and_tight_budget_the_smallest() {
        let items = vec![item("a", &[(10, 1.0), (20, 0.1), (30, 0.0)]), item("b", &[(5, 2.0), (50, 0.0)])];
        let a = allocate(&items, 1000).unwrap();
        assert_eq!(a.chosen, vec![2, 1]);
        let a = allocate(&items, 15).unwrap();
        assert_eq!(a.chosen, vec![0, 0]);
        // 70 bytes: b's upgrade (saves 2.0 for 45 bytes) beats a's.
        let a = allocate(&items, 70).unwrap();
        assert_eq!(a.chosen, vec![1, 1]);
        assert!((a.damage - 0.1).abs() < 1e-12);
    }
}
