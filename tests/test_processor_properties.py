"""Property-based tests (hypothesis) of the processor's contracts (issue 17, part 4).

Every generated input either gives the right result (checked against an independent reference written from
SPEC.md) or raises a `ValueError` that names the field; never a wrong result.

"Within half a bin" is measured where the bins are uniform: for observations (mu-law) in the mu-law space,
`|F(decode(encode(x))) - clip(F(x), -1, 1)| <= 1 / 1024` (bins are 2 / 1024 wide over [-1, 1]); for values
that are already in [-1, 1] (actions, `mu_law=False`) in that space, `|decode(encode(x)) - clip(x, -1, 1)| <= 1 / 1024`;
for Box actions, in the Box's units, `(high - low) / 2048` around the action clipped into the Box.
"""

import functools
import math
import os
import tempfile
import types

import hypothesis.configuration
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modeling_gato import GatoProcessor

# Hypothesis keeps caches and failure patches in its home directory (`.hypothesis` in the working directory): not in the
# repository.
hypothesis.configuration.set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "modeling-gato-hypothesis"))


@functools.cache
def default_processor(include_rewards=False):
    base = None if not include_rewards else default_processor().tokenizer
    return GatoProcessor(tokenizer=base, include_rewards=include_rewards)


MU, M, BINS, OFFSET, SEPARATOR = 100.0, 256.0, 1024, 32000, 33024
HALF_BIN = 1.0 / BINS  # in [-1, 1]
EPS = 1e-12  # float64 rounding of the formulas

# No example database in the repository; no deadline (the machine is shared); sized for ~1 minute in all.
PROPERTY = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_PROPERTY = settings(PROPERTY, max_examples=60)


