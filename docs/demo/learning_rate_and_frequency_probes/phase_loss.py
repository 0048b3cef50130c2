"""Held-out + training Meta-World policy loss split by phase: before the first success vs the 60 steps of hold.

Assumes what `collect --steps-after-success '{"metaworld": 60}'` wrote with experts that always succeed (the table's
data D: 100% expert success): every episode ends 60 steps after its first success, so its last 60 timesteps are
the hold. Checked: the manifest's `steps_after_success` and each episode's length."""
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
    assert manifest["tasks"][task]["steps_after_success"] == 60, manifest["tasks"][task]["steps_after_success"]
    assert len(ds) >= 191, len(ds)  # the held-out last episode and ten training ones below
    for label, idx in (("held-out", [len(ds) - 1]), ("training", list(range(0, 190, 19)))):
        rows = ds.select(idx)
        pre, hold = [], []
        for r in range(len(rows)):
            samples = evaluation_samples(processor, rows.select([r]), 1024, True, max_timesteps=1)
            n = len(samples)
            assert n > 60 and n < 500, n  # ended by the 60 steps after success, not by the time limit
            pre += samples[: n - 60]
            hold += samples[n - 60:]
        a = policy_metrics(model, collator, pre, ranges)
        b = policy_metrics(model, collator, hold, ranges)
        out[f"{task} {label}"] = (a, b)
        print(f"{task:26s} {label:9s} pre-success {a['loss']:.2f} nats acc {a['accuracy']:.0%} ({a['tokens']} tok) | "
              f"hold {b['loss']:.2f} acc {b['accuracy']:.0%} ({b['tokens']} tok)", flush=True)
