//! What IQ1_S and IQ1_M share: the grid [`IQ1S_GRID`] as their quantizers
//! see it (ggml's `iq2xs_init_impl` for `GGML_TYPE_IQ1_S`/`IQ1_M`), the
//! neighbour search for points off it (`iq1_find_best_neighbour2`), and
//! glibc's `qsort` as it orders the values of a block.
//!
//! A grid point is 8 levels `l` = 0, 1, 2 (the table's −1, 0, 1 plus one);
//! the search looks a point up by its packed levels `Σ l_i << 2i`. A point
//! off the grid has as neighbours every grid point at one of the three
//! smallest squared distances from it (`nwant = 3`), ordered by distance,
//! then index, as ggml's `qsort` with `iq2_compare_func` leaves them.

use std::sync::OnceLock;

use super::iq1_tables::IQ1S_GRID;

/// ggml's `IQ1S_DELTA` (= `IQ1M_DELTA`): the shift of the levels, `±0.125`.
pub const IQ1S_DELTA: f32 = 0.125;
/// ggml's `IQ1M_DELTA`.
pub const IQ1M_DELTA: f32 = 0.125;

/// The grid as the quantizers see it.
pub(crate) struct Grid {
    /// The 8 levels `l` (0..3) of each grid point.
    pub points: Vec<[u8; 8]>,
    /// Packed levels → grid index, or `-(offset + 1)` into `neighbours`
    /// for points off the grid.
    map: Vec<i32>,
    /// For each point off the grid: its count, then the grid indices.
    neighbours: Vec<u16>,
}

impl Grid {
    pub fn get() -> &'static Grid {
        static GRID: OnceLock<Grid> = OnceLock::new();
        GRID.get_or_init(Grid::build)
    }

    fn build() -> Grid {
        let points: Vec<[u8; 8]> = IQ1S_GRID.iter().map(|g| g.to_le_bytes().map(|b| (b as i8 + 1) as u8)).collect();
        let pack = |p: &[u8; 8]| -> usize { (0..8).map(|k| (p[k] as usize) << (2 * k)).sum() };
        let mut map = vec![-1i32; 1 << 16];
        for (i, p) in points.iter().enumerate() {
            map[pack(p)] = i as i32;
        }
        // Only level sets the search produces (every level below 3) are
        // ever looked up off the grid.
        let mut neighbours = Vec::new();
        let mut dist: Vec<(i32, u16)> = Vec::with_capacity(points.len());
        for u in 0..map.len() {
            let l: [i32; 8] = std::array::from_fn(|k| ((u >> (2 * k)) & 3) as i32);
            if map[u] >= 0 || l.iter().any(|&l| l >= 3) {
                continue;
            }
            dist.clear();
            for (j, p) in points.iter().enumerate() {
                // ggml's distance between the odd levels 2l+1.
                let d2: i32 = (0..8).map(|k| (2 * (p[k] as i32 - l[k])).pow(2)).sum();
                dist.push((d2, j as u16));
            }
            // IQ1: the points at the 3 nearest distances.
            map[u] = super::push_neighbours(&mut dist, 3, &mut neighbours);
        }
        Grid { points, map, neighbours }
    }

    /// The map entry of the 8 levels `l`: a grid index (≥ 0) or a
    /// neighbour list (< 0).
    pub fn lookup(&self, l: &[i8]) -> i32 {
        let u: usize = (0..8).map(|i| ((l[i] & 3) as usize) << (2 * i)).sum();
        self.map[u]
    }

    /// ggml's `iq1_find_best_neighbour2` for the point at map entry `m < 0`:
    /// the neighbour nearest to `xval` in weighted squared distance with
    /// level values `xg` at `scale` (the first on a tie), its levels written
    /// to `l`. Where no distance is below `f32::MAX` (ggml searches the
    /// whole grid there, reading past its arrays, and aborts) the first
    /// neighbour.
    pub fn best_neighbour(
        &self,
        m: i32,
        xval: &[f32],
        weight: &[f32],
        scale: f32,
        xg: &[f32; 3],
        l: &mut [i8],
    ) -> usize {
        let start = (-m - 1) as usize;
        let n = self.neighbours[start] as usize;
        let list = &self.neighbours[start + 1..start + 1 + n];
        let mut best_d2 = f32::MAX;
        let mut best = list[0] as usize;
        for &j in list {
            let pg = &self.points[j as usize];
            let mut d2 = 0.0f32;
            for i in 0..8 {
                let q = xg[pg[i] as usize];
                let diff = scale * q - xval[i];
                d2 += weight[i] * diff * diff;
            }
            if d2 < best_d2 {
                best_d2 = d2;
                best = j as usize;
            }
        }
        let pg = &self.points[best];
        for i in 0..8 {
            l[i] = pg[i] as i8;
        }
        best
    }
}

