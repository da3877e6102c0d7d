//! llama.cpp's own choices, reproduced: which tensors it quantizes at all,
//! the per-tensor type logic of its presets (`llama_tensor_get_type`), and
//! the fallback for row lengths a type's block does not divide.
//!
//! Read from llama.cpp's `src/llama-quant.cpp` (commit 0c1e570); only the
//! presets quantmix offers are modelled (of the IQ presets IQ4_NL, IQ4_XS,
//! IQ3_XXS, IQ3_XS, IQ3_S, IQ3_M, IQ2_M, IQ2_S, IQ2_XS, IQ2_XXS, IQ1_M and
//! IQ1_S), and TQ1_0, TQ2_0, Q1_0, Q2_0 and MXFP4_MOE with their branches.
//!
//! One difference: llama-quantize stops with "no tensor type fallback" when
//! Q1_0's block of 128 does not divide a tensor's rows (SmolLM2's 576);
//! quantmix writes such a tensor in F16, as llama.cpp does for a 32-value
//! type that does not fit.

use super::layers::use_more_bits;
use crate::gguf::{GgmlType, Metadata, TensorInfo};

/// A llama-quantize preset (`llama_ftype`).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preset {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q2_K_S,
    Q3_K_S,
    Q3_K_M,
    Q3_K_L,
    Q4_K_S,
    Q4_K_M,
    Q5_K_S,
    Q5_K_M,
    Q6_K,
    IQ4_NL,
    IQ4_XS,
    TQ1_0,
    TQ2_0,
    Q1_0,
    Q2_0,
    MXFP4_MOE,
    IQ3_XS,
    IQ3_S,
    IQ3_M,
    IQ3_XXS,
    IQ2_M,
    IQ2_S,
    IQ2_XS,
    IQ2_XXS,
    IQ1_M,
    IQ1_S,
}

