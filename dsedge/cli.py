"""The `dsedge` command line: a thin shell over the library (DESIGN.md §6).

Human progress and summaries go to stderr; machine output (`--json`) to stdout.
Exit codes: 0 ok, 1 a check or accuracy budget failed, 2 usage error or bad input
(file, node and fix are named), 3 internal error (a dsedge bug: please report it).
"""
from __future__ import annotations

import io
import json
import os
import sys
import traceback
import warnings

import click

from . import __version__
from .errors import DseError, DseWarning
from .util import atomic_write_bytes, refuse_overwriting_inputs

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


def _show_warnings() -> None:
    """dsedge's own warnings (DseWarning) as one `dsedge: warning:` line each on stderr, once
    per distinct message; other warnings keep Python's format."""
    plain = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DseWarning):
            click.echo(f"dsedge: warning: {message}", err=True)
        else:
            plain(message, category, filename, lineno, file, line)
    warnings.showwarning = show
    warnings.simplefilter("default", DseWarning)


class _Group(click.Group):
    def invoke(self, ctx):
        from .util import return_freed_memory_promptly
        return_freed_memory_promptly()
        _show_warnings()
        try:
            return super().invoke(ctx)
        except DseError as e:
            _err(str(e))
            sys.exit(e.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except OSError as e:   # reading or writing a file the user named: name it and the reason
            where = e.filename if e.filename is not None else "a file"
            _err(f"{where}: cannot {'write' if isinstance(e, PermissionError) else 'read or write'}: "
                 f"{e.strerror or e}")
            sys.exit(2)
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
    elif report.get("format") == "dse":
        from .export.dse import format_inspect as format_dse
        click.echo(format_dse(report), err=True)
    else:
        from .report import format_inspect
        click.echo(format_inspect(report), err=True)


def _calibration_data_options(prefix: str):
    """--preprocess and --constant-input, shared by `quantize` and `export` (`prefix` starts the help)."""
    def lower_first(text: str) -> str:
        return text[0].lower() + text[1:] if prefix else text

    def deco(f):
        f = click.option("--constant-input", "constant_input", multiple=True, metavar="NAME",
                         help=prefix + lower_first(
                             "A float input that really is constant when the model runs (e.g. a state that is "
                             "always zero): calibrate with it constant without complaint; repeatable. Default: a "
                             "float input that never varies across the calibration feeds is an error naming it."))(f)
        return click.option("--preprocess", "preprocess", default=None, metavar="KEY=VALUE,...",
                            help=prefix + lower_first(
                                "How image or WAV calibration files become the model's input, e.g. "
                                "resize=256,mean=0.485,0.456,0.406,std=0.229,0.224,0.225,layout=nchw (images: resize, "
                                "crop, filter, color, layout, scale, mean, std, input; audio: sample_rate, window, hop, "
                                "scale, carry, input). It is stored in the output so `dsedge run` takes an image or WAV "
                                "directly. Default: from the model's input shape and dtype (images: its size, RGB or "
                                "gray, scaled to [0, 1]; audio: 16 kHz, the input's length or 1 s windows)."))(f)
    return deco


@main.command(help="Calibrate and quantise a model (INT8 by default) and write QDQ ONNX (*.onnx) "
              "or a dsedge artifact (*.dse). Prints a summary: sizes, per-layer precision and why, "
              "output SQNR on up to 8 calibration feeds. Without --calib the weights are quantised and "
              "activations are quantised at run time (dynamic quantisation)." + EXIT_HELP)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--calib", "calib", default=None, type=click.Path(),
              help="Calibration feeds: a folder of .npz files (one feed each, keys = the model's input names) "
                   "or one .npz whose arrays carry a leading sample axis. Default: none, which quantises "
                   "dynamically (int8 weights, Conv/Gemm/MatMul inputs quantised at run time, the rest float).")
@click.option("-o", "--output", "output", default=None, type=click.Path(dir_okay=False),
              help="Output file: *.onnx writes QDQ ONNX, *.dse a dsedge artifact. Default: MODEL's name with "
                   ".int8.onnx next to it (model.onnx -> model.int8.onnx; .fp16.onnx / .fp32.onnx for those precisions).")
@click.option("--precision", type=click.Choice(["int8", "fp16", "fp32", "mixed"]), default="int8", show_default=True,
              help="int8 quantises weights and activations where measured error allows; fp16 stores "
                   "weights in half precision and computes in fp32; fp32 only optimises; mixed plans each "
                   "node's precision under --max-drop (as `dsedge plan`) and quantises with that plan.")
@click.option("--max-drop", "max_drop", default=None, metavar="PCT",
              help="With --precision mixed: the accuracy budget against the float model on held-back feeds, "
                   "e.g. 1% (default 1%).")
