"""Strategies and resuming, each in fresh processes.

Logical CPU devices must be configured before TensorFlow starts, and
multi-worker training needs one process per worker, so these tests run the
trainer in subprocesses (bounded by timeouts, always killed at the end).
"""

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import filelock
import numpy as np
import pytest

from albert_tf.models import load_classifier
from albert_tf.training import train
from tests.training_helpers import EXACT_STEP_OVERRIDES
from tests.training_helpers import REPO
from tests.training_helpers import TINY_CONFIG
from tests.training_helpers import default_ctrl_c
from tests.training_helpers import set_args
from tests.training_helpers import subprocess_env
from tests.training_helpers import tiny_overrides
from tests.training_helpers import write_tiny_tsv

pytestmark = pytest.mark.slow

MIRRORED_RUNS = """
import json, sys
from albert_tf.training import Trainer, load_config
from albert_tf.training.strategy import split_cpu
split_cpu(2)  # Before TensorFlow starts: CPU:0 and CPU:1.
overrides = json.loads(sys.argv[1])["exact"]
import keras, numpy as np
from albert_tf.training.model_factory import build_classifier
config = load_config(sys.argv[2], overrides=overrides)
keras.utils.set_random_seed(config.seed)  # As the trainer does.
initial = build_classifier(config.model, ["negative", "positive"]).get_weights()[0]
np.save(sys.argv[3] + "/initial.npy", initial)
# Both precisions in one process: a TensorFlow start less.
for precision in (False, "mixed_float16"):
    for name, extra in [
        ("one_device", {"strategy.name": "default"}),
        ("mirrored", {"strategy.name": "mirrored", "strategy.num_cpu_devices": 2}),
    ]:
        extra["strategy.mixed_precision"] = precision
        config = load_config(sys.argv[2], overrides={**overrides, **extra})
        output = f"{sys.argv[3]}/{precision}/{name}"
        result = Trainer(config, output_dir=output).train()
        history = json.dumps(result["history"]["train"])
        print(precision, name, result["num_replicas"], history)

# Dropout on 2 mirrored CPUs, in the same process: a TensorFlow start less.
import os, shutil
import tensorflow as tf
from albert_tf.training.trainer import _random_states, _seed_replicas_apart
keras.mixed_precision.set_global_policy("float32")
config = load_config(sys.argv[2], overrides=json.loads(sys.argv[1])["dropout"])

# The two replicas' masks for the same input, after the trainer's seeding.
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = build_classifier(config.model, ["negative", "positive"])
_seed_replicas_apart(strategy, _random_states(model))
masks = tf.function(
    lambda: strategy.run(lambda: model.output_dropout(tf.ones((4, 8)), training=True))
)()
first, second = strategy.experimental_local_results(masks)
print("masks_differ", bool(tf.reduce_any(first != second)))

# A run that crashed after its step-4 checkpoint, rerun, against a straight run.
output = sys.argv[3] + "/dropout"
trainer = Trainer(config, output_dir=output)
trainer.train()
states = _random_states(trainer.model)
print("trainer_replicas_apart", all(
    len({tuple(copy.numpy()) for copy in state.values}) == 2 for state in states
) and len(states) > 0)
from albert_tf.models import load_classifier
straight = load_classifier(output + "/model.keras").get_weights()
shutil.rmtree(output + "/checkpoints/ckpt-00000008")
os.remove(output + "/model.keras")
result = Trainer(config, output_dir=output).train()
print("resumed_from", result["resumed_from_step"])
resumed = load_classifier(output + "/model.keras").get_weights()
print("max_diff", max(float(np.abs(a - b).max()) for a, b in zip(straight, resumed)))
"""