impl Preset {
    pub const ALL: &'static [Preset] = &[
        Preset::F32,
        Preset::F16,
        Preset::BF16,
        Preset::Q4_0,
        Preset::Q4_1,
        Preset::Q5_0,
        Preset::Q5_1,
        Preset::Q8_0,
        Preset::Q2_K,
        Preset::Q2_K_S,
        Preset::Q3_K_S,
        Preset::Q3_K_M,
        Preset::Q3_K_L,
        Preset::Q4_K_S,
        Preset::Q4_K_M,
        Preset::Q5_K_S,
        Preset::Q5_K_M,
        Preset::Q6_K,
        Preset::IQ4_NL,
        Preset::IQ4_XS,
        Preset::TQ1_0,
        Preset::TQ2_0,
        Preset::Q1_0,
        Preset::Q2_0,
        Preset::MXFP4_MOE,
        Preset::IQ3_XS,
        Preset::IQ3_S,
        Preset::IQ3_M,
        Preset::IQ3_XXS,
        Preset::IQ2_M,
        Preset::IQ2_S,
        Preset::IQ2_XS,
        Preset::IQ2_XXS,
        Preset::IQ1_M,
        Preset::IQ1_S,
    ];

    /// llama.cpp's name (`Q4_K_M`, …).
    pub fn name(self) -> &'static str {
        match self {
            Preset::F32 => "F32",
            Preset::F16 => "F16",
            Preset::BF16 => "BF16",
            Preset::Q4_0 => "Q4_0",
            Preset::Q4_1 => "Q4_1",
            Preset::Q5_0 => "Q5_0",
            Preset::Q5_1 => "Q5_1",
            Preset::Q8_0 => "Q8_0",
            Preset::Q2_K => "Q2_K",
            Preset::Q2_K_S => "Q2_K_S",
            Preset::Q3_K_S => "Q3_K_S",
            Preset::Q3_K_M => "Q3_K_M",
            Preset::Q3_K_L => "Q3_K_L",
            Preset::Q4_K_S => "Q4_K_S",
            Preset::Q4_K_M => "Q4_K_M",
            Preset::Q5_K_S => "Q5_K_S",
            Preset::Q5_K_M => "Q5_K_M",
            Preset::Q6_K => "Q6_K",
            Preset::IQ4_NL => "IQ4_NL",
            Preset::IQ4_XS => "IQ4_XS",
            Preset::TQ1_0 => "TQ1_0",
            Preset::TQ2_0 => "TQ2_0",
            Preset::Q1_0 => "Q1_0",
            Preset::Q2_0 => "Q2_0",
            Preset::MXFP4_MOE => "MXFP4_MOE",
            Preset::IQ3_XS => "IQ3_XS",
            Preset::IQ3_S => "IQ3_S",
            Preset::IQ3_M => "IQ3_M",
            Preset::IQ3_XXS => "IQ3_XXS",
            Preset::IQ2_M => "IQ2_M",
            Preset::IQ2_S => "IQ2_S",
            Preset::IQ2_XS => "IQ2_XS",
            Preset::IQ2_XXS => "IQ2_XXS",
            Preset::IQ1_M => "IQ1_M",
            Preset::IQ1_S => "IQ1_S",
        }
    }

    /// Parse a preset name, case-insensitively.
    pub fn from_name(s: &str) -> Option<Preset> {
        let up = s.trim().to_ascii_uppercase();
        Preset::ALL.iter().copied().find(|p| p.name() == up)
    }

    /// [`Preset::from_name`] with the message users see for an unknown name.
    pub fn parse(s: &str) -> Result<Preset, String> {
        Preset::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
            format!("unknown preset `{s}` (known: {})", names.join(", "))
        })
    }

    /// `general.file_type` (`llama_ftype`).
    pub fn ftype(self) -> u32 {
        match self {
            Preset::F32 => 0,
            Preset::F16 => 1,
            Preset::Q4_0 => 2,
            Preset::Q4_1 => 3,
            Preset::Q8_0 => 7,
            Preset::Q5_0 => 8,
            Preset::Q5_1 => 9,
            Preset::Q2_K => 10,
            Preset::Q3_K_S => 11,
            Preset::Q3_K_M => 12,
            Preset::Q3_K_L => 13,
            Preset::Q4_K_S => 14,
            Preset::Q4_K_M => 15,
            Preset::Q5_K_S => 16,
            Preset::Q5_K_M => 17,
            Preset::Q6_K => 18,
            Preset::Q2_K_S => 21,
            Preset::IQ4_NL => 25,
            Preset::IQ4_XS => 30,
            Preset::IQ3_XS => 22,
            Preset::IQ3_S => 26,
            Preset::IQ3_M => 27,
            Preset::IQ3_XXS => 23,
            Preset::IQ2_M => 29,
            Preset::IQ2_XXS => 19,
            Preset::IQ2_XS => 20,
            Preset::IQ2_S => 28,
            Preset::IQ1_S => 24,
            Preset::IQ1_M => 31,
            Preset::BF16 => 32,
            Preset::TQ1_0 => 36,
            Preset::TQ2_0 => 37,
            Preset::MXFP4_MOE => 38,
            Preset::Q1_0 => 40,
            Preset::Q2_0 => 41,
        }
    }

    /// The preset's base type (`llama_ftype_get_default_type`).
    pub fn default_type(self) -> GgmlType {
        match self {
            Preset::F32 => GgmlType::F32,
            Preset::F16 => GgmlType::F16,
            Preset::BF16 => GgmlType::BF16,
            Preset::Q4_0 => GgmlType::Q4_0,
            Preset::Q4_1 => GgmlType::Q4_1,
            Preset::Q5_0 => GgmlType::Q5_0,
            Preset::Q5_1 => GgmlType::Q5_1,
            Preset::Q8_0 => GgmlType::Q8_0,
            Preset::Q2_K | Preset::Q2_K_S => GgmlType::Q2_K,
            Preset::Q3_K_S | Preset::Q3_K_M | Preset::Q3_K_L => GgmlType::Q3_K,
            Preset::Q4_K_S | Preset::Q4_K_M => GgmlType::Q4_K,
            Preset::Q5_K_S | Preset::Q5_K_M => GgmlType::Q5_K,
            Preset::Q6_K => GgmlType::Q6_K,
            Preset::IQ4_NL => GgmlType::IQ4_NL,
            Preset::IQ4_XS => GgmlType::IQ4_XS,
            Preset::TQ1_0 => GgmlType::TQ1_0,
            Preset::TQ2_0 => GgmlType::TQ2_0,
            Preset::Q1_0 => GgmlType::Q1_0,
            Preset::Q2_0 => GgmlType::Q2_0,
            Preset::MXFP4_MOE => GgmlType::MXFP4,
            Preset::IQ3_XS | Preset::IQ3_S | Preset::IQ3_M => GgmlType::IQ3_S,
            Preset::IQ3_XXS => GgmlType::IQ3_XXS,
            Preset::IQ2_M => GgmlType::IQ2_S,
            // llama.cpp's IQ2_S preset is mostly IQ2_XS.
            Preset::IQ2_XS | Preset::IQ2_S => GgmlType::IQ2_XS,
            Preset::IQ2_XXS => GgmlType::IQ2_XXS,
            Preset::IQ1_M => GgmlType::IQ1_M,
            Preset::IQ1_S => GgmlType::IQ1_S,
        }
    }
}

