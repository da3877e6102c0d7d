//! `quant::matmul`: every output is exactly the dot product of its weight row
//! with its quantized activation row, independent of the thread count, close
//! to the f32 product, and the activation quantizers and dot products agree
//! with ggml's CPU backend (through ctypes, when the Python venv is there).

mod common;

use quantmix::gguf::GgmlType;
use quantmix::quant::matmul::{matmul, matmul_quantized, matvec, Activations, Weights};
use quantmix::quant::{self, vec_dot_type, VEC_DOT_TYPES};

fn data(seed: u64, n: usize) -> Vec<f32> {
    common::uniform01(seed, n).map(|u| (u - 0.5) * 4.0).collect()
}

fn quantized(ty: GgmlType, x: &[f32], row_len: usize) -> Vec<u8> {
    let rows = x.len() / row_len;
    let mut q = vec![0u8; rows * ty.row_bytes(row_len as u64).unwrap() as usize];
    // The types ggml makes only with an importance vector get a flat one.
    let ones = vec![1.0; row_len];
    let imatrix = quant::caps(ty).requires_imatrix.then_some(&ones[..]);
    quant::quantize_rows(ty, x, row_len, imatrix, &mut q).unwrap();
    q
}

#[test]
fn every_output_is_the_batch_dot_of_its_rows() {
    let (rows, row_len) = (37, 512);
    for (k, &ty) in VEC_DOT_TYPES.iter().enumerate() {
        let wq = quantized(ty, &data(k as u64, rows * row_len), row_len);
        let w = Weights::new(ty, rows, row_len, &wq).unwrap();
        // 300: more tokens than one tile of the int8 GEMM takes (256).
        for n_tokens in [1, 3, 7, 8, 70, 300] {
            let x = data(100 + k as u64, n_tokens * row_len);
            let mut out = vec![f32::NAN; n_tokens * rows];
            matmul(&w, &x, &mut out).unwrap();
            let aty = vec_dot_type(ty).unwrap();
            let mut acts = Activations::new();
            acts.quantize(aty, &x, row_len).unwrap();
            let (wrb, arb) = (w.row_bytes(), acts.bytes().len() / n_tokens);
            for t in 0..n_tokens {
                for r in 0..rows {
                    let (wr, ar) = (&wq[r * wrb..(r + 1) * wrb], &acts.bytes()[t * arb..(t + 1) * arb]);
                    let want = quant::batch_dot(ty, n_tokens, row_len, wr, ar).unwrap();
                    assert_eq!(out[t * rows + r].to_bits(), want.to_bits(), "{ty}: token {t} row {r}");
                    if quant::batch_from(ty).is_none_or(|from| n_tokens < from) {
                        assert_eq!(want, quant::vec_dot(ty, row_len, wr, ar).unwrap(), "{ty}: small batches");
                    }
                }
            }
            if n_tokens == 1 {
                let mut out1 = vec![0f32; rows];
                matvec(&w, &x, &mut out1).unwrap();
                assert_eq!(out1, out, "{ty}: matvec");
            }
        }
    }
}

