"""Seed-averaged SST-2 sweeps of `configs/sst2_scratch.yaml` variants on a GPU.

One run of the config takes 3.5 minutes on 2 CPU cores, and one run's dev
accuracy has a standard error of about 1.3 points, so comparing settings
needs many seeds. This tool trains a PyTorch proxy of the config's model
(Hugging Face `AlbertForSequenceClassification`, the same sizes, dropouts,
AdamW with no decay on biases and LayerNorms, linear warmup and decay,
clipping, length buckets and best-of-periodic-dev-evaluations selection) many
times at once on one GPU: about 55 runs in 8 minutes on an H100. Settings it
singles out must then be confirmed with the real trainer on the CPU.

Two steps, since the GPU machine has PyTorch but no TensorFlow:

    # Here: the config's data as token ids from albert_tf's own preprocessor
    # (.sweep/ is git-ignored: carry it to the GPU machine).
    python -m benchmarks.sst2_gpu_sweep prepare .sweep/sst2_ids.npz
    # The sweeps recorded in results/training.md varied the earlier config:
    #   prepare ... --set model.backbone.num_layers=4 --set
    #   model.backbone.intermediate_dim=512 --set training.global_batch_size=64
    #   --set training.epochs=2
    # There (needs torch, transformers, numpy): results in $OUT/results.jsonl.
    python benchmarks/sst2_gpu_sweep.py run .sweep/sst2_ids.npz --sweep knobs \
        --seconds 470 --workers 12
    # Here or there: mean best and final dev accuracy per variant, and each
    # variant's mean difference to the sweep's first variant on the same seeds.
    python benchmarks/sst2_gpu_sweep.py summarize results.jsonl
"""

import argparse
import json
import os
import statistics
import time
import traceback

import numpy as np

# Each sweep: (variant name, changes to the config's settings), the first the
# reference. "knobs" and "epochs1" are the sweeps in results/training.md.
_E1 = {"epochs": 1.0}
SWEEPS = {
    "knobs": [
        ("base", {}),
        ("random_batches", {"bucket": False}),
        ("mixup1.0", {"mixup": 1.0}),
        ("epochs1", _E1),
        ("small_h128", {"hidden": 128, "ffn": 256, "heads": 2}),
        ("wd0.1", {"wd": 0.1}),
        ("attn_dropout0", {"attn_dropout": 0.0}),
        ("dropout0.0", {"dropout": 0.0, "attn_dropout": 0.0, "cls_dropout": 0.0}),
        ("cls_dropout0.3", {"cls_dropout": 0.3}),
        ("batch32", {"batch": 32}),
        ("fgm0.1", {"fgm": 0.1}),
    ],
    "epochs1": [
        ("epochs1", _E1),
        ("e1_lr1e-3", {**_E1, "lr": 1e-3}),
        ("e1_layers1", {**_E1, "layers": 1}),
        ("e1_h64", {**_E1, "hidden": 64, "ffn": 128, "heads": 1, "emb": 64}),
        ("e1_heads1", {**_E1, "heads": 1}),
        ("e1_layers12", {**_E1, "layers": 12}),
        ("e1_wd0.3", {**_E1, "wd": 0.3}),
        ("e1_batch16", {**_E1, "batch": 16}),
        ("e1_warm0.2", {**_E1, "warmup": 0.2}),
        ("e1_emb256_h128", {**_E1, "emb": 256, "hidden": 128, "ffn": 256, "heads": 2}),
        ("e1_ffn2048", {**_E1, "ffn": 2048}),
        (
            "e1_dropout0.3",
            {**_E1, "dropout": 0.3, "attn_dropout": 0.3, "cls_dropout": 0.3},
        ),
    ],
    # Around the shipped config (1 layer, FFN 2048, batch 32, 1 epoch): prepare
    # with no --set.
    "onelayer": [
        ("current", {}),
        ("emb256", {"emb": 256}),
        ("emb64", {"emb": 64}),
        ("heads1", {"heads": 1}),
        ("heads8", {"heads": 8}),
        ("h128_heads2", {"hidden": 128, "heads": 2}),
        ("ffn3072", {"ffn": 3072}),
        ("lr3e-4", {"lr": 3e-4}),
        ("lr7e-4", {"lr": 7e-4}),
        ("warm0.2", {"warmup": 0.2}),
        ("wd0.1", {"wd": 0.1}),
        ("attn_dropout0", {"attn_dropout": 0.0}),
        ("cls_dropout0", {"cls_dropout": 0.0}),
        ("epochs1.5", {"epochs": 1.5}),
        ("fgm0.1", {"fgm": 0.1}),
        ("batch24", {"batch": 24}),
    ],
}


