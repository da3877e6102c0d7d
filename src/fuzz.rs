//! Fuzzing entry points: one function per reader of untrusted input, each
//! taking arbitrary bytes. Any input must give a value or an error, never a
//! panic, an abort or a huge allocation; what a reader accepts must be
//! self-consistent (checked here with assertions: a failed one is a bug).
//! Each returns whether the input was accepted (a mutation harness keeps
//! accepted inputs to mutate further).
//!
//! The cargo-fuzz targets in `fuzz/` (nightly, coverage-guided) and the
//! seeded-mutation smoke test `tests/fuzz_smoke.rs` (stable, run by `cargo
//! test`) call these same functions.

use std::path::Path;

use crate::gguf::{GgmlType, MetaValue, Metadata, TensorInfo};

/// The GGUF header parser: whatever it accepts has its data offset aligned,
/// every tensor inside the input and no two tensors overlapping.
pub fn gguf_header(data: &[u8]) -> bool {
    let Ok(h) = crate::gguf::parse_header(Path::new("fuzz.gguf"), data) else { return false };
    assert_eq!(h.data_offset % h.alignment, 0);
    let mut ranges = Vec::with_capacity(h.tensors.len());
    for t in &h.tensors {
        let start = h.data_offset + t.offset;
        let end = start + t.n_bytes();
        assert!(end <= data.len() as u64, "tensor {} outside the input", t.name);
        ranges.push((start, end));
    }
    ranges.sort();
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlapping tensors accepted");
    }
    true
}

/// The safetensors header parser: every accepted tensor's bytes lie inside
/// the input, are exactly `shape × dtype size` long, and do not overlap.
pub fn safetensors_header(data: &[u8]) -> bool {
    let Ok((tensors, _)) = crate::convert::safetensors::parse_header(Path::new("fuzz.safetensors"), data) else {
        return false;
    };
    let mut ranges = Vec::with_capacity(tensors.len());
    for t in &tensors {
        assert!(t.start + t.len <= data.len() as u64, "tensor {} outside the input", t.name);
        assert_eq!(t.n_elements() * t.dtype.size() as u64, t.len, "tensor {}", t.name);
        ranges.push((t.start, t.start + t.len));
    }
    ranges.sort();
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlapping tensors accepted");
    }
    true
}

/// A small model for recipes and budgets to be resolved against: 4 layers,
/// 256-wide, F16 matrices and F32 norms.
pub fn small_model() -> (Metadata, Vec<TensorInfo>) {
    let mut md = Metadata::default();
    md.set("general.architecture", MetaValue::String("llama".into()));
    md.set("llama.block_count", MetaValue::U32(4));
    md.set("llama.attention.head_count", MetaValue::U32(4));
    md.set("llama.attention.head_count_kv", MetaValue::U32(2));
    let mut tensors = Vec::new();
    let mut add = |name: String, shape: Vec<u64>, ty: GgmlType| tensors.push(TensorInfo { name, shape, ty, offset: 0 });
    add("token_embd.weight".into(), vec![256, 64], GgmlType::F16);
    add("output_norm.weight".into(), vec![256], GgmlType::F32);
    for l in 0..4 {
        add(format!("blk.{l}.attn_norm.weight"), vec![256], GgmlType::F32);
        add(format!("blk.{l}.attn_q.weight"), vec![256, 256], GgmlType::F16);
        add(format!("blk.{l}.attn_k.weight"), vec![256, 128], GgmlType::F16);
        add(format!("blk.{l}.attn_v.weight"), vec![256, 128], GgmlType::F16);
        add(format!("blk.{l}.ffn_down.weight"), vec![512, 256], GgmlType::F16);
        add(format!("blk.{l}.ffn_up.weight"), vec![256, 512], GgmlType::F16);
    }
    (md, tensors)
}

/// The recipe parser, and when a recipe parses, its resolution for a small
/// model: every tensor gets a plan, each with a type its row length takes.
pub fn recipe(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let Ok(r) = crate::recipe::Recipe::from_toml_str(&text, "fuzz.toml") else { return false };
    let (md, tensors) = small_model();
    let info = crate::recipe::ModelInfo::from_metadata(&md, &tensors);
    if let Ok(plan) = crate::plan::resolve(&r, &info, &tensors, None) {
        assert_eq!(plan.tensors.len(), tensors.len());
        for (p, t) in plan.tensors.iter().zip(&tensors) {
            assert_eq!(p.name, t.name);
            assert_eq!(t.row_len() % p.ty.block_size() as u64, 0, "{}: {} does not fit", t.name, p.ty);
        }
    }
    true
}

/// The importance matrix reader (GGUF and legacy formats): whatever it
/// accepts holds only finite, non-negative statistics, and the importance
/// vectors derived from it are finite.
pub fn imatrix(data: &[u8]) -> bool {
    let Ok(m) = crate::sensitivity::imatrix::Imatrix::parse(Path::new("fuzz.imatrix"), data) else { return false };
    for (name, v) in m.importance() {
        assert!(v.iter().all(|x| x.is_finite()), "non-finite importance for {name}");
    }
    true
}

/// The sensitivity file reader, and when a file parses, an allocation
/// under a budget for the small model: it succeeds or fails with an error,
/// and a plan it returns fits the budget.
pub fn sensitivity_json(data: &[u8]) -> bool {
    let path = Path::new("fuzz.json");
    let Ok(mut table) = crate::sensitivity::schema::SensitivityTable::parse(path, data) else { return false };
    table.update_rank_correlation();
    let (md, tensors) = small_model();
    let base = match crate::recipe::Recipe::from_toml_str("[budget]\nbpw = 16.0\n", "budget") {
        Ok(r) => r,
        Err(e) => panic!("the built-in recipe parses: {e}"),
    };
    for limit in [crate::recipe::Budget::Bpw(4.5), crate::recipe::Budget::Bytes(400_000)] {
        let req = crate::plan::budget::BudgetRequest {
            base: &base,
            table: &table,
            table_path: path,
            limit: &limit,
            imatrix: None,
            imatrix_name: None,
            origin: "fuzz".into(),
        };
        if let Ok(p) = crate::plan::budget::plan_under_budget(&md, &tensors, &req) {
            assert!(p.tensor_bytes <= p.file_bytes);
            match limit {
                crate::recipe::Budget::Bytes(b) => assert!(p.file_bytes <= b),
                crate::recipe::Budget::Bpw(_) => assert!(p.tensor_bytes <= p.limit_bytes),
            }
        }
    }
    true
}
