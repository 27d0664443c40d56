"""The repository stands alone: no file points at the workspace folder around it or at a design document that
is not in the repository (the names are assembled below, so this file does not match its own check)."""
import os
import re
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKSPACE = "sha" + "red"
DOC_NAMES = tuple(name + ".md" for name in ("DES" + "IGN", "ST" + "YLE"))
OUTSIDE = re.compile("|".join([re.escape("../" + WORKSPACE), re.escape("/work/" + WORKSPACE)]
                              + [r"\b" + re.escape(f"{WORKSPACE}/{name}") for name in DOC_NAMES]))


def repository_files():
    """Tracked and new (not ignored) files, relative to the repository root."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return [path for path in out.splitlines() if os.path.isfile(os.path.join(REPO, path))]


def text_of(path):
    with open(os.path.join(REPO, path), "rb") as f:
        data = f.read()
    return None if b"\0" in data else data.decode("utf-8", errors="replace")


def test_no_file_refers_outside_the_repository():
    files = repository_files()
    here = os.path.relpath(__file__, REPO)
    missing_docs = [name for name in DOC_NAMES if not any(os.path.basename(p) == name for p in files)]
    offenders = []
    for path in files:
        text = text_of(path) if path != here else None
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line) or any(name in line for name in missing_docs):
                offenders.append(f"{path}:{number}: {line.strip()}")
    assert not offenders, "cite something in the repository or state the fact itself:\n" + "\n".join(offenders)