@click.option("--minimize", type=click.Choice(["size", "latency"]), default="size", show_default=True,
              help="With --precision mixed: what the plan makes small (as `dsedge plan --minimize`).")
@click.option("--memory-budget", "memory_budget", default=None, metavar="SIZE",
              help="With --precision mixed: the most the model may need, .dse plus arena (as `dsedge plan`).")
@click.option("--latency-profile", "latency_profiles", multiple=True, type=click.Path(dir_okay=False),
              metavar="FILE", help="With --precision mixed --minimize latency: per-node times measured on the "
              "target (as `dsedge plan --latency-profile`).")
@click.option("--holdout", type=click.IntRange(1, None), default=None,
              help="With --precision mixed: feeds held back to score the candidates (as `dsedge plan`).")
@click.option("--metric", default=None, metavar="MODULE:FUNCTION",
              help="With --precision mixed: score candidates with your function (as `dsedge plan --metric`).")
@click.option("--plan", "plan_path", default=None, type=click.Path(dir_okay=False),
              help="Quantise with a precision plan written by `dsedge plan` (a lockfile: the same model and "
                   "--calib give the same bytes).")
@click.option("--method", type=click.Choice(["auto", "minmax", "percentile", "entropy", "mse"]), default="auto",
              show_default=True,
              help="How activation ranges are chosen: auto picks, per tensor, the method with the lowest "
                   "quantisation error on the calibration statistics.")
@click.option("--keep-float", "keep_float", multiple=True, metavar="NODE|OPTYPE",
              help="Keep this node (by name) or every node of this op type in float; repeatable. Default: none.")
@click.option("--weights", "weights", type=click.Choice(["int8", "int7", "int4"]), default="int8", show_default=True,
              help="With --precision int8: the weights of Conv, Gemm and MatMul nodes. int4 (W4A8) halves "
                   "their size, with int8 activations and int32 accumulation as int8 (ConvTranspose keeps int8 "
                   "weights; docs/quant-arith.md §13); per output channel it runs at about int8's speed on x86 "
                   "CPUs with AVX2 (kernels/avx2/conv_i8_w4.c), reference kernels elsewhere. int7: int8 codes in [-63, 63] (one bit less "
                   "precise), which x86 CPUs without VNNI multiply exactly with vpmaddubsw, about 1.4x "
                   "faster than the int16-pair kernels (kernels/avx2/conv_i8_w7.c).")
@click.option("--weight-group", "weight_group", type=click.Choice(["0", "32", "64"]), default="0", show_default=True,
              help="With --weights int4: 0 gives one scale per output channel; 32 or 64 adds an integer "
                   "multiplier (1..18) of that scale per group of that many weights along the reduction axis "
                   "(finer steps where a channel's weights are small; *.dse output only).")
@click.option("--weight-bits", "weight_bits", multiple=True, metavar="NODE|OPTYPE=4|7|8",
              help="Weight bits of this node (by name) or of every node of this op type, overriding --weights; "
                   "repeatable. Default: none.")
@click.option("--a16w8", "a16w8", multiple=True, metavar="NODE[,NODE...]|OPTYPE|all",
              help="With --precision int8: run these Conv/Gemm/MatMul nodes (by name, op type, or all for every "
                   "eligible one) with int16 activations and int8 weights (A16W8, docs/quant-arith.md §15), for "
                   "tensors whose range int8 cannot hold; about 1.5x their activation bytes, reference C kernels "
                   "only. Repeatable. Default: none.")
@click.option("--fp16-arith", "fp16_arith", multiple=True, metavar="NODE[,NODE...]|OPTYPE|all",
              help="Compute these float Conv/Gemm/MatMul nodes (by name, op type, or all for every eligible one) "
                   "in fp16 arithmetic with fp16 weights (docs/quant-arith.md §16): binary16 on targets that have "
                   "it (ARMv8.2-A FP16), widened to float32 elsewhere. With --precision int8 it applies to the "
                   "nodes kept float (--keep-float), with fp16 to every float node, with mixed the planner tries "
                   "it for the nodes it keeps float (give all). Repeatable. Default: none.")
@click.option("--bias-correction/--no-bias-correction", default=True, show_default=True,
              help="Correct the per-channel output shift that weight rounding causes (measured on the "
                   "calibration feeds).")
@click.option("--input-shape", "input_shape", multiple=True, metavar="NAME=1x3x48x320",
              help="For *.dse output: the shape the artifact is specialised to for input NAME; repeatable. "
                   "Default: the calibration feeds' shape (an error names the input when they differ).")
