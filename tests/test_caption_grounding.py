from collections import Counter

import numpy as np
import pytest

from modeling_gato.data.collect import babyai_caption
from modeling_gato.evaluation.caption_grounding import (
    best_constant_caption,
    caption_objects,
    grounding_scores,
    grounding_table,
    held_out_caption_start,
    measure_caption_grounding,
)

EMPTY = "an empty room with nothing but the floor and walls in view"


# ---------------------------------------------------------------------------- parsing
def test_caption_objects_parses_the_template():
    assert caption_objects("a room with one grey door and two red balls in view") == Counter(
        {("grey", "door"): 1, ("red", "ball"): 2}
    )
    assert caption_objects("a room with one blue box, three purple boxes and one yellow key in view") == Counter(
        {("blue", "box"): 1, ("purple", "box"): 3, ("yellow", "key"): 1}
    )
    assert caption_objects("a room with two green goals and ten grey lavas in view") == Counter(
        {("green", "goal"): 2, ("grey", "lava"): 10}
    )
    assert caption_objects("a room with 11 red keys in view") == Counter({("red", "key"): 11})  # digits past ten


def test_caption_objects_empty_and_garbage():
    assert caption_objects(EMPTY) == Counter()
    assert caption_objects("") == Counter()
    assert caption_objects("no red balls") == Counter()  # "no" names nothing
    assert caption_objects("one one red red ball") == Counter()  # no "<number> <color> <object>" run
    assert caption_objects("tworedballs, three bluekeys, a red ball, one orange key") == Counter()
    assert caption_objects("one grey door and two red ba") == Counter({("grey", "door"): 1})  # truncated tail
    assert caption_objects("%% TWO Purple Boxes ##one grey door. one grey door") == Counter(
        {("purple", "box"): 2, ("grey", "door"): 2}  # case-insensitive, repeats add up
    )
    assert caption_objects("two red ball and one blue keys") == Counter({("red", "ball"): 2, ("blue", "key"): 1})


def test_caption_objects_inverts_babyai_caption():
    rng = np.random.default_rng(0)
    colors = ["red", "green", "blue", "purple", "yellow", "grey"]
    names = ["door", "key", "ball", "box", "goal", "lava"]
    for _ in range(200):
        objects = [(colors[rng.integers(6)], names[rng.integers(6)]) for _ in range(rng.integers(0, 14))]
        assert caption_objects(babyai_caption(objects)) == Counter(objects)


# ---------------------------------------------------------------------------- scores
def test_grounding_scores_by_hand():
    references = [
        "a room with one grey door and two red balls in view",
        EMPTY,
        "a room with one blue key in view",
        EMPTY,
    ]
    predictions = [
        "a room with one grey door and one red ball in view",  # matched 2 of 3: P 1, R 2/3, F1 0.8
        "  an empty room with nothing but the floor and walls in view ",  # both empty: 1, 1, 1; exact
        "a room with one red key in view",  # wrong color: 0, 0, 0
        "a room with one blue key in view",  # object in an empty view: 0, 0, 0
    ]
    scores = grounding_scores(references, predictions)
    assert scores["precision"] == pytest.approx((1 + 1 + 0 + 0) / 4)
    assert scores["recall"] == pytest.approx((2 / 3 + 1) / 4)
    assert scores["f1"] == pytest.approx((0.8 + 1) / 4)
    assert scores["exact_match"] == pytest.approx(0.25)
    assert scores["objects_match"] == pytest.approx(0.25)
    assert scores["names_an_object_in_view"] == pytest.approx(0.5)  # first yes, third no
    assert scores["captions"] == 4 and scores["captions_with_objects"] == 2


def test_grounding_scores_empty_cases_and_garbage():
    # garbage names nothing: perfect on an empty room, zero on a room with objects
    scores = grounding_scores([EMPTY, "a room with one red ball in view"], ["zzz qq", "zzz qq"])
    assert scores["f1"] == pytest.approx(0.5) and scores["precision"] == pytest.approx(0.5)
    assert scores["recall"] == pytest.approx(0.5)
    assert scores["exact_match"] == 0 and scores["objects_match"] == pytest.approx(0.5)
    assert scores["names_an_object_in_view"] == 0
    # over-counting: ref {red ball: 1}, prediction {red ball: 3, grey door: 1} -> P 1/4, R 1, F1 0.4
    scores = grounding_scores(["a room with one red ball in view"],
                              ["a room with one grey door and three red balls in view"])
    assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx((0.25, 1.0, 0.4))
    assert scores["names_an_object_in_view"] == 1
    # no reference with objects: the fraction is undefined
    assert grounding_scores([EMPTY], [EMPTY])["names_an_object_in_view"] is None
    with pytest.raises(ValueError):
        grounding_scores([EMPTY], [])
    with pytest.raises(ValueError):
        grounding_scores([], [])


