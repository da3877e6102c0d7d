//! Malformed GGUF files: every bad field and every truncation point gives
//! its own error kind, at the right byte offset, naming the file — never a
//! panic or an allocation sized by a lying length.

mod common;

use std::path::Path;

use quantmix::gguf::{parse_header, GgmlType, GgufError, GgufErrorKind, GgufFile, GgufWriter, MetaValue, Metadata};

/// A hand-assembled GGUF file that records where each field starts.
#[derive(Default)]
struct Builder {
    buf: Vec<u8>,
    marks: Vec<(String, usize)>,
}

impl Builder {
    fn mark(&mut self, name: &str) {
        self.marks.push((name.to_string(), self.buf.len()));
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &[u8]) {
        self.u64(s.len() as u64);
        self.buf.extend_from_slice(s);
    }
    fn pad(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }
}

/// A key/value: key bytes and the encoded type tag + value.
struct Kv {
    key: Vec<u8>,
    ty: u32,
    value: Vec<u8>,
}

struct Tensor {
    name: Vec<u8>,
    dims: Vec<u64>,
    ty: u32,
    offset: u64,
}

struct Spec {
    version: u32,
    kvs: Vec<Kv>,
    tensors: Vec<Tensor>,
    data_len: usize,
}

fn string_value(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

const VOCAB: usize = 20;

/// The valid file every case starts from: 3 keys (a string, a string array,
/// general.alignment), an F32 tensor of 1024 bytes and a Q4_0 tensor of 72.
fn valid() -> Spec {
    let mut tokens = 8u32.to_le_bytes().to_vec();
    tokens.extend_from_slice(&(VOCAB as u64).to_le_bytes());
    for i in 0..VOCAB {
        tokens.extend_from_slice(&string_value(&format!("tok{i}")));
    }
    Spec {
        version: 3,
        kvs: vec![
            Kv { key: b"general.architecture".to_vec(), ty: 8, value: string_value("llama") },
            Kv { key: b"tokenizer.ggml.tokens".to_vec(), ty: 9, value: tokens },
            Kv { key: b"general.alignment".to_vec(), ty: 4, value: 32u32.to_le_bytes().to_vec() },
        ],
        tensors: vec![
            Tensor { name: b"token_embd.weight".to_vec(), dims: vec![64, 4], ty: 0, offset: 0 },
            Tensor { name: b"blk.0.attn_q.weight".to_vec(), dims: vec![64, 2], ty: 2, offset: 1024 },
        ],
        data_len: 1024 + 96,
    }
}

fn build(spec: &Spec) -> Builder {
    let mut b = Builder::default();
    b.mark("magic");
    b.buf.extend_from_slice(b"GGUF");
    b.mark("version");
    b.u32(spec.version);
    b.mark("n_tensors");
    b.u64(spec.tensors.len() as u64);
    b.mark("n_kv");
    b.u64(spec.kvs.len() as u64);
    for (i, kv) in spec.kvs.iter().enumerate() {
        b.mark(&format!("kv{i}"));
        b.str(&kv.key);
        b.mark(&format!("kv{i}.type"));
        b.u32(kv.ty);
        b.mark(&format!("kv{i}.value"));
        b.buf.extend_from_slice(&kv.value);
    }
    for (i, t) in spec.tensors.iter().enumerate() {
        b.mark(&format!("t{i}"));
        b.str(&t.name);
        b.mark(&format!("t{i}.n_dims"));
        b.u32(t.dims.len() as u32);
        for (d, &v) in t.dims.iter().enumerate() {
            b.mark(&format!("t{i}.dim{d}"));
            b.u64(v);
        }
        b.mark(&format!("t{i}.type"));
        b.u32(t.ty);
        b.mark(&format!("t{i}.offset"));
        b.u64(t.offset);
    }
    b.mark("padding");
    b.pad(32);
    b.mark("data");
    let start = b.buf.len();
    b.buf.extend((0..spec.data_len).map(|i| (i * 7 % 251) as u8));
    for (i, t) in spec.tensors.iter().enumerate() {
        if (t.offset as usize) < spec.data_len {
            b.marks.push((format!("t{i}.data"), start + t.offset as usize));
        }
    }
    b.mark("end");
    b
}

fn at(b: &Builder, mark: &str) -> usize {
    b.marks.iter().find(|(n, _)| n == mark).unwrap_or_else(|| panic!("no mark {mark}")).1
}

fn patch_u32(b: &mut Builder, mark: &str, rel: usize, v: u32) {
    let o = at(b, mark) + rel;
    b.buf[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

fn patch_u64(b: &mut Builder, mark: &str, rel: usize, v: u64) {
    let o = at(b, mark) + rel;
    b.buf[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

fn parse(buf: &[u8]) -> Result<quantmix::gguf::GgufHeader, GgufError> {
    parse_header(Path::new("/models/bad.gguf"), buf)
}

/// (case, how to break the valid file, expected kind, mark + relative offset of the error, text in the message)
type Case<F> = (&'static str, F, &'static str, (&'static str, usize), &'static str);

fn kind_name(k: &GgufErrorKind) -> String {
    format!("{k:?}").split(['(', ' ', '{']).next().unwrap().to_string()
}

/// Check an error's kind, byte offset and message.
fn expect(case: &str, r: Result<quantmix::gguf::GgufHeader, GgufError>, kind: &str, offset: Option<usize>, text: &str) {
    let e = match r {
        Ok(_) => panic!("{case}: parsed a malformed file"),
        Err(e) => e,
    };
    assert_eq!(kind_name(&e.kind), kind, "{case}: {e}");
    if let Some(o) = offset {
        assert_eq!(e.offset, Some(o as u64), "{case}: {e}");
    }
    let msg = e.to_string();
    assert!(msg.starts_with("/models/bad.gguf"), "{case}: message does not name the file: {msg}");
    if let Some(o) = e.offset {
        assert!(msg.contains(&format!("at byte offset {o}")), "{case}: {msg}");
    }
    assert!(msg.contains(text), "{case}: message lacks `{text}`: {msg}");
}

#[test]
fn the_valid_file_parses_and_matches_our_writer() {
    let b = build(&valid());
    let h = parse(&b.buf).unwrap();
    assert_eq!(h.version, 3);
    assert_eq!(h.metadata.len(), 3);
    assert_eq!(h.tensors.len(), 2);
    assert_eq!(h.data_offset as usize, at(&b, "data"));
    // Our writer produces exactly this file from the parsed header.
    let dir = common::tempdir();
    let out = dir.path().join("w.gguf");
    let specs: Vec<_> = h
        .tensors
        .iter()
        .map(|t| quantmix::gguf::TensorSpec { name: t.name.clone(), shape: t.shape.clone(), ty: t.ty })
        .collect();
    let mut w = GgufWriter::create(&out, &h.metadata, &specs, 32).unwrap();
    for t in &h.tensors {
        let s = (h.data_offset + t.offset) as usize;
        w.write_tensor(&b.buf[s..s + t.n_bytes() as usize]).unwrap();
    }
    w.finish().unwrap();
    // (The builder fills the last tensor's padding with data; the writer with zeros.)
    let written = std::fs::read(&out).unwrap();
    let end = at(&b, "t1.data") + 72;
    assert_eq!(written.len(), b.buf.len());
    assert!(written[..end] == b.buf[..end]);
    assert!(written[end..].iter().all(|&x| x == 0));
    // Version 2 has the same layout (u64 counts) and parses the same.
    let mut v2 = valid();
    v2.version = 2;
    let h2 = parse(&build(&v2).buf).unwrap();
    assert_eq!(h2.version, 2);
    assert_eq!(h2.tensors, h.tensors);
    assert_eq!(h2.metadata, h.metadata);
}

#[test]
fn bad_fields() {
    type Patch = Box<dyn Fn(&mut Builder)>;
    let patches: Vec<Case<Patch>> = vec![
        ("bad magic", Box::new(|b| b.buf[..4].copy_from_slice(b"GGML")), "BadMagic", ("magic", 0), "\"GGML\""),
        ("version 1", Box::new(|b| patch_u32(b, "version", 0, 1)), "UnsupportedVersion", ("version", 0), "version 1"),
        ("version 4", Box::new(|b| patch_u32(b, "version", 0, 4)), "UnsupportedVersion", ("version", 0), "version 4"),
        ("version 0", Box::new(|b| patch_u32(b, "version", 0, 0)), "UnsupportedVersion", ("version", 0), "version 0"),
        (
            "big-endian",
            Box::new(|b| patch_u32(b, "version", 0, 3u32.swap_bytes())),
            "BigEndian",
            ("version", 0),
            "big-endian",
        ),
        (
            "lying tensor count",
            Box::new(|b| patch_u64(b, "n_tensors", 0, 1 << 40)),
            "LengthExceedsFile",
            ("n_tensors", 0),
            "tensor count",
        ),
        (
            "lying metadata count",
            Box::new(|b| patch_u64(b, "n_kv", 0, u64::MAX)),
            "LengthExceedsFile",
            ("n_kv", 0),
            "metadata count",
        ),
        (
            "lying key length",
            Box::new(|b| patch_u64(b, "kv1", 0, u64::MAX / 2)),
            "LengthExceedsFile",
            ("kv1", 0),
            "metadata key #1",
        ),
        (
            "lying string value length",
            Box::new(|b| patch_u64(b, "kv0.value", 0, 1 << 33)),
            "LengthExceedsFile",
            ("kv0.value", 0),
            "general.architecture",
        ),
        (
            "lying array length",
            Box::new(|b| patch_u64(b, "kv1.value", 4, 1 << 50)),
            "LengthExceedsFile",
            ("kv1.value", 4),
            "tokenizer.ggml.tokens",
        ),
        (
            "array length slightly too long",
            Box::new(|b| patch_u64(b, "kv1.value", 4, VOCAB as u64 + 200)),
            "LengthExceedsFile",
            ("kv1.value", 4),
            "tokenizer.ggml.tokens",
        ),
        (
            "unknown metadata type",
            Box::new(|b| patch_u32(b, "kv0.type", 0, 13)),
            "UnknownMetaType",
            ("kv0.type", 0),
            "unknown metadata value type 13",
        ),
        (
            "unknown array element type",
            Box::new(|b| patch_u32(b, "kv1.value", 0, 77)),
            "UnknownMetaType",
            ("kv1.value", 0),
            "type 77",
        ),
        (
            "key not UTF-8",
            Box::new(|b| {
                let o = at(b, "kv0") + 8;
                b.buf[o] = 0xff;
            }),
            "InvalidUtf8",
            ("kv0", 0),
            "UTF-8",
        ),
        (
            "alignment zero",
            Box::new(|b| patch_u32(b, "kv2.value", 0, 0)),
            "BadAlignment",
            ("kv2.type", 0),
            "alignment 0",
        ),
        (
            "alignment not a power of two",
            Box::new(|b| patch_u32(b, "kv2.value", 0, 48)),
            "BadAlignment",
            ("kv2.type", 0),
            "alignment 48",
        ),
        (
            "alignment of the wrong type",
            Box::new(|b| patch_u32(b, "kv2.type", 0, 5)),
            "BadMetadata",
            ("kv2.type", 0),
            "must be a u32",
        ),
        (
            "lying tensor name length",
            Box::new(|b| patch_u64(b, "t1", 0, 1 << 45)),
            "LengthExceedsFile",
            ("t1", 0),
            "tensor info #1 name",
        ),
        ("five dims", Box::new(|b| patch_u32(b, "t0.n_dims", 0, 5)), "TooManyDims", ("t0.n_dims", 0), "5 dimensions"),
        ("zero dims", Box::new(|b| patch_u32(b, "t0.n_dims", 0, 0)), "TooManyDims", ("t0.n_dims", 0), "0 dimensions"),
        ("zero dim", Box::new(|b| patch_u64(b, "t0.dim1", 0, 0)), "BadDim", ("t0.dim1", 0), "dimension 1"),
        ("negative dim", Box::new(|b| patch_u64(b, "t0.dim0", 0, u64::MAX)), "BadDim", ("t0.dim0", 0), "dimension 0"),
        (
            "dims product overflows",
            Box::new(|b| {
                patch_u64(b, "t0.dim0", 0, 1 << 32);
                patch_u64(b, "t0.dim1", 0, 1 << 32);
            }),
            "DimOverflow",
            ("t0.n_dims", 0),
            "overflows",
        ),
        (
            "unknown tensor type id",
            Box::new(|b| patch_u32(b, "t1.type", 0, 4)),
            "UnknownTensorType",
            ("t1.type", 0),
            "unknown ggml type id 4",
        ),
        (
            "huge tensor type id",
            Box::new(|b| patch_u32(b, "t1.type", 0, 0xdead_beef)),
            "UnknownTensorType",
            ("t1.type", 0),
            "3735928559",
        ),
        (
            "row not a multiple of the block",
            Box::new(|b| patch_u64(b, "t1.dim0", 0, 48)),
            "RowNotBlockMultiple",
            ("t1.dim0", 0),
            "row length 48",
        ),
        ("misaligned offset", Box::new(|b| patch_u64(b, "t1.offset", 0, 1000)), "Misaligned", ("t1.offset", 0), "1000"),
        (
            "overlapping tensors",
            Box::new(|b| patch_u64(b, "t1.offset", 0, 992)),
            "Overlap",
            ("data", 992),
            "`token_embd.weight` and `blk.0.attn_q.weight` overlap",
        ),
        (
            "offset past the end",
            Box::new(|b| patch_u64(b, "t1.offset", 0, 1 << 20)),
            "DataOutOfBounds",
            ("data", 1 << 20),
            "blk.0.attn_q.weight",
        ),
        (
            "offset + size overflows",
            Box::new(|b| patch_u64(b, "t1.offset", 0, u64::MAX - 31)),
            "DataOutOfBounds",
            ("-", 0),
            "blk.0.attn_q.weight",
        ),
        (
            "tensor larger than the data",
            Box::new(|b| patch_u64(b, "t0.dim1", 0, 400)),
            "DataOutOfBounds",
            ("data", 0),
            "token_embd.weight",
        ),
    ];
    let valid_b = build(&valid());
    for (case, patch, kind, (mark, rel), text) in patches {
        let mut b = build(&valid());
        patch(&mut b);
        // "-": the offset saturates (data offset + a tensor offset near u64::MAX).
        let off = if mark == "-" { None } else { Some(at(&b, mark) + rel) };
        expect(case, parse(&b.buf), kind, off, text);
        assert_eq!(b.buf.len(), valid_b.buf.len());
    }
}

#[test]
fn bad_structure() {
    type Edit = Box<dyn Fn(&mut Spec)>;
    let cases: Vec<Case<Edit>> = vec![
        (
            "duplicate key",
            Box::new(|s| s.kvs[2] = Kv { key: b"general.architecture".to_vec(), ty: 8, value: string_value("x") }),
            "DuplicateKey",
            ("kv2", 0),
            "general.architecture",
        ),
        ("empty key", Box::new(|s| s.kvs[1].key.clear()), "BadMetadata", ("kv1", 0), "empty key"),
        (
            "nested arrays too deep",
            Box::new(|s| {
                // 20 levels of array-of-array, innermost empty u8 array.
                let mut v = Vec::new();
                for _ in 0..20 {
                    v.extend_from_slice(&9u32.to_le_bytes());
                    v.extend_from_slice(&1u64.to_le_bytes());
                }
                v.extend_from_slice(&0u32.to_le_bytes());
                v.extend_from_slice(&0u64.to_le_bytes());
                s.kvs[1] = Kv { key: b"x.nested".to_vec(), ty: 9, value: v };
            }),
            "NestingTooDeep",
            ("kv1.value", 8 * 12),
            "x.nested",
        ),
        (
            "duplicate tensor",
            Box::new(|s| s.tensors[1].name = s.tensors[0].name.clone()),
            "DuplicateTensor",
            ("t1", 0),
            "token_embd.weight",
        ),
        (
            "tensor name too long",
            Box::new(|s| s.tensors[1].name = vec![b'n'; 64]),
            "BadTensorName",
            ("t1", 0),
            "64 bytes",
        ),
        ("empty tensor name", Box::new(|s| s.tensors[0].name.clear()), "BadTensorName", ("t0", 0), "0 bytes"),
        (
            "tensor name not UTF-8",
            Box::new(|s| s.tensors[0].name = vec![b'a', 0xc3]),
            "InvalidUtf8",
            ("t0", 0),
            "tensor info #0 name",
        ),
        (
            "data section shorter than declared",
            Box::new(|s| s.data_len = 1024 + 40),
            "DataOutOfBounds",
            ("t1.data", 0),
            "blk.0.attn_q.weight",
        ),
    ];
    for (case, edit, kind, (mark, rel), text) in cases {
        let mut s = valid();
        edit(&mut s);
        let b = build(&s);
        expect(case, parse(&b.buf), kind, Some(at(&b, mark) + rel), text);
    }
}

#[test]
fn truncation_at_every_section_boundary() {
    let full = build(&valid());
    // (cut before this mark + delta, expected kind, text in the message)
    let cases: &[(&str, isize, &str, &str)] = &[
        ("version", -4, "Truncated", "magic"),
        ("version", -2, "Truncated", "magic"),
        ("version", 0, "Truncated", "version"),
        ("version", 3, "Truncated", "version"),
        ("n_tensors", 0, "Truncated", "tensor count"),
        ("n_tensors", 5, "Truncated", "tensor count"),
        ("n_kv", 0, "Truncated", "metadata count"),
        ("kv0", 0, "LengthExceedsFile", "metadata count"),
        ("kv0", 4, "LengthExceedsFile", "metadata count"),
        ("kv1", 0, "Truncated", "metadata key #1"),
        ("kv1", 10, "LengthExceedsFile", "metadata key #1"),
        ("kv1.type", 0, "Truncated", "tokenizer.ggml.tokens"),
        ("kv1.value", 0, "Truncated", "tokenizer.ggml.tokens"),
        ("kv1.value", 4, "Truncated", "tokenizer.ggml.tokens"),
        ("kv1.value", 12, "LengthExceedsFile", "tokenizer.ggml.tokens"),
        ("kv1.value", 100, "LengthExceedsFile", "tokenizer.ggml.tokens"),
        ("kv2", -3, "LengthExceedsFile", "tokenizer.ggml.tokens"),
        ("kv2", -13, "Truncated", "tokenizer.ggml.tokens"),
        ("kv2", 0, "Truncated", "metadata key #2"),
        ("kv2.value", 0, "Truncated", "general.alignment"),
        ("t0", 0, "LengthExceedsFile", "tensor count"),
        ("t0", 20, "LengthExceedsFile", "tensor count"),
        ("t1", 0, "LengthExceedsFile", "tensor count"),
        ("t1.n_dims", 0, "Truncated", "blk.0.attn_q.weight"),
        ("t1.dim1", 0, "Truncated", "blk.0.attn_q.weight"),
        ("t1.type", 0, "Truncated", "blk.0.attn_q.weight"),
        ("t1.offset", 0, "Truncated", "blk.0.attn_q.weight"),
        ("t1.offset", 7, "Truncated", "blk.0.attn_q.weight"),
        ("padding", 0, "DataOutOfBounds", "token_embd.weight"),
        ("data", 0, "DataOutOfBounds", "token_embd.weight"),
        ("data", 1023, "DataOutOfBounds", "token_embd.weight"),
        ("t1.data", 0, "DataOutOfBounds", "blk.0.attn_q.weight"),
        ("t1.data", 71, "DataOutOfBounds", "blk.0.attn_q.weight"),
    ];
    for &(mark, delta, kind, text) in cases {
        let cut = (at(&full, mark) as isize + delta) as usize;
        let case = format!("cut at {mark}{delta:+} (byte {cut})");
        let r = parse(&full.buf[..cut]);
        expect(&case, r, kind, None, text);
        let e = parse(&full.buf[..cut]).unwrap_err();
        assert!(e.offset.is_some_and(|o| o <= (at(&full, "end") as u64)), "{case}: {e}");
    }
    // Cutting only the padding after the last tensor is harmless; cutting into it is not.
    assert!(parse(&full.buf[..at(&full, "t1.data") + 72]).is_ok());
    // Every other cut fails cleanly too.
    for cut in 0..full.buf.len() {
        if cut >= at(&full, "t1.data") + 72 {
            assert!(parse(&full.buf[..cut]).is_ok());
        } else {
            assert!(parse(&full.buf[..cut]).is_err(), "cut at {cut} parsed");
        }
    }
}

#[test]
fn open_names_the_file() {
    let dir = common::tempdir();
    let p = dir.path().join("broken-model.gguf");
    let mut b = build(&valid());
    patch_u32(&mut b, "t1.type", 0, 31);
    std::fs::write(&p, &b.buf).unwrap();
    let e = GgufFile::open(&p).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("broken-model.gguf"), "{msg}");
    assert!(msg.contains("blk.0.attn_q.weight") && msg.contains("unknown ggml type id 31"), "{msg}");
    assert!(msg.contains(&format!("at byte offset {}", at(&b, "t1.type"))), "{msg}");
    // A missing file is an I/O error naming the path.
    let e = GgufFile::open(dir.path().join("nope.gguf")).unwrap_err();
    assert!(matches!(e.kind, GgufErrorKind::Io(_)) && e.to_string().contains("nope.gguf"));
    // Sanity: the writer refuses to produce what the reader refuses.
    let mut m = Metadata::default();
    m.set("general.alignment", MetaValue::U64(32));
    let spec = quantmix::gguf::TensorSpec { name: "t".into(), shape: vec![32], ty: GgmlType::F32 };
    assert!(GgufWriter::create(&dir.path().join("o.gguf"), &m, &[spec], 32).is_err());
}