@click.option("--io-dtype", "io_dtype", type=click.Choice(["float32", "int8", "uint8"]), default="float32",
              show_default=True,
              help="For *.dse output: dtype of the graph inputs and outputs. int8/uint8 drop the leading "
                   "quantize and trailing dequantize (their scale and zero point are in the tensor table; "
                   "uint8 = int8 + 128); inputs/outputs that are not int8 inside stay float32.")
@click.option("--qdq-format", "qdq_format", type=click.Choice(["u8u8", "u8s8", "u8s7", "s8s8"]), default=None,
              help="For *.onnx output: how int8 tensors are stored, which picks onnxruntime's kernels. u8u8 "
                   "(the default): uint8 activations and weights, the same model, no saturation in onnxruntime "
                   "on any x86 CPU, up to ~1.2x u8s8's time there. u8s8: int8 weights, onnxruntime's fastest "
                   "kernels, but their sums saturate on x86 CPUs without VNNI (AVX2 only), which can cost most "
                   "of the accuracy. u8s7: 7-bit weights (onnxruntime's reduce_range), fast and safe but one bit "
                   "coarser than the .dse. s8s8: int8 activations, saturates like u8s8.")
@_calibration_data_options("")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars on stderr.")
def quantize(model, calib, output, precision, max_drop, minimize, memory_budget, latency_profiles, holdout, metric,
             plan_path, method, keep_float, weights, weight_group, weight_bits, a16w8, fp16_arith, bias_correction,
             input_shape, io_dtype, qdq_format, preprocess, constant_input, as_json, progress):
    import time
    from .api import parse_size, quantize as run_quantize, quantize_summary, save_result
    from .report import format_quantize
    if output is None:
        from .api import default_output_path
        output = default_output_path(model, precision)
    _check_output_path(output)
    refuse_overwriting_inputs([output], [("model", model), ("calibration feeds", calib),
                                         *(("latency profile", f) for f in latency_profiles)])
    if (input_shape or io_dtype != "float32") and not output.endswith(".dse"):
        raise click.UsageError("--input-shape and --io-dtype apply to *.dse output only")
    if qdq_format is not None and not output.endswith(".onnx"):
        raise click.UsageError("--qdq-format applies to *.onnx (QDQ) output only")
    if preprocess and calib is None:
        raise click.UsageError("--preprocess applies with --calib (how calibration images or WAV files become feeds)")
    planner = {"--max-drop": max_drop is not None, "--minimize": minimize != "size",
               "--memory-budget": memory_budget is not None, "--latency-profile": bool(latency_profiles),
               "--holdout": holdout is not None, "--metric": metric is not None}
    used = [k for k, v in planner.items() if v]
    if used and precision != "mixed":
        raise click.UsageError(f"{', '.join(used)} appl{'ies' if len(used) == 1 else 'y'} with --precision mixed")
    if latency_profiles and minimize != "latency":
        raise click.UsageError("--latency-profile goes with --minimize latency")
    if weights == "int4" and precision == "mixed" and minimize != "size":
        raise click.UsageError("--weights int4 is planned for size: use it with --minimize size")
    if (precision == "mixed" or plan_path) and (calib is None or keep_float):
        raise click.UsageError("--precision mixed and --plan need --calib, and decide what stays float "
                               "(no --keep-float)")
    if plan_path and precision not in ("int8", "mixed"):
        raise click.UsageError("--plan sets each node's precision: leave --precision out")
    node_bits = _weight_bits_from_cli(weight_bits)
    if (weights == "int4" and precision != "mixed") or node_bits:
        if precision != "int8" or plan_path:
            raise click.UsageError("--weights int4 and --weight-bits apply with --precision int8 (no --plan)")
        if calib is None:
            raise click.UsageError("--weights int4 and --weight-bits need --calib: W4A8 activations are int8 "
                                   "(without --calib, quantisation is dynamic with int8 weights)")
    a16 = tuple(x.strip() for it in a16w8 for x in it.split(",") if x.strip())
    if a16w8 and not a16:
        raise click.UsageError("--a16w8 needs node names, op types or all")
    if a16 and (precision != "int8" or plan_path or calib is None):
        raise click.UsageError("--a16w8 applies with --precision int8 and --calib (no --plan: `dsedge plan --a16w8` "
                               "stores A16W8 nodes in the plan)")
    f16a = tuple(x.strip() for it in fp16_arith for x in it.split(",") if x.strip())
    if fp16_arith and not f16a:
        raise click.UsageError("--fp16-arith needs node names, op types or all")
    if f16a and (precision == "fp32" or plan_path):
        raise click.UsageError("--fp16-arith applies with --precision int8 (nodes kept float), fp16 or mixed (no "
                               "--plan: `dsedge plan --fp16-arith` stores the fp16-arithmetic nodes in the plan)")
    if f16a and precision == "mixed" and f16a != ("all",):
        raise click.UsageError("with --precision mixed the planner chooses the nodes: give --fp16-arith all")
    if weight_group != "0":
        if weights != "int4" and 4 not in node_bits.values():
            raise click.UsageError("--weight-group applies with --weights int4 (or --weight-bits NODE=4)")
        if not output.endswith(".dse"):
            raise click.UsageError("--weight-group applies to *.dse output only (QDQ ONNX has no integer group "
                                   "multipliers): leave it at 0 for *.onnx")
    from .export.specialize import input_shapes_from_cli
    shapes = input_shapes_from_cli(input_shape)     # a malformed shape fails before calibrating
    t0 = time.perf_counter()
    result = run_quantize(model, calib, precision=precision, method=method, keep_float=keep_float,
                          bias_correction=bias_correction, progress=progress, preprocess=preprocess,
                          allow_constant=constant_input,
                          pin_constant_inputs=output.endswith(".dse"),   # .dse guards pinned inputs
                          input_shapes=shapes,
                          plan=plan_path, max_drop=max_drop, weight_bits={"int4": 4, "int7": 7}.get(weights, 8),
                          weight_group=int(weight_group), node_weight_bits=node_bits, a16w8=a16, fp16_arith=f16a,
                          **({"minimize": minimize, "holdout": holdout, "metric": metric,
                              "memory_budget": parse_size(memory_budget) if memory_budget is not None else None,
                              "latency_profiles": latency_profiles} if precision == "mixed" else {}))
    save_result(result, output, **({"input_shapes": shapes, "io_dtype": io_dtype} if output.endswith(".dse")
                                   else {"qdq_format": qdq_format}))
    summary = quantize_summary(result, model, output)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_quantize(summary), err=True)


