"""timm's model names from a cached listing: checks that pass need no timm import."""

from __future__ import annotations

import json
import subprocess
import sys

from tlbench_builtin.timm_names import _listing, _timm_version, is_known


def test_the_listing_is_written_once_and_then_read_without_importing_timm(tmp_path):
    assert is_known("test_resnet", tmp_path) and is_known("resnet50.a1_in1k", tmp_path)
    listing = tmp_path / "timm" / f"names-{_timm_version()}.json"
    data = json.loads(listing.read_text())
    assert "test_resnet" in data["architectures"] and "resnet50.a1_in1k" in data["pretrained"]
    code = ("import sys; from tlbench_builtin.timm_names import is_known; "
            f"assert is_known('resnet50', {str(tmp_path)!r}) and is_known('vit_small_patch16_224.augreg_in21k', "
            f"{str(tmp_path)!r}); print('timm' in sys.modules, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_unknown_names_are_refused_and_names_registered_later_pass(tmp_path):
    import timm
    from timm.models import register_model

    assert not is_known("resnet_that_does_not_exist", tmp_path)
    assert not is_known("resnet50.no_such_tag", tmp_path)

    @register_model
    def tlbench_test_registered_net(pretrained=False, **kwargs):  # pragma: no cover - never built
        return timm.create_model("test_resnet", pretrained=False, **kwargs)

    _listing.cache_clear()
    assert "tlbench_test_registered_net" not in _listing(str(tmp_path))["architectures"]  # not in the file
    assert is_known("tlbench_test_registered_net", tmp_path)  # the live registry has it