/// The `general.file_type` to record for an output whose most common
/// quantized type is `ty` (a hybrid has no exact `llama_ftype`).
pub fn ftype_for_type(ty: GgmlType) -> u32 {
    let p = match ty {
        GgmlType::F16 => Preset::F16,
        GgmlType::BF16 => Preset::BF16,
        GgmlType::Q4_0 => Preset::Q4_0,
        GgmlType::Q4_1 => Preset::Q4_1,
        GgmlType::Q5_0 => Preset::Q5_0,
        GgmlType::Q5_1 => Preset::Q5_1,
        GgmlType::Q8_0 => Preset::Q8_0,
        GgmlType::Q2_K => Preset::Q2_K,
        GgmlType::Q3_K => Preset::Q3_K_M,
        GgmlType::Q4_K => Preset::Q4_K_M,
        GgmlType::Q5_K => Preset::Q5_K_M,
        GgmlType::Q6_K => Preset::Q6_K,
        GgmlType::IQ4_NL => Preset::IQ4_NL,
        GgmlType::IQ4_XS => Preset::IQ4_XS,
        GgmlType::TQ1_0 => Preset::TQ1_0,
        GgmlType::TQ2_0 => Preset::TQ2_0,
        GgmlType::Q1_0 => Preset::Q1_0,
        GgmlType::Q2_0 => Preset::Q2_0,
        GgmlType::MXFP4 => Preset::MXFP4_MOE,
        GgmlType::IQ3_S => Preset::IQ3_S,
        GgmlType::IQ3_XXS => Preset::IQ3_XXS,
        GgmlType::IQ2_S => Preset::IQ2_S,
        GgmlType::IQ2_XS => Preset::IQ2_XS,
        GgmlType::IQ2_XXS => Preset::IQ2_XXS,
        GgmlType::IQ1_M => Preset::IQ1_M,
        GgmlType::IQ1_S => Preset::IQ1_S,
        _ => Preset::F32,
    };
    p.ftype()
}

/// Model facts the preset logic depends on.
#[derive(Clone, Debug, Default)]
pub struct ModelInfo {
    pub arch: Option<String>,
    pub n_layer: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub n_expert: u32,
    /// Whether the model has no `output.weight` (token embeddings double as
    /// the output projection).
    pub tied_embeddings: bool,
}

impl ModelInfo {
    /// Read from GGUF metadata (`<arch>.block_count`, …) and the tensor list.
    /// Without metadata the layer count comes from the `blk.N.` names.
    pub fn from_metadata(md: &Metadata, tensors: &[TensorInfo]) -> ModelInfo {
        let max_blk = tensors.iter().filter_map(|t| super::roles::layer_of(&t.name)).max().map_or(0, |m| m + 1);
        let head_kv = md.arch_u64("attention.head_count_kv").or_else(|| {
            md.get(&format!("{}.attention.head_count_kv", md.architecture().unwrap_or_default()))
                .and_then(|v| v.as_array())
                .and_then(|a| a.first())
                .and_then(|v| v.as_u64())
        });
        let n_head = md.arch_u64("attention.head_count").unwrap_or(0) as u32;
        ModelInfo {
            arch: md.architecture().map(str::to_string),
            n_layer: md.arch_u64("block_count").map_or(max_blk, |v| v as u32),
            n_head,
            n_head_kv: head_kv.map_or(n_head, |v| v as u32),
            n_expert: md.arch_u64("expert_count").unwrap_or(0) as u32,
            tied_embeddings: !tensors.iter().any(|t| t.name == "output.weight"),
        }
    }

