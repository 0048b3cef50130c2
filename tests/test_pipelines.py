"""The pipelines ("gato-agent", "gato-image-to-text", and the built-in "text-generation"), each loaded from a saved
directory with `trust_remote_code=True` (the directory's copy of the pipeline code, also in a fresh process where
`modeling_gato` cannot be imported), and the registered classes for models in memory."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from gato_testing import HIDE_MODELING_GATO, tiny_config
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY

import modeling_gato  # noqa: F401  (registers the pipelines)
from modeling_gato import GatoForCausalModeling, GatoProcessor
from modeling_gato.agent import GatoAgent
from modeling_gato.pipelines import AGENT_TASK, IMAGE_TO_TEXT_TASK, GatoAgentPipeline, GatoImageToTextPipeline


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny random model and its processor saved to one directory."""
    directory = tmp_path_factory.mktemp("gato")
    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config(max_position_embeddings=512)).eval()
    processor = GatoProcessor()
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return str(directory), model, processor


def random_episode(env, seed, max_steps=6):
    """A short recorded episode of the task (the agent's demonstration prompt)."""
    from modeling_gato.data.collect import run_episode
    from modeling_gato.envs.experts import RandomPolicy

    columns = run_episode(env, RandomPolicy(env, seed), seed=seed)["columns"]
    return {key: values[:max_steps] for key, values in columns.items() if key != "rewards"}


def test_tasks_are_registered_without_colliding_with_built_in_ones():
    tasks = PIPELINE_REGISTRY.supported_tasks
    assert tasks[AGENT_TASK]["impl"] is GatoAgentPipeline
    assert tasks[IMAGE_TO_TEXT_TASK]["impl"] is GatoImageToTextPipeline
    for built_in, impl in (("text-generation", "TextGenerationPipeline"), ("image-text-to-text", "ImageTextToTextPipeline")):
        assert impl in str(tasks[built_in]["impl"])  # built-in entries untouched (stored as lazy names)


def test_captioning_pipeline_equals_greedy_generate(saved):
    directory, model, processor = saved
    captioner = pipeline(IMAGE_TO_TEXT_TASK, model=directory, trust_remote_code=True, device="cpu")
    assert captioner.processor is not None and captioner.tokenizer is not None
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(32, 48, 3), dtype=np.uint8), rng.integers(0, 256, size=(56, 56, 3), dtype=np.uint8)]
    for image in images:
        out = captioner(image, max_new_tokens=7)
        inputs = processor(images=image)
        with torch.no_grad():
            ids = model.generate(**inputs, max_new_tokens=7, do_sample=False)[0, inputs["input_ids"].shape[1]:]
        assert out == [{"generated_text": processor.decode(ids, skip_special_tokens=True)}]
        assert len(ids) == 7 or ids[-1] == processor.tokenizer.eos_token_id
    many = captioner(images, max_new_tokens=7)  # a list is a batch of images, one output list each
    assert [m[0]["generated_text"] for m in many] == [captioner(i, max_new_tokens=7)[0]["generated_text"] for i in images]
    from PIL import Image

    assert captioner(Image.fromarray(images[0]), max_new_tokens=7) == captioner(images[0], max_new_tokens=7)
    # a text prompt after the image: generation continues after it
    prompted = captioner(images[0], prompt="a picture of", max_new_tokens=4)
    inputs = processor(images=images[0], text="a picture of")
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=4, do_sample=False)[0, inputs["input_ids"].shape[1]:]
    assert prompted[0]["generated_text"] == processor.decode(ids, skip_special_tokens=True)


def test_text_generation_pipeline_loads_from_the_same_directory(saved):
    directory, model, processor = saved
    generator = pipeline("text-generation", model=directory, trust_remote_code=True, device="cpu")
    out = generator("The agent picks up the", max_new_tokens=4, do_sample=False, return_full_text=False)
    ids = processor(text="The agent picks up the")
    with torch.no_grad():
        expected = model.generate(**ids, max_new_tokens=4, do_sample=False)[0, ids["input_ids"].shape[1]:]
    assert out[0]["generated_text"] == processor.decode(expected, skip_special_tokens=True)


