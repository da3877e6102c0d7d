//! Hugging Face BPE tokenizers ↔ GGUF `tokenizer.ggml.*` keys.
//!
//! HF → GGUF follows llama.cpp's converter for byte-level BPE ("gpt2")
//! vocabularies: token list and types from the tokenizer's vocabulary and
//! added tokens, merges, special token ids and `add_*_token` flags from
//! `tokenizer.json`, `tokenizer_config.json` and `config.json`, and the chat
//! template. `tokenizer.ggml.pre` is chosen the converter's way: the fixed
//! check text is encoded with the tokenizer itself (HF's `tokenizers` crate,
//! the engine behind transformers' fast tokenizers), the token ids are
//! hashed, and the hash is looked up in the converter's table
//! (`bpe_pre_hashes.json`, extracted by `tests/tools/gen_bpe_pre_hashes.py`).
//! An unknown hash is an error unless a name is given explicitly.
//!
//! GGUF → HF rebuilds `tokenizer.json` / `tokenizer_config.json` from the
//! keys, with the pre-tokenizer of the model family named by
//! `tokenizer.ggml.pre` (smollm, gpt-2, llama-bpe, qwen2).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::error::{ConvertError, Result};
use crate::gguf::{MetaType, MetaValue, Metadata};

/// llama.cpp token types.
pub const TOKEN_NORMAL: i32 = 1;
pub const TOKEN_UNUSED: i32 = 5;
pub const TOKEN_CONTROL: i32 = 3;
pub const TOKEN_USER_DEFINED: i32 = 4;

const PRE_TABLE: &str = include_str!("bpe_pre_hashes.json");

/// The special token kinds the converter handles: (HF name, GGUF id key, GGUF add-flag key).
const SPECIALS: &[(&str, &str, Option<&str>)] = &[
    ("bos", "tokenizer.ggml.bos_token_id", Some("tokenizer.ggml.add_bos_token")),
    ("eos", "tokenizer.ggml.eos_token_id", Some("tokenizer.ggml.add_eos_token")),
    ("unk", "tokenizer.ggml.unknown_token_id", None),
    ("sep", "tokenizer.ggml.seperator_token_id", Some("tokenizer.ggml.add_sep_token")),
    ("pad", "tokenizer.ggml.padding_token_id", None),
    // `cls` has no GGUF key: the converter reads it and skips it.
    ("cls", "", None),
    ("mask", "tokenizer.ggml.mask_token_id", None),
];

fn tok_err(path: &Path, msg: impl Into<String>) -> ConvertError {
    ConvertError::Tokenizer { path: path.to_path_buf(), msg: msg.into() }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| ConvertError::io(path, e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| tok_err(path, format!("invalid JSON: {e}")))
}

fn str_array(items: impl IntoIterator<Item = String>) -> MetaValue {
    MetaValue::Array(MetaType::String, items.into_iter().map(MetaValue::String).collect())
}

/// The check text and hash table of the converter.
fn pre_table() -> (String, HashMap<String, String>) {
    let v: Value = serde_json::from_str(PRE_TABLE).expect("bundled bpe_pre_hashes.json is valid JSON");
    let chk = v["chktxt"].as_str().expect("chktxt").to_string();
    let map = v["hashes"]
        .as_object()
        .expect("hashes")
        .iter()
        .map(|(k, n)| (k.clone(), n.as_str().unwrap_or_default().to_string()))
        .collect();
    (chk, map)
}

/// The converter's fingerprint of a tokenizer: sha256 of Python's
/// `str(list_of_ids)` for the check text encoded with special tokens.
pub fn pre_tokenizer_hash(tok: &tokenizers::Tokenizer, path: &Path) -> Result<String> {
    let (chk, _) = pre_table();
    let enc = tok.encode(chk.as_str(), true).map_err(|e| tok_err(path, format!("encoding the check text: {e}")))?;
    let ids: Vec<String> = enc.get_ids().iter().map(|i| i.to_string()).collect();
    let s = format!("[{}]", ids.join(", "));
    Ok(Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect())
}

