"""How an encoder runs, decided once when it is loaded: the device, the basis kernel, the batch
policy and the thread policy (:class:`Backend`).

Thread policy. Dask already runs one task per core (threaded scheduler) or per worker thread
(distributed). Inside a task, torch and Numba therefore run single-threaded
(:func:`single_threaded_kernels`), so that N Dask threads use N cores and not N x cores.
Outside Dask (``encode`` or ``encode_grid`` called directly) the encoder does the same by
itself: :meth:`Backend.run_pieces` hands pieces of its work to as many threads as torch would
use, each single-threaded. With intra-op threading instead, every GEMM, sine and basis call of
a batch waits for all cores, and while another process holds a core each of them waits for
its time slice (benchmarks/README.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numba
import torch

from ..errors import DeviceError, InvalidOptionError, check_choice
from ..harmonics import NUMERICS, Numerics

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.float32}
"""The torch dtype of each ``dtype=``'s weights, basis and outputs (bfloat16: the layers after
the first compute in bfloat16, :mod:`xsatclip.model.inference`)."""
DType = Literal["float32", "float64", "bfloat16"]
BFloat16Support = Literal["float32 products", "bfloat16 products"] | None
DeviceLike = str | torch.device
BasisKernel = Literal["numba", "torch", "reference"]
PIECE_BATCHES = 16  # batches per piece of work handed to a thread (Backend.run_pieces)


def resolve_device(device: DeviceLike) -> torch.device:
    """The torch device ``device`` names (``"auto"``: CUDA when torch sees a GPU, else the
    CPU), checked to exist on this machine; :class:`DeviceError` otherwise."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidOptionError(f"device={device!r} is not a torch device: use 'auto', "
                                 "'cpu', 'cuda', 'cuda:1', ...") from None
    if resolved.type == "cpu":
        return resolved
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device={str(device)!r}, but torch sees no CUDA GPU (torch "
                              f"{torch.__version__}, CUDA build: {torch.version.cuda}); use "
                              "device='cpu' or 'auto'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise DeviceError(f"device={str(device)!r}, but torch sees only "
                              f"{torch.cuda.device_count()} CUDA device(s)")
        return resolved
    module = getattr(torch, resolved.type, None)
    available = getattr(module, "is_available", None)
    if available is None or not available():
        raise DeviceError(f"device={str(device)!r} is not available on this machine; use "
                          "device='cpu' or 'auto'")
    return resolved


def bfloat16_support(device: torch.device) -> BFloat16Support:
    """How ``device`` multiplies bfloat16 matrices: ``"float32 products"`` (CUDA GPUs with
    bfloat16 and ``torch.mm(..., out_dtype=float32)``), ``"bfloat16 products"`` (float32
    accumulation, bfloat16 results: CPUs with AVX512-BF16 or AMX as oneDNN reports them,
    older CUDA builds), or None where bfloat16 GEMMs are emulated (slower than float32)."""
    if device.type == "cpu":
        return "bfloat16 products" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    if device.type != "cuda" or not torch.cuda.is_bf16_supported():
        return None
    probe = torch.ones(2, 2, dtype=torch.bfloat16, device=device)
    try:
        torch.mm(probe, probe, out_dtype=torch.float32)
    except (RuntimeError, TypeError, NotImplementedError):
        return "bfloat16 products"
    return "float32 products"


@contextlib.contextmanager
def single_threaded_kernels() -> Iterator[None]:
    """Run torch and Numba with one thread in the calling thread (a Dask task, or a piece of
    :meth:`Backend.run_pieces`), then restore.

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


def check_batch_size(batch_size: int | None) -> int | None:
    """``batch_size`` (points per forward pass) if it is None or a positive integer."""
    if batch_size is not None and (isinstance(batch_size, bool)
                                   or not isinstance(batch_size, int) or batch_size < 1):
        raise InvalidOptionError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


@dataclasses.dataclass(frozen=True)
class Backend:
    """Where and how an encoder computes, fixed when it is loaded.

    ``device``: the torch device of the weights. ``basis_kernel``: ``"numba"`` (the CPU
    column kernel fused into the batch loop), ``"torch"`` (the recursion on the device) or
    ``"reference"`` (the reference's expanded polynomials, numpy, then copied over).
    """

    device: torch.device
    basis_kernel: BasisKernel

    @classmethod
    def choose(cls, device: DeviceLike, numerics: Numerics) -> Backend:
        """The backend of a model loaded on ``device`` with ``numerics``."""
        check_choice("numerics", numerics, NUMERICS)
        resolved = resolve_device(device)
        if numerics == "reference":
            kernel: BasisKernel = "reference"
        else:
            kernel = "numba" if resolved.type == "cpu" else "torch"
        return cls(resolved, kernel)

    @property
    def threads(self) -> int:
        """Threads :meth:`run_pieces` uses now: torch's count on the CPU (1 inside a Dask
        task), one stream on accelerators."""
        return torch.get_num_threads() if self.device.type == "cpu" else 1

    def batch_size(self, requested: int | None, level: int, capacity: int, *,
                   grid: bool = False) -> int:
        """Points per batch: ``requested``, else the default for this device.

        On the CPU, pointwise: a basis block of about 1 MiB of float32, at least 512 points,
        which stays in the core's L2 cache between the basis kernel and the first GEMM; grids
        (no basis block): 2048 points (benchmarks/README.md has the measurements). On
        accelerators, a share of free device memory.
        """
        if check_batch_size(requested) is not None:
            return int(requested)  # type: ignore[arg-type]
        if self.device.type == "cuda":
            bytes_per_point = 8 * (3 * level * level + 2 * capacity)  # float64 basis temporaries
            free, _ = torch.cuda.mem_get_info(self.device)
            return int(max(4096, min(2**22, free // 4 // bytes_per_point)))
        if grid:
            return 2048
        return int(max(512, min(65536, 2**20 // (4 * level * level))))

    def run_pieces(self, n: int, piece: int, run: Callable[[int, int], None]) -> None:
        """``run(start, stop)`` over ``[0, n)`` in pieces of at most ``piece``; on the CPU
        with several torch threads, the pieces go to that many threads, each with
        single-threaded kernels (module doc)."""
        threads = self.threads
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
