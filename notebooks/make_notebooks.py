"""Writes the three notebooks of this folder with nbformat (outputs empty): `python notebooks/make_notebooks.py`.

Each notebook's first code cell is tagged "parameters" (papermill's convention) and holds every size the notebook
uses; `tests/test_notebooks.py` replaces that cell's source with tiny settings and runs the notebook with nbclient.
Edit the notebooks here, not in Jupyter, so that they stay reviewable and output-free.
"""

from __future__ import annotations

import os

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str):
    return new_code_cell(text.strip())


def parameters(text: str):
    cell = new_code_cell(text.strip())
    cell.metadata["tags"] = ["parameters"]
    return cell


QUICKSTART = [
    md("""
# Gato quickstart

Build a Gato model and its processor, turn an agent episode, text and an image into one token stream, run a
forward pass with the masked loss, and generate. Everything runs offline on a CPU: the processor ships its own
tokenizer. The sizes below make a small random model; `GatoConfig.small()` is the paper's 79M variant
(`.baseline()`, `.large()` the bigger ones).
"""),
    parameters("""
# Parameters (the tests replace this cell with tiny settings)
hidden_size = 128
num_hidden_layers = 2
num_attention_heads = 4
head_dim = 32
intermediate_size = 512
max_position_embeddings = 512
max_new_tokens = 8
seed = 0
"""),
    code("""
import numpy as np
import torch

from modeling_gato import GatoConfig, GatoForCausalModeling, GatoProcessor

torch.manual_seed(seed)
config = GatoConfig(
    hidden_size=hidden_size,
    num_hidden_layers=num_hidden_layers,
    num_attention_heads=num_attention_heads,
    head_dim=head_dim,
    intermediate_size=intermediate_size,
    max_position_embeddings=max_position_embeddings,
)
model = GatoForCausalModeling(config).eval()
processor = GatoProcessor()
print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, vocabulary {config.vocab_size}")
"""),
    md("""
## An episode

An episode is a `datasets`-style row with one list entry per timestep. Each timestep becomes
`[observation tokens] | [action tokens]`: continuous values are mu-law encoded into 1024 bins at ids 32000-33023,
text uses the tokenizer, images become 16x16 patches that the model embeds directly, and the separator is 33024.
Only action tokens are loss targets.
"""),
    code("""
rng = np.random.default_rng(seed)
episode = {
    "text_observations": ["go to the red ball"] * 2,
    "image_observations": [rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8) for _ in range(2)],
    "continuous_observations": [[0.1, -2.0, 3.5], [0.0, 1.0, 2.0]],
    "continuous_actions": [[0.5, -0.25], [1.0, 0.0]],  # already in [-1, 1]
}
batch = processor(episodes=episode)
for key, value in batch.items():
    print(f"{key:16s} {tuple(value.shape)}")
first = batch["input_ids"][0].tolist()
print("ids of the first timestep:", first[: first.index(processor.separator_token_id) + 3])
print("patch slots:", int(batch["patch_mask"].sum()), " loss targets:", int(batch["loss_mask"].sum()))
"""),
    code("""
with torch.no_grad():
    out = model(**batch)
print("logits", tuple(out.logits.shape), " loss on the action tokens:", float(out.loss))
"""),
    md("""
## Text

Text is tokenized with the shipped unigram tokenizer; every text token is a target. `generate()` supports every
transformers decoding mode.
"""),
    code("""
text = processor(text="The agent picks up the")
print(processor.tokenizer.convert_ids_to_tokens(text["input_ids"][0].tolist()))
with torch.no_grad():
    generated = model.generate(**text, max_new_tokens=max_new_tokens, do_sample=False)
print(repr(processor.decode(generated[0, text["input_ids"].shape[1]:], skip_special_tokens=True)))
"""),
    md("""
## An image

`processor(images=image)` is a captioning prompt: the image patches only. Generation continues after them with
text (random text here: the model is untrained).
"""),
    code("""
image = rng.integers(0, 256, size=(56, 56, 3), dtype=np.uint8)  # padded to 64x64: 16 patches
inputs = processor(images=image)
print("patches:", tuple(inputs["image_patches"].shape), "intervals:", tuple(inputs["patch_intervals"].shape))
with torch.no_grad():
    generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
print(repr(processor.decode(generated[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)))
"""),
    md("""
## Actions

Continuous actions are mapped from their Box bounds to [-1, 1] and binned (no mu-law); `decode_action` goes back
to an environment action (bin centres).
"""),
    code("""
import gymnasium as gym

box = gym.spaces.Box(low=np.array([-2.0, 0.0], np.float32), high=np.array([2.0, 1.0], np.float32))
ids = processor.encode_action([1.5, 0.25], box)
print("ids", ids.tolist(), "->", processor.decode_action(ids, box))
print("valid id range per action slot:", processor.action_token_ranges(box))
"""),
]

