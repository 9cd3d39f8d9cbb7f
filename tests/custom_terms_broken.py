"""A module of custom terms that fails while it is imported (the tests' bad input)."""

raise ZeroDivisionError("this module cannot be imported")
