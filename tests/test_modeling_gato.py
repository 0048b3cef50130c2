import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gato_testing import make_episode, tiny_config

import modeling_gato.modeling_gato as modeling
from modeling_gato import GatoConfig, GatoForCausalModeling
from modeling_gato.data.collator import segment_causal_mask
from modeling_gato.modeling_gato import attention_bands, patch_position_indices


def episode_batch(processor, **kwargs):
    return processor(episodes=make_episode(**kwargs))


# ---------------------------------------------------------------------------- embeddings
def test_embeddings_follow_the_paper(model, processor):
    """Token slots: table lookup (+ local position for observations); patch slots: ResNet + row + col (+ local)."""
    batch = episode_batch(processor)
    embeddings = model.model.embeddings.eval()
    with torch.no_grad():
        out = embeddings(
            input_ids=batch["input_ids"],
            image_patches=batch["image_patches"],
            patch_mask=batch["patch_mask"],
            patch_intervals=batch["patch_intervals"],
            local_positions=batch["local_positions"],
            action_mask=batch["action_mask"],
        )[0]
        ids, local, patch = batch["input_ids"][0], batch["local_positions"][0], batch["patch_mask"][0]
        table = embeddings.embed_tokens.weight
        local_table = embeddings.local_position_embedding.weight
        for i in range(len(ids)):
            if patch[i]:
                continue
            expected = table[ids[i]] + (local_table[local[i]] if local[i] >= 0 else 0)
            torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-6)
        slots = patch.nonzero().flatten()
        pixels = batch["image_patches"][0, slots]
        rows, cols = patch_position_indices(batch["patch_intervals"][0, slots], 128, training=False)
        expected = (
            embeddings.patch_embedding(pixels)
            + embeddings.patch_row_embedding(rows)
            + embeddings.patch_col_embedding(cols)
            + local_table[local[slots]]
        )
        torch.testing.assert_close(out[slots], expected, rtol=1e-5, atol=1e-5)


def test_patch_embedding_is_a_resnet_v2_block_with_group_norm_and_gelu(model):
    block = model.model.embeddings.patch_embedding
    assert isinstance(block.norm1, torch.nn.GroupNorm) and block.norm1.num_groups == 32
    assert isinstance(block.act, torch.nn.GELU)
    x = torch.randn(5, 3, 16, 16)
    stem = block.stem(x)
    manual = stem + block.conv2(F.gelu(block.norm2(block.conv1(F.gelu(block.norm1(stem))))))
    torch.testing.assert_close(block(x), block.proj(manual.flatten(1)))


def test_patch_position_indices_train_and_eval():
    # A 64-pixel-high image: rows [0, 16), [16, 32), ... -> quantized [0, 32), [32, 64), [64, 96), [96, 128)
    intervals = torch.tensor([[r / 4, (r + 1) / 4, 0.0, 1 / 3] for r in range(4)])
    rows, cols = patch_position_indices(intervals, 128, training=False)
    assert rows.tolist() == [16, 48, 80, 112]  # the middle of each interval
    assert cols.tolist() == [21] * 4  # [0, round(42.67) = 43) -> middle 21
    torch.manual_seed(0)
    samples = torch.stack([patch_position_indices(intervals, 128, training=True)[0] for _ in range(4000)])
    for r in range(4):
        values = samples[:, r]
        assert values.min() == 32 * r and values.max() == 32 * r + 31  # uniform inside the interval, all reached
        counts = torch.bincount(values - 32 * r, minlength=32).float()
        assert counts.std() / counts.mean() < 0.25


def test_action_position_embedding_switch(processor):
    batch = episode_batch(processor)
    torch.manual_seed(0)
    off = GatoForCausalModeling(tiny_config()).eval()
    torch.manual_seed(0)
    on = GatoForCausalModeling(tiny_config(action_position_embedding=True)).eval()
    on.load_state_dict(off.state_dict(), strict=False)
    assert hasattr(on.model.embeddings.action_position_embedding, "weight")
    inputs = {k: batch[k] for k in ("input_ids", "image_patches", "patch_mask", "patch_intervals", "local_positions", "action_mask")}
    with torch.no_grad():
        a = off.model.embeddings(**inputs)[0]
        b = on.model.embeddings(**inputs)[0]
    actions = batch["action_mask"][0]
    torch.testing.assert_close(a[~actions], b[~actions])
    shared = on.model.embeddings.action_position_embedding.weight[0]
    torch.testing.assert_close(b[actions] - a[actions], shared.expand(int(actions.sum()), -1), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- loss
def test_loss_is_next_token_cross_entropy_on_text_and_action_tokens(model, processor):
    batch = processor(episodes=[make_episode(seed=0), make_episode(num_steps=1, seed=1)])
    with torch.no_grad():
        out = model(**batch)
    logits, ids, mask = out.logits[:, :-1], batch["input_ids"][:, 1:], batch["loss_mask"][:, 1:]
    expected = F.cross_entropy(logits[mask], ids[mask])
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-6)


