"""`albert-tf export`, `albert-tf inspect` and `albert-tf serve`."""

import logging

from albert_tf import cli_types

logger = logging.getLogger(__name__)


def register(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="write a string-in SavedModel version folder for TF Serving",
        description="Writes EXPORT_BASE/<version>/ atomically (tokenizer in the "
        "graph, warmup requests, label file) plus models.config and "
        "batching_parameters.txt examples (existing ones are kept, with their "
        "edits), and runs the preflight.",
    )
    parser.add_argument(
        "model", metavar="MODEL", help="A .keras file or a preset directory."
    )
    parser.add_argument("export_base", metavar="EXPORT_BASE", help="Model base path.")
    parser.add_argument(
        "--version",
        type=cli_types.positive_int,
        help="Version to write (default: next).",
    )
    parser.add_argument(
        "--max-batch-size",
        type=cli_types.positive_int,
        help="max_batch_size in batching_parameters.txt (default: 32 in a new "
        "file; an existing file keeps its value).",
    )
    parser.add_argument(
        "--batch-timeout-micros",
        type=cli_types.non_negative_int,
        help="batch_timeout_micros in batching_parameters.txt (default: 2000 in "
        "a new file; an existing file keeps its value).",
    )
    parser.add_argument(
        "--model-name", help="Name in models.config (default: the base folder's name)."
    )
    parser.set_defaults(func=_export)

    parser = subparsers.add_parser(
        "inspect",
        help="print an export's signatures and the non-core ops it needs",
    )
    parser.add_argument(
        "export_dir",
        metavar="EXPORT_DIR",
        help="A version folder, or a base path (latest version).",
    )
    parser.set_defaults(func=_inspect)

    parser = subparsers.add_parser(
        "serve",
        help="TF-Serving-compatible dev server (production: tensorflow/serving)",
        description="Serves the latest version under --model-base-path with TF "
        "Serving's gRPC API (and REST with --rest-port). For development and "
        "tests; deploy with the official tensorflow_model_server.",
    )
    parser.add_argument(
        "--model-base-path",
        required=True,
        help="Folder of integer version folders (an `albert-tf export` base).",
    )
    parser.add_argument(
        "--model-name",
        required=True,
        help="Name clients ask for (TF Serving's --model_name).",
    )
    parser.add_argument("--port", type=cli_types.port, default=8500)
    parser.add_argument(
        "--rest-port", type=cli_types.port, help="Also serve REST on this port."
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="Address to bind (default 127.0.0.1; 0.0.0.0 for all).",
    )
    parser.add_argument(
        "--enable-batching",
        action="store_true",
        help="batch concurrent requests, with the export's batching_parameters.txt "
        "when it has one",
    )
    parser.add_argument(
        "--batching-parameters-file",
        help="TF Serving batching parameters (implies batching).",
    )
    parser.add_argument(
        "--max-batch-size",
        type=cli_types.positive_int,
        help="Largest batch, and largest accepted request (overrides the file; "
        "implies batching). Without batching, as in TF Serving, no limit.",
    )
    parser.add_argument(
        "--max-message-bytes",
        type=cli_types.positive_int,
        default=4 * 1024 * 1024,
        help="Largest gRPC message and REST body (gRPC's own default; TF "
        "Serving allows 2 GiB).",
    )
    parser.add_argument(
        "--poll-seconds",
        type=cli_types.positive_float,
        default=1.0,
        help="How often to look for new versions.",
    )
    parser.set_defaults(func=_serve)


def _export(args):
    from albert_tf.serving.export import export_classifier
    from albert_tf.serving.preflight import preflight

    path = export_classifier(
        args.model,
        args.export_base,
        version=args.version,
        max_batch_size=args.max_batch_size,
        batch_timeout_micros=args.batch_timeout_micros,
        model_name=args.model_name,
    )
    print(preflight(path).format())  # Already passed before the rename.
    print(f"Exported to {path}")
    return 0


def _inspect(args):
    import json
    import os

    from albert_tf.serving import signatures as sig
    from albert_tf.serving.export import read_preprocessing
    from albert_tf.serving.model_manager import version_folders
    from albert_tf.serving.preflight import preflight

    path = args.export_dir
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        versions = version_folders(path)
        if versions:
            path = versions[max(versions)]
    print(preflight(path).format())
    settings = read_preprocessing(path)
    if settings:
        print(f"Preprocessing (assets.extra/{sig.PREPROCESSING_FILE}):")
        for key, value in settings.items():
            note = (
                " (pad predict_ids requests to it)" if key == "sequence_length" else ""
            )
            print(f"  {key}: {json.dumps(value)}{note}")
    return 0


def _serve(args):
    import faulthandler
    import os
    import signal
    import threading

    from albert_tf.serving import signatures as sig
    from albert_tf.serving.batcher import BatchingParameters
    from albert_tf.serving.dev_server import DevServer
    from albert_tf.serving.dev_server import host_port

    batching = BatchingParameters()
    parameters_file = args.batching_parameters_file
    beside = os.path.join(args.model_base_path, sig.BATCHING_FILE)
    if args.enable_batching and not parameters_file and os.path.isfile(beside):
        parameters_file = beside  # What `export --max-batch-size` wrote.
    if parameters_file:
        batching = BatchingParameters.from_file(parameters_file)
        logger.info("Batching parameters from %s", parameters_file)
    if args.max_batch_size:
        batching.max_batch_size = args.max_batch_size
    server = DevServer(
        args.model_name,
        args.model_base_path,
        port=args.port,
        host=args.host,
        rest_port=args.rest_port,
        batching=batching,
        enable_batching=args.enable_batching
        or bool(args.batching_parameters_file or args.max_batch_size),
        max_message_bytes=args.max_message_bytes,
        poll_seconds=args.poll_seconds,
    )
    server.start()
    # Before the line that says it is ready: a SIGTERM right after it must
    # stop the server cleanly, not kill it.
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    # `kill -USR1 PID` prints every thread's stack, for a server that hangs.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    print(
        f"Serving '{args.model_name}' on {host_port(server.host, server.port)}"
        + (f" (REST :{server.rest_port})" if server.rest_port else "")
        + ". Development server: use tensorflow/serving in production.",
        flush=True,
    )
    stopped.wait()
    logger.info("Shutting down: finishing in-flight requests")
    server.stop(grace=10.0)
    return 0
