"""Where the time of one cached acting step of the 1.18B variant goes on a GPU (diagnostic, prints op tables).

    PYTHONPATH=. python benchmarks/gpu_profile.py
"""

import os
import sys
from unittest import mock

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Actor, median_time  # noqa: E402

from modeling_gato import GatoConfig, GatoForCausalModeling, GatoProcessor  # noqa: E402

config = GatoConfig.large()
model = GatoForCausalModeling(config).to("cuda", torch.bfloat16).eval()
actor = Actor(model, GatoProcessor(), "metaworld", cached=True)
actor.prepare()
sync = torch.cuda.synchronize
t, _ = median_time(actor.step, 10, warmup=2, sync=sync)
print(f"cached step (dynamic cache): {t * 1000:.1f} ms")
with mock.patch("torch.compiler.is_compiling", return_value=True):  # skips the forward's host-side checks
    t2, _ = median_time(actor.step, 10, warmup=2, sync=sync)
print(f"cached step with the input checks skipped: {t2 * 1000:.1f} ms")
obs = actor.make_observation(actor.rng)
t3, _ = median_time(lambda: actor.processor.tokenize_observation(obs), 20)
print(f"tokenize_observation: {t3 * 1000:.2f} ms")
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    for _ in range(3):
        actor.step()
    sync()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60))
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=10, max_name_column_width=60))
