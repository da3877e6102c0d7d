//! A tokenizer built from a GGUF's `tokenizer.ggml.*` keys whose token ids
//! equal llama.cpp's (`llama_tokenize`).
//!
//! Two vocabulary kinds are supported:
//!
//! - `gpt2` (byte-level BPE): the text is split by the regular expressions
//!   llama.cpp associates with `tokenizer.ggml.pre` (applied one after the
//!   other, each match and each gap between matches becoming its own piece),
//!   every piece is mapped to GPT-2's byte alphabet and merged by the ranks of
//!   `tokenizer.ggml.merges`. The pre-tokenizer and the BPE model are the
//!   Hugging Face `tokenizers` crate's.
//! - `llama` (SentencePiece-style): spaces become `▁`, an optional space is
//!   prepended, and adjacent pieces are merged greedily by the score of the
//!   merged token (highest first, leftmost on ties); characters that form no
//!   token fall back to `<0xXX>` byte tokens. The `tokenizers` crate has no
//!   model with exactly this merge order (its BPE orders merges by a unique
//!   rank, not by score with leftmost ties), so this one is written here.
//!
//! Special tokens (control, user-defined and unknown types) are split out of
//! the text before either model runs, longest token text first, as llama.cpp
//! does; control and unknown tokens only when `parse_special` is set. For a
//! model named Phi-3 most special tokens also swallow the whitespace after
//! them, as llama.cpp's vocabulary loader sets their RSTRIP attribute.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{Model, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer, SplitDelimiterBehavior};

use super::error::{ModelError, Result};
use crate::gguf::{MetaValue, Metadata};

/// Token types stored in `tokenizer.ggml.token_type` (llama.cpp's `llama_token_type`).
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// GPT-2's pre-tokenizer expression, shared by many `tokenizer.ggml.pre` values.
const RE_GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's expression with the case-insensitive group spelled out.
const RE_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's: like Llama 3's but single digits.
const RE_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen3.5's: letters may carry combining marks.
const RE_QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Tekken's: digit runs of any length.
const RE_TEKKEN: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_PORO: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";

/// How llama.cpp pre-tokenizes a byte-level BPE vocabulary with a given
/// `tokenizer.ggml.pre` value.
struct PreSpec {
    regexes: &'static [&'static str],
    /// A piece that is itself a token is not merged (llama.cpp `ignore_merges`).
    ignore_merges: bool,
    /// Default of `add_bos` before `tokenizer.ggml.add_bos_token` overrides it.
    add_bos: bool,
}

