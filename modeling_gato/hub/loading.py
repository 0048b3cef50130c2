"""Loading a saved model directory (or a Hub id) the way every command here and every user does."""

from __future__ import annotations


def load_model(model_dir: str, device: str | None = None):
    """A saved directory's (or Hub id's) model, in eval mode on `device`, and its processor, both through the Auto
    classes with `trust_remote_code=True`: the way a user without this package loads them."""
    from transformers import AutoModelForCausalLM, AutoProcessor

    model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=True).eval()
    if device:
        model.to(device)
    processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=True)
    return model, processor
