//! What the three 2-bit grid types (IQ2_XXS, IQ2_XS, IQ2_S) share: the grid
//! as their quantizers see it (ggml's `iq2xs_init_impl`), its
//! nearest-neighbour fallback for level sets off the grid, and the 7-bit
//! sign codes of IQ2_XXS and IQ2_XS.
//!
//! A grid point holds 8 magnitudes of 3 levels; the quantizers work on the
//! level indices `l` (0..3, the rank of each byte among the table's 3
//! values), `2l+1` in their searches. Level sets are keyed by
//! `Σ l_i << 2i`; a set off the grid maps to the list of its nearest grid
//! points: every point at the `nwant` smallest squared distances, ordered by
//! distance then index (ggml sorts `(distance, index)` pairs), `nwant` = 2
//! for IQ2_XXS and IQ2_XS, 1 for IQ2_S.

use std::sync::OnceLock;

use super::iq2_tables::{IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID};
use crate::quant::search::nearest_int;

/// Levels per coordinate the quantizers' searches use (`kMaxQ`).
pub(crate) const KMAXQ: i32 = 3;

/// A 2-bit grid as the quantizer sees it.
pub(crate) struct Grid {
    /// The 8 odd levels `2l+1` of each grid point.
    points: Vec<[i8; 8]>,
    /// Packed level indices (`Σ l_i << 2i`) → grid index, or
    /// `-(offset + 1)` into `neighbours` for points off the grid.
    map: Vec<i32>,
    /// For each point off the grid: its count, then the grid indices.
    neighbours: Vec<u16>,
}

impl Grid {
    /// IQ2_XXS's grid of 256 points.
    pub(crate) fn iq2xxs() -> &'static Grid {
        static GRID: OnceLock<Grid> = OnceLock::new();
        GRID.get_or_init(|| Grid::build(&IQ2XXS_GRID, 2))
    }

    /// IQ2_XS's grid of 512 points.
    pub(crate) fn iq2xs() -> &'static Grid {
        static GRID: OnceLock<Grid> = OnceLock::new();
        GRID.get_or_init(|| Grid::build(&IQ2XS_GRID, 2))
    }

    /// IQ2_S's grid of 1024 points.
    pub(crate) fn iq2s() -> &'static Grid {
        static GRID: OnceLock<Grid> = OnceLock::new();
        GRID.get_or_init(|| Grid::build(&IQ2S_GRID, 1))
    }

    fn build(table: &[u64], nwant: usize) -> Grid {
        let mut values: Vec<u8> = table.iter().flat_map(|g| g.to_le_bytes()).collect();
        values.sort_unstable();
        values.dedup();
        let level = |b: u8| values.iter().position(|&v| v == b).unwrap_or(0) as i32;
        let points: Vec<[i8; 8]> = table.iter().map(|g| g.to_le_bytes().map(|b| (2 * level(b) + 1) as i8)).collect();
        let mut map = vec![-1i32; 1 << 16];
        for (i, p) in points.iter().enumerate() {
            let u: usize = (0..8).map(|k| (((p[k] - 1) / 2) as usize) << (2 * k)).sum();
            map[u] = i as i32;
        }
        // Only level sets the search can produce (0..KMAXQ) are ever
        // looked up off the grid.
        let mut neighbours = Vec::new();
        let mut by_distance: Vec<(i32, u16)> = Vec::with_capacity(points.len());
        for u in 0..map.len() {
            let l: [i32; 8] = std::array::from_fn(|k| ((u >> (2 * k)) & 3) as i32);
            if map[u] >= 0 || l.iter().any(|&l| l >= KMAXQ) {
                continue;
            }
            by_distance.clear();
            by_distance.extend(points.iter().enumerate().map(|(j, p)| {
                let d2: i32 = (0..8).map(|k| (p[k] as i32 - (2 * l[k] + 1)).pow(2)).sum();
                (d2, j as u16)
            }));
            map[u] = super::push_neighbours(&mut by_distance, nwant, &mut neighbours);
        }
        Grid { points, map, neighbours }
    }

    /// The map entry of the level set `l` (8 levels in 0..4).
    pub(crate) fn lookup(&self, l: &[i8]) -> i32 {
        let u: usize = (0..8).map(|i| (l[i] as usize & 3) << (2 * i)).sum();
        self.map[u]
    }

    /// ggml's `iq2_find_best_neighbour` for the level set at map entry
    /// `m < 0`: the nearest of its neighbours at `scale`, whose levels it
    /// writes into `l`.
    pub(crate) fn best_neighbour(&self, m: i32, xval: &[f32], weight: &[f32], scale: f32, l: &mut [i8]) -> usize {
        let start = (-m - 1) as usize;
        let n = self.neighbours[start] as usize;
        let list = &self.neighbours[start + 1..start + 1 + n];
        let index = super::nearest_neighbour(list, &self.points, xval, weight, scale);
        self.levels(index, l);
        index
    }

    /// The levels `l` of grid point `index`.
    pub(crate) fn levels(&self, index: usize, l: &mut [i8]) {
        let pg = &self.points[index];
        for i in 0..8 {
            l[i] = (pg[i] - 1) / 2;
        }
    }

    /// The grid index of `l`, which must be on the grid (ggml aborts
    /// otherwise; 0 here).
    pub(crate) fn index_of(&self, l: &[i8]) -> usize {
        self.lookup(l).max(0) as usize
    }
}