    fn n_gqa(&self) -> u32 {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }

    fn is_falcon(&self) -> bool {
        self.arch.as_deref() == Some("falcon")
    }

    /// llama.cpp calls an 80-layer llama with grouped KV heads "70B".
    fn is_70b(&self) -> bool {
        self.arch.as_deref() == Some("llama") && self.n_layer == 80 && self.n_head != self.n_head_kv
    }
}

/// llama.cpp's broad tensor categories for its preset logic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Output,
    TokenEmbd,
    AttnQkv,
    AttnKvB,
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

impl Category {
    pub fn of(name: &str) -> Category {
        if name == "output.weight" {
            Category::Output
        } else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
            Category::TokenEmbd
        } else if name.contains("attn_qkv.weight") {
            Category::AttnQkv
        } else if name.contains("attn_kv_b.weight") {
            Category::AttnKvB
        } else if name.contains("attn_v.weight") {
            Category::AttnV
        } else if name.contains("attn_k.weight") {
            Category::AttnK
        } else if name.contains("attn_q.weight") {
            Category::AttnQ
        } else if name.contains("attn_output.weight") {
            Category::AttnOutput
        } else if name.contains("ffn_up") {
            Category::FfnUp
        } else if name.contains("ffn_gate") {
            Category::FfnGate
        } else if name.contains("ffn_down") {
            Category::FfnDown
        } else {
            Category::Other
        }
    }

    fn is_attn_v(self) -> bool {
        matches!(self, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
    }
}

/// Whether llama-quantize would quantize this tensor at all; `Err(why)`
/// when it keeps it as is.
pub fn allows_quantization(name: &str, n_dims: usize) -> Result<(), &'static str> {
    if n_dims < 2 {
        return Err("1-D tensor");
    }
    if !name.ends_with("weight") {
        return Err("not a weight");
    }
    const KEEP: &[(&str, &str)] = &[
        ("_norm.weight", "normalization weights"),
        ("ffn_gate_inp.weight", "expert router"),
        ("ffn_gate_tid2eid.weight", "expert routing table"),
        ("altup", "small tensor"),
        ("laurel", "small tensor"),
        ("per_layer_model_proj", "small tensor"),
        ("ssm_conv1d", "small conv1d weights"),
        ("shortconv.conv.weight", "small conv1d weights"),
        ("indexer.k_proj.weight", "small tensor"),
        ("indexer.q_proj.weight", "small tensor"),
        ("time_mix_first.weight", "small RWKV tensor"),
        ("time_mix_w0.weight", "small RWKV tensor"),
        ("time_mix_w1.weight", "small RWKV tensor"),
        ("time_mix_w2.weight", "small RWKV tensor"),
        ("time_mix_v0.weight", "small RWKV tensor"),
        ("time_mix_v1.weight", "small RWKV tensor"),
        ("time_mix_v2.weight", "small RWKV tensor"),
        ("time_mix_a0.weight", "small RWKV tensor"),
        ("time_mix_a1.weight", "small RWKV tensor"),
        ("time_mix_a2.weight", "small RWKV tensor"),
        ("time_mix_g1.weight", "small RWKV tensor"),
        ("time_mix_g2.weight", "small RWKV tensor"),
        ("time_mix_decay_w1.weight", "small RWKV tensor"),
        ("time_mix_decay_w2.weight", "small RWKV tensor"),
        ("time_mix_lerp_fused.weight", "small RWKV tensor"),
        ("attn_rel_b.weight", "relative position bias"),
        (".position_embd", "position embeddings"),
        ("sam.pos_embd", "position embeddings"),
        ("sam.neck.", "multimodal tensor"),
        ("sam.net_", "multimodal tensor"),
        (".rel_pos", "multimodal tensor"),
        (".patch_embd", "multimodal tensor"),
        (".patch_merger", "multimodal tensor"),
        ("a.rvq.codebook", "audio codebook"),
        ("mm.a.code_embd", "audio codebook"),
    ];
    if let Some((_, why)) = KEEP.iter().find(|(pat, _)| name.contains(pat)) {
        return Err(why);
    }
    if name == "position_embd.weight" || name == "token_types.weight" {
        return Err("position embeddings / token types");
    }
    Ok(())
}

