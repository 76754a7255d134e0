"""Retrieval-augmented location embeddings (RANGE, Dhakal et al., CVPR 2025).

Contrastive training keeps only what a location and its image share; RANGE puts visual
information back: a location's embedding is joined by the image embeddings of the gallery
locations whose *location* embeddings are most similar to it. The gallery is a table of
locations with their location and image embeddings, built from any raster with the
training-pair sampler.
"""

from __future__ import annotations

import contextlib
import math
from typing import Literal

import numpy as np
import xarray as xr

from ..errors import GeolocationError, check_choice
from ..training.pairs import Mask, PatchSampler
from .grids import EMBEDDING_DIM, embedding_array
from .kernels import retrieval_mean, unit_rows

GALLERY_DIM = "gallery"
IMAGE_DIM = "image_feature"
MODES = ("concat", "mix")


def encode_patches(image_encoder, patches: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Image embeddings (N, D) float32 of ``patches`` (N, bands, P, P), ``batch_size`` at a
    time. ``image_encoder``: an object with ``encode_images(patches)``, a torch module (run
    in eval mode under ``torch.inference_mode``, its training mode restored after) or any
    callable taking a numpy batch."""
    if batch_size < 1:
        raise GeolocationError(f"batch_size must be at least 1, got {batch_size}")
    encode = getattr(image_encoder, "encode_images", None)
    context: contextlib.AbstractContextManager = contextlib.nullcontext()
    if encode is None:
        import torch

        if isinstance(image_encoder, torch.nn.Module):
            context = _eval_mode(image_encoder)

            def encode(batch):
                with torch.inference_mode():
                    return image_encoder(torch.from_numpy(batch).float()).numpy()
        elif callable(image_encoder):
            encode = image_encoder
        else:
            raise GeolocationError(f"image_encoder must have encode_images(), be a torch module "
                                   f"or a callable, got {type(image_encoder).__name__}")
    parts = []
    with context:
        for start in range(0, len(patches), batch_size):
            batch = np.ascontiguousarray(patches[start:start + batch_size])
            part = np.asarray(encode(batch), dtype=np.float32)
            if part.ndim != 2 or part.shape[0] != len(batch):
                raise GeolocationError(f"the image encoder returned shape {part.shape} for "
                                       f"{len(batch)} patches; expected (N, D)")
            parts.append(part)
    if not parts:
        raise GeolocationError("no patches to encode")
    return np.concatenate(parts)


@contextlib.contextmanager
def _eval_mode(module):
    training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(training)


def _encode_locations(location_model, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    encode = getattr(location_model, "encode", location_model)
    if not callable(encode):
        raise GeolocationError(f"location_model must have encode(lon, lat) or be a callable, "
                               f"got {type(location_model).__name__}")
    return np.asarray(encode(lon, lat), dtype=np.float32)


def build_gallery(image: xr.DataArray, location_model, image_encoder, n: int, *,
                  patch_size: int, seed: int = 0, mask: Mask | None = None,
                  batch_size: int = 256) -> xr.Dataset:
    """A retrieval gallery of ``n`` locations of a raster.

    Locations are drawn uniformly on the sphere within ``image``'s footprint by
    :class:`~xsatclip.training.pairs.PatchSampler` (seeded; optional ``mask``), each with the
    ``patch_size`` pixel patch around it.

    Parameters
    ----------
    image : any raster :func:`~xsatclip.train` takes: (band, y, x) on lat/lon or projected
        coordinates.
    location_model : a :class:`~xsatclip.LocationEncoder` or anything with
        ``encode(lon, lat) -> (N, D)``, or such a callable.
    image_encoder : see :func:`encode_patches` (the image half of the same pair).

    Returns
    -------
    Dataset over ``gallery`` with ``location_embedding`` (gallery, embedding),
    ``image_embedding`` (gallery, image_feature), both float32, and ``lon``/``lat``
    coordinates; attrs record the sampling and the location model's identity.
    """
    pairs = PatchSampler(image, patch_size).draw(n, np.random.default_rng(seed), mask)
    locations = _encode_locations(location_model, pairs.lon, pairs.lat)
    images = encode_patches(image_encoder, pairs.patches, batch_size=batch_size)
    identity = getattr(location_model, "identity", None)
    attrs = identity.attrs() if identity is not None else {}
    attrs["xsatclip_gallery"] = (f"{n} locations uniform on the sphere over {image.name!r}, "
                                 f"{patch_size}-pixel patches, seed {seed}")
    return xr.Dataset(
        {"location_embedding": ((GALLERY_DIM, EMBEDDING_DIM), locations),
         "image_embedding": ((GALLERY_DIM, IMAGE_DIM), images)},
        coords={"lon": (GALLERY_DIM, pairs.lon), "lat": (GALLERY_DIM, pairs.lat)},
        attrs=attrs)


def _gallery_arrays(gallery: xr.Dataset, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit location embeddings (G, D) and image embeddings (G, Di) of a gallery."""
    missing = [v for v in ("location_embedding", "image_embedding") if v not in gallery]
    if not isinstance(gallery, xr.Dataset) or missing:
        raise GeolocationError(f"gallery must be a Dataset with 'location_embedding' and "
                               f"'image_embedding' (build_gallery); missing {missing}")
    locations = gallery["location_embedding"].transpose(GALLERY_DIM, EMBEDDING_DIM).values
    images = np.asarray(gallery["image_embedding"].transpose(GALLERY_DIM, ...).values,
                        np.float64)
    if locations.shape[1] != size:
        raise GeolocationError(f"the gallery's location embeddings have {locations.shape[1]} "
                               f"channels, the embeddings {size}: use the same location model")
    unit, valid = unit_rows(locations)
    if not (valid.all() and np.isfinite(images).all()):
        raise GeolocationError("the gallery holds zero or non-finite embeddings")
    return unit, images


def augment(embeddings, gallery: xr.Dataset, *, k: int = 10,
            mode: Literal["concat", "mix"] = "concat", temperature: float = 0.1,
            mix_weight: float = 0.5):
    """RANGE-style retrieval-augmented embeddings of locations.

    For each location (grid cell or point) with embedding ``e``: the cosine similarities
    ``s_j`` of ``e`` to the gallery's location embeddings pick the ``k`` most similar gallery
    locations, and their image embeddings ``v_j`` are averaged with weights
    ``softmax(s_j / temperature)``: ``r = sum_j w_j v_j``.

    Parameters
    ----------
    embeddings : an embedding DataArray (``embedding`` dim anywhere: a grid, lazy or not, or
        points ``(point, embedding)`` from :func:`~xsatclip.sample`), an open cube Dataset,
        or a numpy array (N, D).
    gallery : from :func:`build_gallery` (the same location model as ``embeddings``).
    k : gallery locations retrieved per location (1 .. gallery size).
    mode : ``"concat"``: ``[e, r]`` (D + Di channels); ``"mix"``: ``(1 - mix_weight) e/|e|
        + mix_weight r/|r|`` (D channels; needs Di = D, as for a CLIP pair).
    temperature : of the softmax over the k similarities (smaller: closer to the single
        most similar location).
    mix_weight : share of the retrieved image embedding in ``"mix"`` mode, in [0, 1].

    Returns
    -------
    The same kind as ``embeddings``: a numpy array (N, D') or a DataArray with the
    ``embedding`` dim resized to D' (new coordinate 0 .. D'-1), other coords and attrs kept,
    Dask-backed inputs still lazy (one task per chunk). Float32 for float32 inputs, else
    float64. Locations whose embedding is not finite or zero give NaN rows.
    """
    check_choice("mode", mode, MODES)
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
            and temperature > 0):
        raise GeolocationError(f"temperature must be a positive number, got {temperature!r}")
    if not 0.0 <= mix_weight <= 1.0:
        raise GeolocationError(f"mix_weight must be in [0, 1], got {mix_weight!r}")
    array = None if isinstance(embeddings, (xr.DataArray, xr.Dataset)) else np.asarray(
        embeddings)
    size = array.shape[-1] if array is not None else embedding_array(embeddings).sizes[
        EMBEDDING_DIM]
    locations, images = _gallery_arrays(gallery, size)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not (
            1 <= k <= locations.shape[0]):
        raise GeolocationError(f"k must be an integer in 1 .. {locations.shape[0]} (the "
                               f"gallery's size), got {k!r}")
    if mode == "mix" and images.shape[1] != size:
        raise GeolocationError(f"mode='mix' needs image embeddings of the location "
                               f"embeddings' size {size}, the gallery's have {images.shape[1]}; "
                               "use mode='concat'")
    out_size = size + images.shape[1] if mode == "concat" else size

    def apply(block: np.ndarray) -> np.ndarray:
        rows = block.reshape(-1, size)
        retrieved = retrieval_mean(rows, locations, images, int(k), float(temperature))
        if mode == "concat":
            out = np.concatenate([rows, retrieved], axis=1)
        else:
            out = ((1 - mix_weight) * unit_rows(rows)[0]
                   + mix_weight * unit_rows(retrieved)[0])
        out[np.isnan(retrieved).any(axis=1)] = np.nan  # invalid location embeddings
        dtype = np.float32 if block.dtype == np.float32 else np.float64
        return out.astype(dtype).reshape(*block.shape[:-1], out_size)

    if array is not None:
        if array.ndim != 2:
            raise GeolocationError(f"embeddings as an array must be (N, D), got {array.shape}")
        return apply(array)
    emb = embedding_array(embeddings)
    dtype = np.float32 if emb.dtype == np.float32 else np.float64
    if emb.chunks is not None:
        emb = emb.chunk({EMBEDDING_DIM: -1})
    result = xr.apply_ufunc(
        apply, emb, input_core_dims=[[EMBEDDING_DIM]], output_core_dims=[[EMBEDDING_DIM]],
        exclude_dims={EMBEDDING_DIM}, dask="parallelized", output_dtypes=[dtype],
        dask_gufunc_kwargs={"output_sizes": {EMBEDDING_DIM: out_size}}, keep_attrs=True)
    result = result.transpose(*emb.dims).assign_coords({EMBEDDING_DIM: np.arange(out_size)})
    result.attrs["xsatclip_augment"] = (
        f"RANGE {mode}: softmax(cosine / {temperature:g})-weighted mean image embedding of "
        f"the {k} most similar of {locations.shape[0]} gallery locations"
        + (f", mix_weight {mix_weight:g}" if mode == "mix" else ""))
    return result