@pytest.mark.parametrize("task", ["CartPole-v1", "BabyAI-GoToRedBallGrey-v0"])
def test_agent_pipeline_acts_like_gato_agent_and_keeps_context(saved, task):
    pytest.importorskip("gymnasium")
    if task.startswith("BabyAI"):
        pytest.importorskip("minigrid")
    from modeling_gato.envs.tasks import make_env

    directory, model, processor = saved
    env = make_env(task)
    prompt = random_episode(env, seed=123)
    agent_pipe = pipeline(AGENT_TASK, model=directory, trust_remote_code=True, device="cpu")
    # trust_remote_code=True runs the directory's copy of the pipeline, as it does for the model
    assert type(agent_pipe).__name__ == "GatoAgentPipeline"
    assert type(agent_pipe).__module__.startswith("transformers_modules."), type(agent_pipe).__module__
    direct = GatoAgent(model, processor, env.observation_space, env.action_space, prompt=prompt)
    settings = dict(observation_space=env.observation_space, action_space=env.action_space, prompt=prompt)

    def play(steps, first_seed):
        observation, _ = env.reset(seed=first_seed)
        actions, expected, cache_lengths = [], [], []
        for _ in range(steps):
            action = agent_pipe(observation, **settings)  # the same settings at every call keep the context
            actions.append(action)
            expected.append(direct.act(observation))
            cache_lengths.append(agent_pipe.agent.cache.get_seq_length())
            observation, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                observation, _ = env.reset()
        return actions, expected, cache_lengths

    actions, expected, cache_lengths = play(5, first_seed=0)
    assert [np.asarray(a).tolist() for a in actions] == [np.asarray(a).tolist() for a in expected]
    assert all(env.action_space.contains(a) for a in actions)
    assert all(a < b for a, b in zip(cache_lengths, cache_lengths[1:])), cache_lengths  # context kept between calls
    assert cache_lengths[0] > 0 and agent_pipe.steps == 5
    assert agent_pipe.agent.cache.get_seq_length() == direct.cache.get_seq_length()

    # A new episode: the context goes back to the prompt only; the same seed replays the same actions.
    agent_pipe.reset()
    direct.reset()
    replay, expected, replay_lengths = play(5, first_seed=0)
    assert [np.asarray(a).tolist() for a in replay] == [np.asarray(a).tolist() for a in actions]
    assert replay_lengths == cache_lengths

    # Changing a setting in the middle of an episode is an error, not a silent loss of context.
    observation, _ = env.reset(seed=1)
    with pytest.raises(ValueError, match="reset"):
        agent_pipe(observation, **{**settings, "prompt": random_episode(env, seed=7, max_steps=2)})
    # A prompt with the same content (e.g. a fresh `dataset[i]` row) is the same setting.
    agent_pipe(observation, **{**settings, "prompt": {k: list(v) for k, v in prompt.items()}})
    env.close()


