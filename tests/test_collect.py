"""`python -m modeling_gato collect` on real environments with their real experts (small counts)."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("minigrid")
pytest.importorskip("metaworld")
pytest.importorskip("stable_baselines3")

from conftest import COLLECT_EPISODES as EPISODES  # noqa: E402
from datasets import load_from_disk  # noqa: E402

from modeling_gato import GatoProcessor  # noqa: E402
from modeling_gato.data.collect import babyai_caption, babyai_questions, collect  # noqa: E402
from modeling_gato.envs.tasks import TRAINING_TASKS, action_to_column, column_to_action, observation_to_columns  # noqa: E402


def test_every_source_is_written_with_consistent_columns(collected):
    output, _ = collected
    manifest = json.loads((output / "manifest.json").read_text())
    assert set(manifest["tasks"]) == set(TRAINING_TASKS)
    assert {t["domain"] for t in manifest["tasks"].values()} == {"babyai", "metaworld", "mujoco", "classic"}
    processor = GatoProcessor()
    for task, info in manifest["tasks"].items():
        dataset = load_from_disk(str(output / "episodes" / task))
        assert len(dataset) == EPISODES == info["episodes"]
        for row in dataset:
            assert row["task"] == task
            columns = [c for c in row if c.endswith(("_observations", "_actions")) and row[c] is not None]
            lengths = {len(row[c]) for c in columns} | {len(row["rewards"])}
            assert len(lengths) == 1, (task, {c: len(row[c]) for c in columns})
            if info["domain"] == "babyai":
                assert np.asarray(row["image_observations"][0]).shape == (56, 56, 3)
                assert isinstance(row["text_observations"][0], str) and row["text_observations"][0]
                assert all(0 <= a < 7 for a in row["discrete_actions"])
            if info["domain"] == "metaworld":
                assert np.asarray(row["continuous_observations"]).shape[1] == 39
                actions = np.asarray(row["continuous_actions"])
                assert actions.shape[1] == 4 and np.abs(actions).max() <= 1.0
            processor.tokenize_episode(row)  # every episode tokenizes
    assert len(load_from_disk(str(output / "text"))) == 40
    captions = load_from_disk(str(output / "captions"))
    assert len(captions) > 0 and captions[0]["text"].startswith("a room with")
    vqa = load_from_disk(str(output / "vqa"))
    assert {"image", "question", "answer"} <= set(vqa.column_names)


def test_experts_succeed_and_beat_random(collected):
    output, stdout = collected
    scores = json.loads((output / "scores.json").read_text())
    assert "| task | domain | expert return |" in stdout
    for task, entry in scores.items():
        expert, random = entry["expert"], entry["random"]
        assert expert["mean_return"] > random["mean_return"], task
        if entry["domain"] in ("babyai", "metaworld"):
            assert expert["success_rate"] >= 0.9, (task, expert)
    assert scores["CartPole-v1"]["expert"]["mean_return"] >= 475  # PPO trained here reaches the cap
    assert scores["InvertedPendulum-v5"]["expert"]["mean_return"] >= 900


def test_interrupted_collect_leaves_no_output_and_resumes(tmp_path, monkeypatch):
    """An interruption leaves no `data` (train never sees half a directory), only `data.partial` with the finished
    task, and no lock; the same call then finishes from there."""
    from modeling_gato.data import collect as collect_module

    real = collect_module.text_corpus

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(collect_module, "text_corpus", fail)
    target = tmp_path / "data"
    arguments = dict(tasks=["BabyAI-GoToRedBallGrey-v0"], episodes=1, score_episodes=1, text_paragraphs=5,
                     progress=False)
    with pytest.raises(KeyboardInterrupt):
        collect(str(target), **arguments)
    assert not target.exists()
    assert sorted(p for p in os.listdir(tmp_path)) == ["data.partial"]
    assert (target.parent / "data.partial" / ".collect" / "BabyAI-GoToRedBallGrey-v0" / "task.json").is_file()
    monkeypatch.setattr(collect_module, "text_corpus", real)
    manifest = collect(str(target), **arguments)
    assert sorted(os.listdir(tmp_path)) == ["data"]
    assert manifest["tasks"]["BabyAI-GoToRedBallGrey-v0"]["episodes"] == 1
    assert not (target / ".collect").exists()


def test_action_noise_moves_the_states_and_keeps_the_experts_labels(tmp_path):
    """`action_noise` (DART): in a continuous-action task the episodes leave the expert's own trajectory, every
    recorded action is still the scripted expert's action on the recorded observation, and the expert reference is
    the noise-free one. A discrete-action task is collected exactly as without noise."""
    from metaworld.policies import SawyerReachV3Policy

    tasks = ["metaworld-reach-v3", "BabyAI-GoToRedBallGrey-v0"]
    settings = dict(tasks=tasks, episodes=2, score_episodes=1, text_paragraphs=5, captions_per_task=0, progress=False)
    clean = collect(str(tmp_path / "clean"), **settings)
    noisy = collect(str(tmp_path / "noisy"), action_noise={"metaworld": 0.1, "babyai": 0.5}, **settings)
    assert clean["tasks"]["metaworld-reach-v3"]["action_noise"] == 0.0
    assert noisy["tasks"]["metaworld-reach-v3"]["action_noise"] == 0.1
    assert noisy["tasks"]["BabyAI-GoToRedBallGrey-v0"]["action_noise"] == 0.0  # discrete actions: no noise
    assert """--action-noise '{"babyai": 0.5, "metaworld": 0.1}'""" in noisy["command"]
    assert "--action-noise" not in clean["command"]
    card = (tmp_path / "noisy" / "README.md").read_text()
    assert "Episodes of metaworld-reach-v3 (noise 0.1) execute the expert's action plus Gaussian noise" in card
    assert "Gaussian noise" not in (tmp_path / "clean" / "README.md").read_text()
    for task in tasks:  # references: the expert's own play, with or without noise in the data
        assert noisy["scores"][task]["expert"] == clean["scores"][task]["expert"]
        assert noisy["scores"][task]["random"] == clean["scores"][task]["random"]

    def episodes(name, task):
        return load_from_disk(str(tmp_path / name / "episodes" / task))

    babyai = "BabyAI-GoToRedBallGrey-v0"
    assert episodes("noisy", babyai).to_dict() == episodes("clean", babyai).to_dict()
    expert = SawyerReachV3Policy()
    for clean_row, noisy_row in zip(episodes("clean", "metaworld-reach-v3"), episodes("noisy", "metaworld-reach-v3")):
        clean_states = np.asarray(clean_row["continuous_observations"])
        states = np.asarray(noisy_row["continuous_observations"])
        actions = np.asarray(noisy_row["continuous_actions"])
        np.testing.assert_array_equal(states[0], clean_states[0])  # same reset, then the noise takes it elsewhere
        assert np.abs(states[1:50] - clean_states[1:50]).max() > 1e-3
        expected = np.stack([expert.get_action(state.astype(np.float64)) for state in states])
        np.testing.assert_allclose(actions, np.clip(expected, -1, 1), atol=1e-4)


def test_the_babyai_bot_puts_back_an_object_it_did_not_mean_to_pick_up():
    """`BabyAIExpert.executed`: told that the environment executed "pickup" facing an object the mission does not
    name, the bot's next action is "drop" (it plans from what was executed), and the episode still ends in success;
    told its own action, it plans as if it had not been told."""
    from modeling_gato.envs.experts import BabyAIExpert
    from modeling_gato.envs.tasks import make_env

    env = make_env("BabyAI-PickupLoc-v0")
    actions = env.unwrapped.actions
    for seed in range(50):  # the first state where the bot faces an object it does not pick up
        observation, _ = env.reset(seed=seed)
        expert = BabyAIExpert(env)
        expert.reset(env)
        for _ in range(40):
            action = expert(observation)
            front = env.unwrapped.grid.get(*env.unwrapped.front_pos)
            wanted = env.unwrapped.instrs.desc.obj_set  # every object the mission's description matches
            if front is not None and front.can_pickup() and action != actions.pickup and front not in wanted:
                break
            expert.executed(action)  # its own action: nothing changes
            observation, *_ = env.step(action)
        else:
            continue
        break
    else:
        pytest.fail("no seed of 50 faces an object the bot does not pick up")
    expert.executed(actions.pickup)
    observation, *_ = env.step(actions.pickup)
    assert env.unwrapped.carrying is front
    action = expert(observation)
    assert action == actions.drop
    total = 0.0
    for _ in range(60):
        expert.executed(action)
        observation, reward, terminated, truncated, _ = env.step(action)
        total += reward
        if terminated or truncated:
            break
        action = expert(observation)
    assert total > 0 and env.unwrapped.carrying is not front


def test_action_epsilon_executes_random_discrete_actions_and_records_the_experts(tmp_path):
    """`action_epsilon`: in a discrete-action task a step executes, with that probability, a random action drawn
    from the episode's own stream (BabyAI: left, right, forward, pickup, drop); every recorded action is the bot's
    suggestion after what was actually executed; the references are the clean expert's; a continuous-action task
    is collected exactly as without it; the manifest, command and card say so."""
    from modeling_gato.data.collect import EPSILON_STREAM
    from modeling_gato.envs.experts import BabyAIExpert
    from modeling_gato.envs.tasks import make_env

    babyai, reach = "BabyAI-PickupLoc-v0", "metaworld-reach-v3"
    settings = dict(tasks=[babyai, reach], episodes=2, task_episodes={"babyai": 16}, score_episodes=1,
                    text_paragraphs=5, captions_per_task=0, progress=False)
    clean = collect(str(tmp_path / "clean"), **settings)
    noisy = collect(str(tmp_path / "noisy"), action_epsilon={"babyai": 0.3, "metaworld": 0.5}, **settings)
    assert clean["tasks"][babyai]["action_epsilon"] == 0.0
    assert noisy["tasks"][babyai]["action_epsilon"] == 0.3
    assert noisy["tasks"][reach]["action_epsilon"] == 0.0  # continuous actions: none
    assert """--action-epsilon '{"babyai": 0.3, "metaworld": 0.5}'""" in noisy["command"]
    assert "--action-epsilon" not in clean["command"]
    card = (tmp_path / "noisy" / "README.md").read_text()
    assert (f"Episodes of {babyai} (probability 0.3) execute a random action instead of the expert's at each step "
            "with that probability") in card
    for task in (babyai, reach):
        assert noisy["scores"][task]["expert"] == clean["scores"][task]["expert"]

    def episodes(name, task):
        return load_from_disk(str(tmp_path / name / "episodes" / task))

    assert episodes("noisy", reach).to_dict() == episodes("clean", reach).to_dict()
    env = make_env(babyai)
    random_steps = []
    for seed, row in enumerate(episodes("noisy", babyai)):  # replay: the bot, told what was executed
        observation, _ = env.reset(seed=seed)
        expert, stream = BabyAIExpert(env), np.random.default_rng([seed, EPSILON_STREAM])
        expert.reset(env)
        for recorded in row["discrete_actions"]:
            assert expert(observation) == recorded
            executed = recorded
            if stream.random() < 0.3:
                executed = [0, 1, 2, 3, 4][int(stream.integers(5))]
                random_steps.append(executed)
            expert.executed(executed)
            observation, *_ = env.step(executed)
    assert len(random_steps) > 0 and set(random_steps) & {3, 4}  # a random pickup or drop: the bot replans


def test_steps_after_success_ends_the_recorded_episodes_and_keeps_the_references_whole(tmp_path):
    """`steps_after_success`: a Meta-World episode (which reports success and plays on to 500 steps) is recorded up
    to that many steps after its first successful step, a prefix of the whole episode; a task that does not report
    success is collected as without it; the expert references are the whole episodes'; manifest and command say so."""
    from modeling_gato.envs.tasks import make_env

    reach, cartpole = "metaworld-reach-v3", "CartPole-v1"
    settings = dict(tasks=[reach, cartpole], episodes=2, score_episodes=1, text_paragraphs=5, captions_per_task=0,
                    progress=False)
    whole = collect(str(tmp_path / "whole"), **settings)
    cut = collect(str(tmp_path / "cut"), steps_after_success={"metaworld": 5}, **settings)
    assert cut["tasks"][reach]["steps_after_success"] == 5 and cut["tasks"][cartpole]["steps_after_success"] is None
    assert """--steps-after-success '{"metaworld": 5}'""" in cut["command"]
    assert "--steps-after-success" not in whole["command"]
    card = (tmp_path / "cut" / "README.md").read_text()
    assert (f"Episodes of {reach} (5 steps) end that many steps after their first successful step "
            "(`collect --steps-after-success`); their reference scores are the expert's whole episodes") in card
    assert "steps-after-success" not in (tmp_path / "whole" / "README.md").read_text()
    for task in (reach, cartpole):
        assert cut["scores"][task]["expert"] == whole["scores"][task]["expert"]

    def episodes(name, task):
        return load_from_disk(str(tmp_path / name / "episodes" / task))

    assert episodes("cut", cartpole).to_dict() == episodes("whole", cartpole).to_dict()
    env = make_env(reach)
    for seed, (short, full) in enumerate(zip(episodes("cut", reach), episodes("whole", reach))):
        env.reset(seed=seed)
        first = next(step for step, action in enumerate(full["continuous_actions"], start=1)
                     if env.step(np.asarray(action, np.float32))[4]["success"])
        assert len(full["rewards"]) == 500 and len(short["rewards"]) == first + 5 < 500
        for column in short:
            assert short[column] == (full[column][: first + 5] if isinstance(full[column], list) else full[column])


