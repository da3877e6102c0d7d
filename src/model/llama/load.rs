//! Building a [`LlamaModel`] from a GGUF file: the architecture's row of
//! [`super::arch`], hyper-parameters from the metadata, every tensor looked
//! up and checked (shape, type with a kernel) before the forward pass may
//! use it.

use super::*;
use crate::model::arch::Ffn;

/// More experts than llama.cpp loads (its `LLAMA_MAX_EXPERTS`).
const MAX_EXPERTS: usize = 1024;

impl LlamaModel {
    /// Build the model over an already opened file.
    pub fn from_file(file: GgufFile) -> Result<LlamaModel> {
        let path = file.path().to_path_buf();
        let meta = file.metadata();
        crate::model::hparams::check(&path, meta, file.tensors())?;
        let arch = meta
            .architecture()
            .ok_or_else(|| ModelError::Metadata {
                path: path.clone(),
                key: "general.architecture".into(),
                msg: "missing".into(),
            })?
            .to_string();
        let spec = arch::lookup(&arch)
            .ok_or_else(|| ModelError::UnsupportedArchitecture { path: path.clone(), arch: arch.clone() })?;
        let rope = spec.rope;
        let req = |suffix: &str| -> Result<usize> {
            meta.arch_u64(suffix).map(|v| v as usize).filter(|&v| v > 0).ok_or_else(|| ModelError::Metadata {
                path: path.clone(),
                key: format!("{arch}.{suffix}"),
                msg: "missing or zero".into(),
            })
        };
        let opt_f = |suffix: &str| meta.get_f64(&format!("{arch}.{suffix}"));
        let n_embd = req("embedding_length")?;
        let n_layer = req("block_count")?;
        let n_head = req("attention.head_count")?;
        let n_head_kv = meta.arch_u64("attention.head_count_kv").map(|v| v as usize).unwrap_or(n_head);
        // Experts: the architecture's kind, `<arch>.expert_count` for llama.
        let n_expert_key = meta.arch_u64("expert_count").unwrap_or(0) as usize;
        let moe = match spec.ffn {
            Ffn::Dense => None,
            Ffn::MoeIfExperts(m) => (n_expert_key > 0).then_some(m),
            Ffn::Moe(m) => Some(m),
        };
        let n_ff = match moe {
            None => req("feed_forward_length")?,
            Some(_) => meta.arch_u64("feed_forward_length").map_or(0, |v| v as usize),
        };
        let head_dim = meta.arch_u64("attention.key_length").map(|v| v as usize).unwrap_or(n_embd / n_head.max(1));
        let n_rot = meta.arch_u64("rope.dimension_count").map(|v| v as usize).unwrap_or(head_dim);
        let n_ctx_train = meta.arch_u64("context_length").map(|v| v as usize).unwrap_or(0);
        let bad =
            |key: &str, msg: String| ModelError::Metadata { path: path.clone(), key: format!("{arch}.{key}"), msg };
        if n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(bad("attention.head_count_kv", format!("{n_head_kv} does not divide {n_head} heads")));
        }
        if let Some(vl) = meta.arch_u64("attention.value_length") {
            if vl as usize != head_dim {
                return Err(bad("attention.value_length", format!("{vl} differs from the key length {head_dim}")));
            }
        }
        if n_rot == 0 || n_rot > head_dim || !n_rot.is_multiple_of(2) {
            return Err(bad("rope.dimension_count", format!("{n_rot} is not an even number ≤ head size {head_dim}")));
        }
        let eps = opt_f("attention.layer_norm_rms_epsilon")
            .ok_or_else(|| bad("attention.layer_norm_rms_epsilon", "missing".into()))? as f32;
        let freq_base = opt_f("rope.freq_base").unwrap_or(10000.0) as f32;
        let mut freq_scale = 1.0f32;
        match meta.get_str(&format!("{arch}.rope.scaling.type")) {
            None | Some("none") => {}
            // llama.cpp reads the factor whatever the type; LongRoPE's
            // factor tensors are applied below.
            Some(t @ ("linear" | "longrope")) if t == "linear" || spec.long_rope => {
                if let Some(f) = opt_f("rope.scaling.factor").filter(|&f| f > 0.0) {
                    freq_scale = 1.0 / f as f32;
                }
            }
            Some(other) => {
                return Err(bad(
                    "rope.scaling.type",
                    format!("RoPE scaling `{other}` is not supported by quantmix's forward pass"),
                ))
            }
        }
        let (kq_scale, q_scale) = match spec.query_scale {
            QueryScale::Softmax => match opt_f("attention.scale") {
                Some(s) if s != 0.0 => (s as f32, None),
                _ => (1.0 / (head_dim as f32).sqrt(), None),
            },
            // llama.cpp tells the 27B models by their layer count.
            QueryScale::GemmaQuery { n_layer_27b } => {
                let d = if n_layer == n_layer_27b { n_embd / n_head } else { head_dim };
                (1.0, Some(1.0 / (d as f32).sqrt()))
            }
            QueryScale::Query => (1.0, Some(1.0 / (head_dim as f32).sqrt())),
        };
        let rope_attn_factor = match opt_f("rope.scaling.attn_factor") {
            None => 1.0,
            Some(f) if f.is_finite() && f > 0.0 && (f as f32).is_finite() => f as f32,
            Some(f) => return Err(bad("rope.scaling.attn_factor", format!("{f} (expected a finite number > 0)"))),
        };
        let n_ctx_orig = meta.arch_u64("rope.scaling.original_context_length").map_or(n_ctx_train, |v| v as usize);
        let embd_scale = spec.embed_scale.then(|| (n_embd as f32).sqrt());
        let (mut n_swa, mut swa_period) = (0usize, 0usize);
        let (mut freq_base_swa, mut freq_scale_swa) = (freq_base, freq_scale);
        if let Some(sw) = spec.sliding_window {
            let key = "attention.sliding_window";
            n_swa = match meta.get(&format!("{arch}.{key}")) {
                Some(v) => v.as_u64().ok_or_else(|| bad(key, format!("{v:?} is not a non-negative integer")))? as usize,
                None => sw.default_window.unwrap_or(0),
            };
            if n_swa > 0 {
                let key = "attention.sliding_window_pattern";
                swa_period = match meta.get(&format!("{arch}.{key}")) {
                    None => sw.default_period,
                    Some(v) => match v.as_u64() {
                        Some(p) if p > 0 && p <= crate::model::hparams::MAX_LAYERS => p as usize,
                        _ => {
                            return Err(bad(
                                key,
                                format!("{v:?}: quantmix reads a period (an integer from 1 to a layer count)"),
                            ))
                        }
                    },
                };
                if let Some(b) = sw.local_freq_base {
                    (freq_base_swa, freq_scale_swa) = (b, 1.0);
                }
                if let Some(b) = opt_f("rope.freq_base_swa") {
                    freq_base_swa = b as f32;
                }
                if !(freq_base_swa.is_finite() && freq_base_swa > 0.0) {
                    return Err(bad("rope.freq_base_swa", format!("{freq_base_swa} (expected a finite number > 0)")));
                }
            }
        }
        let cap = |key: &str, default: Option<f32>| -> Result<Option<f32>> {
            match opt_f(key) {
                Some(c) if !(c.is_finite() && c > 0.0 && (c as f32).is_finite()) => {
                    Err(bad(key, format!("{c} (expected a finite number > 0)")))
                }
                Some(c) => Ok(Some(c as f32)),
                None => Ok(default),
            }
        };
        let final_softcap = match spec.final_softcap {
            FinalSoftcap::Never => None,
            FinalSoftcap::WithoutSlidingWindow if n_swa > 0 => None,
            FinalSoftcap::WithoutSlidingWindow => cap("final_logit_softcapping", None)?,
            FinalSoftcap::Always { default_cap } => cap("final_logit_softcapping", Some(default_cap))?,
        };
        let attn_softcap = match spec.attn_softcap {
            Some(default) => cap("attn_logit_softcapping", Some(default))?,
            None => None,
        };