/// llama.cpp's fallback for a row length that `ty`'s block does not divide.
/// `None` when `ty` fits (or has no fallback: a 32-block type whose block
/// does not divide the row ends at F16 as in llama.cpp).
pub fn default_fallback(ty: GgmlType) -> Option<GgmlType> {
    match ty {
        GgmlType::Q2_0 | GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::TQ1_0 | GgmlType::TQ2_0 => Some(GgmlType::Q4_0),
        GgmlType::Q4_K => Some(GgmlType::Q5_0),
        GgmlType::Q5_K => Some(GgmlType::Q5_1),
        GgmlType::Q6_K => Some(GgmlType::Q8_0),
        GgmlType::IQ1_S
        | GgmlType::IQ1_M
        | GgmlType::IQ2_XXS
        | GgmlType::IQ2_XS
        | GgmlType::IQ2_S
        | GgmlType::IQ3_XXS
        | GgmlType::IQ3_S
        | GgmlType::IQ4_XS => Some(GgmlType::IQ4_NL),
        _ => None,
    }
}

/// Whether llama-quantize refuses to write `ty` into tensor `name` without
/// an importance vector (`tensor_requires_imatrix`: the very-low-bit
/// i-quants, and Q2_K in a file of `preset` Q2_K_S, except in the token
/// embeddings and the output projection), or ggml cannot quantize it
/// without one at all (IQ2_XXS, IQ2_XS, IQ1_S in any tensor:
/// `ggml_quantize_requires_imatrix`).
pub fn requires_imatrix(name: &str, ty: GgmlType, preset: Option<Preset>) -> bool {
    if crate::quant::caps(ty).requires_imatrix {
        return true;
    }
    if matches!(Category::of(name), Category::TokenEmbd | Category::Output) {
        return false;
    }
    match ty {
        GgmlType::IQ3_XXS
        | GgmlType::IQ2_XXS
        | GgmlType::IQ2_XS
        | GgmlType::IQ2_S
        | GgmlType::IQ1_M
        | GgmlType::IQ1_S => true,
        GgmlType::Q2_K => preset == Some(Preset::Q2_K_S),
        _ => false,
    }
}

/// The running state of llama.cpp's preset logic over a model's tensors
/// (it counts attn_v and ffn_down tensors as it goes).
pub struct PresetState<'a> {
    pub preset: Preset,
    pub model: &'a ModelInfo,
    pub has_imatrix: bool,
    n_attention_wv: i64,
    i_attention_wv: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
}

impl<'a> PresetState<'a> {
    pub fn new(preset: Preset, model: &'a ModelInfo, tensors: &[TensorInfo], has_imatrix: bool) -> Self {
        let n_attention_wv = tensors.iter().filter(|t| Category::of(&t.name).is_attn_v()).count() as i64;
        PresetState {
            preset,
            model,
            has_imatrix,
            n_attention_wv,
            i_attention_wv: 0,
            i_ffn_down: 0,
            i_ffn_gate: 0,
            i_ffn_up: 0,
        }
    }

    fn layer_info(&self, counter: i64, name: &str) -> (i64, i64) {
        let n = self.model.n_layer as i64;
        if self.model.n_expert > 1 {
            if let Some(l) = super::roles::layer_of(name) {
                return (l as i64, n);
            }
        }
        (counter, n)
    }