# ---------------------------------------------------------------------------- end to end
def _write_captions(directory, texts, seed=0):
    from datasets import Dataset, Features, Image, Value

    rng = np.random.default_rng(seed)
    rows = [{"image": rng.integers(0, 256, size=(56, 56, 3), dtype=np.uint8), "text": text, "task": "BabyAI-Test"}
            for text in texts]
    features = Features({"image": Image(), "task": Value("string"), "text": Value("string")})
    Dataset.from_list(rows, features=features).save_to_disk(str(directory / "captions"))


def test_measure_caption_grounding_end_to_end(tmp_path, model, processor):
    door = babyai_caption([("grey", "door")])
    balls = babyai_caption([("red", "ball"), ("red", "ball"), ("blue", "key")])
    empty = babyai_caption([])
    assert empty == EMPTY
    # 40 rows: 38 training, 2 held out. In training the door caption (12) beats the empty room (11), which
    # would win (13) if the held-out rows were wrongly counted too.
    training = [empty] * 11 + [door] * 12 + [balls] * 10 + [babyai_caption([("green", "goal")])] * 5
    texts = training + [empty, empty]
    assert len(texts) == 40 and held_out_caption_start(40) == 38
    _write_captions(tmp_path, texts)

    result = measure_caption_grounding(model, processor, str(tmp_path))
    assert set(result) == {"model", "prior", "best_constant", "captions", "prior_caption", "best_constant_caption",
                           "samples"}
    assert result["captions"] == 2
    assert result["prior_caption"] == door
    # mean training F1 of each constant: door 12/38, empty 11/38, balls 10/38, goal 5/38
    assert result["best_constant_caption"] == door and result["best_constant"] == result["prior"]
    assert [s["reference"] for s in result["samples"]] == [empty, empty]
    assert all(isinstance(s["generated"], str) for s in result["samples"])
    # the prior names a door in two empty rooms: zero on every object score, and nothing in view to name
    prior = result["prior"]
    assert (prior["f1"], prior["precision"], prior["recall"], prior["exact_match"]) == (0, 0, 0, 0)
    assert prior["names_an_object_in_view"] is None and prior["captions"] == 2
    for key in ("f1", "precision", "recall", "exact_match", "objects_match"):
        assert 0 <= result["model"][key] <= 1
    assert result["model"]["captions"] == 2

    table = grounding_table(result)
    lines = table.splitlines()
    assert len(lines) == 5 and lines[0].startswith("| captioner | F1 | precision | recall | exact match")
    assert lines[2].startswith("| model |") and lines[3].startswith("| template prior | 0.000 |")
    assert lines[3].endswith("| n/a | 2 |") and lines[4].startswith("| best constant caption | 0.000 |")
    del result["best_constant"]  # a result written before the best constant caption: two rows
    assert grounding_table(result).splitlines()[2:] == lines[2:4]

    # count takes the last rows of the held-out ones, never training rows
    assert measure_caption_grounding(model, processor, str(tmp_path), count=1)["captions"] == 1
    assert measure_caption_grounding(model, processor, str(tmp_path), count=100)["captions"] == 2


def test_the_best_constant_caption_beats_a_frequent_empty_room():
    """Mean F1 of each constant over 4 empty rooms, 3 "one red ball" and 2 "one red ball and one blue key" views:
    empty 4/9; red ball (3 * 1 + 2 * 2/3) / 9 = 0.48 (precision 1, recall 1/2 on the pair); the pair
    (3 * 2/3 + 2 * 1) / 9 = 0.44. The most frequent caption (the empty room) is not the best constant."""
    empty, ball = babyai_caption([]), babyai_caption([("red", "ball")])
    pair = babyai_caption([("red", "ball"), ("blue", "key")])
    captions = [empty, ball, pair, empty, ball, empty, pair, ball, empty]
    assert best_constant_caption(captions) == ball
    assert grounding_scores(captions, [ball] * 9)["f1"] == pytest.approx((3 + 2 * 2 / 3) / 9)
    assert best_constant_caption([pair, ball]) == pair  # a tie (2/3 + 1 each way) goes to the first seen
    with pytest.raises(ValueError, match="no captions"):
        best_constant_caption([])


def test_measure_caption_grounding_missing_data(tmp_path, model, processor):
    with pytest.raises(FileNotFoundError):
        measure_caption_grounding(model, processor, str(tmp_path))
