"""Stage 2, the data: expert episodes, text, captions and VQA collected from the environments into a `datasets`
directory (`collect`), their reference scores measured or re-measured (`scores`), training sequences cut from them
(`sequences`), batched (`collator`), and the text tokenizer trained from the corpus (`tokenizer_training`)."""