def test_agent_pipeline_settings_from_reset_and_columns_input(saved):
    gym = pytest.importorskip("gymnasium")
    directory, model, processor = saved
    action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    agent_pipe = pipeline(AGENT_TASK, model=directory, trust_remote_code=True, device="cpu", action_space=action_space)
    direct = GatoAgent(model, processor, None, action_space)
    for step in range(3):
        columns = {"continuous_observations": np.full(3, 0.1 * step, np.float32), "text_observations": "reach"}
        out = agent_pipe(columns, return_tokens=True)
        expected = direct.act_tokens(columns)
        assert out["action_tokens"].tolist() == expected.tolist()
        assert action_space.contains(out["action"])
        np.testing.assert_allclose(out["action"], processor.decode_action(expected, action_space))
    # sampling: seeded and reproducible across resets
    agent_pipe.reset(temperature=1.0, seed=3)
    first = [agent_pipe({"continuous_observations": [0.5, 0.5]}).tolist() for _ in range(3)]
    agent_pipe.reset(seed=3)
    assert [agent_pipe({"continuous_observations": [0.5, 0.5]}).tolist() for _ in range(3)] == first
    # continuous_temperature and history_steps reach the agent: the same tokens as a GatoAgent built with them
    # (Box actions greedy while the temperature is 1; only the latest timestep in view from the second step on)
    agent_pipe.reset(temperature=1.0, continuous_temperature=0.0, history_steps=1, seed=5)
    direct = GatoAgent(model, processor, None, action_space, temperature=1.0, continuous_temperature=0.0,
                       history_steps=1, seed=5)
    greedy = GatoAgent(model, processor, None, action_space, history_steps=1)
    windowed = []
    for step in range(3):
        columns = {"continuous_observations": np.full(3, 0.2 * step, np.float32)}
        tokens = agent_pipe(columns, return_tokens=True)["action_tokens"]
        assert tokens.tolist() == direct.act_tokens(columns).tolist() == greedy.act_tokens(columns).tolist()
        windowed.append(agent_pipe.agent.cache.get_seq_length())
    assert agent_pipe.agent.history_steps == 1 and windowed[2] == windowed[1]  # the window keeps one timestep
    with pytest.raises(ValueError, match="history_steps"):
        agent_pipe({"continuous_observations": [0.5]}, history_steps=2)
    agent_pipe.reset(continuous_temperature=None, history_steps=None)
    with pytest.raises(ValueError, match="observation columns"):
        agent_pipe(np.zeros(3))
    with pytest.raises(TypeError, match="unexpected"):
        agent_pipe({"continuous_observations": [0.5]}, temprature=1.0)
    agent_pipe.reset(action_space=None)
    with pytest.raises(ValueError, match="action_space"):
        agent_pipe({"continuous_observations": [0.5]})


# ---------------------------------------------------------------------------- the pipelines travel with the model
def test_save_pretrained_ships_the_pipelines(saved):
    from transformers.dynamic_module_utils import get_imports

    directory, model, processor = saved
    config = json.load(open(os.path.join(directory, "config.json")))
    assert config["custom_pipelines"] == {
        AGENT_TASK: {"impl": "pipelines.GatoAgentPipeline", "pt": ["AutoModelForCausalLM"]},
        IMAGE_TO_TEXT_TASK: {"impl": "pipelines.GatoImageToTextPipeline", "pt": ["AutoModelForCausalLM"]},
    }
    shipped = sorted(name for name in os.listdir(directory) if name.endswith(".py"))
    assert shipped == ["acting_utils.py", "agent.py", "configuration_gato.py", "image_processing_gato.py",
                       "modeling_gato.py", "pipelines.py", "processing_gato.py"]
    # What transformers demands of each shipped file before it runs it (every import outside a try block, those in
    # functions included): the standard library, torch, transformers, numpy and Pillow only. gymnasium, datasets or
    # another module of this package would make the Hub copy fail to load.
    allowed = set(sys.stdlib_module_names) | {"torch", "transformers", "numpy", "PIL"}
    for name in shipped:
        assert set(get_imports(os.path.join(directory, name))) <= allowed, (name, get_imports(os.path.join(directory, name)))
    # the model in memory keeps no custom_pipelines (they are written afresh at every save)
    assert not hasattr(model.config, "custom_pipelines")
    assert not hasattr(GatoForCausalModeling.from_pretrained(directory).config, "custom_pipelines")


def test_registered_pipelines_serve_models_in_memory(saved):
    directory, model, processor = saved
    loaded = GatoForCausalModeling.from_pretrained(directory).eval()  # its config.json names the custom pipelines
    for candidate in (model, loaded):
        agent_pipe = pipeline(AGENT_TASK, model=candidate, processor=processor, device="cpu")
        assert isinstance(agent_pipe, GatoAgentPipeline)
        captioner = pipeline(IMAGE_TO_TEXT_TASK, model=candidate, processor=processor, device="cpu")
        assert isinstance(captioner, GatoImageToTextPipeline)
    pipeline(AGENT_TASK, model=directory, trust_remote_code=True, device="cpu")  # loads the directory's copy...
    tasks = PIPELINE_REGISTRY.supported_tasks  # ...which leaves the installed package's registration alone
    assert tasks[AGENT_TASK]["impl"] is GatoAgentPipeline and tasks[IMAGE_TO_TEXT_TASK]["impl"] is GatoImageToTextPipeline


