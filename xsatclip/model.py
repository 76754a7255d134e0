"""The SatCLIP location encoder: basis + SIREN network, with its identity, evaluated in batches."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch

from .harmonics import (
    NUMERICS,
    basis_columns_kernel,
    check_latitude,
    check_longitude,
    legendre_recursion_coefficients,
    spherical_harmonics,
    validate_lonlat,
    zonal_scale,
)
from .harmonics_torch import spherical_harmonics_torch
from .siren import SirenNet

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a location encoder: ``L*L`` basis features -> ``embed_dim`` outputs."""

    level: int
    capacity: int = 256
    num_hidden_layers: int = 2
    embed_dim: int = 256
    convention: str = "satclip"

    def build_network(self) -> SirenNet:
        """A freshly initialised network of this architecture (float32)."""
        return SirenNet(self.level**2, self.capacity, self.embed_dim, self.num_hidden_layers)


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """What produced an embedding: recorded in every output's attrs."""

    name: str
    source: str
    sha256: str
    level: int
    convention: str
    numerics: str
    capacity: int
    embed_dim: int

    def attrs(self) -> dict[str, str | int]:
        """Flat, netCDF/Zarr-safe attributes (``model_*`` keys)."""
        return {f"model_{k}": v for k, v in dataclasses.asdict(self).items()}


