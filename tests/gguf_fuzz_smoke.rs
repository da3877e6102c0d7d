//! Seeded mutations of valid GGUF files fed to the reader: it must return
//! (Ok or a GgufError) without panicking, and whatever it accepts must be
//! self-consistent (every tensor's bytes inside the buffer, no overlaps).
//! The coverage-guided version of this is the cargo-fuzz target in `fuzz/`.

mod common;

use std::path::Path;

use quantmix::gguf::{parse_header, GgmlType, GgufFile, GgufHeader, GgufWriter, MetaType, MetaValue, TensorSpec};

use common::Rng;

/// Small valid files: synth12's metadata (1024-entry vocabulary, merges)
/// with a handful of small tensors of assorted types, plus a file with a
/// nested array and every scalar metadata type.
fn bases() -> Vec<Vec<u8>> {
    let dir = common::tempdir();
    let g = GgufFile::open(common::fixture("presets/synth12-llama-f16.gguf")).unwrap();
    let tensors = [
        ("token_embd.weight", vec![256u64, 4], GgmlType::F16),
        ("blk.0.attn_q.weight", vec![256, 2], GgmlType::Q4_K),
        ("blk.0.attn_k.weight", vec![64, 3], GgmlType::Q8_0),
        ("blk.0.ffn_up.weight", vec![32, 1, 2], GgmlType::Q4_0),
        ("blk.0.attn_norm.weight", vec![7], GgmlType::F32),
        ("output.weight", vec![256, 1], GgmlType::Q6_K),
    ];
    let specs: Vec<TensorSpec> =
        tensors.iter().map(|(n, s, t)| TensorSpec { name: n.to_string(), shape: s.clone(), ty: *t }).collect();
    let write = |name: &str, meta: &quantmix::gguf::Metadata, align: u64| {
        let p = dir.path().join(name);
        let mut w = GgufWriter::create(&p, meta, &specs, align).unwrap();
        for s in &specs {
            let n = s.n_bytes().unwrap() as usize;
            w.write_tensor(&(0..n).map(|i| (i * 31 % 256) as u8).collect::<Vec<_>>()).unwrap();
        }
        w.finish().unwrap();
        std::fs::read(&p).unwrap()
    };
    let a = write("a.gguf", g.metadata(), 32);
    let mut m = quantmix::gguf::Metadata::default();
    m.set("general.architecture", MetaValue::String("llama".into()));
    m.set("u8", MetaValue::U8(7));
    m.set("i8", MetaValue::I8(-7));
    m.set("u16", MetaValue::U16(700));
    m.set("i16", MetaValue::I16(-700));
    m.set("i32", MetaValue::I32(-70000));
    m.set("f32", MetaValue::F32(0.5));
    m.set("bool", MetaValue::Bool(true));
    m.set("u64", MetaValue::U64(1 << 40));
    m.set("i64", MetaValue::I64(-(1 << 40)));
    m.set("f64", MetaValue::F64(-0.25));
    let inner = |k: u32| MetaValue::Array(MetaType::U32, (0..k).map(MetaValue::U32).collect());
    m.set("nested", MetaValue::Array(MetaType::Array, vec![inner(3), inner(0), inner(5)]));
    m.set("empty", MetaValue::Array(MetaType::String, vec![]));
    let b = write("b.gguf", &m, 64);
    vec![a, b]
}

const INTERESTING: [u64; 12] =
    [0, 1, 2, 3, 31, 32, 255, 0xffff_ffff, 0x8000_0000_0000_0000, u64::MAX, u64::MAX - 31, 1 << 33];

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    // Most interesting mutations are in the header: bias positions there.
    let header_len = parse_header(Path::new("base"), base).unwrap().data_offset as usize;
    for _ in 0..1 + rng.below(4) {
        let pos = if rng.below(4) == 0 { rng.below(v.len()) } else { rng.below(header_len.min(v.len())) };
        match rng.below(7) {
            0 => v[pos] ^= 1 << rng.below(8),
            1 => v[pos] = rng.next() as u8,
            2 => {
                let x = INTERESTING[rng.below(INTERESTING.len())];
                let end = (pos + 8).min(v.len());
                let n = end - pos;
                v[pos..end].copy_from_slice(&x.to_le_bytes()[..n]);
            }
            3 => {
                let x = INTERESTING[rng.below(INTERESTING.len())] as u32;
                let end = (pos + 4).min(v.len());
                let n = end - pos;
                v[pos..end].copy_from_slice(&x.to_le_bytes()[..n]);
            }
            4 => v.truncate(pos),
            5 => {
                let n = rng.below(64).min(v.len() - pos);
                v.drain(pos..pos + n);
            }
            _ => {
                let n = rng.below(64);
                let fill: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(pos..pos, fill);
            }
        }
        if v.is_empty() {
            break;
        }
    }
    v
}

fn check_consistent(h: &GgufHeader, buf: &[u8]) {
    assert!(h.data_offset.is_multiple_of(h.alignment));
    let mut ranges: Vec<(u64, u64)> = h
        .tensors
        .iter()
        .map(|t| {
            let start = h.data_offset + t.offset;
            let end = start + t.n_bytes();
            assert!(end <= buf.len() as u64, "tensor {} outside the buffer", t.name);
            assert!(t.ty.row_bytes(t.row_len()).is_some());
            (start, end)
        })
        .collect();
    ranges.sort();
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlap accepted");
    }
}

#[test]
fn seeded_mutations_never_panic() {
    let bases = bases();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut err) = (0, 0);
    let mut kinds = std::collections::BTreeMap::new();
    for i in 0..6000 {
        let base = &bases[i % bases.len()];
        let m = mutate(&mut rng, base);
        let r = std::panic::catch_unwind(|| parse_header(Path::new("fuzz.gguf"), &m));
        match r {
            Err(_) => {
                let p = std::env::temp_dir().join(format!("quantmix-fuzz-crash-{i}.gguf"));
                std::fs::write(&p, &m).unwrap();
                panic!("reader panicked on mutation {i} (saved to {})", p.display());
            }
            Ok(Ok(h)) => {
                check_consistent(&h, &m);
                ok += 1;
            }
            Ok(Err(e)) => {
                assert!(e.to_string().starts_with("fuzz.gguf"), "{e}");
                let k = format!("{:?}", e.kind).split(['(', ' ', '{']).next().unwrap().to_string();
                *kinds.entry(k).or_insert(0) += 1;
                err += 1;
            }
        }
    }
    eprintln!("{ok} accepted, {err} rejected: {kinds:?}");
    // The mutations must exercise both outcomes and many different checks.
    assert!(ok > 100 && err > 1000, "{ok} accepted, {err} rejected");
    assert!(kinds.len() >= 10, "only {} error kinds reached: {kinds:?}", kinds.len());
}
