//! KL-divergence against a reference model, as `llama-perplexity
//! --kl-divergence` computes it from a `--kl-divergence-base` file.

use serde::Serialize;

use super::{covariance, mean_and_uncertainty};

/// The reference's log-probabilities of every scored position, 16 bits per
/// vocabulary entry: `ln p = scale · q + min_log_prob`, covering at most 16
/// nats below the most likely token (llama.cpp's base-file encoding).
#[derive(Clone, Debug)]
pub struct RefLogProbs {
    n_vocab: usize,
    rows: Vec<(f32, f32)>,
    q: Vec<u16>,
}

/// Round to nearest, ties to even (ggml's magic-number `nearest_int`).
fn nearest_int(v: f32) -> i32 {
    v.round_ties_even() as i32
}

impl RefLogProbs {
    pub fn new(n_vocab: usize) -> Self {
        RefLogProbs { n_vocab, rows: Vec::new(), q: Vec::new() }
    }

    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    /// Number of stored positions.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Store one row of reference logits.
    pub fn push(&mut self, logits: &[f32]) {
        assert_eq!(logits.len(), self.n_vocab);
        let mut max = logits[0];
        let mut min = logits[0];
        for &l in &logits[1..] {
            max = max.max(l);
            min = min.min(l);
        }
        let min = min.max(max - 16.0);
        let sum: f64 = logits.iter().map(|&l| (l - max).exp() as f64).sum();
        let log_sum = sum.ln() as f32;
        let min_log_prob = min - max - log_sum;
        let scale = (max - min) / 65535.0;
        self.rows.push((scale, min_log_prob));
        if scale != 0.0 {
            let inv = 1.0 / scale;
            self.q.extend(logits.iter().map(|&l| if l > min { nearest_int(inv * (l - min)) as u16 } else { 0 }));
        } else {
            self.q.extend(std::iter::repeat_n(0u16, self.n_vocab));
        }
    }

    /// Bytes [`RefLogProbs::write_to`] writes.
    pub fn byte_len(&self) -> usize {
        self.rows.len() * 8 + self.q.len() * 2
    }

    /// Write the stored rows (scale and minimum as little-endian f32 per
    /// row, then the 16-bit values), for spilling to a temporary file.
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(self.byte_len());
        for &(s, m) in &self.rows {
            buf.extend_from_slice(&s.to_le_bytes());
            buf.extend_from_slice(&m.to_le_bytes());
        }
        for &q in &self.q {
            buf.extend_from_slice(&q.to_le_bytes());
        }
        w.write_all(&buf)
    }

    /// Read `n_rows` rows written by [`RefLogProbs::write_to`].
    pub fn read_from(r: &mut impl std::io::Read, n_vocab: usize, n_rows: usize) -> std::io::Result<Self> {
        let mut buf = vec![0u8; n_rows * 8 + n_rows * n_vocab * 2];
        r.read_exact(&mut buf)?;
        let (head, tail) = buf.split_at(n_rows * 8);
        let f = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let rows = head.chunks_exact(8).map(|c| (f(&c[..4]), f(&c[4..]))).collect();
        let q = tail.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        Ok(RefLogProbs { n_vocab, rows, q })
    }

    /// The stored `ln p` of every token of position `row`.
    fn row(&self, row: usize) -> (f32, f32, &[u16]) {
        let (s, m) = self.rows[row];
        (s, m, &self.q[row * self.n_vocab..(row + 1) * self.n_vocab])
    }
}

/// Running sums of one model's comparison with the reference.
#[derive(Clone, Debug, Default)]
pub struct Kld {
    sum_nll: f64,
    sum_nll2: f64,
    sum_nll_base: f64,
    sum_nll_base2: f64,
    sum_nll_nll_base: f64,
    sum_kld: f64,
    sum_kld2: f64,
    sum_p_diff: f64,
    sum_p_diff2: f64,
    sum_p_diff4: f64,
    max_p_diff: f32,
    n_same_top: usize,
    count: usize,
    kld_values: Vec<f32>,
    p_diff_values: Vec<f32>,
}