fn pre_spec(pre: &str) -> Option<PreSpec> {
    let s = |regexes, ignore_merges, add_bos| Some(PreSpec { regexes, ignore_merges, add_bos });
    match pre {
        "default" => s(&[r"[\p{P}\$\+<=>\^~\|]+", RE_GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"], false, false),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2"
        | "jina-v5-nano" => s(&[RE_LLAMA3], true, true),
        "dbrx" | "smaug-bpe" => s(&[RE_LLAMA3], false, false),
        "falcon" => s(&[r"[\p{P}\$\+<=>\^~\|`]+", RE_GPT2, r"[0-9][0-9][0-9]"], false, false),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            s(&[r"\p{N}", RE_GPT2], false, false)
        }
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de" | "a.x-4.0" | "mellum"
        | "modern-bert" | "mpt" | "olmo" | "jais" | "exaone4" | "roberta-bpe" | "jina-v1-en" | "jina-v2-code" => {
            s(&[RE_GPT2], false, false)
        }
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "stablelm2" | "megrez" => s(&[RE_QWEN2], false, false),
        "qwen35" => s(&[RE_QWEN35], false, false),
        "tekken" => s(&[RE_TEKKEN], true, true),
        "chatglm-bpe" => s(&[RE_LLAMA3], false, false),
        "glm4" | "glm5" => s(&[RE_LLAMA3], true, false),
        "poro-chat" | "bloom" | "gpt3-finnish" => s(&[RE_PORO], false, false),
        "viking" => s(&[RE_PORO, r"\p{N}"], false, false),
        _ => None,
    }
}

enum Kind {
    /// Byte-level BPE: Hugging Face pre-tokenizer (regex splits + byte
    /// mapping) and BPE model.
    Bpe { pre: Sequence, model: Box<BPE> },
    /// SentencePiece-style score-ordered merging.
    Spm { scores: Vec<f32>, add_space_prefix: bool },
}

/// A tokenizer equivalent to llama.cpp's for one GGUF vocabulary.
pub struct Tokenizer {
    kind: Kind,
    tokens: Vec<String>,
    types: Vec<i32>,
    token_to_id: HashMap<String, u32>,
    /// Control, user-defined and unknown tokens, longest text first.
    special: Vec<u32>,
    /// Special tokens that swallow the ASCII whitespace after them when
    /// they are split out (llama.cpp's `LLAMA_TOKEN_ATTR_RSTRIP`).
    rstrip: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    /// `tokenizer.ggml.model` and `tokenizer.ggml.pre`, for display.
    model_name: String,
    pre_name: Option<String>,
    /// The file this came from, for error messages.
    path: PathBuf,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("model", &self.model_name)
            .field("pre", &self.pre_name)
            .field("n_tokens", &self.tokens.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .finish()
    }
}

/// A piece of the input after special tokens were split out.
enum Fragment {
    Text(usize, usize),
    Token(u32),
}

fn string_array<'a>(meta: &'a Metadata, path: &Path, key: &str) -> Result<Vec<&'a str>> {
    let err = |msg: &str| ModelError::Metadata { path: path.into(), key: key.into(), msg: msg.into() };
    let arr = meta.get(key).ok_or_else(|| err("missing"))?.as_array().ok_or_else(|| err("not an array"))?;
    arr.iter().map(|v| v.as_str().ok_or_else(|| err("not an array of strings"))).collect()
}

fn number_array(meta: &Metadata, path: &Path, key: &str) -> Result<Option<Vec<f64>>> {
    let Some(v) = meta.get(key) else { return Ok(None) };
    let err = |msg: &str| ModelError::Metadata { path: path.into(), key: key.into(), msg: msg.into() };
    let arr = v.as_array().ok_or_else(|| err("not an array"))?;
    arr.iter().map(|v| v.as_f64().ok_or_else(|| err("not an array of numbers"))).collect::<Result<Vec<_>>>().map(Some)
}

fn get_bool(meta: &Metadata, key: &str) -> Option<bool> {
    meta.get(key).and_then(MetaValue::as_bool)
}

impl Tokenizer {
    /// Build the tokenizer of a GGUF file from its metadata. `path` names the
    /// file in error messages.
    pub fn from_metadata(meta: &Metadata, path: &Path) -> Result<Tokenizer> {
        let terr = |msg: String| ModelError::Tokenizer { path: PathBuf::from(path), msg };
        let model_name = meta
            .get_str("tokenizer.ggml.model")
            .ok_or_else(|| ModelError::Metadata {
                path: path.into(),
                key: "tokenizer.ggml.model".into(),
                msg: "missing (the file has no tokenizer)".into(),
            })?
            .to_string();
        let pre_name = meta.get_str("tokenizer.ggml.pre").map(str::to_string);

        let mut tokens: Vec<String> =
            string_array(meta, path, "tokenizer.ggml.tokens")?.into_iter().map(str::to_string).collect();
        // An empty token text would match everywhere; llama.cpp renames it.
        for (i, t) in tokens.iter_mut().enumerate() {
            if t.is_empty() {
                *t = format!("[EMPTY_{i}]");
            }
        }
        let n = tokens.len();
        if n == 0 || n > u32::MAX as usize {
            return Err(terr(format!("vocabulary of {n} tokens")));
        }
        let types: Vec<i32> = match number_array(meta, path, "tokenizer.ggml.token_type")? {
            Some(v) if v.len() >= n => v[..n].iter().map(|&x| x as i32).collect(),
            Some(v) => return Err(terr(format!("{} token types for {n} tokens", v.len()))),
            None => vec![token_type::NORMAL; n],
        };
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, t) in tokens.iter().enumerate() {
            token_to_id.insert(t.clone(), i as u32);
        }

