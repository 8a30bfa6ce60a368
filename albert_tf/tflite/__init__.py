"""Quantized TFLite builds of ALBERT classifiers, tokenizer inside.

Example:
```python
from albert_tf import tflite
tflite.build_tflite(classifier, "sst2.tflite", tflite.dynamic(), input_kind="text")
model = tflite.TFLiteClassifier("sst2.tflite")
model.predict(["A warm, funny film."])["probabilities"]
```
"""

from albert_tf.tflite.build import build_tflite
from albert_tf.tflite.converter import convert
from albert_tf.tflite.converter import convert_tokenizer
from albert_tf.tflite.quantization_config import QuantizationConfig
from albert_tf.tflite.quantization_config import dynamic
from albert_tf.tflite.quantization_config import float16
from albert_tf.tflite.quantization_config import int8
from albert_tf.tflite.quantization_config import none
from albert_tf.tflite.tflite_classifier import TFLiteClassifier
from albert_tf.tflite.verification import verify