/// The scale search IQ2_XS and IQ2_S share on 16 values (two groups of 8
/// magnitudes `xval` with weights `weight`, `waux = √weight`, maximum
/// `max`): 19 trial scales around `max/5`, each group rounded to the grid
/// (or its best neighbour), the best by `(Σwxq)²/Σwq²`; then the groups the
/// best trial had off the grid are rounded again at its scale, which is
/// refitted. Returns the scale and the 16 levels (0..3), every group on the
/// grid.
pub(crate) fn search16(
    grid: &Grid,
    xval: &[f32; 16],
    weight: &[f32; 16],
    waux: &[f32; 16],
    max: f32,
) -> (f32, [i8; 16]) {
    let mut l = [0i8; 16];
    let mut laux = [0i8; 16];
    let mut best = 0.0f32;
    let mut scale = max / (2 * KMAXQ - 1) as f32;
    let mut on_grid = [true; 2];
    let mut on_grid_aux = [true; 2];
    for is in -9..=9 {
        let id = ((2 * KMAXQ - 1) as f32 + is as f32 * 0.1) / max;
        let this_scale = 1.0 / id;
        for k in 0..2 {
            for i in 0..8 {
                laux[8 * k + i] = nearest_int(0.5 * (id * xval[8 * k + i] - 1.0)).clamp(0, KMAXQ - 1) as i8;
            }
            let g = grid.lookup(&laux[8 * k..8 * k + 8]);
            on_grid_aux[k] = g >= 0;
            if g < 0 {
                let (xv, wa) = (&xval[8 * k..8 * k + 8], &waux[8 * k..8 * k + 8]);
                grid.best_neighbour(g, xv, wa, this_scale, &mut laux[8 * k..8 * k + 8]);
            }
        }
        let (sumqx, sumq2) = sums(weight, xval, &laux);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            l = laux;
            on_grid = on_grid_aux;
        }
    }
    if on_grid.iter().any(|&g| !g) && scale > 0.0 {
        let id = 1.0 / scale;
        for k in 0..2 {
            if on_grid[k] {
                continue;
            }
            for i in 0..8 {
                l[8 * k + i] = nearest_int(0.5 * (id * xval[8 * k + i] - 1.0)).clamp(0, KMAXQ - 1) as i8;
            }
            let g = grid.lookup(&l[8 * k..8 * k + 8]);
            if g < 0 {
                let (xv, wa) = (&xval[8 * k..8 * k + 8], &waux[8 * k..8 * k + 8]);
                grid.best_neighbour(g, xv, wa, scale, &mut l[8 * k..8 * k + 8]);
            }
        }
        let (sumqx, sumq2) = sums(weight, xval, &l);
        if sumq2 > 0.0 {
            scale = sumqx / sumq2;
        }
    }
    (scale, l)
}