def prepare(output_path, overrides=()):
    """Writes the config's train/dev token ids, labels and settings to `output_path`.

    `overrides`: `KEY=VALUE` strings, as `albert-tf train --set` takes them.
    """
    from albert_tf.training import data_files
    from albert_tf.training import load_config
    from albert_tf.training.config import parse_overrides
    from albert_tf.training.data_pipeline import default_bucket_boundaries
    from albert_tf.training.model_factory import build_preprocessor

    config = load_config(
        os.path.join(os.path.dirname(__file__), "..", "configs", "sst2_scratch.yaml"),
        overrides=parse_overrides(list(overrides)),
    )
    preprocessor = build_preprocessor(config.model)
    labels = data_files.LabelVocabulary(config.data.label_names)
    arrays = {}
    for split in ("train", "dev"):
        data = data_files.read_labelled_text(
            getattr(config.data, split), config.data, labels
        )
        ids = [
            preprocessor(data.texts[i : i + 4096])["token_ids"].numpy()
            for i in range(0, len(data), 4096)
        ]
        arrays[f"{split}_ids"] = np.concatenate(ids).astype(np.int32)
        arrays[f"{split}_labels"] = np.array(data.labels, np.int32)
    backbone, opt, training = config.model.backbone, config.optimizer, config.training
    settings = dict(
        vocabulary_size=preprocessor.tokenizer.vocabulary_size(),
        pad_id=preprocessor.tokenizer.pad_token_id,
        lr=opt.learning_rate,
        warmup=opt.warmup_ratio,
        wd=opt.weight_decay,
        clip=opt.clipnorm,
        epsilon=opt.epsilon,
        betas=(opt.beta_1, opt.beta_2),
        batch=training.global_batch_size,
        epochs=training.epochs,
        eval_every=training.eval_every_steps,
        layers=backbone.num_layers,
        groups=backbone.num_groups,
        hidden=backbone.hidden_dim,
        emb=backbone.embedding_dim,
        heads=backbone.num_heads,
        ffn=backbone.intermediate_dim,
        dropout=backbone.dropout,
        attn_dropout=backbone.dropout,
        cls_dropout=config.model.dropout,
        positions=backbone.max_sequence_length,
        boundaries=config.data.bucket_boundaries
        or default_bucket_boundaries(config.model.sequence_length),
        bucket=True,
        mixup=0.0,
        fgm=0.0,
    )
    arrays["settings"] = np.array(json.dumps(settings))
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    np.savez_compressed(output_path, **arrays)
    rows = f"{len(arrays['train_ids'])} train, {len(arrays['dev_ids'])} dev rows"
    print(f"{output_path}: {rows}")


def _batches(lengths, rng, batch, boundaries, bucket):
    """Endless index batches, as tf.data shuffle, repeat, bucket_by_sequence_length."""
    buckets = [[] for _ in range(len(boundaries) + 1)]
    while True:
        for i in rng.permutation(len(lengths)):
            b = (
                int(np.searchsorted(boundaries, lengths[i], side="right"))
                if bucket
                else 0
            )
            buckets[b].append(i)
            if len(buckets[b]) == batch:
                yield np.array(buckets[b])
                buckets[b] = []