def test_loss_ignores_observation_targets(model, processor):
    batch = episode_batch(processor)
    labels = batch["input_ids"].clone()
    with torch.no_grad():
        base = model(**batch, labels=labels).loss
        changed = labels.clone()
        observation = ~batch["loss_mask"]
        changed[observation] = (changed[observation] + 7) % 1000  # other targets at observations/patches/separators
        assert torch.equal(model(**batch, labels=changed).loss, base)
        changed = labels.clone()
        actions = batch["loss_mask"]
        changed[actions] = 32000 + (changed[actions] - 32000 + 100) % 1024
        assert not torch.isclose(model(**batch, labels=changed).loss, base)


def test_loss_is_honest_about_gradient_accumulation(model):
    """Trainer's num_items_in_batch reaches the loss: sum over target tokens divided by the given count."""
    ids = torch.randint(0, 1000, (2, 12))
    with torch.no_grad():
        mean = model(input_ids=ids, labels=ids).loss
        summed = model(input_ids=ids, labels=ids, num_items_in_batch=torch.tensor(22 * 2)).loss
    torch.testing.assert_close(summed * 2, mean, rtol=1e-5, atol=1e-6)
    assert model.loss_type == "ForCausalLM"


# ---------------------------------------------------------------------------- cache and generation
def test_incremental_decoding_with_the_cache_equals_a_full_forward(model, processor):
    batch = episode_batch(processor, num_steps=3)
    keys = ("input_ids", "image_patches", "patch_mask", "patch_intervals", "local_positions", "action_mask")
    with torch.no_grad():
        full = model(**{k: batch[k] for k in keys}, use_cache=False).logits
        split = int(batch["input_ids"].shape[1] * 0.6)
        out = model(**{k: batch[k][:, :split] for k in keys}, use_cache=True)
        cache, pieces = out.cache, [out.logits]
        for i in range(split, batch["input_ids"].shape[1]):
            step = model(**{k: batch[k][:, i : i + 1] for k in keys}, cache=cache, use_cache=True)
            cache = step.cache
            pieces.append(step.logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)


def test_greedy_generate_equals_a_loop_of_forwards(model, processor):
    prompt = processor(text="The agent picks up the")
    with torch.no_grad():
        generated = model.generate(**prompt, max_new_tokens=6, do_sample=False)
        no_cache = model.generate(**prompt, max_new_tokens=6, do_sample=False, use_cache=False)
        ids = prompt["input_ids"]
        for _ in range(6):
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(generated, ids) and torch.equal(no_cache, ids)


def test_generate_continues_an_episode_prompt(model, processor):
    """generate() with Gato inputs: the prompt's patches and positions are used, generated tokens get none."""
    episode = make_episode(num_steps=2)
    batch = processor(episodes=episode)
    prompt = {k: v[:, :-2] for k, v in batch.items()}  # up to the last separator: the model writes the action
    with torch.no_grad():
        generated = model.generate(**prompt, max_new_tokens=2, do_sample=False)
        ids = prompt["input_ids"]
        inputs = {k: v for k, v in prompt.items() if k not in ("loss_mask",)}
        for _ in range(2):
            next_id = model(**inputs).logits[:, -1:].argmax(-1)
            ids = torch.cat([ids, next_id], dim=1)
            inputs = {
                "input_ids": ids,
                "attention_mask": torch.ones_like(ids),
                "image_patches": F.pad(inputs["image_patches"], (0, 0, 0, 0, 0, 0, 0, 1)),
                "patch_mask": F.pad(inputs["patch_mask"], (0, 1)),
                "patch_intervals": F.pad(inputs["patch_intervals"], (0, 0, 0, 1)),
                "local_positions": F.pad(inputs["local_positions"], (0, 1), value=-1),
                "action_mask": F.pad(inputs["action_mask"], (0, 1)),
            }
    assert torch.equal(generated, ids)