def _run_script(script, overrides, output):
    """Runs `script` with (overrides JSON, tiny config, output); its stdout."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            json.dumps(overrides),
            str(TINY_CONFIG),
            str(output),
        ],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _weights(path):
    return load_classifier(path).get_weights()


@pytest.fixture(scope="module")
def mirrored_runs(tmp_path_factory, tiny_proto):
    """One device and 2 mirrored CPUs, in float32 and mixed_float16; then
    dropout on 2 mirrored CPUs, straight and resumed (MIRRORED_RUNS)."""
    tmp = tmp_path_factory.mktemp("mirrored")
    dropout = {
        "training.steps": 8,
        "training.checkpoint_every_steps": 4,
        "data.dev": None,
        "model.dropout": 0.3,
        "model.backbone.dropout": 0.3,
        "strategy.name": "mirrored",
        "strategy.num_cpu_devices": 2,
        "strategy.static_shapes": True,
    }
    overrides = {
        "exact": tiny_overrides(tmp, tiny_proto, **EXACT_STEP_OVERRIDES),
        "dropout": tiny_overrides(tmp, tiny_proto, **dropout),
    }
    return tmp, _run_script(MIRRORED_RUNS, overrides, tmp)


@pytest.mark.parametrize("precision", [False, "mixed_float16"])
def test_mirrored_two_cpus_matches_one_device(mirrored_runs, precision):
    """2 replicas x 2 rows == 1 device x 4 rows: same losses and weights.

    Adam is nearly blind to the gradient scale, so epsilon=1 makes updates
    proportional to the gradient, and clipnorm=0.01 keeps clipping active:
    summing replicas twice or clipping per replica would both show.
    Tolerance: rtol 1e-4 / atol 1e-6 on weights after 6 steps; the replicas'
    gradient sum is reduced in a different order than one device's.
    `mixed_float16` takes the LossScaleOptimizer's merge_call path.
    """
    tmp_path, stdout = mirrored_runs
    lines = dict(
        line.split(" ", 2)[1:]
        for line in stdout.splitlines()
        if line.startswith(f"{precision} ")
    )
    replicas_one, history_one = lines["one_device"].split(" ", 1)
    replicas_two, history_two = lines["mirrored"].split(" ", 1)
    assert (replicas_one, replicas_two) == ("1", "2")
    losses_one = [e["loss"] for e in json.loads(history_one)]
    losses_two = [e["loss"] for e in json.loads(history_two)]
    np.testing.assert_allclose(losses_two, losses_one, rtol=1e-5)
    one = _weights(tmp_path / str(precision) / "one_device" / "model.keras")
    two = _weights(tmp_path / str(precision) / "mirrored" / "model.keras")
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    # Training moved the weights, so the comparison is not vacuous.
    initial = np.load(tmp_path / "initial.npy")
    assert not np.allclose(initial, one[0], rtol=1e-4, atol=1e-6)


def test_mirrored_replicas_draw_their_own_dropout_and_resume_exactly(mirrored_runs):
    """Each replica gets its own masks, and a resumed run draws the same ones.

    Keras starts every replica's seed state equal (same masks on every
    replica); checkpoints keep replica 0's, so the offsets must be applied
    again after a restore or the resumed run would drift.
    """
    _, stdout = mirrored_runs
    out = dict(line.split(" ", 1) for line in stdout.splitlines() if " " in line)
    assert out["masks_differ"] == "True"
    assert out["trainer_replicas_apart"] == "True"
    assert out["resumed_from"] == "4"
    assert float(out["max_diff"]) <= 1e-6


WORKER = """
import json, logging, os, sys
logging.basicConfig(level=logging.INFO)
import numpy as np
from albert_tf.training import Trainer, load_config
config = load_config(sys.argv[1], overrides=json.loads(sys.argv[2]))
trainer = Trainer(config, output_dir=sys.argv[3])
result = trainer.train()
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
weights = trainer.model.get_weights()
np.savez(os.path.join(sys.argv[3], f"weights-{index}.npz"), *weights)
print("replicas", result["num_replicas"], "steps", result["steps"])
from albert_tf.training.trainer import _random_states
states = _random_states(trainer.model)
print("seeds", json.dumps([int(s.values[0].numpy()[0]) for s in states]))
"""


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run_workers(overrides, outputs):
    """Runs one WORKER process per entry; returns `(code, stdout, stderr)`s."""
    workers = [f"127.0.0.1:{port}" for port in _free_ports(len(outputs))]
    procs = []
    try:
        for index, (extra, output) in enumerate(zip(overrides, outputs, strict=True)):
            env = subprocess_env()
            env["TF_CONFIG"] = json.dumps(
                {
                    "cluster": {"worker": workers},
                    "task": {"type": "worker", "index": index},
                }
            )
            command = [sys.executable, "-c", WORKER, str(TINY_CONFIG)]
            procs.append(
                subprocess.Popen(
                    [*command, json.dumps(extra), str(output)],
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        results = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, *result) for p, result in zip(procs, results, strict=True)]


def test_multi_worker_two_processes_end_with_identical_weights(tmp_path, tiny_proto):
    overrides = tiny_overrides(
        tmp_path,
        tiny_proto,
        **{
            "training.steps": 4,
            "data.dev": None,
            "strategy.name": "multi_worker",
            "training.checkpoint_every_steps": 2,
            "model.dropout": 0.1,
        },
    )
    output = tmp_path / "run"
    # Machines mount the same data elsewhere: paths may differ, contents not.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = shutil.copy(overrides["data.train"], elsewhere / "train.tsv")
    mounted = {**overrides, "data.train": str(moved)}
    results = _run_workers([overrides, mounted], [output, output])
    for index, (code, out, err) in enumerate(results):
        assert code == 0, err[-3000:]
        assert "replicas 2 steps 4" in out
        # Says what it waits for: the constructor blocks until all have started.
        assert f"Joining a cluster of 2 tasks as worker {index} at 127.0.0.1:" in err
    chief = np.load(output / "weights-0.npz")
    worker = np.load(output / "weights-1.npz")
    assert len(chief.files) == len(worker.files) > 0
    for key in chief.files:
        np.testing.assert_array_equal(chief[key], worker[key])
    # Each worker's replica draws its own dropout masks (global replica ids).
    seeds = [
        json.loads(line.split(" ", 1)[1])
        for _, out, _ in results
        for line in out.splitlines()
        if line.startswith("seeds ")
    ]
    assert len(seeds) == 2 and len(seeds[0]) > 0
    assert [b - a for a, b in zip(*seeds, strict=True)] == [1_000_003] * len(seeds[0])
    # Only the chief wrote outputs; its checkpoints are complete.
    assert sorted(os.listdir(output / "checkpoints")) == [
        "ckpt-00000002",
        "ckpt-00000004",
    ]
    assert (output / "model.keras").is_file()


def test_multi_worker_early_stopping_stops_every_worker_at_one_step(
    tmp_path, tiny_proto
):
    """Each worker evaluates the dev file itself and decides alone: they must
    agree, or one would wait forever in the next step's all-reduce."""
    overrides = tiny_overrides(
        tmp_path,
        tiny_proto,
        **{
            "strategy.name": "multi_worker",
            "optimizer.learning_rate": 1e-12,  # Dev accuracy never improves.
            "training.steps": 20,
            "training.eval_every_steps": 2,
            "training.early_stopping_patience": 1,
        },
    )
    output = tmp_path / "run"
    results = _run_workers([overrides, overrides], [output, output])
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert "replicas 2 steps 4" in out
        assert "Stopping early at step 4 of 20" in err
    assert json.loads((output / "metrics.json").read_text())["stopped_early"]