def _weight_bits_from_cli(items) -> dict[str, int]:
    """--weight-bits NODE=4 ... -> {NODE: 4}; a usage error names a malformed item."""
    out: dict[str, int] = {}
    for it in items:
        name, sep, bits = it.rpartition("=")
        if not sep or not name or bits not in ("4", "7", "8"):
            raise click.UsageError(f"--weight-bits {it!r}: write NODE=4, NODE=7 or NODE=8 (a node name or an op type)")
        out[name] = int(bits)
    return out


@main.command("plan", help="Plan each node's precision under an accuracy budget: every node with an int8 "
              "form is a candidate, and the plan keeps float only what the model's end-to-end agreement with the "
              "float model on held-back calibration feeds needs (top-1 for classifier outputs, decisions at 0.5 "
              "for [0, 1] outputs, relative RMS error otherwise). Writes the plan as a lockfile for "
              "`dsedge quantize --plan`." + EXIT_HELP)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--calib", "calib", required=True, type=click.Path(),
              help="Calibration feeds (as for quantize); the last --holdout of them score the candidates.")
@click.option("--max-drop", "max_drop", default="1%", show_default=True, metavar="PCT",
              help="The accuracy budget: the most the plan may lose against the float model, e.g. 1% or 0.5%.")
@click.option("--minimize", type=click.Choice(["size", "latency"]), default="size", show_default=True,
              help="What the plan makes small: weight bytes, or latency (each node's time in int8 and in float, "
                   "measured per node by the C runtime on this machine, or read from --latency-profile).")
@click.option("--latency-profile", "latency_profiles", multiple=True, type=click.Path(dir_okay=False),
              metavar="FILE", help="With --minimize latency: per-node times measured on the target "
              "(`bin/dsedge-run MODEL.dse --profile --json > FILE` for the model's int8 .dse and again for its fp32 "
              ".dse; give both). Nodes they miss take this machine's times, scaled to the target's.")
@click.option("--memory-budget", "memory_budget", default=None, metavar="SIZE",
              help="The most the planned model may need: its .dse file plus the runtime's arena (e.g. 2MB, "
                   "512KiB). The plan says when no plan fits (--int4 makes room).")
@click.option("--holdout", type=click.IntRange(1, None), default=None,
              help="Feeds held back for scoring (default: half of them, at most 100; a 1 % budget needs "
                   "about 100 to be resolved).")
@click.option("--int4", "int4", is_flag=True,
              help="With --minimize size: also give int4 weights (W4A8) to the int8 Conv/Gemm/MatMul nodes the "
                   "budget allows, the least sensitive per byte first (chosen for size: about int8's speed on "
                   "x86 with AVX2, reference kernels elsewhere).")
@click.option("--a16w8", "a16w8", is_flag=True,
              help="After the search, try int16 activations with int8 weights (A16W8) for the Conv/Gemm/MatMul "
                   "nodes it keeps float, all in one plan, kept when it meets the budget (A16W8 nodes run on "
                   "reference kernels: smaller than float, not faster than int8).")