def test_left_padded_batch_equals_single_prompts(model, processor):
    texts = ["hello", "The agent picks up the red ball and"]
    batch = processor(text=texts, padding_side="left")
    with torch.no_grad():
        batched = model.generate(**batch, max_new_tokens=4, do_sample=False)
        for row, text in enumerate(texts):
            single = processor(text=text)
            alone = model.generate(**single, max_new_tokens=4, do_sample=False)
            assert torch.equal(batched[row, -4:], alone[0, -4:])
            n = single["input_ids"].shape[1]
            logits_single = model(**single).logits[0]
            logits_batched = model(**batch).logits[row, -n:]
            torch.testing.assert_close(logits_batched, logits_single, rtol=1e-4, atol=1e-5)


def test_past_key_values_still_works_with_a_future_warning(model):
    ids = torch.randint(0, 1000, (1, 5))
    with torch.no_grad():
        first = model(input_ids=ids[:, :4], use_cache=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            old = model(input_ids=ids[:, 4:], past_key_values=first.cache, use_cache=True)
        assert any(issubclass(w.category, FutureWarning) for w in caught)
        full = model(input_ids=ids).logits[:, -1]
    torch.testing.assert_close(old.logits[:, -1], full, rtol=1e-5, atol=1e-5)


def test_sampling_is_seeded_and_beam_search_runs(model, processor):
    prompt = processor(text="hello")
    with torch.no_grad():
        torch.manual_seed(3)
        a = model.generate(**prompt, max_new_tokens=5, do_sample=True, top_k=50)
        torch.manual_seed(3)
        b = model.generate(**prompt, max_new_tokens=5, do_sample=True, top_k=50)
        beams = model.generate(**prompt, max_new_tokens=5, num_beams=3, do_sample=False)
    assert torch.equal(a, b) and beams.shape == (1, prompt["input_ids"].shape[1] + 5)


# ---------------------------------------------------------------------------- attention, dtypes, training
def test_sdpa_equals_eager_with_padding(processor):
    batch = processor(episodes=[make_episode(seed=0), make_episode(num_steps=1, seed=2)], padding_side="left")
    torch.manual_seed(0)
    sdpa = GatoForCausalModeling(tiny_config(attn_implementation="sdpa")).eval()
    eager = GatoForCausalModeling(tiny_config(attn_implementation="eager")).eval()
    eager.load_state_dict(sdpa.state_dict())
    assert sdpa.config._attn_implementation == "sdpa" and eager.config._attn_implementation == "eager"
    with torch.no_grad():
        a, b = sdpa(**batch).logits, eager(**batch).logits
    valid = batch["attention_mask"].bool()
    torch.testing.assert_close(a[valid], b[valid], rtol=1e-4, atol=1e-5)


def test_hidden_states_attentions_and_tuples(processor):
    model = GatoForCausalModeling(tiny_config(attn_implementation="eager")).eval()
    ids = torch.randint(0, 1000, (2, 7))
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True, output_attentions=True)
        as_tuple = model(input_ids=ids, labels=ids, return_dict=False)
    assert len(out.hidden_states) == 3 and out.hidden_states[0].shape == (2, 7, 64)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 4, 7, 7)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(2, 4, 7))
    assert torch.triu(out.attentions[0][0, 0], diagonal=1).abs().max() == 0  # causal
    assert isinstance(as_tuple, tuple) and as_tuple[0].dim() == 0


def test_inputs_embeds_give_the_same_logits(model):
    ids = torch.randint(0, 1000, (2, 6))
    with torch.no_grad():
        a = model(input_ids=ids).logits
        b = model(inputs_embeds=model.get_input_embeddings()(ids)).logits
    torch.testing.assert_close(a, b)


def test_every_parameter_gets_a_gradient_and_checkpointing_matches(processor):
    batch = episode_batch(processor)
    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config()).train()
    torch.manual_seed(1)
    model(**batch).loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    missing = [n for n, g in grads.items() if g is None or g.abs().sum() == 0]
    assert not missing, missing
    for reentrant in (False, True):
        model.zero_grad()
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.23
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": reentrant})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
        torch.manual_seed(1)
        model(**batch).loss.backward()
        for name, param in model.named_parameters():
            torch.testing.assert_close(param.grad, grads[name], rtol=1e-5, atol=1e-6, msg=name)
        assert model.model.gradient_checkpointing
        getattr(model, "activation_checkpointing_disable", model.gradient_checkpointing_disable)()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_runs(processor, dtype):
    model = GatoForCausalModeling(tiny_config()).to(dtype).eval()
    with torch.no_grad():
        out = model(**episode_batch(processor))
    assert out.logits.dtype == dtype and torch.isfinite(out.loss)