        let (kind, mut bos, mut eos, mut add_bos) = match model_name.as_str() {
            "gpt2" => {
                let pre = pre_name.as_deref().unwrap_or("default");
                let spec = pre_spec(pre).ok_or_else(|| {
                    terr(format!("pre-tokenizer `{pre}` (tokenizer.ggml.pre) is not supported by quantmix"))
                })?;
                let merges = string_array(meta, path, "tokenizer.ggml.merges")?;
                let mut pairs = Vec::with_capacity(merges.len());
                for m in merges {
                    // The separator is the first space after the first byte.
                    let Some(pos) = m.bytes().skip(1).position(|c| c == b' ').map(|p| p + 1) else { continue };
                    let (a, b) = (&m[..pos], &m[pos + 1..]);
                    // A merge whose parts or result are not tokens can never
                    // produce a token; the BPE model rejects such merges.
                    if token_to_id.contains_key(a)
                        && token_to_id.contains_key(b)
                        && token_to_id.contains_key(&format!("{a}{b}"))
                    {
                        pairs.push((a.to_string(), b.to_string()));
                    }
                }
                let vocab: tokenizers::models::bpe::Vocab = token_to_id.iter().map(|(k, &v)| (k.clone(), v)).collect();
                let model = BPE::builder()
                    .vocab_and_merges(vocab, pairs)
                    .ignore_merges(spec.ignore_merges)
                    .build()
                    .map_err(|e| terr(format!("building the BPE model: {e}")))?;
                let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
                for re in spec.regexes {
                    let split =
                        Split::new(SplitPattern::Regex(re.to_string()), SplitDelimiterBehavior::Isolated, false)
                            .map_err(|e| terr(format!("pre-tokenizer regex {re:?}: {e}")))?;
                    steps.push(split.into());
                }
                steps.push(ByteLevel::new(false, false, false).into());
                (Kind::Bpe { pre: Sequence::new(steps), model: Box::new(model) }, Some(11), Some(11), spec.add_bos)
            }
            "llama" => {
                let scores = match number_array(meta, path, "tokenizer.ggml.scores")? {
                    Some(v) if v.len() >= n => v[..n].iter().map(|&x| x as f32).collect(),
                    Some(v) => return Err(terr(format!("{} scores for {n} tokens", v.len()))),
                    None => vec![0.0; n],
                };
                let add_space_prefix = get_bool(meta, "tokenizer.ggml.add_space_prefix").unwrap_or(true);
                (Kind::Spm { scores, add_space_prefix }, Some(1), Some(2), true)
            }
            other => {
                return Err(terr(format!(
                    "tokenizer model `{other}` is not supported by quantmix (supported: gpt2, llama)"
                )))
            }
        };
        let special_id = |key: &str, default: Option<u32>| match meta.get_u64(key) {
            Some(id) if (id as usize) < n => Some(id as u32),
            _ => default,
        };
        bos = special_id("tokenizer.ggml.bos_token_id", bos);
        eos = special_id("tokenizer.ggml.eos_token_id", eos);
        bos = bos.filter(|&b| (b as usize) < n);
        eos = eos.filter(|&e| (e as usize) < n);
        if let Some(b) = get_bool(meta, "tokenizer.ggml.add_bos_token") {
            add_bos = b;
        }
        let add_eos = get_bool(meta, "tokenizer.ggml.add_eos_token").unwrap_or(false);
        if add_bos && bos.is_none() {
            return Err(terr("the vocabulary adds a BOS token but has none".into()));
        }
        if add_eos && eos.is_none() {
            return Err(terr("the vocabulary adds an EOS token but has none".into()));
        }

