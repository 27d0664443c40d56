"""Engine selection against a stub ``dassl`` package laid out like the real one.

These tests fail if an engine name silently comes from the built-in engine while Dassl is importable
(e.g. a name missing from ``engine.selection.DASSL_MODULES``), and if a broken Dassl does not fall back
to the built-in engine with a warning.
"""
import json
import os
import subprocess
import sys
import textwrap

from engine.selection import API_NAMES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Where the real Dassl (c61a1b5) defines each name the project takes from it.
DASSL_MODULES = {
    "dassl/config/__init__.py": ["get_cfg_default"],
    "dassl/data/__init__.py": ["DataManager", "DatasetWrapper"],
    "dassl/data/data_manager.py": ["build_data_loader"],
    "dassl/data/datasets/__init__.py": ["DATASET_REGISTRY", "DatasetBase", "Datum", "build_dataset"],
    "dassl/data/transforms/__init__.py": ["build_transform"],
    "dassl/engine/__init__.py": ["TRAINER_REGISTRY", "SimpleTrainer", "TrainerX", "build_trainer"],
    "dassl/metrics/__init__.py": ["compute_accuracy"],
    "dassl/optim/__init__.py": ["build_optimizer"],
    "dassl/utils/__init__.py": ["check_isfile", "collect_env_info", "listdir_nohidden", "load_pretrained_weights",
                                "mkdir_if_missing", "read_json", "set_random_seed"],
}

REGISTRY = textwrap.dedent("""
    class _Registry:
        def __init__(self):
            self._obj = {}
        def register(self, obj=None):
            def add(o):
                self._obj[o.__name__] = o
                return o
            return add(obj) if obj is not None else add
        def registered_names(self):
            return list(self._obj)
        def get(self, name):
            return self._obj[name]
""")


def _write_stub(root, broken: str = "") -> None:
    """Every module defines its names as distinct objects tagged ``STUB_<name>``."""
    for rel, names in DASSL_MODULES.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        lines = [REGISTRY] if any(n.endswith("REGISTRY") for n in names) else []
        if rel == "dassl/data/__init__.py" and broken:
            lines.append(f"raise ImportError({broken!r})")
        for name in names:
            if name.endswith("REGISTRY"):
                lines.append(f"{name} = _Registry()\n{name}.STUB = 'STUB_{name}'")
            else:
                lines.append(f"class {name}:\n    STUB = 'STUB_{name}'")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
    for dirpath, _, files in os.walk(os.path.join(root, "dassl")):
        if "__init__.py" not in files:
            open(os.path.join(dirpath, "__init__.py"), "w").close()


def _run(code: str, stub_root: str, engine: str = ""):
    env = dict(os.environ, PYTHONPATH=f"{stub_root}{os.pathsep}{REPO}")
    env.pop("TASKRES_ENGINE", None)
    if engine:
        env["TASKRES_ENGINE"] = engine
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)


def test_stub_covers_every_engine_name():
    assert sorted(n for names in DASSL_MODULES.values() for n in names) == sorted(API_NAMES)


def test_every_engine_name_is_the_dassl_object_when_dassl_imports(tmp_path):
    _write_stub(str(tmp_path))
    code = textwrap.dedent("""
        import json, engine
        from engine.selection import API_NAMES
        print(json.dumps({"engine": engine.ENGINE_NAME,
                          "names": {n: getattr(getattr(engine, n), "STUB", None) for n in API_NAMES}}))
    """)
    proc = _run(code, str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["engine"] == "dassl"
    wrong = {n: v for n, v in out["names"].items() if v != f"STUB_{n}"}
    assert not wrong, f"these engine names do not come from Dassl: {sorted(wrong)}"


def test_project_owned_names_stay_ours_under_dassl(tmp_path):
    """The loop, checkpoints, schedule, evaluation, logging and image reading never come from Dassl."""
    _write_stub(str(tmp_path))
    code = textwrap.dedent("""
        import engine
        print(sorted(n for n in engine.PROJECT_NAMES if getattr(engine, n).__module__.split('.')[0] != 'engine'))
    """)
    proc = _run(code, str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_broken_dassl_falls_back_with_a_warning(tmp_path):
    _write_stub(str(tmp_path), broken="No module named 'wilds'")
    code = "import engine; print('ENGINE', engine.ENGINE_NAME)"
    proc = _run(code, str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "ENGINE builtin" in proc.stdout
    assert "Dassl is installed but failed to import" in proc.stderr and "wilds" in proc.stderr


def test_forced_dassl_that_cannot_import_is_one_line(tmp_path):
    _write_stub(str(tmp_path), broken="No module named 'wilds'")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}", TASKRES_ENGINE="dassl")
    proc = subprocess.run([sys.executable, "train.py", "--trainer", "TaskRes"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "TASKRES_ENGINE=dassl but importing Dassl failed" in proc.stderr
    assert "Traceback" not in proc.stderr