# ---------------------------------------------------------------------------- save, load, resize
def test_save_load_round_trip_and_tied_weights(tmp_path, model, processor):
    batch = episode_batch(processor)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = GatoForCausalModeling.from_pretrained(tmp_path).eval()
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert loaded.lm_head.weight.data_ptr() == loaded.get_input_embeddings().weight.data_ptr()
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, loaded(**batch).logits, rtol=0, atol=0)


def test_resize_token_embeddings_keeps_input_and_output_tied(model):
    old = model.get_input_embeddings().weight.detach().clone()
    model.resize_token_embeddings(33100)
    assert model.config.vocab_size == 33100
    assert model.get_input_embeddings().weight.shape == (33100, 64)
    assert model.lm_head.weight.shape == (33100, 64)
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    torch.testing.assert_close(model.get_input_embeddings().weight[:33025], old)
    assert model(input_ids=torch.tensor([[33099]])).logits.shape == (1, 1, 33100)


# ---------------------------------------------------------------------------- bad input
def test_bad_model_inputs_are_clear_errors(model, processor):
    batch = episode_batch(processor)
    with pytest.raises(ValueError, match="longer than the context"):
        model(input_ids=torch.zeros(1, 300, dtype=torch.long))
    with pytest.raises(ValueError, match="batch size"):
        model(input_ids=torch.zeros(2, 5, dtype=torch.long), attention_mask=torch.ones(3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="local_positions"):
        model(input_ids=batch["input_ids"], local_positions=torch.full_like(batch["input_ids"], 600))
    with pytest.raises(ValueError, match="image_patches"):
        model(input_ids=batch["input_ids"], patch_mask=batch["patch_mask"])
    with pytest.raises(ValueError, match="input_ids"):
        model(input_ids=torch.tensor([[40000]]))
    with pytest.raises(ValueError, match="patch_mask"):
        model(**{**batch, "patch_mask": batch["patch_mask"][:, :-1]})


def test_target_logits_only_gives_the_same_loss_and_gradients(processor):
    batch = processor(episodes=[make_episode(seed=0), make_episode(num_steps=1, seed=1)])
    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config()).eval()
    labels = batch["input_ids"].masked_fill(~batch["loss_mask"], -100)
    full = model(**batch, labels=labels)
    full.loss.backward()
    reference = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    fast = model(**batch, labels=labels, target_logits_only=True)
    fast.loss.backward()
    torch.testing.assert_close(fast.loss, full.loss, rtol=1e-6, atol=1e-6)
    assert fast.logits.shape == (1, int(batch["loss_mask"][:, 1:].sum()), model.config.vocab_size)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, reference[name], rtol=1e-5, atol=1e-7, msg=name)
    counted = model(**batch, labels=labels, target_logits_only=True, num_items_in_batch=torch.tensor(3)).loss
    torch.testing.assert_close(counted, model(**batch, labels=labels, num_items_in_batch=torch.tensor(3)).loss)


# ---------------------------------------------------------------------------- work saved on training batches
def test_repeated_patches_are_embedded_once_with_the_same_values_and_gradients():
    torch.manual_seed(0)
    embeddings = GatoForCausalModeling(tiny_config()).model.embeddings
    distinct = torch.rand(5, 3, 16, 16)
    patches = distinct[torch.tensor([0, 1, 0, 2, 3, 4, 4, 4, 1, 0, 2, 3])]  # 12 patches, 5 distinct
    seen = []
    hook = embeddings.patch_embedding.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    shared = embeddings.embed_patches(patches)
    shared.square().sum().backward()
    shared_grads = {n: p.grad.clone() for n, p in embeddings.patch_embedding.named_parameters()}
    embeddings.zero_grad()
    each = embeddings.patch_embedding(patches)
    each.square().sum().backward()
    hook.remove()
    assert seen == [5, 12]  # the shared path ran the ResNet block on the 5 distinct patches only
    torch.testing.assert_close(shared, each, rtol=1e-5, atol=1e-6)
    scale = max(float(p.grad.abs().max()) for p in embeddings.patch_embedding.parameters())
    for name, param in embeddings.patch_embedding.named_parameters():  # conv1.bias's is ~0 (GroupNorm follows)
        torch.testing.assert_close(shared_grads[name], param.grad, rtol=1e-4, atol=1e-6 * scale, msg=name)