/// The `tokenizer.ggml.pre` name the converter's table gives this hash.
pub fn pre_name_for_hash(hash: &str) -> Option<String> {
    pre_table().1.get(hash).cloned()
}

/// Whether a token text looks like a control token though not marked special
/// (the converter's heuristic).
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{ff5c}") && t.ends_with("\u{ff5c}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// transformers' `clean_up_tokenization`.
fn clean_up_spaces(s: &str) -> String {
    let mut s = s.to_string();
    for (a, b) in [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ] {
        s = s.replace(a, b);
    }
    s
}

/// Token content of a special-token entry of `tokenizer_config.json`
/// (a string or an `{"content": …}` object).
fn entry_content(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// Build the `tokenizer.ggml.*` (and `tokenizer.chat_template`) keys for a
/// byte-level BPE tokenizer in `dir`, in the converter's order, onto `meta`.
///
/// `vocab_size` is `config.json`'s (the token list is padded to it);
/// `llama_quirks` applies LlamaModel's extras (`add_space_prefix` from
/// `add_prefix_space`, and `add_bos_token = false` for 49152-token vocabularies).
pub fn add_hf_tokenizer(
    dir: &Path,
    config: &Value,
    vocab_size: Option<u64>,
    pre_hint: Option<&str>,
    llama_quirks: bool,
    meta: &mut Metadata,
) -> Result<()> {
    let tj_path = dir.join("tokenizer.json");
    let tc_path = dir.join("tokenizer_config.json");
    let mut tj = read_json(&tj_path)?.ok_or_else(|| {
        if dir.join("tokenizer.model").is_file() {
            tok_err(dir, "SentencePiece tokenizers (tokenizer.model) are not supported; only a BPE tokenizer.json")
        } else {
            tok_err(&tj_path, "missing: a Hugging Face tokenizer.json is required")
        }
    })?;
    let mut tc = read_json(&tc_path)?;
    if dir.join("tokenizer.model").is_file() {
        return Err(tok_err(dir, "SentencePiece tokenizers (tokenizer.model) are not supported; only byte-level BPE"));
    }
    let model = tj.get("model").cloned().unwrap_or(Value::Null);
    if model.get("type").and_then(Value::as_str) != Some("BPE") {
        return Err(tok_err(&tj_path, "tokenizer model is not BPE; only byte-level BPE tokenizers are supported"));
    }
    if model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
        return Err(tok_err(
            &tj_path,
            "BPE with byte_fallback (a SentencePiece-style llama vocabulary) is not supported; only byte-level BPE",
        ));
    }

    if llama_quirks {
        if let Some(b) = tc.as_ref().and_then(|c| c.get("add_prefix_space")).and_then(Value::as_bool) {
            meta.set("tokenizer.ggml.add_space_prefix", MetaValue::Bool(b));
        }
    }

    // transformers' LlamaTokenizerFast replaces the post-processor by a
    // template built from add_bos_token / add_eos_token.
    let class = tc.as_ref().and_then(|c| c.get("tokenizer_class")).and_then(Value::as_str).unwrap_or("");
    if matches!(class, "LlamaTokenizer" | "LlamaTokenizerFast" | "CodeLlamaTokenizer" | "CodeLlamaTokenizerFast") {
        let c = tc.as_ref().expect("class came from the config");
        let add_bos = c.get("add_bos_token").and_then(Value::as_bool).unwrap_or(true);
        let add_eos = c.get("add_eos_token").and_then(Value::as_bool).unwrap_or(false);
        let bos = entry_content(c.get("bos_token"));
        let eos = entry_content(c.get("eos_token"));
        let vocab_of = |t: &str| -> Option<u64> {
            tj["added_tokens"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["content"] == t))
                .and_then(|x| x["id"].as_u64())
                .or_else(|| tj["model"]["vocab"].get(t).and_then(Value::as_u64))
        };
        let mut single = Vec::new();
        let mut specials = Map::new();
        let mut special = |t: &Option<String>| -> Option<Value> {
            let t = t.as_ref()?;
            let id = vocab_of(t)?;
            specials.insert(t.clone(), json!({"id": t, "ids": [id], "tokens": [t]}));
            Some(json!({"SpecialToken": {"id": t, "type_id": 0}}))
        };
        if add_bos {
            single.extend(special(&bos));
        }
        single.push(json!({"Sequence": {"id": "A", "type_id": 0}}));
        if add_eos {
            single.extend(special(&eos));
        }
        let mut pair = single.clone();
        for x in &single {
            let mut x = x.clone();
            if x.get("Sequence").is_some() {
                x = json!({"Sequence": {"id": "B", "type_id": 1}});
            } else {
                x["SpecialToken"]["type_id"] = json!(1);
            }
            pair.push(x);
        }
        tj["post_processor"] =
            json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials});
    }

    let bytes = serde_json::to_vec(&tj).map_err(|e| tok_err(&tj_path, e.to_string()))?;
    let mut tok = tokenizers::Tokenizer::from_bytes(&bytes)
        .map_err(|e| tok_err(&tj_path, format!("the tokenizers crate cannot load it: {e}")))?;
    tok.with_truncation(None).map_err(|e| tok_err(&tj_path, e.to_string()))?;
    tok.with_padding(None);

    // Token list and types, as the converter's get_vocab_base.
    let vocab = tok.get_vocab(true);
    let max_id = vocab.values().copied().max().map(|m| m as u64 + 1).unwrap_or(0);
    let n_vocab = vocab_size.unwrap_or(vocab.len() as u64);
    if max_id > n_vocab {
        return Err(tok_err(&tj_path, format!("token id {} is not below vocab_size {n_vocab}", max_id - 1)));
    }
    let mut reverse: HashMap<u32, String> = HashMap::with_capacity(vocab.len());
    for (t, &i) in &vocab {
        reverse.insert(i, t.clone());
    }
    let added = tok.get_added_tokens_decoder();
    let cleanup =
        tc.as_ref().and_then(|c| c.get("clean_up_tokenization_spaces")).and_then(Value::as_bool) == Some(true);
    let mut tokens = Vec::with_capacity(n_vocab as usize);
    let mut types = Vec::with_capacity(n_vocab as usize);
    for i in 0..n_vocab as u32 {
        let Some(t) = reverse.get(&i) else {
            tokens.push(format!("[PAD{i}]"));
            types.push(TOKEN_UNUSED);
            continue;
        };
        let mut t = t.clone();
        // An added token is in the added vocabulary only if its id maps back to it.
        match added.get(&i).filter(|a| a.content == t) {
            Some(a) => {
                if !a.normalized {
                    let ids = tok
                        .encode(t.as_str(), false)
                        .map_err(|e| tok_err(&tj_path, format!("encoding added token {t:?}: {e}")))?;
                    let mut d = tok
                        .decode(ids.get_ids(), false)
                        .map_err(|e| tok_err(&tj_path, format!("decoding added token {t:?}: {e}")))?;
                    if cleanup {
                        d = clean_up_spaces(&d);
                    }
                    t = d;
                }
                if a.special || looks_special(&t) {
                    types.push(TOKEN_CONTROL);
                } else {
                    t = t.replace('\u{2581}', " ");
                    types.push(TOKEN_USER_DEFINED);
                }
            }
            None => types.push(TOKEN_NORMAL),
        }
        tokens.push(t);
    }

    let pre = match pre_hint {
        Some(p) => p.to_string(),
        None => {
            let h = pre_tokenizer_hash(&tok, &tj_path)?;
            pre_name_for_hash(&h).ok_or_else(|| {
                tok_err(
                    &tj_path,
                    format!(
                        "BPE pre-tokenizer not recognised (check-text hash {h} is not in llama.cpp's table); \
                         pass the llama.cpp pre-tokenizer name explicitly (--tokenizer-pre)"
                    ),
                )
            })?
        }
    };
    meta.set("tokenizer.ggml.model", MetaValue::String("gpt2".into()));
    meta.set("tokenizer.ggml.pre", MetaValue::String(pre));
    meta.set("tokenizer.ggml.tokens", str_array(tokens));
    meta.set(
        "tokenizer.ggml.token_type",
        MetaValue::Array(MetaType::I32, types.into_iter().map(MetaValue::I32).collect()),
    );

    add_special_vocab(dir, &tj, tc.as_mut(), config, &tj_path, meta)?;

    if llama_quirks && vocab_size == Some(49152) {
        meta.set("tokenizer.ggml.add_bos_token", MetaValue::Bool(false));
    }
    Ok(())
}

