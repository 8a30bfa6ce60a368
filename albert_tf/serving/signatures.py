"""Signature names and tensor keys shared by the exporter, the client and the server.

One place for every name that crosses the wire, so an export and its clients
cannot drift apart.
"""

# === Signatures ===
PREDICT = "serving_default"  # text [batch] -> outputs.
PREDICT_PAIR = "predict_pair"  # text_a, text_b [batch] -> outputs.
CLASSIFY = "classify"  # serialized tf.Examples -> classes, scores.
PREDICT_IDS = "predict_ids"  # token_ids, segment_ids, padding_mask -> outputs.
SIGNATURES = (PREDICT, PREDICT_PAIR, CLASSIFY, PREDICT_IDS)

# TF Serving dispatches Classify only to signatures with this method name.
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

# === Input keys ===
TEXT = "text"
TEXT_A = "text_a"
TEXT_B = "text_b"
CLASSIFY_INPUTS = "inputs"  # TF Serving's fixed key for serialized examples.
EXAMPLE_TEXT = "text"  # tf.Example bytes feature of the first text.
EXAMPLE_TEXT_PAIR = "text_pair"  # Optional tf.Example bytes feature, second text.
TOKEN_IDS = "token_ids"
SEGMENT_IDS = "segment_ids"
PADDING_MASK = "padding_mask"

# === Output keys ===
LOGITS = "logits"
PROBABILITIES = "probabilities"
CLASS_ID = "class_id"
LABEL = "label"
PREDICT_OUTPUTS = (LOGITS, PROBABILITIES, CLASS_ID, LABEL)
CLASSES = "classes"  # TF Serving's Classify output keys.
SCORES = "scores"

# === Files ===
WARMUP_FILE = "tf_serving_warmup_requests"  # Under assets.extra/.
LABELS_FILE = "labels.txt"  # Under assets.extra/, one name per class.
# Under assets.extra/: the packed length and tokenizer switches, which the
# graph holds only as constants; `albert-tf tflite` reads them back.
PREPROCESSING_FILE = "albert_tf_preprocessing.json"
MODELS_CONFIG_FILE = "models.config"  # Beside the version folders.
BATCHING_FILE = "batching_parameters.txt"  # Beside the version folders.