TRAIN_AND_EVALUATE = [
    md("""
# Collect, train and evaluate

1. Collect expert episodes from real environments (`modeling_gato.data.collect.collect`): CartPole-v1 (a PPO expert
   trained here, about 20 s) and BabyAI GoToRedBallGrey (the BabyAI bot), plus a little text and captions.
2. Train a tiny Gato on all of it with `modeling_gato.training.train.train` (transformers' `Trainer`, the paper's optimizer
   and schedule).
3. Load the trained directory and let `GatoAgent` play an episode, prompted with a demonstration of the task;
   compare its return with the expert's and the random policy's.

The defaults take about 10 minutes on a 2-core CPU (measured: 16 minutes while other jobs shared the CPU), and
a tiny model trained for 300 steps does not play well yet (it scored 13 on CartPole, the random policy 25):
`python -m modeling_gato demo` trains one generalist for an hour. The tests run this notebook with tiny settings.
"""),
    parameters("""
# Parameters (the tests replace this cell with tiny settings)
tasks = ["CartPole-v1", "BabyAI-GoToRedBallGrey-v0"]
episodes = 20               # expert episodes per task
score_episodes = 5          # episodes measuring the expert's and the random policy's returns
expert_steps = None         # PPO training steps of the CartPole expert (None: the task's default)
text_paragraphs = 200
captions_per_task = 50
max_steps = 300             # optimizer steps
batch_size = 8
context_length = 256
learning_rate = 1e-3
eval_task = "CartPole-v1"   # the task the trained agent plays
eval_seed = 1000
max_episode_steps = 500
progress = True
work_dir = "outputs/notebook_train_and_evaluate"
"""),
    code("""
import json
import os

from modeling_gato.data.collect import collect, score_table

data_dir = os.path.join(work_dir, "data")
manifest = collect(
    data_dir,
    tasks=tasks,
    episodes=episodes,
    score_episodes=score_episodes,
    expert_steps=expert_steps,
    text_paragraphs=text_paragraphs,
    captions_per_task=captions_per_task,
    overwrite=True,
    progress=progress,
)
for task, info in manifest["tasks"].items():
    print(f"{task}: {info['episodes']} episodes, {info['steps']} steps, columns {info['observation_columns']}")
print(f"text rows {manifest['text']['rows']}, captions {manifest['captions']['rows']}, VQA {manifest['vqa']['rows']}")
print(score_table(manifest["scores"]))
"""),
    md("""
## Train

`variant="tiny"` is a 2-layer, 128-wide model; the output directory is Hub-ready (weights, processor, remote code,
model card, loss curve).
"""),
    code("""
from modeling_gato.training.train import TrainConfig, train

output_dir = os.path.join(work_dir, "model")
summary = train(TrainConfig(
    data=[data_dir],
    output_dir=output_dir,
    variant="tiny",
    context_length=context_length,
    max_steps=max_steps,
    batch_size=batch_size,
    learning_rate=learning_rate,
    warmup_steps=max(1, max_steps // 10),
    eval_episodes=1,
    eval_steps=max_steps,
    save_steps=max_steps,
    logging_steps=max(1, max_steps // 10),
))
losses = [entry["loss"] for entry in summary["history"] if "loss" in entry]
print(f"{summary['global_step']} steps, training loss {summary['train_loss']:.3f}; logged losses {losses}")
print(sorted(os.listdir(output_dir)))
"""),
    md("""
## Act

The agent is prompted with the last collected episode of the task (a demonstration), then appends each new
observation and decodes the action token by token, restricted to the valid ids, with the KV cache.
"""),
    code("""
from datasets import load_from_disk

from modeling_gato import GatoForCausalModeling, GatoProcessor
from modeling_gato.agent import GatoAgent
from modeling_gato.envs.tasks import make_env

model = GatoForCausalModeling.from_pretrained(output_dir).eval()
processor = GatoProcessor.from_pretrained(output_dir)
demonstrations = load_from_disk(os.path.join(data_dir, "episodes", eval_task))
env = make_env(eval_task)
agent = GatoAgent(model, processor, env.observation_space, env.action_space, prompt=demonstrations[-1], seed=eval_seed)

observation, _ = env.reset(seed=eval_seed)
episode_return, steps = 0.0, 0
while True:
    observation, reward, terminated, truncated, _ = env.step(agent.act(observation))
    episode_return += float(reward)
    steps += 1
    if terminated or truncated or steps >= max_episode_steps:
        break
print(f"{eval_task}: return {episode_return:.2f} in {steps} steps")
"""),
    code("""
scores = json.load(open(os.path.join(data_dir, "scores.json")))[eval_task]
expert, random_ = scores["expert"]["mean_return"], scores["random"]["mean_return"]
normalized = (episode_return - random_) / (expert - random_)
print(f"expert {expert:.2f}, random {random_:.2f}: expert-normalized score of this episode {100 * normalized:.0f}%")
"""),
]

