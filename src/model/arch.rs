//! The architectures the forward pass implements, as data: one
//! [`ArchSpec`] per `general.architecture` value says what the one forward
//! pass in [`super::llama`] does differently for it (RoPE pairing, extra
//! norms, activation, embedding and query scaling, sliding-window layers,
//! logit soft-capping, a dense or mixture-of-experts feed-forward, fused
//! projections, LongRoPE factors). Supporting another llama-like architecture is a new
//! row in [`ARCHITECTURES`] (plus whatever new operation it needs).
//!
//! The values follow llama.cpp's graph builders (`src/models/*.cpp`) and
//! hyper-parameter loaders for the same architecture names.

use super::llama::RopeStyle;

/// The gated feed-forward activation: `down(act(gate(x)) · up(x))`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// SiLU (SwiGLU): llama, mistral, qwen2, qwen3.
    Silu,
    /// GELU, tanh approximation, through ggml's F16 lookup table: gemma.
    GeluTanh,
}

/// How the attention scores are scaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryScale {
    /// `softmax(k·q · s)` with `s` = `<arch>.attention.scale` or
    /// `1/sqrt(head_dim)` (llama.cpp's `kq_scale`).
    Softmax,
    /// Gemma: the query is multiplied by `1/sqrt(head_dim)` after RoPE
    /// (`1/sqrt(n_embd/n_head)` for the 27B model, which llama.cpp tells by
    /// its layer count `n_layer_27b`) and the scores are not scaled again.
    GemmaQuery { n_layer_27b: usize },
    /// Phi-3: the query is multiplied by `1/sqrt(head_dim)` after RoPE and
    /// the scores are not scaled again (`<arch>.attention.scale` is not read).
    Query,
}

/// When the logits are soft-capped (`cap · tanh(logit / cap)`, cap from
/// `<arch>.final_logit_softcapping`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FinalSoftcap {
    Never,
    /// When the file sets a cap and the model has no sliding-window layers
    /// (llama.cpp's non-iSWA gemma3 graph).
    WithoutSlidingWindow,
    /// Always, with this cap when the file sets none (gemma2).
    Always {
        default_cap: f32,
    },
}

/// Interleaved sliding-window (local) and global attention layers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlidingWindow {
    /// Layer `il` is local when `il % period < period - 1` (every
    /// `period`-th layer is global); `<arch>.attention.sliding_window_pattern`
    /// overrides it.
    pub default_period: usize,
    /// The window when `<arch>.attention.sliding_window` is absent (`None`:
    /// then every layer is global).
    pub default_window: Option<usize>,
    /// RoPE base of the local layers unless `<arch>.rope.freq_base_swa`
    /// sets it, their RoPE then unscaled (`None`: the global base and
    /// scale).
    pub local_freq_base: Option<f32>,
}

/// How the selected experts' weights are made (llama.cpp's `build_moe_ffn`
/// arguments for the architecture). The router is always a softmax over
/// `ffn_gate_inp · x`, the top `<arch>.expert_used_count` experts taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoeSpec {
    /// The selected probabilities divided by their sum (`norm_w`).
    pub norm_weights: bool,
    /// The experts' hidden size is `<arch>.expert_feed_forward_length`
    /// (default `feed_forward_length / expert_used_count`), not
    /// `feed_forward_length`.
    pub expert_ff_key: bool,
}

/// The feed-forward block of every layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ffn {
    /// One gated feed-forward (`ffn_gate`, `ffn_up`, `ffn_down`).
    Dense,
    /// Experts (`ffn_gate_inp`, `ffn_{gate,up,down}_exps`) when
    /// `<arch>.expert_count` > 0, else dense (llama: Mixtral-style files).
    MoeIfExperts(MoeSpec),
    /// Always experts (`<arch>.expert_count` must be > 0).
    Moe(MoeSpec),
}

/// What one architecture's forward pass needs beyond the llama layout
/// (pre-norm blocks of attention and a gated feed-forward, RMS norms).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArchSpec {
    /// `general.architecture`.
    pub name: &'static str,
    /// How RoPE pairs dimensions.
    pub rope: RopeStyle,
    /// Per-head RMS norms of Q and K before RoPE (`attn_q_norm`,
    /// `attn_k_norm`, `head_dim` values each).
    pub qk_norm: bool,
    /// RMS norms of the attention and feed-forward outputs before they are
    /// added to the residual stream (`post_attention_norm`, `post_ffw_norm`).
    pub post_norms: bool,
    /// The feed-forward activation.
    pub activation: Activation,
    /// Token embeddings multiplied by `sqrt(n_embd)`.
    pub embed_scale: bool,
    /// Where the attention scale is applied.
    pub query_scale: QueryScale,
    /// Sliding-window layers, with a positive window (from
    /// `<arch>.attention.sliding_window` or the default).
    pub sliding_window: Option<SlidingWindow>,
    /// Attention scores soft-capped before the softmax (`cap · tanh(s /
    /// cap)`), with `<arch>.attn_logit_softcapping` or this default cap.
    pub attn_softcap: Option<f32>,
    /// Logit soft-capping.
    pub final_softcap: FinalSoftcap,
    /// The output matrix is the token embeddings even when the file has an
    /// `output.weight` (llama.cpp's gemma2 loader).
    pub always_tied: bool,
    /// Dense or mixture-of-experts feed-forward.
    pub ffn: Ffn,
    /// Q, K and V may come from one fused `attn_qkv` matrix (rows of Q,
    /// then K, then V; bias `attn_qkv.bias`), read when the file has it.
    pub fused_qkv: bool,
    /// The gate and up projections are one `ffn_up` of `2·n_ff` rows (the
    /// gate's first, ggml's `swiglu` of one tensor) and there is no
    /// `ffn_gate`.
    pub fused_gate_up: bool,
    /// LongRoPE: `rope_factors_long` divides the RoPE frequencies when the
    /// context (as llama.cpp pads it, to a multiple of 256) is longer than
    /// `<arch>.rope.scaling.original_context_length`, `rope_factors_short`
    /// otherwise (a `rope_freqs` tensor takes precedence over both).
    pub long_rope: bool,
}

