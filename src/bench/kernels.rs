//! Kernel benchmarks: per type, quantize / dequantize / vec_dot throughput
//! on one thread next to a memcpy baseline measured in the same run, and the
//! GFLOP/s of a full (multi-threaded) matmul.
//!
//! Each measurement runs once to warm up, then repeats until both a minimum
//! number of repetitions and a minimum total time are reached; the median
//! repetition is reported (or the fastest, with [`Stat::Best`], which is
//! steadier on a machine shared with other work).

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::gguf::GgmlType;
use crate::quant::matmul::{matmul_quantized, Activations, Weights};
use crate::quant::simd::Isa;
use crate::quant::{self, vec_dot_type, vec_dot_with, QuantError, VEC_DOT_TYPES};
use crate::report::Table;

/// Which repetition a measurement reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    /// The median repetition.
    #[default]
    Median,
    /// The fastest repetition.
    Best,
}

/// How long and how often to repeat a measurement.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Minimum time spent per measurement, after warm-up.
    pub min_time: Duration,
    /// Minimum repetitions per measurement.
    pub min_reps: usize,
    pub stat: Stat,
}

impl Timing {
    /// Seconds per call of `f` (after one warm-up call).
    pub fn measure(&self, mut f: impl FnMut()) -> f64 {
        f();
        let mut times = Vec::new();
        let start = Instant::now();
        while times.len() < self.min_reps.max(1) || (start.elapsed() < self.min_time && times.len() < 100_000) {
            let t = Instant::now();
            f();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        match self.stat {
            Stat::Median => times[times.len() / 2],
            Stat::Best => times[0],
        }
    }

    /// The same with a fraction of the time budget.
    fn scaled(&self, frac: f64, max_reps: usize) -> Timing {
        Timing { min_time: self.min_time.mul_f64(frac), min_reps: self.min_reps.min(max_reps), stat: self.stat }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing { min_time: Duration::from_millis(300), min_reps: 5, stat: Stat::Median }
    }
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct KernelOptions {
    /// Weight types (default: every type with a dot product).
    pub types: Vec<GgmlType>,
    /// Values per dequantize / vec_dot pass (rounded down to a multiple of
    /// 4096, at least 4096).
    pub n_values: usize,
    pub timing: Timing,
}

impl Default for KernelOptions {
    fn default() -> Self {
        KernelOptions { types: VEC_DOT_TYPES.to_vec(), n_values: 1 << 20, timing: Timing::default() }
    }
}

/// Throughputs of one type (single thread). GB/s and MB/s are 10⁹ and 10⁶
/// bytes per second.
#[derive(Clone, Debug, Serialize)]
pub struct KernelRow {
    #[serde(rename = "type")]
    pub ty: GgmlType,
    pub bits_per_weight: f64,
    /// f32 input consumed per second by the reference quantizer (no
    /// imatrix); `None` for the types ggml quantizes only with one.
    pub quantize_mb_s: Option<f64>,
    /// The same with an importance vector ([`importance`]): the path
    /// `quantize --imatrix` and the sensitivity measurement take.
    pub quantize_imatrix_mb_s: f64,
    /// f32 output written per second by `dequantize_row`.
    pub dequantize_gb_s_f32: f64,
    /// Weight bytes read per second by `dequantize_row`.
    pub dequantize_gb_s_weights: f64,
    /// `dequantize_gb_s_f32` relative to the memcpy baseline.
    pub dequantize_vs_memcpy: f64,
    /// Weight bytes per second through `vec_dot` on the fastest path (the
    /// AVX-512 VNNI kernel where the type has one).
    pub vec_dot_gb_s: f64,
    /// Weight bytes per second through the scalar `vec_dot`.
    pub vec_dot_scalar_gb_s: f64,
}

/// The result of [`run_kernels`].
#[derive(Clone, Debug, Serialize)]
pub struct KernelReport {
    /// The SIMD level the dispatching kernels used.
    pub isa: &'static str,
    /// Which repetition the numbers come from.
    pub stat: Stat,
    pub n_values: usize,
    /// Bytes copied per second by `copy_from_slice` of `n_values` f32.
    pub memcpy_gb_s: f64,
    pub rows: Vec<KernelRow>,
}

/// Deterministic test signal: a mix of a smooth and a noisy component, so
/// that the scale searches see realistic blocks.
pub fn signal(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            u * 0.2 + 0.05 * ((i as f32) * 0.01).sin()
        })
        .collect()
}

/// Deterministic importance vector of the quantize-with-imatrix timing:
/// `0.1 + 0.3 · (i mod 7)`.
pub fn importance(n: usize) -> Vec<f32> {
    (0..n).map(|i| 0.1 + 0.3 * (i % 7) as f32).collect()
}