@click.option("--fp16-arith", "fp16_arith", is_flag=True,
              help="At the end, try fp16 weights and fp16 arithmetic (docs/quant-arith.md §16) for every "
                   "Conv/Gemm/MatMul node the plan keeps float, all in one plan, kept when it meets the budget "
                   "(and --memory-budget). Judged with binary16 arithmetic, what an ARMv8.2-A FP16 device "
                   "computes; other targets widen to float32 by default, at least as close to the float model.")
@click.option("--metric", default=None, metavar="MODULE:FUNCTION",
              help="Score candidates with your function fn(outputs, feeds) -> float (higher is better; e.g. "
                   "accuracy against labels); the drop is the float model's score minus the candidate's.")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="The plan (JSON lockfile).")
@click.option("--method", type=click.Choice(["auto", "minmax", "percentile", "entropy", "mse"]), default="auto",
              show_default=True, help="How activation ranges are chosen (as for quantize).")
@_calibration_data_options("")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON on stdout.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress on stderr.")
def plan(model, calib, max_drop, minimize, latency_profiles, memory_budget, holdout, int4, a16w8, fp16_arith, metric,
         output, method, preprocess, constant_input, as_json, progress):
    from .api import parse_drop, parse_size, plan as run_plan
    from .quant.precision import coarse_budget_note
    if not output.endswith(".json"):
        raise click.UsageError(f"{output}: name the plan *.json")
    if int4 and minimize != "size":
        raise click.UsageError("--int4 is planned for size: use it with --minimize size")
    if latency_profiles and minimize != "latency":
        raise click.UsageError("--latency-profile goes with --minimize latency")
    refuse_overwriting_inputs([output], [("model", model), ("calibration feeds", calib),
                                         *(("latency profile", f) for f in latency_profiles)])
    budget = parse_drop(max_drop)
    mem = parse_size(memory_budget) if memory_budget is not None else None
    # the plan is for the .dse that `quantize --plan ... -o *.dse` builds, which pins an integer input read by
    # If/Loop that is constant in every feed (silero's sample rate): plan that folded graph, not the If
    p = run_plan(model, calib, max_drop=budget, minimize=minimize, holdout=holdout, metric=metric, method=method,
                 progress=progress, preprocess=preprocess, allow_constant=constant_input, int4=int4,
                 memory_budget=mem, latency_profiles=latency_profiles, a16w8=a16w8, fp16_arith=fp16_arith,
                 pin_constant_inputs=True)
    text = p.to_json()
    atomic_write_bytes(output, text.encode())
    if as_json:
        click.echo(text)
    else:
        kept = ", ".join(p.keep_float[:12]) + (f", ... ({len(p.keep_float)} in all)" if len(p.keep_float) > 12 else "")
        click.echo(f"{model}: {p.search['candidates']} nodes could run in int8 ({p.search['groups']} groups); "
                   f"kept float: {kept or 'none'}" + (f"; int4 weights: {len(p.int4)} nodes" if int4 else "")
                   + (f"; A16W8: {', '.join(p.a16w8) or 'none'}" if a16w8 else "")
                   + (f"; fp16 arithmetic: {', '.join(p.fp16_arith) or 'none'}" if fp16_arith else ""),
                   err=True)
        if p.fp16_arith:
            click.echo("fp16 arithmetic: accuracy judged with binary16 arithmetic (what an ARMv8.2-A FP16 device "
                       "computes; other targets widen to float32 by default, at least as close to the float model)",
                       err=True)
        chosen = p.tried[p.search["chosen_index"]] if "chosen_index" in p.search and p.tried else {}
        how = (f" (answers changed {100 * chosen['changed']:.2f} %; expected on new feeds {100 * chosen['expected']:.2f} %, "
               f"at most {100 * chosen['expected_upper']:.2f} % at 95 %)" if "expected_upper" in chosen else "")
        click.echo(f"drop on {p.holdout} held-back feeds: {100 * p.drop:.2f} %{how} (budget {100 * p.budget:.2f} %"
                   f"{', met' if p.meets_accuracy else ', NOT met: even float nodes everywhere lose more'}); "
                   f"{p.search['evaluations']} plans evaluated in {p.search['seconds']:.1f} s", err=True)
        if p.memory:
            need = p.memory.get("total")
            click.echo(f"memory: .dse {p.memory.get('bytes', 0):,} B + arena {p.memory.get('arena_bytes', 0):,} B = "
                       f"{need:,} B" + ("" if p.memory_budget is None else
                                        f" (budget {p.memory_budget:,} B: " + ("met)" if p.meets_memory else
                                        "NOT met" + ("" if int4 else "; --int4 makes weights smaller") + ")")),
                       err=True)
        if minimize == "latency" and p.cost.get("est_ms") is not None:
            click.echo(f"latency ({p.cost.get('latency_from')}): {p.cost['est_ms']:.3f} ms estimated from per-node times"
                       + (f"; {p.cost['host_ms']:.3f} ms measured here" if "host_ms" in p.cost else ""), err=True)
        note = coarse_budget_note(p)
        if note:
            click.echo(f"note: {note}", err=True)
        click.echo(f"wrote {output}", err=True)


