"""The argument values the fuzzer draws from: numbers of every kind for
delays and deadlines, and file descriptors and file objects of every kind.

Each value is named by a short string (what a failing example prints) and
made fresh for every run by a factory, so that the two implementations get
equal but distinct objects.
"""

import math
from decimal import Decimal
from fractions import Fraction


class Index:
    """Only __index__: not a number to float.__add__."""

    def __index__(self):
        return 1

    def __repr__(self):
        return "Index()"


class FloatOnly:
    """Only __float__."""

    def __float__(self):
        return -1.0

    def __repr__(self):
        return "FloatOnly()"


class IndexAndFloat:
    def __index__(self):
        return -2

    def __float__(self):
        return -2.0

    def __repr__(self):
        return "IndexAndFloat()"


class BadFloat:
    def __float__(self):
        raise ValueError("no float for you")

    def __repr__(self):
        return "BadFloat()"


class FloatSub(float):
    def __repr__(self):
        return f"FloatSub({float(self)!r})"


class IntSub(int):
    def __repr__(self):
        return f"IntSub({int(self)!r})"


# -- delays and deadlines --------------------------------------------------------
#
# A timer value is (name, factory, kind, key):
#   factory(base) makes the value; base is loop.time() when the program
#     started, for deadlines relative to it;
#   kind: "past" (due at the next iteration), "future" (not due while the
#     program runs: at least a second away), "error" (the call raises),
#     "nan" (a NaN deadline; see loop_programs.py);
#   key: for a past deadline that does not depend on when the call is made,
#     the deadline itself.  Two timers with equal deadlines run in an order
#     asyncio leaves undefined (its heapq is not stable), so a program uses
#     each key at most once.  Deadlines computed from time() at the call
#     are distinct, unless the delay is so large that time() + delay rounds
#     the same for calls made microseconds apart (the spacing of doubles
#     near 1e12 is 1.2e-4): those delays have a key too.

INF = math.inf
NAN = math.nan


def _v(value):
    return lambda base: value


DELAYS = [
    # due at once, at a deadline that does not depend on time()
    ("-inf", _v(-INF), "past", -INF),
    ("-1e300", _v(-1e300), "past", -1e300),
    ("-1e20", _v(-1e20), "past", -1e20),
    # due at once, relative to time()
    ("-1e12", _v(-1e12), "past", "later -1e12"),
    ("-9.3e9", _v(-9.3e9), "past", "later -9.3e9"),
    ("-1.0", _v(-1.0), "past", None),
    ("-0.001", _v(-0.001), "past", None),
    ("0", _v(0), "past", None),
    ("0.0", _v(0.0), "past", None),
    ("-0.0", _v(-0.0), "past", None),
    ("1e-9", _v(1e-9), "past", None),
    ("False", _v(False), "past", None),
    ("-5", _v(-5), "past", None),
    ("-(2**62)", _v(-(2**62)), "past", "later -(2**62)"),
    ("Fraction(-1, 2)", lambda b: Fraction(-1, 2), "past", None),
    ("IntSub(-2)", lambda b: IntSub(-2), "past", None),
    ("FloatSub(-0.25)", lambda b: FloatSub(-0.25), "past", None),
    # not due while the program runs
    ("True", _v(True), "future", None),
    ("1000.0", _v(1000.0), "future", None),
    ("10**9", _v(10**9), "future", None),
    ("2**63", _v(2**63), "future", None),
    ("1e300", _v(1e300), "future", None),
    ("inf", _v(INF), "future", None),
    ("Fraction(10**6)", lambda b: Fraction(10**6), "future", None),
    # refused
    ("None", _v(None), "error", None),
    ("Decimal('0.01')", lambda b: Decimal("0.01"), "error", None),
    ("Decimal('-1')", lambda b: Decimal("-1"), "error", None),
    ("Index()", lambda b: Index(), "error", None),
    ("FloatOnly()", lambda b: FloatOnly(), "error", None),
    ("IndexAndFloat()", lambda b: IndexAndFloat(), "error", None),
    ("BadFloat()", lambda b: BadFloat(), "error", None),
    ("'1'", _v("1"), "error", None),
    ("1j", _v(1j), "error", None),
    ("10**400", _v(10**400), "error", None),
    ("-(10**400)", _v(-(10**400)), "error", None),
    # NaN: as -inf (see loop_programs.py), so it shares its key
    ("nan", _v(NAN), "nan", -INF),
]