        let (mut n_expert, mut n_expert_used, mut n_ff_exp) = (0usize, 0usize, 0usize);
        if let Some(m) = moe {
            n_expert = req("expert_count")?;
            if n_expert > MAX_EXPERTS {
                return Err(bad("expert_count", format!("{n_expert} experts (llama.cpp loads at most {MAX_EXPERTS})")));
            }
            let key = "expert_used_count";
            n_expert_used = match meta.get(&format!("{arch}.{key}")) {
                None => return Err(bad(key, "missing (the number of experts each token uses)".into())),
                Some(v) => v.as_u64().map(|v| v as usize).ok_or_else(|| {
                    bad(key, format!("{v:?}: quantmix reads one count for every layer (a positive integer)"))
                })?,
            };
            if n_expert_used == 0 || n_expert_used > n_expert {
                return Err(bad(key, format!("{n_expert_used} (expected 1 to the {n_expert} experts)")));
            }
            if let Some(g) = meta.arch_u64("expert_group_count").filter(|&g| g > 1) {
                return Err(bad("expert_group_count", format!("{g}: grouped expert selection is not supported")));
            }
            n_ff_exp = if m.expert_ff_key {
                let key = "expert_feed_forward_length";
                match meta.get(&format!("{arch}.{key}")) {
                    Some(v) => v.as_u64().filter(|&v| v > 0).map(|v| v as usize).ok_or_else(|| {
                        bad(key, format!("{v:?}: quantmix reads one size for every layer (a positive integer)"))
                    })?,
                    None if n_ff > 0 => n_ff / n_expert_used,
                    None => return Err(bad(key, "missing (and no feed_forward_length to derive it from)".into())),
                }
            } else {
                req("feed_forward_length")?
            };
            if n_ff_exp == 0 || n_ff_exp as u64 > crate::model::hparams::MAX_DIM {
                return Err(bad("expert_feed_forward_length", format!("an expert hidden size of {n_ff_exp}")));
            }
        }

