"""The tables as Markdown and CSV: one Markdown helper, one atomic writer."""

import csv
import io
import os
from pathlib import Path

import numpy as np

# the columns of results.csv (the features table) and of finetune.csv
ROW_FIELDS = ["method", "test_error", "paper_test_error", "fit_time_s", "transform_time_s",
              "C", "transform_k_factor", "validation_accuracy", "chosen", "settings"]
FINETUNE_FIELDS = ["network", "hidden_layers", "init", "test_error", "validation_error",
                   "best_epoch", "epochs", "pretrain_time_s", "fit_time_s"]
FEW_LABELS_FIELDS = ["method", "n_labels", "draw", "test_error", "fit_time_s"]


def markdown_table(head, rows, footer=""):
    """A Markdown table of ``rows`` (lists of cells) under ``head``, then ``footer``
    as a paragraph when given."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    if footer:
        lines += ["", footer]
    return "\n".join(lines)


def write_atomic(path, text):
    """Replace the file ``path`` whole with ``text`` (written beside, then renamed), so
    that an interrupted run leaves a complete file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:  # the text's line ends as they are (CSV's \r\n)
        f.write(text)
    os.replace(tmp, path)


def write_table(out, name, rows, fields, markdown):
    """``<name>.md`` (the Markdown ``markdown``) and ``<name>.csv`` (the dicts ``rows``
    with the columns ``fields``) in the folder ``out``, each replaced whole."""
    write_atomic(Path(out) / f"{name}.md", markdown + "\n")
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(Path(out) / f"{name}.csv", buffer.getvalue())


def validation_pick(rows):
    """The label of the k-sparse row with the best validation accuracy when the table
    has several k-sparse rows (a k sweep); otherwise ``None``."""
    swept = [r for r in rows if r.get("transform_k_factor") is not None
             and r.get("validation_accuracy") is not None]
    if len(swept) < 2:
        return None
    return max(swept, key=lambda r: r["validation_accuracy"])["method"]


def features_markdown(rows, dataset, budget=""):
    """The features table; the paper's column on MNIST; ``budget`` (what validation
    chose from) under it."""
    paper = dataset == "mnist"
    head = ["method", "test error (%)"] + (["paper (%)"] if paper else []) + [
        "fit time (s)", "transform time (s)", "chosen on validation"]
    pick = validation_pick(rows)
    table = []
    for r in rows:
        name = r["method"] + (" (validation's pick)" if r["method"] == pick else "")
        cells = [name, f"{r['test_error']:.2f}"]
        if paper:
            cells.append("-" if r["paper_test_error"] is None else f"{r['paper_test_error']:.2f}")
        chosen = "-" if r.get("C") is None else f"C={r['C']:g}"
        if r.get("transform_k_factor") is not None:
            chosen += f", alpha={r['transform_k_factor']:g}"
        if r.get("chosen"):
            chosen += f", {r['chosen']}"
        cells += [f"{r['fit_time_s']:.1f}", f"{r['transform_time_s']:.2f}", chosen]
        table.append(cells)
    return markdown_table(head, table, budget)


def finetune_markdown(rows):
    """The fine-tuning table; the validation columns when the run held out a split
    (every row of one run has them, or none does)."""
    validated = any(r["validation_error"] is not None for r in rows)
    head = ["network", "test error (%)"]
    head += ["validation error (%)", "best epoch"] if validated else ["epochs"]
    head += ["pretraining (s)", "fine-tuning (s)"]
    table = []
    for r in rows:
        cells = [r["network"], f"{r['test_error']:.2f}"]
        if validated:
            cells += [f"{r['validation_error']:.2f}", f"{r['best_epoch']} of {r['epochs']}"]
        else:
            cells.append(str(r["epochs"]))
        cells += [f"{r['pretrain_time_s']:.1f}", f"{r['fit_time_s']:.1f}"]
        table.append(cells)
    return markdown_table(head, table)


def few_labels_markdown(rows, published=None):
    """The few-labels table: a row per method, a column per number of labels, each
    cell the mean test error over the draws and their range; then the ``published``
    rows (method: {N: error}) beside them."""
    n_labels = sorted({r["n_labels"] for r in rows})
    errors = {}
    for r in rows:
        errors.setdefault(r["method"], {}).setdefault(r["n_labels"], []).append(
            r["test_error"])
    table = []
    for method, by_n in errors.items():
        cells = [method]
        for n in n_labels:
            e = by_n.get(n)
            cells.append("-" if not e else f"{np.mean(e):.2f} ({min(e):.2f}-{max(e):.2f}, "
                         f"{len(e)} draws)")
        table.append(cells)
    for method, by_n in (published or {}).items():
        table.append([method + " (published)"] + [
            "-" if n not in by_n else f"{by_n[n]:.2f}" for n in n_labels])
    head = ["method"] + [f"{n} labels: test error (%)" for n in n_labels]
    return markdown_table(head, table)
