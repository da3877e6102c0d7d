//! Recipes: which ggml type each tensor gets.
//!
//! A recipe is a TOML file (format in `recipes/README.md`): a `default` type
//! and/or a llama.cpp `preset` as the base choice, an ordered list of
//! `[[rule]]`s that override it for the tensors they match (by role, name
//! glob or regex, and layer set), optional `[fallback]` overrides for row
//! lengths a type cannot take, and optional `[imatrix]` and `[budget]`
//! sections.
//!
//! Resolution, per tensor, in this order:
//! 1. tensors llama.cpp never quantizes (1-D, norms, …) keep their type;
//! 2. the base: the preset's choice (llama.cpp's logic) or the default;
//! 3. the FIRST rule that matches overrides it (`keep` = the source type);
//! 4. if the type's block does not divide the row length, the fallback
//!    (llama.cpp's table unless overridden; F16 when nothing fits).
//!
//! Resolution itself is [`crate::plan::resolve`]: a recipe is the input,
//! the typed [`crate::plan::Plan`] the result.

pub mod layers;
pub mod llama;
pub mod roles;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::gguf::{GgmlType, TensorInfo};
use layers::LayerSet;
pub use llama::{ModelInfo, Preset};

/// A recipe error; `line` is 1-based in the recipe file when known.
#[derive(Debug, thiserror::Error)]
#[error("{origin}{}: {msg}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct RecipeError {
    pub origin: String,
    pub line: Option<usize>,
    pub msg: String,
}

/// The type a rule (or the default) asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeChoice {
    Type(GgmlType),
    /// Leave the tensor as in the source.
    Keep,
}

impl fmt::Display for TypeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeChoice::Type(t) => f.write_str(t.name()),
            TypeChoice::Keep => f.write_str("keep"),
        }
    }
}

fn parse_choice(s: &str) -> Result<TypeChoice, String> {
    if s.eq_ignore_ascii_case("keep") {
        return Ok(TypeChoice::Keep);
    }
    match GgmlType::from_name(s) {
        Some(t) if crate::quant::caps(t).writable => Ok(TypeChoice::Type(t)),
        Some(t) => Err(format!("quantmix cannot write type {t}")),
        None => Err(format!("unknown type `{s}` (expected a ggml type such as Q4_K, Q8_0, F16, or `keep`)")),
    }
}

/// One `[[rule]]`.
#[derive(Clone, Debug)]
pub struct Rule {
    /// 1-based position among the rules.
    pub index: usize,
    pub line: usize,
    pub roles: Vec<String>,
    pub name: Option<String>,
    pub regex: Option<regex::Regex>,
    pub layers: Option<LayerSet>,
    pub ty: TypeChoice,
    pub why: Option<String>,
    /// A rule that may match nothing (e.g. `output` in a recipe meant for
    /// models with and without tied embeddings).
    pub optional: bool,
}

impl Rule {
    /// Whether the rule selects tensor `t` of a model with `n_layer` layers.
    pub fn matches(&self, t: &TensorInfo, n_layer: u32) -> bool {
        let role = roles::role_of(&t.name);
        if !self.roles.is_empty() && !self.roles.iter().any(|r| roles::role_matches(r, role)) {
            return false;
        }
        if let Some(g) = &self.name {
            if !glob_match(g, &t.name) {
                return false;
            }
        }
        if let Some(re) = &self.regex {
            if !re.is_match(&t.name) {
                return false;
            }
        }
        if let Some(ls) = &self.layers {
            match roles::layer_of(&t.name) {
                Some(l) if ls.contains(l, n_layer) => {}
                _ => return false,
            }
        }
        true
    }
}

