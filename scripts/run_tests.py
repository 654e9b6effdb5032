"""Run relgraph's checks and tests; print one closing line `N passed, N failed`.

1. nbdev contract: `nbdev_prepare` (export, every notebook's tests, clean, README) passes and leaves no diff in
   relgraph/, nbs/ and README.md (in a git checkout); each notebook counted as one test.
2. With --slow: `nbdev_test --flags slow` instead, so the slow cells run too.
3. pytest over tests/ and the package's docstring examples (`--doctest-modules`).
"""
import re, subprocess, sys, tempfile, time
from pathlib import Path

slow = "--slow" in sys.argv
passed = failed = 0

def sh(cmd, **kw):
    print(f"\n$ {cmd}", flush=True)
    return subprocess.run(cmd, shell=True, text=True, **kw)

def check(name, ok):
    global passed, failed
    print(f"{'PASS' if ok else 'FAIL'}: {name}", flush=True)
    passed, failed = passed + ok, failed + (not ok)

t0 = time.time()
in_git = sh("git rev-parse --is-inside-work-tree", capture_output=True).returncode == 0
status = lambda: sh("git status --porcelain relgraph nbs README.md", capture_output=True).stdout if in_git else ""
before = status()
nbs = sorted(p for p in Path("nbs").glob("*.ipynb") if not p.name.startswith("_"))
if slow:   # the slow cells too: export, test with the flag, clean
    sh("nbdev_export")
    r = sh("nbdev_test --n_workers 2 --timing --flags slow", capture_output=True)
    sh("nbdev_clean")
else:      # what a user runs: nbdev_prepare = export, test every notebook, clean, README
    r = sh("nbdev_prepare", capture_output=True)
    check("nbdev_prepare", r.returncode == 0)
print(r.stdout[-20000:], r.stderr[-20000:])
after = status()
if in_git:
    check("nbdev_export, nbdev_clean and the README step leave no diff", after == before)
    if after != before: sh("git status --porcelain relgraph nbs README.md; git diff --stat")
bad = set(re.findall(r"^\s+(\S+\.ipynb)\s*$", r.stdout + r.stderr, flags=re.M))
if r.returncode and not bad and slow: check("nbdev_test", False)
for nb in nbs: check(f"notebook {nb.name}", nb.name not in bad)

junit = Path(tempfile.mkdtemp()) / "pytest.xml"
marks = "" if slow else "-m 'not slow'"
r = sh(f"{sys.executable} -m pytest tests relgraph --doctest-modules -q {marks} -p no:cacheprovider --junitxml={junit}")
if junit.exists():
    x = junit.read_text()
    m = re.search(r'<testsuite[^>]*errors="(\d+)"[^>]*failures="(\d+)"[^>]*skipped="(\d+)"[^>]*tests="(\d+)"', x)
    if m:
        e, f, s, n = map(int, m.groups())
        passed += n - e - f - s; failed += e + f
    else: check("pytest report", False)
elif r.returncode not in (0, 5): check("pytest", False)

print(f"\ntests took {time.time() - t0:.0f} s")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
