//! Layer sets: which blocks (`blk.N.*`) a rule applies to.
//!
//! A comma-separated union of items, evaluated against the model's layer
//! count `n`:
//! - `7`, `0-3`: single layers and inclusive ranges;
//! - `first K`, `last K`: the first / last K layers;
//! - `first a/b`: layers `i < a·n/b`; `last a/b`: layers `i ≥ (b-a)·n/b`
//!   (integer division, as llama.cpp writes `n/8` and `7*n/8`);
//! - `every Kth [from X]`: `i ≥ X` with `(i - X) % K == 0`, where X is an
//!   integer or `a/b[+c]` (`a·n/b + c`);
//! - `all`; `more_bits`: llama.cpp's `use_more_bits` pattern, equal to
//!   `first 1/8, last 1/8, every 3rd from 1/8+2`.

use std::fmt;

/// A position given relative to the layer count: `num·n/den + add`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pos {
    num: u32,
    den: u32,
    add: u32,
}

impl Pos {
    /// The position for `n` layers (in u64: no overflow for any u32 inputs).
    fn at(self, n: u32) -> u64 {
        self.num as u64 * n as u64 / self.den.max(1) as u64 + self.add as u64
    }
}

/// The largest number a layer set may hold (a layer, count, step or
/// fraction term): far beyond any model, small enough that no arithmetic
/// on it overflows or wraps into a wrong selection.
pub const MAX_NUMBER: u32 = 65535;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Range(u32, u32),
    First(Pos),
    Last { num: u32, den: u32, abs: Option<u32> },
    Every { step: u32, from: Pos },
    All,
}

/// A parsed layer set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSet {
    text: String,
    items: Vec<Item>,
}

/// Why a layer set did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSetError(pub String);

impl fmt::Display for LayerSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn num(s: &str, what: &str) -> Result<u32, LayerSetError> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) && t.trim_start_matches('0').len() > 5 {
        return Err(LayerSetError(format!("`{t}` ({what}) is beyond any model's layers (at most {MAX_NUMBER})")));
    }
    let v = t.parse::<u32>().map_err(|_| LayerSetError(format!("`{s}` is not a layer number ({what})")))?;
    if v > MAX_NUMBER {
        return Err(LayerSetError(format!("`{v}` ({what}) is beyond any model's layers (at most {MAX_NUMBER})")));
    }
    Ok(v)
}

/// `K` or `a/b`, optionally `+c`.
fn pos(s: &str) -> Result<Pos, LayerSetError> {
    let (base, add) = match s.split_once('+') {
        Some((b, a)) => (b, num(a, "offset")?),
        None => (s, 0),
    };
    match base.split_once('/') {
        Some((a, b)) => {
            let den = num(b, "fraction")?;
            if den == 0 {
                return Err(LayerSetError(format!("`{s}`: division by zero")));
            }
            Ok(Pos { num: num(a, "fraction")?, den, add })
        }
        None => {
            let add = num(base, "position")? + add;
            if add > MAX_NUMBER {
                return Err(LayerSetError(format!("`{s}` is beyond any model's layers (at most {MAX_NUMBER})")));
            }
            Ok(Pos { num: 0, den: 1, add })
        }
    }
}