def weights_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the tensors (sorted by name: name, dtype, shape, little-endian bytes).

    Independent of the file format, so a checkpoint converted to xsatclip's own format keeps
    its hash as long as the stored values and dtypes are the same.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        array = state_dict[name].detach().cpu().numpy()
        digest.update(f"{name}|{array.dtype}|{array.shape}|".encode())
        digest.update(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return digest.hexdigest()


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when torch sees a GPU, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_batch_size(device: torch.device, level: int, capacity: int, *,
                       grid: bool = False) -> int:
    """Points per batch. On the CPU, pointwise: a basis block of about 1 MiB of float32, at
    least 512 points, which stays in the core's L2 cache between the basis kernel and the
    first GEMM; grids (no basis block): 2048 points. Measured at L = 40, capacity 512: 512
    points beat 256 by 4% and 1024 by 7% pointwise, and 2048 points beat 256 by 8-16% on
    grids. On accelerators, a share of free GPU memory."""
    if device.type == "cuda":
        bytes_per_point = 8 * (3 * level * level + 2 * capacity)  # float64 basis temporaries
        free, _ = torch.cuda.mem_get_info(device)
        return int(max(4096, min(2**22, free // 4 // bytes_per_point)))
    if grid:
        return 2048
    return int(max(512, min(65536, 2**20 // (4 * level * level))))


PIECE_BATCHES = 16  # batches per piece of work handed to a thread (LocationEncoder._run_pieces)


@contextlib.contextmanager
def single_threaded_kernels():
    """Run torch and Numba with one thread in the calling thread (a Dask task, or a piece of
    :meth:`LocationEncoder._run_pieces`), then restore.

    Both counts are per OS thread (torch's comes from OpenMP), so concurrent pieces do not
    disturb each other. Numba's threading layer is started first: its start-up sets the
    OpenMP thread count of the thread that triggers it, which would undo torch's setting.
    numpy's own BLAS (OpenBLAS) is not covered: kernels here use torch for matrix products.
    """
    numba_threads = numba.get_num_threads()  # also starts Numba's threading layer
    torch_threads = torch.get_num_threads()
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        numba.set_num_threads(numba_threads)


@functools.cache
def _fold_columns(L: int) -> tuple[np.ndarray, np.ndarray]:
    """Basis columns for the separable fold, (2L - 1, L) each: row k is m = k - (L - 1), its
    degrees l = |m| .. L - 1 then padding. The first holds the column of ``A_{l,|m|}`` (padding:
    column 0), the second ``W_0``'s column of (l, m) (padding: L*L, a zero column)."""
    legendre = np.zeros((2 * L - 1, L), dtype=np.int64)
    weight = np.full((2 * L - 1, L), L * L, dtype=np.int64)
    for k, m in enumerate(range(-(L - 1), L)):
        degree = np.arange(abs(m), L)
        legendre[k, : degree.size] = degree * degree + degree + abs(m)
        weight[k, : degree.size] = degree * degree + degree + m
    return legendre, weight


class LocationEncoder:
    """A loaded SatCLIP location encoder.

    Parameters
    ----------
    config : ModelConfig
    state_dict : mapping of the SIREN weights (reference names).
    source, name : where the weights came from, for provenance.
    numerics : {"exact", "reference"}
    dtype : {"float32", "float64"}; the weights are cast once at load.
    device : "auto", "cpu", "cuda", ...
    """

    def __init__(
        self,
        config: ModelConfig,
        state_dict: Mapping[str, torch.Tensor],
        *,
        source: str,
        name: str | None = None,
        numerics: str = "exact",
        dtype: str = "float32",
        device: str | torch.device = "auto",
    ) -> None:
        if numerics not in NUMERICS:
            raise ValueError(f"numerics={numerics!r} is not known; choose one of {list(NUMERICS)}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r} is not supported; choose one of {list(DTYPES)}")
        self.config = config
        self.numerics = numerics
        self.dtype = dtype
        self.device = resolve_device(device)
        self.zonal_scale = zonal_scale(config.convention)
        # The Numba kernel on the CPU; on accelerators the torch recursion runs on the device.
        self.basis_backend = "numba" if self.device.type == "cpu" else "torch"
        # Cast before loading so float64 weights never pass through float32.
        self.network = config.build_network().to(dtype=DTYPES[dtype])
        self.network.load_state_dict(state_dict)
        self.network.to(device=self.device).eval()
        self.identity = ModelIdentity(
            name=name or source,
            source=source,
            sha256=weights_sha256(state_dict),
            level=config.level,
            convention=config.convention,
            numerics=numerics,
            capacity=config.capacity,
            embed_dim=config.embed_dim,
        )

    def __repr__(self) -> str:
        i = self.identity
        return (f"LocationEncoder(name={i.name!r}, level={i.level}, capacity={i.capacity}, "
                f"embed_dim={i.embed_dim}, numerics={i.numerics!r}, dtype={self.dtype!r}, "
                f"device={str(self.device)!r})")

    @property
    def level(self) -> int:
        return self.config.level

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def basis(self, lon: np.ndarray, lat: np.ndarray) -> torch.Tensor:
        """Basis features of validated float64 points as a (N, L*L) tensor on the device."""
        torch_dtype = DTYPES[self.dtype]
        if self.basis_backend == "torch" and self.numerics == "exact":
            lon_t = torch.from_numpy(lon).to(self.device)
            lat_t = torch.from_numpy(lat).to(self.device)
            return spherical_harmonics_torch(lon_t, lat_t, self.level, self.zonal_scale,
                                             torch_dtype)
        features = spherical_harmonics(lon, lat, self.level, convention=self.config.convention,
                                       numerics=self.numerics, dtype=np.dtype(self.dtype))
        return torch.from_numpy(features).to(self.device)

    def encode(self, lon, lat, *, batch_size: int | None = None) -> np.ndarray:
        """Embeddings of points, (N, embed_dim) in the model's dtype.

        ``lon``/``lat`` in degrees, any shape (flattened). Memory is bounded by ``batch_size``
        points at a time (per thread): the (N, L*L) basis is never materialised for all N.

        The network runs on feature columns, ``h = sin(w0 (W @ x + b))`` with x (features,
        points): on the CPU ("exact" numerics) the basis kernel writes each batch's columns
        into one reused buffer, and every layer's output goes into a reused buffer, the last
        one straight into the result. Threads: see :meth:`_run_pieces`.
        """
        lon, lat = validate_lonlat(lon, lat)
        batch_size = self._batch_size(batch_size)
        out = np.empty((lon.size, self.embed_dim), dtype=self.dtype)

        def run(start: int, stop: int) -> None:
            self._encode_batches(lon[start:stop], lat[start:stop], out[start:stop], batch_size)

        self._run_pieces(lon.size, PIECE_BATCHES * batch_size, run)
        return out

    def _encode_batches(self, lon: np.ndarray, lat: np.ndarray, out: np.ndarray,
                        batch_size: int) -> None:
        fused = self.basis_backend == "numba" and self.numerics == "exact"
        points = min(batch_size, lon.size)
        features = np.empty(self.level**2 * points if fused else 0, self.dtype)
        hidden = [torch.empty(self.config.capacity * points, dtype=DTYPES[self.dtype],
                              device=self.device) for _ in range(2)]
        coefficients = legendre_recursion_coefficients(self.level)
        tiny = np.finfo(self.dtype).tiny
        with torch.inference_mode():
            for start in range(0, lon.size, batch_size):
                stop = min(start + batch_size, lon.size)
                if fused:
                    columns = features[: self.level**2 * (stop - start)].reshape(-1, stop - start)
                    basis_columns_kernel(lon[start:stop], lat[start:stop], *coefficients,
                                         self.zonal_scale, tiny, columns)
                    x = torch.from_numpy(columns)
                else:
                    x = self.basis(lon[start:stop], lat[start:stop]).T
                for i, layer in enumerate(self.network.layers):
                    h = hidden[i % 2][: x.shape[1] * layer.weight.shape[0]].view(-1, x.shape[1])
                    x = layer.activate(torch.addmm(layer.bias[:, None], layer.weight, x, out=h))
                last = self.network.last_layer
                result = torch.from_numpy(out[start:stop])
                if self.device.type == "cpu":
                    torch.addmm(last.bias, x.T, last.weight.T, out=result)
                else:
                    result.copy_(torch.addmm(last.bias, x.T, last.weight.T))

    def _batch_size(self, batch_size: int | None, grid: bool = False) -> int:
        if batch_size is None:
            return default_batch_size(self.device, self.level, self.config.capacity, grid=grid)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        return batch_size

    def _run_pieces(self, n: int, piece: int, run) -> None:
        """``run(start, stop)`` over ``[0, n)`` in pieces of at most ``piece``.

        On the CPU with several torch threads (a direct call, not a Dask task), the pieces go
        to that many threads, each with single-threaded kernels: one synchronisation per
        piece instead of one per kernel call. With intra-op threading every GEMM, sine and
        basis call of a batch waits for all cores, and while another process holds a core
        each of them waits for its time slice (20x slower on a 2-core machine).
        """
        threads = torch.get_num_threads() if self.device.type == "cpu" else 1
        if threads >= 2 and n > piece:
            # Equal pieces, as many as a multiple of the threads: no lone last piece.
            count = -(-n // piece)
            piece = -(-n // (-(-count // threads) * threads))
        starts = range(0, n, piece)
        if threads < 2 or len(starts) < 2:
            for start in starts:
                run(start, min(start + piece, n))
            return

        def task(start: int) -> None:
            with single_threaded_kernels():
                run(start, min(start + piece, n))

        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="xsatclip") as pool:
            for _ in pool.map(task, starts):
                pass

    def encode_grid(self, lon, lat, *, batch_size: int | None = None) -> np.ndarray:
        """Embeddings of the rectilinear grid ``lat`` (ny,) x ``lon`` (nx,): (ny, nx, embed_dim).

        Separable evaluation. A harmonic is a Legendre part of the row times a trigonometric
        part of the column, so the first layer folds per row,
        ``W_0 Y(i, j) = sum_m (sum_l W_0[:, (l, m)] A_lm(lat_i)) T_m(lon_j)``, and costs
        O(hidden x (2L - 1)) per point instead of O(hidden x L^2). The per-row basis comes from
        the model's numerics; the fold runs in the model's dtype. Memory is bounded by
        ``batch_size`` points (whole rows) at a time, per thread (see :meth:`_run_pieces`).
        """
        lon, lat = check_longitude(lon), check_latitude(lat)
        batch_size = self._batch_size(batch_size, grid=True)
        trig = torch.from_numpy(self._column_trig(lon)).to(self.device, DTYPES[self.dtype])
        out = np.empty((lat.size, lon.size, self.embed_dim), dtype=self.dtype)
        rows_per_batch = max(1, batch_size // max(lon.size, 1))

        def run(start: int, stop: int) -> None:
            self._grid_rows(lat[start:stop], trig, out[start:stop], rows_per_batch)

        self._run_pieces(lat.size, PIECE_BATCHES * rows_per_batch, run)
        return out

    def _grid_rows(self, lat: np.ndarray, trig: torch.Tensor, out: np.ndarray,
                   rows_per_batch: int) -> None:
        folded = self._fold_first_layer(lat)
        bias = self.network.layers[0].bias
        nx = trig.shape[0]
        with torch.inference_mode():
            for start in range(0, lat.size, rows_per_batch):
                stop = min(start + rows_per_batch, lat.size)
                # One GEMM for the batch's rows: (nx, 2L - 1) @ (2L - 1, rows * hidden), so
                # point (i, j) is row j, columns i * hidden .. (i + 1) * hidden - 1.
                pre = torch.addmm(bias.repeat(stop - start), trig, folded[:, start:stop].flatten(1))
                emb = self.network.head(pre.view(-1, bias.shape[0]))
                emb = emb.view(nx, stop - start, self.embed_dim).transpose(0, 1)
                out[start:stop] = emb.cpu().numpy()

    def _fold_first_layer(self, lat: np.ndarray) -> torch.Tensor:
        """``R[k, i, :] = sum_l A_{l,|m|}(lat_i) W_0[:, (l, m)]`` for m = k - (L - 1):
        (2L - 1, ny, hidden) in the model's dtype, on its device.

        One batched GEMM over m, each m's degrees padded to L with zero weights, in torch (so
        that it follows the thread policy of :func:`single_threaded_kernels`).
        """
        L = self.level
        # At lon = -180 (phi = 0) the m >= 0 columns hold exactly the Legendre parts.
        rows = spherical_harmonics(np.full(lat.size, -180.0), lat, L,
                                   convention=self.config.convention, numerics=self.numerics,
                                   dtype=np.float64)
        legendre_columns, weight_columns = _fold_columns(L)
        legendre = rows[:, legendre_columns]
        # High orders near the poles have Legendre parts so small that their products with
        # the weights would be subnormal, which slows the GEMMs several-fold. Parts below
        # tiny / eps (1e-31 in float32) are dropped: each such term is below 1e-31 |W_0|, some
        # 20 orders of magnitude under the float32 resolution of the pre-activations.
        info = np.finfo(self.dtype)
        legendre[np.abs(legendre) < info.tiny / info.eps] = 0.0
        weight = self.network.layers[0].weight.detach().to("cpu")
        padded = torch.cat([weight.T, weight.new_zeros(1, weight.shape[0])])[weight_columns]
        folded = torch.bmm(torch.from_numpy(legendre).to(weight.dtype).transpose(0, 1), padded)
        return folded.to(self.device)

    def _column_trig(self, lon: np.ndarray) -> np.ndarray:
        """``T[j, k]`` = sin(|m| phi_j), 1, cos(m phi_j) for m = k - (L - 1) <, =, > 0
        (nx, 2L - 1) float64; NaN rows for NaN longitudes."""
        phi = np.radians(np.mod(lon + 180.0, 360.0))[:, None]
        m = np.arange(-(self.level - 1), self.level)
        trig = np.where(m < 0, np.sin(-m * phi), np.cos(m * phi))
        trig[np.isnan(lon)] = np.nan
        return trig
