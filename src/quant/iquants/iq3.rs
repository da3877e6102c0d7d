//! The search both 3-bit grid i-quants share (ggml's
//! `quantize_row_iq3_xxs_impl` and `quantize_row_iq3_s_impl`): every group
//! of 4 magnitudes is a point of a grid of 4-vectors of odd levels
//! `2l+1` (l in 0..8), 256 points for IQ3_XXS and 512 for IQ3_S, and signs
//! are stored apart.
//!
//! The quantizer's view of a grid point is its 4 level indices `l`, read
//! from the dequantization tables ([`IQ3XXS_GRID`], [`IQ3S_GRID`]: the
//! index of each byte among the table's 8 distinct values). A point off the
//! grid is replaced by the best of its nearest grid points ([`Iq3Grid`]'s
//! neighbour lists, built as ggml's `iq3xs_init_impl` builds them: by
//! squared distance, ties by grid index, all points at the nearest 2
//! (IQ3_XXS) or 3 (IQ3_S) distances).
//!
//! Every float operation is in ggml's order (libggml-base is compiled
//! without FMA, so nothing is contracted). Where ggml aborts — a group
//! whose weighted distances to every neighbour are infinite or NaN, from
//! values near the f32 limit — this picks the first neighbour instead.

use std::sync::OnceLock;

use super::cmax;

use super::iq3_tables::{IQ3S_GRID, IQ3XXS_GRID};
use crate::quant::blocks::{BlockIQ3S, BlockIQ3XXS, QK_K};
use crate::quant::search::nearest_int;

/// ggml's `GROUP_MAX_EPS_IQ3_XXS`: IQ3_XXS sub-blocks below it are zero.
const GROUP_MAX_EPS_IQ3_XXS: f32 = 1e-8;
/// Levels per coordinate (`kMaxQ`).
const KMAXQ: i32 = 8;
/// 4 coordinates of 3 bits: the size of the point → grid index map.
const KMAP_SIZE: usize = 4096;

/// One grid as the quantizer sees it.
pub(crate) struct Iq3Grid {
    /// The 4 odd levels `2l+1` of each grid point.
    points: Vec<[i8; 4]>,
    /// Packed level indices (`l0 | l1 << 3 | l2 << 6 | l3 << 9`) → grid
    /// index, or `-(offset + 1)` into `neighbours` for points off the grid.
    map: Vec<i32>,
    /// For each point off the grid: its count, then the grid indices.
    neighbours: Vec<u16>,
}

impl Iq3Grid {
    fn build(table: &[u32], nwant: usize) -> Iq3Grid {
        // The 8 byte values of the table, sorted: a byte's rank is its level.
        let mut values: Vec<u8> = table.iter().flat_map(|g| g.to_le_bytes()).collect();
        values.sort_unstable();
        values.dedup();
        debug_assert_eq!(values.len(), 8);
        let level = |b: u8| values.iter().position(|&v| v == b).unwrap_or(0) as i32;
        let points: Vec<[i8; 4]> = table.iter().map(|g| g.to_le_bytes().map(|b| (2 * level(b) + 1) as i8)).collect();
        let mut map = vec![-1i32; KMAP_SIZE];
        for (i, p) in points.iter().enumerate() {
            let u: usize = (0..4).map(|k| (((p[k] - 1) / 2) as usize) << (3 * k)).sum();
            map[u] = i as i32;
        }
        let mut neighbours = Vec::new();
        let mut dist2: Vec<(i32, u16)> = Vec::with_capacity(points.len());
        for u in 0..KMAP_SIZE {
            if map[u] >= 0 {
                continue;
            }
            let pos: [i32; 4] = std::array::from_fn(|k| 2 * ((u >> (3 * k)) & 7) as i32 + 1);
            dist2.clear();
            dist2.extend(points.iter().enumerate().map(|(j, p)| {
                let d2: i32 = (0..4).map(|k| (p[k] as i32 - pos[k]) * (p[k] as i32 - pos[k])).sum();
                (d2, j as u16)
            }));
            map[u] = super::push_neighbours(&mut dist2, nwant, &mut neighbours);
        }
        Iq3Grid { points, map, neighbours }
    }

