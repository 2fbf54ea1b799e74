"""``quantplan bench`` against a live endpoint (the stub server), as a user runs it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from stub_engine import CPU, StubEngine
from typer.testing import CliRunner

from quantplan.agent.serve.engine import ServeOptions
from quantplan.agent.serve.manager import start_server
from quantplan.cli import app, register_commands


def test_bench_endpoint_json_and_table(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    register_commands()
    runner = CliRunner()
    with start_server(
        StubEngine(), model, ServeOptions(), python=Path(sys.executable), hardware=CPU
    ) as server:
        url = server.endpoint.base_url
        as_json = runner.invoke(
            app, ["bench", url, "-c", "1,2", "-n", "4", "--output-tokens", "8", "--json"]
        )
        table = runner.invoke(app, ["bench", url, "--rate", "20", "-n", "4"])
        refused = runner.invoke(app, ["bench", url, "-c", "0"])
    assert as_json.exit_code == 0, as_json.output
    payload = json.loads(as_json.stdout)
    assert [level["concurrency"] for level in payload["levels"]] == [1, 2]
    assert payload["levels"][1]["metrics"]["output_tokens"] == 4 * 8
    assert table.exit_code == 0 and "20/s" in table.stdout
    assert refused.exit_code != 0
