"""ALBERT preprocessing for text classification."""

from albert_tf.api_export import albert_tf_export
from albert_tf.models.albert.albert_backbone import AlbertBackbone
from albert_tf.models.albert.albert_tokenizer import AlbertTokenizer
from albert_tf.models.text_classifier_preprocessor import TextClassifierPreprocessor


@albert_tf_export("albert_tf.models.AlbertTextClassifierPreprocessor")
class AlbertTextClassifierPreprocessor(TextClassifierPreprocessor):
    """ALBERT preprocessing for classification: raw strings to model inputs.

    Tokenizes with `AlbertTokenizer` (original ALBERT text preprocessing,
    in-graph SentencePiece), then packs one text as `[CLS] a [SEP]` or a pair
    as `[CLS] a [SEP] b [SEP]`, with `segment_ids` 0 for the first text and 1
    for the second, truncating to `sequence_length`. Runs in `tf.data.map`,
    batched or unbatched, and inside exported SavedModels.

    Args:
        tokenizer: `albert_tf.models.AlbertTokenizer`.
        sequence_length: int. Length of the packed inputs.
        truncate: str. `"round_robin"` (default) or `"waterfall"`.

    Example:
    ```python
    tokenizer = albert_tf.models.AlbertTokenizer(proto="spiece.model")
    preprocessor = albert_tf.models.AlbertTextClassifierPreprocessor(
        tokenizer, sequence_length=128
    )
    preprocessor(["The quick brown fox jumped."])
    preprocessor((["The fox."], ["The dog."]))  # A pair.
    ds = tf.data.Dataset.from_tensor_slices((["A.", "B."], [0, 1]))
    ds = ds.map(preprocessor).batch(2)
    ```
    """

    backbone_cls = AlbertBackbone
    tokenizer_cls = AlbertTokenizer
