"""The sequence builder: exact layouts, the paper's prompt conditioning, task mixtures, packing, streaming."""

import itertools
import re

import numpy as np
import pytest
from datasets import Dataset, IterableDataset

from modeling_gato import GatoDataCollator
from modeling_gato.data.sequences import GatoSequenceBuilder, Source


def numbered_episodes(task_id: int, count: int = 6, steps: int = 10) -> list[dict]:
    """Episodes whose discrete observation at step t of episode e is [task, e, t]: the ids say where they came from."""
    return [
        {
            "discrete_observations": [[task_id, e, t] for t in range(steps)],
            "discrete_actions": [(e + t) % 7 for t in range(steps)],
            "task": f"task{task_id}",
        }
        for e in range(count)
    ]


def take(builder, n):
    return list(itertools.islice(iter(builder), n))


def test_a_hand_checkable_sample(processor):
    # each timestep: 3 observation tokens, separator, 1 action = 5 tokens; 17 tokens of context -> 3 whole steps
    builder = GatoSequenceBuilder(processor, {"t": Dataset.from_list(numbered_episodes(1, count=1))},
                                  context_length=17, prompt_probability=0.0, seed=0)
    for sample in take(builder, 20):
        assert len(sample["input_ids"]) == 17
        real = sample["input_ids"][:15].reshape(3, 5)
        first_step = int(real[0, 2])
        for row, t in zip(real, range(first_step, first_step + 3)):
            assert row.tolist() == [1, 0, t, 33024, t % 7]
        assert sample["local_positions"].tolist() == [0, 1, 2, -1, -1] * 3 + [-1, -1]
        assert sample["loss_mask"].astype(int).tolist() == [0, 0, 0, 0, 1] * 3 + [0, 0]
        assert sample["attention_mask"].tolist() == [1] * 15 + [0, 0]
        assert sample["input_ids"][15:].tolist() == [processor.pad_token_id] * 2
        assert 0 <= first_step <= 7  # any start that leaves 3 whole steps
    starts = {int(s["input_ids"][2]) for s in take(builder, 200)}
    assert starts == set(range(8))  # uniform over all full windows


def test_prompt_conditioning_fraction_and_kinds(processor):
    builder = GatoSequenceBuilder(processor, {"t": Dataset.from_list(numbered_episodes(1, count=6))},
                                  context_length=40, prompt_probability=0.25, prompt_tokens=10, seed=1)
    samples = take(builder, 4000)
    prompted = [s for s in samples if s["prompted"]]
    assert abs(len(prompted) / len(samples) - 0.25) < 0.025
    from_end = 0
    for sample in prompted:
        ids = sample["input_ids"]
        # prompt: 2 whole timesteps (10 tokens) of another episode, no loss on them
        prompt_episode, prompt_steps = int(ids[1]), [int(ids[2]), int(ids[7])]
        main_episode = int(ids[11])
        assert prompt_episode != main_episode
        assert prompt_steps[1] == prompt_steps[0] + 1
        assert sample["loss_mask"][:10].sum() == 0 and sample["loss_mask"][10:].sum() == 6
        from_end += prompt_steps[1] == 9
    # half from the episode's end, half uniform (a uniform start also ends there 1 time in 10)
    assert abs(from_end / len(prompted) - (0.5 + 0.5 * 1 / 10)) < 0.06


def test_task_mixture_follows_the_weights(processor):
    sources = [
        Source("a", Dataset.from_list(numbered_episodes(1)), weight=3.0),
        Source("b", Dataset.from_list(numbered_episodes(2)), weight=1.0),
        Source("c", Dataset.from_list(numbered_episodes(3)), weight=0.0),
    ]
    samples = take(GatoSequenceBuilder(processor, sources, context_length=20, seed=2), 4000)
    counts = {name: sum(s["task"] == name for s in samples) for name in "abc"}
    assert abs(counts["a"] / 4000 - 0.75) < 0.025 and counts["c"] == 0
    assert all(int(s["input_ids"][0]) == {"a": 1, "b": 2}[s["task"]] or s["prompted"] for s in samples)