/// The converter's SpecialVocab: merges, special ids, add flags, chat template, normalizer flags.
fn add_special_vocab(
    dir: &Path,
    tj: &Value,
    mut tc: Option<&mut Value>,
    config: &Value,
    tj_path: &Path,
    meta: &mut Metadata,
) -> Result<()> {
    // Merges: "a b" strings, or [a, b] pairs whose spaces are encoded as U+0120.
    let mut merges: Vec<String> = Vec::new();
    if let Some(list) = tj["model"]["merges"].as_array() {
        for m in list {
            match m {
                Value::String(s) => merges.push(s.clone()),
                Value::Array(p) if p.len() == 2 && p.iter().all(Value::is_string) => {
                    let enc = |s: &str| s.chars().map(|c| if c == ' ' { '\u{0120}' } else { c }).collect::<String>();
                    merges.push(format!(
                        "{} {}",
                        enc(p[0].as_str().unwrap_or_default()),
                        enc(p[1].as_str().unwrap_or_default())
                    ));
                }
                _ => return Err(tok_err(tj_path, "unknown format of model.merges")),
            }
        }
    }
    let mut lowercase = None;
    let mut strip_accents = None;
    fn parse_norm(n: &Value, lc: &mut Option<bool>, sa: &mut Option<bool>) {
        match n.get("type").and_then(Value::as_str) {
            Some("Lowercase") => *lc = Some(true),
            Some("StripAccents") => *sa = Some(true),
            Some("BertNormalizer") => {
                if let Some(b) = n.get("lowercase").and_then(Value::as_bool) {
                    *lc = Some(b);
                }
                if let Some(b) = n.get("strip_accents").and_then(Value::as_bool) {
                    *sa = Some(b);
                }
            }
            Some("Sequence") => {
                for m in n.get("normalizers").and_then(Value::as_array).into_iter().flatten() {
                    parse_norm(m, lc, sa);
                }
            }
            _ => {}
        }
    }
    if let Some(n) = tj.get("normalizer").filter(|n| !n.is_null()) {
        parse_norm(n, &mut lowercase, &mut strip_accents);
    }
    let added: Vec<(String, u64)> = tj["added_tokens"]
        .as_array()
        .map(|a| {
            a.iter().filter_map(|x| Some((x["content"].as_str()?.to_string(), x["id"].as_u64()?))).collect::<Vec<_>>()
        })
        .unwrap_or_default();

    let mut add_flags: Vec<(String, bool)> = Vec::new();
    let set_default = |flags: &mut Vec<(String, bool)>, k: &str, v: bool| {
        if !flags.iter().any(|(x, _)| x == k) {
            flags.push((k.to_string(), v));
        }
    };
    let set_flag = |flags: &mut Vec<(String, bool)>, k: &str, v: bool| {
        if let Some(e) = flags.iter_mut().find(|(x, _)| x == k) {
            e.1 = v;
        } else {
            flags.push((k.to_string(), v));
        }
    };
    let get_tc = |tc: &Option<&mut Value>, k: &str| tc.as_ref().and_then(|c| entry_content(c.get(k)));
    let mut special_bos = get_tc(&tc, "bos_token");
    let special_cls = get_tc(&tc, "cls_token");
    let mut special_eos = get_tc(&tc, "eos_token");
    let special_sep = get_tc(&tc, "sep_token");
    if let Some(c) = tc.as_deref_mut() {
        if special_bos.is_none() && special_cls.is_some() {
            c["bos_token"] = json!(special_cls);
            special_bos = special_cls.clone();
        }
        if special_eos.is_none() && special_sep.is_some() {
            c["eos_token"] = json!(special_sep);
            special_eos = special_sep.clone();
        }
    }
    if let Some(pp) = tj.get("post_processor").filter(|p| !p.is_null()) {
        let procs: Vec<&Value> = match pp.get("processors").and_then(Value::as_array) {
            Some(list) => list.iter().collect(),
            None => vec![pp],
        };
        for p in procs {
            match p.get("type").and_then(Value::as_str) {
                Some("ByteLevel") => {
                    set_default(&mut add_flags, "bos", false);
                    set_default(&mut add_flags, "eos", false);
                }
                Some("RobertaProcessing") => {
                    for k in ["bos", "eos", "sep"] {
                        set_flag(&mut add_flags, k, true);
                    }
                }
                Some("TemplateProcessing") => {
                    // The simple cases: a leading BOS/CLS, a trailing EOS.
                    let single = p.get("single").and_then(Value::as_array).cloned().unwrap_or_default();
                    if single.len() > 1 {
                        let first = single[0]["SpecialToken"]["id"].as_str().map(str::to_string);
                        if let Some(f) = first.filter(|f| !f.is_empty()) {
                            if tc.is_none() {
                                special_bos = Some(f.clone());
                            }
                            let ok = Some(&f) == special_bos.as_ref() || Some(&f) == special_cls.as_ref();
                            set_flag(&mut add_flags, "bos", ok);
                        }
                        let last = single[single.len() - 1]["SpecialToken"]["id"].as_str().map(str::to_string);
                        if let Some(l) = last.filter(|l| !l.is_empty()) {
                            if tc.is_none() {
                                special_eos = Some(l.clone());
                            }
                            set_flag(&mut add_flags, "eos", Some(&l) == special_eos.as_ref());
                        }
                    }
                }
                _ => {}
            }
        }
    }

    let mut ids: Vec<(&str, u64)> = Vec::new();
    let set_id = |ids: &mut Vec<(&'static str, u64)>, typ: &'static str, id: Option<u64>| {
        if let Some(id) = id {
            if !ids.iter().any(|(t, _)| *t == typ) {
                ids.push((typ, id));
            }
        }
    };
    let mut chat_template: Option<String> = None;
    if let Some(c) = tc.as_deref() {
        let jinja = dir.join("chat_template.jinja");
        let alt = if jinja.is_file() {
            Some(std::fs::read_to_string(&jinja).map_err(|e| ConvertError::io(&jinja, e))?)
        } else {
            read_json(&dir.join("chat_template.json"))?
                .and_then(|v| v.get("chat_template").and_then(Value::as_str).map(str::to_string))
        };
        chat_template = c.get("chat_template").and_then(Value::as_str).map(str::to_string).or(alt);
        for &(typ, _, _) in SPECIALS {
            if let Some(b) = c.get(format!("add_{typ}_token")).and_then(Value::as_bool) {
                set_default(&mut add_flags, typ, b);
            }
            let content = if typ == "bos" {
                special_bos.clone().or_else(|| entry_content(c.get("bos_token")))
            } else if typ == "eos" {
                special_eos.clone().or_else(|| entry_content(c.get("eos_token")))
            } else {
                entry_content(c.get(format!("{typ}_token")))
            };
            if let Some(content) = content {
                set_id(&mut ids, typ, added.iter().find(|(t, _)| *t == content).map(|(_, i)| *i));
            }
        }
    }
    for &(typ, _, _) in SPECIALS {
        let v =
            config.get(format!("{typ}_token_id")).or_else(|| config.get("text_config")?.get(format!("{typ}_token_id")));
        set_id(&mut ids, typ, v.and_then(Value::as_u64));
    }
    // The converter emits ids in the order they were found.
    if !merges.is_empty() {
        meta.set("tokenizer.ggml.merges", str_array(merges));
    }
    for (typ, id) in ids {
        let key = SPECIALS.iter().find(|s| s.0 == typ).map(|s| s.1).unwrap_or("");
        if !key.is_empty() {
            let id = u32::try_from(id).map_err(|_| tok_err(tj_path, format!("{typ} token id {id} out of range")))?;
            meta.set(key, MetaValue::U32(id));
        }
    }
    for (typ, v) in add_flags {
        if let Some(key) = SPECIALS.iter().find(|s| s.0 == typ).and_then(|s| s.2) {
            meta.set(key, MetaValue::Bool(v));
        }
    }
    if let Some(t) = chat_template {
        meta.set("tokenizer.chat_template", MetaValue::String(t));
    }
    if let Some(b) = lowercase {
        meta.set("tokenizer.ggml.normalizer.lowercase", MetaValue::Bool(b));
    }
    if let Some(b) = strip_accents {
        meta.set("tokenizer.ggml.normalizer.strip_accents", MetaValue::Bool(b));
    }
    Ok(())
}

// ---------------------------------------------------------------- GGUF → HF

/// Pre-tokenizer regexes of the BPE families we can export (llama.cpp's
/// `llama-vocab.cpp` names them by `tokenizer.ggml.pre`).
const LLAMA3_REGEX: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

fn byte_level(use_regex: bool) -> Value {
    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex})
}