/// (Σ w·x·q, Σ w·q²) with `q = 2l+1`, in ggml's order.
pub(crate) fn sums(weight: &[f32], xval: &[f32], l: &[i8]) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
    for i in 0..l.len() {
        let w = weight[i];
        let q = (2 * l[i] as i32 + 1) as f32;
        sumqx += w * xval[i] * q;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

/// The 32 signed levels of 4 grid entries (8 magnitudes each) with their
/// 32 sign bits.
#[inline(always)]
pub(crate) fn signed_levels(entry: impl Fn(usize) -> u64, signs: u32) -> [i8; 32] {
    std::array::from_fn(|i| {
        let g = (entry(i / 8) >> (8 * (i % 8))) as u8 as i8;
        if (signs >> i) & 1 == 1 {
            -g
        } else {
            g
        }
    })
}

/// ggml's `ksigns_iq2xs`: the 8 sign bits of each 7-bit code, the eighth
/// making their number even.
const KSIGNS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut c = 0;
    while c < 128 {
        t[c] = c as u8 | (((c as u32).count_ones() as u8 & 1) << 7);
        c += 1;
    }
    t
};

/// The 8 sign bits of the 7-bit code in the low bits of `code`.
#[inline(always)]
pub(crate) fn ksigns(code: u32) -> u32 {
    KSIGNS[(code & 127) as usize] as u32
}

/// The absolute values of 8 signed inputs and their 7-bit sign code, as
/// IQ2_XXS and IQ2_XS store it: with an odd number of negative inputs the
/// one of least `weight·x²` (the first on a tie) flips sign, so that the
/// eighth sign bit is implied by the parity of the other seven; its `xval`
/// is then negative.
pub(crate) fn signs_even(xb: &[f32], weight: &[f32], xval: &mut [f32]) -> u8 {
    let mut s = 0u8;
    let mut nflip = 0;
    for i in 0..8 {
        if xb[i] >= 0.0 {
            xval[i] = xb[i];
        } else {
            xval[i] = -xb[i];
            nflip += 1;
            s |= 1 << i;
        }
    }
    if nflip % 2 == 1 {
        let mut imin = 0;
        let mut min = weight[0] * xb[0] * xb[0];
        for i in 1..8 {
            let ax = weight[i] * xb[i] * xb[i];
            if ax < min {
                min = ax;
                imin = i;
            }
        }
        xval[imin] = -xval[imin];
        s ^= 1 << imin;
    }
    s & 127
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_have_their_points_and_neighbour_lists() {
        for (g, n) in [(Grid::iq2xxs(), 256), (Grid::iq2xs(), 512), (Grid::iq2s(), 1024)] {
            assert_eq!(g.points.len(), n);
            assert_eq!(g.map.iter().filter(|&&m| m >= 0).count(), n);
            for u in 0..g.map.len() {
                let l: [i8; 8] = std::array::from_fn(|i| ((u >> (2 * i)) & 3) as i8);
                if l.iter().all(|&l| l < 3) {
                    let m = g.lookup(&l);
                    assert!(m >= 0 || g.neighbours[(-m - 1) as usize] > 0, "{u}");
                }
            }
        }
    }

    #[test]
    fn sign_codes_have_even_parity() {
        for c in 0..128 {
            assert_eq!(ksigns(c).count_ones() % 2, 0);
            assert_eq!(ksigns(c) & 127, c);
        }
    }
}