LOAD_AND_USE = [
    md("""
# Load a saved model and use it

A saved directory (`model.save_pretrained(d)` + `processor.save_pretrained(d)`, or the output of
`python -m modeling_gato train`) carries its own code: it loads with the Auto classes and
`trust_remote_code=True`, even where `modeling_gato` is not installed. The built-in `text-generation` pipeline
works with it as is; `import modeling_gato` registers two more pipelines, `gato-image-to-text` (captioning) and
`gato-agent` (observation in, action out).
"""),
    parameters("""
# Parameters (the tests replace this cell with tiny settings)
model_dir = None            # a saved model directory; None: save a small random model to work_dir first
data_dir = None             # a `collect` directory, for a demonstration prompt (optional)
work_dir = "outputs/notebook_load_and_use"
agent_task = "CartPole-v1"
agent_steps = 20
caption_task = "BabyAI-GoToRedBallGrey-v0"
max_new_tokens = 12
"""),
    code("""
import os

import numpy as np
import torch

if model_dir is None:  # stand-alone: a small random model (untrained: its outputs are noise)
    from modeling_gato import GatoConfig, GatoForCausalModeling, GatoProcessor

    torch.manual_seed(0)
    model_dir = os.path.join(work_dir, "random-gato")
    GatoForCausalModeling(GatoConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, head_dim=32,
                                     intermediate_size=512, max_position_embeddings=512)).save_pretrained(model_dir)
    GatoProcessor().save_pretrained(model_dir)
print(sorted(os.listdir(model_dir)))
"""),
    code("""
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoProcessor

config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=True).eval()
base = AutoModel.from_pretrained(model_dir, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=True)
print(type(config).__name__, type(model).__name__, type(base).__name__, type(processor).__name__)
print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
"""),
    md("## Text generation (the built-in pipeline)"),
    code("""
from transformers import pipeline

generator = pipeline("text-generation", model=model_dir, trust_remote_code=True, device="cpu")
print(generator("The agent picks up the", max_new_tokens=max_new_tokens, do_sample=False, return_full_text=False))
"""),
    md("""
## Captioning (`gato-image-to-text`)

Image in (PIL, numpy, a path or a URL), text out; greedy unless `do_sample=True`.
"""),
    code("""
import modeling_gato  # registers "gato-image-to-text" and "gato-agent"
from modeling_gato.envs.tasks import make_env

captioner = pipeline("gato-image-to-text", model=model_dir, trust_remote_code=True, device="cpu")
view_env = make_env(caption_task)
view, _ = view_env.reset(seed=0)
print(view["mission"])
print(captioner(view["image"], max_new_tokens=max_new_tokens))
"""),
    md("""
## Acting (`gato-agent`)

One pipeline plays one episode at a time and keeps its context (prompt, past observations and actions, KV cache)
between calls. Episode settings (`observation_space`, `action_space`, `prompt`, `temperature`, `seed`, ...) go to
`pipeline(...)`, `agent.reset(...)` or the first call; `agent.reset()` starts a new episode.
"""),
    code("""
prompt = None
if data_dir is not None:
    from datasets import load_from_disk

    prompt = load_from_disk(os.path.join(data_dir, "episodes", agent_task))[-1]

env = make_env(agent_task)
agent = pipeline("gato-agent", model=model_dir, trust_remote_code=True, device="cpu")
agent.reset(observation_space=env.observation_space, action_space=env.action_space, prompt=prompt, seed=0)
observation, _ = env.reset(seed=0)
episode_return, actions = 0.0, []
for _ in range(agent_steps):
    action = agent(observation)
    actions.append(np.asarray(action).tolist())
    observation, reward, terminated, truncated, _ = env.step(action)
    episode_return += float(reward)
    if terminated or truncated:
        break
print(f"{len(actions)} steps, return {episode_return:.1f}; actions {actions}")
print("tokens in the agent's context (KV cache):", agent.agent.cache.get_seq_length())
agent.reset()  # the next call starts a new episode
"""),
]


def write(name: str, cells: list) -> str:
    notebook = new_notebook(cells=cells)
    for index, cell in enumerate(notebook.cells):  # stable ids: regenerating gives no diff
        cell.id = f"{name.removesuffix('.ipynb').replace('_', '-')}-{index}"
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    path = os.path.join(HERE, name)
    nbformat.validate(notebook)
    with open(path, "w") as f:
        nbformat.write(notebook, f)
    return path


def main() -> None:
    for name, cells in (("quickstart.ipynb", QUICKSTART), ("train_and_evaluate.ipynb", TRAIN_AND_EVALUATE),
                        ("load_and_use.ipynb", LOAD_AND_USE)):
        print(write(name, cells))


if __name__ == "__main__":
    main()
