"""Drawing learned filters as image tiles (needs matplotlib, the ``examples`` extra)."""

import numpy as np


def _check_image_shape(components, image_shape):
    """``image_shape`` as (height, width), checked against the filters' length."""
    h, w = image_shape
    if h * w != components.shape[1]:
        raise ValueError(
            f"image_shape {image_shape} has {h * w} pixels but the filters have "
            f"{components.shape[1]} features."
        )
    return h, w


def filter_mosaic(components, image_shape, n_filters=None, n_cols=None, pad=1):
    """Arrange rows of ``components`` as image tiles in one 2-D array.

    Each filter is scaled to [0, 1] on its own; tiles are separated by ``pad`` pixels
    of NaN (drawn as background).

    Parameters
    ----------
    components : ndarray of shape (n_components, n_features)
        Filters, such as ``estimator.components_``.

    image_shape : tuple of int
        (height, width) with ``height * width == n_features``.

    n_filters : int, default=None
        How many filters, from the first; all by default.

    n_cols : int, default=None
        Tiles per row; about the square root of ``n_filters`` by default.

    pad : int, default=1
        Pixels between tiles.

    Returns
    -------
    mosaic : ndarray of shape (rows * (height + pad) - pad, cols * (width + pad) - pad)

    See Also
    --------
    plot_filters : Draw the mosaic with matplotlib.

    References
    ----------
    .. [1] A. Makhzani and B. Frey, "k-Sparse Autoencoders", ICLR 2014, figure 1.

    Examples
    --------
    >>> import numpy as np
    >>> from skksae import filter_mosaic
    >>> filter_mosaic(np.random.rand(6, 4), (2, 2), n_cols=3).shape
    (5, 8)
    """
    components = np.asarray(components)
    h, w = _check_image_shape(components, image_shape)
    n = components.shape[0] if n_filters is None else min(n_filters, components.shape[0])
    cols = n_cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    mosaic = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), np.nan)
    for i in range(n):
        f = components[i].reshape(h, w).astype(float)
        span = f.max() - f.min()
        f = (f - f.min()) / span if span > 0 else np.zeros_like(f)
        r, c = divmod(i, cols)
        mosaic[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = f
    return mosaic


def filter_extent(components, image_shape):
    """Spatial extent of each filter: the radius of gyration of its energy, in pixels.

    A filter's energy ``w**2``, normalised to sum to 1, is a distribution over the
    pixels; its extent is the root-mean-square distance of that distribution from its
    centre. A local stroke detector has a small extent, a whole-digit template a
    large one (about a third of the image side for a uniform image).

    Parameters
    ----------
    components : ndarray of shape (n_components, n_features)
        Filters, such as ``estimator.components_``.

    image_shape : tuple of int
        (height, width) with ``height * width == n_features``.

    Returns
    -------
    extent : ndarray of shape (n_components,)
        Extent of each filter in pixels (0 for an all-zero filter).

    See Also
    --------
    filter_mosaic : The filters as image tiles.

    References
    ----------
    .. [1] A. Makhzani and B. Frey, "k-Sparse Autoencoders", ICLR 2014, figure 1.

    Examples
    --------
    >>> import numpy as np
    >>> from skksae import filter_extent
    >>> dot = np.zeros((5, 5)); dot[2, 2] = 1
    >>> float(filter_extent(dot.reshape(1, -1), (5, 5))[0])
    0.0
    >>> bar = np.zeros((5, 5)); bar[2, :] = 1
    >>> round(float(filter_extent(bar.reshape(1, -1), (5, 5))[0]), 3)
    1.414
    """
    components = np.asarray(components, dtype=np.float64)
    h, w = _check_image_shape(components, image_shape)
    energy = components**2
    total = energy.sum(axis=1, keepdims=True)
    energy = np.divide(energy, total, out=np.zeros_like(energy), where=total > 0)
    rows, cols = np.divmod(np.arange(h * w), w)
    r0 = energy @ rows
    c0 = energy @ cols
    spread = energy @ (rows**2 + cols**2) - r0**2 - c0**2
    return np.sqrt(np.maximum(spread, 0))


def plot_filters(estimator, image_shape, n_filters=100, ax=None, cmap="gray", **kwargs):
    """Draw an autoencoder's filters (its ``components_`` rows) as image tiles.

    Parameters
    ----------
    estimator : fitted autoencoder or ndarray of shape (n_components, n_features)
        Anything with ``components_``, or the filters themselves.

    image_shape : tuple of int
        (height, width) of one input image.

    n_filters : int, default=100
        How many filters to draw.

    ax : matplotlib Axes, default=None
        Where to draw; the current axes by default.

    cmap : str, default="gray"
        Colour map.

    **kwargs
        Passed to :func:`filter_mosaic` (``n_cols``, ``pad``).

    Returns
    -------
    image : matplotlib.image.AxesImage

    See Also
    --------
    filter_mosaic : The tiled array, without drawing.

    References
    ----------
    .. [1] A. Makhzani and B. Frey, "k-Sparse Autoencoders", ICLR 2014, figure 1.

    Examples
    --------
    >>> import numpy as np
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skksae import plot_filters
    >>> image = plot_filters(np.random.rand(16, 64), (8, 8))
    """
    import matplotlib.pyplot as plt

    components = getattr(estimator, "components_", estimator)
    mosaic = filter_mosaic(components, image_shape, n_filters, **kwargs)
    ax = plt.gca() if ax is None else ax
    image = ax.imshow(mosaic, cmap=cmap, interpolation="nearest")
    ax.set_axis_off()
    return image
