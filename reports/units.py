"""Human units for sizes: powers of 1024 are labelled KiB, MiB, GiB (8 GiB, never "8.0 GB")."""

_BINARY_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def binary_size(value: float) -> str:
    """A byte count in binary units: '512 B', '1.5 KiB', '8 GiB', '120 GiB'."""
    size = float(value)
    if abs(size) < 1024:
        return f"{int(size)} B"
    for unit in _BINARY_UNITS:
        size /= 1024
        if abs(size) < 1024 or unit == _BINARY_UNITS[-1]:
            break
    text = f"{size:.1f}" if abs(size) < 100 else f"{size:.0f}"
    return f"{text.removesuffix('.0')} {unit}"
