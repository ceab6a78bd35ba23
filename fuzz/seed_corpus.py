#!/usr/bin/env python3
"""Seeds fuzz/corpus/parse/ with every text of the serpent fixture corpus.

Usage: python3 fuzz/seed_corpus.py [FIXTURES_DIR]
FIXTURES_DIR defaults to $RR_FIXTURES, else ../shared/fixtures/serpent beside the repository.
Texts stored as a `text_rule` (the huge hostile nesting inputs) are cut to 64 KiB; the fuzzer
reads them up to its -max_len anyway. Files are named by their SHA-1, so re-running is harmless.
"""
import base64
import glob
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def main():
    fixtures = (sys.argv[1] if len(sys.argv) > 1 else None) or os.environ.get("RR_FIXTURES") \
        or os.path.join(REPO, "..", "shared", "fixtures", "serpent")
    out = os.path.join(HERE, "corpus", "parse")
    os.makedirs(out, exist_ok=True)
    files = sorted(glob.glob(os.path.join(fixtures, "*.jsonl")))
    if not files:
        sys.exit(f"no *.jsonl in {fixtures}")
    written = 0
    seen = set()
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                if "text_b64" in r:
                    data = base64.b64decode(r["text_b64"])
                elif "text_rule" in r:
                    data = b"".join(s.encode() * n for s, n in r["text_rule"])[: 64 * 1024]
                else:
                    continue
                name = hashlib.sha1(data).hexdigest()
                if name in seen:
                    continue
                seen.add(name)
                with open(os.path.join(out, name), "wb") as g:
                    g.write(data)
                written += 1
    print(f"{written} distinct texts in {out}")


if __name__ == "__main__":
    main()