WHENS = [
    # in the past, absolute
    ("-inf", _v(-INF), "past", -INF),
    ("-(10**400)", _v(-(10**400)), "past", -INF),   # orders as -inf would
    ("-1e300", _v(-1e300), "past", -1e300),
    ("-1e20", _v(-1e20), "past", -1e20),
    ("-1e12", _v(-1e12), "past", -1e12),
    ("-9.3e9", _v(-9.3e9), "past", -9.3e9),
    ("-1.0", _v(-1.0), "past", -1.0),
    ("Decimal('-1')", lambda b: Decimal("-1"), "past", -1.0),
    ("IntSub(-7)", lambda b: IntSub(-7), "past", -7.0),
    ("FloatSub(-3.5)", lambda b: FloatSub(-3.5), "past", -3.5),
    ("0", _v(0), "past", 0.0),
    ("0.0", _v(0.0), "past", 0.0),
    ("False", _v(False), "past", 0.0),
    ("True", _v(True), "past", 1.0),
    ("Fraction(1, 2)", lambda b: Fraction(1, 2), "past", 0.5),
    # in the past, relative to the program's start
    ("base-0.5", lambda b: b - 0.5, "past", "base-0.5"),
    ("base-0.25", lambda b: b - 0.25, "past", "base-0.25"),
    ("base-0.001", lambda b: b - 0.001, "past", "base-0.001"),
    ("base-1e-6", lambda b: b - 1e-6, "past", "base-1e-6"),
    ("int(base)-1", lambda b: int(b) - 1, "past", "int(base)-1"),
    ("Fraction(base)-0.75", lambda b: Fraction(b) - Fraction(3, 4), "past", "Fraction(base)-0.75"),
    # not due while the program runs
    ("base+1000", lambda b: b + 1000, "future", None),
    ("int(base)+10**6", lambda b: int(b) + 10**6, "future", None),
    ("inf", _v(INF), "future", None),
    ("1e300", _v(1e300), "future", None),
    ("10**400", _v(10**400), "future", None),
    ("2**64", _v(2**64), "future", None),
    ("Decimal('1e12')", lambda b: Decimal("1e12"), "future", None),
    # refused
    ("None", _v(None), "error", None),
    ("'1'", _v("1"), "error", None),
    ("Index()", lambda b: Index(), "error", None),
    ("FloatOnly()", lambda b: FloatOnly(), "error", None),
    ("BadFloat()", lambda b: BadFloat(), "error", None),
    ("1j", _v(1j), "error", None),
    ("b''", _v(b""), "error", None),
    # NaN: as -inf (see loop_programs.py), so it shares its key
    ("nan", _v(NAN), "nan", -INF),
]

DELAY_BY_NAME = {v[0]: v for v in DELAYS}
WHEN_BY_NAME = {v[0]: v for v in WHENS}


# -- file descriptors ---------------------------------------------------------------
#
# An fd value names what add_reader() & co. are given:
#   ("sock", i)    the socket object of pool entry i (maybe closed by now)
#   ("fd", i)      the number that socket had when it was made (maybe closed,
#                  maybe reused by a later socket)
#   ("wrap", i)    an object whose fileno() is the socket's current one
#   ("lit", n)     a literal int (none of them an fd this process could own,
#                  except 0, 1 and 2, which are the same for both runs)
#   ("obj", name)  an object with no usable fileno()


class FileLike:
    def __init__(self, sock):
        self.sock = sock

    def fileno(self):
        return self.sock.fileno()

    def __repr__(self):
        return "FileLike()"


class NoFileno:
    def __repr__(self):
        return "NoFileno()"


class FilenoRaises:
    def __init__(self, exc):
        self.exc = exc

    def fileno(self):
        raise self.exc("fileno() failed")

    def __repr__(self):
        return f"FilenoRaises({self.exc.__name__})"


class FilenoReturns:
    def __init__(self, value):
        self.value = value

    def fileno(self):
        return self.value

    def __repr__(self):
        return f"FilenoReturns({self.value!r})"


LITERAL_FDS = [-1, -(2**70), 2**24, 2**30, 2**31 - 1, 2**31, 2**40, 10**30, 0, 1, 2, True, False]

ODD_FILE_OBJECTS = {
    "NoFileno()": NoFileno,
    "FilenoRaises(ValueError)": lambda: FilenoRaises(ValueError),
    "FilenoRaises(OSError)": lambda: FilenoRaises(OSError),
    "FilenoReturns('x')": lambda: FilenoReturns("x"),
    "FilenoReturns(-1.5)": lambda: FilenoReturns(-1.5),
    "FilenoReturns(2**40)": lambda: FilenoReturns(2**40),
    "FilenoReturns(None)": lambda: FilenoReturns(None),
    "'3'": lambda: "3",
    "3.0": lambda: 3.0,
}
