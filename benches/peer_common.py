"""What both Python peers share: the command line benches/common/mod.rs calls them with
(`MODEL.gguf INPUTS.json OUTPUT.json --threads N --repeats N --dtype D`), torch set up
accordingly, and the inputs read."""

import argparse
import json
from pathlib import Path

import torch


def setup():
    """Parse the command line, set torch's threads and seed; returns (args, inputs)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("output")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return args, json.loads(Path(args.inputs).read_text())
