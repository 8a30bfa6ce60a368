"""`albert-tf convert SOURCE OUTPUT_PRESET_DIR`: any checkpoint -> our preset.

SOURCE is a built-in id, `hf://owner/repo`, `kaggle://...`, a local
albert_tf, keras-hub, Hugging Face or original Google ALBERT directory, or a
trained `.keras` model (to publish it as a preset). The
preset is built in a temporary folder beside OUTPUT and renamed at the end,
so a failed conversion leaves nothing behind.
"""

import hashlib
import os
import shutil

from albert_tf.atomic_file import owned_temp_folder
from albert_tf.atomic_file import remove_dead_writers_folders


def weights_checksum(model):
    """SHA-256 over every variable's path, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for variable in sorted(model.weights, key=lambda v: v.path):
        value = variable.numpy()
        digest.update(f"{variable.path}:{value.dtype}:{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def convert(source, output_dir, output_format="albert_tf", vocabulary=None):
    """Converts `source` into an albert_tf preset directory `output_dir`.

    A head (HF `AlbertForSequenceClassification`, keras-hub/albert_tf
    `task.json`, TF1 `output_weights`) gives a classifier preset; otherwise a
    backbone + preprocessor preset.

    Args:
        source: str. Any preset handle or checkpoint directory.
        output_dir: str. Must not exist or be empty.
        output_format: str. `"albert_tf"`, or `"keras_hub"` to write
            keras-hub's class names in the JSON configs (same weight files).
        vocabulary: str. A SentencePiece model replacing the source's (for
            fine-tuned checkpoints saved without their `spiece.model`).

    Returns:
        The loaded model (`AlbertTextClassifier` or `AlbertBackbone`).
    """
    from albert_tf.models import AlbertBackbone
    from albert_tf.models import AlbertTextClassifier
    from albert_tf.models import AlbertTextClassifierPreprocessor
    from albert_tf.models import AlbertTokenizer
    from albert_tf.presets.handles import resolve_preset
    from albert_tf.presets.preset_loaders import loader_for_directory
    from albert_tf.presets.preset_saver import convert_configs_to_keras_hub

    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise FileExistsError(f"Output '{output_dir}' is a file, not a directory.")
    if os.path.exists(output_dir) and os.listdir(output_dir):
        raise FileExistsError(
            f"Output directory '{output_dir}' exists and is not empty."
        )
    # The temp folder first: an unwritable output fails before a long load.
    parent = os.path.dirname(output_dir)
    created = parent  # The outermost folder made here, removed on failure.
    while not os.path.exists(os.path.dirname(created)):
        created = os.path.dirname(created)
    created = None if os.path.exists(created) else created
    try:
        os.makedirs(parent, exist_ok=True)
        remove_dead_writers_folders(parent)  # Killed conversions' leftovers.
        tmp = owned_temp_folder(parent, "convert")
    except OSError as e:
        raise OSError(
            e.errno, f"Cannot write the preset to '{output_dir}': {e.strerror}"
        ) from None
    try:
        preprocessor = None
        if os.path.isfile(source) and source.endswith(".keras"):
            from albert_tf.models import load_classifier

            if vocabulary is not None:
                raise ValueError("A .keras model carries its vocabulary.")
            model = load_classifier(source)  # A trained model, to publish.
        else:
            loader = loader_for_directory(resolve_preset(source))
            directory = loader.directory
            tokenizer = None
            if vocabulary is not None:
                tokenizer = AlbertTokenizer.from_preset(directory, proto=vocabulary)
            preprocessor = AlbertTextClassifierPreprocessor.from_preset(
                directory, **({"tokenizer": tokenizer} if tokenizer else {})
            )
            if loader.task_config():
                model = AlbertTextClassifier.from_preset(
                    directory, preprocessor=preprocessor
                )
                preprocessor = None  # Saved with the classifier.
            else:
                model = AlbertBackbone.from_preset(directory)
        model.save_to_preset(tmp)
        if preprocessor is not None:
            preprocessor.save_to_preset(tmp)
        if output_format == "keras_hub":
            convert_configs_to_keras_hub(tmp)
        if os.path.isdir(output_dir):
            os.rmdir(output_dir)  # Empty, checked above.
        os.replace(tmp, output_dir)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
            if created is not None:  # Failed: the folders made for it go too.
                shutil.rmtree(created, ignore_errors=True)
    return model


def run_convert(args):
    model = convert(args.source, args.output, args.format, args.vocabulary)
    backbone = getattr(model, "backbone", model)
    # The hyperparameters to check against the source's config, on one line
    # (Keras's name, trainable and dtype policy say nothing here).
    config = backbone.get_config()
    for key in ("name", "trainable", "dtype"):
        config.pop(key, None)
    print("backbone: " + ", ".join(f"{k}={v}" for k, v in config.items()))
    if hasattr(model, "num_classes"):
        print(f"classifier: {model.num_classes} classes, labels {model.label_names}")
    print(f"parameters: {model.count_params():,}")
    print(f"weights sha256: {weights_checksum(model)}")
    print(f"wrote preset: {os.path.abspath(args.output)}")
    return 0


def register(subparsers):
    parser = subparsers.add_parser(
        "convert",
        help="convert a checkpoint (HF, keras-hub, Google TF1, hub) to a preset",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "source",
        help="built-in id, hf://owner/repo, kaggle://owner/model/framework/variation"
        "[/version], a local checkpoint/preset directory, or a trained .keras model",
    )
    parser.add_argument("output", help="the albert_tf preset directory to write")
    parser.add_argument(
        "--format",
        choices=("albert_tf", "keras_hub"),
        default="albert_tf",
        help="class names in the JSON configs: albert_tf's (default) or "
        "keras-hub's, for keras_hub.models.*.from_preset (which does not "
        "lowercase: feed it lowercased text)",
    )
    parser.add_argument(
        "--vocabulary",
        help="SentencePiece model to use instead of the source's, e.g. "
        "albert-base-v2's spiece.model for a fine-tune saved without it",
    )
    parser.set_defaults(func=run_convert)
