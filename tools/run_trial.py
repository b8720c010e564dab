"""
Run the trial suite and end with one line, ``N passed, N failed``.

trial's own summary (``PASSED (successes=…)`` / ``FAILED (…)``) is kept;
the extra line is what CI reads.
"""

import re
import subprocess
import sys


def main(argv: list[str]) -> int:
    command = [sys.executable, "-m", "twisted.trial", *argv]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    summary = None
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if re.match(r"^(PASSED|FAILED) \(", line):
            summary = line
    code = process.wait()
    counts = dict.fromkeys(
        ["successes", "failures", "errors", "unexpectedSuccesses", "skips"], 0
    )
    if summary is not None:
        for key, value in re.findall(r"(\w+)=(\d+)", summary):
            counts[key] = int(value)
    failed = counts["failures"] + counts["errors"] + counts["unexpectedSuccesses"]
    if summary is None or (code != 0 and failed == 0):
        # trial died before it could summarise: never report that as green.
        failed += 1
    if counts["skips"]:
        print(f"{counts['skips']} skipped")
    print(f"{counts['successes']} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
