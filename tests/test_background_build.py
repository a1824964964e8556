"""`streamer models build --background`: detached, logged, one build per bundle at a time.

No model is built here: the lock is held by the test, and the detached process runs a
cheap command instead of a build.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from streamer.cli import background_build
from streamer.cli.main import cli
from streamer.settings import get_settings


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("STREAMER_CACHE_DIR", str(tmp_path / "cache"))
    get_settings.cache_clear()
    yield tmp_path / "cache"
    get_settings.cache_clear()


def test_a_second_build_of_the_same_bundle_refuses_to_start(cache: Path) -> None:
    out = cache / "bundles" / "full"
    held = background_build.claim(out)
    assert held is not None
    try:
        assert background_build.claim(out) is None and background_build.is_building(out)
        runner = CliRunner()
        fg = runner.invoke(cli, ["models", "build", "--profile", "tiny", "--out", str(out)])
        assert fg.exit_code == 1 and "another build" in fg.output, fg.output
        bg = runner.invoke(cli, ["models", "build", "--background"])  # the full profile
        assert bg.exit_code == 0 and "already running" in bg.output, bg.output
        assert not background_build.log_path(out).exists()  # nothing was started
    finally:
        held.close()
    assert not background_build.is_building(out)


def test_the_options_given_are_passed_on_to_the_detached_process() -> None:
    seen: list[list[str]] = []

    @click.command()
    @click.option("--layers", type=int, multiple=True)
    @click.option("--seed", type=int, default=13)
    @click.option("--base", default=None)
    @click.option("--quiet", is_flag=True)
    @click.option("--background", is_flag=True)
    def cmd(**_: object) -> None:
        seen.append(background_build.rerun_args(click.get_current_context(), {"background"}))

    CliRunner().invoke(cmd, ["--layers", "3", "--layers", "2", "--quiet", "--background"],
                       catch_exceptions=False)
    assert seen == [["--layers", "3", "--layers", "2", "--seed", "13", "--quiet"]]


def test_a_detached_command_runs_on_and_writes_its_log(tmp_path: Path) -> None:
    out = tmp_path / "bundles" / "full"
    schemas = tmp_path / "schemas"
    started = background_build.start(out, ["schema", "export", str(schemas)])
    assert started is not None and started.log == tmp_path / "bundles" / "full.build.log"
    deadline = time.monotonic() + 60
    while not (schemas / "scored.schema.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (schemas / "scored.schema.json").is_file()
    assert "streamer schema export" in started.log.read_text()
