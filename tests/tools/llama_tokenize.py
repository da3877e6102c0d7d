#!/usr/bin/env python3
"""Token ids from llama.cpp (llama-cpp-python, vocab only) for the texts of a JSON object.

usage: llama_tokenize.py MODEL.gguf TEXTS.json [OUT.json]

TEXTS.json maps a name to a text. The output maps each name to
{"add_special": {"parse_special": ids, ...}, ...} for every combination of
add_special (add_bos in llama-cpp-python) and parse_special (special), as
`llama_tokenize` returns them. Written to OUT.json, or printed.
"""
import json
import sys

import llama_cpp


def main() -> int:
    model, texts_path = sys.argv[1], sys.argv[2]
    with open(texts_path, encoding="utf-8") as f:
        texts = json.load(f)
    llm = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
    out = {}
    for name, text in texts.items():
        per = {}
        for add_special in (False, True):
            per[str(add_special).lower()] = {
                str(special).lower(): llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=special)
                for special in (False, True)
            }
        out[name] = per
    data = json.dumps(out, separators=(",", ":"))
    if len(sys.argv) > 3:
        with open(sys.argv[3], "w", encoding="utf-8") as f:
            f.write(data + "\n")
    else:
        print(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
