"""One helper for every `tf.distribute` strategy the trainer supports."""

import contextlib
import json
import logging
import os
import re
import signal
import threading

import tensorflow as tf

# No public API configures the coordination service (see `_bound_the_join`).
from tensorflow.python.eager import context

logger = logging.getLogger(__name__)


def split_cpu(num_devices):
    """Splits the CPU into `num_devices` logical devices (for MirroredStrategy).

    Must run before TensorFlow initialises its devices (before any op runs).

    Raises:
        ValueError: TensorFlow was already initialised with another split.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices
        )
    except RuntimeError:
        current = len(tf.config.list_logical_devices("CPU"))
        if current != num_devices:
            raise ValueError(
                f"config key 'strategy.num_cpu_devices': cannot split the CPU "
                f"into {num_devices} devices after TensorFlow started (it has "
                f"{current}); set it in a fresh process"
            ) from None


def make_strategy(strategy_config):
    """Creates the strategy named in the config.

    Args:
        strategy_config: `albert_tf.training.config.StrategyConfig`. `name`:
            `auto`, `default`, `one_device`, `mirrored` (all local GPUs, or
            `num_cpu_devices` logical CPUs), `multi_worker` (cluster from
            `TF_CONFIG`) or `tpu` (`tpu`: the TPU VM's name, or `local`; a
            remote `grpc://` TPU node lacks tf-text's ops for the input
            pipeline).

    Returns:
        A `tf.distribute.Strategy`.
    """
    name = strategy_config.name
    if name == "auto":
        if strategy_config.tpu:
            name = "tpu"
        elif "TF_CONFIG" in os.environ and _tf_config_workers() > 1:
            name = "multi_worker"
        elif (
            len(tf.config.list_physical_devices("GPU")) > 1
            or (strategy_config.num_cpu_devices or 1) > 1
        ):
            name = "mirrored"
        else:
            name = "default"
    if name in ("default", "one_device") and (strategy_config.num_cpu_devices or 1) > 1:
        logger.warning(
            "strategy.num_cpu_devices=%d is used by 'mirrored' (or 'auto') only; "
            "strategy '%s' runs one replica.",
            strategy_config.num_cpu_devices,
            name,
        )
    if name == "tpu":
        if (strategy_config.tpu or "").startswith("grpc://"):
            raise ValueError(
                f"config key 'strategy.tpu': {strategy_config.tpu!r} is a remote TPU "
                "node, whose host lacks tf-text's ops for the input pipeline; run "
                "`train` on a TPU VM with its name or `local`"
            )
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
                tpu=strategy_config.tpu or ""
            )
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, OSError, tf.errors.OpError) as e:  # URLError: OSError.
            message = getattr(e, "message", None) or str(e)
            what = (
                f"TPU {strategy_config.tpu!r}"
                if strategy_config.tpu
                else "a local TPU (no --tpu / strategy.tpu given)"
            )
            raise ValueError(
                f"Cannot use {what}: "
                f"{message.splitlines()[0] if message else type(e).__name__}"
            ) from None
        strategy = tf.distribute.TPUStrategy(resolver)
    elif name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "strategy 'multi_worker' needs the TF_CONFIG environment variable"
            )
        _tf_config_workers()  # Names a malformed TF_CONFIG.
        if strategy_config.jit_compile and not tf.config.list_physical_devices("GPU"):
            raise ValueError(
                "config key 'strategy.jit_compile': XLA has no cross-worker "
                "collectives on CPU, so a multi-worker step cannot compile "
                "without GPUs; set it to false"
            )
        # The constructor blocks until every task has connected, in one
        # TensorFlow call that holds the GIL: no Python code runs meanwhile,
        # so only a timeout can end the wait.
        timeout_s = strategy_config.join_timeout_s
        logger.info(
            "Joining a cluster of %d tasks as %s at %s (from TF_CONFIG); waiting "
            "up to %g s (strategy.join_timeout_s) until every task has started",
            _tf_config_workers(),
            _tf_config_task(),
            _tf_config_address(),
            timeout_s,
        )
        _bound_the_join(timeout_s)
        with _signals_during_the_join():
            try:
                strategy = tf.distribute.MultiWorkerMirroredStrategy()
            except tf.errors.DeadlineExceededError as e:
                raise ValueError(_join_timeout_message(e.message, timeout_s)) from None
            except tf.errors.OpError as e:  # Its gRPC server did not start.
                raise ValueError(
                    f"Cannot start this worker at {_tf_config_address()} (from "
                    f"TF_CONFIG; is the port in use?): {e.message.splitlines()[0]}"
                ) from None
    elif name == "mirrored":
        if strategy_config.num_cpu_devices and not tf.config.list_physical_devices(
            "GPU"
        ):
            if strategy_config.jit_compile:
                raise ValueError(
                    "config keys 'strategy.jit_compile' and 'strategy.num_cpu_devices'"
                    ": XLA cannot compile a mirrored step over logical CPU devices "
                    "(TensorFlow reads one replica's variables from another "
                    "device); use one of the two"
                )
            split_cpu(strategy_config.num_cpu_devices)
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(devices)
        else:
            strategy = tf.distribute.MirroredStrategy()
    elif name == "one_device":
        device = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"
        strategy = tf.distribute.OneDeviceStrategy(device)
    else:
        strategy = tf.distribute.get_strategy()
    logger.info(
        "Strategy %s with %d replica(s)",
        type(strategy).__name__,
        strategy.num_replicas_in_sync,
    )
    return strategy


def _bound_the_join(timeout_s):
    """Makes every task of `TF_CONFIG` give up after `timeout_s` if one of
    the others never starts.

    MultiWorkerMirroredStrategy sets up TensorFlow's coordination service
    only if nothing did yet, with no timeouts: each task then waits up to an
    hour to register, and the leader (which registers with itself at once)
    as long again for the others' devices. Registering through a barrier
    bounds both waits by `cluster_register_timeout_in_ms`.
    """
    config = _tf_config()
    cluster = config.get("cluster", {})
    jobs = [job for job in ("chief", "worker") if job in cluster]
    if config.get("task", {}).get("type") not in jobs:
        return  # As TensorFlow: other tasks (an evaluator) do not coordinate.
    ctx = context.context()
    ctx.configure_coordination_service(
        service_type="standalone",
        service_leader=f"/job:{_leader_job(cluster)}/replica:0/task:0",
        # 0 would mean TensorFlow's hour.
        cluster_register_timeout_in_ms=max(1, round(timeout_s * 1000)),
    )
    service = ctx.coordination_service  # The config the strategy will use.
    service.cluster_register_with_barrier = True
    for job in jobs:
        service.coordinated_job_list.add(name=job, num_tasks=len(cluster[job]))


def _leader_job(cluster):
    """The job whose task 0 coordinates the start (TensorFlow's choice)."""
    return "chief" if "chief" in cluster else "worker"


def _join_timeout_message(message, timeout_s):
    """Names the tasks that did not join, as far as TensorFlow tells."""
    cluster = _tf_config().get("cluster", {})
    # The leader's barrier lists the tasks that never registered; a task
    # that cannot reach the leader only learns that its request timed out.
    _, _, stragglers = message.partition("timed out task names:")
    stragglers = stragglers.strip().partition("\n\n")[0]  # Not gRPC's copy.
    missing = [
        f"{job} {index} at {_task_address(job, int(index))}"
        for job, index in re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", stragglers)
    ]
    leader = _leader_job(cluster)
    if missing:
        what = f"not started: {', '.join(missing)}"
    elif _tf_config_task() != f"{leader} 0":
        what = (
            f"no answer from {leader} 0 at {_task_address(leader, 0)}, which "
            "coordinates the start"
        )
    else:
        what = "some tasks did not start"
    return (
        f"Gave up joining the cluster in TF_CONFIG ({json.dumps(cluster)}) as "
        f"{_tf_config_task()} at {_tf_config_address()} after {timeout_s:g} s "
        f"(strategy.join_timeout_s): {what}. Start every task, correct "
        "TF_CONFIG, or raise strategy.join_timeout_s if tasks start slowly"
    )


@contextlib.contextmanager
def _signals_during_the_join():
    """Raises a Ctrl-C pressed during the join once it ends, and gives
    SIGTERM back to Python.

    Python runs the SIGINT handler as TensorFlow's call returns, while
    pybind11 builds its exception; a `KeyboardInterrupt` raised there
    becomes a `RuntimeError` ("MISMATCH of original and normalized active
    exception types"). Joining also installs TensorFlow's own SIGTERM
    handler, a preemption notice nothing here reads, which would ignore
    SIGTERM until training starts (and during the join: it cannot be taken
    back while TensorFlow holds the GIL).
    """
    main = threading.current_thread() is threading.main_thread()
    hold = main and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    sigterm = signal.getsignal(signal.SIGTERM)
    pressed = []
    if hold:
        signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
    try:
        yield
    finally:
        if hold:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if main and sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
        if pressed:
            raise KeyboardInterrupt


def _tf_config():
    try:
        config = json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None
    # The shape tf.distribute expects; anything else failed deep inside it.
    if not isinstance(config, dict):
        raise ValueError(
            f"TF_CONFIG must be a JSON object with 'cluster' and 'task'; got "
            f"{type(config).__name__} {os.environ['TF_CONFIG'][:80]}"
        )
    for key in ("cluster", "task"):
        if not isinstance(config.get(key, {}), dict):
            raise ValueError(
                f"TF_CONFIG '{key}' must be an object; got {config[key]!r:.80}"
            )
    for job, addresses in config.get("cluster", {}).items():
        if not isinstance(addresses, list | dict):
            raise ValueError(
                f"TF_CONFIG 'cluster.{job}' must be a list of 'host:port' "
                f"addresses; got {addresses!r:.80}"
            )
    return config


def _tf_config_workers():
    cluster = _tf_config().get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def _tf_config_task():
    task = _tf_config().get("task", {})
    return f"{task.get('type', 'an unnamed task')} {task.get('index', '')}".strip()


def _tf_config_address():
    task = _tf_config().get("task", {})
    return _task_address(task.get("type"), task.get("index"))


def _task_address(job, index):
    try:
        return _tf_config()["cluster"][job][index]
    except (KeyError, IndexError, TypeError):
        return "its task's address"


def _strategy_name(strategy):
    """The `tf.distribute` name users know (MultiWorkerMirroredStrategy's
    class is `CollectiveAllReduceStrategy`)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__


def is_tpu(strategy):
    return isinstance(strategy, tf.distribute.TPUStrategy)


def any_worker(strategy, flag):
    """Whether `flag` is true on any worker (a collective: every worker calls it)."""
    flags = strategy.gather(strategy.run(lambda: tf.constant([int(flag)])), axis=0)
    return bool(flags.numpy().any())


def is_chief(strategy):
    """Whether this process writes outputs (always true off multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (
        task_type == "worker"
        and task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


def mixed_precision_policy(strategy_config, strategy):
    """The Keras dtype policy name for the `mixed_precision` switch."""
    value = strategy_config.mixed_precision
    if value is False:
        return "float32"
    if isinstance(value, str):
        policy = value
    elif is_tpu(strategy) or not tf.config.list_physical_devices("GPU"):
        policy = "mixed_bfloat16"
    else:
        policy = "mixed_float16"
    if policy == "mixed_float16" and is_tpu(strategy):
        raise ValueError(
            "config key 'strategy.mixed_precision': TPUs compute in bfloat16; "
            "use mixed_bfloat16 (or true) instead of mixed_float16"
        )
    mirrored = (
        tf.distribute.MirroredStrategy,
        tf.distribute.MultiWorkerMirroredStrategy,
    )
    if (
        policy == "mixed_float16"
        and strategy_config.jit_compile
        and isinstance(strategy, mirrored)
    ):
        # XLA on GPUs turns merge_call off, and Keras's loss scaling then
        # fails to trace (keras#21366).
        chosen = "" if isinstance(value, str) else " (true chose it for GPUs)"
        raise ValueError(
            "config keys 'strategy.mixed_precision' and 'strategy.jit_compile': "
            f"mixed_float16's{chosen} loss scaling cannot run in an XLA-compiled "
            f"{_strategy_name(strategy)} step; set mixed_precision: mixed_bfloat16 "
            "(GPUs from Ampere on) or jit_compile: false"
        )
    return policy
