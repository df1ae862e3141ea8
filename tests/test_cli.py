"""The comparison command on the embedded digits data."""

import csv
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import BernoulliRBM

from skksae import DenoisingAutoencoder, KSparseAutoencoder
from skksae._experiments import cli, options, progress, selection
from skksae._experiments.cli import main, parse_args
from skksae._experiments.models import extractor as make_extractor
from skksae._experiments.selection import CLASSIFIER, fit_classifier


def test_main_job_on_digits_writes_tables(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["--methods", "raw,ksparse,dae", "--epochs", "3", "--n-components", "64",
               "--k", "8", "--C", "1", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| KSparseAutoencoder + LogisticRegression |" in printed
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"].split(" ")[0] for r in rows] == [
        "LogisticRegression", "KSparseAutoencoder", "DenoisingAutoencoder"]
    for r in rows:
        assert 0 <= float(r["test_error"]) < 30  # far better than chance (90%)
    assert (out / "results.md").read_text().startswith("| method | test error (%)")
    for name in ("filters.png", "reconstructions.png", "loss_curves.png"):
        assert (out / name).stat().st_size > 1000
    # the figure's measure, over the live units of each model (k capped at 64 units)
    extents = re.findall(r"filters for k = (\d+): median extent ([\d.]+) px over the "
                         r"(\d+) live units of 64", printed)
    assert [int(k) for k, *_ in extents] == [64, 40, 25, 10]
    for _, extent, live in extents:
        assert 0 < float(extent) < 8 and 0 < int(live) <= 64


# A small fine-tuning table on the digits: dropout off and a large rate, since 32
# units and a few epochs are too few for the defaults (the 2 x 32 sigmoid network
# stays near chance with them).
SMALL_FINETUNE = ["--table", "fine-tune", "--finetune-learning-rate", "0.2",
                  "--finetune-dropout", "0", "--finetune-input-dropout", "0",
                  "--n-components", "32", "--k", "4"]


def test_fine_tuning_table_on_digits(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(SMALL_FINETUNE + ["--epochs", "3", "--finetune-epochs", "15",
                                "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| network | test error (%)" in printed
    assert not (out / "results.csv").exists()  # the features table did not run
    with open(out / "finetune.csv") as f:
        rows = list(csv.DictReader(f))
    # two architectures x two starts x two depths, the second layer pretrained on the
    # first layer's codes (so a two-layer stack's pretraining includes the first's)
    assert len(rows) == 8
    assert {(r["hidden_layers"], r["init"]) for r in rows} == {
        (d, i) for d in ("1", "2") for i in ("random init", "pretrained")}
    assert sum("k-sparse pretrained" in r["network"] for r in rows) == 2
    assert sum("denoising pretrained" in r["network"] for r in rows) == 2
    by = {(r["network"].split(", ")[0], r["init"]): r for r in rows}
    for r in rows:
        assert 0 <= float(r["test_error"]) < 60  # far better than chance (90%)
        # the same budget for every network, on the whole training set: the last
        # epoch is kept and there is no validation error
        assert int(r["epochs"]) == int(r["best_epoch"]) == 15
        assert r["validation_error"] == ""
        if r["init"] == "random init":
            assert float(r["pretrain_time_s"]) == 0
    one = float(by[("1 x 32 top-k", "pretrained")]["pretrain_time_s"])
    two = float(by[("2 x 32 top-k", "pretrained")]["pretrain_time_s"])
    assert two >= one
    assert (out / "finetune.md").read_text().startswith(
        "| network | test error (%) | epochs | pretraining (s) |")


def test_fine_tuning_table_with_a_validation_split(tmp_path, capsys):
    """--finetune-validation-fraction holds out part of the training set: each row
    reports its validation error and the best epoch on it."""
    out = tmp_path / "out"
    rc = main(SMALL_FINETUNE + ["--depths", "1", "--epochs", "2", "--finetune-epochs", "8",
                                "--finetune-validation-fraction", "0.2", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| network | test error (%) | validation error (%) | best epoch |" in printed
    with open(out / "finetune.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    for r in rows:
        assert int(r["epochs"]) == 8
        assert 1 <= int(r["best_epoch"]) <= 8
        assert 0 <= float(r["validation_error"]) < 60
        assert f"| {r['best_epoch']} of 8 |" in printed


def test_few_labels_table(tmp_path, capsys):
    """--labels runs the few-labels table: every method on every draw of every number
    of labels, balanced subsets, the autoencoder pretrained once; each row saved."""
    out = tmp_path / "out"
    rc = main(["--labels", "20,50", "--draws", "2", "--epochs", "2", "--n-components", "32",
               "--k", "6", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert printed.count("pretraining the k-sparse autoencoder") == 1
    with open(out / "few_labels.csv") as f:
        rows = list(csv.DictReader(f))
    methods = {r["method"] for r in rows}
    assert len(methods) == 6 and len(rows) == 6 * 2 * 2
    assert {(r["n_labels"], r["draw"]) for r in rows} == {
        (n, d) for n in ("20", "50") for d in ("1", "2")}
    assert all(0 <= float(r["test_error"]) <= 100 for r in rows)
    assert "| method | 20 labels: test error (%) | 50 labels: test error (%) |" in printed
    assert ", 2 draws)" in (out / "few_labels.md").read_text()


def test_balanced_labelled_subsets_differ_by_draw():
    from skksae._experiments.few_labels_table import labelled_subset

    y = np.repeat(np.arange(10), 30)
    first, second = labelled_subset(y, 50, 0, 0), labelled_subset(y, 50, 1, 0)
    assert np.array_equal(np.bincount(y[first]), np.full(10, 5))
    assert not np.array_equal(first, second)
    assert np.array_equal(first, labelled_subset(y, 50, 0, 0))


@pytest.mark.parametrize("argv, message", [
    (["--labels", "25"], "multiple of 10"),
    (["--labels", "5000"], "smallest class has"),
    (["--table", "few-labels", "--k", "5,10"], "few-labels table takes one --k"),
])
def test_bad_few_labels_options(argv, message, capsys):
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--table", "fine-tune", "--finetune-learning-rate", "-1"], "fine-tuning table"),
    (["--table", "fine-tune", "--finetune-dropout", "1"], "dropout"),
    (["--table", "fine-tune", "--finetune-input-dropout", "-0.1"], "input_dropout"),
    (["--table", "fine-tune", "--finetune-validation-fraction", "1"], "validation_fraction"),
    (["--table", "fine-tune", "--finetune-validation-fraction", "-0.1"],
     "validation_fraction"),
    (["--table", "all", "--k", "300"], "larger than --n-components"),
])
def test_bad_fine_tuning_options_fail_before_training(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_depths_are_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["--table", "fine-tune", "--depths", "0"])
    assert "--depths" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--k", "10,x"], "--k must be an integer or comma-separated integers"),
    (["--transform-k-factor", "three"], "--transform-k-factor must be a number"),
    (["--rbm-batch-size", "10.5"], "--rbm-batch-size must be a number or comma-separated"),
    (["--dae-learning-rate", ","], "--dae-learning-rate needs at least one value"),
])
def test_bad_lists_are_a_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_defaults_follow_the_dataset_and_unknown_methods_fail():
    assert parse_args([]).n_components == 256
    args = parse_args(["--dataset", "mnist"])
    assert (args.n_components, args.k, args.transform_k_factor) == (1000, 25, 3.0)
    assert parse_args(["--epochs", "7"]).dae_epochs == 7
    with pytest.raises(SystemExit):
        parse_args(["--methods", "raw,pca"])


def test_models_run_their_whole_epoch_budget_with_the_learning_rate_falling():
    """The table reports the epochs it asked for: no early stop cuts a model short
    (the k-sparse loss is flat for a while once k has reached its target)."""
    args = parse_args(["--dataset", "mnist"])
    ksparse = make_extractor("ksparse", args)[0]
    assert ksparse.center  # the autoencoder centres the pixels itself
    assert ksparse.max_iter == args.ksparse_epochs
    assert ksparse.n_iter_no_change >= ksparse.max_iter
    assert ksparse.learning_rate_schedule == "linear"
    dae = make_extractor("dae", args)
    assert dae.n_iter_no_change >= dae.max_iter == args.dae_epochs
    # the papers' denoising model, not the library's defaults
    assert (dae.activation, dae.center, dae.loss) == ("sigmoid", False, "cross_entropy")
    dropout = make_extractor("dropout", args)
    assert (dropout.dropout, dropout.corruption_level) == (0.5, 0.0)
    assert dropout.n_iter_no_change >= dropout.max_iter == args.dae_epochs


def test_dropout_row_only_when_asked(capsys):
    """The dropout autoencoder is a method of --methods, not of the default run."""
    assert "dropout" not in parse_args([]).methods
    rc = main(["--methods", "dropout", "--epochs", "2", "--n-components", "32",
               "--C", "1"])
    assert rc == 0
    row = [line for line in capsys.readouterr().out.splitlines()
           if line.startswith("| Dropout autoencoder + LogisticRegression |")]
    assert len(row) == 1 and float(row[0].split("|")[2]) < 20  # far better than chance


def test_classifier_chosen_on_validation_then_refit_to_convergence():
    """C is the grid value with the best validation accuracy; the warm-started refit
    on all training data reaches the optimum a cold fit with that C reaches."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    lines = []
    clf, C, acc = fit_classifier(X, y, [10.0, 0.01, 1.0], 0, lines.append)
    assert [line.split(":")[0].strip() for line in lines] == ["C=0.01", "C=1", "C=10"]
    accuracy = [float(line.split("accuracy ")[1].split(",")[0]) for line in lines]
    assert C == [0.01, 1.0, 10.0][int(np.argmax(accuracy))]
    assert f"{acc:.4f}" == f"{max(accuracy):.4f}"
    lr = clf[-1]
    assert lr.C == C and lr.n_iter_[0] < lr.max_iter
    cold = LogisticRegression(C=C, **CLASSIFIER).fit(X, y)
    np.testing.assert_allclose(lr.coef_, cold.coef_, atol=1e-3 * np.abs(cold.coef_).max())
    np.testing.assert_array_equal(clf.predict(X), cold.predict(X))


def test_classifier_fits_run_with_scipys_blas_on_one_thread(monkeypatch):
    """The classifier's L-BFGS fits run with every BLAS library but NumPy's on one
    thread, NumPy's on the threads it had (benchmarks/bench_threads.py measures the
    choice); the limits are lifted afterwards."""
    from threadpoolctl import threadpool_info, threadpool_limits

    numpy_dir = str(Path(np.__file__).resolve().parent)

    def blas_threads():
        return {(str(Path(p["filepath"]).resolve()).startswith(numpy_dir), p["num_threads"])
                for p in threadpool_info() if p["user_api"] == "blas"}

    seen = []
    fit = LogisticRegression.fit

    def recording_fit(self, *args, **kwargs):
        seen.append(blas_threads())
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", recording_fit)
    X, y = load_digits(return_X_y=True)
    with threadpool_limits(2, user_api="blas"):
        before = {(p["filepath"], p["num_threads"]) for p in threadpool_info()}
        numpy_threads = {n for numpy, n in blas_threads() if numpy}  # 2 (1 on one core)
        fit_classifier(X / 16.0, y, [0.1, 1.0], 0, lambda line: None)
        assert {(p["filepath"], p["num_threads"]) for p in threadpool_info()} == before
    assert len(seen) == 3  # 2 C + refit
    kept = {(True, n) for n in numpy_threads}
    if {numpy for numpy, _ in seen[0]} == {True, False}:  # NumPy's and another one
        assert all(threads == kept | {(False, 1)} for threads in seen)
    elif {numpy for numpy, _ in seen[0]} == {True}:  # NumPy's alone: nothing limited
        assert all(threads == kept for threads in seen)
    else:  # NumPy's not told apart: every BLAS on one thread
        assert all({n for _, n in threads} == {1} for threads in seen)


def test_k_sweep_in_parallel_processes_matches_rows_run_one_at_a_time(tmp_path, capsys):
    """--n-jobs 2: the k sweep's k-sparse rows train two at a time in worker
    processes on an equal share of the threads, the other rows in turn; every row is
    the one a run in turn on the same number of threads gives, the table keeps its
    order and each row's log lines stay together."""
    import numba
    from threadpoolctl import threadpool_limits

    common = ["--methods", "raw,dae,ksparse", "--k", "4,8,12", "--transform-k-factor",
              "1,2", "--epochs", "3", "--n-components", "32", "--C", "1,10",
              "--no-figures"]
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)  # one thread to share: one for each worker as well
        with threadpool_limits(1):
            assert main(common + ["--out", str(tmp_path / "one")]) == 0
            capsys.readouterr()
            assert main(common + ["--out", str(tmp_path / "two"), "--n-jobs", "2"]) == 0
    finally:
        numba.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "== the k sweep's 3 k-sparse rows, 2 at a time, 1 thread(s) each" in printed
    tables = {}
    for name in ("one", "two"):
        with open(tmp_path / name / "results.csv") as f:
            tables[name] = [{k: v for k, v in row.items() if not k.endswith("time_s")}
                            for row in csv.DictReader(f)]
    assert [r["method"] for r in tables["two"]] == [
        "LogisticRegression on raw pixels", "DenoisingAutoencoder + LogisticRegression"] + [
        f"KSparseAutoencoder (k = {k}) + LogisticRegression" for k in (4, 8, 12)]
    assert tables["two"] == tables["one"]
    # each k-sparse row's block: its alphas and C lines, then its result line
    blocks = printed.split("\n== KSparseAutoencoder (k = ")[1:]
    assert len(blocks) == 3
    for block in blocks:
        lines = block.splitlines()
        assert lines[1].startswith("    alpha=1 (")
        assert sum(" validation accuracy " in line for line in lines) == 4
        assert lines[7].startswith("   test error")


def test_n_jobs_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        main(["--n-jobs", "0"])
    assert "--n-jobs must be at least 1" in capsys.readouterr().err


def test_k_sweep_one_row_per_k_alpha_chosen_on_validation(tmp_path, capsys, monkeypatch):
    """--k 4,8,16 gives one k-sparse row per k, each with the alpha and C of its best
    validation accuracy; the best k on validation is marked, and the filter figure
    shows the sweep's own models (no figure model is trained)."""
    def no_figure_model(*args):
        raise AssertionError("the filter figure trained its own model in a k sweep")

    monkeypatch.setattr("skksae._experiments.models.filter_model", no_figure_model)
    out = tmp_path / "out"
    rc = main(["--methods", "raw,ksparse", "--k", "4,8,16", "--transform-k-factor", "1,3",
               "--epochs", "5", "--n-components", "48", "--C", "1,10", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["LogisticRegression on raw pixels"] + [
        f"KSparseAutoencoder (k = {k}) + LogisticRegression" for k in (4, 8, 16)]
    assert rows[0]["transform_k_factor"] == ""  # alpha is the k-sparse rows' only
    # each row's log: validation accuracy for every (alpha, C); the row keeps the best
    blocks = printed.split("== KSparseAutoencoder (k = ")[1:]
    for row, block in zip(rows[1:], blocks):
        found, alpha = {}, None
        for line in block.splitlines():
            if m := re.match(r"    alpha=([\d.]+) \(\d+ units per code\):", line):
                alpha = float(m.group(1))
            elif m := re.match(r"    C=([\d.]+): validation accuracy ([\d.]+)", line):
                found[alpha, float(m.group(1))] = float(m.group(2))
        assert len(found) == 4  # 2 alphas x 2 C
        best = max(found, key=found.get)
        assert (float(row["transform_k_factor"]), float(row["C"])) == best
        assert float(row["validation_accuracy"]) == found[best]
    pick = max(rows[1:], key=lambda r: float(r["validation_accuracy"]))["method"]
    marked = [line for line in printed.splitlines() if "(validation's pick)" in line]
    assert len(marked) == 1 and marked[0].startswith(f"| {pick} (validation's pick) |")
    extents = re.findall(r"filters for k = (\d+): median extent", printed)
    assert extents == ["16", "8", "4"]
    assert (out / "filters.png").stat().st_size > 1000


def test_baselines_tuned_on_validation_over_every_combination(tmp_path, capsys):
    """List options of the RBM and of the denoising autoencoder: one model per
    combination, the row keeps the one with the best validation accuracy, and the
    table says what was searched and what was chosen."""
    out = tmp_path / "out"
    rc = main(["--methods", "rbm,dae", "--rbm-learning-rate", "0.01,0.1",
               "--rbm-batch-size", "10,50", "--dae-corruption-level", "0.1,0.4",
               "--epochs", "3", "--n-components", "32", "--C", "1", "--out", str(out),
               "--no-figures"])
    assert rc == 0
    printed = capsys.readouterr().out
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    blocks = printed.split("\n== ")[1:]
    for row, block, n in zip(rows, blocks, (4, 2)):
        found = dict(re.findall(r"    (\S+=.*) \(\d of \d\):\n    C=1: validation accuracy "
                                r"([\d.]+)", block))
        assert len(found) == n
        best = max(found, key=lambda key: float(found[key]))
        assert row["chosen"] == best
        assert float(row["validation_accuracy"]) == float(found[best])
        assert row["chosen"] in printed.split(row["method"] + " |")[-1].splitlines()[0]
    assert {found_key.split(",")[0] for found_key in re.findall(
        r"    (learning_rate=[\d.]+, batch_size=\d+) \(", printed)} == {
        "learning_rate=0.01", "learning_rate=0.1"}
    assert ("RBM: learning_rate from 0.01, 0.1; batch_size from 10, 50 (3 epochs, 4 "
            "model(s) trained)") in (out / "results.md").read_text()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_alpha_search_refits_on_all_codes_at_the_chosen_alpha():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    args = parse_args(["--n-components", "48", "--k", "6", "--epochs", "5"])
    extractor = make_extractor("ksparse", args).fit(X)
    clf, C, alpha, acc = selection.fit_ksparse_classifier(extractor, X, y, [1.0, 2.0, 4.0],
                                                          [1.0], 0, lambda line: None)
    assert extractor[0].transform_k_factor == alpha
    assert extractor.transform(X[:5]).getnnz(axis=1).max() <= round(alpha * 6)
    accs = []
    for a in (1.0, 2.0, 4.0):
        extractor[0].set_params(transform_k_factor=a)
        F = extractor[1:].fit_transform(extractor[0].transform(X))
        accs.append(fit_classifier(F, y, [1.0], 0, lambda line: None, refit=False)[2])
    assert alpha == [1.0, 2.0, 4.0][int(np.argmax(accs))] and acc == max(accs)
    # the classifier is refitted on all the codes at that alpha
    extractor[0].set_params(transform_k_factor=alpha)
    F = extractor[1:].fit_transform(extractor[0].transform(X))
    ref, *_ = fit_classifier(F, y, [C], 0, lambda line: None)
    np.testing.assert_array_equal(clf.predict(F), ref.predict(F))


def test_classifier_centres_dense_codes_same_optimum_fewer_iterations():
    """Centring dense features changes only the intercept of the optimum (it is not
    penalised): the same weights and probabilities, in fewer L-BFGS iterations; sparse
    codes stay sparse."""
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    codes = 1 / (1 + np.exp(-(X / 16.0 - 0.3) @ rng.normal(size=(64, 100))))  # in (0, 1)
    clf, C, _ = fit_classifier(codes, y, [1.0], 0, lambda line: None)
    # uncentred, run to convergence: past the 300-iteration cap
    plain = LogisticRegression(C=C, tol=CLASSIFIER["tol"], max_iter=10000).fit(codes, y)
    assert plain.n_iter_[0] > CLASSIFIER["max_iter"] > clf[-1].n_iter_[0]
    scale = np.abs(plain.coef_).max()
    np.testing.assert_allclose(clf[-1].coef_, plain.coef_, atol=1e-3 * scale)
    np.testing.assert_allclose(clf.predict_proba(codes), plain.predict_proba(codes),
                               atol=1e-3)
    sparse_clf, *_ = fit_classifier(sp.csr_matrix(X / 16.0), y, [1.0], 0,
                                    lambda line: None)
    assert sparse_clf[0].with_mean is False
    assert sp.issparse(sparse_clf[0].transform(sp.csr_matrix(X)))


# --------------------------------------------------------------- as a user meets it
def _one_error_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("skksae: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv, message", [
    (["--k", "0"], "'k' parameter of KSparseAutoencoder"),
    (["--n-components", "10"], "--k 25 is larger than --n-components 10"),
    (["--C", "1,x"], "--C must be comma-separated numbers"),
    (["--C", "-1"], "'C' parameter of LogisticRegression"),
    (["--epochs", "0"], "'max_iter' parameter"),
    (["--dataset", "mnist", "--learning-rate", "-1"], "'learning_rate' parameter"),
    (["--filter-epochs", "0", "--out", "OUT"], "filter figure"),
    (["--k", "10,80", "--n-components", "64"], "--k 80 is larger than --n-components 64"),
    (["--transform-k-factor", "3,0.5"], "'transform_k_factor' parameter"),
    (["--table", "all", "--k", "10,25"], "the fine-tuning table takes one --k"),
    (["--dae-corruption-level", "0.25,1.5"], "corruption_level=1.5 is a fraction"),
    (["--rbm-batch-size", "100,0"], "'batch_size' parameter"),
])
def test_bad_options_fail_before_any_data_or_training(argv, message, monkeypatch, capsys,
                                                      tmp_path):
    def no_loading(*args):
        raise AssertionError("the data was loaded before the options were checked")

    monkeypatch.setattr(options, "load", no_loading)
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_missing_or_corrupt_data_is_one_line(monkeypatch, capsys, tmp_path):
    from urllib.error import URLError

    import skksae.datasets

    def offline(*args):
        raise URLError("no network")

    monkeypatch.setattr(skksae.datasets, "_fetch_openml", offline)
    monkeypatch.delenv("SKKSAE_DATA_HOME", raising=False)
    assert main(["--dataset", "mnist", "--data-home", str(tmp_path)]) == 2
    line = _one_error_line(capsys)
    assert "mnist was not found" in line and str(tmp_path) in line
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / stem).write_bytes(b"\x00\x00\x08\x03 not an image")
    assert main(["--dataset", "mnist", "--data-home", str(tmp_path)]) == 2
    assert "truncated or corrupt" in _one_error_line(capsys)


def test_unwritable_output_is_one_line(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["--out", str(blocker / "results")]) == 2
    assert "cannot write there" in _one_error_line(capsys)


def test_a_data_home_that_does_not_exist_is_an_error(capsys, tmp_path):
    # rather than a silent fall-back to the other places the loader searches
    assert main(["--dataset", "fashion-mnist", "--data-home", str(tmp_path / "typo")]) == 2
    assert "no such folder" in _one_error_line(capsys)


def test_interrupted_run_keeps_its_finished_rows(monkeypatch, capsys, tmp_path):
    def interrupt(self, X, y=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(DenoisingAutoencoder, "fit", interrupt)
    out = tmp_path / "out"
    argv = ["--methods", "raw,ksparse,dae", "--epochs", "3", "--n-components", "32",
            "--k", "4", "--C", "1", "--out", str(out)]
    assert main(argv) == 130
    printed = capsys.readouterr()
    assert "interrupted; the 2 finished row(s) are in" in printed.err
    assert "Traceback" not in printed.err
    assert "| KSparseAutoencoder + LogisticRegression |" in printed.out  # the table so far
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"].split(" ")[0] for r in rows] == ["LogisticRegression",
                                                         "KSparseAutoencoder"]
    assert "KSparseAutoencoder + LogisticRegression" in (out / "results.md").read_text()
    assert not list(out.glob("*.tmp"))


def test_interrupted_fine_tuning_table_keeps_its_finished_rows(monkeypatch, capsys,
                                                               tmp_path):
    def interrupt(self, X, y=None):
        raise KeyboardInterrupt

    # the denoising stack's pretraining is the fourth network of --depths 1
    monkeypatch.setattr(DenoisingAutoencoder, "fit", interrupt)
    out = tmp_path / "out"
    argv = ["--table", "fine-tune", "--depths", "1", "--epochs", "2", "--n-components",
            "16", "--k", "4", "--out", str(out)]
    assert main(argv) == 130
    printed = capsys.readouterr()
    assert "interrupted; the 3 finished row(s) are in" in printed.err
    assert "finetune.csv" in printed.err
    assert "| 1 x 16 sigmoid, random init |" in printed.out
    with open(out / "finetune.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    assert not list(out.glob("*.tmp"))


class _InterruptAfter(io.StringIO):
    """A stdout that raises KeyboardInterrupt once a line holding ``text`` has been
    written, as a person pressing Ctrl-C right after seeing it."""

    def __init__(self, text):
        super().__init__()
        self.text = text
        self.seen = False

    def write(self, s):
        n = super().write(s)
        if not self.seen and self.text in self.getvalue():
            self.seen = True
            raise KeyboardInterrupt
        return n


@pytest.mark.parametrize("table, argv, name", [
    ("features", ["--methods", "raw,ksparse", "--epochs", "2", "--n-components", "16",
                  "--k", "4", "--C", "1"], "results.csv"),
    ("fine-tune", ["--depths", "1", "--epochs", "2", "--n-components", "16", "--k", "4"],
     "finetune.csv"),
])
def test_a_row_printed_is_a_row_saved(monkeypatch, tmp_path, table, argv, name):
    # Ctrl-C just after the first row's "test error" line: that row is on disk
    out = tmp_path / "out"
    stdout = _InterruptAfter("   test error ")
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["--table", table] + argv + ["--out", str(out)]) == 130
    assert stdout.seen
    with open(out / name) as f:
        assert len(list(csv.DictReader(f))) == 1


def test_progress_says_which_model_and_epoch(capsys):
    assert main(["--methods", "ksparse,dae,rbm", "--epochs", "4", "--n-components", "32",
                 "--k", "4", "--C", "1"]) == 0
    printed = capsys.readouterr()
    err = printed.err  # a log, not a terminal: plain lines
    assert "[model 1/3] KSparseAutoencoder epoch 4/4" in err
    assert "[model 2/3] DenoisingAutoencoder epoch 4/4" in err
    assert "[model 3/3] BernoulliRBM epoch 4/4" in err
    assert "s left" in err and "\r" not in err
    assert "[BernoulliRBM]" not in printed.out  # its own lines only with --verbose


def test_rbm_epochs_are_counted_from_its_batches_and_the_model_is_unchanged():
    X = np.random.RandomState(0).rand(50, 8)  # 4 batches of 16 per epoch, the last short
    seen = []
    rbm = BernoulliRBM(n_components=4, batch_size=16, n_iter=3, random_state=0)
    codes = progress.fit_transform(rbm, X, lambda est, epoch, n: seen.append((est, epoch, n)))
    assert seen == [(rbm, 1, 3), (rbm, 2, 3), (rbm, 3, 3)]
    assert "_fit" not in vars(rbm)  # the counting wrapper is gone
    plain = BernoulliRBM(n_components=4, batch_size=16, n_iter=3, random_state=0).fit(X)
    np.testing.assert_array_equal(rbm.components_, plain.components_)
    np.testing.assert_array_equal(codes, plain.transform(X))


def test_verbose_shows_the_rbm_lines(capsys):
    assert main(["--methods", "rbm", "--epochs", "2", "--n-components", "16", "--C", "1",
                 "--verbose", "1"]) == 0
    printed = capsys.readouterr()
    assert "[BernoulliRBM] Iteration 2, pseudo-likelihood" in printed.out
    assert "[model 1/1] BernoulliRBM epoch 2/2" in printed.err


def test_progress_updates_one_line_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    shown = progress.Progress(stream)
    shown.model("k-sparse")
    est = KSparseAutoencoder()
    for epoch in range(1, 4):
        shown(est, epoch, 3)
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.count("\n") == 1 and text.endswith("\n")
    assert "epoch 3/3" in text


def test_resume_runs_only_the_missing_methods(monkeypatch, tmp_path, capsys):
    out = tmp_path / "out"
    common = ["--epochs", "3", "--n-components", "32", "--k", "4", "--C", "1", "--out",
              str(out), "--no-figures"]
    assert main(["--methods", "raw,ksparse"] + common) == 0
    with open(out / "results.csv") as f:
        first = list(csv.DictReader(f))

    def must_not_train(self, X, y=None):
        raise AssertionError("a finished method was trained again")

    monkeypatch.setattr(KSparseAutoencoder, "fit", must_not_train)
    assert main(["--methods", "raw,ksparse,dae", "--resume"] + common) == 0
    assert "kept from" in capsys.readouterr().out
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[:2] == first  # the same rows, as they were
    assert rows[2]["method"].startswith("DenoisingAutoencoder")
    # other settings: nothing is reused
    with pytest.raises(AssertionError, match="trained again"):
        main(["--methods", "ksparse", "--resume", "--k", "5"] + common[:4] + common[6:])


def test_resume_with_an_unreadable_results_file_is_one_line(capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_bytes(b"method,settings\n\xff\xfe not text\n")
    assert main(["--methods", "raw", "--C", "1", "--out", str(out), "--resume"]) == 2
    assert "--resume: cannot read" in _one_error_line(capsys)


def test_precompile_flag_compiles_and_reports(capsys):
    assert main(["--precompile"]) == 0
    out = capsys.readouterr().out
    assert "compiling every kernel for this CPU" in out
    assert re.search(r"\d+ kernels compiled in \d+\.\d s", out)


@pytest.mark.parametrize("warm, said", [(False, True), (True, False), (None, False)])
def test_one_line_when_the_cache_is_empty(monkeypatch, capsys, warm, said):
    from skksae import _precompile

    monkeypatch.setattr(_precompile, "cache_is_warm", lambda dtype: warm)
    cli.say_if_cold(np.float32)
    err = capsys.readouterr().err
    assert ("compiling its kernels for this CPU, once" in err) is said
    assert err.count("\n") == int(said)