    /// IQ3_XXS's grid (256 points, neighbours at the 2 nearest distances).
    pub(crate) fn xxs() -> &'static Iq3Grid {
        static GRID: OnceLock<Iq3Grid> = OnceLock::new();
        GRID.get_or_init(|| Iq3Grid::build(&IQ3XXS_GRID, 2))
    }

    /// IQ3_S's grid (512 points, neighbours at the 3 nearest distances).
    pub(crate) fn s() -> &'static Iq3Grid {
        static GRID: OnceLock<Iq3Grid> = OnceLock::new();
        GRID.get_or_init(|| Iq3Grid::build(&IQ3S_GRID, 3))
    }

    /// ggml's `iq3_find_best_neighbour`: among the neighbours of the point
    /// at map entry `m < 0`, the one nearest to `xval` at `scale` in
    /// weighted squared distance; its level indices go to `l`.
    fn best_neighbour(&self, m: i32, xval: &[f32], weight: &[f32], scale: f32, l: &mut [i8]) -> usize {
        let start = (-m - 1) as usize;
        let n = self.neighbours[start] as usize;
        let list = &self.neighbours[start + 1..start + 1 + n];
        // ggml aborts when no distance is below f32::MAX (see the module doc).
        let index = super::nearest_neighbour(list, &self.points, xval, weight, scale);
        self.set_levels(index, l);
        index
    }

    fn set_levels(&self, index: usize, l: &mut [i8]) {
        let pg = &self.points[index];
        for i in 0..4 {
            l[i] = (pg[i] - 1) / 2;
        }
    }

    /// The grid index of the 4 level indices `l`, or this point's
    /// neighbour list (a negative map entry).
    fn lookup(&self, l: &[i8]) -> i32 {
        let u: usize = (0..4).map(|i| (l[i] as usize) << (3 * i)).sum();
        self.map[u]
    }

    /// Level indices of 4 magnitudes at inverse scale `id`, clamped to the
    /// grid's range, and their map entry.
    fn round(&self, id: f32, xval: &[f32], l: &mut [i8]) -> i32 {
        for i in 0..4 {
            l[i] = nearest_int(0.5 * (id * xval[i] - 1.0)).clamp(0, KMAXQ - 1) as i8;
        }
        self.lookup(l)
    }
}

/// What differs between IQ3_XXS and IQ3_S in the sub-block search.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Xxs,
    S,
}

/// The result of one 32-value sub-block's search.
struct SubBlock {
    scale: f32,
    /// Grid index of each group of 4.
    index: [u16; 8],
    /// Sign bits of each group of 8 (IQ3_XXS: 7 bits, parity implied).
    signs: [u8; 4],
}