@main.command("debug", help="Find the layers that hurt accuracy in int8 and what fixes them. Prints a table, the "
              "layer that hurts most first: its precision (in the default int8 plan, or in --plan), its output "
              "range, the SQNR of its output against the float model on the calibration feeds and how much of it "
              "the layer itself loses, its end-to-end sensitivity (the precision planner on held-back feeds: the "
              "noise and accuracy drop it causes alone) and a suggested fix. --report writes one self-contained "
              "HTML page with the table, a sensitivity chart, the accuracy/size and accuracy/latency curves of the "
              "plans tried and the arena drawn as buffers over time." + EXIT_HELP)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--calib", "calib", required=True, type=click.Path(),
              help="Calibration feeds (as for quantize); with sensitivity, the last --holdout of them score it.")
@click.option("--plan", "plan_path", default=None, type=click.Path(dir_okay=False),
              help="Debug the precision plan written by `dsedge plan` (its own sensitivity and plans tried are "
                   "reused when it holds them). Default: the default int8 plan of `dsedge quantize`.")
@click.option("--report", "report", default=None, type=click.Path(dir_okay=False),
              help="Write the report to this HTML file (one self-contained page). Default: no report.")
@click.option("--top", type=click.IntRange(0, None), default=20, show_default=True,
              help="Layers shown in the table, worst first; 0 shows all (--json and --report always hold all).")
@click.option("--sensitivity/--no-sensitivity", "sensitivity", default=True, show_default=True,
              help="Measure each layer's end-to-end sensitivity (about 2 runs of the model on the held-back "
                   "feeds per candidate layer, in the C runtime). --no-sensitivity (or --fast) ranks by the SQNR "
                   "each layer loses and calibrates on every feed.")
@click.option("--fast", "fast", is_flag=True, help="The same as --no-sensitivity.")
@click.option("--max-drop", "max_drop", default=None, metavar="PCT",
              help="The accuracy budget the suggestions and the suggested plan are judged against (default 1%; "
                   "with --plan, the plan's own).")
@click.option("--minimize", type=click.Choice(["size", "latency"]), default=None,
              help="What the suggested plan makes small, as for `dsedge plan` (default size; with --plan, the "
                   "plan's own).")
@click.option("--holdout", type=click.IntRange(1, None), default=None,
              help="Feeds held back for the sensitivity (default: half of them, at most 100; with --plan, the "
                   "plan's own).")
@click.option("--metric", default=None, metavar="MODULE:FUNCTION",
              help="Score plans with your function fn(outputs, feeds) -> float, as for `dsedge plan`. Default: "
                   "agreement with the float model (top-1, decisions at 0.5, or relative RMS error); with --plan, "
                   "the plan's own.")
@click.option("--method", type=click.Choice(["auto", "minmax", "percentile", "entropy", "mse"]), default="auto",
              show_default=True, help="How activation ranges are chosen (as for quantize).")
@_calibration_data_options("")
@click.option("--json", "as_json", is_flag=True, help="Print the result (every layer) as JSON on stdout.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress on stderr.")
def debug(model, calib, plan_path, report, top, sensitivity, fast, max_drop, minimize, holdout, metric, method,
          preprocess, constant_input, as_json, progress):
    from .api import debug as run_debug, parse_drop, write_debug_report
    from .report import format_debug
    if plan_path is not None:
        given = [o for o, v in (("--max-drop", max_drop), ("--minimize", minimize), ("--holdout", holdout),
                                ("--metric", metric)) if v is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)}: --plan carries its own budget, objective, held-back feeds "
                                   "and metric; leave them out")
    if report is not None:
        if not report.lower().endswith((".html", ".htm")):
            raise click.UsageError(f"--report {report}: name the report *.html")
        folder = os.path.dirname(os.path.abspath(report))
        if not os.path.isdir(folder):
            raise DseError(f"{report}: cannot write: folder {folder} does not exist")
        refuse_overwriting_inputs([report], [("model", model), ("calibration feeds", calib), ("plan", plan_path)])
    res = run_debug(model, calib, plan=plan_path, sensitivity=sensitivity and not fast,
                    max_drop=parse_drop(max_drop or "1%"), minimize=minimize or "size", holdout=holdout, metric=metric, method=method, preprocess=preprocess,
                    allow_constant=constant_input, progress=progress)
    if report is not None:
        res["report"], res["report_bytes"] = report, write_debug_report(res, report)
    if as_json:
        click.echo(json.dumps(res, indent=1, default=_json_default))
    else:
        click.echo(format_debug(res, top=top), err=True)