        let mut special: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                matches!(types[i as usize], token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN)
            })
            .collect();
        // Longest first; the sort is stable so equal lengths keep id order.
        special.sort_by_key(|&i| std::cmp::Reverse(tokens[i as usize].len()));

        // llama.cpp's vocabulary loader sets RSTRIP by the model's name: for
        // Phi-3 on every special token and `</s>`, then not on `<unk>`,
        // `<s>` and `<|endoftext|>` (it refuses the file when one of these
        // four is missing).
        let mut rstrip = Vec::new();
        let name = meta.get_str("general.name").unwrap_or("").to_lowercase();
        if name.contains("phi-3") || name.contains("phi3") {
            let id_of = |t: &str| {
                token_to_id.get(t).copied().ok_or_else(|| {
                    terr(format!(
                        "general.name says Phi-3 but the vocabulary has no `{t}` token (llama.cpp refuses it)"
                    ))
                })
            };
            rstrip = special.clone();
            rstrip.push(id_of("</s>")?);
            for t in ["<unk>", "<s>", "<|endoftext|>"] {
                let id = id_of(t)?;
                rstrip.retain(|&i| i != id);
            }
        }

        Ok(Tokenizer {
            kind,
            tokens,
            types,
            token_to_id,
            special,
            rstrip,
            bos,
            eos,
            add_bos,
            add_eos,
            model_name,
            pre_name,
            path: path.to_path_buf(),
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn n_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// The beginning-of-sequence token, if the vocabulary has one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token, if the vocabulary has one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether encoding with `add_special` prepends BOS (llama.cpp `llama_vocab_get_add_bos`).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// The stored text of a token (byte-level or `▁`-escaped as in the vocabulary).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// `tokenizer.ggml.model` and `tokenizer.ggml.pre`.
    pub fn describe(&self) -> String {
        match &self.pre_name {
            Some(p) => format!("{} ({p})", self.model_name),
            None => self.model_name.clone(),
        }
    }

    /// Tokenize `text` as `llama_tokenize(vocab, text, add_special, parse_special)` does.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let fragments = self.partition(text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        match &self.kind {
            Kind::Bpe { pre, model } => {
                for f in &fragments {
                    match *f {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(a, b) => self.encode_bpe(pre, model, &text[a..b], &mut out)?,
                    }
                }
            }
            Kind::Spm { scores, add_space_prefix } => {
                // A space is prepended to text at the start or after a special token.
                let mut prev_special = true;
                for f in &fragments {
                    match *f {
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                        Fragment::Text(a, b) => {
                            let mut piece = String::with_capacity(b - a + 1);
                            if *add_space_prefix && prev_special {
                                piece.push(' ');
                            }
                            piece.push_str(&text[a..b]);
                            let piece = piece.replace(' ', "\u{2581}");
                            self.encode_spm(scores, &piece, &mut out)?;
                            prev_special = false;
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        Ok(out)
    }

    /// Split special tokens out of `text`: each special token in turn
    /// (longest first) is cut out of every remaining text fragment.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Fragment::Text(0, text.len()));
        for &id in &self.special {
            let ty = self.types[id as usize];
            if !parse_special && (ty == token_type::CONTROL || ty == token_type::UNKNOWN) {
                continue;
            }
            let pat = self.tokens[id as usize].as_str();
            if !frags.iter().any(|f| matches!(*f, Fragment::Text(a, b) if text[a..b].contains(pat))) {
                continue;
            }
            let strip = self.rstrip.contains(&id);
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Fragment::Text(mut a, b) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(p) = text[a..b].find(pat) {
                    if p > 0 {
                        next.push(Fragment::Text(a, a + p));
                    }
                    next.push(Fragment::Token(id));
                    a += p + pat.len();
                    if strip {
                        // C's isspace: space, \t, \n, \v, \f, \r.
                        while a < b && matches!(text.as_bytes()[a], b' ' | b'\t'..=b'\r') {
                            a += 1;
                        }
                    }
                }
                if a < b {
                    next.push(Fragment::Text(a, b));
                }
            }
            frags = next;
        }
        frags
    }

    fn encode_bpe(&self, pre: &Sequence, model: &BPE, text: &str, out: &mut Vec<u32>) -> Result<()> {
        let err = |e: tokenizers::Error| ModelError::Tokenizer { path: self.path.clone(), msg: e.to_string() };
        let mut pts = PreTokenizedString::from(text);
        pre.pre_tokenize(&mut pts).map_err(err)?;
        for (piece, _, _) in pts.get_splits(OffsetReferential::Original, OffsetType::Byte) {
            out.extend(model.tokenize(piece).map_err(err)?.into_iter().map(|t| t.id));
        }
        Ok(())
    }

    fn encode_spm(&self, scores: &[f32], text: &str, out: &mut Vec<u32>) -> Result<()> {
        // Symbols are UTF-8 characters, linked so merged ones drop out.
        struct Sym {
            start: usize,
            len: usize,
            prev: Option<usize>,
            next: Option<usize>,
        }
        #[derive(PartialEq)]
        struct Bigram {
            score: f32,
            left: usize,
            right: usize,
            len: usize,
        }
        impl Eq for Bigram {}
        impl Ord for Bigram {
            // Highest score first; on equal scores the leftmost pair.
            fn cmp(&self, o: &Self) -> Ordering {
                self.score.total_cmp(&o.score).then_with(|| o.left.cmp(&self.left))
            }
        }
        impl PartialOrd for Bigram {
            fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
                Some(self.cmp(o))
            }
        }

        let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
        for (i, (start, c)) in text.char_indices().enumerate() {
            syms.push(Sym { start, len: c.len_utf8(), prev: i.checked_sub(1), next: Some(i + 1) });
        }
        if let Some(last) = syms.last_mut() {
            last.next = None;
        } else {
            return Ok(());
        }
        let mut heap = BinaryHeap::new();
        let try_push = |heap: &mut BinaryHeap<Bigram>, syms: &[Sym], l: Option<usize>, r: Option<usize>| {
            let (Some(l), Some(r)) = (l, r) else { return };
            let (a, len) = (syms[l].start, syms[l].len + syms[r].len);
            if let Some(&id) = self.token_to_id.get(&text[a..a + len]) {
                heap.push(Bigram { score: scores[id as usize], left: l, right: r, len });
            }
        };
        for i in 1..syms.len() {
            try_push(&mut heap, &syms, Some(i - 1), Some(i));
        }
        while let Some(bg) = heap.pop() {
            let (l, r) = (bg.left, bg.right);
            // Stale entries: one side already merged away or grown.
            if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != bg.len {
                continue;
            }
            syms[l].len += syms[r].len;
            syms[r].len = 0;
            syms[l].next = syms[r].next;
            if let Some(n) = syms[r].next {
                syms[n].prev = Some(l);
            }
            let (p, n) = (syms[l].prev, syms[l].next);
            try_push(&mut heap, &syms, p, Some(l));
            try_push(&mut heap, &syms, Some(l), n);
        }
        let mut i = Some(0);
        while let Some(k) = i {
            let s = &syms[k];
            let piece = &text[s.start..s.start + s.len];
            match self.token_to_id.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for &byte in piece.as_bytes() {
                        out.push(self.byte_token(byte)?);
                    }
                }
            }
            i = s.next;
        }
        Ok(())
    }

    /// The `<0xXX>` token of a byte (or the byte's own one-character token).
    fn byte_token(&self, byte: u8) -> Result<u32> {
        if let Some(&id) = self.token_to_id.get(&format!("<0x{byte:02X}>")) {
            return Ok(id);
        }
        if byte < 0x80 {
            if let Some(&id) = self.token_to_id.get(&(byte as char).to_string()) {
                return Ok(id);
            }
        }
        Err(ModelError::Tokenizer {
            path: self.path.clone(),
            msg: format!("byte 0x{byte:02X} has no token in the vocabulary (no <0x{byte:02X}> byte-fallback token)"),
        })
    }
}
