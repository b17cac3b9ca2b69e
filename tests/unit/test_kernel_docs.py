"""docs/kernels.md's "Kernels per ISA" table is generated from the kernel list
(runtimes/c/src/kernels*.inc, `python -m dsedge.runtime.kernel_list`) and must match it; the ISA
names the runtime reports (src/cpu.c) are the ones the list's ISA column gives."""
import re
from pathlib import Path

from dsedge.runtime import kernel_list

ROOT = Path(__file__).resolve().parents[2]


def test_kernel_table_is_current():
    assert kernel_list.DOC.read_text() == kernel_list.refresh(), \
        "docs/kernels.md: stale kernels-per-ISA table: run `python -m dsedge.runtime.kernel_list`"


def test_kernel_list_parsed():
    ks = kernel_list.kernels()
    isas = kernel_list.isa_names()
    assert isas[0] == "REF" and {"AVX2", "NEON", "NEON_DOTPROD"} <= set(isas)
    assert ks and all(k.isa in isas for k in ks)
    assert all(k.run.endswith("__" + k.isa.lower()) for k in ks)   # dse_<dtype>_<op>__<isa>
    assert all(k.arch == "any" for k in ks if k.isa == "REF")
    assert all(k.arch in ("x86_64", "arm64", "armv7") for k in ks if k.isa != "REF")
    text = "\n".join((ROOT / "runtimes/c/src" / f).read_text() for f in {k.file for k in ks})
    macros = re.findall(r"^#define (\w+)\(\w+\) DSE_KERNEL\(", text, re.M)   # one-parameter list macros
    calls = sum(len(re.findall(rf"\b{mac}\(\s*\w+\s*\)", text)) - 1 for mac in macros)   # - the #define
    assert len(ks) == len(re.findall(r"^DSE_KERNEL\(", text, re.M)) + calls
    # variants come before the REF kernels (the loader takes the first that accepts)
    first_ref = next(i for i, k in enumerate(ks) if k.isa == "REF")
    assert all(k.isa == "REF" for k in ks[first_ref:])


def test_isa_names_match_cpu_c():
    src = (ROOT / "runtimes/c/src/cpu.c").read_text()
    names = re.findall(r'"([a-z0-9-]+)"', src[src.index("dse__isa_name"):])
    assert names == [i.lower().replace("_", "-") for i in kernel_list.isa_names()]