def test_task_episodes_give_named_tasks_and_domains_their_own_count(tmp_path):
    """`task_episodes` overrides `episodes` by task name before domain; the other tasks keep `episodes`, the
    manifest counts what was collected, the command line repeats the mapping, and the first episodes are the same
    seeds as in a collection without it."""
    tasks = ["BabyAI-GoToRedBallGrey-v0", "BabyAI-GoToLocal-v0", "CartPole-v1"]
    settings = dict(tasks=tasks, episodes=2, score_episodes=1, text_paragraphs=5, captions_per_task=0, progress=False)
    plain = collect(str(tmp_path / "plain"), **settings)
    named = {"babyai": 5, "BabyAI-GoToLocal-v0": 3}
    manifest = collect(str(tmp_path / "named"), task_episodes=named, **settings)
    counts = {task: manifest["tasks"][task]["episodes"] for task in tasks}
    assert counts == {"BabyAI-GoToRedBallGrey-v0": 5, "BabyAI-GoToLocal-v0": 3, "CartPole-v1": 2}
    for task, count in counts.items():
        rows = load_from_disk(str(tmp_path / "named" / "episodes" / task))
        assert len(rows) == count
        assert manifest["scores"][task]["expert"]["episodes"] == count
        assert rows.select(range(2)).to_dict() == load_from_disk(str(tmp_path / "plain" / "episodes" / task)).to_dict()
    assert """--task-episodes '{"BabyAI-GoToLocal-v0": 3, "babyai": 5}'""" in manifest["command"]
    assert "--task-episodes" not in plain["command"]