/// Run the per-type kernel benchmark.
pub fn run_kernels(opts: &KernelOptions) -> Result<KernelReport, QuantError> {
    let n = opts.n_values.max(4096) / 4096 * 4096;
    let row_len = 4096;
    let x = signal(1, n);
    let mut copy = vec![0f32; n];
    let tm = opts.timing;
    let t_copy = tm.measure(|| {
        copy.copy_from_slice(black_box(&x));
        black_box(&mut copy);
    });
    let memcpy_gb_s = (n * 4) as f64 / t_copy / 1e9;
    let mut rows = Vec::new();
    for &ty in &opts.types {
        let aty = vec_dot_type(ty).ok_or(QuantError::Unsupported { ty, op: "vec_dot" })?;
        let row_bytes = ty.row_bytes(row_len as u64).ok_or(QuantError::RowNotBlockMultiple {
            ty,
            n: row_len,
            block: ty.block_size(),
        })? as usize;
        let nrows = n / row_len;
        let mut w = vec![0u8; nrows * row_bytes];
        // Quantize: one thread, row by row (a slice of the data is enough
        // for the slow searches).
        let q_rows = if ty.is_k_quant() { nrows.min(16) } else { nrows.min(64) };
        let qw = importance(row_len);
        let mut quantize_pass = |imatrix: Option<&[f32]>| {
            tm.scaled(1.0, 3).measure(|| {
                for r in 0..q_rows {
                    quant::quantize_row(
                        ty,
                        &x[r * row_len..(r + 1) * row_len],
                        &mut w[r * row_bytes..(r + 1) * row_bytes],
                        imatrix,
                    )
                    .expect("valid row");
                }
            })
        };
        let t_qi = quantize_pass(Some(&qw));
        let t_q = (!quant::caps(ty).requires_imatrix).then(|| quantize_pass(None));
        for r in q_rows..nrows {
            let src = r % q_rows;
            w.copy_within(src * row_bytes..(src + 1) * row_bytes, r * row_bytes);
        }
        let quantize_mb_s = t_q.map(|t| (q_rows * row_len * 4) as f64 / t / 1e6);
        let quantize_imatrix_mb_s = (q_rows * row_len * 4) as f64 / t_qi / 1e6;
        // Dequantize the whole tensor into the f32 buffer.
        let t_dq = tm.measure(|| {
            quant::dequantize_row(ty, black_box(&w), &mut copy).expect("valid tensor");
            black_box(&mut copy);
        });
        // vec_dot of every row with one activation row.
        let mut acts = Activations::new();
        acts.quantize(aty, &x[..row_len], row_len)?;
        let a = acts.bytes();
        // `None`: the fastest path, as the matmul takes it (AVX-512 VNNI
        // where the type has a kernel for it, else AVX2).
        let dot_pass = |isa: Option<Isa>| -> f64 {
            tm.measure(|| {
                let mut s = 0.0f32;
                for r in 0..nrows {
                    let wr = &w[r * row_bytes..(r + 1) * row_bytes];
                    s += match isa {
                        Some(isa) => vec_dot_with(isa, ty, row_len, wr, a),
                        None => quant::vec_dot(ty, row_len, wr, a),
                    }
                    .expect("valid");
                }
                black_box(s);
            })
        };
        let t_dot = dot_pass(None);
        let t_dot_scalar = dot_pass(Some(Isa::Scalar));
        let dq_f32 = (n * 4) as f64 / t_dq / 1e9;
        rows.push(KernelRow {
            ty,
            bits_per_weight: ty.bits_per_weight(),
            quantize_mb_s,
            quantize_imatrix_mb_s,
            dequantize_gb_s_f32: dq_f32,
            dequantize_gb_s_weights: w.len() as f64 / t_dq / 1e9,
            dequantize_vs_memcpy: dq_f32 / memcpy_gb_s,
            vec_dot_gb_s: w.len() as f64 / t_dot / 1e9,
            vec_dot_scalar_gb_s: w.len() as f64 / t_dot_scalar / 1e9,
        });
    }
    Ok(KernelReport { isa: Isa::best().name(), stat: tm.stat, n_values: n, memcpy_gb_s, rows })
}

impl KernelReport {
    /// A plain-text table.
    pub fn table(&self) -> String {
        let stat = match self.stat {
            Stat::Median => "median",
            Stat::Best => "best",
        };
        let mut t = Table::new(&[
            "type",
            "bpw",
            "quantize MB/s",
            "with imatrix",
            "dequant GB/s",
            "(weights GB/s)",
            "vs memcpy",
            "vec_dot GB/s",
            "scalar GB/s",
        ])
        .left(0);
        for r in &self.rows {
            t.row(vec![
                r.ty.name().to_string(),
                format!("{:.3}", r.bits_per_weight),
                r.quantize_mb_s.map_or("—".to_string(), |v| format!("{v:.1}")),
                format!("{:.1}", r.quantize_imatrix_mb_s),
                format!("{:.2}", r.dequantize_gb_s_f32),
                format!("{:.2}", r.dequantize_gb_s_weights),
                format!("{:.0}%", 100.0 * r.dequantize_vs_memcpy),
                format!("{:.2}", r.vec_dot_gb_s),
                format!("{:.2}", r.vec_dot_scalar_gb_s),
            ]);
        }
        format!(
            "kernels on 1 thread, {} values per pass, SIMD {}, {stat} of repetitions; memcpy {:.2} GB/s\n{}",
            self.n_values,
            self.isa,
            self.memcpy_gb_s,
            t.render()
        )
    }
}

