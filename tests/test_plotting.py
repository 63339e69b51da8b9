"""Matrix plots and glass-brain graphs: what the figures hold, and nilearn as an oracle
for the edge-threshold semantics and the region coordinates."""

from __future__ import annotations

import itertools
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pytest

from sparse_connectome import plotting
from sparse_connectome.errors import InputError, ParameterError, ShapeMismatchError
from sparse_connectome.plotting._edges import kept_edges

MSDL_LIKE_COORDS = np.array([[-53, -9, 32], [53, -6, 28], [1, -75, 11], [-46, -65, 32],
                             [0, -55, 30], [0, 51, 8], [52, -59, 29], [0, -91, 2],
                             [-1, -28, 61], [40, 21, 45], [38, 55, 1], [48, -52, 43]], float)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _random_symmetric(n, seed=0, sparsity=0.0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    a = (a + a.T) / 2
    if sparsity:
        mask = rng.random((n, n)) < sparsity
        a[mask | mask.T] = 0.0
    np.fill_diagonal(a, 3.0)
    return a


def _edges(ax):
    (lc,) = [c for c in ax.collections if c.get_gid() == "connectome_edges"]
    return lc


def _nodes(ax):
    (sc,) = [c for c in ax.collections if c.get_gid() == "connectome_nodes"]
    return sc


# ----------------------------------------------------------------------------- plot_matrix

def test_plot_matrix_labels_colour_scale_and_return():
    mat = _random_symmetric(39) / 4
    labels = [f"region {i}" for i in range(39)]
    image = plotting.plot_matrix(mat, labels=labels, figure=(9, 7), title="Covariance")
    assert isinstance(image, matplotlib.image.AxesImage)
    ax = image.axes
    # Default: symmetric scale centred on 0 set by the largest |value|.
    bound = np.abs(mat).max()
    assert image.get_clim() == pytest.approx((-bound, bound))
    assert image.colorbar.ax.get_ylim() == pytest.approx((-bound, bound))
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert ax.get_title() == "Covariance"
    np.testing.assert_array_equal(image.get_array(), mat)
    image = plotting.plot_matrix(mat, labels=labels, vmin=-1, vmax=1)
    assert image.colorbar.ax.get_ylim() == pytest.approx((-1, 1))


def test_plot_matrix_thins_labels_at_400_regions():
    n = 400
    mat = _random_symmetric(n)
    labels = [f"parcel_{i:03d}" for i in range(n)]
    image = plotting.plot_matrix(mat, labels=labels)
    shown = [t.get_text() for t in image.axes.get_yticklabels()]
    assert 20 < len(shown) < n
    step = image.label_step
    assert shown == labels[::step]
    fig = image.figure
    fig.canvas.draw()
    # Neighbouring labels do not overlap on screen.
    boxes = [t.get_window_extent() for t in image.axes.get_yticklabels()]
    for a, b in itertools.pairwise(boxes):
        assert not a.overlaps(b)
    assert all(t.get_fontsize() >= 5 for t in image.axes.get_yticklabels())


def test_plot_matrix_reorder_tri_and_errors():
    rng = np.random.default_rng(3)
    blocks = np.kron(np.eye(3), np.ones((4, 4))) * 0.8
    perm = rng.permutation(12)
    mat = (blocks + 0.05 * rng.normal(size=(12, 12)))
    mat = (mat + mat.T) / 2
    mat = mat[np.ix_(perm, perm)]
    labels = [f"r{i}" for i in perm]
    image = plotting.plot_matrix(mat, labels=labels, reorder=True)
    order = image.order
    # Clustering puts the three blocks back together: block ids are contiguous runs.
    block_of = (perm[order] // 4)
    assert np.count_nonzero(np.diff(block_of)) == 2
    networks = ["b", "a", "b", "c", "a", "c", "a", "b", "c", "a", "b", "c"]
    image = plotting.plot_matrix(mat, labels=labels, reorder=networks, grid=True)
    assert [networks[i] for i in image.order] == ["b"] * 4 + ["a"] * 4 + ["c"] * 4
    image = plotting.plot_matrix(mat, tri="lower")
    shown = image.get_array()
    assert shown.mask[np.triu_indices(12)].all() and not shown.mask[np.tril_indices(12, -1)].any()
    with pytest.raises(ShapeMismatchError):
        plotting.plot_matrix(mat, labels=labels[:3])
    with pytest.raises(InputError):
        plotting.plot_matrix(np.ones((3, 4)))
    with pytest.raises(ParameterError):
        plotting.plot_matrix(mat, tri="upper")
    with pytest.raises(ParameterError):
        plotting.plot_matrix(mat, reorder="nonsense")


# ------------------------------------------------------------------------- plot_connectome

@pytest.mark.parametrize("mode, panels", [
    ("ortho", "xyz"), ("x", "x"), ("y", "y"), ("z", "z"), ("l", "l"), ("r", "r"),
    ("lzr", "lzr"), ("lyrz", "lyrz"),
])
def test_display_modes_have_panels_with_outlines(mode, panels):
    adj = _random_symmetric(12, seed=1)
    display = plotting.plot_connectome(adj, MSDL_LIKE_COORDS, display_mode=mode)
    assert "".join(display.axes) == panels
    for ax in display.axes.values():
        gids = [c.get_gid() for c in ax.collections]
        assert "glass_brain_outline" in gids and "glass_brain_folds" in gids
        (outline,) = [c for c in ax.collections if c.get_gid() == "glass_brain_outline"]
        pts = np.concatenate(outline.get_segments())
        # The outline spans a brain: ~130-180 mm across in each direction shown.
        assert 120 < np.ptp(pts[:, 0]) < 200 and 120 < np.ptp(pts[:, 1]) < 200
    display.close()


def test_threshold_count_colours_and_colourbar():
    adj = _random_symmetric(12, seed=2)
    display = plotting.plot_connectome(adj, MSDL_LIKE_COORDS, edge_threshold="80%",
                                       display_mode="ortho")
    n_pairs = 12 * 11 // 2
    expected = int(np.ceil(0.2 * n_pairs)) - (1 if (0.8 * (n_pairs - 1)).is_integer() else 0)
    _, _, weights = kept_edges(adj, "80%")
    assert len(weights) == display.n_edges
    assert abs(len(weights) - 0.2 * n_pairs) <= 1 and expected > 0
    iu = np.triu_indices(12, 1)
    assert np.min(np.abs(weights)) > np.percentile(np.abs(adj[iu]), 80)
    for ax in display.axes.values():
        assert len(_edges(ax).get_segments()) == len(weights)
        assert len(_nodes(ax).get_offsets()) == 12
    # Colour bar: symmetric, set by the largest |weight| drawn.
    bound = np.max(np.abs(weights))
    assert display.colorbar_ax.get_ylim() == pytest.approx((-bound, bound))
    # The strongest positive edge is drawn in the top colour of bwr.
    lc = _edges(display.axes["z"])
    top = lc.get_colors()[-1]
    expect = matplotlib.colormaps["bwr"](0.5 + 0.5 * weights[-1] / bound)
    np.testing.assert_allclose(top[:3], expect[:3], atol=1e-6)
    display = plotting.plot_connectome(adj, MSDL_LIKE_COORDS, edge_threshold=0.5,
                                       edge_vmin=-2, edge_vmax=2, colorbar=True)
    assert display.n_edges == int(np.sum(np.abs(adj[iu]) >= 0.5))
    assert display.colorbar_ax.get_ylim() == pytest.approx((-2, 2))


def test_hemisphere_views_show_their_own_nodes():
    adj = np.ones((5, 5))
    coords = np.array([[-40, 0, 0], [-30, 20, 10], [40, 0, 0], [30, -20, 10], [0, 10, 20.]])
    display = plotting.plot_connectome(adj, coords, display_mode="lyrz")
    assert len(_nodes(display.axes["l"]).get_offsets()) == 3
    assert len(_nodes(display.axes["r"]).get_offsets()) == 3
    assert len(_edges(display.axes["l"]).get_segments()) == 3
    assert len(_edges(display.axes["y"]).get_segments()) == 10
    # Seen from the left, anterior is on the left: the x axis is inverted.
    lo, hi = display.axes["l"].get_xlim()
    assert lo > hi


def test_networks_colour_nodes_and_legend(tmp_path):
    adj = _random_symmetric(12, seed=4)
    networks = ["A", "A", "B", "C", "C", "C", "B", "A", "D", "D", "B", "A"]
    display = plotting.plot_connectome(adj, MSDL_LIKE_COORDS, node_networks=networks,
                                       display_mode="z", title="nets")
    sc = _nodes(display.axes["z"])
    colours = sc.get_facecolors()
    by_net = {}
    for idx, rgba in zip(sc.node_indices, colours):
        by_net.setdefault(networks[idx], set()).add(tuple(np.round(rgba, 4)))
    assert all(len(v) == 1 for v in by_net.values())
    assert len({next(iter(v)) for v in by_net.values()}) == 4
    legend = display.figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["A", "B", "C", "D"]
    out = tmp_path / "graph.png"
    assert plotting.plot_connectome(adj, MSDL_LIKE_COORDS, output_file=out) is None
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [out]


def test_plot_connectome_errors():
    adj = _random_symmetric(12)
    with pytest.raises(ShapeMismatchError):
        plotting.plot_connectome(adj, MSDL_LIKE_COORDS[:5])
    with pytest.raises(InputError):
        plotting.plot_connectome(adj + np.triu(np.ones((12, 12)), 1), MSDL_LIKE_COORDS)
    for bad in ("80", "120%", -1, "abc%", [1]):
        with pytest.raises(ParameterError):
            plotting.plot_connectome(adj, MSDL_LIKE_COORDS, edge_threshold=bad)
    with pytest.raises(ParameterError):
        plotting.plot_connectome(adj, MSDL_LIKE_COORDS, display_mode="q")


def _nilearn_line_count(adj, coords, threshold):
    nl_plotting = pytest.importorskip("nilearn.plotting")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        display = nl_plotting.plot_connectome(adj, coords, edge_threshold=threshold,
                                              display_mode="z", colorbar=False)
    count = len(next(iter(display.axes.values())).ax.lines)
    display.close()
    return count


@pytest.mark.parametrize("threshold", ["80%", "50%", "33.3%", "95%", 0.5, 0.25, "0%"])
@pytest.mark.parametrize("case", ["dense", "sparse", "ties"])
def test_threshold_matches_nilearn(case, threshold):
    n = 12
    if case == "dense":
        adj = _random_symmetric(n, seed=7)
    elif case == "sparse":
        adj = _random_symmetric(n, seed=8, sparsity=0.7)
    else:  # exact ties at the threshold and at the percentile
        adj = np.zeros((n, n))
        il = np.tril_indices(n, -1)
        adj[il] = np.resize([0.5, 0.25, 1.0, -0.5, 0.0, 0.25], len(il[0]))
        adj = adj + adj.T
    coords = MSDL_LIKE_COORDS
    ours = plotting.plot_connectome(adj, coords, edge_threshold=threshold, display_mode="z")
    assert ours.n_edges == _nilearn_line_count(adj, coords, threshold)


# ------------------------------------------------------------------------- cut coordinates

def _blob_maps():
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-96, -132, -78]
    shape = (50, 59, 50)
    grid = np.indices(shape).reshape(3, -1).T
    world = grid * 4.0 + affine[:3, 3]
    centres = np.array([[-40, -20, 10], [38, 22, -6], [2, -70, 30], [-20, 40, 40]], float)
    maps = np.zeros(shape + (len(centres),), np.float32)
    for k, c in enumerate(centres):
        d2 = ((world - c) ** 2).sum(axis=1)
        maps[..., k] = np.exp(-d2 / (2 * 8.0 ** 2)).reshape(shape)
    maps[..., 2] += 0.3 * maps[..., 0]  # a second, weaker lobe in map 2
    maps[maps < 0.05] = 0.0  # atlas maps are zero away from their region
    return nib.Nifti1Image(maps, affine), centres


def test_probabilistic_cut_coords_vs_truth_and_nilearn():
    img, centres = _blob_maps()
    coords = plotting.find_probabilistic_atlas_cut_coords(img)
    assert coords.shape == (4, 3)
    assert np.max(np.linalg.norm(coords - centres, axis=1)) < 2.5
    nl_plotting = pytest.importorskip("nilearn.plotting")
    ref = nl_plotting.find_probabilistic_atlas_cut_coords(img)
    assert np.max(np.linalg.norm(coords - ref, axis=1)) < 4.0


def test_parcellation_cut_coords_match_nilearn():
    img, _ = _blob_maps()
    maps = img.get_fdata()
    labels = np.where(maps.max(-1) > 0.2, maps.argmax(-1) + 1, 0).astype(np.int16)
    labels[labels == 4] = 7  # non-contiguous label values
    limg = nib.Nifti1Image(labels, img.affine)
    coords, names = plotting.find_parcellation_cut_coords(limg, return_label_names=True)
    assert names == [1, 2, 3, 7]
    nl_plotting = pytest.importorskip("nilearn.plotting")
    ref, ref_names = nl_plotting.find_parcellation_cut_coords(limg, return_label_names=True)
    assert list(ref_names) == names
    np.testing.assert_allclose(coords, ref, atol=1e-6)
    with pytest.raises(InputError):
        plotting.find_parcellation_cut_coords(nib.Nifti1Image(np.zeros((4, 4, 4)), np.eye(4)))


def test_glass_brain_blur_matches_scipy_gaussian_filter():
    # The outlines use a NumPy blur to avoid importing scipy.ndimage; it must be
    # the same filter (mirrored edges, 4-sigma truncation).
    from scipy import ndimage

    from sparse_connectome.plotting.glass_brain import _gaussian_blur

    image = np.random.default_rng(0).random((109, 91))
    for sigma in (1.0, 1.2, 2.5):
        np.testing.assert_allclose(_gaussian_blur(image, sigma),
                                   ndimage.gaussian_filter(image, sigma), atol=1e-12)
