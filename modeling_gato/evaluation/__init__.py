"""Stage 4, evaluation: closed-loop returns beside the baselines on the same seeds (`evaluate`), the field's
statistics (`metrics`: expert-normalised score, IQM, bootstrap intervals), the written report (`report`: tables,
plots, the model card's results), offline action prediction on held-out episodes (`offline`), and caption
grounding (`caption_grounding`)."""
