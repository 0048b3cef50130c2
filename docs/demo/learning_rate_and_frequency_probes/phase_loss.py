"""Held-out + training Meta-World policy loss split by phase: before the first success vs the 60 steps of hold."""
import json
import sys

from datasets import load_from_disk

from modeling_gato import GatoForCausalModeling, GatoProcessor
from modeling_gato.data.collator import GatoDataCollator
from modeling_gato.training.train import action_slot_ranges, evaluation_samples, policy_metrics

model_dir, data = sys.argv[1], sys.argv[2]
model = GatoForCausalModeling.from_pretrained(model_dir).eval()
processor = GatoProcessor.from_pretrained(model_dir)
collator = GatoDataCollator(processor)
manifest = json.load(open(f"{data}/manifest.json"))
out = {}
for task in ("metaworld-reach-v3", "metaworld-push-v3", "metaworld-pick-place-v3"):
    ds = load_from_disk(f"{data}/episodes/{task}")
    ranges = action_slot_ranges(manifest["tasks"][task]["action_space"], processor)
    for label, idx in (("held-out", [len(ds) - 1]), ("training", list(range(0, 190, 19)))):
        rows = ds.select(idx)
        pre, hold = [], []
        for r in range(len(rows)):
            samples = evaluation_samples(processor, rows.select([r]), 1024, True, max_timesteps=1)
            n = len(samples)
            pre += samples[: n - 60]
            hold += samples[n - 60:]
        a = policy_metrics(model, collator, pre, ranges)
        b = policy_metrics(model, collator, hold, ranges)
        out[f"{task} {label}"] = (a, b)
        print(f"{task:26s} {label:9s} pre-success {a['loss']:.2f} nats acc {a['accuracy']:.0%} ({a['tokens']} tok) | "
              f"hold {b['loss']:.2f} acc {b['accuracy']:.0%} ({b['tokens']} tok)", flush=True)
