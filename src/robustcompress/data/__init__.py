"""Data sets: MNIST, Fashion-MNIST, CIFAR-10 and a synthetic subspace set.

``load_dataset(name, split, limit=..., seed=...)`` returns an
:class:`ArrayDataset` (``float32`` images ``N×C×H×W`` in ``[0, 1]``, ``int64``
labels); ``make_loader`` batches it deterministically. Files are looked for under
``root``, ``$ROBUSTCOMPRESS_DATA``, the user cache and ``/usr/share/datasets``
(layout ``<root>/<name>/<official file names>``) and downloaded into the cache when
missing. ``robustcompress data`` shows where each data set was found.

Modules: ``idx`` (IDX format), ``cifar`` (CIFAR-10 binary format), ``catalog``
(files, mirrors, checksums), ``checksums``, ``locate``, ``download``,
``sampling`` (stratified subsets), ``datasets``, ``loader``, ``synthetic``.
"""

from robustcompress.data.catalog import KNOWN_DATASETS, SPLITS, DatasetInfo, Digest, FileSpec
from robustcompress.data.checksums import FileCheck, check_file
from robustcompress.data.datasets import ArrayDataset, dataset_classes, load_dataset
from robustcompress.data.download import download_dataset, fetch_url
from robustcompress.data.idx import read_idx, read_idx_images_labels, write_idx
from robustcompress.data.loader import BatchLoader, make_loader
from robustcompress.data.locate import (
    ENV_VAR,
    DatasetStatus,
    dataset_status,
    dataset_statuses,
    find_dataset,
    list_datasets,
    locate_dataset,
    search_roots,
    user_cache_dir,
)
from robustcompress.data.sampling import stratified_order, subsample_indices
from robustcompress.data.synthetic import SubspaceDataset, make_subspace_dataset

__all__ = [
    "ENV_VAR",
    "KNOWN_DATASETS",
    "SPLITS",
    "ArrayDataset",
    "BatchLoader",
    "DatasetInfo",
    "DatasetStatus",
    "Digest",
    "FileCheck",
    "FileSpec",
    "SubspaceDataset",
    "check_file",
    "dataset_classes",
    "dataset_status",
    "dataset_statuses",
    "download_dataset",
    "fetch_url",
    "find_dataset",
    "list_datasets",
    "load_dataset",
    "locate_dataset",
    "make_loader",
    "make_subspace_dataset",
    "read_idx",
    "read_idx_images_labels",
    "search_roots",
    "stratified_order",
    "subsample_indices",
    "user_cache_dir",
    "write_idx",
]
