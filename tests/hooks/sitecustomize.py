"""Test hook, active only when $LORP_TEST_PAUSE names a folder (tests/test_interrupt.py puts this folder on
PYTHONPATH): the prune stage pauses right after writing its first checkpoint, so that a test can interrupt it
at a known point instead of racing it. It writes <folder>/paused (its pid) and waits for <folder>/resume.
Nothing else changes: the checkpoints written are the stage's own."""

import os

if os.environ.get("LORP_TEST_PAUSE"):
    import importlib.abc
    import importlib.util
    import sys
    import time
    from pathlib import Path

    FOLDER = Path(os.environ["LORP_TEST_PAUSE"])
    LIMIT_S = 300  # never hang a test run for good

    def patch(module) -> None:
        write_checkpoint = module.write_checkpoint

        def write_then_pause(*args, **kwargs):
            write_checkpoint(*args, **kwargs)
            if not (FOLDER / "paused").exists():
                (FOLDER / "paused").write_text(str(os.getpid()))
                deadline = time.monotonic() + LIMIT_S
                while not (FOLDER / "resume").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)

        module.write_checkpoint = write_then_pause

    class PatchOnImport(importlib.abc.MetaPathFinder):
        """Patches lorp.model.prune once it is imported (it imports torch: too slow to import here eagerly)."""

        def find_spec(self, name, path, target=None):
            if name != "lorp.model.prune":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            exec_module = spec.loader.exec_module

            def exec_then_patch(module):
                exec_module(module)
                patch(module)

            spec.loader.exec_module = exec_then_patch
            return spec

    sys.meta_path.insert(0, PatchOnImport())