def test_existing_output_is_not_overwritten_by_accident(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    with pytest.raises(FileExistsError, match="--overwrite"):
        collect(str(target), tasks=["CartPole-v1"], episodes=1, progress=False)


def test_space_mapping_for_dict_box_and_discrete_spaces():
    gymnasium = pytest.importorskip("gymnasium")
    spaces = gymnasium.spaces
    space = spaces.Dict({
        "z_camera": spaces.Box(0, 255, (16, 16, 3), np.uint8),
        "b_joints": spaces.Box(-1, 1, (2,), np.float32),
        "a_velocity": spaces.Box(-np.inf, np.inf, (1,), np.float32),
        "mode": spaces.Discrete(3, start=1),
        "goal": spaces.Text(20),
    })
    observation = {"z_camera": np.zeros((16, 16, 3), np.uint8), "b_joints": np.array([0.5, -0.5], np.float32),
                   "a_velocity": np.array([3.0], np.float32), "mode": 2, "goal": "open the door"}
    columns = observation_to_columns(observation, space)
    np.testing.assert_allclose(columns["continuous_observations"], [3.0, 0.5, -0.5])  # keys in order: a_, b_
    assert columns["discrete_observations"].tolist() == [1]  # Discrete(start=1): value - start
    assert columns["text_observations"] == "open the door" and columns["image_observations"].shape == (16, 16, 3)
    box = spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 4.0], np.float32))
    column, stored = action_to_column(np.array([1.0, 1.0]), box)
    assert column == "continuous_actions"
    np.testing.assert_allclose(stored, [0.5, -0.5])
    np.testing.assert_allclose(column_to_action(stored, box), [1.0, 1.0])
    assert action_to_column(5, spaces.Discrete(7)) == ("discrete_actions", 5)


