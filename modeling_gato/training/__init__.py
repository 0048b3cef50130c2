"""Stage 5, training: the Trainer-based recipe (`train`), few-shot adaptation to a held-out task (`fewshot`), and
the paper's model variants (`variants`)."""