def train_one(ids_path, name, seed, changes, deadline):
    """One proxy run; returns its dev accuracy at each evaluation."""
    import torch
    import torch.nn.functional as F
    from transformers import AlbertConfig
    from transformers import AlbertForSequenceClassification

    torch.set_num_threads(1)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = np.load(ids_path)
    c = {**json.loads(str(data["settings"])), **changes}
    pad = c["pad_id"]
    train_ids, dev_ids = (
        data["train_ids"].astype(np.int64),
        data["dev_ids"].astype(np.int64),
    )
    train_labels, dev_labels = data["train_labels"].astype(np.int64), data["dev_labels"]
    train_lengths = (train_ids != pad).sum(1)

    model = AlbertForSequenceClassification(
        AlbertConfig(
            vocab_size=c["vocabulary_size"],
            embedding_size=c["emb"],
            hidden_size=c["hidden"],
            num_hidden_layers=c["layers"],
            num_hidden_groups=c["groups"],
            num_attention_heads=c["heads"],
            intermediate_size=c["ffn"],
            inner_group_num=1,
            hidden_act="gelu_new",
            hidden_dropout_prob=c["dropout"],
            attention_probs_dropout_prob=c["attn_dropout"],
            classifier_dropout_prob=c["cls_dropout"],
            max_position_embeddings=c["positions"],
            type_vocab_size=2,
            initializer_range=0.02,
            num_labels=2,
            pad_token_id=pad,
        )
    ).to(device)
    decay, no_decay = [], []
    for name_, parameter in model.named_parameters():
        skip = "bias" in name_ or "LayerNorm" in name_
        (no_decay if skip else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": c["wd"]},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=c["lr"],
        betas=tuple(c["betas"]),
        eps=c["epsilon"],
        **({"fused": True} if device.type == "cuda" else {}),
    )
    total = max(1, int(c["epochs"] * len(train_labels)) // c["batch"])
    warmup = int(round(c["warmup"] * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            (s + 1) / max(warmup, 1)
            if s < warmup
            else max(0.0, (total - s) / max(total - warmup, 1))
        ),
    )

    def tensors(ids, rows):
        x = ids[rows]
        x = torch.from_numpy(x[:, : int((x != pad).sum(1).max())]).to(device)
        return x, (x != pad).long()

    dev_batches = [
        (
            *tensors(dev_ids, np.arange(i, min(i + 128, len(dev_ids)))),
            torch.from_numpy(dev_labels[i : i + 128].astype(np.int64)).to(device),
        )
        for i in range(0, len(dev_ids), 128)
    ]

    def accuracy():
        model.eval()
        with torch.no_grad():
            right = sum(
                int((model(input_ids=x, attention_mask=m).logits.argmax(-1) == y).sum())
                for x, m, y in dev_batches
            )
        model.train()
        return right / len(dev_ids)

    def loss_of(x, m, y):
        if not c["mixup"]:
            return F.cross_entropy(model(input_ids=x, attention_mask=m).logits, y)
        # Sentence-level mixup (Guo et al. 2019) on the pooled output.
        pooled = model.albert(input_ids=x, attention_mask=m).pooler_output
        other = torch.randperm(len(y), device=device)
        lam = float(rng.beta(c["mixup"], c["mixup"]))
        logits = model.classifier(
            model.dropout(lam * pooled + (1 - lam) * pooled[other])
        )
        return lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(
            logits, y[other]
        )

    embeddings = model.albert.embeddings.word_embeddings.weight
    batches = _batches(train_lengths, rng, c["batch"], c["boundaries"], c["bucket"])
    evals, started = [], time.time()
    model.train()
    for step in range(total):
        if time.time() > deadline:
            return dict(name=name, seed=seed, evals=evals, done=False, steps=step)
        rows = next(batches)
        x, m = tensors(train_ids, rows)
        y = torch.from_numpy(train_labels[rows]).to(device)
        optimizer.zero_grad(set_to_none=True)
        loss_of(x, m, y).backward()
        if c["fgm"]:
            # Adversarial step on the embedding matrix (FGM, Miyato et al. 2017).
            norm = torch.linalg.vector_norm(embeddings.grad)
            if norm > 0:
                shift = c["fgm"] * embeddings.grad / norm
                embeddings.data.add_(shift)
                loss_of(x, m, y).backward()
                embeddings.data.sub_(shift)
        if c["clip"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), c["clip"])
        optimizer.step()
        schedule.step()
        if (step + 1) % c["eval_every"] == 0 or step + 1 == total:
            evals.append((step + 1, accuracy()))
    return dict(
        name=name,
        seed=seed,
        evals=evals,
        done=True,
        steps=total,
        device=str(device),
        best=max(a for _, a in evals),
        final=evals[-1][1],
        seconds=round(time.time() - started, 1),
    )


