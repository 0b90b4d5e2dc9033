"""Fast implementations attached to stock cell definitions: importing this package attaches them.

Each fast path computes the same function as ``scan.run``'s masked scan over one stock cell's ``recur``, faster,
and is attached to that ``recur`` function object in ``scan.FAST_PATHS``. ``scan.run`` and
``scan.bidirectional`` use it only while that definition is the one in ``cells.CELLS``: a user who replaces a
cell gets the cell they wrote. ``import rnnjax`` imports this package; the core runs without it (every path has
its plain ``lax.scan`` form).

    rules.py         hand-written backward rules per cell (forward/backward step pairs, weight gradients)
    fused.py         the masked whole-sequence loop over a rule (custom VJP); native kernels where they apply
    native_calls.py  the native CPU kernels as JAX functions (XLA FFI calls and their VJPs)
    native.py        building, loading and configuring the C++ kernels in native.cc
"""

from rnnjax import cells, scan
from rnnjax.kernels import fused

scan.FAST_PATHS.update(
    {
        cells.simple_rnn_recur: fused.fast_path("simple_rnn"),
        cells.lstm_recur: fused.fast_path("lstm"),
        cells.gru_recur: fused.fast_path("gru"),
    }
)