def _train_command(output, overrides):
    return [
        sys.executable,
        "-m",
        "albert_tf.cli",
        "train",
        "--config",
        str(TINY_CONFIG),
        "--output",
        str(output),
        *set_args(overrides),
    ]


def _run_train(output, overrides):
    """Runs `albert-tf train` to completion in a subprocess."""
    return subprocess.run(
        _train_command(output, overrides),
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )


def _optimizer_iterations(checkpoint_dir):
    import tensorflow as tf

    newest = sorted(os.listdir(checkpoint_dir))[-1]
    reader = tf.train.load_checkpoint(os.path.join(checkpoint_dir, newest, "ckpt"))
    (key,) = [
        k
        for k in reader.get_variable_to_shape_map()
        if k.startswith("optimizer/")
        and "iteration" in k
        and k.endswith("VARIABLE_VALUE")
    ]
    return int(reader.get_tensor(key))


def _start_until_first_checkpoint(output, overrides, stderr):
    """Starts `albert-tf train`; returns once it has written a checkpoint."""
    proc = subprocess.Popen(
        _train_command(output, overrides),
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        preexec_fn=default_ctrl_c,
    )
    _wait_for_checkpoint(output, proc)
    return proc


def _wait_for_checkpoint(output, proc):
    """Returns once `output` has a checkpoint, `proc` ended, or 120 s passed."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        checkpoints = output / "checkpoints"
        if checkpoints.is_dir() and any(
            n.startswith("ckpt-") for n in os.listdir(checkpoints)
        ):
            return
        time.sleep(0.02)


def test_kill_9_then_rerun_resumes_to_the_same_result(tmp_path, tiny_proto):
    overrides = tiny_overrides(
        tmp_path,
        tiny_proto,
        **{
            "training.steps": 150,
            "training.checkpoint_every_steps": 10,
            "data.dev": None,
            "training.log_every_steps": 10,
            # Dropout on: the resumed run must draw the same masks too.
            "model.dropout": 0.1,
            "model.backbone.dropout": 0.1,
        },
    )
    killed = tmp_path / "killed"
    proc = _start_until_first_checkpoint(killed, overrides, subprocess.DEVNULL)
    try:
        assert proc.poll() is None, "training ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    step_at_kill = max(
        int(n.split("-")[1])
        for n in os.listdir(killed / "checkpoints")
        if n.startswith("ckpt-")
    )
    assert 0 < step_at_kill < 150
    assert not (killed / "model.keras").exists()

    resumed = _run_train(killed, overrides)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    restored = [
        line for line in resumed.stderr.splitlines() if "Restored checkpoint" in line
    ]
    assert restored and f"at step {step_at_kill} of 150" in restored[0]
    # metrics.json counts the killed run's time up to its checkpoint too.
    report = json.loads((killed / "metrics.json").read_text())
    assert report["total_wall_time_s"] > report["wall_time_s"] > 0
    # TensorBoard sees each step once: events past the checkpoint were dropped.
    from tests.test_training import _event_steps

    steps = _event_steps(killed / "logs" / "train")
    assert steps == sorted(set(steps)) and steps[-1] == 150

    assert "oneDNN supports" not in resumed.stderr  # An ERROR that is no error.
    straight = tmp_path / "straight"  # In this process: a TensorFlow start less.
    assert train(str(TINY_CONFIG), straight, overrides=overrides)["steps"] == 150
    assert _optimizer_iterations(killed / "checkpoints") == 150
    assert _optimizer_iterations(straight / "checkpoints") == 150
    # Same data position and state: the resumed run ends where the
    # uninterrupted one does.
    for a, b in zip(
        _weights(straight / "model.keras"),
        _weights(killed / "model.keras"),
        strict=True,
    ):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "signum, status, what",
    [(signal.SIGINT, 130, "Interrupted"), (signal.SIGTERM, 143, "Terminated")],
)
def test_ctrl_c_or_sigterm_stops_cleanly_and_says_how_to_resume(
    tmp_path, tiny_proto, caplog, signum, status, what
):
    overrides = tiny_overrides(
        tmp_path,
        tiny_proto,
        **{
            "training.steps": 100000,
            "training.checkpoint_every_steps": 10,
            # Every step evaluates, so the stopping step would too.
            "training.eval_every_steps": 1,
        },
    )
    output = tmp_path / "run"
    proc = _start_until_first_checkpoint(output, overrides, subprocess.PIPE)
    try:
        assert proc.poll() is None, "training ended before it could be interrupted"
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = stderr.decode()
    assert proc.returncode == status, stderr[-3000:]
    assert "Traceback" not in stderr
    (line,) = [x for x in stderr.splitlines() if "rerun the same command" in x]
    step = int(line.rsplit(" ", 1)[1])
    assert (output / "checkpoints" / f"ckpt-{step:08d}").is_dir()
    # The step in progress finished and was saved: no work since the last
    # periodic checkpoint is lost. The dev evaluation waits for the rerun.
    assert f"{what} at step {step}: saved a checkpoint" in stderr
    assert f"The step-{step} dev evaluation will run when training resumes" in stderr
    assert f"Step {step} dev:" not in stderr
    assert stderr.rstrip().endswith(f"albert-tf train: {what.lower()}")
    if signum == signal.SIGTERM:  # Once is enough for the rerun.
        more = {**overrides, "training.steps": step + 1}
        with caplog.at_level(logging.INFO, logger="albert_tf"):
            train(str(TINY_CONFIG), output, overrides=more)  # In this process.
        assert f"Step {step} dev:" in caplog.text
        report = json.loads((output / "metrics.json").read_text())
        assert [e["step"] for e in report["history"]["eval"]][-2:] == [step, step + 1]


def test_sigterm_to_one_worker_stops_every_worker_at_one_checkpoint(
    tmp_path, tiny_proto
):
    """Preemption (SIGTERM) of one worker: all stop after the same step, saved.

    A worker that stopped alone would leave the others waiting forever in
    the next step's all-reduce.
    """
    overrides = tiny_overrides(
        tmp_path,
        tiny_proto,
        **{
            "training.steps": 100000,
            "training.checkpoint_every_steps": 10,
            "data.dev": None,
            "strategy.name": "multi_worker",
        },
    )
    output = tmp_path / "run"
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    logs = [tmp_path / f"worker-{index}.log" for index in range(2)]
    procs = []
    try:
        for index, log in enumerate(logs):
            env = subprocess_env()
            env["TF_CONFIG"] = json.dumps(
                {
                    "cluster": {"worker": workers},
                    "task": {"type": "worker", "index": index},
                }
            )
            with log.open("w") as stderr:  # The child keeps its own copy.
                procs.append(
                    subprocess.Popen(
                        _train_command(output, overrides),
                        cwd=REPO,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                    )
                )
        _wait_for_checkpoint(output, procs[0])
        assert procs[1].poll() is None, "training ended before it could be stopped"
        procs[1].send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    errs = [log.read_text() for log in logs]
    # Both were preempted, as far as a job controller can tell.
    assert [p.returncode for p in procs] == [143, 143], (
        errs[0][-2000:] + errs[1][-2000:]
    )
    (chief_line,) = [
        x for x in errs[0].splitlines() if "another worker got SIGTERM" in x
    ]
    (term_line,) = [x for x in errs[1].splitlines() if "Terminated at step" in x]
    step = int(term_line.split("Terminated at step ")[1].split(":")[0])
    assert f"Stopped at step {step} because" in chief_line
    assert (output / "checkpoints" / f"ckpt-{step:08d}").is_dir()
    assert errs[1].rstrip().endswith("albert-tf train: terminated")
    assert "Traceback" not in errs[0] + errs[1]


def test_a_run_shorter_than_one_epoch_leaves_no_tf_cache_warning(tmp_path, tiny_proto):
    # 3 steps of 4 read 12 of 2,000 rows: a dataset cache would be thrown
    # away unfinished, and TF warns about it at exit.
    overrides = tiny_overrides(
        tmp_path,
        tiny_proto,
        **{
            "data.train": write_tiny_tsv(tmp_path / "big.tsv", repeat=250),
            "data.dev": None,
            "training.steps": 3,
        },
    )
    proc = subprocess.run(
        _train_command(tmp_path / "out", overrides),
        cwd=REPO,
        env=dict(subprocess_env(), TF_CPP_MIN_LOG_LEVEL="1"),  # TF warnings shown
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dataset being cached" not in proc.stderr


def test_workers_that_disagree_are_refused_before_training(tmp_path, tiny_proto):
    overrides = tiny_overrides(
        tmp_path,
        tiny_proto,
        **{"training.steps": 4, "data.dev": None, "strategy.name": "multi_worker"},
    )
    # Own output folders: the chief resumes at step 4, the other starts at 0;
    # and another learning rate on one worker: both would average other runs.
    chief_alone = {**overrides, "strategy.name": "default"}
    assert train(str(TINY_CONFIG), tmp_path / "chief", overrides=chief_alone)
    longer = {**overrides, "training.steps": 6}
    other = {**longer, "optimizer.learning_rate": 0.1}
    outputs = [tmp_path / "chief", tmp_path / "worker"]
    for code, _, err in _run_workers([longer, other], outputs):
        assert code == 1, err[-3000:]
        assert "The workers disagree on the run" in err
        hashes = re.search(r"settings or data \(hashes \[(.*?)\]\)", err)
        assert hashes and len(hashes.group(1).split(",")) == 2, err[-3000:]
        assert "start step (steps [0, 4])" in err
    # The chief cannot lock its output folder: every worker fails, none waits.
    with filelock.FileLock(tmp_path / "chief" / ".train.lock", timeout=0):
        results = _run_workers([overrides, overrides], outputs)
    (chief_code, _, chief_err), (code, _, err) = results
    assert chief_code == code == 1, err[-3000:]
    assert "Another training run is writing to" in chief_err
    assert "The chief's output folder is in use by another training run" in err


def test_a_worker_whose_port_is_taken_names_it(tmp_path, tiny_proto):
    overrides = tiny_overrides(
        tmp_path, tiny_proto, **{"data.dev": None, "strategy.name": "multi_worker"}
    )
    env = subprocess_env()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        (free,) = _free_ports(1)
        cluster = {"worker": [address, f"127.0.0.1:{free}"]}
        env["TF_CONFIG"] = json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": 0}}
        )
        proc = subprocess.run(
            _train_command(tmp_path / "out", overrides),
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"Cannot start this worker at {address}" in proc.stderr
    assert "Traceback" not in proc.stderr


def _start_lone_worker(tmp_path, overrides, index, name):
    """Starts task `index` of a fresh 2-worker TF_CONFIG, alone; returns
    `(process, cluster addresses, stderr log)`."""
    cluster = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    env = subprocess_env()
    env["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}
    )
    log = tmp_path / f"{name}.log"
    with log.open("w") as stderr:  # The child keeps its own copy.
        proc = subprocess.Popen(
            _train_command(tmp_path / name, overrides),
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=default_ctrl_c,
        )
    return proc, cluster, log


def test_a_worker_whose_peers_never_start_gives_up_naming_them(tmp_path, tiny_proto):
    """A lone task of a 2-task TF_CONFIG (a typo, a crashed peer) would wait
    an hour; it gives up after `strategy.join_timeout_s` and names the task
    it waited for. Worker 0 leads the start; worker 1 waits for the leader.
    Ctrl-C cannot end the wait (TensorFlow holds the GIL), but is obeyed
    when it ends.
    """
    overrides = tiny_overrides(
        tmp_path,
        tiny_proto,
        **{
            "data.dev": None,
            "strategy.name": "multi_worker",
            "strategy.join_timeout_s": 5,
        },
    )
    start = time.monotonic()
    workers = []
    try:
        for index, name in [(0, "leader"), (1, "other"), (0, "ctrl-c")]:
            workers.append(_start_lone_worker(tmp_path, overrides, index, name))
        ctrl_c, _, ctrl_c_log = workers[2]
        deadline = time.monotonic() + 120
        while "Joining a cluster" not in ctrl_c_log.read_text():
            assert ctrl_c.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1)  # In the wait.
        ctrl_c.send_signal(signal.SIGINT)
        for proc, _, _ in workers:
            proc.wait(timeout=240)
    finally:
        for proc, _, _ in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    # Three start TensorFlow on 2 loaded cores; then 5 s (+ a retry) each.
    assert time.monotonic() - start < 150
    errs = [log.read_text() for _, _, log in workers]
    assert [proc.returncode for proc, _, _ in workers] == [1, 1, 130], errs
    assert all("Traceback" not in err for err in errs)
    (_, leader, _), (_, other, _), _ = workers
    (line,) = [x for x in errs[0].splitlines() if "Gave up joining" in x]
    assert f'TF_CONFIG ({{"worker": {json.dumps(leader)}}})' in line
    assert f"as worker 0 at {leader[0]} after 5 s (strategy.join_timeout_s)" in line
    assert f"not started: worker 1 at {leader[1]}." in line
    (line,) = [x for x in errs[1].splitlines() if "Gave up joining" in x]
    assert f"as worker 1 at {other[1]} after 5 s" in line
    assert f"no answer from worker 0 at {other[0]}, which coordinates" in line
    # TensorFlow logs its agent's shutdown after it.
    assert "albert-tf train: interrupted" in errs[2].splitlines()


def test_python_gets_sigterm_back_after_the_join():
    """Joining installs TensorFlow's preemption notifier as the SIGTERM
    handler, which would ignore SIGTERM until training began."""
    from albert_tf.training import strategy

    def ours(signum, frame):
        pass

    def tensorflows(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, ours)
    try:
        with strategy._signals_during_the_join():
            signal.signal(signal.SIGTERM, tensorflows)  # What the join does.
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, before)