def packed_mask(rows: list[list[int]], seq: int) -> torch.Tensor:
    """The collator's mask for rows of packed segments of the given lengths (the rest of each row is padding)."""
    segments = [np.repeat(np.arange(len(lengths)), lengths) for lengths in rows]
    attention = torch.zeros(len(rows), seq, dtype=torch.long)
    for row, lengths in enumerate(rows):
        attention[row, : sum(lengths)] = 1
    return segment_causal_mask(segments, attention)


def test_attention_bands_find_the_packed_rows_and_the_smallest_band_that_holds_them():
    seq = 256  # bands of 32 or 64 tokens (at most a quarter of the sequence)
    mask = packed_mask([[20] * 12, [50] * 5, [256], [20, 20, 10]], seq)
    # Row 0: 20-token segments never reach back past the previous 32-token chunk. Row 1: the segment of tokens 50-99
    # has query 99 (chunk 96-127) seeing key 50, before chunk 64-95: 32 is too narrow, 64 holds. Row 2: one causal
    # segment of 256 tokens: full attention. Row 3: short segments, then padding that sees only itself.
    band_rows, full_rows, width = attention_bands(mask, seq)
    assert band_rows.tolist() == [0, 1, 3] and full_rows.tolist() == [2] and width == 64
    band_rows, full_rows, width = attention_bands(mask[[0, 3]], seq)
    assert band_rows.tolist() == [0, 1] and full_rows.tolist() == [] and width == 32
    assert attention_bands(mask[[2]], seq) is None  # no packed row: nothing to save
    assert attention_bands(mask.float(), seq) is None  # additive masks are left alone
    assert attention_bands(mask[..., 1:, :], seq - 1) is None  # queries after a cached past
    assert attention_bands(packed_mask([[20] * 6], 128), 128) is not None
    assert attention_bands(packed_mask([[20] * 3], 96), 96) is None  # 96 is not a multiple of 4 x 32


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_banded_attention_equals_full_attention_with_gradients(implementation, monkeypatch):
    seq = 256
    mask = packed_mask([[20] * 12, [50] * 5, [200], [30, 45, 45]], seq)
    assert attention_bands(mask, seq)[1].tolist() == [2]  # three banded rows and one full one
    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config(attn_implementation=implementation)).train()
    batch = {"input_ids": torch.randint(0, 32000, (4, seq)), "attention_mask": mask}
    labels = batch["input_ids"].masked_fill(~mask[:, 0].diagonal(dim1=-2, dim2=-1), -100)
    results = []
    for bands in (True, False):
        if not bands:
            monkeypatch.setattr(modeling, "attention_bands", lambda mask, seq: None)
        model.zero_grad()
        out = model(**batch, labels=labels, use_cache=False)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}  # no patches here
        results.append((out.logits.detach(), grads))
    (banded, banded_grads), (full, full_grads) = results
    torch.testing.assert_close(banded, full, rtol=1e-5, atol=1e-5)
    assert banded_grads.keys() == full_grads.keys() and "model.layers.0.self_attn.q_proj.weight" in full_grads
    for name, grad in full_grads.items():  # k_proj.bias: zero up to rounding either way (softmax ignores it)
        torch.testing.assert_close(banded_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    weights = model(**batch, output_attentions=True).attentions  # weights wanted: the full computation
    if implementation == "eager":
        assert weights[0].shape == (4, 4, seq, seq)


# ---------------------------------------------------------------------------- value-aware continuous embeddings
def test_table_is_the_paper_default_and_the_fourier_term_is_one_shared_map():
    assert GatoConfig().continuous_embedding == "table"
    plain = GatoForCausalModeling(tiny_config())
    assert plain.model.embeddings.continuous_value_embedding is None
    with pytest.raises(ValueError, match="continuous_embedding"):
        tiny_config(continuous_embedding="fourier")
    with pytest.raises(ValueError, match="continuous_embedding_frequencies"):
        tiny_config(continuous_embedding="table+fourier", continuous_embedding_frequencies=-1)

    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config(continuous_embedding="table+fourier", continuous_embedding_frequencies=2)).eval()
    values = model.model.embeddings.continuous_value_embedding
    assert values.proj.weight.shape == (64, 5)  # y, sin(pi y), sin(2 pi y), cos(pi y), cos(2 pi y)
    features = values.features()
    for b in (0, 511, 1023):  # by hand: bin b's centre and its features
        y = -1 + (2 * b + 1) / 1024
        expected = [y, math.sin(math.pi * y), math.sin(2 * math.pi * y), math.cos(math.pi * y), math.cos(2 * math.pi * y)]
        torch.testing.assert_close(features[b], torch.tensor(expected), atol=1e-6, rtol=0)
    table = model.model.embeddings.embed_tokens.weight
    with torch.no_grad():
        embedded = model.model.embeddings(input_ids=torch.tensor([[5, 32000, 32700, 33023, 33024]]))[0]
    term = values.rows()
    torch.testing.assert_close(embedded[0], table[5])  # text / discrete ids: the table row only
    torch.testing.assert_close(embedded[4], table[33024])  # the separator too
    for slot, b in ((1, 0), (2, 700), (3, 1023)):
        torch.testing.assert_close(embedded[slot], table[32000 + b] + features[b] @ values.proj.weight.T)
        torch.testing.assert_close(term[b], features[b] @ values.proj.weight.T)