def _json_default(v):
    """numpy scalars and arrays in --json output."""
    if hasattr(v, "tolist"):
        return v.tolist()
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


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


@main.command("run", help="Run a .dse model with the C runtime (the same library an app embeds) on the "
              "arrays of an .npz file and write the outputs to an .npz file. Arrays are named by input; an "
              "extra leading axis runs one inference per sample. A model calibrated from images or WAV files "
              "also takes an image or a WAV file, preprocessed as during calibration (a WAV runs one "
              "inference per window, outputs stacked)." + EXIT_HELP)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--input", "-i", "input_path", required=True, type=click.Path(dir_okay=False),
              help="An .npz file with one array per model input (keys = input names), or an image / WAV file "
                   "when the model carries preprocessing metadata.")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="The .npz file to write, one array per model output (keys = output names).")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Threads running each inference (the same outputs for any count).")
@click.option("--json", "as_json", is_flag=True, help="Print the outputs' names, shapes and dtypes as JSON on stdout.")
def run(model, input_path, output, threads, as_json):
    import numpy as np
    from .runtime import Runtime, run_feeds
    if not os.path.isfile(input_path):
        raise DseError(f"{input_path}: no such file", hint="give an .npz file with one array per input, or an "
                                                           "image / WAV file")
    if not output.endswith(".npz"):
        raise DseError(f"{output}: the output must be an .npz file")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise DseError(f"{output}: cannot write: folder {folder} does not exist")
    refuse_overwriting_inputs([output], [("model", model), ("input feeds", input_path)])
    from .calibration.preprocess import media_kind
    media = media_kind(input_path)
    feeds = None
    if media is None:
        try:
            with np.load(input_path, allow_pickle=False) as z:
                feeds = {k: z[k] for k in z.files}
        except Exception as e:
            raise DseError(f"{input_path}: not a readable .npz file ({e})",
                           hint="give an .npz, or an image / WAV file for a model calibrated from images / WAVs") \
                from None
    with Runtime(model, threads=threads) as rt:
        if feeds is None:
            if rt.preprocessing is None:
                raise DseError(f"{model}: carries no preprocessing metadata, so it cannot take {input_path} directly",
                               hint=f"quantise it with --calib on a folder of {media}s (and --preprocess), "
                                    "or give an .npz of input arrays")
            outs = rt.run_file(input_path)
            n = 1 if rt.preprocessing.kind == "image" else len(next(iter(outs.values())))
        else:
            outs, n = run_feeds(rt, feeds)
    buf = io.BytesIO()
    np.savez(buf, **outs)
    atomic_write_bytes(output, buf.getvalue())
    info = {"model": model, "inferences": n, "output": output,
            "outputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in outs.items()}}
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for k, v in outs.items():
            click.echo(f"{k}: {v.dtype}{list(v.shape)}", err=True)
        click.echo(f"{n} inference(s); wrote {output}", err=True)


@main.command("profile", help="Time every node of a .dse model in the C runtime: a table of the nodes, slowest "
              "first (op, node name, the kernel chosen at load and its ISA, median ms over the runs, % of the "
              "total), then the same per op. The inputs are the arrays of an .npz (or an image / WAV file for a "
              "model that carries preprocessing), else seeded random values of each input's dtype and shape. The "
              "bundle's `dsedge-run --profile` prints the same on the target." + EXIT_HELP)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--input", "-i", "input_path", default=None, type=click.Path(dir_okay=False),
              help="An .npz file with one array per model input (the first sample when it has a leading sample "
                   "axis), or an image / WAV file. Default: random inputs.")
