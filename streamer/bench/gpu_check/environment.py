"""The machine, the GPU and the library versions a GPU check ran with (environment.json).

Read from ``nvidia-smi`` (driver, the CUDA version the driver runs, each GPU), torch (the
CUDA it was built with, cuDNN, whether it sees the GPU), onnxruntime (its providers) and
the installed distributions. Nothing here needs a GPU: on a CPU machine the GPU fields
stay empty and the notes say why.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import socket
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from streamer.bench.gpu_check.results import Environment, Gpu, Mode

PACKAGES = ("streamer", "torch", "transformers", "tokenizers", "onnx", "onnxruntime",
            "onnxruntime-gpu", "tensorrt", "numpy", "faust-streaming", "aiokafka",
            "confluent-kafka", "redis", "pydantic")
_CUDA_VERSION = re.compile(r"CUDA Version:\s*([0-9.]+)")


def _proc_line(path: str, prefix: str) -> str | None:
    """The first line of ``path`` (a /proc file) that starts with ``prefix``."""
    with contextlib.suppress(OSError):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.startswith(prefix):
                return line
    return None


def _cpu_model() -> str:
    line = _proc_line("/proc/cpuinfo", "model name")
    return line.split(":", 1)[1].strip() if line else (platform.processor() or platform.machine())


def _memory_gib() -> float | None:
    fields = (_proc_line("/proc/meminfo", "MemTotal:") or "").split()  # MemTotal: N kB
    kib = _number(fields[1]) if len(fields) > 1 else None
    return round(kib / 2**20, 1) if kib else None


def _number(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:  # "[N/A]"
        return None


def _nvidia_smi(env: Environment) -> None:
    smi = shutil.which("nvidia-smi")
    env.nvidia_smi = smi
    if smi is None:
        env.notes.append("nvidia-smi not found: no NVIDIA driver on this machine")
        return
    try:
        head = subprocess.run([smi], capture_output=True, text=True, timeout=30)
        query = subprocess.run(
            [smi, "--query-gpu=name,driver_version,memory.total,compute_cap",
             "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        env.notes.append(f"nvidia-smi did not answer: {exc}")
        return
    if head.returncode != 0:
        env.notes.append(f"nvidia-smi failed (exit {head.returncode}): "
                         f"{(head.stderr or head.stdout).strip()[:300]}")
        return
    m = _CUDA_VERSION.search(head.stdout)
    env.cuda_driver = m.group(1) if m else None
    for line in query.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0]:
            continue
        memory = _number(parts[2]) if len(parts) > 2 else None
        env.gpus.append(Gpu(name=parts[0], driver=parts[1], memory_mib=memory,
                            compute_capability=parts[3] if len(parts) > 3 else None))
    env.driver = env.gpus[0].driver if env.gpus else None


def _torch(env: Environment) -> None:
    try:
        import torch
    except ImportError:
        env.notes.append("torch is not installed (the train extra)")
        return
    env.torch_cuda = torch.version.cuda
    env.torch_cuda_available = bool(torch.cuda.is_available())
    if env.torch_cuda_available:
        env.torch_device = torch.cuda.get_device_name(0)
        cudnn = torch.backends.cudnn.version()
        env.cudnn = str(cudnn) if cudnn else None
    elif env.torch_cuda is None:
        env.notes.append(f"torch {torch.__version__} is a CPU-only build")
    else:
        env.notes.append(f"torch (built with CUDA {env.torch_cuda}) sees no GPU")


def _onnxruntime(env: Environment) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        env.notes.append("onnxruntime is not installed")
        return
    env.ort_device = ort.get_device()
    env.ort_providers = list(ort.get_available_providers())
    if "CUDAExecutionProvider" not in env.ort_providers:
        env.notes.append("onnxruntime has no CUDA provider (the gpu extra, onnxruntime-gpu, "
                         "is not installed, or the CPU package shadows it)")


def collect(mode: Mode) -> Environment:
    packages: dict[str, str] = {}
    missing: list[str] = []
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    env = Environment(
        mode=mode, date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        host=socket.gethostname(), system=f"{platform.system()} {platform.release()}",
        cpu=_cpu_model(), cpu_count=os.cpu_count(), memory_gib=_memory_gib(),
        python=platform.python_version(), packages=packages, missing=missing,
        ld_library_path=os.environ.get("LD_LIBRARY_PATH", ""),
    )
    if "onnxruntime" in packages and "onnxruntime-gpu" in packages:
        env.notes.append("both onnxruntime and onnxruntime-gpu are installed: they share the "
                         "onnxruntime package, and the one installed last wins")
    _nvidia_smi(env)
    _torch(env)
    _onnxruntime(env)
    return env


def problems(env: Environment) -> list[str]:
    """What stops a GPU check before it starts, each with what to do."""
    out: list[str] = []
    if env.nvidia_smi is None or not env.gpus:
        out.append("no NVIDIA GPU found (nvidia-smi missing or lists none): run this on a "
                   "machine with a CUDA GPU and its driver, or use --dry-run on a CPU")
    elif not env.torch_cuda_available:
        out.append(f"torch {env.packages.get('torch', '(not installed)')} sees no GPU "
                   f"(built with CUDA {env.torch_cuda}, driver {env.driver} runs CUDA up to "
                   f"{env.cuda_driver}): install a torch build for this driver's CUDA")
    return out


def markdown(env: Environment) -> str:
    gpus = "; ".join(f"{g.name} ({g.memory_mib} MiB, compute {g.compute_capability})"
                     for g in env.gpus) or "none"
    pkgs = ", ".join(f"{k} {v}" for k, v in sorted(env.packages.items()))
    lines = [
        f"- date: {env.date}; mode: {env.mode}",
        f"- machine: {env.cpu}, {env.cpu_count} cores, {env.memory_gib} GiB, {env.system}",
        f"- GPU: {gpus}; driver {env.driver or '-'}, CUDA (driver) {env.cuda_driver or '-'}",
        f"- torch CUDA {env.torch_cuda or '-'} (sees a GPU: {env.torch_cuda_available}"
        f"{', ' + env.torch_device if env.torch_device else ''}), cuDNN {env.cudnn or '-'}",
        f"- onnxruntime device {env.ort_device or '-'}, providers: "
        f"{', '.join(env.ort_providers) or '-'}",
        f"- Python {env.python}; {pkgs}",
    ]
    lines += [f"- note: {n}" for n in env.notes]
    return "\n".join(lines) + "\n"
