"""Training at scale: configs, input pipelines, strategies, the trainer.

Example:
```python
import albert_tf.training

result = albert_tf.training.train("configs/tiny.yaml", output_dir="runs/tiny")
report = albert_tf.training.evaluate("runs/tiny/model.keras", texts, labels)
albert_tf.training.predict("runs/tiny/model.keras", ["A warm, funny film."])
```
"""

from albert_tf.training.config import TrainConfig
from albert_tf.training.config import load_config
from albert_tf.training.evaluation import evaluate
from albert_tf.training.evaluation import predict
from albert_tf.training.schedule import WarmupLinearDecay
from albert_tf.training.stop_signals import TrainingTerminated
from albert_tf.training.trainer import Trainer
from albert_tf.training.trainer import train

__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainingTerminated",
    "WarmupLinearDecay",
    "evaluate",
    "load_config",
    "predict",
    "train",
]
