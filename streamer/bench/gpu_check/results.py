"""The models of the files ``scripts/gpu-check.sh`` writes (environment, e2e, figures)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from streamer.bench.pipeline.results import Run

Mode = Literal["gpu", "dry-run"]


class Gpu(BaseModel):
    """One GPU as ``nvidia-smi --query-gpu`` lists it."""

    name: str
    driver: str
    memory_mib: int | None = None
    compute_capability: str | None = None


class Environment(BaseModel):
    """The machine and the software the figures were measured with (environment.json)."""

    mode: Mode
    date: str
    host: str
    system: str
    cpu: str
    cpu_count: int | None
    memory_gib: float | None
    python: str
    packages: dict[str, str] = Field(description="Installed distributions and their versions.")
    missing: list[str] = Field(default_factory=list, description="Looked for, not installed.")
    nvidia_smi: str | None = Field(None, description="Path of nvidia-smi; None: not found.")
    driver: str | None = None
    cuda_driver: str | None = Field(
        None, description="The CUDA version nvidia-smi reports: the newest the driver runs.")
    gpus: list[Gpu] = Field(default_factory=list)
    torch_cuda: str | None = Field(None, description="CUDA that torch was built with.")
    torch_cuda_available: bool = False
    torch_device: str | None = None
    cudnn: str | None = None
    ort_device: str | None = None
    ort_providers: list[str] = Field(default_factory=list)
    ld_library_path: str = ""
    notes: list[str] = Field(default_factory=list)


class E2eResult(BaseModel):
    """One worker end to end (e2e.json): a warm-up burst, a saturating burst, a fixed load."""

    date: str
    bundle: str
    scorer: str = Field(description="What the worker scored with (its /api/model).")
    model: dict[str, str] = Field(default_factory=dict)
    worker_env: dict[str, str] = Field(default_factory=dict)
    load_generator: str
    partitions: int
    warmup: Run
    burst: Run = Field(description="As fast as possible: its drain rate is the throughput.")
    hold: Run = Field(description="A fixed offered load: the end-to-end latency.")
    throughput_msgs_per_s: float = Field(description="The burst's drain rate.")
    wall_s: float


class Figure(BaseModel):
    """One measured number, named after where it comes from."""

    name: str
    value: float
    unit: str
    source: str = Field(description="The results file it was read from.")


class Target(BaseModel):
    """A GPU target of issue 32 against what this run measured."""

    what: str
    goal: str
    measured: str
    met: bool | None = Field(description="None: not measured in this run (no GPU, no row).")


class Report(BaseModel):
    """figures.json: every figure of the run, the targets, and what went wrong."""

    mode: Mode
    date: str
    wall_s: float | None = Field(None, description="The script's wall time before the summary.")
    steps_s: dict[str, float] = Field(default_factory=dict)
    environment: Environment
    figures: list[Figure]
    targets: list[Target]
    notes: list[str] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list,
                                description="Checks that failed: the script exits non-zero.")
