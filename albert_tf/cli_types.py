"""Argument types for `albert-tf` options: a bad number fails at parsing,
naming the option, instead of after minutes of work (or never)."""

import argparse


def _number(kind, low=None, high=None, low_open=False, what=None):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        if value != value or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    parse.__name__ = what  # argparse names the type in some messages.
    return parse


positive_int = _number(int, low=1, what="an integer of 1 or more")
non_negative_int = _number(int, low=0, what="an integer of 0 or more")
port = _number(int, low=0, high=65535, what="a port from 0 (any free one) to 65535")
positive_float = _number(float, low=0, low_open=True, what="a number above 0")
non_negative_float = _number(float, low=0, what="a number of 0 or more")
fraction = _number(float, low=0, high=1, what="a fraction from 0 to 1")
percentage_points = _number(float, low=0, high=100, what="points from 0 to 100")