def test_text_rows_are_packed_to_the_context(processor):
    rows = [{"text": f"paragraph number {i} about functions and classes."} for i in range(50)]
    builder = GatoSequenceBuilder(processor, [Source("text", Dataset.from_list(rows), kind="text")],
                                  context_length=64, seed=0)
    for sample in take(builder, 10):
        assert sample["attention_mask"].sum() == 64  # text fills the whole window
        assert sample["loss_mask"].all() and (sample["local_positions"] == -1).all()
        assert (sample["input_ids"] == processor.tokenizer.eos_token_id).sum() >= 2  # several rows, each ends with EOS


def test_streaming_sources_work_and_cover_the_data(processor):
    episodes = numbered_episodes(1, count=20)
    stream = IterableDataset.from_generator(lambda: iter(episodes))
    builder = GatoSequenceBuilder(processor, {"t": stream}, context_length=15, prompt_probability=0.0,
                                  shuffle_buffer=4, seed=3)
    seen = {int(s["input_ids"][1]) for s in take(builder, 400)}
    assert seen == set(range(20))


def test_builder_samples_go_through_the_collator(processor):
    builder = GatoSequenceBuilder(processor, {"t": Dataset.from_list(numbered_episodes(1))}, context_length=32, seed=0)
    batch = GatoDataCollator(processor, padding="max_length", max_length=32)(take(builder, 4))
    assert batch["input_ids"].shape == (4, 32)
    assert (batch["labels"][batch["loss_mask"]] == batch["input_ids"][batch["loss_mask"]]).all()
    assert (batch["labels"][~batch["loss_mask"]] == -100).all()


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"discrete_observations": [[0], [1]], "continuous_actions": [[0.1, 0.2], [0.3]]}, "step 1 has 1 action tokens"),
        ({"discrete_observations": [[0], [1]], "continuous_actions": [[0.1], [0.2]]}, r"\d action tokens a step, expected \d"),
        ({"discrete_observations": [[0], [1]], "discrete_actions": [0, 1]}, "has columns"),
        ({"continuous_observations": [[0.0], [float("nan")]], "continuous_actions": [[0.1, 0.2]] * 2}, "step 1"),
    ],
)
def test_bad_data_names_the_task_episode_and_step(processor, bad, message):
    good = {"continuous_observations": [[0.0], [1.0]], "continuous_actions": [[0.1, 0.2], [0.3, 0.4]]}
    if "discrete_observations" in bad:
        good = {"discrete_observations": [[0], [1]], "continuous_actions": [[0.1, 0.2], [0.3, 0.4]]}
    rows = [good, bad]
    columns = sorted({k for r in rows for k in r})
    dataset = Dataset.from_list([{c: r.get(c) for c in columns} for r in rows])
    builder = GatoSequenceBuilder(processor, {"robot": dataset}, context_length=64, prompt_probability=0.0, seed=0)
    with pytest.raises(ValueError, match=message) as error:
        take(builder, 50)
    assert "task 'robot'" in str(error.value) and re.search(r"episode [01]", str(error.value))


# ---------------------------------------------------------------------------- short-context samples (history remedy)
def test_short_context_off_leaves_the_paper_stream_unchanged(processor):
    episodes = {"t": Dataset.from_list(numbered_episodes(1, count=4))}
    plain = take(GatoSequenceBuilder(processor, episodes, context_length=40, seed=3), 12)
    off = take(GatoSequenceBuilder(processor, episodes, context_length=40, seed=3, short_context_probability=0.0,
                                   short_context_timesteps=3), 12)
    for a, b in zip(plain, off):
        for key in ("input_ids", "loss_mask", "local_positions", "attention_mask"):
            assert a[key].tolist() == b[key].tolist()
        assert set(a["segment_ids"].tolist()) <= {0, -1}


def test_short_context_samples_are_independent_whole_timestep_windows(processor):
    # each timestep: 3 observation tokens [task, episode, t], separator, 1 action = 5 tokens; 42 tokens of context
    episodes = {"t": Dataset.from_list(numbered_episodes(1, count=4))}
    builder = GatoSequenceBuilder(processor, episodes, context_length=42, seed=0, prompt_probability=0.5,
                                  short_context_probability=1.0, short_context_timesteps=3)
    lengths = set()
    for sample in take(builder, 30):
        assert not sample["prompted"]
        segments = sample["segment_ids"]
        real = int(sample["attention_mask"].sum())
        assert real == 40 and segments[real:].tolist() == [-1, -1]  # 8 whole timesteps fit; the rest is padding
        steps = sample["input_ids"][:real].reshape(8, 5)
        step_segments = segments[:real].reshape(8, 5)
        assert (step_segments == step_segments[:, :1]).all()  # a timestep never straddles two windows
        assert step_segments[:, 0].tolist() == sorted(step_segments[:, 0].tolist())
        for segment in np.unique(step_segments[:, 0]):
            rows = steps[step_segments[:, 0] == segment]
            lengths.add(len(rows))
            assert 1 <= len(rows) <= 3
            episode, first = int(rows[0, 1]), int(rows[0, 2])
            for offset, row in enumerate(rows):  # consecutive timesteps of one episode, actions as targets
                assert row.tolist() == [1, episode, first + offset, 33024, (episode + first + offset) % 7]
        assert sample["loss_mask"][:real].astype(int).tolist() == [0, 0, 0, 0, 1] * 8
    assert lengths == {1, 2, 3}


