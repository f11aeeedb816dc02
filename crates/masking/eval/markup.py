#!/usr/bin/env python3
"""Converts the hand-written sentences of heldout.txt into the JSONL format of shared/pii-eval,
so that its score.py scores them. Usage: markup.py heldout.txt SECTION > gold.jsonl, where
SECTION is `dev` (may be tuned on) or `heldout` (measured only)."""
import json
import re
import sys

MARK = re.compile(r"\{\{([A-Z_]+)\|(.*?)\}\}")


def sample(line):
    """The text without markup, its gold spans and its look-alikes (character offsets)."""
    text, spans, negatives, pos = "", [], [], 0
    for m in MARK.finditer(line):
        text += line[pos:m.start()].replace("\\n", "\n")
        kind, value = m.group(1), m.group(2)
        item = {"start": len(text), "end": len(text) + len(value), "value": value}
        if kind == "NEG":
            negatives.append({"kind": "capitalised_non_name", **item})
        else:
            spans.append({"type": kind, **item})
        text += value
        pos = m.end()
    text += line[pos:].replace("\\n", "\n")
    return text, spans, negatives


def main():
    path, section = sys.argv[1], sys.argv[2]
    current, n = None, 0
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            current = line[1:]
            continue
        if current == section:
            text, spans, negatives = sample(line)
            row = {"id": n, "text": text, "spans": spans, "negatives": negatives}
            print(json.dumps(row, ensure_ascii=False))
            n += 1


if __name__ == "__main__":
    main()