/// The tile kernels of several tokens (AVX-512 VNNI for the legacy types,
/// IQ4_NL and, through the int8 GEMM, the k-quants, IQ4_XS and the IQ3, IQ2
/// and IQ1 types; AVX-512 for the float types, where the CPU has it; the
/// int8 GEMM's AVX2 twin for the k-quants but Q3_K and the IQ3, IQ2 and IQ1
/// types, on every CPU with AVX2) give every output
/// the batch dot product's bits (the AVX2 dot product's, or for k-quants
/// from 8 tokens on ggml's tiled-GEMM arithmetic), for
/// every tail of rows and tokens, with weights at the ends of their ranges
/// (Q8_0 levels ±127 and −128, which files from elsewhere may hold), and for
/// activations with −128 levels (a block of denormals, whose scale is 0),
/// where ggml's AVX2 sign trick and the exact VNNI product form different
/// integer sums that the zero scale must cancel.
#[test]
fn tile_kernels_equal_the_batch_dot_product_bit_for_bit() {
    if !quant::simd::avx512_vnni_detected() {
        eprintln!("no AVX-512 VNNI on this CPU: the VNNI tile kernels are not run (the dot products are)");
    }
    let types = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::IQ4_NL,
        GgmlType::IQ4_XS,
        GgmlType::IQ3_XXS,
        GgmlType::IQ3_S,
        GgmlType::IQ2_S,
        GgmlType::IQ2_XXS,
        GgmlType::IQ2_XS,
        GgmlType::IQ1_S,
        GgmlType::IQ1_M,
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
    ];
    for ty in types {
        // IQ4_NL with an odd block count (its kernels pair blocks), the
        // float types with a tail after their 32-value chunks.
        let row_len = match ty {
            GgmlType::IQ4_NL => 544,
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 523,
            _ => 512,
        };
        for rows in 1..=9 {
            let mut wq = quantized(ty, &data(rows as u64, rows * row_len), row_len);
            if ty == GgmlType::Q8_0 {
                // Extreme levels in the first row: -128, -127, 127.
                for (i, v) in wq[2..34].iter_mut().enumerate() {
                    *v = [0x80, 0x81, 0x7F][i % 3];
                }
            }
            // A k-quant's or IQ4 type's last row: random scales, minimums
            // and levels (every range end), its f16 scales 1.0 / 0.5.
            let f16_at: &[usize] = match ty {
                GgmlType::Q2_K => &[80, 82],
                GgmlType::Q3_K => &[108],
                GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
                GgmlType::Q6_K => &[208],
                GgmlType::IQ4_NL
                | GgmlType::IQ4_XS
                | GgmlType::IQ3_XXS
                | GgmlType::IQ3_S
                | GgmlType::IQ2_S
                | GgmlType::IQ2_XXS
                | GgmlType::IQ2_XS
                | GgmlType::IQ1_S => &[0],
                _ => &[],
            };
            if !f16_at.is_empty() {
                let rb = wq.len() / rows;
                let last = &mut wq[(rows - 1) * rb..];
                let noise: Vec<u8> =
                    common::uniform01(77 + rows as u64, last.len()).map(|u| (u * 256.0) as u8).collect();
                last.copy_from_slice(&noise);
                for blk in last.chunks_exact_mut(ty.type_size()) {
                    for (k, &o) in f16_at.iter().enumerate() {
                        blk[o..o + 2].copy_from_slice(&[[0x00, 0x3C], [0x00, 0x38]][k]);
                    }
                }
            }
            let w = Weights::new(ty, rows, row_len, &wq).unwrap();
            for n_tokens in [2, 3, 4, 5, 7, 8, 9, 13, 33, 70] {
                let mut x = data(1000 + rows as u64 * 10 + n_tokens as u64, n_tokens * row_len);
                if n_tokens == 9 {
                    // Token 0: the largest activation level almost everywhere.
                    // A Q8_K super-block maps its first value of largest
                    // magnitude to −127, so one −1 and 255 values +1 give
                    // +127 (255 biased), which with the largest weight levels
                    // reaches the bound of the AVX2 kernel's 16-bit sums.
                    for (i, v) in x[..row_len].iter_mut().enumerate() {
                        *v = if i % 256 == 0 { -1.0 } else { 1.0 };
                    }
                }
                if n_tokens == 7 {
                    // Token 1, block 2: denormals, whose Q8_0 levels overflow
                    // to ±inf and become -128 / 127.
                    for (i, v) in x[row_len + 64..row_len + 96].iter_mut().enumerate() {
                        *v = if i % 2 == 0 { -1e-40 } else { 3e-41 };
                    }
                }
                let mut out = vec![f32::NAN; n_tokens * rows];
                matmul(&w, &x, &mut out).unwrap();
                // The AVX2 tile kernels too, where the CPU would run faster ones.
                let mut out_avx2 = vec![f32::NAN; n_tokens * rows];
                let avx2 = quant::matmul::matmul_avx2_tiles(&w, &x, &mut out_avx2).unwrap();
                let aty = vec_dot_type(ty).unwrap();
                let mut acts = Activations::new();
                acts.quantize(aty, &x, row_len).unwrap();
                let (wrb, arb) = (w.row_bytes(), acts.bytes().len() / n_tokens);
                if n_tokens == 7 && aty == GgmlType::Q8_0 {
                    // Token 1, block 2 (34-byte blocks): scale 0, levels -128 and 127.
                    let blk = &acts.bytes()[arb + 2 * 34..arb + 3 * 34];
                    assert_eq!(&blk[..2], &[0, 0], "{ty}: the denormal block's scale is 0");
                    assert!(blk[2..].contains(&0x80), "{ty}: the denormal block holds -128");
                }
                for t in 0..n_tokens {
                    for r in 0..rows {
                        let a = &acts.bytes()[t * arb..(t + 1) * arb];
                        let want = quant::batch_dot(ty, n_tokens, row_len, &wq[r * wrb..(r + 1) * wrb], a).unwrap();
                        assert_eq!(
                            out[t * rows + r].to_bits(),
                            want.to_bits(),
                            "{ty}: {rows} rows × {n_tokens} tokens, token {t} row {r}: {} vs {want}",
                            out[t * rows + r]
                        );
                        if avx2 {
                            assert_eq!(
                                out_avx2[t * rows + r].to_bits(),
                                want.to_bits(),
                                "{ty} (AVX2 tiles): {rows} rows × {n_tokens} tokens, token {t} row {r}: {} vs {want}",
                                out_avx2[t * rows + r]
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn result_does_not_depend_on_thread_count() {
    let (rows, row_len, n_tokens) = (300, 256, 150);
    for ty in [GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::F16] {
        let wq = quantized(ty, &data(7, rows * row_len), row_len);
        let w = Weights::new(ty, rows, row_len, &wq).unwrap();
        let x = data(8, n_tokens * row_len);
        let runs: Vec<Vec<f32>> = [1, 2, 3, 5]
            .iter()
            .map(|&threads| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut out = vec![0f32; n_tokens * rows];
                pool.install(|| matmul(&w, &x, &mut out)).unwrap();
                out
            })
            .collect();
        for r in &runs[1..] {
            assert!(r.iter().zip(&runs[0]).all(|(a, b)| a.to_bits() == b.to_bits()), "{ty}");
        }
    }
}

#[test]
fn matmul_approximates_the_f32_product() {
    let (rows, row_len, n_tokens) = (16, 1024, 4);
    for (k, &ty) in VEC_DOT_TYPES.iter().enumerate() {
        let wq = quantized(ty, &data(50 + k as u64, rows * row_len), row_len);
        let mut wd = vec![0f32; rows * row_len];
        quant::dequantize_rows(ty, &wq, row_len, &mut wd).unwrap();
        let x = data(60 + k as u64, n_tokens * row_len);
        let mut out = vec![0f32; n_tokens * rows];
        matmul(&Weights::new(ty, rows, row_len, &wq).unwrap(), &x, &mut out).unwrap();
        for t in 0..n_tokens {
            let xt = &x[t * row_len..(t + 1) * row_len];
            for r in 0..rows {
                let wr = &wd[r * row_len..(r + 1) * row_len];
                let want: f64 = wr.iter().zip(xt).map(|(&a, &b)| a as f64 * b as f64).sum();
                let norm = (wr.iter().map(|&v| (v as f64).powi(2)).sum::<f64>()
                    * xt.iter().map(|&v| (v as f64).powi(2)).sum::<f64>())
                .sqrt();
                let got = out[t * rows + r] as f64;
                assert!((got - want).abs() <= 0.01 * norm, "{ty} t{t} r{r}: {got} vs {want} (norm {norm})");
            }
        }
    }
}

#[test]
fn shapes_are_checked() {
    let wq = vec![0u8; 2 * 34];
    assert!(Weights::new(GgmlType::Q8_0, 2, 32, &wq).is_ok());
    assert!(Weights::new(GgmlType::Q8_0, 2, 32, &wq[..67]).is_err());
    assert!(Weights::new(GgmlType::Q8_0, 2, 33, &wq).is_err());
    assert!(Weights::new(GgmlType::NVFP4, 1, 256, &[0; 144]).is_err());
    let w = Weights::new(GgmlType::Q8_0, 2, 32, &wq).unwrap();
    let mut out = vec![0f32; 2];
    assert!(matmul(&w, &[0.0; 31], &mut out).is_err());
    assert!(matmul(&w, &[0.0; 64], &mut out).is_err());
    assert!(matvec(&w, &[0.0; 64], &mut [0f32; 4]).is_err());
    let mut acts = Activations::new();
    acts.quantize(GgmlType::Q8_1, &[0.0; 32], 32).unwrap();
    assert!(matmul_quantized(&w, &acts, &mut out).is_err(), "Q8_1 activations for Q8_0 weights");
    assert!(acts.quantize(GgmlType::Q4_0, &[0.0; 32], 32).is_err());
}

use common::ggml_cpu;

#[test]
fn activations_and_dot_products_agree_with_ggml_cpu() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let row_len = 512;
    // Rows with zeros and exact ties as well as random values.
    let mut x = data(99, 6 * row_len);
    x[..32].fill(0.0);
    for (i, v) in x[row_len..2 * row_len].iter_mut().enumerate() {
        *v = (i % 255) as f32 - 127.0 + if i % 3 == 0 { 0.5 } else { 0.0 };
    }
    std::fs::write(path("x.f32"), bytemuck::cast_slice::<f32, u8>(&x)).unwrap();
    let act_types = [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K, GgmlType::F16, GgmlType::BF16];
    let mut jobs = Vec::new();
    let mut ours = Vec::new();
    for aty in act_types {
        let mut acts = Activations::new();
        acts.quantize(aty, &x, row_len).unwrap();
        ours.push(acts.bytes().to_vec());
        jobs.push(format!(
            "from_float {} {row_len} {} {}",
            aty.id(),
            path("x.f32"),
            path(&format!("x.{}", aty.name()))
        ));
    }
    // Dot products: 6 rows of 4096 values per type (16 super-blocks, so
    // every accumulation order shows), with and without a common offset.
    let dot_len = 4096;
    let mut dots = Vec::new();
    for (k, &ty) in VEC_DOT_TYPES.iter().enumerate() {
        for row in 0..6u64 {
            let shift = if row % 2 == 1 { 0.7 } else { 0.0 };
            let w: Vec<f32> = data(200 + 10 * k as u64 + row, dot_len).iter().map(|v| v + shift).collect();
            let wq = quantized(ty, &w, dot_len);
            let aty = vec_dot_type(ty).unwrap();
            let mut acts = Activations::new();
            acts.quantize(aty, &data(300 + 10 * k as u64 + row, dot_len), dot_len).unwrap();
            let (wf, af) = (path(&format!("w{k}-{row}")), path(&format!("a{k}-{row}")));
            std::fs::write(&wf, &wq).unwrap();
            std::fs::write(&af, acts.bytes()).unwrap();
            jobs.push(format!("vec_dot {} {dot_len} {wf} {af}", ty.id()));
            let got = quant::vec_dot(ty, dot_len, &wq, acts.bytes()).unwrap();
            dots.push((ty, row, got));
        }
    }
    let answers = ggml_cpu(&py, &jobs);
    for (i, aty) in act_types.into_iter().enumerate() {
        let theirs = std::fs::read(path(&format!("x.{}", aty.name()))).unwrap();
        assert_eq!(theirs.len(), ours[i].len(), "{aty}");
        let bad = theirs.iter().zip(&ours[i]).position(|(a, b)| a != b);
        assert!(bad.is_none(), "{aty}: first differing byte {bad:?}");
    }
    // The quantized types bit for bit, as the forward pass needs to equal
    // llama.cpp's (ggml's float dot products sum long rows in another order,
    // which quantmix does not copy: llama.cpp's prompt products of F16/BF16/F32
    // weights go through its tinyBLAS GEMM anyway; they are checked within
    // rounding in tests/vec_dot.rs).
    for ((ty, row, got), answer) in dots.into_iter().zip(&answers[act_types.len()..]) {
        if matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
            continue;
        }
        let theirs: f32 = answer.trim().parse().unwrap();
        assert_eq!(got.to_bits(), theirs.to_bits(), "{ty} row {row}: ours {got} vs ggml {theirs}");
    }
}

/// Whole products against ggml's own `mul_mat` (`tests/tools/ggml_mul_mat.py`:
/// a one-op graph computed by llama-cpp-python's CPU backend, built for
/// AVX2): every output bit for bit, for every weight type with a dot product
/// of its own and batches on both sides of ggml's switch to its tiled GEMM
/// for k-quants (8 tokens), ragged rows and tokens included.
#[test]
fn products_equal_ggml_mul_mat_bit_for_bit() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let types = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::IQ4_NL,
        GgmlType::IQ4_XS,
        GgmlType::Q1_0,
        GgmlType::Q2_0,
        GgmlType::TQ1_0,
        GgmlType::TQ2_0,
        GgmlType::MXFP4,
        GgmlType::IQ3_XXS,
        GgmlType::IQ3_S,
        GgmlType::IQ2_S,
        GgmlType::IQ2_XXS,
        GgmlType::IQ2_XS,
        GgmlType::IQ1_S,
        GgmlType::IQ1_M,
    ];
    let (rows, row_len) = (37, 1024);
    for (k, ty) in types.into_iter().enumerate() {
        // Weights with an offset (minimum terms matter) and activations of
        // mixed magnitudes.
        let w: Vec<f32> = data(500 + k as u64, rows * row_len).iter().map(|v| v * 0.8 + 0.3).collect();
        let wq = quantized(ty, &w, row_len);
        let wt = Weights::new(ty, rows, row_len, &wq).unwrap();
        std::fs::write(path("w.bin"), &wq).unwrap();
        for n_tokens in [1, 5, 7, 8, 9, 33, 300] {
            let x: Vec<f32> = data(600 + 10 * k as u64 + n_tokens as u64, n_tokens * row_len)
                .iter()
                .enumerate()
                .map(|(i, v)| v * if i % 97 == 0 { 20.0 } else { 2.0 })
                .collect();
            std::fs::write(path("x.bin"), bytemuck::cast_slice::<f32, u8>(&x)).unwrap();
            let o = std::process::Command::new(&py)
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/ggml_mul_mat.py"))
                .args([ty.id().to_string(), rows.to_string(), row_len.to_string(), n_tokens.to_string()])
                .args([path("w.bin"), path("x.bin"), path("y.bin")])
                .output()
                .unwrap();
            assert!(o.status.success(), "ggml_mul_mat.py: {}", String::from_utf8_lossy(&o.stderr));
            let theirs = std::fs::read(path("y.bin")).unwrap();
            let theirs: &[f32] = bytemuck::cast_slice(&theirs);
            let mut ours = vec![f32::NAN; n_tokens * rows];
            matmul(&wt, &x, &mut ours).unwrap();
            for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{ty}, {n_tokens} tokens, output {i}: ours {a} vs ggml {b}");
            }
        }
    }
}

/// IQ4_NL · Q8_0, IQ4_XS, IQ3_XXS, IQ3_S, the IQ2 types, IQ1_S, IQ1_M · Q8_K, MXFP4 · Q8_0 and the
/// low-bit types on the AVX2 path give exactly the bits of libggml-cpu's
/// AVX2 `vec_dot` on short rows and odd block counts (the IQ4_NL and MXFP4
/// kernels pair blocks and add an odd last one in scalar).
#[test]
fn short_and_odd_dot_products_equal_ggml_cpu_bit_for_bit() {
    let Some(py) = common::python() else { return };
    if !quant::simd::Isa::Avx2.available() {
        eprintln!("no AVX2: the exact comparison with ggml's AVX2 kernels is skipped");
        return;
    }
    let dir = common::tempdir();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let cases = [
        (GgmlType::IQ4_NL, 32),
        (GgmlType::IQ4_NL, 544),
        (GgmlType::IQ4_NL, 576),
        (GgmlType::IQ4_NL, 1536),
        (GgmlType::IQ4_XS, 256),
        (GgmlType::IQ4_XS, 1536),
        (GgmlType::MXFP4, 32),
        (GgmlType::MXFP4, 544),
        (GgmlType::MXFP4, 576),
        (GgmlType::Q1_0, 128),
        (GgmlType::Q1_0, 640),
        (GgmlType::Q2_0, 64),
        (GgmlType::Q2_0, 576),
        (GgmlType::TQ1_0, 256),
        (GgmlType::TQ2_0, 256),
        (GgmlType::TQ2_0, 768),
        (GgmlType::IQ3_XXS, 256),
        (GgmlType::IQ3_XXS, 1536),
        (GgmlType::IQ3_S, 256),
        (GgmlType::IQ3_S, 1536),
        (GgmlType::IQ2_S, 256),
        (GgmlType::IQ2_S, 1536),
        (GgmlType::IQ2_XXS, 256),
        (GgmlType::IQ2_XXS, 1536),
        (GgmlType::IQ2_XS, 256),
        (GgmlType::IQ2_XS, 1536),
        (GgmlType::IQ1_S, 256),
        (GgmlType::IQ1_S, 1536),
        (GgmlType::IQ1_M, 256),
        (GgmlType::IQ1_M, 1536),
    ];
    let (mut jobs, mut ours) = (Vec::new(), Vec::new());
    for (k, &(ty, n)) in cases.iter().enumerate() {
        for seed in 0..4u64 {
            let wq = quantized(ty, &data(500 + 10 * k as u64 + seed, n), n);
            let aty = vec_dot_type(ty).unwrap();
            let mut acts = Activations::new();
            acts.quantize(aty, &data(600 + 10 * k as u64 + seed, n), n).unwrap();
            let (wf, af) = (path(&format!("w{k}_{seed}")), path(&format!("a{k}_{seed}")));
            std::fs::write(&wf, &wq).unwrap();
            std::fs::write(&af, acts.bytes()).unwrap();
            jobs.push(format!("vec_dot {} {n} {wf} {af}", ty.id()));
            ours.push((ty, n, quant::vec_dot_with(quant::simd::Isa::Avx2, ty, n, &wq, acts.bytes()).unwrap()));
        }
    }
    for ((ty, n, got), answer) in ours.into_iter().zip(ggml_cpu(&py, &jobs)) {
        let theirs = answer.trim().parse::<f64>().unwrap() as f32;
        assert_eq!(got.to_bits(), theirs.to_bits(), "{ty} n={n}: ours {got} ggml {theirs}");
    }
}