def test_short_windows_can_start_with_the_end_of_another_episode(processor):
    """With `short_context_prompt_tokens`, each short window's segment starts with the last whole timesteps of
    another episode of the same task that fit in the budget (no loss on them), as `GatoAgent` prompts at acting
    time; the window after it is unchanged."""
    from modeling_gato.agent import _prompt_sample

    rows = numbered_episodes(1, count=4)
    builder = GatoSequenceBuilder(processor, {"t": Dataset.from_list(rows)}, context_length=45, seed=0,
                                  short_context_probability=1.0, short_context_timesteps=1,
                                  short_context_prompt_tokens=12)
    for sample in take(builder, 30):
        real = int(sample["attention_mask"].sum())
        assert real == 45  # 3 segments: a 2-timestep prompt (10 tokens; 3 would be 15 > 12) + 1 timestep
        steps = sample["input_ids"][:real].reshape(9, 5)
        assert sample["segment_ids"][:real].tolist() == [0] * 15 + [1] * 15 + [2] * 15
        for segment in range(3):
            prompt, window = steps[3 * segment:3 * segment + 2], steps[3 * segment + 2]
            episode, prompt_episode = int(window[1]), int(prompt[0, 1])
            assert prompt_episode != episode  # another episode of the task
            assert prompt.tolist() == [[1, prompt_episode, t, 33024, (prompt_episode + t) % 7] for t in (8, 9)]
            assert window[[0, 3]].tolist() == [1, 33024] and window[4] == (episode + window[2]) % 7
            # exactly what the agent is given when it acts with a 12-token prompt from that episode
            acting = _prompt_sample(processor, rows[prompt_episode], 12)
            assert acting["input_ids"].tolist() == prompt.flatten().tolist()
        assert sample["loss_mask"][:real].astype(int).tolist() == ([0] * 10 + [0, 0, 0, 0, 1]) * 3
    with pytest.raises(ValueError, match="short_context_prompt_tokens"):
        GatoSequenceBuilder(processor, {"t": Dataset.from_list(rows)}, context_length=45, short_context_prompt_tokens=45)


def test_short_context_probability_is_the_fraction_of_packed_samples(processor):
    episodes = {"t": Dataset.from_list(numbered_episodes(1, count=4, steps=30))}
    builder = GatoSequenceBuilder(processor, episodes, context_length=60, seed=1, short_context_probability=0.3)
    packed = [int(s["segment_ids"].max()) > 0 for s in take(builder, 400)]
    assert 0.24 < np.mean(packed) < 0.36
    with pytest.raises(ValueError, match="short_context_probability"):
        GatoSequenceBuilder(processor, episodes, short_context_probability=1.5)
    with pytest.raises(ValueError, match="short_context_timesteps"):
        GatoSequenceBuilder(processor, episodes, short_context_timesteps=0)


