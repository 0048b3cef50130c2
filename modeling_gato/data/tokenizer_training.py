"""Train the default Gato text tokenizer from text that ships with the Python interpreter.

The paper uses a SentencePiece model with 32,000 subwords. We cannot download one (the project is
offline by design), so we train a SentencePiece-style unigram model with `tokenizers` on text nobody
here wrote and that every Python installation has: the language reference shipped in
`pydoc_data.topics` and the docstrings of the standard library. The result is committed as
`modeling_gato/assets/tokenizer/tokenizer.json`; run `python -m modeling_gato.data.tokenizer_training`
to rebuild it (deterministic for a given interpreter version).

Text ids are `[0, vocab_size)`, with `vocab_size <= 32000`: the continuous range starts at 32000
whatever the text vocabulary, so a smaller tokenizer simply leaves ids unused.
"""

from __future__ import annotations

import argparse
import ast
import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from ..utils.arguments import positive_int

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0, 1, 2, 3
DEFAULT_TOKENIZER_DIR = Path(__file__).resolve().parent / "assets" / "tokenizer"


def offline_corpus(max_files: int | None = None) -> Iterator[str]:
    """Yield paragraphs of English technical prose available offline: Python's own documentation."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield from (p.strip() for p in topics[name].split("\n\n") if p.strip())

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts and "test" not in p.parts)
    for path in files[:max_files]:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield doc


def build_tokenizer(vocab_size: int = 32000, max_files: int | None = None):
    """Train a unigram (SentencePiece-style) tokenizer and wrap it as a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not 100 <= vocab_size <= 32000:
        raise ValueError(f"vocab_size={vocab_size} is invalid: expected 100 <= vocab_size <= 32000 (text ids).")
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        unk_token="<unk>",
        shrinking_factor=0.75,
        max_piece_length=16,
        n_sub_iterations=2,
        show_progress=True,
    )
    tokenizer.train_from_iterator(offline_corpus(max_files), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=1024,
        clean_up_tokenization_spaces=False,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=positive_int, default=32000)
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_TOKENIZER_DIR)
    args = parser.parse_args(argv)
    tokenizer = build_tokenizer(args.vocab_size)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(os.fspath(args.output_dir))
    print(f"wrote a {len(tokenizer)}-token tokenizer to {args.output_dir}")


if __name__ == "__main__":
    main()