/// (Σ w·x·q, Σ w·q²) over a sub-block with `q = 2l+1`.
fn sums(weight: &[f32; 32], xval: &[f32; 32], l: &[i8; 32]) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
    for i in 0..32 {
        let w = weight[i];
        let q = (2 * l[i] as i32 + 1) as f32;
        sumqx += w * xval[i] * q;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

/// The search of one sub-block `xb` (32 values) with weights `weight`;
/// `None` when the sub-block is skipped as all zero.
fn search(kind: Kind, grid: &Iq3Grid, xb: &[f32], weight: &[f32; 32]) -> Option<SubBlock> {
    let mut waux = [0f32; 32];
    for i in 0..32 {
        waux[i] = weight[i].sqrt();
    }
    let mut xval = [0f32; 32];
    let mut signs = [0u8; 4];
    for k in 0..4 {
        let mut nflip = 0;
        let mut s = 0u8;
        for i in 0..8 {
            let x = xb[8 * k + i];
            if x >= 0.0 {
                xval[8 * k + i] = x;
            } else {
                xval[8 * k + i] = -x;
                nflip += 1;
                s |= 1 << i;
            }
        }
        if kind == Kind::Xxs {
            if nflip % 2 == 1 {
                let x = &xb[8 * k..8 * k + 8];
                let w = &weight[8 * k..8 * k + 8];
                let mut imin = 0;
                let mut min = w[0] * x[0] * x[0];
                for i in 1..8 {
                    let ax = w[i] * x[i] * x[i];
                    if ax < min {
                        min = ax;
                        imin = i;
                    }
                }
                xval[8 * k + imin] = -xval[8 * k + imin];
                s ^= 1 << imin;
            }
            s &= 127;
        }
        signs[k] = s;
    }
    let mut max = xval[0];
    for &v in &xval[1..] {
        max = cmax(max, v);
    }
    let skip = match kind {
        Kind::Xxs => max < GROUP_MAX_EPS_IQ3_XXS,
        Kind::S => max == 0.0,
    };
    if skip {
        return None;
    }

    let mut l = [0i8; 32];
    let mut laux = [0i8; 32];
    let mut best = 0.0f32;
    let mut scale = max / (2 * KMAXQ - 1) as f32;
    let mut on_grid = [kind == Kind::Xxs; 8];
    let mut on_grid_aux = [true; 8];
    let nsteps = if kind == Kind::Xxs { 15 } else { 9 };
    for is in -nsteps..=nsteps {
        let id = ((2 * KMAXQ - 1) as f32 + is as f32 * 0.2) / max;
        let this_scale = 1.0 / id;
        for k in 0..8 {
            let g = grid.round(id, &xval[4 * k..4 * k + 4], &mut laux[4 * k..4 * k + 4]);
            on_grid_aux[k] = g >= 0;
            if g < 0 {
                grid.best_neighbour(
                    g,
                    &xval[4 * k..4 * k + 4],
                    &waux[4 * k..4 * k + 4],
                    this_scale,
                    &mut laux[4 * k..4 * k + 4],
                );
            }
        }
        let (sumqx, sumq2) = sums(weight, &xval, &laux);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            l = laux;
            on_grid = on_grid_aux;
        }
    }
    if on_grid.iter().any(|&g| !g) && scale > 0.0 {
        let id = 1.0 / scale;
        for k in 0..8 {
            // IQ3_XXS refits only the groups off the grid, IQ3_S all of them.
            if kind == Kind::Xxs && on_grid[k] {
                continue;
            }
            let mut u = [0i8; 4];
            let mut g = grid.round(id, &xval[4 * k..4 * k + 4], &mut u);
            if g < 0 {
                g = grid.best_neighbour(
                    g,
                    &xval[4 * k..4 * k + 4],
                    &waux[4 * k..4 * k + 4],
                    scale,
                    &mut l[4 * k..4 * k + 4],
                ) as i32;
            }
            grid.set_levels(g as usize, &mut l[4 * k..4 * k + 4]);
        }
        let (sumqx, sumq2) = sums(weight, &xval, &l);
        if sumq2 > 0.0 {
            scale = sumqx / sumq2;
        }
    }
    if scale < 0.0 {
        scale = -scale;
        for s in &mut signs {
            *s = if kind == Kind::Xxs { !*s & 127 } else { !*s };
        }
    }
    let mut index = [0u16; 8];
    for k in 0..8 {
        // Every level set is a grid point here (ggml aborts otherwise).
        index[k] = grid.lookup(&l[4 * k..4 * k + 4]).max(0) as u16;
    }
    Some(SubBlock { scale, index, signs })
}

/// The importance weights of a super-block's sub-block `ib`.
fn weights(x: &[f32], qw: Option<&[f32]>, sigma2: f32, ib: usize) -> [f32; 32] {
    let xb = &x[32 * ib..32 * ib + 32];
    std::array::from_fn(|i| match qw {
        Some(qw) => qw[32 * ib + i] * (sigma2 + xb[i] * xb[i]).sqrt(),
        None => xb[i] * xb[i],
    })
}

/// `2·Σx²/256` of a super-block.
fn sigma2(x: &[f32]) -> f32 {
    let mut sumx2 = 0.0f32;
    for &v in x {
        sumx2 += v * v;
    }
    2.0 * sumx2 / QK_K as f32
}

/// The 4-bit sub-block scale of `scale` at super-block inverse scale `id`.
fn scale_code(id: f32, scale: f32) -> u8 {
    nearest_int(0.5 * (id * scale - 1.0)).clamp(0, 15) as u8
}

