import pytest
import torch

from ose.cli import main


@pytest.fixture(autouse=True)
def _two_threads():
    # Keep every test at the machine's size whatever the host.
    torch.set_num_threads(2)


@pytest.fixture
def run_cli(capsys):
    """Run ``ose ARGS``; return (exit code, stdout, stderr)."""
    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run