/// `*` matches any run of characters, `?` one character.
pub fn glob_match(pattern: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The largest bits-per-weight budget (F32's 32 bits; nothing is larger).
pub const MAX_BPW: f64 = 32.0;
/// The largest size budget: 1 PiB (larger is a typo, not a model).
pub const MAX_BYTES: u64 = 1 << 50;

/// A size limit: the whole output file in bytes, or the tensor data in
/// bits per weight (over all tensors, as the quant map counts it).
#[derive(Clone, Debug, PartialEq)]
pub enum Budget {
    Bytes(u64),
    Bpw(f64),
}

impl Budget {
    /// Parse `105500000`, `105.5MB`, `100MiB`, `1.2GB` or `4.5bpw`.
    pub fn parse(s: &str) -> Option<Budget> {
        let t = s.trim();
        if let Some(b) = t.strip_suffix("bpw").or_else(|| t.strip_suffix("BPW")) {
            return b.trim().parse::<f64>().ok().and_then(|v| Budget::bpw(v).ok());
        }
        parse_size(t).and_then(|b| Budget::bytes(b).ok())
    }

    /// A bits-per-weight limit: finite, above 0 and at most 32 (F32).
    pub fn bpw(v: f64) -> Result<Budget, String> {
        if v.is_finite() && v > 0.0 && v <= MAX_BPW {
            Ok(Budget::Bpw(v))
        } else {
            Err(format!("{v} bits per weight (expected a number above 0 and at most {MAX_BPW}, F32's size)"))
        }
    }

    /// A size limit: at least 1 byte and at most [`MAX_BYTES`].
    pub fn bytes(b: u64) -> Result<Budget, String> {
        if b > 0 && b <= MAX_BYTES {
            Ok(Budget::Bytes(b))
        } else {
            Err(format!("{b} bytes (expected at least 1 and at most {MAX_BYTES}, 1 PiB)"))
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Bytes(b) => write!(f, "{b} bytes"),
            Budget::Bpw(b) => write!(f, "{b} bits per weight"),
        }
    }
}

/// The `[budget]` section: a limit and the measured sensitivities the
/// allocator spends it by.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetSpec {
    pub limit: Budget,
    /// Line of the `[budget]` section in the recipe file.
    pub line: Option<usize>,
    /// `sensitivity.json` written by `quantmix sensitivity` (relative paths
    /// are resolved against the recipe's directory).
    pub sensitivity: Option<PathBuf>,
}

/// A parsed, validated recipe.
#[derive(Clone, Debug)]
pub struct Recipe {
    /// File name (or `preset Q4_K_M`, `--type Q4_K`) for messages.
    pub origin: String,
    /// The file it was read from (`None` for a preset or `--type`).
    pub path: Option<PathBuf>,
    /// The TOML text (stored in the output's metadata).
    pub text: String,
    pub preset: Option<Preset>,
    pub default: Option<TypeChoice>,
    pub rules: Vec<Rule>,
    pub fallback: BTreeMap<GgmlType, GgmlType>,
    pub imatrix: Option<PathBuf>,
    pub budget: Option<BudgetSpec>,
    /// Lines (1-based) of `default`, `preset`, `[imatrix]` and each
    /// `[fallback]` entry, for errors found later (planning, loading).
    pub lines: RecipeLines,
}

/// Where the recipe's settings are (1-based lines).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecipeLines {
    pub default: Option<usize>,
    pub preset: Option<usize>,
    pub imatrix: Option<usize>,
    pub fallback: BTreeMap<GgmlType, usize>,
}

