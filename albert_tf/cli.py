"""The `albert-tf` command line: one sub-command per job.

Each sub-command lives in the module that does its job and exposes
`register(subparsers)`; work-specific imports happen inside the command
functions.
"""

import argparse
import importlib
import logging
import os
import re
import sys

# Modules that register sub-commands, in the order `--help` lists them.
COMMAND_MODULES = (
    "albert_tf.demo",
    "albert_tf.training.commands",
    "albert_tf.serving.commands",
    "albert_tf.tflite.commands",
    "albert_tf.presets.commands",
)


def _show_defaults(parser):
    """Appends `(default: X)` to each option's help that has a real default."""
    for action in parser._actions:
        text = action.help or ""
        if (
            action.option_strings
            and action.default not in (None, False, argparse.SUPPRESS, [])
            and "default" not in text
        ):
            action.help = (
                f"{text} (default: %(default)s)" if text else ("default: %(default)s")
            )


class _VersionAction(argparse.Action):
    """`--version`: this package's and the versions exports depend on."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        # Module versions: pip names differ (tensorflow-cpu, tf-nightly).
        import keras
        import tensorflow
        import tensorflow_text

        import albert_tf

        print(
            f"albert-tf {albert_tf.__version__} (tensorflow {tensorflow.__version__}, "
            f"tensorflow-text {tensorflow_text.__version__}, keras {keras.__version__})"
        )
        parser.exit()


class _IntermixedParser(argparse.ArgumentParser):
    """Options may come between positional arguments, e.g.
    `predict MODEL --format jsonl TEXT` (argparse would reject TEXT)."""

    _parsing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._parsing:  # `parse_known_intermixed_args` calls back in here.
            return super().parse_known_args(args, namespace)
        self._parsing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing = False


def build_parser():
    parser = argparse.ArgumentParser(
        prog="albert-tf",
        description="ALBERT text classification on TensorFlow: train, evaluate, "
        "predict, export for TF Serving, serve, build TFLite, convert checkpoints.",
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="show the versions and exit"
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_IntermixedParser
    )
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if not name.startswith(e.name):  # A missing dependency: report it.
                raise
            continue
        module.register(subparsers)
    for command in subparsers.choices.values():
        _show_defaults(command)
    return parser


def main(argv=None):
    # Our progress at INFO; TensorFlow's and absl's chatter only from WARNING.
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("albert_tf").setLevel(logging.INFO)
    command = "albert-tf"
    try:
        # Ctrl-C while TensorFlow loads (seconds) is an interrupt like any.
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        command = f"albert-tf {args.command}"
        return _run(args)
    except KeyboardInterrupt as e:
        # `TrainingTerminated` (SIGTERM) is one too, with its own status.
        what = getattr(e, "what", "interrupted")
        print(f"{command}: {what}", file=sys.stderr)
        return getattr(e, "exit_status", 130)
    except BrokenPipeError:
        # `| head` closed stdout: what was wanted was printed. Python would
        # report the pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(args):
    import tensorflow as tf

    from albert_tf.native_logs import say_onednn_int_notice_quietly

    if args.command not in ("train", "demo"):  # Trainers do it after device setup.
        say_onednn_int_notice_quietly()
    try:
        return args.func(args) or 0
    except BrokenPipeError:
        raise
    except (ValueError, TypeError, OSError) as e:
        # Bad input, or a path or port that cannot be used: one clear line.
        print(f"albert-tf {args.command}: error: {e}", file=sys.stderr)
        return 1
    except tf.errors.OpError as e:  # E.g. a full disk while TF writes a file.
        print(
            f"albert-tf {args.command}: error: {op_error_message(e)}", file=sys.stderr
        )
        return 1


def op_error_message(error):
    """A TensorFlow op's error without the graph node it names first
    (`{{function_node __wrapped__SaveV2...}}`), which means nothing to users."""
    message = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", error.message)
    return re.sub(r"\s*\[Op:\w+\]( name: \S*)?$", "", message).strip()


if __name__ == "__main__":
    sys.exit(main())