impl LayerSet {
    /// Parse a layer set; see the module documentation for the grammar.
    pub fn parse(text: &str) -> Result<LayerSet, LayerSetError> {
        let mut items = Vec::new();
        for raw in text.split(',') {
            let t = raw.trim().to_ascii_lowercase();
            if t.is_empty() {
                return Err(LayerSetError(format!("empty item in layer set `{text}`")));
            }
            let words: Vec<&str> = t.split_whitespace().collect();
            let item = match words.as_slice() {
                ["all"] => Item::All,
                ["more_bits"] => {
                    items.push(Item::First(Pos { num: 1, den: 8, add: 0 }));
                    items.push(Item::Last { num: 1, den: 8, abs: None });
                    Item::Every { step: 3, from: Pos { num: 1, den: 8, add: 2 } }
                }
                ["first", k] => Item::First(pos(k)?),
                ["last", k] => match k.split_once('/') {
                    Some((a, b)) => {
                        let (a, b) = (num(a, "fraction")?, num(b, "fraction")?);
                        if b == 0 || a > b {
                            return Err(LayerSetError(format!("`{t}`: fraction must be between 0 and 1")));
                        }
                        Item::Last { num: a, den: b, abs: None }
                    }
                    None => Item::Last { num: 0, den: 1, abs: Some(num(k, "count")?) },
                },
                ["every", k, rest @ ..] => {
                    let digits: String = k.chars().take_while(|c| c.is_ascii_digit()).collect();
                    let suffix = &k[digits.len()..];
                    if !["", "st", "nd", "rd", "th"].contains(&suffix) {
                        return Err(LayerSetError(format!("`{t}`: expected `every Kth`")));
                    }
                    let step = num(&digits, "step")?;
                    if step == 0 {
                        return Err(LayerSetError(format!("`{t}`: step must be at least 1")));
                    }
                    let from = match rest {
                        [] => Pos { num: 0, den: 1, add: 0 },
                        ["from", x] => pos(x)?,
                        _ => return Err(LayerSetError(format!("`{t}`: expected `every Kth [from X]`"))),
                    };
                    Item::Every { step, from }
                }
                [single] => match single.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (num(a, "range start")?, num(b, "range end")?);
                        if a > b {
                            return Err(LayerSetError(format!("range `{t}` is empty")));
                        }
                        Item::Range(a, b)
                    }
                    None => {
                        let v = num(single, "layer")?;
                        Item::Range(v, v)
                    }
                },
                _ => return Err(LayerSetError(format!("cannot parse `{t}` in layer set `{text}`"))),
            };
            items.push(item);
        }
        Ok(LayerSet { text: text.to_string(), items })
    }

    /// Whether layer `i` of a model with `n` layers is in the set.
    pub fn contains(&self, i: u32, n: u32) -> bool {
        // u64 arithmetic: no sum or product of u32 values wraps.
        let (i64_, n64) = (i as u64, n as u64);
        self.items.iter().any(|it| match *it {
            Item::All => i < n,
            Item::Range(a, b) => a <= i && i <= b,
            Item::First(p) => i64_ < p.at(n),
            Item::Last { num, den, abs } => match abs {
                Some(k) => i < n && i64_ + k as u64 >= n64,
                None => i < n && i64_ >= (den - num) as u64 * n64 / den.max(1) as u64,
            },
            Item::Every { step, from } => {
                let s = from.at(n);
                i < n && i64_ >= s && (i64_ - s) % step.max(1) as u64 == 0
            }
        })
    }

    /// Whether some layer in `0..n` is in the set.
    pub fn any(&self, n: u32) -> bool {
        (0..n).any(|i| self.contains(i, n))
    }

    /// Layers beyond the model's count named explicitly (a likely mistake).
    pub fn out_of_range(&self, n: u32) -> Option<u32> {
        self.items.iter().find_map(|it| match *it {
            Item::Range(_, b) if b >= n => Some(b),
            _ => None,
        })
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Compact text for an explicit list of layers (`0-3,7,9-11`).
    pub fn describe(layers: &[u32]) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        while i < layers.len() {
            let mut j = i;
            while j + 1 < layers.len() && layers[j + 1] == layers[j] + 1 {
                j += 1;
            }
            out.push(if i == j { layers[i].to_string() } else { format!("{}-{}", layers[i], layers[j]) });
            i = j + 1;
        }
        out.join(",")
    }
}

/// llama.cpp's `use_more_bits(i, n)`.
pub fn use_more_bits(i: i64, n: i64) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_equals_llama_cpp() {
        let s = LayerSet::parse("more_bits").unwrap();
        let t = LayerSet::parse("first 1/8, last 1/8, every 3rd from 1/8+2").unwrap();
        for n in 1..100u32 {
            for i in 0..n {
                assert_eq!(s.contains(i, n), use_more_bits(i as i64, n as i64), "i={i} n={n}");
                assert_eq!(t.contains(i, n), use_more_bits(i as i64, n as i64), "i={i} n={n}");
            }
        }
    }

    #[test]
    fn ranges_counts_and_errors() {
        let s = LayerSet::parse("0-3, 28-29").unwrap();
        assert!(s.contains(0, 30) && s.contains(3, 30) && !s.contains(4, 30) && s.contains(29, 30));
        let l = LayerSet::parse("last 2").unwrap();
        assert!(l.contains(28, 30) && l.contains(29, 30) && !l.contains(27, 30));
        let e = LayerSet::parse("every 3rd").unwrap();
        assert!(e.contains(0, 30) && e.contains(3, 30) && !e.contains(4, 30));
        assert_eq!(LayerSet::describe(&[0, 1, 2, 3, 7, 9, 10]), "0-3,7,9-10");
        for bad in [
            "",
            "3-1",
            "every 0th",
            "first 1/0",
            "somewhere",
            "1,,2",
            "last 9/8",
            "last 4294967290",
            "every 2nd from 65535+1",
            "first 99999999999999999999",
            "0-70000",
        ] {
            assert!(LayerSet::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