def test_captions_and_questions_are_grounded_in_the_objects():
    objects = [("blue", "key"), ("red", "ball"), ("red", "ball")]
    assert babyai_caption(objects) == "a room with one blue key and two red balls in view"
    assert babyai_caption([]).startswith("an empty room")
    pairs = dict(babyai_questions(objects, np.random.default_rng(0)))
    truth = {"how many objects are in view?": "three", "how many balls are in view?": "two",
             "how many keys are in view?": "one", "how many boxes are in view?": "no",
             "how many doors are in view?": "no", "what color is the key?": "blue"}
    assert pairs and all(truth[q] == a for q, a in pairs.items())


def test_the_builder_reads_the_collected_directory(collected):
    from modeling_gato import GatoDataCollator
    from modeling_gato.data.sequences import GatoSequenceBuilder, sources_from_directory

    output, _ = collected
    processor = GatoProcessor()
    for streaming in (False, True):
        sources = sources_from_directory(str(output), weights={"metaworld": 2.0}, streaming=streaming)
        names = {s.name for s in sources}
        assert names == set(TRAINING_TASKS) | {"text", "captions", "vqa"}
        assert all(s.weight == 2.0 for s in sources if s.name.startswith("metaworld"))
        builder = GatoSequenceBuilder(processor, sources, context_length=1024, seed=0)
        samples = [s for _, s in zip(range(60), builder)]
        assert all(len(s["input_ids"]) == 1024 for s in samples)
        seen = {s["task"] for s in samples}
        assert len(seen) >= 8
        batch = GatoDataCollator(processor)(samples[:8])
        assert batch["input_ids"].shape[0] == 8


