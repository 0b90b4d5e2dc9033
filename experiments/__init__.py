"""The experiment scripts (``python -m experiments.<script>``), their configs and benchmarks.

Run as ``python -m experiments.<script>``, this package re-executes the command with the fast allocator
(``_allocator.use_fast_allocator``) before anything else is imported, so that the first, discarded process
costs little more than the interpreter's start; ``_cli.run`` does it for any other way of starting a script.
"""

import sys


def _starting_a_script() -> bool:
    """True while ``python -m experiments.<script>`` imports this package (``sys.argv[0]`` is then "-m")."""
    if sys.argv[:1] != ["-m"] or "-m" not in sys.orig_argv[:-1]:
        return False
    module = sys.orig_argv[sys.orig_argv.index("-m") + 1].split(".")
    return len(module) == 2 and module[0] == "experiments"


if _starting_a_script():
    from experiments._allocator import use_fast_allocator

    use_fast_allocator()
