//! Tensor roles and layers, read from GGUF tensor names
//! (`blk.N.<role>.weight`, `token_embd.weight`, …).

/// Roles llama.cpp's GGUF names use for the common architectures. A recipe
/// may also name any role that occurs in the model it is applied to.
pub const KNOWN_ROLES: &[&str] = &[
    "token_embd",
    "token_embd_norm",
    "position_embd",
    "output",
    "output_norm",
    "rope_freqs",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_qkv",
    "attn_output",
    "attn_norm",
    "attn_norm_2",
    "attn_q_norm",
    "attn_k_norm",
    "attn_q_a",
    "attn_q_b",
    "attn_kv_a_mqa",
    "attn_kv_b",
    "attn_q_a_norm",
    "attn_kv_a_norm",
    "attn_post_norm",
    "attn_sinks",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
    "ffn_norm",
    "ffn_post_norm",
    "ffn_gate_inp",
    "ffn_gate_exps",
    "ffn_up_exps",
    "ffn_down_exps",
    "ffn_gate_shexp",
    "ffn_up_shexp",
    "ffn_down_shexp",
    "ffn_gate_inp_shexp",
    "ffn_exp_probs_b",
    "post_attention_norm",
    "post_ffw_norm",
    "layer_output_norm",
    // Meta-role: every normalization weight (`*_norm`).
    "norm",
];

/// The layer of a `blk.N.…` tensor.
pub fn layer_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("blk.")?;
    let (n, _) = rest.split_once('.')?;
    n.parse().ok()
}

/// The role of a tensor: its name without the `blk.N.` prefix and the
/// `.weight` / `.bias` suffix.
pub fn role_of(name: &str) -> &str {
    let base = match name.strip_prefix("blk.").and_then(|r| r.split_once('.')) {
        Some((n, rest)) if n.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => name,
    };
    base.strip_suffix(".weight").or_else(|| base.strip_suffix(".bias")).unwrap_or(base)
}

/// Whether a tensor of role `role` is matched by a rule's role `want`
/// (`norm` matches every normalization weight).
pub fn role_matches(want: &str, role: &str) -> bool {
    want == role || (want == "norm" && (role.ends_with("_norm") || role.contains("_norm_")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_layers() {
        assert_eq!(role_of("blk.12.attn_v.weight"), "attn_v");
        assert_eq!(layer_of("blk.12.attn_v.weight"), Some(12));
        assert_eq!(role_of("token_embd.weight"), "token_embd");
        assert_eq!(layer_of("token_embd.weight"), None);
        assert_eq!(role_of("blk.3.attn_q.bias"), "attn_q");
        assert!(role_matches("norm", "attn_norm") && role_matches("norm", "output_norm"));
        assert!(!role_matches("norm", "attn_v"));
    }
}
