//! Checks of a checkpoint's values and shapes during conversion: every
//! value finite, every tensor's shape what `config.json` says.

use crate::gguf::GgmlType;

/// The index of the first NaN or infinite value of little-endian `ty`
/// (F32, F16 or BF16) data.
pub fn first_non_finite(bytes: &[u8], ty: GgmlType) -> Option<usize> {
    match ty {
        GgmlType::F32 => bytes.chunks_exact(4).position(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite()),
        GgmlType::F16 => bytes.chunks_exact(2).position(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7c00 == 0x7c00),
        _ => bytes.chunks_exact(2).position(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7f80 == 0x7f80),
    }
}

/// The sizes `config.json` gives, for checking the checkpoint's shapes.
pub struct ConfigDims {
    pub hidden: Option<u64>,
    pub ff: Option<u64>,
    pub vocab: Option<u64>,
    /// Query heads × head size.
    pub q: Option<u64>,
    /// Key/value heads × head size.
    pub kv: Option<u64>,
}

impl ConfigDims {
    /// The HF (row-major) shape a GGUF-named tensor must have, when the
    /// config gives every size it depends on.
    pub fn expected(&self, gguf_name: &str) -> Option<Vec<u64>> {
        let role = gguf_name.rsplit_once("blk.").map_or(gguf_name, |(_, r)| r.split_once('.').map_or(r, |x| x.1));
        let (h, ff, q, kv) = (self.hidden, self.ff, self.q, self.kv);
        let two = |a: Option<u64>, b: Option<u64>| Some(vec![a?, b?]);
        match role {
            "token_embd.weight" | "output.weight" => two(self.vocab, h),
            "output_norm.weight" | "attn_norm.weight" | "ffn_norm.weight" | "attn_output.bias" => Some(vec![h?]),
            "attn_q.weight" => two(q, h),
            "attn_k.weight" | "attn_v.weight" => two(kv, h),
            "attn_output.weight" => two(h, q),
            "attn_q.bias" => Some(vec![q?]),
            "attn_k.bias" | "attn_v.bias" => Some(vec![kv?]),
            "ffn_gate.weight" | "ffn_up.weight" => two(ff, h),
            "ffn_down.weight" => two(h, ff),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        let f = |n: &str, v: Option<u64>| v.map(|v| format!("{n} {v}"));
        [f("hidden_size", self.hidden), f("intermediate_size", self.ff), f("vocab_size", self.vocab)]
            .into_iter()
            .flatten()
            .chain(self.q.map(|q| format!("heads × head size {q}")))
            .chain(self.kv.map(|kv| format!("key/value heads × head size {kv}")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
