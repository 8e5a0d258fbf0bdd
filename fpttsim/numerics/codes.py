"""Integer codes shared by compiled kernels: format fields, modes, events.

A number format travels into compiled code as one float64 row (a "format
row") whose fields are indexed by the constants below, together with the
rounding and overflow mode it is used with. Counters of numerical events are
int64 arrays indexed by the event codes; the engine keeps one row of them per
stored quantity.
"""

# Fields of a format row -------------------------------------------------------
KIND = 0  # one of EXACT, FLOAT, FIXED
ROUNDING = 1  # one of the rounding codes below
OVERFLOW = 2  # one of the overflow codes below
FRACTION_BITS = 3  # float: stored fraction bits; fixed: fraction bits
EMIN = 4  # float: exponent of the smallest normal number (1 - bias)
MAX_FINITE = 5  # the largest finite value
SUBNORMALS = 6  # float: 1 if subnormal numbers exist
INFINITIES = 7  # float: 1 if the format has infinities
TOTAL_BITS = 8  # bits per stored value (fixed: the two's-complement width)
HAS_NAN = 9  # 1 if the format can hold NaN
N_FIELDS = 10

# Kinds --------------------------------------------------------------------------
EXACT = 0  # float64, nothing is rounded: the reference path
FLOAT = 1
FIXED = 2

# Rounding modes -------------------------------------------------------------------
NEAREST_EVEN = 0
TOWARD_ZERO = 1
DOWN = 2  # toward -inf
UP = 3  # toward +inf
STOCHASTIC = 4  # up with probability equal to the distance from below
ROUNDING_NAMES = ("nearest-even", "toward-zero", "down", "up", "stochastic")

# Overflow modes -------------------------------------------------------------------
SATURATE = 0
WRAP = 1  # fixed point only: two's complement
INF = 2  # floats only: to infinity, or to NaN where the format has none
OVERFLOW_NAMES = ("saturate", "wrap", "inf")

# Numerical events -------------------------------------------------------------------
SATURATED = 0
WRAPPED = 1
OVERFLOW_TO_INF = 2
NAN = 3  # a NaN result (produced or passed on)
FLUSHED_TO_ZERO = 4  # a nonzero value that became zero
SUBNORMAL = 5  # a subnormal result
N_EVENTS = 6
EVENT_NAMES = (
    "saturated",
    "wrapped",
    "overflow_to_inf",
    "nan",
    "flushed_to_zero",
    "subnormal",
)

# Stored quantities of the engine ----------------------------------------------------
WEIGHTS = 0
STATE = 1  # h
INPUT = 2  # the task's input as the device receives it
ACTIVATION = 3  # intermediate and output values of the feed-forward blocks
INSTANT_ERROR = 4  # g
ERROR = 5  # delta
JACOBIAN = 6  # J
JACOBIAN_PRODUCT = 7  # P
GRADIENT = 8  # gradient accumulators
OPTIMIZER = 9  # optimiser state (Adam's moments)
PRODUCT = 10  # the result of one multiplication
ACCUMULATOR = 11  # a running sum (dot products, accumulations)
N_QUANTITIES = 12
QUANTITY_NAMES = (
    "weights",
    "state",
    "input",
    "activation",
    "instantaneous_error",
    "error",
    "jacobian",
    "jacobian_product",
    "gradient",
    "optimizer_state",
    "product",
    "accumulator",
)
