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
    quant::quantize_rows(ty, x, row_len, None, &mut q).unwrap();
    q
}

#[test]
fn every_output_is_the_vec_dot_of_its_rows() {
    let (rows, row_len) = (37, 512);
    for (k, &ty) in VEC_DOT_TYPES.iter().enumerate() {
        let wq = quantized(ty, &data(k as u64, rows * row_len), row_len);
        let w = Weights::new(ty, rows, row_len, &wq).unwrap();
        for n_tokens in [1, 3, 70] {
            let x = data(100 + k as u64, n_tokens * row_len);
            let mut out = vec![f32::NAN; n_tokens * rows];
            matmul(&w, &x, &mut out).unwrap();
            let aty = vec_dot_type(ty).unwrap();
            let mut acts = Activations::new();
            acts.quantize(aty, &x, row_len).unwrap();
            let (wrb, arb) = (w.row_bytes(), acts.bytes().len() / n_tokens);
            for t in 0..n_tokens {
                for r in 0..rows {
                    let want =
                        quant::vec_dot(ty, row_len, &wq[r * wrb..(r + 1) * wrb], &acts.bytes()[t * arb..(t + 1) * arb])
                            .unwrap();
                    assert_eq!(out[t * rows + r].to_bits(), want.to_bits(), "{ty}: token {t} row {r}");
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
/// the k-quants and the IQ4 types, where the CPU has it) give every output the AVX2 dot product's bits, for
/// every tail of rows and tokens, with weights at the ends of their ranges
/// (Q8_0 levels ±127 and −128, which files from elsewhere may hold), and for
/// activations with −128 levels (a block of denormals, whose scale is 0),
/// where ggml's AVX2 sign trick and the exact VNNI product form different
/// integer sums that the zero scale must cancel.
#[test]
fn tile_kernels_equal_the_dot_product_bit_for_bit() {
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
    ];
    for ty in types {
        // IQ4_NL with an odd block count (its kernels pair blocks).
        let row_len = if ty == GgmlType::IQ4_NL { 544 } else { 512 };
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
                GgmlType::IQ4_NL | GgmlType::IQ4_XS => &[0],
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
            for n_tokens in [2, 3, 4, 5, 7, 9] {
                let mut x = data(1000 + rows as u64 * 10 + n_tokens as u64, n_tokens * row_len);
                if n_tokens == 7 {
                    // Token 1, block 2: denormals, whose Q8_0 levels overflow
                    // to ±inf and become -128 / 127.
                    for (i, v) in x[row_len + 64..row_len + 96].iter_mut().enumerate() {
                        *v = if i % 2 == 0 { -1e-40 } else { 3e-41 };
                    }
                }
                let mut out = vec![f32::NAN; n_tokens * rows];
                matmul(&w, &x, &mut out).unwrap();
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
                        let want = quant::vec_dot(ty, row_len, &wq[r * wrb..(r + 1) * wrb], a).unwrap();
                        assert_eq!(
                            out[t * rows + r].to_bits(),
                            want.to_bits(),
                            "{ty}: {rows} rows × {n_tokens} tokens, token {t} row {r}: {} vs {want}",
                            out[t * rows + r]
                        );
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
    assert!(Weights::new(GgmlType::IQ2_XXS, 1, 256, &[0; 66]).is_err());
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

/// Run the jobs (one per line) through `tests/tools/ggml_cpu.py`; one
/// answer per job.
fn ggml_cpu(py: &std::path::Path, jobs: &[String]) -> Vec<String> {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/ggml_cpu.py");
    let mut child = std::process::Command::new(py)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    child.stdin.take().unwrap().write_all(jobs.join("\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "ggml_cpu.py: {}", String::from_utf8_lossy(&out.stderr));
    let answers: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    assert_eq!(answers.len(), jobs.len());
    answers
}

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
    let mut dots = Vec::new();
    for (k, &ty) in VEC_DOT_TYPES.iter().enumerate() {
        let wq = quantized(ty, &data(200 + k as u64, row_len), row_len);
        let aty = vec_dot_type(ty).unwrap();
        let mut acts = Activations::new();
        acts.quantize(aty, &data(300 + k as u64, row_len), row_len).unwrap();
        let (wf, af) = (path(&format!("w{k}")), path(&format!("a{k}")));
        std::fs::write(&wf, &wq).unwrap();
        std::fs::write(&af, acts.bytes()).unwrap();
        jobs.push(format!("vec_dot {} {row_len} {wf} {af}", ty.id()));
        let got = quant::vec_dot(ty, row_len, &wq, acts.bytes()).unwrap() as f64;
        let mut wd = vec![0f32; row_len];
        let mut ad = vec![0f32; row_len];
        quant::dequantize_row(ty, &wq, &mut wd).unwrap();
        quant::dequantize_row(aty, acts.bytes(), &mut ad).unwrap();
        let mag: f64 = wd.iter().zip(&ad).map(|(&p, &q)| (p as f64 * q as f64).abs()).sum();
        dots.push((ty, got, mag));
    }
    let answers = ggml_cpu(&py, &jobs);
    for (i, aty) in act_types.into_iter().enumerate() {
        let theirs = std::fs::read(path(&format!("x.{}", aty.name()))).unwrap();
        assert_eq!(theirs.len(), ours[i].len(), "{aty}");
        let bad = theirs.iter().zip(&ours[i]).position(|(a, b)| a != b);
        assert!(bad.is_none(), "{aty}: first differing byte {bad:?}");
    }
    for ((ty, got, mag), answer) in dots.into_iter().zip(&answers[act_types.len()..]) {
        let theirs: f64 = answer.trim().parse().unwrap();
        assert!((got - theirs).abs() <= 1e-5 * mag, "{ty}: ours {got} vs ggml {theirs} (Σ|w·a| {mag})");
    }
}

/// IQ4_NL · Q8_0 and IQ4_XS · Q8_K on the AVX2 path give exactly the bits of
/// libggml-cpu's AVX2 `vec_dot` (even and odd block counts: IQ4_NL's kernel
/// pairs blocks and adds an odd last one in scalar).
#[test]
fn iq4_dot_products_equal_ggml_cpu_bit_for_bit() {
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
