//! Perplexity as `llama-perplexity` accumulates it.

use super::mean_and_uncertainty;

/// Running sums of the negative log-likelihood of scored tokens.
#[derive(Clone, Debug, Default)]
pub struct Perplexity {
    pub nll: f64,
    pub nll2: f64,
    pub count: usize,
}

/// `ln p(tok)` from one row of logits: max in f32, Σ exp in f64.
pub fn log_softmax(logits: &[f32], tok: usize) -> f64 {
    let max = logits.iter().copied().fold(logits[0], f32::max);
    let sum: f64 = logits.iter().map(|&l| (l - max).exp() as f64).sum();
    (logits[tok] - max) as f64 - sum.ln()
}

impl Perplexity {
    /// Score a chunk: `logits` holds rows for positions `first..n_ctx`, row
    /// `i` predicting `chunk[first + i + 1]`; the last row predicts nothing.
    pub fn add_chunk(&mut self, chunk: &[u32], first: usize, logits: &[f32], n_vocab: usize) {
        let n_scored = chunk.len() - 1 - first;
        for i in 0..n_scored {
            let row = &logits[i * n_vocab..(i + 1) * n_vocab];
            let v = -log_softmax(row, chunk[first + i + 1] as usize);
            self.nll += v;
            self.nll2 += v * v;
        }
        self.count += n_scored;
    }

    /// `exp(mean NLL)`.
    pub fn ppl(&self) -> f64 {
        (self.nll / self.count.max(1) as f64).exp()
    }

    /// PPL and its ± as llama-perplexity's final estimate prints them.
    pub fn ppl_with_error(&self) -> (f64, f64) {
        let n = self.count.max(1) as f64;
        let mean = self.nll / n;
        let ppl = mean.exp();
        let var = self.nll2 / n - mean * mean;
        let err = if var > 0.0 && self.count > 1 { (var / (n - 1.0)).sqrt() * ppl } else { 0.0 };
        (ppl, err)
    }

    /// Mean NLL and its standard error (llama.cpp's `mean_and_uncertainty`).
    pub fn log_ppl(&self) -> (f64, f64) {
        mean_and_uncertainty(self.nll, self.nll2, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_give_vocab_size() {
        let n_vocab = 10;
        let chunk: Vec<u32> = (0..8).map(|i| i % 10).collect();
        let first = 4;
        let logits = vec![0.5f32; (chunk.len() - first) * n_vocab];
        let mut p = Perplexity::default();
        p.add_chunk(&chunk, first, &logits, n_vocab);
        assert_eq!(p.count, 3);
        assert!((p.ppl() - 10.0).abs() < 1e-9);
        assert_eq!(p.ppl_with_error().1, 0.0);
    }

    #[test]
    fn confident_correct_predictions_give_ppl_near_one() {
        let n_vocab = 5;
        let chunk = [1u32, 2, 3, 4, 0, 1];
        let first = 2;
        let mut logits = vec![0f32; (chunk.len() - first) * n_vocab];
        for i in 0..chunk.len() - 1 - first {
            logits[i * n_vocab + chunk[first + i + 1] as usize] = 30.0;
        }
        let mut p = Perplexity::default();
        p.add_chunk(&chunk, first, &logits, n_vocab);
        assert!(p.ppl() > 1.0 && p.ppl() < 1.0 + 1e-9);
    }
}
