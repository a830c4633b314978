"""Runs one test file as `python -m unittest -v FILE` does, and appends a
line for each skipped test to the file $EGT_SKIPS names (when set):
"FILE/CASE<TAB>reason", CASE as Class.test_name (Class.setUpClass,
setUpModule). tests/run.sh reports those skips, and in CI fails the run on
any that tests/expected-skips does not declare.

    runner.py tests/python/test_x.py
"""
import os
import sys
import unittest


def case_name(test, module):
    """Class.method of a test, or Class.setUpClass / setUpModule of a skip
    raised in a fixture (unittest reports those as 'name (module.Class)')."""
    tid = test.id()
    if " (" in tid:
        name, qual = tid.split(" (", 1)
        qual = qual.rstrip(")")
        qual = qual[len(module) + 1:] if qual.startswith(module + ".") else ""
        return f"{qual}.{name}" if qual else name
    return tid[len(module) + 1:] if tid.startswith(module + ".") else tid


class SkipRecorder(unittest.TextTestResult):
    path = module = file = None

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if self.path:
            reason = " ".join(str(reason).split()) or "(no reason given)"
            with open(self.path, "a") as f:
                f.write(f"{self.file}/{case_name(test, self.module)}\t{reason}\n")


def main():
    path = sys.argv[1]
    SkipRecorder.path = os.environ.get("EGT_SKIPS")
    SkipRecorder.file = os.path.basename(path)
    # the module name unittest gives a file path: tests/python/x.py -> tests.python.x
    SkipRecorder.module = os.path.splitext(os.path.normpath(path))[0].replace(os.sep, ".")
    sys.path.insert(0, os.getcwd())  # as `python -m unittest` has it
    runner = unittest.TextTestRunner(verbosity=2, resultclass=SkipRecorder)
    unittest.main(module=None, argv=[sys.argv[0], path], testRunner=runner)


if __name__ == "__main__":
    main()
