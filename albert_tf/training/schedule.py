"""ALBERT's fine-tuning optimizer: AdamW, linear warmup, then linear decay."""

import keras
import tensorflow as tf

from albert_tf.api_export import albert_tf_export


@albert_tf_export("albert_tf.training.WarmupLinearDecay")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak_learning_rate`, then linear decay to 0.

    The schedule of BERT/ALBERT fine-tuning (Lan et al., 2019,
    https://arxiv.org/abs/1909.11942, Appendix A.4: SST-2 uses peak 1e-5,
    20,935 steps, 1,256 warmup steps).

    Args:
        peak_learning_rate: float. The rate reached after warmup.
        total_steps: int. The step at which the rate reaches 0.
        warmup_steps: int. Steps of linear warmup.

    Example:
    ```python
    schedule = albert_tf.training.WarmupLinearDecay(1e-5, 20935, 1256)
    schedule(1256)  # 1e-5
    ```
    """

    def __init__(self, peak_learning_rate, total_steps, warmup_steps):
        self.peak_learning_rate = peak_learning_rate
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        peak = tf.constant(self.peak_learning_rate, tf.float32)
        warmup = tf.constant(max(self.warmup_steps, 1), tf.float32)
        decay = tf.constant(max(self.total_steps - self.warmup_steps, 1), tf.float32)
        # Step s trains with the rate for s + 1, so the first step is not 0.
        warm = peak * (step + 1.0) / warmup
        decayed = peak * tf.maximum(0.0, (self.total_steps - step) / decay)
        return tf.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
        }


def warmup_steps_for(optimizer_config, total_steps):
    if optimizer_config.warmup_steps is not None:
        return optimizer_config.warmup_steps
    return int(round(optimizer_config.warmup_ratio * total_steps))


class _SummedGradientsAdamW(keras.optimizers.AdamW):
    """AdamW for gradients its caller already summed over replicas.

    Keras all-reduces gradients inside `apply`; a caller that all-reduced them
    itself (to clip the sum) would otherwise send every gradient over the
    interconnect twice per step.
    """

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)


def make_optimizer(
    optimizer_config, total_steps, loss_scale=False, summed_gradients=False
):
    """Builds AdamW with the warmup/decay schedule from the config.

    Gradient clipping is done by the trainer after gradients are summed over
    replicas (Keras clips per replica), so it is not set here. LayerNorm and
    bias weights get no weight decay, as in BERT/ALBERT.

    Args:
        optimizer_config: `albert_tf.training.config.OptimizerConfig`.
        total_steps: int. Length of the run.
        loss_scale: bool. Wrap in `LossScaleOptimizer` (for `mixed_float16`).
        summed_gradients: bool. The caller passes gradients already summed
            over the strategy's replicas, so the optimizer skips its own
            all-reduce. Leave False for `model.fit`.

    Returns:
        A `keras.optimizers.Optimizer`.
    """
    schedule = WarmupLinearDecay(
        optimizer_config.learning_rate,
        total_steps,
        warmup_steps_for(optimizer_config, total_steps),
    )
    optimizer_class = (
        _SummedGradientsAdamW if summed_gradients else keras.optimizers.AdamW
    )
    optimizer = optimizer_class(
        learning_rate=schedule,
        weight_decay=optimizer_config.weight_decay,
        beta_1=optimizer_config.beta_1,
        beta_2=optimizer_config.beta_2,
        epsilon=optimizer_config.epsilon,
        name="adamw",
    )
    optimizer.exclude_from_weight_decay(
        var_names=["gamma", "beta", "bias", "layer_norm", "layernorm"]
    )
    if loss_scale:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
