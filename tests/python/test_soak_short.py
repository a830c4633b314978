"""`make soak` in 20 seconds (tests/soak/soak.py with SOAK_SECONDS=20), so
the soak cannot rot between its full runs: the same daemon, clients, patches,
publishes, reloads, junk and kills, every row checked, the daemon's figures
flat between the two quiet points."""
import os
import subprocess
import sys
import unittest

SOAK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "soak", "soak.py")


class SoakShort(unittest.TestCase):
    def test_twenty_seconds_of_everything(self):
        env = dict(os.environ, SOAK_SECONDS=os.environ.get("SOAK_SHORT_SECONDS", "20"))
        p = subprocess.run([sys.executable, SOAK], env=env, capture_output=True, text=True,
                           timeout=600)
        out = p.stdout + p.stderr
        print(out)
        self.assertEqual(p.returncode, 0, "the soak failed (its report is above)")
        self.assertIn("RESULT: PASS", out)


if __name__ == "__main__":
    unittest.main()
