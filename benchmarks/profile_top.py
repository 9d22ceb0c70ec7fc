"""Where a server spent its samples: top functions by self and inclusive time, from py-spy.

`python -m benchmarks.profile_top benchmarks/results/profile-<...>.txt [N]` (collapsed stacks).
"""

from __future__ import annotations

import re
import sys
from collections import Counter

_LINE = re.compile(r" \(([^)]*?):\d+\)")


def frame_name(frame: str) -> str:
    """`func (path/file.py:12)` -> `func (file.py)`: lines merged, paths shortened."""
    return _LINE.sub(lambda m: f" ({m.group(1).rsplit('/', 1)[-1]})", frame)


def top(path: str, n: int = 25, idle: str = "select (selectors.py)") -> str:
    """Self and inclusive shares of the busy samples (samples parked in `idle` left out)."""
    own, inclusive, busy = Counter(), Counter(), 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            frames = [frame_name(x) for x in stack.split(";") if x]
            if not frames or idle in frames[-1]:
                continue
            busy += int(count)
            own[frames[-1]] += int(count)
            for frame in set(frames):
                inclusive[frame] += int(count)
    out = [f"{busy} busy samples", "self:"]
    out += [f"  {100 * c / busy:5.1f}%  {f}" for f, c in own.most_common(n)]
    out += ["inclusive:"] + [f"  {100 * c / busy:5.1f}%  {f}" for f, c in inclusive.most_common(n)]
    return "\n".join(out)


if __name__ == "__main__":
    print(top(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25))
