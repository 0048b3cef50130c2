"""gato-torch 0.0.2 (PyPI; github.com/kyegomez/GATO) on the small configuration, run inside its own venv.

Called by `run.py` with the venv's interpreter; prints one JSON object. Nothing of gato-torch is copied here:
its installed `gato/model.py` and zeta's `flash_attention.py` are executed from the venv's site-packages.

What it does, in order, recording each exception exactly:
1. `import gato.model` as published (zetascale's package import pulls torchvision, transformers' CLIP, loguru, ...).
2. If that fails: load `gato/model.py` with `zeta` reduced to the one symbol it uses (`FlashAttention`, loaded from
   zeta's own source file), so its model code can run.
3. `Gato(GatoConfig.small())`: parameters; its `forward` on a Meta-World-like sequence (its documented input layout).
4. Its transformer stack (`model.transformer`) on `(batch, seq, width)` embeddings, the shape `Gato.forward` gives it.
5. Where its code runs: the stack on a 4-D input `(2, 1, seq, width)` (batch 2 exactly: `x_attention, _ = ...`
   unpacks the batch dimension of FlashAttention's output): forward+backward tokens/s at length 1024 and the
   forward latency at the acting context; it has no KV cache (and no output layer), so every action token is a
   full recompute.
"""

import importlib.util
import json
import statistics
import sys
import time
import traceback
import types

import torch


def error_text(error: BaseException) -> str:
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return f"{type(error).__name__}: {error} (at {frame.filename.split('site-packages/')[-1]}:{frame.lineno})"


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def timed(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    quick = "--quick" in sys.argv
    context = int(sys.argv[sys.argv.index("--context") + 1]) if "--context" in sys.argv else 1011
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    site = next(p for p in sys.path if p.endswith("site-packages"))
    try:
        import gato.model as gm

        out["import"] = "ok"
    except Exception as error:
        out["import"] = error_text(error)
        for name in [k for k in sys.modules if k == "zeta" or k.startswith(("zeta.", "gato"))]:
            del sys.modules[name]
        for package in ("zeta", "zeta.nn", "zeta.nn.attention"):
            module = types.ModuleType(package)
            module.__path__ = []
            sys.modules[package] = module
        load("zeta.nn.attention.base", f"{site}/zeta/nn/attention/base.py")
        flash = load("zeta.nn.attention.flash_attention", f"{site}/zeta/nn/attention/flash_attention.py")
        sys.modules["zeta"].FlashAttention = flash.FlashAttention
        gm = load("gato.model", f"{site}/gato/model.py")

    torch.manual_seed(0)
    model = gm.Gato(gm.GatoConfig.small())
    out["params"] = sum(p.numel() for p in model.parameters())
    out["tensors"] = len(list(model.parameters()))
    width, seq = model.config.layer_width, 1024

    # Its forward, with the input layout its code unpacks: input_ids (batch, seq, input_dim) values,
    # (encoding, row_pos, col_pos), (obs_pos, obs_mask).
    try:
        batch = 1
        input_ids = torch.zeros(batch, seq, model.config.input_dim)
        encoding = torch.ones(batch, seq, dtype=torch.long)  # 1 = continuous
        row = (torch.zeros(batch, seq), torch.full((batch, seq), 1 / 4))
        col = (torch.zeros(batch, seq), torch.full((batch, seq), 1 / 4))
        obs_pos = torch.arange(seq).remainder(44).unsqueeze(0)
        obs_mask = (obs_pos < 39).long().unsqueeze(1)
        model((input_ids, (encoding, row, col), (obs_pos, obs_mask)))
        out["forward"] = "ok"
    except Exception as error:
        out["forward"] = error_text(error)

    try:
        model.transformer(torch.randn(1, seq, width))
        out["transformer_3d"] = "ok"
    except Exception as error:
        out["transformer_3d"] = error_text(error)

    stack = model.transformer
    try:
        x = torch.randn(2, 1, seq, width)
        stack.train()

        def train_step():
            stack(x).float().pow(2).mean().backward()
            stack.zero_grad(set_to_none=True)

        t = timed(train_step, 1 if quick else 3)
        out["train_tokens_per_s"] = 2 * seq / t
        stack.eval()
        x = torch.randn(2, 1, context, width)
        with torch.inference_mode():
            out["forward_ms_at_context"] = 1000 * timed(lambda: stack(x), 2 if quick else 3)
    except Exception as error:
        out["transformer_4d"] = error_text(error)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