/// ggml's `quantize_row_iq3_xxs_impl(256, …)` on one super-block.
pub(crate) fn quantize_xxs(x: &[f32], qw: Option<&[f32]>, y: &mut BlockIQ3XXS) {
    let grid = Iq3Grid::xxs();
    y.d = half::f16::ZERO;
    let mut q3 = [0u8; 96];
    let mut scales = [0f32; 8];
    let mut max_scale = 0.0f32;
    let sigma2 = sigma2(x);
    for ib in 0..8 {
        let weight = weights(x, qw, sigma2, ib);
        let Some(sb) = search(Kind::Xxs, grid, &x[32 * ib..32 * ib + 32], &weight) else {
            scales[ib] = 0.0;
            continue;
        };
        for k in 0..8 {
            q3[8 * ib + k] = sb.index[k] as u8;
        }
        let s = sb.signs;
        let aux = s[0] as u32 | (s[1] as u32) << 7 | (s[2] as u32) << 14 | (s[3] as u32) << 21;
        q3[64 + 4 * ib..68 + 4 * ib].copy_from_slice(&aux.to_le_bytes());
        scales[ib] = sb.scale;
        max_scale = cmax(max_scale, sb.scale);
    }
    if max_scale == 0.0 {
        y.qs = [0; 96];
        return;
    }
    let d = max_scale / 31.0;
    y.d = half::f16::from_f32(d * 1.0125);
    let id = 1.0 / d;
    for ib in 0..8 {
        q3[64 + 4 * ib + 3] |= scale_code(id, scales[ib]) << 4;
    }
    y.qs = q3;
}

/// ggml's `quantize_row_iq3_s_impl(32, …)` on one super-block.
pub(crate) fn quantize_s(x: &[f32], qw: Option<&[f32]>, y: &mut BlockIQ3S) {
    let grid = Iq3Grid::s();
    *y = bytemuck::Zeroable::zeroed();
    let mut scales = [0f32; 8];
    let mut max_scale = 0.0f32;
    let sigma2 = sigma2(x);
    // ggml advances its qs and signs pointers only past searched sub-blocks
    // (a skipped all-zero sub-block shifts the following ones); qh is
    // indexed by sub-block.
    let (mut qs, mut signs) = (0usize, 0usize);
    for ib in 0..8 {
        let weight = weights(x, qw, sigma2, ib);
        let Some(sb) = search(Kind::S, grid, &x[32 * ib..32 * ib + 32], &weight) else {
            scales[ib] = 0.0;
            continue;
        };
        for k in 0..8 {
            y.qs[qs + k] = sb.index[k] as u8;
            y.qh[ib] |= ((sb.index[k] >> 8) as u8) << k;
        }
        qs += 8;
        y.signs[signs..signs + 4].copy_from_slice(&sb.signs);
        signs += 4;
        scales[ib] = sb.scale;
        max_scale = cmax(max_scale, sb.scale);
    }
    if max_scale == 0.0 {
        return;
    }
    let d = max_scale / 31.0;
    y.d = half::f16::from_f32(d * 1.033);
    let id = 1.0 / d;
    for ib in (0..8).step_by(2) {
        y.scales[ib / 2] = scale_code(id, scales[ib]) | scale_code(id, scales[ib + 1]) << 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_have_their_points_and_neighbour_lists() {
        for (g, n) in [(Iq3Grid::xxs(), 256), (Iq3Grid::s(), 512)] {
            assert_eq!(g.points.len(), n);
            assert_eq!(g.map.iter().filter(|&&m| m >= 0).count(), n);
            for (u, &m) in g.map.iter().enumerate() {
                if m >= 0 {
                    let l: [i8; 4] = std::array::from_fn(|i| ((u >> (3 * i)) & 7) as i8);
                    assert_eq!(g.lookup(&l), m);
                } else {
                    let start = (-m - 1) as usize;
                    assert!(g.neighbours[start] > 0, "{u}: no neighbours");
                }
            }
        }
    }

    #[test]
    fn huge_values_do_not_panic() {
        // ggml aborts on these; quantmix gives some block without panicking.
        let x: Vec<f32> = (0..256).map(|i| if i % 2 == 0 { 3e38 } else { -2.9e38 }).collect();
        let mut a: BlockIQ3XXS = bytemuck::Zeroable::zeroed();
        let mut b: BlockIQ3S = bytemuck::Zeroable::zeroed();
        quantize_xxs(&x, None, &mut a);
        quantize_s(&x, Some(&[1.0; 256]), &mut b);
    }
}