        let q_dim = n_head * head_dim;
        let kv_dim = n_head_kv * head_dim;
        // A matrix `rows × cols` (`n_mat` > 1: a 3-D stack of experts).
        let mat_n = |name: &str, cols: usize, rows: Option<usize>, n_mat: usize| -> Result<Mat> {
            let info = file.tensor(name).ok_or_else(|| ModelError::Tensor {
                path: path.clone(),
                tensor: name.into(),
                offset: None,
                msg: "missing".into(),
            })?;
            let terr = |msg: String| ModelError::Tensor {
                path: path.clone(),
                tensor: name.into(),
                offset: Some(file.header.data_offset + info.offset),
                msg,
            };
            let dims = if n_mat > 1 { 3 } else { 2 };
            if info.shape.len() != dims
                || info.shape[0] as usize != cols
                || rows.is_some_and(|r| info.shape[1] as usize != r)
                || (n_mat > 1 && info.shape[2] as usize != n_mat)
            {
                let want = rows.map(|r| r.to_string()).unwrap_or_else(|| "n".into());
                let want = if n_mat > 1 { format!("[{cols}, {want}, {n_mat}]") } else { format!("[{cols}, {want}]") };
                return Err(terr(format!("shape {:?}, expected {want}", info.shape)));
            }
            if !crate::quant::caps(info.ty).vec_dot {
                return Err(terr(format!("type {} has no dot-product kernel in quantmix", info.ty)));
            }
            Ok(Mat { info: info.clone(), rows: info.shape[1] as usize, cols, n_mat })
        };
        let mat = |name: &str, cols: usize, rows: Option<usize>| -> Result<Mat> { mat_n(name, cols, rows, 1) };
        let vector = |name: &str, len: usize| -> Result<Option<Vec<f32>>> {
            let Some(info) = file.tensor(name) else { return Ok(None) };
            let terr = |msg: String| ModelError::Tensor {
                path: path.clone(),
                tensor: name.into(),
                offset: Some(file.header.data_offset + info.offset),
                msg,
            };
            if info.n_elements() != len as u64 {
                return Err(terr(format!("shape {:?}, expected {len} values", info.shape)));
            }
            let mut v = vec![0f32; len];
            crate::quant::dequantize_row(info.ty, file.tensor_data(info), &mut v)
                .map_err(|e| terr(format!("cannot read: {e}")))?;
            Ok(Some(v))
        };
        let need = |name: &str, len: usize| -> Result<Vec<f32>> {
            vector(name, len)?.ok_or_else(|| ModelError::Tensor {
                path: path.clone(),
                tensor: name.into(),
                offset: None,
                msg: "missing".into(),
            })
        };

