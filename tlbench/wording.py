"""How tlbench words what it prints."""


def count(n: int, one: str, many: str | None = None) -> str:
    """'1 source', '3 sources', '2 data sets': a number with its noun in the right number."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def baseline_label(source_id: str) -> str:
    """How reports and progress lines name a from-scratch baseline: the source whose
    architecture it shares, trained from a random initialisation."""
    return f"{source_id} (from scratch)"
