"""Resolving a preset handle to a local directory, downloading if needed.

Four forms: a built-in id (downloaded from Kaggle with `kagglehub`),
`kaggle://owner/model/framework/variation[/version]`, `hf://owner/repo`
(downloaded with `huggingface_hub`, which honours `HF_ENDPOINT`,
`HF_HUB_OFFLINE` and its cache) and a local directory. The hub libraries
show download progress and keep their own caches.
"""

import functools
import logging
import os
import re

from albert_tf.presets import convert_google_tf1
from albert_tf.presets import convert_huggingface
from albert_tf.presets.builtin_presets import BUILTIN_PRESETS
from albert_tf.presets.preset_loaders import read_json

logger = logging.getLogger(__name__)

KAGGLE_SCHEME = "kaggle://"
HF_SCHEME = "hf://"

# Besides config.json, the files an albert_tf or keras-hub preset repository
# may hold, and those of a transformers checkpoint (its weights are
# `convert_huggingface.WEIGHT_FILES`).
PRESET_FILES = (
    "tokenizer.json",
    "preprocessor.json",
    "task.json",
    "metadata.json",
    "model.weights.h5",
    "task.weights.h5",
    "assets/tokenizer/vocabulary.spm",
)
TRANSFORMERS_FILES = ("tokenizer_config.json", "spiece.model")
_NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _split_handle(handle, scheme, min_parts, max_parts, form):
    """Splits `scheme://a/b/...`, refusing anything path-like or unsafe."""
    parts = handle[len(scheme) :].split("/")
    if not min_parts <= len(parts) <= max_parts or not all(
        _NAME_PART.match(part) and ".." not in part for part in parts
    ):
        raise ValueError(
            f"Invalid preset handle '{handle}': expected {form}, each part made "
            "of letters, digits, '.', '_' or '-' (no '..', no empty or "
            "absolute paths)."
        )
    return parts


def _kaggle_download(handle, what):
    try:
        import kagglehub
        from kagglehub.config import get_cache_folder
    except ImportError:
        raise ValueError(
            f"Loading {what} needs `kagglehub`: pip install 'albert-tf[hub]' "
            "(or pip install kagglehub)."
        ) from None
    kaggle_handle = handle[len(KAGGLE_SCHEME) :]
    try:
        return kagglehub.model_download(kaggle_handle)
    except Exception as e:  # kagglehub raises requests/HTTP/its own errors.
        cached = _newest_cached_version(get_cache_folder(), kaggle_handle)
        if cached is not None:
            # An unversioned handle needs the API for "latest", even when cached.
            logger.warning(
                "Could not reach Kaggle to resolve the latest version of '%s' "
                "(%s); loading version %s from the kagglehub cache.",
                handle,
                type(e).__name__,
                cached,
            )
            try:
                return kagglehub.model_download(f"{kaggle_handle}/{cached}")
            except Exception:  # noqa: BLE001 - then the error below says it all.
                pass
        raise ValueError(
            f"Could not download {what} from '{handle}' with kagglehub "
            f"({type(e).__name__}: {e}). Nothing usable was found in the "
            f"kagglehub cache ({get_cache_folder()}, set KAGGLEHUB_CACHE to "
            "change it). If you are offline, download the preset elsewhere "
            "and pass its local directory instead, e.g. "
            "`AlbertTextClassifier.from_preset('/path/to/preset_dir')`."
        ) from None


def _newest_cached_version(cache_folder, kaggle_handle):
    """The newest complete version of an unversioned handle in kagglehub's cache."""
    parts = kaggle_handle.split("/")
    if len(parts) != 4:  # Versioned: kagglehub already looked in its cache.
        return None
    variation = os.path.join(cache_folder, "models", *parts)
    try:
        names = os.listdir(variation)
    except OSError:
        return None
    versions = [
        int(name[: -len(".complete")])
        for name in names
        if name.endswith(".complete") and name[: -len(".complete")].isdigit()
    ]
    versions = [v for v in versions if os.path.isdir(os.path.join(variation, str(v)))]
    return max(versions, default=None)


