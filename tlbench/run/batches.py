"""Turning a split's raw examples into device batches.

Small splits (the few-shot training sets tlbench is about) are encoded once and kept
as tensors, on the device when there is one, so an epoch costs only the model's own
work. Larger splits are encoded batch by batch through a DataLoader (with workers,
pinned memory and non-blocking copies on CUDA).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import torch

Inputs = Any  # a tensor, or a dict of tensors (text)
Targets = Any  # what a task's objective makes of labels: a tensor with a row per example, or a list


def inputs_to(inputs: Inputs, device: torch.device, non_blocking: bool = False) -> Inputs:
    """Tensors, and the dicts, lists and tuples that hold them, moved to `device`."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device, non_blocking=non_blocking)
    if isinstance(inputs, dict):
        return {key: inputs_to(value, device, non_blocking) for key, value in inputs.items()}
    if isinstance(inputs, (list, tuple)):
        return type(inputs)(inputs_to(value, device, non_blocking) for value in inputs)
    if inputs is None or isinstance(inputs, (int, float, str, bool)):
        return inputs
    raise TypeError(f"encoded inputs must be tensors (in dicts or lists), got {type(inputs).__name__}")


def index_inputs(inputs: Inputs, index: torch.Tensor) -> Inputs:
    """The rows `index` of a batch-first tensor, of each tensor of a dict, or of a list."""
    if isinstance(inputs, torch.Tensor):
        return inputs[index]
    if isinstance(inputs, dict):
        return {key: index_inputs(value, index) for key, value in inputs.items()}
    return [inputs[i] for i in index.tolist()]


def concat_inputs(parts: list[Inputs]) -> Inputs:
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    if isinstance(parts[0], list):
        return [item for part in parts for item in part]
    return {key: _cat_padded([part[key] for part in parts]) for key in parts[0]}


def _cat_padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate token tensors of different lengths, right-padding with zeros (masked)."""
    if tensors[0].dim() < 2:
        return torch.cat(tensors)
    width = max(t.shape[1] for t in tensors)
    padded = [torch.nn.functional.pad(t, (0, width - t.shape[1])) if t.shape[1] < width else t
              for t in tensors]
    return torch.cat(padded)


def inputs_nbytes(inputs: Inputs) -> int:
    if isinstance(inputs, torch.Tensor):
        return inputs.element_size() * inputs.nelement()
    if isinstance(inputs, dict):
        return sum(inputs_nbytes(value) for value in inputs.values())
    if isinstance(inputs, (list, tuple)):
        return sum(inputs_nbytes(value) for value in inputs)
    return 0


class _Collate:
    """Picklable collate for DataLoader workers: raw examples -> (inputs, targets or None)."""

    def __init__(self, encode: Callable[[Sequence[Any]], Inputs], targets: Callable[[Sequence], Targets] | None):
        self.encode, self.targets = encode, targets

    def __call__(self, batch):
        examples = [example for example, _ in batch]
        targets = self.targets([label for _, label in batch]) if self.targets is not None else None
        return self.encode(examples), targets


class _Pairs(torch.utils.data.Dataset):
    def __init__(self, examples: Sequence[Any], labels: Any):
        self.examples, self.labels = examples, labels

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int):
        return self.examples[i], None if self.labels is None else self.labels[i]


class _Encoded:
    """A split's encoded tensors, shared by its views of different batch sizes."""

    def __init__(self):
        self.tensors: tuple[Inputs, torch.Tensor] | None = None
        self.streaming = False


class SplitBatches:
    """Batches of one split for one model: cached when small, streamed otherwise.

    Each batch is ``(inputs, targets)``: the encoded examples and what the task's
    objective makes of their labels (`targets`), or None for a split without labels.
    """

    def __init__(self, examples: Sequence[Any], labels: Any, encode: Callable, device: torch.device,
                 batch_size: int = 64, num_workers: int = 0, cache_bytes: int = 1 << 30,
                 targets: Callable[[Sequence], Targets] | None = None):
        if labels is not None and targets is None:
            raise ValueError("a labelled split needs the objective's `targets` to batch its labels")
        self.examples, self.labels = examples, labels
        self.encode, self.device, self.targets = encode, device, targets if labels is not None else None
        self.batch_size, self.num_workers = batch_size, num_workers
        self.cache_bytes = cache_bytes
        self._encoded = _Encoded()

    def __len__(self) -> int:
        return len(self.examples)

    def resized(self, batch_size: int, num_workers: int | None = None) -> "SplitBatches":
        """The same split in batches of another size, sharing the encoded tensors."""
        other = SplitBatches(self.examples, self.labels, self.encode, self.device, batch_size,
                             self.num_workers if num_workers is None else num_workers, self.cache_bytes,
                             self.targets)
        other._encoded = self._encoded
        return other

    def _try_cache(self) -> bool:
        store = self._encoded
        if store.tensors is not None:
            return True
        n = len(self.examples)
        if store.streaming or n == 0 or self.cache_bytes <= 0:
            return False
        probe = min(n, self.batch_size)
        first = self.encode([self.examples[i] for i in range(probe)])
        if inputs_nbytes(first) / probe * n > self.cache_bytes:
            store.streaming = True
            return False
        parts, step = [first], max(self.batch_size, 256)
        for start in range(probe, n, step):
            stop = min(n, start + step)
            parts.append(self.encode([self.examples[i] for i in range(start, stop)]))
        inputs = concat_inputs(parts) if len(parts) > 1 else first
        targets = self.targets(self.labels) if self.targets is not None else None
        store.tensors = (inputs_to(inputs, self.device), inputs_to(targets, self.device))
        return True

    def batches(self, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False) -> Iterator[tuple[Inputs, Targets]]:
        n = len(self.examples)
        if self._try_cache():
            inputs, targets = self._encoded.tensors
            order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
            stop = n - n % self.batch_size if drop_last and n > self.batch_size else n
            for start in range(0, stop, self.batch_size):
                index = order[start:start + self.batch_size].to(self.device)
                yield index_inputs(inputs, index), None if targets is None else index_inputs(targets, index)
            return
        yield from self._stream(shuffle, generator, drop_last)

    def _stream(self, shuffle, generator, drop_last):
        cuda = self.device.type == "cuda"
        loader = torch.utils.data.DataLoader(
            _Pairs(self.examples, self.labels), batch_size=self.batch_size, shuffle=shuffle,
            generator=generator, drop_last=drop_last and len(self.examples) > self.batch_size,
            num_workers=self.num_workers, collate_fn=_Collate(self.encode, self.targets), pin_memory=cuda,
            persistent_workers=False)
        for inputs, targets in loader:
            yield inputs_to(inputs, self.device, cuda), inputs_to(targets, self.device, cuda)
