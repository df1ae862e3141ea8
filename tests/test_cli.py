"""The comparison command on the embedded digits data."""

import csv

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from skksae._cli import CLASSIFIER, fit_classifier, main, make_extractor, parse_args


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


def test_classifier_chosen_on_validation_then_refit_to_convergence():
    """C is the grid value with the best validation accuracy; the warm-started refit
    on all training data reaches the optimum a cold fit with that C reaches."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    lines = []
    clf, C = fit_classifier(X, y, [10.0, 0.01, 1.0], 0, lines.append)
    assert [line.split(":")[0].strip() for line in lines] == ["C=0.01", "C=1", "C=10"]
    accuracy = [float(line.split("accuracy ")[1].split(",")[0]) for line in lines]
    assert C == [0.01, 1.0, 10.0][int(np.argmax(accuracy))]
    assert clf.C == C and clf.n_iter_[0] < clf.max_iter
    cold = LogisticRegression(C=C, **CLASSIFIER).fit(X, y)
    np.testing.assert_allclose(clf.coef_, cold.coef_, atol=1e-3 * np.abs(cold.coef_).max())
    np.testing.assert_array_equal(clf.predict(X), cold.predict(X))
