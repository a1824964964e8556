"""A first run on a fresh machine tells the truth early: without the labelled data, setup
(`scripts/setup.sh --require-data`, what scripts/demo.sh runs) and `streamer models build`
stop at once, before any install or training, saying where the data must be and which
variable points at it; and a build's log holds no progress-bar junk from the libraries."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamer.cli.common import ExitCode
from streamer.training.data import DATA_ENV, DataMissing, require_labelled_data

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("tfn-sentiment", "phrasebank", "tfn-topic", "reuters-topics")


def test_the_data_check_names_each_missing_file_and_the_variable(tmp_path: Path) -> None:
    (tmp_path / "phrasebank").mkdir()
    (tmp_path / "phrasebank" / "train.csv").write_text("text,label\nup,positive\n")
    with pytest.raises(DataMissing) as err:
        require_labelled_data(tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and DATA_ENV in message and "--data" in message
    for name in ("tfn-sentiment", "tfn-topic", "reuters-topics"):
        assert f"{name}/train.csv" in message
    assert "missing phrasebank" not in message and ", phrasebank/train.csv" not in message


def test_the_data_check_passes_when_every_file_is_there(tmp_path: Path) -> None:
    for name in DATASETS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.csv").write_text("text,label\nup,positive\n")
    require_labelled_data(tmp_path)


def test_models_build_without_data_fails_at_once_in_one_line(tmp_path: Path) -> None:
    start = time.monotonic()
    out = subprocess.run(
        [str(Path(sys.executable).parent / "streamer"), "models", "build", "--profile", "tiny",
         "--out", str(tmp_path / "bundle")],
        cwd=tmp_path, env={**os.environ, DATA_ENV: str(tmp_path / "nowhere")},
        capture_output=True, text=True, timeout=120, check=False)
    took = time.monotonic() - start
    assert out.returncode == ExitCode.NOT_FOUND, out.stdout + out.stderr
    assert out.stdout == "" and len(out.stderr.splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert str(tmp_path / "nowhere") in out.stderr and DATA_ENV in out.stderr
    assert took < 30, f"{took:.0f}s: the check must come before torch and the training"
    assert not (tmp_path / "bundle").exists()


def test_setup_without_data_stops_before_installing_anything(tmp_path: Path) -> None:
    start = time.monotonic()
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh"), "--require-data"],
        env={**os.environ, DATA_ENV: str(tmp_path / "nowhere"),
             "PYTHON": "/nonexistent/python"},  # would fail loudly if it got that far
        capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == ExitCode.NOT_FOUND, out.stdout + out.stderr
    assert time.monotonic() - start < 10
    assert "python environment" not in out.stdout  # nothing slow was started
    error = [line for line in out.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(error) == 1, out.stderr
    assert str(tmp_path / "nowhere") in error[0] and DATA_ENV in error[0]
    assert "tfn-sentiment/train.csv" in error[0]


def test_library_progress_bars_are_off_during_a_build_and_back_after(
        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    from transformers.utils import logging as hf_logging

    from streamer.training.progress import library_bars_off

    hf_logging.enable_progress_bar()
    with library_bars_off():
        # What from_pretrained draws as "Loading weights: ...\r" into a build's log.
        list(hf_logging.tqdm(range(50), desc="Loading weights"))
    assert "\r" not in capsys.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