/// Mixtral (`llama` with experts) and qwen3moe: softmax router, the top-k
/// weights renormalised; `expert_weights_scale` is not read for either.
const MIXTRAL: MoeSpec = MoeSpec { norm_weights: true, expert_ff_key: false };
const QWEN3MOE: MoeSpec = MoeSpec { norm_weights: true, expert_ff_key: true };

const LLAMA: ArchSpec = ArchSpec {
    name: "llama",
    rope: RopeStyle::Normal,
    qk_norm: false,
    post_norms: false,
    activation: Activation::Silu,
    embed_scale: false,
    query_scale: QueryScale::Softmax,
    sliding_window: None,
    attn_softcap: None,
    final_softcap: FinalSoftcap::Never,
    always_tied: false,
    ffn: Ffn::MoeIfExperts(MIXTRAL),
    fused_qkv: false,
    fused_gate_up: false,
    long_rope: false,
};

/// Every architecture the forward pass implements.
pub const ARCHITECTURES: &[ArchSpec] = &[
    LLAMA,
    ArchSpec { name: "mistral", ffn: Ffn::Dense, ..LLAMA },
    // Q/K/V biases are read whenever the file has them.
    ArchSpec { name: "qwen2", rope: RopeStyle::Neox, ffn: Ffn::Dense, ..LLAMA },
    ArchSpec { name: "qwen3", rope: RopeStyle::Neox, qk_norm: true, ffn: Ffn::Dense, ..LLAMA },
    ArchSpec { name: "qwen3moe", rope: RopeStyle::Neox, qk_norm: true, ffn: Ffn::Moe(QWEN3MOE), ..LLAMA },
    ArchSpec {
        name: "gemma2",
        rope: RopeStyle::Neox,
        post_norms: true,
        activation: Activation::GeluTanh,
        embed_scale: true,
        query_scale: QueryScale::GemmaQuery { n_layer_27b: 46 },
        sliding_window: Some(SlidingWindow { default_period: 2, default_window: Some(4096), local_freq_base: None }),
        attn_softcap: Some(50.0),
        final_softcap: FinalSoftcap::Always { default_cap: 30.0 },
        always_tied: true,
        ffn: Ffn::Dense,
        ..LLAMA
    },
    ArchSpec {
        name: "gemma3",
        rope: RopeStyle::Neox,
        qk_norm: true,
        post_norms: true,
        activation: Activation::GeluTanh,
        embed_scale: true,
        query_scale: QueryScale::GemmaQuery { n_layer_27b: 62 },
        sliding_window: Some(SlidingWindow { default_period: 6, default_window: None, local_freq_base: Some(10000.0) }),
        final_softcap: FinalSoftcap::WithoutSlidingWindow,
        ffn: Ffn::Dense,
        ..LLAMA
    },
    // Sliding-window keys are ignored, as llama.cpp does for phi3 (every
    // layer global); no `output.bias` (llama.cpp does not load one either).
    ArchSpec {
        name: "phi3",
        rope: RopeStyle::Neox,
        query_scale: QueryScale::Query,
        ffn: Ffn::Dense,
        fused_qkv: true,
        fused_gate_up: true,
        long_rope: true,
        ..LLAMA
    },
];

/// The description of architecture `name`, if the forward pass implements it.
pub fn lookup(name: &str) -> Option<&'static ArchSpec> {
    ARCHITECTURES.iter().find(|a| a.name == name)
}

/// The supported architecture names, comma-separated (for error messages).
pub fn supported() -> String {
    ARCHITECTURES.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_listed() {
        for (i, a) in ARCHITECTURES.iter().enumerate() {
            assert!(ARCHITECTURES[..i].iter().all(|b| b.name != a.name), "{} twice", a.name);
            assert_eq!(lookup(a.name), Some(a));
            assert!(supported().split(", ").any(|n| n == a.name));
        }
        assert!(lookup("bert").is_none());
    }
}