/// A matmul to time.
#[derive(Clone, Debug)]
pub struct MatmulOptions {
    pub types: Vec<GgmlType>,
    /// Output features (weight rows).
    pub rows: usize,
    /// Input features (values per weight row).
    pub row_len: usize,
    pub n_tokens: usize,
    pub timing: Timing,
}

impl Default for MatmulOptions {
    fn default() -> Self {
        MatmulOptions {
            types: vec![GgmlType::Q8_0, GgmlType::Q4_K],
            rows: 576,
            row_len: 1536,
            n_tokens: 512,
            timing: Timing { min_time: Duration::from_millis(500), ..Timing::default() },
        }
    }
}

/// Timing of one matmul shape and type, on all rayon threads.
#[derive(Clone, Debug, Serialize)]
pub struct MatmulRow {
    #[serde(rename = "type")]
    pub ty: GgmlType,
    pub rows: usize,
    pub row_len: usize,
    pub n_tokens: usize,
    pub threads: usize,
    /// Median milliseconds of activation quantization + products.
    pub ms: f64,
    /// `2·rows·row_len·n_tokens` per second, in 10⁹.
    pub gflop_s: f64,
    /// Milliseconds of the activation quantization alone.
    pub quantize_ms: f64,
    /// Milliseconds of one token (matvec, activation quantization included).
    pub matvec_ms: f64,
    /// Weight bytes per second of the matvec.
    pub matvec_gb_s: f64,
}

/// Time `matmul` (activations quantized inside the timed region) per type.
pub fn run_matmul(opts: &MatmulOptions) -> Result<Vec<MatmulRow>, QuantError> {
    let mut out_rows = Vec::new();
    for &ty in &opts.types {
        let aty = vec_dot_type(ty).ok_or(QuantError::Unsupported { ty, op: "matmul" })?;
        let row_bytes = ty.row_bytes(opts.row_len as u64).ok_or(QuantError::RowNotBlockMultiple {
            ty,
            n: opts.row_len,
            block: ty.block_size(),
        })? as usize;
        let wf = signal(2, opts.rows * opts.row_len);
        let mut wq = vec![0u8; opts.rows * row_bytes];
        let qw = importance(opts.row_len);
        let imatrix = quant::caps(ty).requires_imatrix.then_some(&qw[..]);
        quant::quantize_rows(ty, &wf, opts.row_len, imatrix, &mut wq)?;
        let w = Weights::new(ty, opts.rows, opts.row_len, &wq)?;
        let x = signal(3, opts.n_tokens * opts.row_len);
        let mut out = vec![0f32; opts.n_tokens * opts.rows];
        let mut acts = Activations::new();
        let tm = opts.timing;
        let t = tm.measure(|| {
            acts.quantize(aty, &x, opts.row_len).expect("valid shape");
            matmul_quantized(&w, &acts, &mut out).expect("valid shape");
            black_box(&mut out);
        });
        let tq = tm.scaled(0.25, usize::MAX).measure(|| {
            acts.quantize(aty, &x, opts.row_len).expect("valid shape");
        });
        let mut out1 = vec![0f32; opts.rows];
        let mut acts1 = Activations::new();
        let tv = tm.scaled(0.25, usize::MAX).measure(|| {
            acts1.quantize(aty, &x[..opts.row_len], opts.row_len).expect("valid shape");
            matmul_quantized(&w, &acts1, &mut out1).expect("valid shape");
            black_box(&mut out1);
        });
        out_rows.push(MatmulRow {
            ty,
            rows: opts.rows,
            row_len: opts.row_len,
            n_tokens: opts.n_tokens,
            threads: rayon::current_num_threads(),
            ms: t * 1e3,
            gflop_s: 2.0 * (opts.rows * opts.row_len * opts.n_tokens) as f64 / t / 1e9,
            quantize_ms: tq * 1e3,
            matvec_ms: tv * 1e3,
            matvec_gb_s: wq.len() as f64 / tv / 1e9,
        });
    }
    Ok(out_rows)
}

/// A plain-text table of matmul timings.
pub fn matmul_table(rows: &[MatmulRow]) -> String {
    let mut t = Table::new(&[
        "type",
        "weight",
        "tokens",
        "threads",
        "ms",
        "GFLOP/s",
        "act quant ms",
        "matvec ms",
        "matvec GB/s",
    ])
    .left(0);
    for r in rows {
        t.row(vec![
            r.ty.name().to_string(),
            format!("{}x{}", r.rows, r.row_len),
            r.n_tokens.to_string(),
            r.threads.to_string(),
            format!("{:.2}", r.ms),
            format!("{:.1}", r.gflop_s),
            format!("{:.3}", r.quantize_ms),
            format!("{:.3}", r.matvec_ms),
            format!("{:.2}", r.matvec_gb_s),
        ]);
    }
    t.render()
}
