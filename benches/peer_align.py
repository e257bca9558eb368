#!/usr/bin/env python3
"""The Python side of `cargo bench --bench align`: the straight port of the public code's
alignment (tests/fixtures/align/public_align.py) on the first pairs the Rust side wrote.
Writes its seconds, the table cells it filled and its flags (the Rust side checks them)."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests/fixtures/align"))

from peer_common import setup  # noqa: E402
from public_align import paper_flags  # noqa: E402
import json  # noqa: E402


def main():
    args, inputs = setup()
    pairs = inputs["pairs"][: inputs["peer_pairs"]]
    start = time.perf_counter()
    flags = [paper_flags(p["a"], p["b"])[0] for p in pairs]
    seconds = time.perf_counter() - start
    cells = sum((len(p["a"]) + 1) * (len(p["b"]) + 1) for p in pairs)
    Path(args.output).write_text(json.dumps({"seconds": seconds, "cells": cells, "flags": flags}))


if __name__ == "__main__":
    main()
