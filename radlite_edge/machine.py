"""The machine a figure was measured on: every benchmark report carries this."""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata


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

        info["llama_cpp_system_info"] = llama_cpp.llama_print_system_info().decode().strip(" |")
    except Exception as e:  # the report must still print on a broken install
        info["llama_cpp_system_info"] = f"unavailable: {e}"
    return info


def one_line() -> str:
    d = describe()
    return (f"{d['cpu']} · {d['usable_cpus']} CPUs · {d['ram_gib']} GiB · {d['os']} · "
            f"llama-cpp-python {d['llama_cpp_python']} · gguf {d['gguf']}")