@pytest.mark.parametrize("settings, message", [
    ({"episodes": 0}, "episodes: expected an integer >= 1, got 0"),
    ({"captions_per_task": -1}, "captions_per_task: expected an integer >= 0, got -1"),
    ({"expert_steps": 0}, "expert_steps: expected None"),
    ({"tasks": ["CartPole-v9"]}, "CartPole-v9"),
    ({"action_noise": -0.1}, r"action_noise: expected a finite number >= 0 \(half action ranges\), got -0.1"),
    ({"action_noise": float("nan")}, "action_noise: expected a finite number >= 0"),
    ({"action_noise": {"mujoco": -1}}, "action_noise: expected a finite number >= 0 .* for 'mujoco', got -1"),
    ({"action_noise": {"Pendulum-v1": 0.1}}, "action_noise: 'Pendulum-v1' is neither a task nor a domain"),
    ({"action_epsilon": 1.5}, r"action_epsilon: expected a probability in \[0, 1\], got 1.5"),
    ({"action_epsilon": {"babyai": -0.1}}, r"action_epsilon: expected a probability in \[0, 1\] for 'babyai'"),
    ({"action_epsilon": {"Pendulum-v1": 0.1}}, "action_epsilon: 'Pendulum-v1' is neither a task nor a domain"),
    ({"steps_after_success": -1}, r"steps_after_success: expected None \(whole episodes\) or an integer >= 0, got -1"),
    ({"steps_after_success": {"metaworld": 2.5}}, "steps_after_success: expected .* for 'metaworld', got 2.5"),
    ({"steps_after_success": {"atari": 5}}, "steps_after_success: 'atari' is neither a task nor a domain"),
    ({"task_episodes": {"babyai": 0}}, "task_episodes: expected an integer >= 1 for 'babyai', got 0"),
    ({"task_episodes": {"atari": 5}}, "task_episodes: 'atari' is neither a task nor a domain"),
    ({"task_episodes": 5}, "task_episodes: expected a mapping task name or domain -> episodes, got 5"),
])
def test_collect_settings_are_checked_before_any_work(tmp_path, settings, message):
    """`CollectConfig.check` refuses a bad setting by name before the lock or the partial directory exist."""
    from modeling_gato.data.collect import CollectConfig

    with pytest.raises(ValueError, match=message):
        collect(str(tmp_path / "data"), CollectConfig(**settings))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError, match=r"unknown settings \['episode'\]"):
        collect(str(tmp_path / "data"), episode=3)
