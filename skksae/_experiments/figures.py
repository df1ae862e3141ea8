"""Figures for the comparison command (matplotlib, the ``examples`` extra)."""

import copy
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .._plotting import filter_extent, filter_mosaic
from . import models
from .options import FILTER_KS


def write_figures(out, X_train, X_test, fitted, image_shape, args, log=print,
                  filter_models=None):
    """Write ``filters.png`` (the paper's figure: filters for k = 70, 40, 25, 10),
    ``reconstructions.png`` and ``loss_curves.png`` into the folder ``out``.

    ``fitted`` maps method names to fitted feature extractors (pipelines or
    estimators). ``filter_models`` maps k to fitted k-sparse autoencoders (the models
    of a k sweep): the filters figure then shows those, largest k first, instead of
    training its own models for k = 70, 40, 25, 10. Returns the paths written;
    nothing when matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install 'skksae[examples]'): no figures")
        return []
    paths = [_filters_figure(plt, out, X_train, image_shape, args, log, filter_models)]
    autoencoders = {m: fitted[m] for m in ("ksparse", "dae") if m in fitted}
    if autoencoders:
        paths += _reconstruction_figures(plt, out, X_test, autoencoders, image_shape)
    return paths


def _filters_figure(plt, out, X_train, image_shape, args, log, filter_models):
    """``filters.png``: filters for several k (see :func:`write_figures`)."""
    n_show = min(100, args.n_components)
    # Filters for several k, trained like the comparison's model, each tile on its own
    # scale.  The median spatial extent of the live units' filters (those selected at
    # least once on the training data) measures how local they are; the figure shows a
    # random sample of those units, the most used first.  The most used units alone
    # would mislead: at every k they are whole-digit templates that most images select.
    ks = FILTER_KS if filter_models is None else sorted(filter_models, reverse=True)
    fig, axes = plt.subplots(1, len(ks), figsize=(4 * len(ks), 4.6), squeeze=False)
    rng = np.random.default_rng(args.seed)
    for ax, k in zip(axes[0], ks):
        if filter_models is None:
            ae = models.filter_model(args, k)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                ae.fit(X_train)
        else:
            # the units a sample selects in training: k of them, whatever alpha the
            # table's classifier chose for encoding
            ae = copy.copy(filter_models[k]).set_params(transform_k_factor=1)
        k = ae.k  # at most n_components
        used = np.asarray((ae.transform(X_train) != 0).sum(axis=0)).ravel()
        live = np.flatnonzero(used)
        if live.size == 0:  # no unit ever selected: show (and measure) them all
            live = np.arange(used.size)
        extent = float(np.median(filter_extent(ae.components_[live], image_shape)))
        shown = rng.choice(live, size=min(n_show, live.size), replace=False)
        shown = shown[np.argsort(-used[shown], kind="stable")]
        ax.imshow(filter_mosaic(ae.components_[shown], image_shape), cmap="gray",
                  interpolation="nearest")
        ax.set_title(f"k = {k}: median extent {extent:.2f} px")
        ax.set_axis_off()
        log(f"  filters for k = {k}: median extent {extent:.2f} px over the {live.size} "
            f"live units of {used.size}")
    trained = (f"{args.filter_epochs} epochs" if filter_models is None
               else "the table's models")
    fig.suptitle(f"k-sparse autoencoder filters: {n_show} random live units of "
                 f"{args.n_components}, most used first ({trained}); "
                 "extent = median RMS radius of the live units' filter energy")
    fig.tight_layout()
    path = out / "filters.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _reconstruction_figures(plt, out, X_test, autoencoders, image_shape):
    """``reconstructions.png`` (test images beside the inputs) and ``loss_curves.png``
    for the fitted ``autoencoders`` (by method name)."""
    X = X_test[:10]
    rows = [("input", X)]
    for name, model in autoencoders.items():
        rows.append((name, _reconstruct(model, X)))
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 1.2 * len(rows) + 0.4))
    axes = np.atleast_1d(axes)
    for ax, (name, images) in zip(axes, rows):
        ax.imshow(filter_mosaic(images, image_shape, n_cols=len(X), pad=1), cmap="gray",
                  interpolation="nearest")
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    paths = [out / "reconstructions.png"]
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, model in autoencoders.items():
        est = _autoencoder(model)
        ax.plot(np.arange(1, len(est.loss_curve_) + 1), est.loss_curve_, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss per sample")
    ax.set_title("k-sparse: half squared error; denoising: its own loss", fontsize=9)
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "loss_curves.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def _autoencoder(model):
    """The autoencoder inside a pipeline (or the model itself)."""
    steps = getattr(model, "steps", None)
    if steps is None:
        return model
    return next(est for _, est in steps if hasattr(est, "loss_curve_"))


def _reconstruct(model, X):
    """Input-space reconstruction through the model's autoencoder (the scaling of
    the codes after it is not applied)."""
    ae = _autoencoder(model)
    return ae.inverse_transform(ae.transform(X))