        let tok_embd = mat("token_embd.weight", n_embd, None)?;
        let n_vocab = tok_embd.rows;
        let output = match file.tensor("output.weight") {
            Some(_) if !spec.always_tied => mat("output.weight", n_embd, Some(n_vocab))?,
            _ => tok_embd.clone(),
        };
        let output_norm = need("output_norm.weight", n_embd)?;
        let rope_freqs = vector("rope_freqs.weight", n_rot / 2)?;
        let (rope_long, rope_short) = if spec.long_rope {
            (vector("rope_factors_long.weight", n_rot / 2)?, vector("rope_factors_short.weight", n_rot / 2)?)
        } else {
            (None, None)
        };
        for (name, f) in [
            ("rope_freqs.weight", &rope_freqs),
            ("rope_factors_long.weight", &rope_long),
            ("rope_factors_short.weight", &rope_short),
        ] {
            if let Some(i) = f.as_ref().and_then(|f| f.iter().position(|v| !(v.is_finite() && *v > 0.0))) {
                return Err(ModelError::Tensor {
                    path: path.clone(),
                    tensor: name.into(),
                    offset: None,
                    msg: format!(
                        "value {i} is {} (RoPE divides by these factors: expected finite and > 0)",
                        f.as_ref().unwrap()[i]
                    ),
                });
            }
        }
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let p = |s: &str| format!("blk.{i}.{s}");
            let fused_qkv = spec.fused_qkv && file.tensor(&p("attn_qkv.weight")).is_some();
            if !spec.fused_qkv && file.tensor(&p("attn_qkv.weight")).is_some() {
                return Err(ModelError::Tensor {
                    path: path.clone(),
                    tensor: p("attn_qkv.weight"),
                    offset: None,
                    msg: format!("fused QKV projections are not read for architecture `{arch}`"),
                });
            }
            let ffn = match moe {
                None if spec.fused_gate_up => {
                    if file.tensor(&p("ffn_gate.weight")).is_some() {
                        return Err(ModelError::Tensor {
                            path: path.clone(),
                            tensor: p("ffn_gate.weight"),
                            offset: None,
                            msg: format!(
                                "`{arch}` has the gate inside ffn_up (2·n_ff rows); a separate gate is not read"
                            ),
                        });
                    }
                    FfnWeights::FusedUp {
                        up: mat(&p("ffn_up.weight"), n_embd, Some(2 * n_ff))?,
                        down: mat(&p("ffn_down.weight"), n_ff, Some(n_embd))?,
                    }
                }
                None => {
                    let gate = p("ffn_gate.weight");
                    if file.tensor(&gate).is_none() && file.tensor(&p("ffn_gate_exps.weight")).is_some() {
                        return Err(ModelError::Tensor {
                            path: path.clone(),
                            tensor: gate,
                            offset: None,
                            msg: format!(
                                "missing: the file has expert tensors (ffn_gate_exps) but `{arch}.expert_count` is {}",
                                if n_expert_key > 0 { "ignored by this architecture" } else { "0 or absent" }
                            ),
                        });
                    }
                    FfnWeights::Dense {
                        gate: mat(&gate, n_embd, Some(n_ff))?,
                        up: mat(&p("ffn_up.weight"), n_embd, Some(n_ff))?,
                        down: mat(&p("ffn_down.weight"), n_ff, Some(n_embd))?,
                    }
                }
                Some(moe_spec) => {
                    for extra in [
                        "ffn_gate_inp.bias",
                        "ffn_gate_exps.scale",
                        "ffn_up_exps.scale",
                        "ffn_down_exps.scale",
                        "ffn_gate_up_exps.weight",
                        "ffn_up_shexp.weight",
                        "exp_probs_b.bias",
                    ] {
                        if file.tensor(&p(extra)).is_some() {
                            return Err(ModelError::Tensor {
                                path: path.clone(),
                                tensor: p(extra),
                                offset: None,
                                msg: "not supported by quantmix's mixture-of-experts forward pass".into(),
                            });
                        }
                    }
                    let router = mat(&p("ffn_gate_inp.weight"), n_embd, Some(n_expert))?;
                    let router_f32 = if router.info.ty == GgmlType::F32 {
                        let mut w = vec![0f32; n_embd * n_expert];
                        crate::quant::dequantize_row(GgmlType::F32, file.tensor_data(&router.info), &mut w).map_err(
                            |e| ModelError::Tensor {
                                path: path.clone(),
                                tensor: router.info.name.clone(),
                                offset: Some(file.header.data_offset + router.info.offset),
                                msg: format!("cannot read: {e}"),
                            },
                        )?;
                        Some(w)
                    } else {
                        None
                    };
                    FfnWeights::Experts(Experts {
                        router,
                        router_f32,
                        gate: mat_n(&p("ffn_gate_exps.weight"), n_embd, Some(n_ff_exp), n_expert)?,
                        up: mat_n(&p("ffn_up_exps.weight"), n_embd, Some(n_ff_exp), n_expert)?,
                        down: mat_n(&p("ffn_down_exps.weight"), n_ff_exp, Some(n_embd), n_expert)?,
                        n_used: n_expert_used,
                        spec: moe_spec,
                    })
                }
            };
            let opt_need = |on: bool, name: &str, len: usize| -> Result<Option<Vec<f32>>> {
                if on {
                    need(&p(name), len).map(Some)
                } else {
                    Ok(None)
                }
            };
            let (qkv, bq, bk, bv) = if fused_qkv {
                let w = mat(&p("attn_qkv.weight"), n_embd, Some(q_dim + 2 * kv_dim))?;
                let (bq, bk, bv) = match vector(&p("attn_qkv.bias"), q_dim + 2 * kv_dim)? {
                    Some(b) => {
                        let [q, k, v] = split_columns(&b, 1, [q_dim, kv_dim, kv_dim]);
                        (Some(q), Some(k), Some(v))
                    }
                    None => (None, None, None),
                };
                (Qkv::Fused(w), bq, bk, bv)
            } else {
                let qkv = Qkv::Separate {
                    wq: mat(&p("attn_q.weight"), n_embd, Some(q_dim))?,
                    wk: mat(&p("attn_k.weight"), n_embd, Some(kv_dim))?,
                    wv: mat(&p("attn_v.weight"), n_embd, Some(kv_dim))?,
                };
                (
                    qkv,
                    vector(&p("attn_q.bias"), q_dim)?,
                    vector(&p("attn_k.bias"), kv_dim)?,
                    vector(&p("attn_v.bias"), kv_dim)?,
                )
            };
            layers.push(Layer {
                attn_norm: need(&p("attn_norm.weight"), n_embd)?,
                q_norm: opt_need(spec.qk_norm, "attn_q_norm.weight", head_dim)?,
                k_norm: opt_need(spec.qk_norm, "attn_k_norm.weight", head_dim)?,
                post_attn_norm: opt_need(spec.post_norms, "post_attention_norm.weight", n_embd)?,
                post_ffn_norm: opt_need(spec.post_norms, "post_ffw_norm.weight", n_embd)?,
                swa: swa_period > 0 && i % swa_period < swa_period - 1,
                qkv,
                wo: mat(&p("attn_output.weight"), q_dim, Some(n_embd))?,
                bq,
                bk,
                bv,
                bo: vector(&p("attn_output.bias"), n_embd)?,
                ffn_norm: need(&p("ffn_norm.weight"), n_embd)?,
                ffn,
            });
        }
        let hp = HParams {
            arch,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            n_expert,
            n_expert_used,
            n_ff_exp,
            n_vocab,
            n_rot,
            n_ctx_train,
            eps,
            freq_base,
            freq_scale,
            rope,
            kq_scale,
            spec,
            embd_scale,
            q_scale,
            n_swa,
            freq_base_swa,
            freq_scale_swa,
            final_softcap,
            attn_softcap,
            rope_attn_factor,
            n_ctx_orig,
        };
        Ok(LlamaModel { file, hp, tok_embd, output, output_norm, rope_freqs, rope_long, rope_short, layers })
    }
}