def test_the_shipped_acting_code_is_the_package_s_one_implementation():
    from modeling_gato import acting_utils
    from modeling_gato.data import sequences
    from modeling_gato.envs import tasks as environments

    assert environments.observation_to_columns is acting_utils.observation_to_columns
    assert environments.column_of_space is acting_utils.column_of_space
    assert sequences.TOKEN_KEYS is acting_utils.TOKEN_KEYS
    assert sequences._slice_sample is acting_utils.slice_sample
    assert sequences._concatenate is acting_utils.concatenate_samples
    sample = GatoProcessor().tokenize_episode(__import__("gato_testing").make_episode(3))  # what the agent slices
    assert len(sample["patches"]) > 0
    n = len(sample["input_ids"])
    parts = [acting_utils.slice_sample(sample, 0, n // 3), acting_utils.slice_sample(sample, n // 3, n)]
    joined = acting_utils.concatenate_samples(parts)
    assert all(np.array_equal(joined[k], sample[k]) for k in joined)
    assert len(parts[0]["patches"]) + len(parts[1]["patches"]) == len(sample["patches"])


FRESH_PROCESS_PIPELINES = HIDE_MODELING_GATO + textwrap.dedent(
    """
    import json

    import numpy as np
    from transformers import pipeline

    directory = sys.argv[1]
    agent = pipeline("gato-agent", model=directory, trust_remote_code=True, device="cpu")
    captioner = pipeline("gato-image-to-text", model=directory, trust_remote_code=True, device="cpu")
    result = {"agent": [type(agent).__name__, type(agent).__module__],
              "captioner": [type(captioner).__name__, type(captioner).__module__],
              "gymnasium_loaded_by_the_pipelines": "gymnasium" in sys.modules,
              "modeling_gato_modules": sorted(m for m in sys.modules if m.split(".")[0] == "modeling_gato")}

    import gymnasium as gym

    inputs = np.load(directory + "/inputs.npz")
    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
    agent.reset(observation_space=observation_space, action_space=gym.spaces.Discrete(3))
    result["discrete"] = [int(agent(o)) for o in inputs["observations"]]
    box = gym.spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float32)
    agent.reset(observation_space=observation_space, action_space=box)
    actions = [agent(o) for o in inputs["observations"]]
    result["box"] = [np.asarray(a).tolist() for a in actions]
    result["box_contained"] = all(box.contains(a) for a in actions)
    result["caption"] = captioner(inputs["image"], max_new_tokens=6)
    print(json.dumps(result))
    """
)


def test_pipelines_load_from_a_saved_directory_in_a_fresh_process(saved, tmp_path):
    gym = pytest.importorskip("gymnasium")
    directory, model, processor = saved
    copied = tmp_path / "elsewhere" / "gato-pipelines"
    shutil.copytree(directory, copied)
    rng = np.random.default_rng(0)
    observations = rng.uniform(-1, 1, size=(4, 4)).astype(np.float32)
    image = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    np.savez(copied / "inputs.npz", observations=observations, image=image)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS_PIPELINES, str(copied)],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for key, name in (("agent", "GatoAgentPipeline"), ("captioner", "GatoImageToTextPipeline")):
        assert report[key][0] == name and report[key][1].startswith("transformers_modules."), report[key]
    assert report["modeling_gato_modules"] == []
    assert report["gymnasium_loaded_by_the_pipelines"] is False

    # the same actions and caption as the installed package's agent and greedy generation
    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
    discrete = GatoAgent(model, processor, observation_space, gym.spaces.Discrete(3))
    assert report["discrete"] == [int(discrete.act(o)) for o in observations]
    box = gym.spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float32)
    continuous = GatoAgent(model, processor, observation_space, box)
    np.testing.assert_allclose(report["box"], [np.asarray(continuous.act(o)).tolist() for o in observations], atol=1e-6)
    assert report["box_contained"] is True
    inputs = processor(images=image)
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=6, do_sample=False)[0, inputs["input_ids"].shape[1]:]
    assert report["caption"] == [{"generated_text": processor.decode(ids, skip_special_tokens=True)}]