impl Recipe {
    /// `origin:line` for a line of the recipe (the origin alone without one).
    pub fn at(&self, line: Option<usize>) -> String {
        match line {
            Some(l) => format!("{}:{l}", self.origin),
            None => self.origin.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeDe {
    preset: Option<toml::Spanned<String>>,
    default: Option<toml::Spanned<String>>,
    #[serde(default)]
    rule: Vec<toml::Spanned<RuleDe>>,
    #[serde(default)]
    fallback: BTreeMap<String, toml::Spanned<String>>,
    imatrix: Option<toml::Spanned<ImatrixDe>>,
    budget: Option<toml::Spanned<BudgetDe>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDe {
    role: Option<String>,
    roles: Option<Vec<String>>,
    name: Option<String>,
    regex: Option<String>,
    layers: Option<String>,
    #[serde(rename = "type")]
    ty: String,
    why: Option<String>,
    #[serde(default)]
    optional: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImatrixDe {
    file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetDe {
    size: Option<toml::Spanned<toml::Value>>,
    bpw: Option<toml::Spanned<f64>>,
    sensitivity: Option<PathBuf>,
}

/// Parse a size: a plain integer (bytes) or with a `KB`, `MB`, `GB` (×1000)
/// or `KiB`, `MiB`, `GiB` (×1024) suffix.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok().filter(|v: &f64| v.is_finite())?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = v * mult;
    // Whole bytes only, and within u64 (no saturating cast).
    (bytes.fract() == 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

impl Recipe {
    /// Read and validate a recipe file. Relative `[imatrix]` paths are
    /// resolved against the recipe's directory.
    pub fn from_path(path: &Path) -> Result<Recipe, RecipeError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RecipeError {
            origin: origin.clone(),
            line: None,
            msg: format!("cannot read: {e}"),
        })?;
        let mut r = Recipe::from_toml_str(&text, &origin)?;
        r.path = Some(path.to_path_buf());
        if let Some(dir) = path.parent() {
            if let Some(f) = r.imatrix.as_mut().filter(|f| f.is_relative()) {
                *f = dir.join(&*f);
            }
            if let Some(f) = r.budget.as_mut().and_then(|b| b.sensitivity.as_mut()).filter(|f| f.is_relative()) {
                *f = dir.join(&*f);
            }
        }
        Ok(r)
    }

    /// Parse and validate recipe text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Recipe, RecipeError> {
        let err = |line: Option<usize>, msg: String| RecipeError { origin: origin.to_string(), line, msg };
        let de: RecipeDe =
            toml::from_str(text).map_err(|e| err(e.span().map(|s| line_of(text, s.start)), e.message().to_string()))?;
        let at = |s: std::ops::Range<usize>| Some(line_of(text, s.start));
        let mut lines = RecipeLines::default();
        let preset = match &de.preset {
            Some(p) => {
                lines.preset = at(p.span());
                Some(Preset::parse(p.get_ref()).map_err(|m| err(lines.preset, format!("preset: {m}")))?)
            }
            None => None,
        };
        let default = match &de.default {
            Some(d) => {
                lines.default = at(d.span());
                Some(parse_choice(d.get_ref()).map_err(|m| err(lines.default, format!("default: {m}")))?)
            }
            None => None,
        };
        let mut rules = Vec::new();
        for (i, sr) in de.rule.iter().enumerate() {
            let line = line_of(text, sr.span().start);
            let r = sr.get_ref();
            let rerr = |m: String| err(Some(line), format!("rule #{}: {m}", i + 1));
            let ty = parse_choice(&r.ty).map_err(rerr)?;
            let mut roles: Vec<String> = r.roles.clone().unwrap_or_default();
            if let Some(role) = &r.role {
                roles.push(role.clone());
            }
            let regex = match &r.regex {
                Some(s) => Some(regex::Regex::new(s).map_err(|e| rerr(format!("invalid regex: {e}")))?),
                None => None,
            };
            let layers = match &r.layers {
                Some(s) => Some(LayerSet::parse(s).map_err(|e| rerr(format!("invalid layer set: {e}")))?),
                None => None,
            };
            if roles.is_empty() && r.name.is_none() && regex.is_none() && layers.is_none() {
                return Err(rerr("matches every tensor: give `role`, `name`, `regex` or `layers`".into()));
            }
            rules.push(Rule {
                index: i + 1,
                line,
                roles,
                name: r.name.clone(),
                regex,
                layers,
                ty,
                why: r.why.clone(),
                optional: r.optional,
            });
        }
        let mut fallback = BTreeMap::new();
        for (from, to) in &de.fallback {
            // The entry's line: where its value is.
            let line = at(to.span());
            let f = GgmlType::from_name(from).ok_or_else(|| err(line, format!("[fallback]: unknown type `{from}`")))?;
            match parse_choice(to.get_ref()).map_err(|m| err(line, format!("[fallback] {from}: {m}")))? {
                TypeChoice::Type(t) => fallback.insert(f, t),
                TypeChoice::Keep => return Err(err(line, format!("[fallback] {from}: `keep` is not a fallback"))),
            };
            if let Some(l) = line {
                lines.fallback.insert(f, l);
            }
        }
        let budget = match de.budget {
            None => None,
            Some(sb) => {
                let bline = at(sb.span());
                let b = sb.into_inner();
                let limit = match (b.size, b.bpw) {
                    (Some(s), None) => {
                        let line = at(s.span());
                        let s = s.into_inner();
                        let bytes = match &s {
                            toml::Value::Integer(i) if *i > 0 => Some(*i as u64),
                            toml::Value::String(s) => parse_size(s),
                            _ => None,
                        };
                        let bytes = bytes.ok_or_else(|| {
                            err(
                                line,
                                format!("[budget] size: cannot read `{s}` (bytes, or a size like 105.5MB, 100MiB)"),
                            )
                        })?;
                        Budget::bytes(bytes).map_err(|m| err(line, format!("[budget] size: {m}")))?
                    }
                    (None, Some(b)) => {
                        let line = at(b.span());
                        Budget::bpw(*b.get_ref()).map_err(|m| err(line, format!("[budget] bpw: {m}")))?
                    }
                    _ => return Err(err(bline, "[budget] needs exactly one of `size` or `bpw`".into())),
                };
                Some(BudgetSpec { sensitivity: b.sensitivity, limit, line: bline })
            }
        };
        if preset.is_none() && default.is_none() && budget.is_none() {
            return Err(err(
                None,
                "a recipe needs `default = \"<type>\"`, `preset = \"<llama.cpp preset>\"` or a `[budget]`".into(),
            ));
        }
        Ok(Recipe {
            origin: origin.to_string(),
            path: None,
            text: text.to_string(),
            preset,
            default,
            rules,
            fallback,
            imatrix: de.imatrix.map(|i| {
                lines.imatrix = at(i.span());
                i.into_inner().file
            }),
            budget,
            lines,
        })
    }

    /// A recipe that gives every quantizable tensor `ty` (llama-quantize
    /// `--pure`), with llama.cpp's fallbacks.
    pub fn pure(ty: GgmlType) -> Result<Recipe, RecipeError> {
        let text = format!("# every quantizable tensor as {ty} (like llama-quantize --pure)\ndefault = \"{ty}\"\n");
        Recipe::from_toml_str(&text, &format!("--type {ty}"))
    }

    /// A recipe that pins nothing: every quantizable tensor is allocated
    /// under a budget given elsewhere (`quantmix plan`, `quantize --budget`).
    pub fn allocate_all() -> Recipe {
        let text = "# every quantizable tensor is allocated\n[budget]\nbpw = 16.0\n";
        Recipe::from_toml_str(text, "budget").expect("the allocate-all recipe is valid")
    }

    /// llama.cpp's logic for a preset.
    pub fn preset(p: Preset) -> Recipe {
        let text = format!("# llama-quantize's {} logic, tensor by tensor\npreset = \"{}\"\n", p.name(), p.name());
        Recipe::from_toml_str(&text, &format!("preset {}", p.name())).expect("preset recipe is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("blk.*.ffn_down.weight", "blk.3.ffn_down.weight"));
        assert!(!glob_match("blk.*.ffn_down.weight", "blk.3.ffn_up.weight"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c", "abc"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("105.5MB"), Some(105_500_000));
        assert_eq!(parse_size("1 MiB"), Some(1 << 20));
        assert_eq!(parse_size("3 parsecs"), None);
    }
}