/// `iq1_sort_helper`: −1, 0, 1 as C compares the floats (0 for NaN).
#[inline]
fn compare(a: f32, b: f32) -> i32 {
    if a < b {
        -1
    } else if a > b {
        1
    } else {
        0
    }
}

/// The indices `0..x.len()` of `x` (at most 32 values) in the order glibc's
/// `qsort` leaves ggml's `(value, index)` pairs under `iq1_sort_helper`.
/// glibc (2.36 here) sorts arrays this small with its top-down merge sort
/// (`msort_with_tmp`: halves of `n/2` and `n − n/2`, ties to the left
/// half), so equal values keep their order; NaNs, equal to everything,
/// fall where that merge puts them.
pub(crate) fn qsort_order(x: &[f32], out: &mut [u8]) {
    let n = x.len();
    for (i, o) in out[..n].iter_mut().enumerate() {
        *o = i as u8;
    }
    let mut tmp = [0u8; 32];
    msort(x, &mut out[..n], &mut tmp);
}

fn msort(x: &[f32], b: &mut [u8], tmp: &mut [u8; 32]) {
    let n = b.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    msort(x, &mut b[..n1], tmp);
    msort(x, &mut b[n1..], tmp);
    let (mut i, mut j, mut k) = (0, n1, 0);
    while i < n1 && j < n {
        if compare(x[b[i] as usize], x[b[j] as usize]) <= 0 {
            tmp[k] = b[i];
            i += 1;
        } else {
            tmp[k] = b[j];
            j += 1;
        }
        k += 1;
    }
    while i < n1 {
        tmp[k] = b[i];
        i += 1;
        k += 1;
    }
    b[..k].copy_from_slice(&tmp[..k]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_has_its_points_and_neighbour_lists() {
        let g = Grid::get();
        assert_eq!(g.points.len(), 2048);
        assert_eq!(g.map.iter().filter(|&&m| m >= 0).count(), 2048);
        let mut off = 0;
        for u in 0..g.map.len() {
            let l: [i8; 8] = std::array::from_fn(|i| ((u >> (2 * i)) & 3) as i8);
            if l.iter().all(|&l| l < 3) {
                let m = g.lookup(&l);
                if m < 0 {
                    off += 1;
                    assert!(g.neighbours[(-m - 1) as usize] > 0, "{u}");
                }
            }
        }
        assert_eq!(off, 6561 - 2048);
    }

    #[test]
    fn qsort_order_is_a_stable_sort_without_nans() {
        let x = [3.0, -1.0, 0.0, -0.0, 3.0, 2.0, -1.0, 0.0, 5.0, -7.0, 0.0];
        let mut got = [0u8; 11];
        qsort_order(&x, &mut got);
        let mut want: Vec<u8> = (0..11).collect();
        want.sort_by(|&a, &b| x[a as usize].partial_cmp(&x[b as usize]).unwrap());
        assert_eq!(got.to_vec(), want);
    }
}
