#!/usr/bin/env python3
"""The server's own kind of client for `cargo bench --bench engine`: the exact
`/v1/completions` bodies rlmec's remote engine sends, posted with nothing but Python's
standard library (urllib, json, time), timed by the wall clock.

Called with the command line every peer gets (benches/common/mod.rs:
`MODEL INPUTS.json OUTPUT.json --threads N --repeats N --dtype D`); the model, its threads
and dtype are the server's, fixed when the bench started it, so only the inputs and
`--repeats` matter here. INPUTS holds `url` (the server's base URL), `bodies` and
`concurrency` (requests in flight at once, as the engine's `concurrency`). Each run sends
every body once, in order; OUTPUT gets, per run, its seconds, the sum of the answers'
`usage.completion_tokens` and every completion's text in request order (the bench checks
them against the engine's)."""

import argparse
import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def complete(url, body):
    """One request: (its completions' texts, the tokens the server says it generated)."""
    request = urllib.request.Request(
        f"{url}/v1/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as reply:
        answer = json.loads(reply.read())
    choices = sorted(answer["choices"], key=lambda c: c["index"])
    return [c["text"] for c in choices], answer["usage"]["completion_tokens"]


def run(url, bodies, concurrency):
    """Every body sent once: the run's seconds, completion tokens and texts."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(lambda body: complete(url, body), bodies))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "completion_tokens": sum(tokens for _, tokens in answers),
        "texts": [text for texts, _ in answers for text in texts],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("output")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--dtype")
    args = ap.parse_args()
    inputs = json.loads(Path(args.inputs).read_text())
    runs = [
        run(inputs["url"], inputs["bodies"], inputs["concurrency"])
        for _ in range(args.repeats)
    ]
    Path(args.output).write_text(json.dumps({"runs": runs}))


if __name__ == "__main__":
    main()