def test_segments_become_a_block_diagonal_causal_mask_and_windows_compute_alone(processor):
    import torch
    from gato_testing import tiny_config

    from modeling_gato import GatoForCausalModeling
    from modeling_gato.data.collator import segment_causal_mask

    mask = segment_causal_mask([np.array([0, 0, 1, 1, 1])], torch.tensor([[1, 1, 1, 1, 1, 0]]))[0, 0].int()
    assert mask.tolist() == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 0],
        [0, 0, 0, 0, 0, 1],  # padding sees only itself
    ]
    episodes = {"t": Dataset.from_list(numbered_episodes(1, count=4))}
    builder = GatoSequenceBuilder(processor, episodes, context_length=42, seed=0, short_context_probability=1.0,
                                  short_context_timesteps=3)
    collator = GatoDataCollator(processor, padding="max_length", max_length=42)
    sample = take(builder, 1)[0]
    batch = collator([sample])
    assert batch["attention_mask"].shape == (1, 1, 42, 42)
    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config()).eval()
    with torch.no_grad():
        packed = model(**batch).logits[0]
        for segment in np.unique(sample["segment_ids"][sample["segment_ids"] >= 0]):
            where = np.flatnonzero(sample["segment_ids"] == segment)
            alone = GatoDataCollator(processor)([{k: sample[k][where] for k in ("input_ids", "patch_mask", "local_positions",
                                                             "action_mask", "loss_mask")}])
            torch.testing.assert_close(model(**alone).logits[0], packed[where], atol=1e-5, rtol=1e-5)
    # A batch without packed rows keeps the usual 2-D mask.
    plain = collator(take(GatoSequenceBuilder(processor, episodes, context_length=42, seed=0), 2))
    assert plain["attention_mask"].shape == (2, 42)


class CountingDataset:
    """A map-style dataset that counts the rows read from it."""

    def __init__(self, dataset):
        self.dataset, self.reads = dataset, 0

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        self.reads += 1
        return self.dataset[index]


def test_a_cached_episode_is_not_read_again_and_the_cache_does_not_change_the_stream(processor):
    rows = Dataset.from_list(numbered_episodes(1, count=5))
    reference = take(GatoSequenceBuilder(processor, {"t": rows}, context_length=42, seed=0,
                                         short_context_probability=0.5, short_context_timesteps=2), 40)
    counting = CountingDataset(rows)
    builder = GatoSequenceBuilder(processor, {"t": counting}, context_length=42, seed=0, short_context_probability=0.5,
                                  short_context_timesteps=2)
    samples = take(builder, 40)
    assert counting.reads == 5  # every episode read (and tokenized) once, however many windows it gave
    one_row = CountingDataset(rows)  # a cache of one row: re-read often, same samples
    small = take(GatoSequenceBuilder(processor, {"t": one_row}, context_length=42, seed=0,
                                     short_context_probability=0.5, short_context_timesteps=2, token_cache_size=1), 40)
    assert one_row.reads > 40
    for a, b, c in zip(reference, samples, small):
        for key in ("input_ids", "loss_mask", "segment_ids", "attention_mask"):
            assert a[key].tolist() == b[key].tolist() == c[key].tolist()


def test_the_token_cache_stays_within_its_byte_budget(processor):
    rows = Dataset.from_list(numbered_episodes(1, count=6))
    builder = GatoSequenceBuilder(processor, {"t": rows}, context_length=42, seed=0, short_context_probability=1.0)
    take(builder, 20)
    one = max(sum(v.nbytes for v in s.values() if isinstance(v, np.ndarray)) for s in builder._token_cache.values())
    assert len(builder._token_cache) == 6
    bounded = GatoSequenceBuilder(processor, {"t": rows}, context_length=42, seed=0, short_context_probability=1.0,
                                  token_cache_bytes=2 * one)
    take(bounded, 20)
    assert 1 <= len(bounded._token_cache) <= 2
    assert bounded._token_cache_used == sum(sum(v.nbytes for v in s.values() if isinstance(v, np.ndarray))
                                            for s in bounded._token_cache.values()) <= 2 * one


def test_dataloader_workers_each_draw_their_own_reproducible_stream(processor):
    """`train --dataloader-num-workers N`: each worker's stream is seeded by its id (not N copies of one stream),
    and the same seed gives the same interleaved samples again."""
    import torch

    builder = GatoSequenceBuilder(processor, {"t": Dataset.from_list(numbered_episodes(1, count=6))},
                                  context_length=17, prompt_probability=0.0, seed=3)

    def where(samples):  # (episode, first step) of each sample
        return [(int(s["input_ids"][1]), int(s["input_ids"][2])) for s in samples]

    def first(n):
        return where(itertools.islice(torch.utils.data.DataLoader(builder, batch_size=None, num_workers=2), n))

    samples = first(40)  # the loader alternates workers: even positions from worker 0, odd from worker 1
    worker0, worker1 = samples[0::2], samples[1::2]
    # worker 0 draws what the training loop draws without workers (worker id 0); worker 1 its own stream
    assert worker0 == where(take(builder, 20))
    assert worker1 != worker0
    assert first(40) == samples
