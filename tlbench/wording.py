"""How tlbench words what it prints."""


def count(n: int, one: str, many: str | None = None) -> str:
    """'1 source', '3 sources', '2 data sets': a number with its noun in the right number."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