def run(ids_path, sweep, seeds, seconds, workers, only):
    """Runs the sweep's variants, seed by seed, until `seconds` have passed."""
    import concurrent.futures
    import multiprocessing

    out_dir = os.environ.get("OUT", ".")
    start = time.time()
    deadline = start + seconds
    queue = [
        (ids_path, name, seed, changes, deadline)
        for seed in range(seeds)
        for name, changes in SWEEPS[sweep]
        if not only or name in only
    ]
    with (
        open(os.path.join(out_dir, "results.jsonl"), "a") as log,
        concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn")
        ) as pool,
    ):
        running = set()
        while queue or running:
            # New runs only while one can still finish (about 80% of the time).
            while (
                queue and len(running) < workers and time.time() < start + 0.8 * seconds
            ):
                running.add(pool.submit(train_one, *queue.pop(0)))
            if not running:
                break
            done, running = concurrent.futures.wait(
                running, timeout=5, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in done:
                try:
                    result = future.result()
                except Exception:
                    result = {"error": traceback.format_exc()[-2000:]}
                log.write(json.dumps(result) + "\n")
                log.flush()
                print(
                    json.dumps(
                        {k: result.get(k) for k in ("name", "seed", "best", "error")}
                    )
                )
    print(f"sweep done in {time.time() - start:.0f} s; {len(queue)} runs not started")


def summarize(paths, reference=None):
    """Prints mean accuracies per variant and paired differences to `reference`.

    `reference`: a variant name; by default the first one in the files.
    """
    runs = {}
    for path in paths:
        for line in open(path):
            r = json.loads(line)
            if r.get("done"):
                runs.setdefault(r["name"], {})[r["seed"]] = (r["best"], r["final"])
    reference = reference or next(iter(runs))
    print(f"{'variant':16} seeds  best   final  best - {reference} (same seeds)")
    for name, by_seed in sorted(runs.items(), key=lambda kv: -_mean(kv[1], 0)):
        paired = [
            by_seed[s][0] - runs[reference][s][0]
            for s in by_seed
            if s in runs[reference]
        ]
        diff = f"{100 * statistics.mean(paired):+.2f} ({len(paired)})" if paired else ""
        print(
            f"{name:16} {len(by_seed):5} {100 * _mean(by_seed, 0):6.2f} "
            f"{100 * _mean(by_seed, 1):6.2f}  {diff}"
        )


def _mean(by_seed, index):
    return statistics.mean(v[index] for v in by_seed.values())


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    preparer = commands.add_parser("prepare")
    preparer.add_argument("output")
    preparer.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    runner = commands.add_parser("run")
    runner.add_argument("ids")
    runner.add_argument("--sweep", choices=sorted(SWEEPS), default="knobs")
    runner.add_argument("--seeds", type=int, default=8)
    runner.add_argument("--seconds", type=float, default=470)
    runner.add_argument("--workers", type=int, default=12)
    runner.add_argument("--only", type=lambda s: s.split(","), default=None)
    summary = commands.add_parser("summarize")
    summary.add_argument("results", nargs="+")
    summary.add_argument("--reference", default=None)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.output, args.set)
    elif args.command == "run":
        run(args.ids, args.sweep, args.seeds, args.seconds, args.workers, args.only)
    else:
        summarize(args.results, args.reference)


if __name__ == "__main__":
    main()