/// (normalizer, pre_tokenizer) for a `tokenizer.ggml.pre` name.
fn pre_tokenizer_for(pre: &str) -> Option<(Value, Value)> {
    let split = |re: &str| json!({"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false});
    Some(match pre {
        "smollm" => (
            Value::Null,
            json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        ),
        "gpt-2" | "gpt2" => (Value::Null, byte_level(true)),
        "llama-bpe" | "llama3" | "smaug-bpe" => {
            (Value::Null, json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_REGEX), byte_level(false)]}))
        }
        "qwen2" | "deepseek-r1-qwen" => (
            json!({"type": "NFC"}),
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), byte_level(false)]}),
        ),
        _ => return None,
    })
}

fn meta_str_list<'a>(meta: &'a Metadata, key: &str) -> Option<Vec<&'a str>> {
    meta.get(key)?.as_array()?.iter().map(MetaValue::as_str).collect()
}

/// The HF tokenizer files rebuilt from a GGUF's `tokenizer.ggml.*` keys.
pub struct HfTokenizerFiles {
    pub tokenizer_json: Value,
    pub tokenizer_config: Value,
}

/// Rebuild `tokenizer.json` and `tokenizer_config.json` from a GGUF
/// (byte-level BPE, `tokenizer.ggml.model = gpt2`).
pub fn hf_tokenizer_from_gguf(meta: &Metadata, path: &Path) -> Result<HfTokenizerFiles> {
    let model = meta.get_str("tokenizer.ggml.model").unwrap_or("");
    if model != "gpt2" {
        return Err(tok_err(
            path,
            format!("tokenizer.ggml.model `{model}`: only byte-level BPE (gpt2) can be exported"),
        ));
    }
    let pre = meta.get_str("tokenizer.ggml.pre").unwrap_or("default");
    let (normalizer, pre_tok) = pre_tokenizer_for(pre).ok_or_else(|| {
        tok_err(path, format!("tokenizer.ggml.pre `{pre}`: export supports smollm, gpt-2, llama-bpe and qwen2"))
    })?;
    let tokens = meta_str_list(meta, "tokenizer.ggml.tokens")
        .ok_or_else(|| tok_err(path, "tokenizer.ggml.tokens missing or not a string array"))?;
    let types: Vec<i64> = match meta.get("tokenizer.ggml.token_type").and_then(MetaValue::as_array) {
        Some(a) => a
            .iter()
            .map(|v| match v {
                MetaValue::I32(x) => Some(*x as i64),
                other => other.as_u64().map(|x| x as i64),
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| tok_err(path, "tokenizer.ggml.token_type is not an integer array"))?,
        None => vec![TOKEN_NORMAL as i64; tokens.len()],
    };
    if types.len() != tokens.len() {
        return Err(tok_err(path, format!("{} tokens but {} token types", tokens.len(), types.len())));
    }
    let merges = meta_str_list(meta, "tokenizer.ggml.merges").unwrap_or_default();

    let mut vocab = Map::new();
    let mut added = Vec::new();
    let mut added_decoder = Map::new();
    for (i, (&t, &ty)) in tokens.iter().zip(&types).enumerate() {
        if ty == TOKEN_UNUSED as i64 && t == format!("[PAD{i}]") {
            continue;
        }
        if vocab.insert(t.to_string(), json!(i)).is_some() {
            return Err(tok_err(path, format!("token {t:?} appears twice in tokenizer.ggml.tokens (id {i})")));
        }
        if ty == TOKEN_CONTROL as i64 || ty == TOKEN_USER_DEFINED as i64 {
            let special = ty == TOKEN_CONTROL as i64;
            let entry = json!({"content": t, "single_word": false, "lstrip": false, "rstrip": false,
                               "normalized": false, "special": special});
            added_decoder.insert(i.to_string(), entry.clone());
            let mut e = entry;
            e.as_object_mut().expect("object").insert("id".into(), json!(i));
            added.push(e);
        }
    }
    // added_tokens are listed with the id first, as the tokenizers crate writes them.
    let added: Vec<Value> = added
        .into_iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("id".into(), e["id"].clone());
            for k in ["content", "single_word", "lstrip", "rstrip", "normalized", "special"] {
                m.insert(k.into(), e[k].clone());
            }
            Value::Object(m)
        })
        .collect();

    let id_of = |key: &str| meta.get_u64(key).filter(|&i| (i as usize) < tokens.len());
    let bos = id_of("tokenizer.ggml.bos_token_id");
    let eos = id_of("tokenizer.ggml.eos_token_id");
    let add_bos = meta.get("tokenizer.ggml.add_bos_token").and_then(MetaValue::as_bool);
    let add_eos = meta.get("tokenizer.ggml.add_eos_token").and_then(MetaValue::as_bool);
    let byte_level_pp =
        json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true});
    let post = if add_bos == Some(true) || add_eos == Some(true) {
        let mut specials = Map::new();
        let mut special = |id: Option<u64>, type_id: u32| -> Option<Value> {
            let t = tokens[id? as usize];
            specials.insert(t.to_string(), json!({"id": t, "ids": [id], "tokens": [t]}));
            Some(json!({"SpecialToken": {"id": t, "type_id": type_id}}))
        };
        let mut single = Vec::new();
        let mut pair = Vec::new();
        for (seq, type_id) in [("A", 0u32), ("B", 1)] {
            let v = if seq == "A" { &mut single } else { &mut pair };
            if add_bos == Some(true) {
                v.extend(special(bos, type_id));
            }
            v.push(json!({"Sequence": {"id": seq, "type_id": type_id}}));
            if add_eos == Some(true) {
                v.extend(special(eos, type_id));
            }
        }
        let pair: Vec<Value> = single.iter().cloned().chain(pair).collect();
        json!({"type": "Sequence", "processors": [
            byte_level_pp,
            {"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials}
        ]})
    } else {
        byte_level_pp
    };
    let tokenizer_json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tok,
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        },
    });

    let mut tc = BTreeMap::new();
    if let Some(b) = meta.get("tokenizer.ggml.add_space_prefix").and_then(MetaValue::as_bool) {
        tc.insert("add_prefix_space", json!(b));
    }
    if let Some(b) = add_bos {
        tc.insert("add_bos_token", json!(b));
    }
    if let Some(b) = add_eos {
        tc.insert("add_eos_token", json!(b));
    }
    tc.insert("added_tokens_decoder", Value::Object(added_decoder));
    for (typ, key, _) in SPECIALS {
        if key.is_empty() {
            continue;
        }
        if let Some(id) = id_of(key) {
            let name: &'static str = match *typ {
                "bos" => "bos_token",
                "eos" => "eos_token",
                "unk" => "unk_token",
                "sep" => "sep_token",
                "pad" => "pad_token",
                _ => "mask_token",
            };
            tc.insert(name, json!(tokens[id as usize]));
        }
    }
    if let Some(t) = meta.get_str("tokenizer.chat_template") {
        tc.insert("chat_template", json!(t));
    }
    tc.insert("clean_up_tokenization_spaces", json!(false));
    if let Some(n) = meta.arch_u64("context_length") {
        tc.insert("model_max_length", json!(n));
    }
    tc.insert("tokenizer_class", json!("PreTrainedTokenizerFast"));
    let tokenizer_config = serde_json::to_value(tc).expect("string-keyed map");
    Ok(HfTokenizerFiles { tokenizer_json, tokenizer_config })
}
