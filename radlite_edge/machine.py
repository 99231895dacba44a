"""The machine a figure was measured on: every benchmark report carries this."""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from pathlib import Path


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def describe() -> dict[str, object]:
    import psutil

    info: dict[str, object] = {
        "cpu": _cpu_model(),
        "arch": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "radlite_edge": _version("radlite-edge"),
        "llama_cpp_python": _version("llama-cpp-python"),
        "gguf": _version("gguf"),
        "numpy": _version("numpy"),
    }
    try:
        import llama_cpp

        system_info = llama_cpp.llama_print_system_info().decode().strip(" |")
        info["llama_cpp_system_info"] = system_info
        info["llama_cpp_features"] = llama_cpp_features(system_info)
        info["ggml"] = _ggml_version(llama_cpp)
    except Exception as e:  # the report must still print on a broken install
        info["llama_cpp_system_info"] = f"unavailable: {e}"
    return info


def llama_cpp_features(system_info: str) -> list[str]:
    """What llama.cpp was built to use (SIMD sets, OpenMP, repacking), from its system_info ("AVX2 = 1 | ...")."""
    features = []
    for item in system_info.replace("CPU :", "|").split("|"):
        name, _, flag = item.partition("=")
        if flag.strip() == "1":
            features.append(name.strip())
    return features


def _ggml_version(llama_cpp) -> str | None:
    """The llama.cpp (ggml) release and commit behind llama-cpp-python, e.g. ``0.25.3 (0c1e570)``."""
    import ctypes

    lib = Path(llama_cpp.__file__).parent / "lib"
    for name in ("libggml-base.so", "libggml-base.dylib", "ggml-base.dll"):
        if (lib / name).exists():
            base = ctypes.CDLL(str(lib / name))
            base.ggml_version.restype = base.ggml_commit.restype = ctypes.c_char_p
            return f"{base.ggml_version().decode()} ({base.ggml_commit().decode()})"
    return None


def one_line() -> str:
    d = describe()
    return (f"{d['cpu']} · {d['usable_cpus']} CPUs · {d['ram_gib']} GiB · {d['os']} · "
            f"llama-cpp-python {d['llama_cpp_python']} · ggml {d.get('ggml')} · gguf {d['gguf']}")
