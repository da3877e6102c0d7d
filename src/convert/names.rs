//! Hugging Face ↔ GGUF tensor names for the llama family, and the Q/K row
//! permutation llama.cpp's converter applies to llama attention weights.

/// (HF suffix inside `model.layers.N.`, GGUF suffix inside `blk.N.`), without `.weight`/`.bias`.
const BLOCK: &[(&str, &str)] = &[
    ("input_layernorm", "attn_norm"),
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("post_attention_layernorm", "ffn_norm"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

/// Tensors outside the blocks: (HF name, GGUF name).
const GLOBAL: &[(&str, &str)] = &[
    ("model.embed_tokens.weight", "token_embd.weight"),
    ("model.norm.weight", "output_norm.weight"),
    ("lm_head.weight", "output.weight"),
];

fn split_suffix(name: &str) -> Option<(&str, &str)> {
    for s in [".weight", ".bias"] {
        if let Some(stem) = name.strip_suffix(s) {
            return Some((stem, s));
        }
    }
    None
}

/// The GGUF name of an HF tensor, and its block number; `None` if the name
/// is not one of a llama-family model with `n_blocks` blocks.
pub fn hf_to_gguf(name: &str, n_blocks: u64) -> Option<(String, Option<u64>)> {
    if let Some(&(_, g)) = GLOBAL.iter().find(|(h, _)| *h == name) {
        return Some((g.to_string(), None));
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (num, rest) = rest.split_once('.')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || (num.len() > 1 && num.starts_with('0')) {
        return None;
    }
    let bid: u64 = num.parse().ok()?;
    if bid >= n_blocks {
        return None;
    }
    let (stem, suffix) = split_suffix(rest)?;
    let &(_, g) = BLOCK.iter().find(|(h, _)| *h == stem)?;
    Some((format!("blk.{bid}.{g}{suffix}"), Some(bid)))
}

/// The HF name of a GGUF tensor (inverse of [`hf_to_gguf`]).
pub fn gguf_to_hf(name: &str) -> Option<String> {
    if let Some(&(h, _)) = GLOBAL.iter().find(|(_, g)| *g == name) {
        return Some(h.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (num, rest) = rest.split_once('.')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (stem, suffix) = split_suffix(rest)?;
    let &(h, _) = BLOCK.iter().find(|(_, g)| *g == stem)?;
    Some(format!("model.layers.{num}.{h}{suffix}"))
}

/// Reorder the rows of a Q or K projection (`n_rows × row_len`, row-major)
/// the way llama.cpp's converter does for llama: within each of `n_head`
/// heads, the rows are viewed as `[2][half]` and transposed to `[half][2]`,
/// turning HF's rotate-half RoPE layout into ggml's interleaved pairs.
/// `inverse` undoes it. The caller checks `n_rows % (2 * n_head) == 0`.
pub fn permute_qk_rows<T: Copy>(data: &[T], row_len: usize, n_head: usize, inverse: bool) -> Vec<T> {
    let n_rows = data.len() / row_len;
    let per_head = n_rows / n_head;
    let half = per_head / 2;
    let mut out = Vec::with_capacity(data.len());
    for dst in 0..n_rows {
        let (h, r) = (dst / per_head, dst % per_head);
        // Forward: destination row (h, j, i) takes source row (h, i, j).
        let src_in_head = if inverse {
            // Destination (h, i, j) takes source (h, j, i).
            let (i, j) = (r / half, r % half);
            j * 2 + i
        } else {
            let (j, i) = (r / 2, r % 2);
            i * half + j
        };
        let s = h * per_head + src_in_head;
        out.extend_from_slice(&data[s * row_len..(s + 1) * row_len]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in [
            "model.embed_tokens.weight",
            "lm_head.weight",
            "model.norm.weight",
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.7.self_attn.k_proj.bias",
            "model.layers.29.mlp.down_proj.weight",
            "model.layers.3.post_attention_layernorm.weight",
        ] {
            let (g, _) = hf_to_gguf(n, 30).unwrap();
            assert_eq!(gguf_to_hf(&g).unwrap(), n);
        }
        assert_eq!(hf_to_gguf("model.layers.2.self_attn.q_proj.weight", 30).unwrap().0, "blk.2.attn_q.weight");
        assert!(hf_to_gguf("model.layers.30.self_attn.q_proj.weight", 30).is_none());
        assert!(hf_to_gguf("model.layers.01.self_attn.q_proj.weight", 30).is_none());
        assert!(hf_to_gguf("model.layers.1.self_attn.rotary_emb.inv_freq", 30).is_none());
    }

    #[test]
    fn permutation_matches_reshape_swap() {
        // 2 heads of 6 rows (half = 3), 1 column: rows h*6 + i*3 + j.
        let src: Vec<u32> = (0..12).collect();
        let p = permute_qk_rows(&src, 1, 2, false);
        // reshape(2, 2, 3).swapaxes(1, 2): [h][j][i] = src[h*6 + i*3 + j]
        assert_eq!(p, vec![0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]);
        assert_eq!(permute_qk_rows(&p, 1, 2, true), src);
        let wide: Vec<u32> = (0..48).collect();
        assert_eq!(permute_qk_rows(&permute_qk_rows(&wide, 4, 2, false), 4, 2, true), wide);
    }
}