def mu_law(x):
    """The paper's F, written from SPEC.md (not the implementation's)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        return np.sign(x) * np.log1p(np.abs(x) * MU) / math.log(M * MU + 1.0)


float_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    elements={"allow_nan": False, "allow_infinity": False},
)


# ---------------------------------------------------------------------------- discretizer
@PROPERTY
@given(float_arrays, st.booleans())
@example(np.array([1.0, -1.0, 0.0, 256.0, -256.0, 1e308, -1e308, 5e-324]), True)
@example(np.array([1.0, -1.0, 0.9999999999999999, -0.9999999999999999, 2.0, -2.0]), False)
def test_continuous_round_trip_is_within_half_a_bin(values, use_mu_law):
    processor = default_processor()
    discretizer = processor.discretizer
    ids = discretizer.encode(values, mu_law=use_mu_law)
    assert ids.shape == values.shape and ids.dtype == np.int64
    assert ((ids >= OFFSET) & (ids < OFFSET + BINS)).all()
    decoded = discretizer.decode(ids, mu_law=use_mu_law)
    assert decoded.shape == values.shape
    x = values.astype(np.float64)
    if use_mu_law:
        error = np.abs(mu_law(decoded) - np.clip(mu_law(x), -1, 1))
    else:
        error = np.abs(decoded - np.clip(x, -1, 1))
    assert (error <= HALF_BIN + EPS).all(), (values, decoded)
    # Bins are ordered like the values.
    flat_x, flat_ids = x.reshape(-1), ids.reshape(-1)
    order = np.argsort(flat_x, kind="stable")
    assert (np.diff(flat_ids[order]) >= 0).all()


@PROPERTY
@given(st.lists(st.integers(min_value=OFFSET - 3, max_value=OFFSET + BINS + 3), max_size=8), st.booleans())
def test_decoding_any_id_gives_its_bin_centre_or_a_clear_error(ids, use_mu_law):
    processor = default_processor()
    discretizer = processor.discretizer
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and ((ids < OFFSET) | (ids >= OFFSET + BINS)).any():
        with pytest.raises(ValueError, match=r"expected ids in \[32000, 33024\)"):
            discretizer.decode(ids, mu_law=use_mu_law)
        return
    decoded = discretizer.decode(ids, mu_law=use_mu_law)
    assert np.isfinite(decoded).all()
    # a bin centre encodes back into its own bin
    assert discretizer.encode(decoded, mu_law=use_mu_law).tolist() == ids.tolist()


@PROPERTY
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4), elements=st.floats()),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(0, 15),
    st.booleans(),
)
def test_non_finite_values_are_a_clear_error(values, bad, where, use_mu_law):
    processor = default_processor()
    values.reshape(-1)[where % values.size] = bad
    with pytest.raises(ValueError, match="joint_torques: expected finite floats"):
        processor.discretizer.encode(values, mu_law=use_mu_law, field="joint_torques")
    with pytest.raises(ValueError, match="joint_torques"):
        processor.tokenize_continuous(values, field="joint_torques")


@PROPERTY
@given(
    hnp.arrays(
        st.sampled_from([np.complex64, np.complex128]),
        hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
        elements={"allow_nan": False, "allow_infinity": False, "min_magnitude": 0, "max_magnitude": 10},
    )
)
@example(np.array([1 + 2j]))
def test_complex_values_are_a_clear_error_not_their_real_part(values):
    processor = default_processor()
    with pytest.raises(ValueError, match="angles.*complex"):
        processor.discretizer.encode(values, field="angles")
    with pytest.raises(ValueError, match="angles.*complex"):
        processor.tokenize_continuous(values, field="angles")
    with pytest.raises(ValueError, match="buttons.*complex"):
        processor.tokenize_discrete(values, field="buttons")
    with pytest.raises(ValueError, match="continuous_observations.*complex"):
        processor.tokenize_episode({"continuous_observations": [values.reshape(-1)], "discrete_actions": [0]})
    with pytest.raises(ValueError, match="complex"):
        processor.encode_action(values.reshape(-1)[:1], box_space([-1.0], [1.0]))


@PROPERTY
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=5),
                  elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))
def test_torch_in_gives_torch_out_with_the_same_ids(values):
    processor = default_processor()
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        tensor = torch.from_numpy(values).to(dtype)
        assume(torch.isfinite(tensor).all())
        ids = processor.discretizer.encode(tensor)
        assert isinstance(ids, torch.Tensor)
        assert ids.tolist() == processor.discretizer.encode(tensor.double().numpy()).tolist()


# ---------------------------------------------------------------------------- discrete values and text
discrete_like = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-2, max_value=1100),
    st.floats(),
    st.floats(min_value=-2, max_value=1100).map(round).map(float),
    st.booleans(),
)


@PROPERTY
@given(st.lists(discrete_like, max_size=6))
@example([1023.0, 0, True])
@example([2.0**63])
@example([1024])
@example([np.uint64(2**64 - 1)])  # wrapped to -1 in the int64 cast: the error showed the wrong values
def test_discrete_values_become_their_own_ids_or_a_clear_error(values):
    processor = default_processor()
    def expected(v):
        if isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
            return None
        return int(v) if 0 <= int(v) < 1024 else None

    wanted = [expected(v) for v in values]
    if None in wanted:
        with pytest.raises(ValueError, match=r"buttons: expected") as error:
            processor.tokenize_discrete(values, field="buttons")
        if "got values in" in str(error.value):  # the range it reports is the values' own
            finite = [v for v in values if not isinstance(v, float) or math.isfinite(v)]
            low, high = (float(x) for x in str(error.value).split("got values in [")[1].rstrip("].").split(", "))
            assert (low, high) == (float(min(finite)), float(max(finite)))
        return
    ids = processor.tokenize_discrete(values, field="buttons")
    assert ids.dtype == np.int64 and ids.tolist() == wanted


@PROPERTY
@given(st.text(max_size=40))
@example("")
@example("\x00 \u200b\U0001f600 ünïcödé  spaces\t\n")
def test_text_ids_are_text_ids(text):
    processor = default_processor()
    ids = processor.tokenize_text(text)
    assert ids.dtype == np.int64
    assert ((ids >= 0) & (ids < len(processor.tokenizer)) & (ids < OFFSET)).all()
    assert processor.tokenize_text(text).tolist() == ids.tolist()


@PROPERTY
@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8), min_size=1, max_size=6))
def test_lowercase_words_round_trip_through_the_tokenizer(words):
    processor = default_processor()
    text = " ".join(words)
    assert processor.tokenizer.decode(processor.tokenize_text(text).tolist()) == text


@PROPERTY
@given(st.one_of(st.none(), st.integers(), st.floats(), st.lists(st.text(), max_size=2), st.binary(max_size=4)))
def test_text_that_is_not_a_string_is_a_clear_error(value):
    processor = default_processor()
    with pytest.raises(ValueError, match="mission: expected a string"):
        processor.tokenize_text(value, field="mission")


# ---------------------------------------------------------------------------- actions
def box_space(low, high, dtype=np.float64, shape=None):
    """A duck-typed gymnasium Box."""
    low, high = np.asarray(low, dtype), np.asarray(high, dtype)
    return types.SimpleNamespace(low=low, high=high, shape=low.shape if shape is None else shape, dtype=np.dtype(dtype))


bounds = st.one_of(
    st.floats(min_value=-10, max_value=10),
    st.floats(allow_nan=False),  # huge, tiny, infinite
    st.sampled_from([0.0, 1.0, -1.0, np.finfo(np.float32).max, -np.finfo(np.float32).max]),
)


@st.composite
def boxes_and_actions(draw):
    size = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    with np.errstate(over="ignore"):  # float64 bounds beyond float32's range become infinite, as in gymnasium
        low = np.array([draw(bounds) for _ in range(size)]).astype(dtype)
        high = np.array([draw(bounds) for _ in range(size)]).astype(dtype)
    if draw(st.booleans()):  # mostly valid boxes
        low, high = np.minimum(low, high), np.maximum(low, high)
    if draw(st.integers(0, 5)) == 0:
        high = low.copy()  # degenerate
    space = box_space(low, high, dtype)
    action = []
    for lo, hi in zip(low.astype(np.float64), high.astype(np.float64)):
        if np.isfinite(lo) and np.isfinite(hi) and lo <= hi and draw(st.booleans()):
            action.append(draw(st.floats(min_value=lo, max_value=hi)) if lo < hi else lo)  # inside the box
        else:
            action.append(draw(st.floats(allow_nan=False)))
    return space, np.asarray(action, np.float64)


@PROPERTY
@given(boxes_and_actions())
@example((box_space([-1e308], [1e308]), np.array([0.0])))  # the span overflows float64
@example((box_space([-2.0, 0.0], [2.0, 0.0]), np.array([1.0, 0.0])))  # a constant dimension
@example((box_space([0.0], [np.inf]), np.array([-0.5])))  # half-infinite: the decoded action must be in the Box
@example((box_space([-np.inf], [np.inf]), np.array([0.25])))
@example((box_space([np.inf], [np.inf], np.float32), np.array([0.0])))  # no finite action: an error, not inf
@example((box_space([1.0], [0.0], np.float32), np.array([0.0])))  # low > high was encoded (reflected), no error
@example((box_space([0.0], [0.0], np.float32), np.array([0.0])))  # the only valid action was a 'got nan' error
def test_box_actions_round_trip_within_half_a_bin_or_a_clear_error(space_and_action):
    processor = default_processor()
    space, action = space_and_action
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    if (low > high).any() or (low == np.inf).any() or (high == -np.inf).any():
        match = r"action_space: Box (low > high|dimension \d+ has no finite value)"
        with pytest.raises(ValueError, match=match):
            processor.encode_action(action, space)
        with pytest.raises(ValueError, match=match):
            processor.decode_action([OFFSET + 512] * low.size, space)
        return
    if not np.isfinite(action).all():
        with pytest.raises(ValueError, match="continuous_actions: expected finite"):
            processor.encode_action(action, space)
        return
    ids = processor.encode_action(action, space)
    assert ids.dtype == np.int64 and ids.shape == (low.size,)
    for token, (start, end) in zip(ids.tolist(), processor.action_token_ranges(space)):
        assert start <= token < end
    decoded = processor.decode_action(ids, space)
    assert decoded.shape == space.shape and decoded.dtype == space.dtype
    decoded = decoded.astype(np.float64)
    assert ((decoded >= low) & (decoded <= high)).all(), (decoded, low, high)  # a valid action of the space
    bounded = np.isfinite(low) & np.isfinite(high)
    # Bounded dimensions: half a bin of the Box's width around the action clipped into the Box.
    # Unbounded ones (the documented rule): the value is already in [-1, 1], half a bin there, then into the Box.
    target = np.where(bounded, np.clip(action, low, high), np.clip(np.clip(action, -1, 1), low, high))
    half_bin = np.where(bounded, (high / 2 - low / 2) / BINS, HALF_BIN)
    scale = np.maximum(np.abs(np.where(bounded, low, 0)), np.abs(np.where(bounded, high, 1)))
    tolerance = half_bin * (1 + 1e-9) + 4 * np.finfo(space.dtype).eps * scale + 1e-300
    assert (np.abs(decoded - target) <= tolerance).all(), (decoded, target, tolerance)
    # Constant dimensions: any value encodes to the middle bin and decodes to the constant.
    constant = bounded & (low == high)
    assert (ids[constant] == OFFSET + BINS // 2).all() and (decoded[constant] == low[constant]).all()


@PROPERTY
@given(boxes_and_actions(), st.integers(-1, 2))
@example((box_space([0.0], [1.0], np.float32), np.array([0.0])), 1)  # 2 values for a Box(1) gave 2 tokens
def test_box_action_of_the_wrong_size_is_a_clear_error(space_and_action, extra):
    processor = default_processor()
    space, action = space_and_action
    assume(extra != 0 and action.size + extra >= 0 and (space.low <= space.high).all())
    wrong = np.resize(np.clip(action, -1, 1), action.size + extra)
    with pytest.raises(ValueError, match=rf"continuous_actions: expected {action.size} values for a Box"):
        processor.encode_action(wrong, space)
    with pytest.raises(ValueError, match=rf"expected {action.size} continuous ids for a Box"):
        processor.decode_action(np.full(wrong.size, OFFSET), space)


@PROPERTY
@given(boxes_and_actions())
@example((box_space([0.0], [1.0], np.float32), np.array([0.0])))  # decoded to the bin centre, no error
def test_nan_bounds_are_a_clear_error(space_and_action):
    processor = default_processor()
    space, action = space_and_action
    space.low = space.low.copy()
    space.low[0] = np.nan
    with pytest.raises(ValueError, match="action_space: Box bounds must not be NaN"):
        processor.encode_action(np.zeros(action.size), space)
    with pytest.raises(ValueError, match="action_space: Box bounds must not be NaN"):
        processor.decode_action(np.full(action.size, OFFSET), space)


@st.composite
def discrete_spaces_and_actions(draw):
    if draw(st.booleans()):
        n, start = draw(st.integers(1, 1024)), draw(st.integers(-5, 5))
        space = types.SimpleNamespace(n=n, start=start)
        action = draw(st.integers(start - 3, start + n + 3))
        return space, action, [(start, start + n)]
    nvec = np.array(draw(st.lists(st.integers(1, 1024), min_size=1, max_size=4)))
    start = np.array(draw(st.lists(st.integers(-3, 3), min_size=nvec.size, max_size=nvec.size)))
    space = types.SimpleNamespace(nvec=nvec, start=start)
    action = np.array([draw(st.integers(s - 2, s + n + 2)) for s, n in zip(start, nvec)])
    return space, action, list(zip(start.tolist(), (start + nvec).tolist()))


@PROPERTY
@given(discrete_spaces_and_actions())
@example((types.SimpleNamespace(n=3, start=0), 5, [(0, 3)]))  # outside Discrete(3), inside [0, 1024)
@example((types.SimpleNamespace(nvec=np.array([2, 2]), start=np.array([0, 0])), np.array([1, 3]), [(0, 2), (0, 2)]))
def test_discrete_actions_round_trip_or_a_clear_error(space_and_action):
    processor = default_processor()
    space, action, valid = space_and_action
    values = np.atleast_1d(action)
    if any(not lo <= v < hi for v, (lo, hi) in zip(values.tolist(), valid)):
        with pytest.raises(ValueError, match="discrete_actions.*outside"):
            processor.encode_action(action, space)
        return
    ids = processor.encode_action(action, space)
    for token, (start, end) in zip(ids.tolist(), processor.action_token_ranges(space)):
        assert start <= token < end
    decoded = processor.decode_action(ids, space)
    assert np.asarray(decoded).tolist() == np.asarray(action).tolist()


# ---------------------------------------------------------------------------- images
IMAGE_DTYPES = [np.uint8, np.int16, np.float16, np.float32, np.float64, np.bool_]


@st.composite
def images(draw):
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    dtype = np.dtype(draw(st.sampled_from(IMAGE_DTYPES)))
    shape = (height, width) if channels is None else (height, width, channels)
    in_range = draw(st.integers(0, 4)) > 0
    if dtype == np.bool_:
        elements = st.booleans()
    elif dtype.kind in "iu":
        limits = (0, 255) if in_range else (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
        elements = st.integers(*limits)
    else:
        elements = st.floats(0, 1, width=dtype.itemsize * 8) if in_range else st.floats(width=dtype.itemsize * 8)
    pixels = draw(hnp.arrays(dtype, shape, elements=elements))  # channels last (H, W, C)
    layout = draw(st.sampled_from(["channels_last", "channels_first"]))
    array = pixels if layout == "channels_last" or channels is None else np.moveaxis(pixels, -1, 0)
    return pixels, array, layout, draw(st.booleans()), draw(st.sampled_from(["numpy", "torch"]))


def reference_patches(pixels):
    """SPEC: 16x16 patches in raster order of pixels in [-1, 1] divided by 4; padding is black (0)."""
    hwc = pixels[..., None] if pixels.ndim == 2 else pixels
    unit = hwc.astype(np.float64) / 255.0 if hwc.dtype.kind in "iu" else hwc.astype(np.float32).astype(np.float64)
    if unit.shape[-1] == 1:
        unit = np.repeat(unit, 3, axis=-1)
    height, width = unit.shape[:2]
    rows, cols = -(-height // 16), -(-width // 16)
    padded = np.zeros((rows * 16, cols * 16, 3))
    padded[:height, :width] = unit
    patches, intervals = [], []
    for r in range(rows):
        for c in range(cols):
            patches.append(((padded[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] * 2 - 1) / 4).transpose(2, 0, 1))
            intervals.append([r / rows, (r + 1) / rows, c / cols, (c + 1) / cols])
    return np.stack(patches), np.asarray(intervals)


def inferred_layout(shape):
    """The documented rule for arrays without `input_data_format`."""
    if len(shape) == 2:
        return "grayscale"
    if shape[-1] in (1, 3):
        return "channels_last"
    return "channels_first" if shape[0] in (1, 3) else None


@SLOW_PROPERTY
@given(images())
@example((np.zeros((3, 20, 3), np.uint8), np.zeros((3, 20, 3), np.uint8), "channels_last", False, "numpy"))
@example((np.array([[3.4028235e38]]), np.array([[3.4028235e38]]), "channels_last", False, "numpy"))  # float32 overflow
def test_images_give_the_reference_patches_or_a_clear_error(image):
    processor = default_processor()
    pixels, array, layout, pass_layout, library = image
    data = torch.from_numpy(array.copy()) if library == "torch" else array
    patcher = processor.image_processor
    kwargs = {"input_data_format": layout} if pass_layout and array.ndim == 3 else {}
    interpretation = layout if kwargs else inferred_layout(array.shape)
    if array.ndim == 3 and interpretation == "channels_first":
        pixels = np.moveaxis(array, 0, -1)  # what the documented rule reads
    elif array.ndim == 3 and interpretation == "channels_last":
        pixels = array
    with np.errstate(over="ignore"):
        as_float32 = pixels.astype(np.float32)  # float pixels are read as float32, then checked against [0, 1]
    problem = (
        interpretation is None
        or (pixels.ndim == 3 and pixels.shape[-1] not in (1, 3))
        or pixels.dtype == np.bool_
        or (pixels.dtype.kind in "iu" and pixels.size and (pixels.min() < 0 or pixels.max() > 255))
        or (pixels.dtype.kind == "f" and not (np.isfinite(pixels).all() and (as_float32 >= 0).all() and (as_float32 <= 1).all()))
    )
    if problem:
        with pytest.raises(ValueError, match="camera"):
            patcher.patchify(data, field="camera", **kwargs)
        return
    patches, intervals = patcher.patchify(data, field="camera", **kwargs)
    expected_patches, expected_intervals = reference_patches(pixels)
    assert patches.dtype == np.float32 and patches.shape == expected_patches.shape
    np.testing.assert_allclose(patches, expected_patches, atol=1e-6)
    np.testing.assert_allclose(intervals, expected_intervals, atol=1e-6)


@SLOW_PROPERTY
@given(st.integers(2, 40).filter(lambda s: s != 3), st.integers(2, 40).filter(lambda s: s != 3),
       st.sampled_from([1, 3]), st.sampled_from(["channels_last", "channels_first"]))
def test_unambiguous_layouts_are_read_without_being_told(height, width, channels, layout):
    processor = default_processor()
    pixels = np.random.default_rng(height * 41 + width).integers(0, 256, (height, width, channels), dtype=np.uint8)
    array = pixels if layout == "channels_last" else np.moveaxis(pixels, -1, 0)
    patches, _ = processor.image_processor.patchify(array)
    np.testing.assert_allclose(patches, reference_patches(pixels)[0], atol=1e-6)


@SLOW_PROPERTY
@given(st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.uint8]), st.integers(1, 20), st.integers(1, 20))
@example(torch.bfloat16, 1, 1)  # was a TypeError from .numpy()
def test_torch_images_of_any_floating_dtype(dtype, height, width):
    processor = default_processor()
    pixels = torch.rand(height, width, 3) if dtype.is_floating_point else torch.randint(0, 256, (height, width, 3))
    tensor = pixels.to(dtype)
    patches, _ = processor.image_processor.patchify(tensor, input_data_format="channels_last")
    reference = tensor.float().numpy() if dtype.is_floating_point else tensor.numpy()
    np.testing.assert_allclose(patches, reference_patches(reference)[0], atol=1e-6)


# ---------------------------------------------------------------------------- episodes
@st.composite
def episodes(draw):
    steps = draw(st.integers(1, 4))
    columns = draw(st.sets(st.sampled_from([
        "continuous_observations", "discrete_observations", "image_observations", "text_observations",
        "continuous_actions", "discrete_actions", "rewards",
    ]), min_size=1))
    assume(columns != {"rewards"})
    episode = {"task": "property"}
    small = st.floats(-1e4, 1e4)
    for column in sorted(columns):
        if column in ("continuous_observations", "continuous_actions"):
            size = draw(st.integers(0, 5))
            episode[column] = [draw(st.lists(small, min_size=size, max_size=size)) for _ in range(steps)]
        elif column in ("discrete_observations", "discrete_actions"):
            size = draw(st.integers(1, 4))
            episode[column] = [draw(st.lists(st.integers(0, 1023), min_size=size, max_size=size)) for _ in range(steps)]
        elif column == "image_observations":
            size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)), 3)
            episode[column] = [np.full(size, draw(st.integers(0, 255)), np.uint8) for _ in range(steps)]
        elif column == "text_observations":
            episode[column] = [draw(st.text(alphabet="abc xyz", max_size=12)) for _ in range(steps)]
        else:
            episode[column] = draw(st.lists(small, min_size=steps, max_size=steps))
    return episode


def expected_layout(processor, episode, include_rewards):
    """Per timestep: [observation tokens in key order] [separator] [action tokens], written from SPEC.md."""
    steps = max(len(v) for k, v in episode.items() if k not in ("task", "rewards"))
    timesteps = []
    for t in range(steps):
        observation, kinds = [], []
        if "continuous_observations" in episode:
            observation += processor.discretizer.encode(episode["continuous_observations"][t]).tolist()
        if "discrete_observations" in episode:
            observation += list(episode["discrete_observations"][t])
        num_patches = 0
        if "image_observations" in episode:
            height, width = episode["image_observations"][t].shape[:2]
            num_patches = -(-height // 16) * -(-width // 16)
            kinds += ["obs"] * len(observation)
            observation += [processor.pad_token_id] * num_patches
            kinds += ["patch"] * num_patches
        if include_rewards and "rewards" in episode and t >= 1:
            observation += processor.discretizer.encode([episode["rewards"][t - 1]]).tolist()
        if "text_observations" in episode:
            observation += processor.tokenize_text(episode["text_observations"][t]).tolist()
        kinds += ["obs"] * (len(observation) - len(kinds))
        action = []
        if "continuous_actions" in episode:
            action += processor.discretizer.encode(episode["continuous_actions"][t], mu_law=False).tolist()
        if "discrete_actions" in episode:
            action += list(episode["discrete_actions"][t])
        timesteps.append((observation, kinds, action))
    return timesteps


@SLOW_PROPERTY
@given(episodes(), st.booleans())
def test_episode_layout_matches_the_spec(episode, include_rewards):
    processor = default_processor()
    if include_rewards:
        processor = default_processor(include_rewards=True)
    sample = processor.tokenize_episode(episode)
    timesteps = expected_layout(processor, episode, include_rewards)
    ids, start = [], 0
    for (observation, kinds, action), timestep_start in zip(timesteps, sample["timestep_starts"].tolist()):
        assert timestep_start == start
        n, k = len(observation), len(action)
        span = slice(start, start + n + 1 + k)
        assert sample["input_ids"][span].tolist() == observation + [SEPARATOR] + action
        assert sample["local_positions"][span].tolist() == list(range(n)) + [-1] * (1 + k)
        assert sample["patch_mask"][span].tolist() == [kind == "patch" for kind in kinds] + [False] * (1 + k)
        assert sample["action_mask"][span].tolist() == [False] * (n + 1) + [True] * k
        ids += observation + [SEPARATOR] + action
        start += n + 1 + k
    assert len(sample["timestep_starts"]) == len(timesteps)
    assert sample["input_ids"].tolist() == ids
    assert (sample["loss_mask"] == sample["action_mask"]).all()
    assert len(sample["patches"]) == sample["patch_mask"].sum() == len(sample["patch_intervals"])
    if "image_observations" in episode:
        expected = np.concatenate([processor.image_processor.patchify(i)[0] for i in episode["image_observations"]])
        np.testing.assert_array_equal(sample["patches"], expected)
    # The first timestep, as an acting step, is the same tokens up to the separator.
    first = {k: v[0] for k, v in episode.items() if k.endswith("_observations")}
    if first:
        observed = processor.tokenize_observation(first)
        assert observed["input_ids"].tolist() == timesteps[0][0] + [SEPARATOR]
    # Collated (padded) batches carry the same tokens.
    if len(ids) <= processor.max_length:
        batch = processor.collate([sample, sample], return_tensors="np")
        assert batch["input_ids"][1].tolist() == ids and batch["attention_mask"].sum() == 2 * len(ids)
        assert batch["local_positions"][0].tolist() == sample["local_positions"].tolist()


@SLOW_PROPERTY
@given(episodes(), st.data())
def test_broken_episodes_are_a_clear_error_naming_the_column(episode, data):
    processor = default_processor()
    column = data.draw(st.sampled_from(sorted(k for k in episode if k not in ("task", "rewards"))), label="column")
    breakage = data.draw(st.sampled_from(["length", "nan", "range"]), label="breakage")
    values = list(episode[column])
    if breakage == "length" and sum(k not in ("task", "rewards") for k in episode) > 1:
        values = values + values[:1]
        match = r"column '\w+' has \d+ timesteps, expected \d+ like '\w+'"
    elif breakage == "nan" and column.startswith("continuous") and len(values[0]):
        values[-1] = [math.nan] + list(values[-1])[1:]
        match = rf"{column}.*finite"
    elif breakage == "range" and column.startswith("discrete"):
        values[-1] = [1024] + list(values[-1])[1:]
        match = rf"{column}.*\[0, 1024\)"
    else:
        return
    with pytest.raises(ValueError, match=match):
        processor.tokenize_episode({**episode, column: values})