def test_the_fourier_term_is_shared_by_neighbours_on_input_and_tied_output():
    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config(continuous_embedding="table+fourier")).train()
    ids = torch.tensor([[7, 32100, 33024, 32400]])
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    table_grad = model.model.embeddings.embed_tokens.weight.grad
    # A bin that was neither input nor target gets no table gradient through the input side, but its value term
    # moves with the shared map: what is learned at bin 100 carries to bin 101.
    assert model.model.embeddings.continuous_value_embedding.proj.weight.grad.abs().sum() > 0
    with torch.no_grad():
        before = model.model.embeddings.continuous_value_embedding.rows()[101].clone()
        model.model.embeddings.continuous_value_embedding.proj.weight -= model.model.embeddings.continuous_value_embedding.proj.weight.grad
        after = model.model.embeddings.continuous_value_embedding.rows()[101]
    assert not torch.allclose(before, after)
    assert table_grad is not None
    # Output side: the bins' logits use table row + the same term (tied); other ids use the table alone.
    model.eval()
    with torch.no_grad():
        hidden = model.model(input_ids=ids).last_hidden_state
        logits = model(input_ids=ids).logits
        rows = model.model.embeddings.embed_tokens.weight
        term = model.model.embeddings.continuous_value_embedding.rows()
        torch.testing.assert_close(logits[..., 32000:33024], hidden @ (rows[32000:33024] + term).T, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(logits[..., :32000], hidden @ rows[:32000].T, atol=1e-5, rtol=1e-5)
        for low, high in ((0, 2), (32000, 33024), (31990, 32010), (33020, 33025)):  # what the agent samples from
            torch.testing.assert_close(hidden @ model.output_rows(low, high).T, logits[..., low:high], atol=1e-5, rtol=1e-5)


def test_the_fourier_option_keeps_save_load_target_only_loss_and_cache(tmp_path, processor):
    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config(continuous_embedding="table+fourier")).eval()
    batch = episode_batch(processor)
    with torch.no_grad():
        full = model(**batch)
        target_only = model(**batch, labels=batch["input_ids"], target_logits_only=True)
    torch.testing.assert_close(target_only.loss, full.loss)
    model.save_pretrained(tmp_path)
    loaded = GatoForCausalModeling.from_pretrained(tmp_path).eval()
    assert loaded.config.continuous_embedding == "table+fourier"
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, full.logits, rtol=0, atol=0)
        # incremental decoding with the cache equals the full forward
        ids = batch["input_ids"]
        prefix = {k: v[:, :-3] for k, v in batch.items() if k not in ("image_patches", "patch_intervals", "loss_mask")}
        prefix["image_patches"], prefix["patch_intervals"] = batch["image_patches"][:, :-3], batch["patch_intervals"][:, :-3]
        step = model(**prefix, use_cache=True)
        cache = step.cache if hasattr(step, "cache") and step.cache is not None else step.past_key_values
        rest = model(input_ids=ids[:, -3:], local_positions=batch["local_positions"][:, -3:], cache=cache)
    torch.testing.assert_close(rest.logits, full.logits[:, -3:], atol=1e-5, rtol=1e-5)