/// What llama.cpp prints at the end of a KL-divergence run (± are the
/// standard errors it prints).
#[derive(Clone, Debug, Serialize)]
pub struct KldSummary {
    pub count: usize,
    pub ppl: f64,
    pub ppl_err: f64,
    pub ppl_base: f64,
    pub ppl_base_err: f64,
    pub ln_ppl_ratio: f64,
    pub ln_ppl_ratio_err: f64,
    pub delta_ppl: f64,
    pub delta_ppl_err: f64,
    pub kld_mean: f64,
    pub kld_mean_err: f64,
    pub kld_median: f64,
    pub kld_p99: f64,
    pub kld_max: f64,
    pub same_top_p: f64,
    pub same_top_p_err: f64,
    pub rms_dp: f64,
    pub rms_dp_err: f64,
    pub max_dp: f64,
}

/// Linear interpolation between sorted values (llama.cpp's `percentile`).
fn percentile(sorted: &[f32], fraction: f32) -> f32 {
    if fraction <= 0.0 {
        return sorted[0];
    }
    if fraction >= 1.0 {
        return sorted[sorted.len() - 1];
    }
    let p = fraction * (sorted.len() - 1) as f32;
    let ip = p as usize;
    let p = p - ip as f32;
    (1.0 - p) * sorted[ip] + p * sorted[(ip + 1).min(sorted.len() - 1)]
}

impl Kld {
    /// Compare one row of logits (predicting `tok`) with the reference's
    /// stored row `ref_row`.
    pub fn add(&mut self, logits: &[f32], tok: usize, refs: &RefLogProbs, ref_row: usize) {
        let n_vocab = refs.n_vocab;
        assert_eq!(logits.len(), n_vocab);
        let mut max = logits[0];
        let mut imax = 0;
        for (i, &l) in logits.iter().enumerate().skip(1) {
            if l > max {
                max = l;
                imax = i;
            }
        }
        let sum_exp: f64 = logits.iter().map(|&l| (l - max).exp() as f64).sum();
        let log_sum = sum_exp.ln() as f32;
        let (scale, min_log_prob, q) = refs.row(ref_row);

        let nll = max + log_sum - logits[tok];
        self.sum_nll += nll as f64;
        self.sum_nll2 += (nll * nll) as f64;
        let nll_base = -(scale * q[tok] as f32 + min_log_prob);
        self.sum_nll_base += nll_base as f64;
        self.sum_nll_base2 += (nll_base * nll_base) as f64;
        self.sum_nll_nll_base += (nll * nll_base) as f64;

        let log_norm = max + log_sum;
        let mut kld = 0f64;
        let mut imax_base = 0;
        let mut max_base = 0f32;
        for i in 0..n_vocab {
            let lp_base = scale * q[i] as f32 + min_log_prob;
            if i == 0 || lp_base > max_base {
                max_base = lp_base;
                imax_base = i;
            }
            if lp_base > -16.0 {
                let p_base = lp_base.exp();
                kld += (p_base * (lp_base - logits[i] + log_norm)) as f64;
            }
        }
        self.sum_kld += kld;
        self.sum_kld2 += kld * kld;
        self.count += 1;
        if imax == imax_base {
            self.n_same_top += 1;
        }
        let p_diff = (-nll).exp() - (-nll_base).exp();
        self.sum_p_diff += p_diff as f64;
        let p_diff2 = (p_diff * p_diff) as f64;
        self.sum_p_diff2 += p_diff2;
        self.sum_p_diff4 += p_diff2 * p_diff2;
        self.max_p_diff = self.max_p_diff.max(p_diff.abs());
        self.kld_values.push(kld as f32);
        self.p_diff_values.push(p_diff);
    }

