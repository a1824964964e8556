"""matplotlib and cryptography are optional extras: without them, the one place that needs
each says which extra to install, instead of an ImportError from deep inside.

``sys.modules[name] = None`` makes ``import name`` raise ImportError, as when the package
is not installed. No servers needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from streamer.latency.report import StageLatency


def _row(stage: str) -> StageLatency:
    return StageLatency(stage=stage, count=10, mean_ms=2.0, p50_ms=2.0, p90_ms=3.0,
                        p99_ms=4.0, p999_ms=5.0, max_ms=6.0, share_mean=None,
                        share_p50=None, share_p99=None)


def test_charts_without_matplotlib_name_the_charts_extra(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    from streamer.latency.charts import ChartsUnavailable, write_charts

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ChartsUnavailable) as err:
        write_charts([_row("infer"), _row("end_to_end")], tmp_path / "charts")
    assert "streamer[charts]" in err.value.message
    assert "matplotlib" in err.value.message
    assert isinstance(err.value, click.ClickException)  # one line from the CLI, no traceback
    assert not (tmp_path / "charts").exists()


def test_streamer_latency_png_without_matplotlib_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import streamer.cli.summary_cmd as summary_cmd
    from streamer.cli.main import cli

    async def recorded(worker: str, window_s: float | None
                       ) -> tuple[list[StageLatency], None]:
        return [_row("infer"), _row("end_to_end")], None

    monkeypatch.setattr(summary_cmd, "_latency", recorded)  # no Redis needed
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = CliRunner().invoke(cli, ["latency", "--png", str(tmp_path / "charts")])
    assert out.exit_code == 1, out.output
    assert "pip install 'streamer[charts]'" in out.output
    assert "Traceback" not in out.output


def test_local_stack_tls_without_cryptography_names_the_devstack_extra(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from streamer.devstack import StackError
    from streamer.devstack.tls import ensure_server_tls

    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(StackError) as err:
        ensure_server_tls(tmp_path / "tls")
    assert "pip install 'streamer[devstack]'" in str(err.value)
    assert "cryptography" in str(err.value)