def _hf_download(handle):
    try:
        import huggingface_hub
        from huggingface_hub.file_download import _CACHED_NO_EXIST
        from huggingface_hub.utils import EntryNotFoundError
        from huggingface_hub.utils import LocalEntryNotFoundError
    except ImportError:
        raise ValueError(
            f"Loading '{handle}' needs `huggingface_hub`: pip install "
            "'albert-tf[hub]' (or pip install huggingface-hub)."
        ) from None
    repo_id = "/".join(_split_handle(handle, HF_SCHEME, 2, 2, "hf://owner/repo"))
    endpoint = huggingface_hub.constants.ENDPOINT
    cache = huggingface_hub.constants.HF_HUB_CACHE

    def download_error(e):
        return ValueError(
            f"Could not download '{handle}' from {endpoint} "
            f"({type(e).__name__}: {e}). Hugging Face cache: {cache} "
            "(HF_HUB_OFFLINE=1 uses only the cache). You can also pass a local "
            "directory."
        )

    # hf_hub_download retries an unreachable Hub for ~20 s per file before it
    # falls back to the cache; one quick request without retries tells
    # whether to go straight to the cache instead.
    reachable = _hub_reachable(huggingface_hub, repo_id)
    download = functools.partial(
        huggingface_hub.hf_hub_download, repo_id, local_files_only=not reachable
    )
    # config.json first, alone: every repo has it, so when it fails (no such
    # repo, not cached) the optional files are not each tried.
    try:
        config_path = download("config.json")
    except LocalEntryNotFoundError as e:  # Hub unreachable, not in the cache.
        if not reachable:
            raise ValueError(
                f"Could not download '{handle}': {endpoint} cannot be reached "
                f"and the repo is not in the Hugging Face cache {cache}. "
                "Download it once online, or pass a local directory."
            ) from None
        raise download_error(e) from None
    except EntryNotFoundError:
        raise FileNotFoundError(
            f"'{handle}' has no config.json at {endpoint} (or, with "
            f"HF_HUB_OFFLINE=1, in the cache {cache}). You can also pass a "
            "local directory."
        ) from None
    except Exception as e:  # Network, auth, missing repo.
        raise download_error(e) from None

    def require_absent(filename, error):
        """Passes if the repo lacks `filename`; raises when that is unknown
        (not fetched: a network error, or a cache holding part of the repo),
        since taking a fine-tuned head for "none" would load a backbone."""
        if huggingface_hub.try_to_load_from_cache(repo_id, filename) is (
            _CACHED_NO_EXIST
        ):
            return  # Cached as missing when it was last looked for.
        if reachable:
            raise download_error(error) from None
        raise ValueError(
            f"'{handle}' is only partly in the Hugging Face cache {cache}: "
            f"{filename} was never looked for there, and {endpoint} cannot be "
            "reached. Load it once online (or with all its files), or pass a "
            "local directory."
        ) from None

    def fetch(filename):
        """The local path of `filename`, or None if the repo lacks it."""
        try:
            return download(filename)
        except LocalEntryNotFoundError as e:  # Not fetched, not cached.
            require_absent(filename, e)
        except EntryNotFoundError:  # The repo lacks it (a 404).
            return None
        except Exception as e:
            raise download_error(e) from None

    if "model_type" not in read_json(config_path):
        for filename in PRESET_FILES:
            fetch(filename)
    else:
        # A transformers checkpoint. Preset files are not looked for: a cache
        # filled by transformers or snapshot_download never records them as
        # missing, so offline they would fail as "partly cached".
        for filename in TRANSFORMERS_FILES:
            fetch(filename)
        # Its first weights file in the order transformers prefers, with the
        # shards when it is an index.
        for filename in convert_huggingface.WEIGHT_FILES:
            path = fetch(filename)
            if path is None:
                continue
            if filename.endswith(convert_huggingface.INDEX_SUFFIX):
                for shard in convert_huggingface.shard_names(path):
                    _split_handle(
                        HF_SCHEME + shard, HF_SCHEME, 1, 1, "a shard file name"
                    )
                    download(shard)
            break
    # hf_hub_download puts every file of one revision in one snapshot folder.
    return os.path.dirname(config_path)


def _hub_reachable(huggingface_hub, repo_id):
    """False when the Hub cannot be reached at all (offline, HF_HUB_OFFLINE=1)."""
    import requests

    try:
        huggingface_hub.HfApi().model_info(repo_id, timeout=10)
    # Builtin ConnectionError: huggingface_hub's OfflineModeIsEnabled.
    except (requests.ConnectionError, requests.Timeout, ConnectionError):
        return False
    except Exception:  # Reachable, but e.g. no such repo: downloads say so.
        pass
    return True


def resolve_preset(preset):
    """Returns the local directory of a preset, downloading it if needed.

    Args:
        preset: str or path-like. A built-in id (see `AlbertBackbone.presets`),
            `kaggle://owner/model/framework/variation[/version]`,
            `hf://owner/repo`, or a local directory.

    Returns:
        str. A local directory.
    """
    preset = os.fspath(preset)
    if preset.startswith(KAGGLE_SCHEME):
        _split_handle(
            preset,
            KAGGLE_SCHEME,
            4,
            5,
            "kaggle://owner/model/framework/variation[/version]",
        )
        return _kaggle_download(preset, f"'{preset}'")
    if preset.startswith(HF_SCHEME):
        return _hf_download(preset)
    if os.path.isdir(preset):
        return preset
    if preset in BUILTIN_PRESETS:
        handle = BUILTIN_PRESETS[preset]["kaggle_handle"]
        logger.info("Downloading built-in preset '%s' from %s", preset, handle)
        return _kaggle_download(handle, f"built-in preset '{preset}'")
    if os.path.isfile(preset):
        raise FileNotFoundError(
            f"Preset '{preset}' is a file, not a folder: {_file_hint(preset)}."
        )
    raise FileNotFoundError(
        f"Preset '{preset}' is not a local directory, a built-in id "
        f"({', '.join(BUILTIN_PRESETS)}), an hf://owner/repo or a "
        "kaggle://owner/model/framework/variation[/version] handle."
    )


def _file_hint(path):
    """What to pass instead of `path`, a file given where a preset goes."""
    import tensorflow as tf

    folder = os.path.dirname(path) or "."
    if path.endswith(".keras"):
        return "load it with `albert_tf.models.load_classifier`"
    if path.endswith(".tflite"):
        return (
            "it is a TFLite build; run it with `albert_tf.tflite.TFLiteClassifier` "
            "(or in an app)"
        )
    if os.path.isfile(os.path.join(folder, convert_google_tf1.HUB_MODULE_FILE)):
        return (
            f"it belongs to the TF-Hub module '{folder}': put the model's "
            f"{convert_google_tf1.CONFIG_FILE} beside it and pass the folder"
        )
    if tf.saved_model.contains_saved_model(folder):
        return (
            f"it belongs to the SavedModel '{folder}' (an `albert-tf export` "
            "version folder?); serve that, or load the `.keras` model it was "
            "exported from"
        )
    checkpoint_files = ("config.json", "albert_config.json")
    if any(os.path.isfile(os.path.join(folder, n)) for n in checkpoint_files):
        return f"pass the folder that holds it, '{folder}'"
    return "pass a `.keras` model or a preset folder"