    /// Number of compared positions.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The final statistics (`None` before any position was compared).
    pub fn summary(&self) -> Option<KldSummary> {
        if self.count == 0 {
            return None;
        }
        let n = self.count;
        let (lp, lp_err) = mean_and_uncertainty(self.sum_nll, self.sum_nll2, n);
        let (ppl, ppl_err) = (lp.exp(), lp.exp() * lp_err);
        let (lb, lb_err) = mean_and_uncertainty(self.sum_nll_base, self.sum_nll_base2, n);
        let (ppl_base, ppl_base_err) = (lb.exp(), lb.exp() * lb_err);
        let cov = covariance(self.sum_nll, self.sum_nll_base, self.sum_nll_nll_base, n);
        let ln_ratio = lp - lb;
        let ln_ratio_err = (lp_err * lp_err + lb_err * lb_err - 2.0 * cov).max(0.0).sqrt();
        let ppl_cov = ppl * ppl_base * cov;
        let delta_ppl = ppl - ppl_base;
        let delta_ppl_err = (ppl_err * ppl_err + ppl_base_err * ppl_base_err - 2.0 * ppl_cov).max(0.0).sqrt();
        let (kld_mean, kld_mean_err) = mean_and_uncertainty(self.sum_kld, self.sum_kld2, n);
        let mut sorted = self.kld_values.clone();
        sorted.sort_by(f32::total_cmp);
        let median = if sorted.len().is_multiple_of(2) {
            0.5 * (sorted[sorted.len() / 2] + sorted[sorted.len() / 2 - 1])
        } else {
            sorted[sorted.len() / 2]
        };
        let (mse, mse_err) = mean_and_uncertainty(self.sum_p_diff2, self.sum_p_diff4, n);
        let rms = mse.sqrt();
        let rms_err = if rms > 0.0 { 0.5 / rms * mse_err } else { 0.0 };
        let same = self.n_same_top as f64 / n as f64;
        let same_err = if n > 1 { (same * (1.0 - same) / (n - 1) as f64).sqrt() } else { 0.0 };
        Some(KldSummary {
            count: n,
            ppl,
            ppl_err,
            ppl_base,
            ppl_base_err,
            ln_ppl_ratio: ln_ratio,
            ln_ppl_ratio_err: ln_ratio_err,
            delta_ppl,
            delta_ppl_err,
            kld_mean,
            kld_mean_err,
            kld_median: median as f64,
            kld_p99: percentile(&sorted, 0.99) as f64,
            kld_max: sorted[sorted.len() - 1] as f64,
            same_top_p: same,
            same_top_p_err: same_err,
            rms_dp: rms,
            rms_dp_err: rms_err,
            max_dp: self.max_p_diff as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.731 + seed as f32 * 1.37).sin() * 4.0).collect()
    }

    #[test]
    fn identical_logits_have_near_zero_divergence() {
        let n = 300;
        let mut refs = RefLogProbs::new(n);
        let mut k = Kld::default();
        for r in 0..50 {
            let l = logits(n, r);
            refs.push(&l);
            k.add(&l, (r as usize * 7) % n, &refs, r as usize);
        }
        let s = k.summary().unwrap();
        assert!(s.kld_mean.abs() < 1e-4, "{s:?}");
        // The 16-bit reference can tie the top two tokens; rarely.
        assert!(s.same_top_p >= 0.9, "{s:?}");
        assert!(s.rms_dp < 1e-3);
        assert!((s.ppl / s.ppl_base - 1.0).abs() < 1e-3);
    }

    #[test]
    fn different_logits_have_positive_divergence() {
        let n = 300;
        let mut refs = RefLogProbs::new(n);
        let mut k = Kld::default();
        for r in 0..50 {
            refs.push(&logits(n, r));
            k.add(&logits(n, r + 1000), 3, &refs, r as usize);
        }
        let s = k.summary().unwrap();
        assert!(s.kld_mean > 0.1, "{s:?}");
        assert!(s.kld_p99 >= s.kld_median);
        assert!(s.same_top_p < 0.5);
    }

    #[test]
    fn write_read_round_trip() {
        let n = 40;
        let mut refs = RefLogProbs::new(n);
        for r in 0..3 {
            refs.push(&logits(n, r));
        }
        let mut bytes = Vec::new();
        refs.write_to(&mut bytes).unwrap();
        assert_eq!(bytes.len(), refs.byte_len());
        let back = RefLogProbs::read_from(&mut bytes.as_slice(), n, 3).unwrap();
        assert_eq!(back.rows, refs.rows);
        assert_eq!(back.q, refs.q);
        assert!(RefLogProbs::read_from(&mut &bytes[..bytes.len() - 1], n, 3).is_err());
    }

    #[test]
    fn percentile_interpolates() {
        let v = [0.0f32, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.0);
        assert_eq!(percentile(&v, 0.99), 3.96);
        assert_eq!(percentile(&v, 1.0), 4.0);
    }
}
