"""What a transformers user does with Gato: Trainer fine-tuning, gradient accumulation, PEFT LoRA, pipelines."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from gato_testing import make_episode, tiny_config
from transformers import Trainer, TrainingArguments, pipeline

from modeling_gato import GatoDataCollator, GatoForCausalModeling, GatoProcessor


def mixed_rows():
    """Episodes of different lengths, a text row, a caption row and a VQA row."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    return [
        {k: v for k, v in make_episode(num_steps=2, seed=0).items() if k != "task"},
        {"text": "Return the number of items in a container."},
        {k: v for k, v in make_episode(num_steps=1, seed=1).items() if k != "task"},
        {"image": image, "text": "a noisy square"},
        {"image": image, "question": "what is it?", "answer": "a square"},
        {"continuous_observations": rng.normal(size=(3, 5)).tolist(), "discrete_actions": [1, 2, 3]},
    ]


def as_dataset(rows):
    """One `datasets` table for rows of every kind: missing columns are None, as in a real mixed dataset."""
    columns = sorted({key for row in rows for key in row})
    return Dataset.from_list([{key: row.get(key) for key in columns} for row in rows])


def test_collator_handles_every_row_kind(processor):
    batch = GatoDataCollator(processor)(mixed_rows())
    assert batch["input_ids"].shape[0] == 6
    labels, ids, loss_mask = batch["labels"], batch["input_ids"], batch["loss_mask"]
    assert torch.equal(labels[loss_mask], ids[loss_mask]) and (labels[~loss_mask] == -100).all()
    eos = processor.tokenizer.eos_token_id
    n_text = int(batch["attention_mask"][1].sum())
    assert ids[1, n_text - 1] == eos and loss_mask[1, :n_text].all()  # text rows: every token a target, EOS last
    question = len(processor.tokenize_text("what is it?"))
    assert not loss_mask[4, : 4 + question].any() and loss_mask[4, 4 + question]  # VQA: answer only


def gradient_step(rows, batch_size, accumulation, output_dir):
    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config(hidden_dropout=0.0))
    processor = GatoProcessor()
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        learning_rate=0.1,
        optim="sgd",
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=0.0,
        weight_decay=0.0,
        remove_unused_columns=False,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        dataloader_drop_last=False,
        seed=0,
    )
    dataset = as_dataset(rows)
    trainer = Trainer(
        model=model, args=args, train_dataset=dataset, data_collator=GatoDataCollator(processor),
        processing_class=processor,
    )
    trainer._get_train_sampler = lambda *a, **k: torch.utils.data.SequentialSampler(dataset)
    trainer.train()
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_gradient_accumulation_equals_a_bigger_batch(tmp_path):
    rng = np.random.default_rng(0)
    rows = [  # rows with very different numbers of targets
        {"continuous_observations": rng.normal(size=(n, 3)).tolist(), "continuous_actions": rng.uniform(-1, 1, (n, 2)).tolist()}
        for n in (1, 6, 2, 9)
    ]
    big = gradient_step(rows, batch_size=4, accumulation=1, output_dir=tmp_path / "a")
    accumulated = gradient_step(rows, batch_size=2, accumulation=2, output_dir=tmp_path / "b")
    for name in big:
        torch.testing.assert_close(accumulated[name], big[name], rtol=1e-4, atol=1e-6, msg=name)


def test_trainer_fine_tunes_and_saves_a_loadable_model(tmp_path, processor):
    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config())
    rows = mixed_rows() * 4
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, max_steps=12, learning_rate=3e-3,
        remove_unused_columns=False, report_to=[], save_strategy="no", logging_steps=4, use_cpu=True,
        adam_beta2=0.95, weight_decay=0.1, max_grad_norm=1.0,
    )
    collator = GatoDataCollator(processor)
    trainer = Trainer(model=model, args=args, train_dataset=as_dataset(rows), data_collator=collator,
                      processing_class=processor)
    eval_batch = collator(list(as_dataset(rows[:6])))
    model.eval()
    with torch.no_grad():
        before = model(**eval_batch).loss.item()
    trainer.train()
    model.eval()
    with torch.no_grad():
        after = model(**eval_batch).loss.item()
    assert after < before - 1.0, (before, after)
    trainer.save_model(str(tmp_path / "final"))
    assert (tmp_path / "final" / "processor_config.json").exists()
    loaded = GatoForCausalModeling.from_pretrained(tmp_path / "final").eval()
    reloaded = GatoProcessor.from_pretrained(tmp_path / "final")
    with torch.no_grad():
        reloaded_loss = loaded(**GatoDataCollator(reloaded)(list(as_dataset(rows[:6])))).loss.item()
    assert reloaded_loss == pytest.approx(after, abs=1e-6)


def test_peft_lora_trains_and_merges(processor):
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config())
    linear = {f"base_model.model.{n}" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"}
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    adapted = {n[: -len(".base_layer")] for n, _ in lora.named_modules() if n.endswith(".base_layer")}
    assert linear <= adapted, sorted(linear - adapted)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    batch = GatoDataCollator(processor)(mixed_rows())
    optimizer = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-2)
    lora.train()
    first = None
    for _ in range(8):
        loss = lora(**batch).loss
        first = loss.item() if first is None else first
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    lora.eval()
    with torch.no_grad():
        adapted_logits = lora(**batch).logits
        assert lora(**batch).loss.item() < first
        merged = lora.merge_and_unload()
        torch.testing.assert_close(merged(**batch).logits, adapted_logits, rtol=1e-4, atol=1e-4)
    assert isinstance(merged, GatoForCausalModeling)


def test_text_generation_pipeline_from_a_saved_directory(tmp_path, processor):
    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    generator = pipeline("text-generation", model=str(tmp_path), trust_remote_code=True, device="cpu")
    out = generator("The agent picks up the", max_new_tokens=5, do_sample=False, return_full_text=False)
    ids = processor(text="The agent picks up the")
    with torch.no_grad():
        expected = model.generate(**ids, max_new_tokens=5, do_sample=False)[0, ids["input_ids"].shape[1]:]
    assert out[0]["generated_text"] == processor.decode(expected, skip_special_tokens=True)
    batched = generator(["hello", "a longer prompt than the first"], max_new_tokens=3, do_sample=False, batch_size=2)
    assert len(batched) == 2
