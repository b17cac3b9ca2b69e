"""The `dsedge` command line: a thin shell over the library (DESIGN.md §6).

Human progress and summaries go to stderr; machine output (`--json`) to stdout.
Exit codes: 0 ok, 1 a check or accuracy budget failed, 2 usage error or bad input
(file, node and fix are named), 3 internal error (a dsedge bug: please report it).
"""
from __future__ import annotations

import json
import os
import sys
import traceback

import click

from . import __version__
from .errors import DseError

EXIT_HELP = """
\b
Exit codes:
  0  success
  1  a check or accuracy budget failed
  2  usage error or bad input (the message names the file, node and fix)
  3  internal error (a bug in dsedge; run with DSEDGE_DEBUG=1 for a traceback)
"""


def _defaults_from_pyproject() -> dict:
    """Defaults for options from `[tool.dsedge]` in ./pyproject.toml (kebab-case keys)."""
    path = os.path.join(os.getcwd(), "pyproject.toml")
    if not os.path.isfile(path):
        return {}
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return {}
    try:
        with open(path, "rb") as f:
            cfg = tomllib.load(f).get("tool", {}).get("dsedge", {})
    except Exception:
        return {}
    out = {}
    for cmd, opts in cfg.items():
        if isinstance(opts, dict):
            out[cmd] = {k.replace("-", "_"): v for k, v in opts.items()}
    return out


def _err(msg: str) -> None:
    click.echo(f"dsedge: error: {msg}", err=True)


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DseError as e:
            _err(str(e))
            sys.exit(e.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            _err("interrupted")
            sys.exit(130)
        except MemoryError:
            _err("out of memory")
            sys.exit(3)
        except Exception as e:  # a bug: say so, show the traceback only on request
            if os.environ.get("DSEDGE_DEBUG"):
                traceback.print_exc()
            _err(f"internal error: {type(e).__name__}: {e} (this is a dsedge bug; "
                 "run with DSEDGE_DEBUG=1 for a traceback and report it)")
            sys.exit(3)


@click.group(cls=_Group, help="dsedge: quantise trained models and run them on edge devices.\n" + EXIT_HELP,
             context_settings={"help_option_names": ["-h", "--help"],
                               "default_map": _defaults_from_pyproject()})
@click.version_option(__version__, prog_name="dsedge")
def main():
    pass


@main.command(help="Show a model's inputs, outputs, ops, parameters, MACs and what can run in int8."
              + EXIT_HELP)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout (default: a table on stderr).")
def inspect(model, as_json):
    from .api import inspect_model
    report = inspect_model(model)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        from .report import format_inspect
        click.echo(format_inspect(report), err=True)


@main.command(help="Calibrate and quantise a model (INT8 by default) and write QDQ ONNX (*.onnx) "
              "or a dsedge artifact (*.dse). Prints a summary: sizes, per-layer precision and why, "
              "output SQNR on up to 8 calibration feeds." + EXIT_HELP)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--calib", "calib", required=True, type=click.Path(),
              help="Calibration feeds: a folder of .npz files (one feed each, keys = the model's input names) "
                   "or one .npz whose arrays carry a leading sample axis.")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Output file: *.onnx writes QDQ ONNX, *.dse a dsedge artifact.")
@click.option("--precision", type=click.Choice(["int8", "fp16", "fp32"]), default="int8", show_default=True,
              help="int8 quantises weights and activations where measured error allows; fp16 stores "
                   "weights in half precision and computes in fp32; fp32 only optimises.")
@click.option("--method", type=click.Choice(["auto", "minmax", "percentile", "entropy", "mse"]), default="auto",
              show_default=True,
              help="How activation ranges are chosen: auto picks, per tensor, the method with the lowest "
                   "quantisation error on the calibration statistics.")
@click.option("--keep-float", "keep_float", multiple=True, metavar="NODE|OPTYPE",
              help="Keep this node (by name) or every node of this op type in float; repeatable. Default: none.")
@click.option("--bias-correction/--no-bias-correction", default=True, show_default=True,
              help="Correct the per-channel output shift that weight rounding causes (measured on the "
                   "calibration feeds).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars on stderr.")
def quantize(model, calib, output, precision, method, keep_float, bias_correction, as_json, progress):
    import time
    from .api import quantize as run_quantize, quantize_summary, save_result
    from .report import format_quantize
    _check_output_path(output)
    t0 = time.perf_counter()
    result = run_quantize(model, calib, precision=precision, method=method, keep_float=keep_float,
                          bias_correction=bias_correction, progress=progress)
    save_result(result, output)
    summary = quantize_summary(result, model, output)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_quantize(summary), err=True)


@main.command(help="Compare a float model with its quantised version on feeds: per-output SQNR, cosine "
              "similarity and top-1 agreement (both run in onnxruntime)." + EXIT_HELP)
@click.argument("float_model", type=click.Path(dir_okay=False))
@click.argument("quant_model", type=click.Path(dir_okay=False))
@click.option("--data", required=True, type=click.Path(),
              help="Feeds: a folder of .npz files or one .npz with a leading sample axis.")
@click.option("--limit", type=int, default=None, help="Use at most this many feeds (default: all).")
@click.option("--labels", default=None, metavar="KEY",
              help="Name of an array of class ids in the data (one per feed): also print both models' "
                   "top-1 accuracy on the first output. Default: none.")
@click.option("--min-sqnr", type=float, default=None,
              help="Exit with code 1 when any output's SQNR (dB) is below this (default: no check).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars on stderr.")
def compare(float_model, quant_model, data, limit, labels, min_sqnr, as_json, progress):
    from .api import compare as run_compare
    from .report import format_compare
    res = run_compare(float_model, quant_model, data, limit=limit, progress=progress, labels=labels)
    if as_json:
        click.echo(json.dumps(res, indent=2))
    else:
        click.echo(format_compare(res), err=True)
    if min_sqnr is not None:
        bad = [k for k, v in res["outputs"].items() if v["sqnr_db"] < min_sqnr]
        if bad:
            _err(f"output(s) {', '.join(bad)} below {min_sqnr} dB SQNR")
            sys.exit(1)


def _check_output_path(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DseError(f"{path}: cannot write: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise DseError(f"{path}: cannot write: folder {folder} is not writable")
    if os.path.isdir(path):
        raise DseError(f"{path}: is a folder; give a file name ending in .onnx or .dse")
    if not (path.endswith(".onnx") or path.endswith(".dse")):
        raise DseError(f"{path}: unknown output format", hint="name the output *.onnx (QDQ) or *.dse")


if __name__ == "__main__":  # pragma: no cover
    main()
