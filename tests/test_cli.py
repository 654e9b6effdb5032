"""The console command as a user runs it."""
import subprocess, sys


def test_help_lists_commands():
    out = subprocess.run(["relgraph", "--help"], capture_output=True, text=True, check=True).stdout
    assert "synth" in out and "sweep" in out


def test_unknown_command_is_a_clear_error():
    r = subprocess.run(["relgraph", "frobnicate"], capture_output=True, text=True)
    assert r.returncode != 0 and "unknown command 'frobnicate'" in r.stderr
