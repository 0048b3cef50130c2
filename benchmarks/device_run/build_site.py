"""Packs what a lent GPU machine without network needs for `run.sh`: `.gpu/site.tar.xz` and `.gpu/D.tar.xz`.

The lent machine (this workplace's `device` tool: one H200, CPython 3.12, its own torch 2.11 with CUDA, no
registry) lacks this project's newer transformers and the environment packages. This downloads CPython 3.12
manylinux wheels here (pip works on this side), unpacks the ones the device lacks into one folder, and compresses it
with the data directory, so that both travel with the working tree (64 MiB in all; `.gpu/` is ignored through
`.git/info/exclude` and named in `carry`).

Two packages are changed on the way, neither in what the agent sees:
- Meta-World's texture PNGs are downsampled (by an integer factor dividing both sides, so cube-map layouts stay
  exact): 36 MB of wheel, mostly textures, and its observations are state vectors. `--check` replays 200 random
  steps of reach, push and pick-place with the full and the slim package and requires identical observations and
  rewards.
- minigrid imports pygame at module level for its human render mode only; an empty `pygame` module stands in.

    python benchmarks/device_run/build_site.py --data D [--check]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from math import gcd

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, ".gpu")
PLATFORMS = ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_24_x86_64", "manylinux_2_27_x86_64",
             "manylinux_2_28_x86_64", "manylinux1_x86_64"]
# Pinned to what this repository's tests run with; the device keeps its own torch, numpy, pandas, pyarrow, scipy,
# pillow, matplotlib, tokenizers, safetensors, pyyaml, tqdm and requests.
WHEELS = ["transformers==5.25.0", "huggingface_hub==2.4.0", "httpx2==2.16.2", "httpcore2==2.16.2", "truststore==0.10.5",
          "click==8.5.1", "regex==2026.5.9", "kernels==0.19.1", "tomlkit==0.15.3", "accelerate==1.16.0",
          "datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19", "fsspec==2026.9.0", "gymnasium==1.4.0",
          "farama-notifications==0.0.6", "cloudpickle==3.1.3", "minigrid==3.2.0", "mujoco==3.3.0", "glfw==2.11.0",
          "stable-baselines3==2.9.2", "h11==0.16.0", "anyio==4.16.0", "idna==3.20", "typing_extensions==4.16.0"]
METAWORLD = "metaworld==3.1.1"


def download(specs: list[str], into: str) -> None:
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.12", "--implementation", "cp", "-d", into]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + specs, check=True)


def slim_metaworld(wheel: str, site: str) -> None:
    archive = zipfile.ZipFile(wheel)
    for info in archive.infolist():
        if info.filename.endswith("/"):
            continue
        data = archive.read(info)
        if info.filename.lower().endswith(".png") and len(data) > 20000:
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            common = gcd(width, height)
            factor = max([d for d in range(1, common + 1)
                          if common % d == 0 and width // d >= 32 and height // d >= 32] or [1])
            out = io.BytesIO()
            image.resize((width // factor, height // factor)).save(out, format="PNG")
            data = out.getvalue()
        target = os.path.join(site, info.filename)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)


CHECK = """
import hashlib, gymnasium as gym, metaworld, numpy as np
digests = []
for name in ("reach-v3", "push-v3", "pick-place-v3"):
    env = gym.make("Meta-World/MT1", env_name=name, seed=2)
    obs, _ = env.reset(seed=1000)
    rng = np.random.default_rng(0)
    trace = [obs]
    for _ in range(200):
        obs, reward, *_ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
        trace += [obs, np.array([reward])]
    digests.append(hashlib.sha256(np.concatenate(trace).astype(np.float64).tobytes()).hexdigest())
print(metaworld.__file__, digests)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a directory written by `python -m modeling_gato collect`")
    parser.add_argument("--check", action="store_true",
                        help="replay Meta-World with the full and the slim package (needs this interpreter's gymnasium)")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    site = os.path.join(OUT, "site")
    shutil.rmtree(site, ignore_errors=True)
    os.makedirs(site)
    with tempfile.TemporaryDirectory() as wheels:
        download(WHEELS + [METAWORLD], wheels)
        slim = os.path.join(wheels, "slim")
        for name in sorted(os.listdir(wheels)):
            if name.startswith("metaworld-"):
                slim_metaworld(os.path.join(wheels, name), slim)
            elif name.endswith(".whl"):
                zipfile.ZipFile(os.path.join(wheels, name)).extractall(site)
        os.makedirs(os.path.join(site, "pygame"))
        with open(os.path.join(site, "pygame", "__init__.py"), "w") as f:
            f.write('"""Stands in for pygame, which minigrid imports for its human render mode only."""\n'
                    "from . import freetype  # noqa: F401\n")
        with open(os.path.join(site, "pygame", "freetype.py"), "w") as f:
            f.write('"""Stands in for pygame.freetype."""\n')
        if args.check:
            full = os.path.join(wheels, "full")
            zipfile.ZipFile([os.path.join(wheels, n) for n in os.listdir(wheels) if n.startswith("metaworld-")][0]
                            ).extractall(full)
            outputs = [subprocess.run([sys.executable, "-c", CHECK], env={**os.environ, "PYTHONPATH": path},
                                      capture_output=True, text=True, check=True).stdout.split(" ", 1)[1]
                       for path in (full, slim)]
            if outputs[0] != outputs[1]:
                raise SystemExit(f"the slim Meta-World differs from the full one: {outputs}")
            print("Meta-World, full and slim: identical observations and rewards over 200 random steps of 3 tasks")
        shutil.copytree(slim, site, dirs_exist_ok=True)
    subprocess.run(f"tar cf - -C {OUT} site | xz -T0 -6 > {OUT}/site.tar.xz", shell=True, check=True)
    data = os.path.abspath(args.data)
    subprocess.run(f"tar cf - -C {os.path.dirname(data)} --transform 's,^{os.path.basename(data)},D,' "
                   f"{os.path.basename(data)} | xz -T0 -6 > {OUT}/D.tar.xz", shell=True, check=True)
    for name in ("site.tar.xz", "D.tar.xz"):
        print(f"{OUT}/{name}: {os.path.getsize(os.path.join(OUT, name)) / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
