"""The logs of a run: hgx's TSV logs and pose-hg-train's Torch7 ones (``optim.Logger``: a tab-separated
header naming the columns in Lua's hash order, names padded with spaces, a trailing tab), read
up to their last complete row; and the metrics a comparison draws from them.
"""
from __future__ import annotations

from pathlib import Path

from hgx.errors import HgxError

# metric -> (log, column, axis title)
METRICS: dict[str, tuple[str, str, str]] = {
    "train_loss": ("train", "loss", "train loss"),
    "valid_loss": ("valid", "loss", "valid loss"),
    "train_acc": ("train", "acc", "train accuracy"),
    "valid_acc": ("valid", "acc", "valid accuracy"),
    "valid_pckh": ("valid", "pckh", "valid PCKh@0.5"),
    # --adversarial (Hg-SAGAN): the discriminator's loss and BEGAN's k_t
    "train_d_loss": ("train", "d_loss", "discriminator loss"),
    "train_k_t": ("train", "k_t", "k_t"),
}
DEFAULT_METRICS = ("train_loss", "valid_loss", "train_acc", "valid_acc")

# Column names of other trainers' logs -> hgx's (after lower-casing and stripping).
COLUMN_ALIASES = {"learningrate": "lr", "learning_rate": "lr", "accuracy": "acc",
                  "epochs": "epoch", "err": "loss", "pckh@0.5": "pckh"}


# -- logs ---------------------------------------------------------------------------------------
def read_log(path: Path) -> list[dict[str, float]]:
    """Rows of a training log, sorted by epoch, one per epoch.

    Reads hgx's TSV logs and pose-hg-train's ``optim.Logger`` files alike: the header names
    the columns in any order and capitalisation (padding spaces and a trailing tab allowed);
    values are numbers (``%11.4e`` or plain). A row repeating the header (a Torch7 run
    continued with ``-continue``) is skipped, an incomplete row (being written) is dropped,
    a missing ``epoch`` column is replaced by the row number (1, 2, ...), and an epoch logged
    twice keeps its last row (the later run redid it). A missing file gives no rows.
    """
    try:
        text = Path(path).read_text(errors="replace")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return []
    except OSError as err:
        raise HgxError(f"cannot read {path}: {err.strerror or err}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    sep = "\t" if "\t" in lines[0] else None
    raw_header = lines[0].split(sep)
    header = [_column(c) for c in raw_header]
    while header and header[-1] == "":
        header.pop()
    if not header:
        return []
    has_epoch = "epoch" in header
    torch_style = _torch_style(raw_header)
    by_epoch: dict[float, dict[str, float]] = {}
    number = 0
    for i, line in enumerate(lines[1:], start=1):
        values = line.split(sep)
        if _column(values[0]) == header[0] and \
                [_column(v) for v in values[:len(header)]] == header:
            continue  # the header again
        last_unfinished = i == len(lines) - 1 and not text.endswith("\n")
        if len(values) < len(header) or (last_unfinished and torch_style
                                         and not line.endswith("\t")):
            continue  # a row still being written
        number += 1
        row = {key: _number(value) for key, value in zip(header, values) if key}
        if not has_epoch:
            row["epoch"] = float(number)
        epoch = row["epoch"]
        if epoch != epoch:
            continue  # no epoch number in this row
        by_epoch.pop(epoch, None)  # a later row of the same epoch replaces the earlier one
        by_epoch[epoch] = row
    return sorted(by_epoch.values(), key=lambda r: r["epoch"])


def _torch_style(raw_header: list[str]) -> bool:
    """optim.Logger ends every line with a tab: a last line without one is incomplete."""
    return len(raw_header) > 1 and raw_header[-1].strip() == ""


def _column(name: str) -> str:
    key = name.strip().lower()
    return COLUMN_ALIASES.get(key, key)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")