    /// The type llama-quantize gives this quantizable tensor under the
    /// preset, before the shape fallback.
    pub fn choose(&mut self, t: &TensorInfo) -> GgmlType {
        use GgmlType as T;
        use Preset as P;
        let ftype = self.preset;
        let mut new_type = ftype.default_type();
        if !new_type.is_quantized() {
            return new_type;
        }
        let cat = Category::of(&t.name);
        let m = self.model;
        let falcon = m.is_falcon();
        if cat == Category::Output || (m.tied_embeddings && cat == Category::TokenEmbd) {
            let nx = t.shape[0];
            if ftype == P::MXFP4_MOE || falcon || !nx.is_multiple_of(new_type.block_size() as u64) {
                new_type = T::Q8_0;
            } else if matches!(ftype, P::IQ3_XXS | P::IQ2_M | P::IQ2_S | P::IQ2_XS | P::IQ2_XXS | P::IQ1_S | P::IQ1_M) {
                new_type = T::Q5_K;
            } else if new_type != T::Q8_0 {
                new_type = T::Q6_K;
            }
        } else if ftype == P::MXFP4_MOE {
            // Expert tensors (3-D) in MXFP4, everything else in Q8_0.
            new_type = if t.shape.get(2).is_some_and(|&n| n > 1) { T::MXFP4 } else { T::Q8_0 };
        } else if cat == Category::TokenEmbd {
            if matches!(ftype, P::TQ1_0 | P::TQ2_0 | P::Q2_0) {
                new_type = T::Q4_K;
            } else if matches!(ftype, P::IQ3_XXS | P::IQ2_M | P::IQ2_S) {
                new_type = T::IQ3_S;
            } else if matches!(ftype, P::IQ2_XS | P::IQ2_XXS | P::IQ1_S | P::IQ1_M) {
                new_type = T::Q2_K;
            }
        } else if matches!(ftype, P::IQ2_M | P::IQ2_S | P::IQ2_XS | P::IQ2_XXS | P::IQ1_S | P::IQ1_M) {
            // llama.cpp's branch for its 1- and 2-bit presets: it replaces
            // the rules below. IQ2_S and IQ2_M raise their few bumped
            // tensors to IQ3_S, the others to Q2_K; the IQ1 presets put
            // IQ2_XXS on the attention output.
            let bump = if matches!(ftype, P::IQ2_M | P::IQ2_S) { T::IQ3_S } else { T::Q2_K };
            if cat.is_attn_v() {
                new_type = if m.n_gqa() >= 4 || m.n_expert >= 4 { T::Q4_K } else { bump };
                self.i_attention_wv += 1;
            } else if m.n_expert == 8 && cat == Category::AttnK {
                new_type = T::Q4_K;
            } else if cat == Category::FfnDown {
                if self.i_ffn_down < m.n_layer as i64 / 8 {
                    new_type = bump;
                }
                self.i_ffn_down += 1;
            } else if cat == Category::AttnOutput {
                if m.n_expert == 8 {
                    new_type = T::Q5_K;
                } else if matches!(ftype, P::IQ1_S | P::IQ1_M) {
                    new_type = T::IQ2_XXS;
                } else if bump == T::IQ3_S {
                    new_type = T::IQ3_S;
                }
            }
        } else if cat.is_attn_v() {
            let (i, n) = (self.i_attention_wv, self.n_attention_wv);
            match ftype {
                P::Q2_K => new_type = if m.n_gqa() >= 4 { T::Q4_K } else { T::Q3_K },
                P::Q2_K_S if m.n_gqa() >= 4 => new_type = T::Q4_K,
                P::Q3_K_M => new_type = if i < 2 { T::Q5_K } else { T::Q4_K },
                P::Q3_K_L => new_type = T::Q5_K,
                P::IQ3_XXS => {
                    new_type = if m.n_gqa() >= 4 {
                        T::Q4_K
                    } else if !self.has_imatrix {
                        T::IQ3_S
                    } else {
                        T::IQ3_XXS
                    }
                }
                P::IQ3_XS | P::IQ3_S if m.n_gqa() >= 4 => new_type = T::Q4_K,
                P::IQ3_M => new_type = T::Q4_K,
                P::IQ4_NL | P::IQ4_XS if m.n_gqa() >= 4 => new_type = T::Q5_K,
                P::Q4_K_M | P::Q5_K_M if use_more_bits(i, n) => new_type = T::Q6_K,
                P::Q4_K_S if i < 4 => new_type = T::Q5_K,
                _ => {}
            }
            if m.is_70b() && (new_type == T::Q3_K || new_type == T::Q4_K) {
                new_type = T::Q5_K;
            }
            if m.n_expert == 8 {
                new_type = T::Q8_0;
            }
            self.i_attention_wv += 1;
        } else if cat == Category::AttnK {
            if m.n_expert == 8 {
                new_type = T::Q8_0;
            } else if ftype == P::IQ3_XS {
                new_type = T::IQ3_XXS;
            } else if ftype == P::IQ3_XXS {
                new_type = T::IQ2_S;
            }
        } else if cat == Category::AttnQ {
            if ftype == P::IQ3_XS {
                new_type = T::IQ3_XXS;
            } else if ftype == P::IQ3_XXS {
                new_type = T::IQ2_S;
            }
        } else if cat == Category::FfnDown {
            let (i, n) = self.layer_info(self.i_ffn_down, &t.name);
            match ftype {
                P::Q2_K => new_type = T::Q3_K,
                P::Q2_K_S if i < n / 8 => new_type = T::Q4_K,
                P::Q3_K_M => {
                    new_type = if i < n / 16 {
                        T::Q5_K
                    } else if !falcon || use_more_bits(i, n) {
                        T::Q4_K
                    } else {
                        T::Q3_K
                    }
                }
                P::IQ3_XXS if !self.has_imatrix => new_type = if i < n / 8 { T::Q4_K } else { T::Q3_K },
                P::IQ3_M if i < n / 8 || (m.n_expert == 8 && use_more_bits(i, n)) => new_type = T::Q4_K,
                P::Q3_K_L => new_type = if falcon { T::Q4_K } else { T::Q5_K },
                P::Q4_K_M => {
                    if falcon {
                        new_type = if i < n / 16 {
                            T::Q6_K
                        } else if use_more_bits(i, n) {
                            T::Q5_K
                        } else {
                            T::Q4_K
                        };
                    } else if use_more_bits(i, n) {
                        new_type = T::Q6_K;
                    }
                }
                P::IQ4_NL | P::IQ4_XS if i < n / 8 && !self.has_imatrix => new_type = T::Q5_K,
                P::Q5_K_M if use_more_bits(i, n) => new_type = T::Q6_K,
                P::Q4_K_S if !falcon && i < n / 8 => new_type = T::Q5_K,
                P::Q4_0 | P::Q5_0 if self.has_imatrix && i < n / 8 => {
                    new_type = if ftype == P::Q4_0 { T::Q4_1 } else { T::Q5_1 }
                }
                _ => {}
            }
            self.i_ffn_down += 1;
        } else if cat == Category::AttnOutput {
            if !falcon {
                if m.n_expert == 8 {
                    if matches!(
                        ftype,
                        P::Q2_K
                            | P::Q3_K_S
                            | P::Q3_K_M
                            | P::Q4_K_S
                            | P::Q4_K_M
                            | P::IQ4_NL
                            | P::IQ4_XS
                            | P::IQ3_XS
                            | P::IQ3_XXS
                            | P::IQ3_S
                            | P::IQ3_M
                    ) {
                        new_type = T::Q5_K;
                    }
                } else {
                    match ftype {
                        P::Q2_K => new_type = T::Q3_K,
                        P::Q3_K_M => new_type = T::Q4_K,
                        P::Q3_K_L => new_type = T::Q5_K,
                        P::IQ3_M => new_type = T::Q4_K,
                        P::IQ3_XXS => new_type = T::IQ3_S,
                        _ => {}
                    }
                }
            } else if ftype == P::Q3_K_L {
                new_type = T::Q4_K;
            }
        } else if cat == Category::FfnGate {
            let (i, n) = self.layer_info(self.i_ffn_gate, &t.name);
            if ftype == P::IQ3_XS && i >= n / 8 && i < 7 * n / 8 {
                new_type = T::IQ3_XXS;
            }
            self.i_ffn_gate += 1;
        } else if cat == Category::FfnUp {
            let (i, n) = self.layer_info(self.i_ffn_up, &t.name);
            if ftype == P::IQ3_XS && i >= n / 8 && i < 7 * n / 8 {
                new_type = T::IQ3_XXS;
            }
            self.i_ffn_up += 1;
        }
        new_type
    }
}