@click.option("--repeat", type=int, default=20, show_default=True, help="Timed runs (after one warm-up run).")
@click.option("--ref", "ref", is_flag=True, help="Load with the reference kernels only (DSE_LOAD_REF_KERNELS).")
@click.option("--top", type=int, default=None, help="Show only the slowest N nodes (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON on stdout.")
def profile(model, input_path, repeat, ref, top, as_json):
    import numpy as np
    from .runtime import Runtime
    if repeat < 1:
        raise click.UsageError("--repeat must be at least 1")
    if not os.path.isfile(model):
        raise DseError(f"{model}: no such file")
    with Runtime(model, kernels="ref" if ref else "auto") as rt:
        if input_path is None:
            rng = np.random.default_rng(0)
            feeds = {}
            for spec in rt.inputs:
                if spec.dtype.kind == "f":
                    feeds[spec.name] = rng.standard_normal(spec.shape).astype(spec.dtype)
                elif spec.dtype.kind == "b":
                    feeds[spec.name] = rng.integers(0, 2, spec.shape).astype(bool)
                else:
                    info = np.iinfo(spec.dtype)
                    feeds[spec.name] = rng.integers(max(info.min, -128), min(info.max, 127) + 1, spec.shape,
                                                    dtype=np.int64).astype(spec.dtype)
        else:
            if not os.path.isfile(input_path):
                raise DseError(f"{input_path}: no such file")
            from .calibration.preprocess import media_kind
            if media_kind(input_path) is not None:
                feeds = rt.preprocess(input_path)
            else:
                try:
                    with np.load(input_path, allow_pickle=False) as z:
                        feeds = {k: z[k] for k in z.files}
                except Exception as e:
                    raise DseError(f"{input_path}: not a readable .npz file ({e})") from None
            feeds = {s.name: (feeds[s.name][0] if s.name in feeds and np.ndim(feeds[s.name]) == len(s.shape) + 1
                              else feeds.get(s.name)) for s in rt.inputs if s.name in feeds}
        prof = rt.profile(feeds, repeat=repeat)
    if as_json:
        click.echo(json.dumps({"model": model, **prof.to_dict()}, indent=2))
    else:
        click.echo(f"{model}: " + prof.table(limit=top), err=True)


@main.command("export", help="Build a deployable bundle for a target: model.dse, the C runtime "
              "(include/, lib/libdsedge.a, lib/libdsedge.so), a static bin/dsedge-run, Python bindings "
              "(python/) and a README. MODEL is a .dse artifact, or an ONNX model quantised on the way "
              "(calibrated with --calib; without it, dynamically: int8 weights, inputs quantised per run). "
              "Cross compiler: $CC if set, else zig cc (the ziglang package), else "
              "Debian's cross gcc." + EXIT_HELP)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--target", type=click.Choice(["host", "x86_64", "arm64", "armv7"]), default="host", show_default=True,
              help="CPU the bundle runs on: host (this machine), x86_64, arm64 (aarch64) or armv7 (32-bit, hard float).")
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False),
              help="The bundle folder (created if needed; files in it are overwritten).")
@click.option("--calib", default=None, type=click.Path(),
              help="Calibration feeds for an ONNX MODEL (a folder of .npz or one .npz with a leading sample "
                   "axis). Default: none (a .dse MODEL is copied; an ONNX MODEL is quantised dynamically).")
@click.option("--precision", type=click.Choice(["int8", "fp16", "fp32"]), default="int8", show_default=True,
              help="For an ONNX MODEL: as in `dsedge quantize`.")
@click.option("--method", type=click.Choice(["auto", "minmax", "percentile", "entropy", "mse"]), default="auto",
              show_default=True, help="For an ONNX MODEL: how activation ranges are chosen, as in `dsedge quantize`.")
@click.option("--keep-float", "keep_float", multiple=True, metavar="NODE|OPTYPE",
              help="For an ONNX MODEL: keep this node or op type in float; repeatable. Default: none.")
@click.option("--bias-correction/--no-bias-correction", default=True, show_default=True,
              help="For an ONNX MODEL: as in `dsedge quantize`.")
@_calibration_data_options("For an ONNX MODEL: ")
@click.option("--json", "as_json", is_flag=True, help="Print the bundle manifest (files, sizes, compiler) as JSON on stdout.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars on stderr.")
def export(model, target, output, calib, precision, method, keep_float, bias_correction, preprocess, constant_input,
           as_json, progress):
    from .api import export_bundle
    from .export.bundle import BUNDLE_FILES
    # a .dse already at <output>/model.dse is left in place (not copied onto itself)
    written = [os.path.join(output, f) for f in BUNDLE_FILES if not (f == "model.dse" and calib is None)]
    refuse_overwriting_inputs(written, [("model", model), ("calibration feeds", calib)])
    opts = {"precision": precision, "method": method, "keep_float": keep_float, "bias_correction": bias_correction,
            "allow_constant": constant_input}
    if preprocess:
        if calib is None:
            raise click.UsageError("--preprocess applies with --calib (an ONNX MODEL quantised on the way)")
        opts["preprocess"] = preprocess
    m = export_bundle(model, output, target=target, calib=calib, quantize_options=opts, progress=progress)
    if as_json:
        click.echo(json.dumps(m, indent=2))
    else:
        click.echo(f"bundle {output} for {m['arch']} ({m['compiler']}):", err=True)
        for k, v in m["sizes"].items():
            click.echo(f"  {k:20s} {v:>10,d} B", err=True)


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
