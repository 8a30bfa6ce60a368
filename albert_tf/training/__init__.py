"""Training at scale: configs, input pipelines, strategies, the trainer.

Example:
```python
import albert_tf.training

result = albert_tf.training.train("configs/tiny.yaml", output_dir="runs/tiny")
```
"""

from albert_tf.training.config import TrainConfig
from albert_tf.training.config import load_config
from albert_tf.training.schedule import WarmupLinearDecay
from albert_tf.training.trainer import Trainer
from albert_tf.training.trainer import TrainingTerminated
from albert_tf.training.trainer import train

__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainingTerminated",
    "WarmupLinearDecay",
    "load_config",
    "train",
]
