"""Tokenization throughput: our in-graph tokenizers vs Python peers.

Run: python -m benchmarks.tokenization
Same SST-2 dev sentences, same vocabulary, one process, sentences per second.
"""

import logging

import tensorflow as tf

from benchmarks.common import best_rate
from benchmarks.common import parse_command_line
from benchmarks.common import spiece_model_path
from benchmarks.common import sst2_dev_sentences
from benchmarks.common import write_results

COMMAND = "python -m benchmarks.tokenization"


def main():
    import sentencepiece as spm
    from transformers import AlbertTokenizer as HFSlow
    from transformers import AlbertTokenizerFast as HFFast

    from albert_tf.models import AlbertTokenizer

    sentences = sst2_dev_sentences()
    n = len(sentences)
    model = spiece_model_path()
    batch = tf.constant(sentences)
    rates = {}
    for fast in (False, True):
        tokenizer = AlbertTokenizer(proto=model, fast=fast)
        fn = tf.function(lambda x, t=tokenizer: t(x))
        name = (
            "albert_tf AlbertTokenizer (in-graph, "
            + ("Fast" if fast else "regular")
            + ")"
        )
        rates[name] = best_rate(lambda f=fn: f(batch), n)
    processor = spm.SentencePieceProcessor(model_file=model)
    rates["Python sentencepiece (no ALBERT preprocessing)"] = best_rate(
        lambda: processor.encode(sentences), n
    )
    slow = HFSlow(vocab_file=model, do_lower_case=True, keep_accents=False)
    rates["HF transformers AlbertTokenizer (slow, the reference)"] = best_rate(
        lambda: [slow.encode(s, add_special_tokens=False) for s in sentences],
        n,
        repeats=1,
    )
    fast_hf = HFFast(vocab_file=model, do_lower_case=True, keep_accents=False)
    rates["HF tokenizers AlbertTokenizerFast (Rust)"] = best_rate(
        lambda: fast_hf(sentences, add_special_tokens=False), n
    )
    reference = rates["HF transformers AlbertTokenizer (slow, the reference)"]
    lines = [
        f"Tokenizing the {n} SST-2 dev sentences as one batch, real ALBERT vocabulary.",
        "",
        "| tokenizer | sentences/s | vs HF slow |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {k} | {v:,.0f} | {v / reference:.1f}x |" for k, v in rates.items()]
    rust = rates["HF tokenizers AlbertTokenizerFast (Rust)"]
    ratios = {
        f"tokenize {'Fast' if 'Fast)' in k else 'regular'} vs HF Rust": v / rust
        for k, v in rates.items()
        if k.startswith("albert_tf")
    }
    path = write_results("tokenization", COMMAND, lines, ratios)
    logging.info("wrote %s", path)
    print("\n".join(lines))
    return rates


if __name__ == "__main__":
    parse_command_line(__doc__)
    logging.basicConfig(level=logging.INFO)
    main()
