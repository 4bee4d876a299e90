"""Oracle for test/tokenizer-differential.test.ts: Debian's python3-sentencepiece.
Reads {"texts": [...], "models": [{"path": ..., "decode": [[ids], ...]}]} as JSON on
stdin and writes, per model, the ids of every text (no BOS) and the decoding of
every id list, and the decoding of each text's ids."""
import json
import sys

import sentencepiece as spm

req = json.load(sys.stdin)
out = {"version": spm.__version__, "models": []}
for m in req["models"]:
    sp = spm.SentencePieceProcessor(model_file=m["path"])
    ids = [sp.encode(t) for t in req["texts"]]
    out["models"].append({
        "ids": ids,
        "roundtrip": [sp.decode(x) for x in ids],
        "decoded": [sp.decode(x) for x in m["decode"]],
    })
json.dump(out, sys.stdout, ensure_ascii=True)
