"""`transformers` pipelines for Gato: an agent (observation in, action out) and captioning (image in, text out).

The pipelines travel with the model: `model.save_pretrained(d)` writes both tasks into `config.json`
(`custom_pipelines`) and copies this file with the code it needs (`agent.py`, `acting_utils.py`, the model and
processor files), so a saved directory (`model.save_pretrained(d)` + `processor.save_pretrained(d)`), or its Hub copy,
gives the pipelines with `trust_remote_code=True` where this package is not installed (only torch, transformers,
numpy and Pillow are needed; gymnasium only for the environment itself). As with the model, `trust_remote_code=True`
then runs the directory's copy of the code even where this package is installed. Importing `modeling_gato` also
registers both tasks with `transformers.pipelines.PIPELINE_REGISTRY` (e.g. for `pipeline("gato-agent", model=model,
processor=processor)` with objects in memory):

```python
import gymnasium
from transformers import pipeline

agent = pipeline("gato-agent", model=d, trust_remote_code=True)
env = gymnasium.make("CartPole-v1")
observation, _ = env.reset(seed=0)
agent.reset(observation_space=env.observation_space, action_space=env.action_space, prompt=demo_episode)
done = False
while not done:
    observation, reward, terminated, truncated, _ = env.step(agent(observation))
    done = terminated or truncated

captioner = pipeline("gato-image-to-text", model=d, trust_remote_code=True)
captioner(image, max_new_tokens=16)        # [{"generated_text": "..."}], greedy unless do_sample=True
generator = pipeline("text-generation", model=d, trust_remote_code=True)   # the built-in one works as is
```

Agent pipeline design (`GatoAgentPipeline`, task "gato-agent"):

- One pipeline object plays one episode at a time and keeps its context (the prompt, every observation and action
  so far, and the KV cache) between calls: each call appends one observation and returns one action. It wraps a
  `modeling_gato.agent.GatoAgent`, exposed as `pipe.agent` (e.g. `pipe.agent.cache.get_seq_length()`).
- Episode settings: `observation_space`, `action_space`, `prompt` (an episode row of the task, the demonstration),
  `prompt_tokens`, `context_length`, `temperature` (0 = greedy, the default), `continuous_temperature` (that of
  `Box` action tokens when it differs from `temperature`; None = `temperature`), `history_steps` (at most this many
  timesteps of the episode in view, the current one included; None = as many as fit), `seed`. Give them to
  `pipeline(...)` (defaults for every episode), to `pipe.reset(...)` (this episode and the next ones), or to the
  first call of an episode. Calls later in the episode may repeat the same settings (handy in a loop); different
  ones raise a `ValueError` rather than silently dropping the context: call `pipe.reset(...)` to start a new episode.
- `pipe.reset(seed=None, **settings)` starts a new episode (the context goes back to the prompt).
- Input: a raw gymnasium observation (needs `observation_space`) or, without `observation_space`, a dict of
  observation columns (`continuous_observations`, `discrete_observations`, `image_observations`,
  `text_observations`). `reward=` (of the previous step) is used only when the processor has `include_rewards`.
- Output: the environment action (an `int` for `Discrete`, an array for `Box` / `MultiDiscrete`), ready for
  `env.step`; `return_tokens=True` gives `{"action": ..., "action_tokens": ids}` instead.
- A list is one observation (e.g. a Box observation given as a list), never a batch: an agent acts step by step.

Captioning (`GatoImageToTextPipeline`, task "gato-image-to-text"): an image (PIL, numpy `HWC`/`CHW`, torch, or a
path / URL) or a list of them; the model generates after the image patches (optionally after a text `prompt`).
Greedy by default; `max_new_tokens` (default 20) and any other `generate()` keyword (`do_sample`, `num_beams`, ...)
are accepted, or `generate_kwargs={...}`. Returns `[{"generated_text": caption}]` per image (the prompt is not
repeated). Images are processed one at a time (`batch_size` > 1 is not supported: the processor pads on the right).

Task names do not collide with built-in ones ("image-to-text" is a deprecated alias of "image-text-to-text" in
transformers 5, whose chat-template contract Gato's processor does not follow).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from transformers import AutoModelForCausalLM, GenerationConfig
from transformers.pipelines import PIPELINE_REGISTRY, Pipeline

from .acting_utils import observation_to_columns
from .agent import GatoAgent

AGENT_TASK = "gato-agent"
IMAGE_TO_TEXT_TASK = "gato-image-to-text"

EPISODE_SETTINGS = ("observation_space", "action_space", "prompt", "prompt_tokens", "context_length", "temperature",
                    "continuous_temperature", "history_steps", "seed")
_AGENT_DEFAULTS = {"observation_space": None, "action_space": None, "prompt": None, "prompt_tokens": None,
                   "context_length": None, "temperature": 0.0, "continuous_temperature": None, "history_steps": None,
                   "seed": 0}
_NOT_GIVEN = object()


class GatoAgentPipeline(Pipeline):
    """Observation in, action out, keeping the episode's context between calls (see the module docstring)."""

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False

    def __init__(self, *args, **kwargs):
        # Episode settings given to `pipeline(...)` are the defaults of every episode; pull them out before
        # `Pipeline.__init__` hands the remaining keywords to `_sanitize_parameters`.
        self._defaults = dict(_AGENT_DEFAULTS)
        for key in EPISODE_SETTINGS:
            if key in kwargs:
                self._defaults[key] = kwargs.pop(key)
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(f"The {AGENT_TASK!r} pipeline needs the GatoProcessor (save it next to the model).")
        self.model.eval()
        self.reset()

    # ------------------------------------------------------------------ episodes
    def reset(self, seed: int | None = None, **settings: Any) -> None:
        """Start a new episode. Settings given here (see `EPISODE_SETTINGS`) replace the pipeline's defaults for
        this episode and the following ones; the agent is built at the episode's first observation."""
        unknown = set(settings) - set(EPISODE_SETTINGS)
        if unknown:
            raise TypeError(f"reset() got unexpected settings {sorted(unknown)}; expected some of {EPISODE_SETTINGS}.")
        if seed is not None:
            settings["seed"] = seed
        self._defaults.update(settings)
        self.agent: GatoAgent | None = None
        self._settings: dict[str, Any] | None = None
        self.steps = 0

    def _agent_for(self, call_settings: Mapping[str, Any]) -> GatoAgent:
        if self.agent is None:
            settings = {**self._defaults, **call_settings}
            if settings["action_space"] is None:
                raise ValueError(f"The {AGENT_TASK!r} pipeline needs action_space= (the environment's action space), "
                                 "given to pipeline(...), reset(...) or the call.")
            self.agent = GatoAgent(
                self.model, self.processor, settings["observation_space"], settings["action_space"],
                prompt=settings["prompt"], prompt_tokens=settings["prompt_tokens"],
                context_length=settings["context_length"], temperature=settings["temperature"], seed=settings["seed"],
                use_cache=True, history_steps=settings["history_steps"],
                continuous_temperature=settings["continuous_temperature"],
            )
            self._settings = settings
            return self.agent
        for key, value in call_settings.items():
            if not self._same_setting(key, value):
                raise ValueError(
                    f"{key}= differs from the one this episode started with ({self.steps} steps ago); "
                    "call pipe.reset(...) to start a new episode with other settings."
                )
        return self.agent

    def _same_setting(self, key: str, value: Any) -> bool:
        current = self._settings[key]
        if value is current:
            return True
        if key == "prompt":
            if value is None or current is None:
                return False
            ours, theirs = self.agent.prompt_sample, self.agent._prompt_sample(value)
            return all(np.array_equal(ours[k], theirs[k]) for k in ours)
        try:
            return bool(value == current)
        except Exception:  # noqa: BLE001  (spaces or arrays without a plain truth value)
            return False

    # ------------------------------------------------------------------ pipeline protocol
    def __call__(self, observation: Any, **kwargs: Any) -> Any:
        """Append one observation, return the action (see the module docstring for the keywords)."""
        preprocess_params, forward_params, postprocess_params = self._sanitize_parameters(**kwargs)
        preprocess_params = {**self._preprocess_params, **preprocess_params}
        forward_params = {**self._forward_params, **forward_params}
        postprocess_params = {**self._postprocess_params, **postprocess_params}
        self.call_count += 1
        return self.run_single(observation, preprocess_params, forward_params, postprocess_params)

    def _sanitize_parameters(self, reward: Any = None, return_tokens: bool | None = None, **settings: Any):
        unknown = set(settings) - set(EPISODE_SETTINGS)
        if unknown:
            raise TypeError(f"{AGENT_TASK!r} pipeline got unexpected keywords {sorted(unknown)}; expected reward=, "
                            f"return_tokens= or episode settings {EPISODE_SETTINGS}.")
        preprocess = {"settings": settings} if settings else {}
        forward = {"reward": reward} if reward is not None else {}
        postprocess = {"return_tokens": return_tokens} if return_tokens is not None else {}
        return preprocess, forward, postprocess

    def preprocess(self, observation: Any, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
        agent = self._agent_for(settings or {})
        if agent.observation_space is not None:
            columns = observation_to_columns(observation, agent.observation_space)
        elif isinstance(observation, Mapping):
            columns = dict(observation)
        else:
            raise ValueError("Without observation_space, the observation must be a dict of observation columns "
                             "(continuous_observations, discrete_observations, image_observations, text_observations).")
        return {"columns": columns}

    def _forward(self, model_inputs: dict[str, Any], reward: Any = None) -> dict[str, Any]:
        tokens = self.agent.act_tokens(model_inputs["columns"], reward=reward)
        self.steps += 1
        return {"action_tokens": tokens}

    def postprocess(self, model_outputs: dict[str, Any], return_tokens: bool = False) -> Any:
        tokens = np.asarray(model_outputs["action_tokens"])
        action = self.processor.decode_action(tokens, self.agent.action_space)
        return {"action": action, "action_tokens": tokens} if return_tokens else action


class GatoImageToTextPipeline(Pipeline):
    """Captioning: image in, generated text out (greedy by default)."""

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False
    _pipeline_calls_generate = True
    _default_generation_config = GenerationConfig(max_new_tokens=20, do_sample=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(f"The {IMAGE_TO_TEXT_TASK!r} pipeline needs the GatoProcessor (save it next to the model).")

    def __call__(self, images: Any, **kwargs: Any) -> Any:
        batch_size = kwargs.pop("batch_size", None)
        if batch_size not in (None, 1):
            raise ValueError(f"{IMAGE_TO_TEXT_TASK!r}: batch_size={batch_size} is not supported; images go one at a time.")
        if _is_single_image(images):
            return super().__call__(images, **kwargs)
        return super().__call__(list(images), **kwargs)

    def _sanitize_parameters(self, prompt: str | None = None, generate_kwargs: dict | None = None,
                             skip_special_tokens: bool | None = None, timeout: float | None = None, **kwargs):
        preprocess = {}
        if prompt is not None:
            preprocess["prompt"] = prompt
        if timeout is not None:
            preprocess["timeout"] = timeout
        forward = {"generate_kwargs": {**(generate_kwargs or {}), **kwargs}}
        postprocess = {"skip_special_tokens": skip_special_tokens} if skip_special_tokens is not None else {}
        return preprocess, forward, postprocess

    def preprocess(self, image: Any, prompt: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        if isinstance(image, str):
            from transformers.image_utils import load_image

            image = load_image(image, timeout=timeout)
        inputs = self.processor(images=image, text=prompt, return_tensors="pt")
        inputs.pop("loss_mask", None)
        return dict(inputs)

    def _forward(self, model_inputs: dict[str, Any], generate_kwargs: dict | None = None) -> dict[str, Any]:
        kwargs = self._prepare_generate_kwargs(generate_kwargs or {})
        prompt_length = model_inputs["input_ids"].shape[1]
        sequences = self.model.generate(**model_inputs, **kwargs)
        return {"generated_ids": sequences[:, prompt_length:]}

    def postprocess(self, model_outputs: dict[str, Any], skip_special_tokens: bool = True) -> list[dict[str, str]]:
        texts = self.processor.batch_decode(model_outputs["generated_ids"], skip_special_tokens=skip_special_tokens)
        return [{"generated_text": text} for text in texts]


def _is_single_image(images: Any) -> bool:
    if isinstance(images, (list, tuple)):
        return False
    return True


PIPELINES = {AGENT_TASK: GatoAgentPipeline, IMAGE_TO_TEXT_TASK: GatoImageToTextPipeline}


def custom_pipelines() -> dict[str, dict[str, Any]]:
    """The `custom_pipelines` entry of `config.json` (what `Pipeline.save_pretrained` would write for each task):
    `pipeline(task, model=d, trust_remote_code=True)` loads the class from the saved directory's copy of this file."""
    module = __name__.rsplit(".", 1)[-1]
    return {task: {"impl": f"{module}.{cls.__name__}", "pt": [AutoModelForCausalLM.__name__]}
            for task, cls in PIPELINES.items()}


def save_pipeline_code(save_directory: str) -> list[str]:
    """Copy this file and the shipped files it imports (recursively: `agent.py`, `acting_utils.py`, the model and
    processor files) into `save_directory`; returns the paths written (`GatoForCausalModeling.save_pretrained` calls
    it and writes `custom_pipelines()` into `config.json`)."""
    from transformers.dynamic_module_utils import custom_object_save

    return [str(path) for path in custom_object_save(GatoAgentPipeline, save_directory) or []]


def register_pipelines(overwrite: bool = True) -> None:
    """Register the Gato tasks (idempotent). With `overwrite=False` a task someone already registered is left alone."""
    for task, cls in PIPELINES.items():
        registered = PIPELINE_REGISTRY.supported_tasks.get(task, {}).get("impl")
        if registered is cls or (registered is not None and not overwrite):
            continue
        PIPELINE_REGISTRY.register_pipeline(task, pipeline_class=cls, pt_model=AutoModelForCausalLM)


# The installed package registers its classes (replacing a loaded copy's); a copy loaded from a saved directory
# (`transformers_modules...`) registers its own only where nothing serves these tasks yet, so loading a directory's
# pipeline never changes what the installed package registered.
register_pipelines(overwrite=__name__ == "modeling_gato.pipelines")
