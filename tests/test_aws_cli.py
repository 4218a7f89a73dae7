"""The AWS CLI v2 runs the whole workflow against a fresh server: tools/check_aws_cli.py.

Skipped with a reason where no AWS CLI v2 is installed (Debian: `apt-get install -y awscli`),
failed instead under CI=true. ``AWS_CLI=/nowhere`` simulates a machine without it.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import require_service

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "check_aws_cli.py"


def _load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("check_aws_cli", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(900)
def test_the_aws_cli_runs_the_whole_workflow() -> None:
    script = _load_script()
    found = script.find_aws(None)
    require_service(found is not None, f"the AWS CLI v2 is not installed ({script.INSTALL_HINT})")
    assert found is not None
    reply = subprocess.run(
        [sys.executable, str(SCRIPT), "--aws", found[0]],
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert reply.returncode == 0, reply.stdout[-6000:] + "\n" + reply.stderr[-6000:]
    assert "steps OK" in reply.stdout.splitlines()[-1], reply.stdout[-2000:]
